"""Alembic migrations of the service's database, packaged in ``app/migrations``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL

from app.database import engine_url, make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | URL) -> Config:
    """An Alembic configuration for the migrations packaged in ``app/migrations``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's Config interpolates '%'; a URL may hold percent-escapes.
    rendered = engine_url(url).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def migrate(database_url: str) -> None:
    """Bring the database schema up to the newest revision (``alembic upgrade head``).

    Idempotent; raises SQLAlchemy or Alembic errors if the database cannot be reached
    or a migration fails.
    """
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            config = alembic_config(database_url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
