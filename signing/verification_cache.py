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

**Threads.** A verification runs lock-free, beside the request the process is running,
so two threads may read these caches at once. A result that holds parsed asn1crypto
objects (a CRL container, a trust manager, a chain reader) must never reach two threads:
asn1crypto parses its parts lazily, on first use, and two threads using one object at
once corrupt it (DESIGN §3). So by default a cache keeps one map per thread
(``threading.local``): a thread asking again gets what it computed before, another
thread computes its own, and a thread's map goes when the thread ends. Its bound
(:data:`DEFAULT_MAX_ENTRIES_PER_THREAD` unless given) is per thread: gunicorn's 16
threads per worker (``app/serving/gunicorn_conf.py``) keep at most 16 × 32 = 512
entries of such a cache per worker, twice the 256 of the one map before; what they
weigh is the parsed DER, bounded again per thread in :mod:`signing.verification_asn1`.
A cache whose results are immutable values (bytes, str, numbers, frozen dataclasses of
them) is made ``shared``: one map for every thread, :data:`DEFAULT_MAX_ENTRIES` entries.
"""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

DEFAULT_MAX_ENTRIES = 256  # a shared cache's
DEFAULT_MAX_ENTRIES_PER_THREAD = 32  # a per-thread cache's, in each thread
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


class _Entries(Generic[V]):
    """One thread's entries of a cache (every thread's, for a shared cache)."""

    __slots__ = ("__weakref__", "generation", "map")

    def __init__(self, generation: int) -> None:
        self.map: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self.generation = generation


class BoundedCache(Generic[V]):
    """A thread-safe LRU map with at most ``max_entries`` entries, none older than
    ``max_age_seconds``. Unless ``shared``, each thread has its own map (see the module
    docstring) and ``max_entries`` bounds each. ``clock`` is injectable for tests."""

    def __init__(
        self,
        name: str,
        *,
        shared: bool = False,
        max_entries: int | None = None,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.shared = shared
        if max_entries is None:
            max_entries = DEFAULT_MAX_ENTRIES if shared else DEFAULT_MAX_ENTRIES_PER_THREAD
        self.max_entries = max_entries
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._generation = 0  # clear() moves it on; a thread's older map is emptied
        self._shared: _Entries[V] | None = _Entries(0) if shared else None
        self._local = threading.local()
        self._maps: weakref.WeakSet[_Entries[V]] = weakref.WeakSet()  # live threads' maps
        self.hits = 0
        self.misses = 0

    def _entries(self) -> _Entries[V]:
        """The calling thread's map (emptied if :meth:`clear` ran since it was used)."""
        if self._shared is not None:
            return self._shared
        mine: _Entries[V] | None = getattr(self._local, "entries", None)
        if mine is None:
            mine = self._local.entries = _Entries(self._generation)
            with self._lock:
                self._maps.add(mine)
        elif mine.generation != self._generation:
            mine.map.clear()
            mine.generation = self._generation
        return mine

    def get(self, key: Hashable) -> V | None:
        """The value stored under ``key`` if it is young enough (counted as a hit or a
        miss); None otherwise."""
        now = self._clock()
        entries = self._entries().map
        with self._lock:
            entry = entries.get(key)
            if entry is not None and now - entry[0] <= self.max_age_seconds:
                entries.move_to_end(key)
                self.hits += 1
                return entry[1]
            if entry is not None:
                del entries[key]
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
        entries = self._entries().map
        with self._lock:
            entries[key] = (self._clock(), value)
            entries.move_to_end(key)
            while len(entries) > self.max_entries:
                entries.popitem(last=False)

    def __len__(self) -> int:
        """Entries held, in every thread's map."""
        if self._shared is not None:
            return len(self._shared.map)
        with self._lock:
            return sum(len(m.map) for m in self._maps if m.generation == self._generation)

    def clear(self) -> None:
        """Forget every entry, in every thread (a thread's map is emptied when it next
        uses it)."""
        with self._lock:
            if self._shared is not None:
                self._shared.map.clear()
            self._generation += 1
            self.hits = self.misses = 0


_ALL: list[BoundedCache[object]] = []


def cache(name: str, *, shared: bool = False, **kwargs: float) -> BoundedCache[V]:
    """A new registered cache (see :func:`clear_all`): one map per thread unless
    ``shared``, which only a cache of immutable values may be."""
    made: BoundedCache[V] = BoundedCache(name, shared=shared, **kwargs)  # type: ignore[arg-type]
    _ALL.append(made)  # type: ignore[arg-type]
    return made


def clear_all() -> None:
    """Empty every verification cache (tests; a trust change in a running process)."""
    for each in _ALL:
        each.clear()


def stats() -> dict[str, tuple[int, int, int]]:
    """name → (entries in every thread, hits, misses)."""
    return {c.name: (len(c), c.hits, c.misses) for c in _ALL}
