"""Alembic environment: runs the packaged migrations against dairi's database.

``app.migrate.migrate`` passes an open connection in ``config.attributes["connection"]``;
otherwise the URL in ``sqlalchemy.url`` is used.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from app.audit_trail import models as audit_models  # noqa: F401 - registers the tables
from app.console import models as console_models  # noqa: F401
from app.credentials import models as credential_models  # noqa: F401
from app.database import Base, make_engine
from app.http import ratelimit  # noqa: F401
from app.mandates import models as mandate_models  # noqa: F401
from app.people import models as people_models  # noqa: F401
from app.signatures import models as signature_models  # noqa: F401
from app.signing_sessions import models as signing_session_models  # noqa: F401

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as connection:
            _configure(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
