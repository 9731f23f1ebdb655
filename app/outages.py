"""Dependency outages: what clients see, and one log line per outage (issue 16 item 7).

A dependency that fails (the database, the disk under it, the time-stamping
authority, revocation data for signing) is the service's problem, not the
client's: the request is answered 503 with a stable code and ``Retry-After``.
The log says when an outage starts, reminds at most once a minute while it
lasts, and says when the dependency works again, instead of a traceback for
every request that met it. Each server process keeps its own account, so with
N workers an outage is at most N "unavailable" lines and N "recovered" lines
(plus the reminders).

Codes (stable; clients retry a 503 after ``Retry-After`` seconds):

- ``DATABASE_UNAVAILABLE`` — the database could not be reached, did not answer
  within the time-outs, is read-only, or its lock was held too long;
- ``STORAGE_FULL`` — the database (or its disk) has no room for the write;
- ``TIMESTAMP_FAILED`` — the time-stamping authority did not answer in time,
  refused the connection or the request, or gave no usable token;
- ``VALIDATION_DATA_UNAVAILABLE`` — revocation data for a signer could not be fetched;
- ``SIGNING_FAILED`` — the signature could not be made for a reason on our side.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from dairi import DairiError

logger = logging.getLogger(__name__)

# Seconds between "still unavailable" reminders while an outage lasts; an outage
# with no failure seen for this long is over even without a success to show it.
REMINDER_SECONDS = 60.0

# The dependency behind each code that is answered as an outage (503).
DEPENDENCY_BY_CODE = {
    "DATABASE_UNAVAILABLE": "database",
    "STORAGE_FULL": "database",
    "TIMESTAMP_FAILED": "time-stamping authority",
    "VALIDATION_DATA_UNAVAILABLE": "revocation data",
    "SIGNING_FAILED": "signing",
}


class DatabaseUnavailable(DairiError):
    """The database cannot be used now: unreachable, silent, read-only or locked."""

    code = "DATABASE_UNAVAILABLE"
    retry_after = 5


class StorageFull(DatabaseUnavailable):
    """The database (or the disk under it) has no room for the write."""

    code = "STORAGE_FULL"
    retry_after = 30


@dataclass
class _Outage:
    started: float
    reason: str
    failures: int = 1
    last_failure: float = 0.0
    last_logged: float = 0.0


class OutageLog:
    """Logs the start, reminders and end of each dependency's outage, once each.

    Thread-safe; :meth:`failed` and :meth:`recovered` are cheap when nothing
    changes (one dictionary look-up under a lock).
    """

    def __init__(
        self,
        log: logging.Logger = logger,
        *,
        reminder_seconds: float = REMINDER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._reminder = reminder_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._outages: dict[str, _Outage] = {}

    def failed(self, dependency: str, reason: str) -> None:
        """``dependency`` failed for ``reason`` (a caller-safe one-line text)."""
        now = self._clock()
        with self._lock:
            outage = self._outages.get(dependency)
            if outage is not None and now - outage.last_failure > self._reminder:
                outage = None  # quiet for a long while: that one is over, this is new
            if outage is None:
                self._outages[dependency] = _Outage(now, reason, 1, now, now)
                message: tuple[object, ...] = ("%s unavailable: %s", dependency, reason)
            else:
                outage.failures += 1
                outage.last_failure = now
                outage.reason = reason
                if now - outage.last_logged < self._reminder:
                    return
                outage.last_logged = now
                message = (
                    "%s still unavailable after %.0f s (%d failures): %s",
                    dependency,
                    now - outage.started,
                    outage.failures,
                    reason,
                )
        self._log.error(*message)

    def recovered(self, dependency: str) -> None:
        """``dependency`` worked: ends its outage (logged) if one was under way."""
        if dependency not in self._outages:  # the common case, without the lock
            return
        with self._lock:
            outage = self._outages.pop(dependency, None)
        if outage is not None:
            self._log.warning(
                "%s recovered after %.1f s (%d failures)",
                dependency,
                self._clock() - outage.started,
                outage.failures,
            )

    def down(self, dependency: str) -> bool:
        """Whether an outage of ``dependency`` is under way (as this process saw it)."""
        return dependency in self._outages


def _driver_reason(exc: BaseException) -> str:
    """The driver's own message, first line only: SQLAlchemy's text would add the SQL
    statement and its parameters, which may hold personal data."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return f"{type(original).__name__}: {text[0] if text else ''}".strip().rstrip(":")


# SQLite's and PostgreSQL's words for "no space left" (SQLSTATE 53100 is disk_full).
_FULL_MARKERS = ("database or disk is full", "no space left on device", "disk full")


def database_fault(exc: SQLAlchemyError) -> DatabaseUnavailable | None:
    """The outage ``exc`` shows, as a coded error; None when ``exc`` is a defect of ours
    (a constraint violated, bad SQL), which stays a 500 with its traceback."""
    original = getattr(exc, "orig", None)
    message = str(original if original is not None else exc).lower()
    sqlstate = getattr(original, "sqlstate", None) or ""
    if sqlstate == "53100" or any(marker in message for marker in _FULL_MARKERS):
        return StorageFull(f"no room left: {_driver_reason(exc)}")
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeoutError):
        return DatabaseUnavailable(_driver_reason(exc))
    # PostgreSQL classes 08 (connection), 57 (operator intervention, e.g. a cancelled
    # statement), 25006 (read-only transaction), 40P01/55P03 (lock not available).
    if isinstance(exc, DBAPIError) and (
        sqlstate[:2] in {"08", "57"} or sqlstate in {"25006", "55P03"}
    ):
        return DatabaseUnavailable(_driver_reason(exc))
    return None


def as_outage(exc: BaseException, outages: OutageLog) -> DairiError | None:
    """If ``exc`` is a dependency outage: the coded error to answer with, already logged
    through ``outages`` (once per outage); None otherwise."""
    fault: DairiError | None
    if isinstance(exc, SQLAlchemyError):
        fault = database_fault(exc)
    elif isinstance(exc, DairiError) and exc.code in DEPENDENCY_BY_CODE:
        fault = exc
    else:
        return None
    if fault is None:
        return None
    if not fault.logged:
        outages.failed(DEPENDENCY_BY_CODE.get(fault.code, fault.code.lower()), fault.message)
        fault.logged = True
    return fault


# This process's account of its dependencies' outages.
OUTAGES = OutageLog()
