"""Shared fixtures: a real SoftHSM token in a temporary directory, settings, the app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.settings import Settings, load_settings
from hsm import Hsm
from hsm.softhsm import ensure_softhsm_token, write_softhsm_conf

pytest_plugins = ["fixtures_pki", "fixtures_delegation"]

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
        trust_dir=str(data / "pki" / "trust"),
    )


@pytest.fixture(scope="session")
def hsm(base_settings: Settings) -> Hsm:
    token = Hsm(base_settings.hsm)
    yield token
    token.close()


# --- service shell fixtures (app, client, database) go below this line ---

from collections.abc import Iterator  # noqa: E402

from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from helpers_cli import cli_environment  # noqa: E402

from app.dev.private_schema import private_schema  # noqa: E402
from app.factory import create_app  # noqa: E402
from app.migrate import migrate  # noqa: E402

# SQLite always; PostgreSQL too when TEST_DATABASE_URL names a server (CI sets it).
DB_BACKENDS = [pytest.param("sqlite", id="sqlite")]
if os.environ.get("TEST_DATABASE_URL"):
    DB_BACKENDS.append(pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql))


@pytest.fixture(params=DB_BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for one test: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dairi.db'}"
        return
    with private_schema(os.environ["TEST_DATABASE_URL"]) as url:
        yield url


@pytest.fixture
def app_settings(base_settings: Settings, db_url: str, tmp_path: Path) -> Settings:
    return base_settings.replace(database_url=db_url, data_dir=tmp_path)


@pytest.fixture
def app(app_settings: Settings, hsm: Hsm, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The service on a migrated database, sharing the session's logged-in HSM.

    PKCS#11 login state belongs to the process, so a second logged-in Hsm on the
    same token would fail with "already logged in": every app shares ``hsm``.
    """
    monkeypatch.delenv("DAIRI_HSM_PIN", raising=False)
    migrate(app_settings.database_url)
    application = create_app(app_settings, hsm=hsm)
    application.config["TESTING"] = True
    yield application
    application.extensions["dairi"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def cli_env(app_settings: Settings, pki, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The command line on this test's database, the session's token and PKI."""
    env = cli_environment(app_settings)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
