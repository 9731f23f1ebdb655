"""Trust anchors per purpose (DESIGN §4): configuration, never hard-coded.

A JPKI authentication certificate is trusted only under the anchors configured
for :attr:`TrustPurpose.JPKI_AUTH`, a registration certificate only under
:attr:`TrustPurpose.REGISTRAR`, and so on: one purpose's root never vouches for
another purpose's certificates.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dairi import DairiError


class TrustPurpose(enum.StrEnum):
    """What a trust anchor may vouch for; also the file stem in a trust directory."""

    JPKI_AUTH = "jpki-auth"
    JPKI_SIGN = "jpki-sign"
    REGISTRAR = "registrar"
    TSA = "tsa"
    SERVICE = "service"


class TrustStoreError(DairiError, ValueError):
    """A trust-anchor file could not be read as PEM certificates."""

    code = "TRUST_STORE_INVALID"


def _der(certificates: Iterable[bytes]) -> tuple[bytes, ...]:
    """Check that each item is a DER certificate; keep order, drop duplicates."""
    found: dict[bytes, None] = {}
    for der in certificates:
        try:
            x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise TrustStoreError("a trust anchor is not a DER X.509 certificate") from exc
        found[bytes(der)] = None
    return tuple(found)


@dataclass(frozen=True)
class TrustStore:
    """DER trust anchors per :class:`TrustPurpose` (a purpose may have none)."""

    anchors: Mapping[TrustPurpose, tuple[bytes, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checked = {TrustPurpose(p): _der(ders) for p, ders in self.anchors.items()}
        object.__setattr__(self, "anchors", MappingProxyType(checked))

    def anchors_for(self, purpose: TrustPurpose) -> tuple[bytes, ...]:
        """The DER anchors configured for ``purpose`` (empty if none)."""
        return self.anchors.get(TrustPurpose(purpose), ())

    @classmethod
    def from_directory(cls, path: Path) -> TrustStore:
        """Load ``<path>/<purpose>.pem`` for every purpose.

        A file may hold several PEM certificates; a missing file means no anchor
        for that purpose. Raises :class:`TrustStoreError` for an unreadable file.
        """
        anchors: dict[TrustPurpose, tuple[bytes, ...]] = {}
        for purpose in TrustPurpose:
            pem_file = Path(path) / f"{purpose.value}.pem"
            if not pem_file.is_file():
                continue
            try:
                certificates = x509.load_pem_x509_certificates(pem_file.read_bytes())
            except ValueError as exc:
                raise TrustStoreError(f"{pem_file.name} holds no readable PEM certificate") from exc
            anchors[purpose] = tuple(
                c.public_bytes(serialization.Encoding.DER) for c in certificates
            )
        return cls(anchors)
