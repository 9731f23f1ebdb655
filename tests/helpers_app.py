"""The service on a database of its own, for fixtures that outlive one test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from flask import Flask

from app.factory import create_app
from app.migrate import migrate
from app.settings import Settings
from hsm import Hsm


def own_service(base_settings: Settings, hsm: Hsm, directory: Path) -> Iterator[Flask]:
    """The service on a migrated SQLite database and data directory in ``directory``,
    sharing the session's logged-in ``hsm``; its engine disposed of afterwards (a
    fixture yields from it)."""
    settings = base_settings.replace(
        database_url=f"sqlite:///{directory / 'dairi.db'}", data_dir=directory
    )
    migrate(settings.database_url)
    application = create_app(settings, hsm=hsm)
    application.config["TESTING"] = True
    yield application
    application.extensions["dairi"].engine.dispose()
