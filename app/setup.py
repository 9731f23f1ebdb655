"""Set-up of the embedded defaults: SoftHSM token, database, development PKI. Idempotent."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from app.context import ServiceContext
from app.db import migrate
from app.settings import Settings
from devpki import DevPki
from hsm.softhsm import ensure_softhsm_token

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SetupReport:
    token_created: bool
    pki_created: bool


def ensure_environment(settings: Settings, context: ServiceContext | None = None
                       ) -> SetupReport:
    """Create what is missing: the SoftHSM token (when SoftHSM is the module), the
    database schema, and in development mode the development PKI."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token_created = False
    if settings.uses_softhsm:
        os.environ.setdefault("SOFTHSM2_CONF", str(settings.softhsm2_conf))
        token_created = ensure_softhsm_token(settings.softhsm2_conf, settings.hsm_token_label,
                                             settings.hsm_pin_file)
    migrate(settings.database_url)
    pki_created = False
    if settings.dev_mode:
        if DevPki.exists(settings.pki_dir):
            pki = DevPki(settings.pki_dir)
        else:
            context = context or ServiceContext(settings)
            pki = DevPki.create(settings.pki_dir, context.hsm,
                                base_url=settings.public_base_url)
            pki_created = True
        # Every start: the anchors per purpose follow the PKI (and this code's layout).
        pki.export_trust(settings.trust_dir)
    return SetupReport(token_created, pki_created)
