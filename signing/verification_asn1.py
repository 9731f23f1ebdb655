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

Both are kept in bounded maps (by count, and for parsed DER by total size), and only
code running inside :func:`remembered_asn1` (dairi's verifiers, and the tasks they
start) takes these paths: everywhere else, in this process too (pyHanko called
directly, the signing service), asn1crypto's own methods run as before, behind a
context-variable test. Parsed objects are shared and must be treated as read-only,
as pyHanko treats them.
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
MAX_PARSED_BYTES = 32 * 1024 * 1024  # DER kept parsed, least recently used dropped first

_ACTIVE: ContextVar[bool] = ContextVar("dairi_remembered_asn1", default=False)

# -- names ---------------------------------------------------------------------------

_PREPARED: dict[bytes, str] = {}

_original_hashable: Callable[[x509.RDNSequence], str] = x509.RDNSequence.hashable.fget
_original_eq: Callable[[x509.RDNSequence, object], bool] = x509.RDNSequence.__eq__


def prepared(name: x509.RDNSequence) -> str:
    """``name.hashable``, remembered by its DER contents while active."""
    contents = name.contents
    if not _ACTIVE.get() or contents is None or len(contents) > MAX_NAME_BYTES:
        return _original_hashable(name)
    found = _PREPARED.get(contents)
    if found is None:
        found = _original_hashable(name)
        if len(_PREPARED) >= MAX_REMEMBERED_NAMES:
            _PREPARED.clear()
        _PREPARED[contents] = found
    return found


def _eq(self: x509.RDNSequence, other: object) -> bool:
    if not _ACTIVE.get():
        return _original_eq(self, other)
    if not isinstance(other, x509.RDNSequence):
        return False
    if self.contents is not None and self.contents == other.contents:
        return True
    return prepared(self) == prepared(other)


x509.RDNSequence.hashable = property(prepared)
x509.RDNSequence.__eq__ = _eq

# -- parsed validation data --------------------------------------------------------------

_PARSED: OrderedDict[tuple[type, bytes], core.Asn1Value] = OrderedDict()
_PARSED_LOCK = threading.Lock()
_parsed_bytes = 0
_original_load = core.Asn1Value.load.__func__


def _remembered_load(cls: type, encoded_data: bytes, strict: bool = False, **kwargs: Any) -> Any:
    if not _ACTIVE.get() or strict or kwargs or not isinstance(encoded_data, bytes):
        return _original_load(cls, encoded_data, strict=strict, **kwargs)
    global _parsed_bytes
    key = (cls, encoded_data)
    with _PARSED_LOCK:
        found = _PARSED.get(key)
        if found is not None:
            _PARSED.move_to_end(key)
            return found
    parsed = _original_load(cls, encoded_data)
    with _PARSED_LOCK:
        if key not in _PARSED and len(encoded_data) <= MAX_PARSED_BYTES:
            _PARSED[key] = parsed
            _parsed_bytes += len(encoded_data)
            while _parsed_bytes > MAX_PARSED_BYTES:
                (_, dropped_der), _ = _PARSED.popitem(last=False)
                _parsed_bytes -= len(dropped_der)
    return parsed


for _kind in (x509.Certificate, crl.CertificateList, ocsp.OCSPResponse):
    _kind.load = classmethod(_remembered_load)


# -- the switch --------------------------------------------------------------------------


@contextmanager
def remembered_asn1() -> Iterator[None]:
    """Within this block (and the tasks it starts), names are compared through their
    remembered prepared forms and validation data DER seen before is not parsed again."""
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def remembered_count() -> tuple[int, int]:
    """(prepared names, parsed DER objects) remembered (tests)."""
    return len(_PREPARED), len(_PARSED)
