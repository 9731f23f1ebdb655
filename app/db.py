"""Storage plumbing: the declarative base, engines, sessions and Alembic migrations.

SQLite is the embedded default; PostgreSQL is reached through psycopg 3. Services
commit explicitly; a request's session is closed (rolling back anything left
uncommitted) when the request ends.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from flask import current_app, g
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Where create_app keeps its ServiceContext in ``app.extensions``.
EXTENSION_KEY = "dairi"

# Deterministic constraint names, so later migrations (and SQLite batch mode) can
# refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite keeps no offset, so values are stored as UTC and come back with
    ``tzinfo=UTC``; naive datetimes are refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def engine_url(url: str | URL) -> URL:
    """Parse ``url``; a bare ``postgresql://`` URL is given the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


# How long a SQLite writer waits for another process's write lock before failing.
SQLITE_BUSY_TIMEOUT_SECONDS = 10.0


def make_engine(url: str | URL, *, sqlite_busy_timeout: float = SQLITE_BUSY_TIMEOUT_SECONDS,
                **kwargs: Any) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL.

    SQLite connections enforce foreign keys; a file database uses WAL (readers
    do not block the writer) and its directory is created if missing. An
    in-memory SQLite database is one shared connection.

    On a SQLite file every transaction starts with ``BEGIN IMMEDIATE``: SQLite
    ignores ``SELECT … FOR UPDATE``, and the driver's own transaction handling
    begins only at the first write, so a check and the write that depends on it
    would not be serialised across processes. Taking the write lock at the start
    makes each transaction a critical section (other writers wait up to
    ``sqlite_busy_timeout`` seconds); readers outside a transaction are not blocked.
    """
    parsed = engine_url(url)
    if parsed.get_backend_name() == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        if in_memory:
            kwargs.setdefault("poolclass", StaticPool)
            kwargs.setdefault("connect_args", {"check_same_thread": False})
        else:
            Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
            kwargs.setdefault("connect_args", {"timeout": sqlite_busy_timeout})
        engine = create_engine(parsed, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            if not in_memory:
                # Hand transaction control to SQLAlchemy (see "begin" below).
                dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        if not in_memory:

            @event.listens_for(engine, "begin")
            def _begin_immediate(connection: Any) -> None:
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def utc_now() -> datetime:
    return datetime.now(UTC)


def make_session_factory(engine: Engine, clock: Callable[[], datetime] = utc_now
                         ) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after ``commit``.

    ``clock`` is the service's one clock; it travels in ``session.info["clock"]``
    so that what writes through a session (the audit log) reads the same time.
    """
    return sessionmaker(bind=engine, expire_on_commit=False, info={"clock": clock})


def session_clock(session: Session) -> Callable[[], datetime]:
    """The clock a session was made with (:func:`make_session_factory`)."""
    clock: Callable[[], datetime] = session.info.get("clock", utc_now)
    return clock


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


@contextlib.contextmanager
def private_schema(server_url: str, prefix: str = "test") -> Iterator[str]:
    """A PostgreSQL URL whose connections see only a fresh schema, dropped afterwards
    (tests and benchmarks share one server without seeing each other's tables)."""
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def get_session() -> Session:
    """The current request's session, opened on first use.

    Services commit explicitly; whatever is left uncommitted is rolled back when
    the application context ends (see :func:`close_session`).
    """
    session: Session | None = g.get("_dairi_session")
    if session is None:
        session = current_app.extensions[EXTENSION_KEY].session_factory()
        g._dairi_session = session
    return session


def close_session(exc: BaseException | None = None) -> None:
    """Teardown: roll back anything uncommitted and close the request's session."""
    session: Session | None = g.pop("_dairi_session", None)
    if session is not None:
        try:
            session.rollback()
        finally:
            session.close()
