"""Process-wide caches for verification (DESIGN §7): what is identical across the
documents a service verifies, parsed and checked once.

A bid signed by the same employee under the same mandate carries the same AC, the same
root-grant evidence and, within a CRL period, the same AA CRL; every relying party
trusts the same roots. Each entry here is keyed by the SHA-256 of every byte string
(and the exact value of every other input) its result depends on, so a changed input
(another CRL, a revocation, an altered evidence file) is a different key and never
meets a stale result. Entries are bounded in number (least recently used go first) and
in age (``DEFAULT_MAX_AGE_SECONDS``), so a long-running process does not keep what it
no longer sees. Results are treated as read-only by their users.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

DEFAULT_MAX_ENTRIES = 256
DEFAULT_MAX_AGE_SECONDS = 600.0

V = TypeVar("V")


def digest_of(*parts: object) -> str:
    """One SHA-256 over ``parts``: bytes as they are, tuples/lists item by item,
    anything else by ``repr``, each length-prefixed so no two inputs collide."""
    h = hashlib.sha256()

    def feed(part: object) -> None:
        if isinstance(part, bytes | bytearray | memoryview):
            data = bytes(part)
            h.update(b"b%d:" % len(data))
            h.update(data)
        elif isinstance(part, tuple | list):
            h.update(b"t%d:" % len(part))
            for item in part:
                feed(item)
        else:
            text = repr(part).encode()
            h.update(b"r%d:" % len(text))
            h.update(text)

    for part in parts:
        feed(part)
    return h.hexdigest()


class BoundedCache(Generic[V]):
    """A thread-safe LRU map with at most ``max_entries`` entries, none older than
    ``max_age_seconds``. ``clock`` is injectable for tests."""

    def __init__(
        self,
        name: str,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.max_entries = max_entries
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        """The value stored under ``key`` if it is young enough (counted as a hit or a
        miss); None otherwise."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] <= self.max_age_seconds:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[1]
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The cached value for ``key``, or ``compute()`` stored under it (a None result
        is not stored). An exception from ``compute`` is not cached."""
        found = self.get(key)
        if found is not None:
            return found
        value = compute()
        if value is not None:
            self.put(key, value)
        return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._entries[key] = (self._clock(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0


_ALL: list[BoundedCache[object]] = []


def cache(name: str, **kwargs: float) -> BoundedCache[V]:
    """A new registered cache (see :func:`clear_all`)."""
    made: BoundedCache[V] = BoundedCache(name, **kwargs)  # type: ignore[arg-type]
    _ALL.append(made)  # type: ignore[arg-type]
    return made


def clear_all() -> None:
    """Empty every verification cache (tests; a trust change in a running process)."""
    for each in _ALL:
        each.clear()


def stats() -> dict[str, tuple[int, int, int]]:
    """name → (entries, hits, misses)."""
    return {c.name: (len(c), c.hits, c.misses) for c in _ALL}
