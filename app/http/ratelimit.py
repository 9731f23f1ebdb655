"""Rate limits that hold across worker processes: one counter row per (key, window).

A hit is one statement, ``INSERT … ON CONFLICT (key, window_start) DO UPDATE SET
count = count + 1 RETURNING count`` (SQLite ≥ 3.35 and PostgreSQL), so however
requests interleave across workers the k-th hit of a window reads k: at most
``limit`` hits of a window pass. (A count followed by an insert let concurrent
workers all read "below the limit", issue 9.10.) Windows are fixed, aligned to
multiples of their length since the epoch; a key's first hit in a new window
purges the rows of windows that ended more than a window ago, so the table
holds about one row per key active in the last two windows.

Keys name whom a limit counts against: the client's address
(:func:`client_address`, through ``trusted_proxy_hops`` reverse proxies) and,
for an authenticated caller, the person, the representative's certificate or
the API client (:attr:`app.http.security.Caller.rate_key`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import has_request_context, request
from sqlalchemy import BigInteger, Integer, String, Table, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.database import Base
from dairi import DairiError

KEY_LENGTH = 200
# Addresses and other caller-supplied parts of a key are cut to this length.
_PART_LENGTH = 120


class RateLimitCounter(Base):
    """Hits of one key in one fixed window."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch seconds
    window_end: Mapped[int] = mapped_column(BigInteger, index=True)
    count: Mapped[int] = mapped_column(Integer)


class RateLimited(DairiError):
    """Too many requests of one kind from one client in the current window (429)."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds until the window ends; the Retry-After header


@dataclass(frozen=True)
class Window:
    """A fixed window ``[start, end)`` in epoch seconds."""

    start: int
    end: int

    @classmethod
    def around(cls, now: datetime, seconds: int) -> Window:
        epoch = math.floor(now.timestamp())
        start = epoch - epoch % seconds
        return cls(start, start + seconds)

    def seconds_left(self, now: datetime) -> int:
        """Whole seconds until the window ends, at least 1 (what Retry-After says)."""
        return max(1, math.ceil(self.end - now.timestamp()))


def client_address() -> str:
    """The address of the client of the current request ("unknown" outside one).

    With ``trusted_proxy_hops`` = N > 0, :func:`app.create_app` wraps the app in
    werkzeug's ProxyFix, which sets ``remote_addr`` to the N-th address from the
    right of ``X-Forwarded-For`` (the one the outermost trusted proxy saw);
    with 0 the header is ignored and the socket's peer is the client.
    """
    if not has_request_context():
        return "unknown"
    return (request.remote_addr or "unknown")[:_PART_LENGTH]


def key_part(value: str) -> str:
    """A caller-influenced part of a key, bounded in length."""
    return value[:_PART_LENGTH]


def count_hit(
    session: Session, table: Table, key: Mapping[str, Any], values: Mapping[str, Any]
) -> int:
    """Add one to ``table.count`` for the row ``key`` (inserting it with ``values``
    and count 1 if absent) and return the new count, in one statement.

    Runs in the session's transaction (the caller commits). Concurrent callers on
    the same key are serialised by the database: SQLite's write lock, or
    PostgreSQL's lock on the conflicting row.
    """
    dialect = session.get_bind().dialect.name
    inserts: dict[str, Callable[[Table], sqlite.Insert | postgresql.Insert]] = {
        "sqlite": sqlite.insert,
        "postgresql": postgresql.insert,
    }
    insert = inserts[dialect]
    statement = (
        insert(table)
        .values(**key, **values, count=1)
        .on_conflict_do_update(index_elements=list(key), set_={"count": table.c.count + 1})
        .returning(table.c.count)
    )
    count: int = session.execute(statement).scalar_one()
    return count


def hit(session: Session, key: str, *, limit: int, window_seconds: int, now: datetime) -> int:
    """Count one hit of ``key`` in the window holding ``now``, in the session's
    transaction (the caller commits); the seconds to wait if it is over ``limit``,
    else 0."""
    window = Window.around(now, window_seconds)
    table = RateLimitCounter.__table__
    count = count_hit(
        session,
        table,
        {"key": key[:KEY_LENGTH], "window_start": window.start},
        {"window_end": window.end},
    )
    if count == 1:
        # A new window for this key: drop windows that ended a window ago or more
        # (not just-ended ones a worker with a slightly slower clock may still hit).
        session.execute(
            delete(RateLimitCounter).where(
                RateLimitCounter.window_end < window.start - window_seconds
            )
        )
    return window.seconds_left(now) if count > limit else 0


def enforce(
    session: Session,
    keys: Iterable[str],
    *,
    limit: int,
    window_seconds: int,
    now: datetime,
    what: str,
) -> None:
    """Count one hit against each of ``keys`` in turn (the caller commits).

    Raises :class:`RateLimited` at the first key over ``limit``; the keys after it
    are not counted, so a refused request spends nobody else's allowance.
    """
    for key in keys:
        wait = hit(session, key, limit=limit, window_seconds=window_seconds, now=now)
        if wait:
            raise RateLimited(f"too many {what}; retry in {wait} s", wait)
