"""ASN.1 work a verification repeats on identical DER, done once per distinct DER.

Two things cost dairi's verification of a B-LTA bid about a third of its time and are
the same from one bid to the next:

* **Name comparison.** Path building and CRL matching in pyhanko-certvalidator
  compare issuer and subject names again and again (about 150 pairs per bid), and
  asn1crypto's RFC 5280 comparison runs the LDAP string preparation (stringprep) of
  every attribute value each time. The prepared form (``RDNSequence.hashable``,
  asn1crypto's own key for a name in a dict or set) is a pure function of the name's
  DER contents: it is computed once per distinct DER, and two names with identical
  DER are equal without preparing either.
* **Parsing the validation data.** Each bid's DSS carries the same CA and TSA
  certificates, CRLs and OCSP responses (within their update periods), and pyHanko
  parses each again per document (``Certificate.load``, ``CertificateList.load``,
  ``OCSPResponse.load``), then walks the parsed structure lazily. A load of DER seen
  before returns the object parsed then, its lazily parsed parts included. Parsing
  depends on the bytes only: what the data says (validity, revocation, the
  validation time) is judged afresh by pyHanko on every verification.

Only code running inside :func:`remembered_asn1`, on the thread that opened it (dairi's
verifiers, and the tasks they start on their event loop), takes these paths: everywhere
else, in this process too (pyHanko called directly, the signing service, a pool thread
the verification lends work to), asn1crypto's own methods run as before, behind a
context-variable test.

**Threads.** Parsed objects are never shared between threads (DESIGN §3: asn1crypto
objects parse their parts lazily, on first use, and two threads using one object at once
corrupted it — seen again here: concurrent verifications of one bid came out
TOTAL_FAILED, "the signature cannot be read (KeyError)"). A verification runs lock-free,
beside the request the process is running, so each thread keeps its own map of parsed
DER (``threading.local``): the same thread asking again gets the object it parsed
before, another thread parses its own. A thread's map goes when the thread ends. Its
bound is
:data:`MAX_PARSED_BYTES_PER_THREAD` of DER, least recently used dropped first: with
gunicorn's 16 threads per worker (``app/serving/gunicorn_conf.py``) a worker keeps at
most 16 × 2 MiB = 32 MiB of DER parsed, what the one shared map allowed before. A DER
larger than that bound is parsed each time. The prepared names are strings (immutable),
so one map of them serves every thread, bounded by count.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from asn1crypto import core, crl, ocsp, x509

MAX_REMEMBERED_NAMES = 4096  # distinct names; the map is emptied when it is full
MAX_NAME_BYTES = 2048  # a longer name (none a CA issues) is prepared each time
# DER kept parsed per thread, least recently used dropped first (see the module's
# docstring: 16 threads make 32 MiB per worker).
MAX_PARSED_BYTES_PER_THREAD = 2 * 1024 * 1024

# The identity of the thread that opened remembered_asn1(), or None outside it. A context
# copied into another thread (asyncio.to_thread) carries the opener's identity, which the
# other thread does not match.
_ACTIVE: ContextVar[int | None] = ContextVar("dairi_remembered_asn1", default=None)


def _active() -> bool:
    return _ACTIVE.get() == threading.get_ident()


# -- names ---------------------------------------------------------------------------

_PREPARED: dict[bytes, str] = {}

_original_hashable: Callable[[x509.RDNSequence], str] = x509.RDNSequence.hashable.fget
_original_eq: Callable[[x509.RDNSequence, object], bool] = x509.RDNSequence.__eq__


def prepared(name: x509.RDNSequence) -> str:
    """``name.hashable``, remembered by its DER contents while active."""
    contents = name.contents
    if contents is None or len(contents) > MAX_NAME_BYTES or not _active():
        return _original_hashable(name)
    found = _PREPARED.get(contents)
    if found is None:
        found = _original_hashable(name)
        if len(_PREPARED) >= MAX_REMEMBERED_NAMES:
            _PREPARED.clear()
        _PREPARED[contents] = found
    return found


def _eq(self: x509.RDNSequence, other: object) -> bool:
    if not _active():
        return _original_eq(self, other)
    if not isinstance(other, x509.RDNSequence):
        return False
    if self.contents is not None and self.contents == other.contents:
        return True
    return prepared(self) == prepared(other)


x509.RDNSequence.hashable = property(prepared)
x509.RDNSequence.__eq__ = _eq

# -- parsed validation data --------------------------------------------------------------


class _ParsedDer(threading.local):
    """One thread's parsed DER: (class, DER) → object, least recently used first."""

    def __init__(self) -> None:
        self.objects: OrderedDict[tuple[type, bytes], core.Asn1Value] = OrderedDict()
        self.size = 0  # bytes of DER in ``objects``
        self.generation = _generation


_generation = 0  # forget_parsed() moves it on; a map of an older one is emptied
_parsed = _ParsedDer()
_original_load = core.Asn1Value.load.__func__


def _this_threads() -> _ParsedDer:
    if _parsed.generation != _generation:
        _parsed.objects.clear()
        _parsed.size = 0
        _parsed.generation = _generation
    return _parsed


def _remembered_load(cls: type, encoded_data: bytes, strict: bool = False, **kwargs: Any) -> Any:
    if strict or kwargs or not isinstance(encoded_data, bytes) or not _active():
        return _original_load(cls, encoded_data, strict=strict, **kwargs)
    mine = _this_threads()
    key = (cls, encoded_data)
    found = mine.objects.get(key)
    if found is not None:
        mine.objects.move_to_end(key)
        return found
    parsed = _original_load(cls, encoded_data)
    budget = MAX_PARSED_BYTES_PER_THREAD
    if len(encoded_data) <= budget:
        mine.objects[key] = parsed
        mine.size += len(encoded_data)
        while mine.size > budget:
            (_, dropped_der), _ = mine.objects.popitem(last=False)
            mine.size -= len(dropped_der)
    return parsed


for _kind in (x509.Certificate, crl.CertificateList, ocsp.OCSPResponse):
    _kind.load = classmethod(_remembered_load)


# -- the switch --------------------------------------------------------------------------


@contextmanager
def remembered_asn1() -> Iterator[None]:
    """Within this block (and the tasks it starts on this thread's event loop), names
    are compared through their remembered prepared forms and validation data DER this
    thread parsed before is not parsed again."""
    token = _ACTIVE.set(threading.get_ident())
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def forget_parsed() -> None:
    """Drop every thread's parsed DER (each map is emptied when its thread next loads)."""
    global _generation
    _generation += 1


def remembered_count() -> tuple[int, int]:
    """(prepared names, parsed DER objects of the calling thread) remembered (tests)."""
    return len(_PREPARED), len(_this_threads().objects)
