"""Storage plumbing: the declarative base, column types, engines and sessions.

SQLite is the embedded default; PostgreSQL is reached through psycopg 3. Services
commit explicitly; a request's session is closed (rolling back anything left
uncommitted) when the request ends.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import psycopg
from sqlalchemy import (
    DateTime,
    Engine,
    Integer,
    MetaData,
    Table,
    create_engine,
    event,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from app.outages import OUTAGES, StorageFull

logger = logging.getLogger(__name__)


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
    # every model is a declarative table (SQLAlchemy types it as any FromClause)
    __table__: ClassVar[Table]


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
# How long connecting to PostgreSQL may take when the caller names no bound (libpq's
# own default is to wait for ever).
CONNECT_TIMEOUT_SECONDS = 10.0
# A PostgreSQL client waits this much longer than the server's statement_timeout
# before it gives up on a server that does not answer at all.
ANSWER_GRACE_SECONDS = 2.0
# After a checkpoint SQLite cuts the WAL back to this size when it starts it over.
WAL_SIZE_LIMIT_BYTES = 1024 * 1024

# A connection execution option: the transaction only reads, so on a SQLite file it
# begins DEFERRED (a WAL reader, which neither takes nor waits for the write lock)
# instead of IMMEDIATE. Only for work that never writes in that transaction (a write
# there could fail at once with SQLITE_BUSY_SNAPSHOT); see read_only_transaction.
READ_ONLY_TRANSACTION = "dairi_read_only"

# SQLite errors after which a connection is not reused: one opened while the file was
# read-only stays read-only when the file is writable again, and one that met an I/O
# error may hold a stale view. The pool opens fresh connections instead.
_SQLITE_STALE_CONNECTION = ("SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN")
# What psycopg (3.3) raises when a wait given a time-out expires; internal to psycopg,
# so without it the client-side bound is off and only the server's time-out applies.
_PSYCOPG_WAIT_TIMEOUT: type[Exception] | None = getattr(psycopg.errors, "_WaitTimeout", None)


class BoundedPgConnection(psycopg.Connection):
    """A psycopg connection that stops waiting for a server that does not answer.

    PostgreSQL's ``statement_timeout`` ends a slow statement on the server, but a
    server that hangs (or a network that swallows packets) never answers at all;
    psycopg would wait for ever. Every wait for the server (statements, commit,
    rollback, ping) is bounded by ``answer_timeout``; when it passes, the
    connection is closed, so SQLAlchemy discards it, and the caller gets an
    ``OperationalError``.
    """

    answer_timeout: float | None = None

    def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
        bound = self.answer_timeout
        if bound is None or _PSYCOPG_WAIT_TIMEOUT is None or kwargs.get("timeout") is not None:
            return super().wait(gen, *args, **kwargs)
        kwargs["timeout"] = bound
        try:
            return super().wait(gen, *args, **kwargs)
        except _PSYCOPG_WAIT_TIMEOUT as exc:
            # The server may still act on what was sent: this connection is unusable.
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database server did not answer within {bound:g} s"
            ) from exc


def make_engine(
    url: str | URL,
    *,
    sqlite_busy_timeout: float = SQLITE_BUSY_TIMEOUT_SECONDS,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    statement_timeout: float | None = None,
    **kwargs: Any,
) -> Engine:
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
    A transaction begun on a connection with the :data:`READ_ONLY_TRANSACTION`
    execution option (:func:`read_only_transaction`) is a plain deferred reader.
    A connection that met a read-only file or an I/O error is discarded.

    PostgreSQL waits at most ``connect_timeout`` seconds to connect and, with a
    ``statement_timeout``, that long per statement on the server and
    :data:`ANSWER_GRACE_SECONDS` more for any answer (:class:`BoundedPgConnection`);
    pooled connections are pinged before use, so a dead one is replaced.
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
            # Deleted rows (expired invitations, tokens, refusal windows) are overwritten,
            # not left readable in free pages of the file.
            cursor.execute("PRAGMA secure_delete=ON")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
            cursor.close()

        if not in_memory:

            @event.listens_for(engine, "begin")
            def _begin_immediate(connection: Any) -> None:
                if connection.get_execution_options().get(READ_ONLY_TRANSACTION):
                    connection.exec_driver_sql("BEGIN")  # a WAL reader: no lock taken
                else:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")

            @event.listens_for(engine, "handle_error")
            def _discard_stale(context: Any) -> None:
                name = getattr(context.original_exception, "sqlite_errorname", "") or ""
                if name.startswith(_SQLITE_STALE_CONNECTION):
                    context.is_disconnect = True

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if kwargs.get("poolclass") is None:  # a queue pool: waiting for a free connection
        kwargs.setdefault("pool_timeout", connect_timeout)
    engine = create_engine(parsed, **kwargs)
    answer_timeout = statement_timeout + ANSWER_GRACE_SECONDS if statement_timeout else None

    @event.listens_for(engine, "do_connect")
    def _bounded_connect(
        _dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]
    ) -> BoundedPgConnection:
        # libpq counts whole seconds and takes anything below 2 as 2.
        cparams.setdefault("connect_timeout", max(2, math.ceil(connect_timeout)))
        if statement_timeout:
            # Appended to what the URL asks for (a test's search_path, say).
            option = f"-c statement_timeout={int(statement_timeout * 1000)}"
            cparams["options"] = f"{cparams.get('options', '')} {option}".strip()
        connection = BoundedPgConnection.connect(*cargs, **cparams)
        connection.answer_timeout = answer_timeout
        return connection

    return engine


def read_only_transaction(session: Session) -> None:
    """Begin ``session``'s next transaction as a reader that takes no write lock on
    SQLite (:data:`READ_ONLY_TRANSACTION`); a no-op if one is open already. The caller
    must end it (commit or roll back) before anything in the session writes."""
    if not session.in_transaction():
        session.connection(execution_options={READ_ONLY_TRANSACTION: True})


def utc_now() -> datetime:
    return datetime.now(UTC)


def make_session_factory(
    engine: Engine, clock: Callable[[], datetime] = utc_now
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


class ReadinessProbe(Base):
    """One row that the readiness probe updates in a transaction it rolls back: the
    cheapest proof that the database takes writes now (not merely reads)."""

    __tablename__ = "readiness_probe"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    probed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


def sqlite_free_bytes(engine: Engine) -> int | None:
    """Free space (bytes) on the file system of a SQLite file database; None otherwise."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    stats = os.statvfs(Path(str(url.database)).parent)
    return stats.f_bavail * stats.f_frsize


def check_database_ready(engine: Engine, now: datetime, *, min_free_bytes: int = 0) -> None:
    """Prove the database takes writes now: connect, begin (on SQLite ``BEGIN
    IMMEDIATE``, the write lock), update the :class:`ReadinessProbe` row, roll back.

    Raises :class:`~app.outages.StorageFull` when a SQLite database's file system has
    less than ``min_free_bytes`` free, and ``SQLAlchemyError`` when the write fails
    (unreachable, silent past the time-outs, read-only, locked, not migrated).
    """
    free = sqlite_free_bytes(engine)
    if free is not None and free < min_free_bytes:
        raise StorageFull(
            f"{free // (1024 * 1024)} MiB free beside the database, "
            f"below the {min_free_bytes // (1024 * 1024)} MiB required"
        )
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            result = connection.execute(
                update(ReadinessProbe).where(ReadinessProbe.id == 1).values(probed_at=now)
            )
        finally:
            transaction.rollback()
    if result.rowcount != 1:
        raise SQLAlchemyError("the readiness_probe row is missing (run `dairi db upgrade`)")


class WalCheckpointer:
    """Truncates a SQLite database's write-ahead log at most every ``interval`` seconds.

    SQLite checkpoints the WAL by itself but keeps the file at its largest size
    until the last connection closes, which a server's pooled connections never
    do. :meth:`maybe_checkpoint` is called after each request and by the
    readiness probe; it costs a clock read until the interval has passed, then one
    ``PRAGMA wal_checkpoint(TRUNCATE)`` that waits at most ``busy_ms`` for readers
    (if they are busy it tries again a few seconds later).
    """

    RETRY_SECONDS = 5.0

    def __init__(
        self,
        engine: Engine,
        interval: float,
        *,
        busy_ms: int = 100,
        restore_busy_ms: int = int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._interval = interval
        self._busy_ms = busy_ms
        self._restore_busy_ms = restore_busy_ms
        self._clock = clock
        self._due = clock() + interval
        self._lock = threading.Lock()

    @classmethod
    def for_engine(cls, engine: Engine, interval: float, **kwargs: Any) -> WalCheckpointer | None:
        """A checkpointer for a SQLite file database; None for anything else."""
        url = engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return cls(engine, interval, **kwargs)

    def maybe_checkpoint(self) -> None:
        """Checkpoint if due; never raises (a failure is logged and retried later)."""
        if self._clock() < self._due or not self._lock.acquire(blocking=False):
            return
        try:
            self._due = self._clock() + self._interval
            busy, frames, _ = self.checkpoint()
            if busy:
                self._due = self._clock() + min(self._interval, self.RETRY_SECONDS)
            else:
                logger.debug("WAL checkpointed and truncated (%d frames)", frames)
        except Exception as exc:  # housekeeping must never fail the request it follows
            self._due = self._clock() + min(self._interval, self.RETRY_SECONDS)
            logger.warning("WAL checkpoint failed: %s", type(exc).__name__)
        finally:
            self._lock.release()

    def checkpoint(self) -> tuple[int, int, int]:
        """``PRAGMA wal_checkpoint(TRUNCATE)``: (busy, WAL frames, frames checkpointed)."""
        raw = self._engine.raw_connection()
        try:
            # The driver connection is in autocommit mode (see make_engine): no BEGIN.
            cursor = raw.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout={self._busy_ms}")
                row = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                cursor.execute(f"PRAGMA busy_timeout={self._restore_busy_ms}")
                cursor.close()
        finally:
            raw.close()
        return int(row[0]), int(row[1]), int(row[2])


# Set in ``session.info`` (by app.unit_of_work's session listeners) while the session's
# transaction holds writes; cleared when the transaction ends.
TRANSACTION_WROTE = "dairi_transaction_wrote"


def database_works(session: Session) -> None:
    """Session ``after_commit`` hook: a commit that wrote went through, so a database
    outage this process logged is over. A transaction that only read commits on a
    read-only database too (every refused request commits its reads before it records
    the refusal), so it proves nothing and would end the outage once per request."""
    if session.info.get(TRANSACTION_WROTE):
        OUTAGES.recovered("database")


def new_id() -> str:
    return str(uuid.uuid4())


def enum_check(column: str, values: type[enum.StrEnum]) -> str:
    """A CHECK constraint's SQL: ``column`` holds one of the enum's values."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"
