"""Pointing the ``dairi`` command line at test settings."""

from __future__ import annotations

from app.settings import Settings


def cli_environment(settings: Settings) -> dict[str, str]:
    """The DAIRI_* variables that point the command line at ``settings``."""
    return {
        "DAIRI_DATA_DIR": str(settings.data_dir),
        "DAIRI_DATABASE_URL": settings.database_url,
        "DAIRI_HSM_TOKEN_LABEL": settings.hsm_token_label,
        "DAIRI_HSM_PIN_FILE": str(settings.hsm_pin_file),
        "DAIRI_SOFTHSM2_CONF": str(settings.softhsm2_conf),
        "DAIRI_PKI_DIR": str(settings.pki_dir),
        "DAIRI_TRUST_DIR": str(settings.trust_dir),
    }
