"""Distinguished-name comparison during a verification, remembered by the name's DER.

Path building and CRL matching in pyhanko-certvalidator compare issuer and subject
names again and again (a verification of a B-LTA bid compares about 150 pairs), and
asn1crypto's RFC 5280 comparison runs the LDAP string preparation (stringprep) of
every attribute value on every comparison: about a quarter of dairi's verification.
The prepared form (``RDNSequence.hashable``, asn1crypto's own key for a name in a
dict or set) is a pure function of the name's DER contents, so while
:func:`remembered_names` is active in the current context it is computed once per
distinct DER and kept in a bounded map, and two names with identical DER are equal
without preparing either.

Only code running inside :func:`remembered_names` (dairi's verifiers) takes this path:
everywhere else, in this process too (pyHanko called directly, the signing service),
asn1crypto's own methods run as before, behind a context-variable test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from asn1crypto import x509

MAX_REMEMBERED = 4096  # distinct names; the map is emptied when it is full

_ACTIVE: ContextVar[bool] = ContextVar("dairi_remembered_names", default=False)
_PREPARED: dict[bytes, str] = {}

_original_hashable: Callable[[x509.RDNSequence], str] = x509.RDNSequence.hashable.fget
_original_eq: Callable[[x509.RDNSequence, object], bool] = x509.RDNSequence.__eq__


def prepared(name: x509.RDNSequence) -> str:
    """``name.hashable``, remembered by its DER contents while active."""
    contents = name.contents
    if not _ACTIVE.get() or contents is None:
        return _original_hashable(name)
    found = _PREPARED.get(contents)
    if found is None:
        found = _original_hashable(name)
        if len(_PREPARED) >= MAX_REMEMBERED:
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


@contextmanager
def remembered_names() -> Iterator[None]:
    """Within this block (and the tasks it starts), names are compared through the
    remembered prepared forms."""
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def remembered_count() -> int:
    """How many prepared names are remembered (tests)."""
    return len(_PREPARED)
