"""Shared fixtures: a real SoftHSM token in a temporary directory, settings, the app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.settings import Settings, load_settings
from hsm import Hsm
from hsm.softhsm import ensure_softhsm_token, write_softhsm_conf

TOKEN_LABEL = "dairi-test"


@pytest.fixture(scope="session")
def softhsm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SoftHSM token for the whole run; SOFTHSM2_CONF points at it before PKCS#11 loads."""
    root = tmp_path_factory.mktemp("softhsm")
    conf = root / "softhsm2.conf"
    write_softhsm_conf(conf, root / "tokens")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    ensure_softhsm_token(conf, TOKEN_LABEL, root / "user-pin")
    return root


@pytest.fixture(scope="session")
def base_settings(softhsm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data = tmp_path_factory.mktemp("data")
    return load_settings(
        env={},
        data_dir=str(data),
        hsm_token_label=TOKEN_LABEL,
        hsm_pin_file=str(softhsm_dir / "user-pin"),
        softhsm2_conf=str(softhsm_dir / "softhsm2.conf"),
        pki_dir=str(data / "pki"),
    )


@pytest.fixture(scope="session")
def hsm(base_settings: Settings) -> Hsm:
    token = Hsm(base_settings.hsm)
    yield token
    token.close()


# --- service shell fixtures (app, client, database) go below this line ---
