"""Set-up of the embedded defaults: SoftHSM token, database, development PKI. Idempotent.

The token is created only by ``dairi init`` on a fresh data directory (issue 16.1).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from app.context import ServiceContext
from app.migrate import migrate
from app.settings import Settings
from devpki import DevPki
from hsm.softhsm import ensure_softhsm_token, require_softhsm_token, so_pin_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SetupReport:
    token_created: bool
    pki_created: bool
    # An SO PIN file left by a version before issue 9.15 (dairi no longer keeps one).
    leftover_so_pin_file: Path | None = None


def ensure_environment(
    settings: Settings, context: ServiceContext | None = None, *, first_run: bool = False
) -> SetupReport:
    """Make the embedded defaults ready: the SoftHSM token (when SoftHSM is the
    module), the database schema, and in development mode the development PKI.

    Only ``first_run`` (``dairi init``) creates the token, and only on a data
    directory no earlier token left a trace in; every other caller (``dairi serve``,
    any command) only checks that it is there. Raises :class:`hsm.TokenMissing`
    (``HSM_TOKEN_MISSING``) rather than create a token over an existing PIN file.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token_created = False
    leftover = None
    if settings.uses_softhsm:
        os.environ.setdefault("SOFTHSM2_CONF", str(settings.softhsm2_conf))
        # Keys of an existing development PKI live in a token: a trace of one.
        also = [settings.pki_dir] if DevPki.exists(settings.pki_dir) else []
        if first_run:
            token_created = ensure_softhsm_token(
                settings.softhsm2_conf, settings.hsm_token_label, settings.hsm_pin_file, also
            )
        else:
            require_softhsm_token(
                settings.softhsm2_conf, settings.hsm_token_label, settings.hsm_pin_file, also
            )
        if so_pin_file(settings.hsm_pin_file).exists():
            leftover = so_pin_file(settings.hsm_pin_file)
            logger.warning(
                "%s holds the SoftHSM SO PIN an earlier version kept; dairi does"
                " not need it: keep it offline with the token backup, or delete it",
                leftover,
            )
    migrate(settings.database_url)
    pki_created = False
    if settings.dev_mode:
        if DevPki.exists(settings.pki_dir):
            pki = DevPki(settings.pki_dir)
        else:
            context = context or ServiceContext(settings)
            pki = DevPki.create(settings.pki_dir, context.hsm, base_url=settings.public_base_url)
            pki_created = True
        # Every start: the anchors per purpose follow the PKI (and this code's layout).
        pki.export_trust(settings.trust_dir)
    return SetupReport(token_created, pki_created, leftover)
