"""Judging a mandate chain from its attribute certificates alone (DESIGN §5).

The leaf AC carries its ancestors in embedded form (provenance extension; see
:mod:`delegation.certificates`), so a relying party holding
only the leaf, the AA certificate and the AA's status answers can rebuild every hop:
:class:`MandateChainReader` checks that each AC was signed by the AA (the AA path
itself is validated once, by whoever builds the reader, e.g. with
``async_validate_ac``), turns each into a :class:`~delegation.chain.Hop` and hands the
chain to :func:`~delegation.chain.evaluate_chain`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from asn1crypto import cms, x509
from cryptography import x509 as pyca_x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from delegation.certificates import (
    MandateCertificateError,
    MandateTerms,
    ParsedMandate,
    parse_mandate_certificate,
)
from delegation.chain import ChainVerdict, Hop, HopStatus, evaluate_chain
from delegation.scope import Purpose, Scope

# What the AA says of one AC at T: its revocation time, or None while it stands.
StatusLookup = Callable[[int], datetime | None]


def mandate_id_of(serial_number: int) -> str:
    """A mandate's id is its AC serial number written as a UUID (dairi issues serials
    from UUID4s), so a relying party can name a hop without the service's database."""
    return str(uuid.UUID(int=serial_number)) if serial_number < 2**128 else hex(serial_number)


def serial_of(mandate_id: str) -> int:
    """The AC serial number of a mandate id; raises ValueError if it is not one."""
    return uuid.UUID(mandate_id).int


def scope_of(terms: MandateTerms) -> Scope:
    """The scope a mandate's terms grant (the terms hold it)."""
    return terms.scope


class MandateChainReader:
    """Rebuilds and judges chains of ACs issued by one AA (its certificate given)."""

    def __init__(self, aa_certificate_der: bytes) -> None:
        certificate = pyca_x509.load_der_x509_certificate(aa_certificate_der)
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise MandateCertificateError("the AA key must be RSA", "AA_KEY_MISMATCH")
        self._key = key
        self._aa_name = x509.Certificate.load(aa_certificate_der).subject
        self._aa_name_der = self._aa_name.dump()

    def issued_by_aa(self, der: bytes) -> bool:
        """Whether ``der`` names the AA as issuer and carries the AA's valid signature."""
        try:
            ac = cms.AttributeCertificateV2.load(der)
            names = ac["ac_info"]["issuer"].chosen["issuer_name"]
            if len(names) != 1:
                return False
            name = names[0].chosen
            if name.dump() != self._aa_name_der and name != self._aa_name:
                return False
            if ac["signature_algorithm"]["algorithm"].native != "sha256_rsa":
                return False
            self._key.verify(
                ac["signature"].native, ac["ac_info"].dump(), padding.PKCS1v15(), hashes.SHA256()
            )
            return True
        except (InvalidSignature, ValueError, TypeError, KeyError, IndexError):
            return False

    def read(
        self, der: bytes, status_of: StatusLookup, *, embedded_depth: int | None = None
    ) -> tuple[ParsedMandate, Hop]:
        """One AC and its hop (``AC_NOT_ISSUED_BY_AA`` in the hop's status if the AA did
        not sign it): a full AC, or with ``embedded_depth`` an ancestor's embedded form
        (its status asked by its mandate's serial). Raises
        :class:`MandateCertificateError` (AC_MALFORMED)."""
        mandate = parse_mandate_certificate(der, embedded_depth=embedded_depth)
        terms = mandate.terms
        valid = self.issued_by_aa(der)
        status = HopStatus(
            valid=valid,
            refusal=None if valid else "AC_NOT_ISSUED_BY_AA",
            revoked_at=status_of(mandate.serial_number),
        )
        return mandate, Hop(
            mandate_id=mandate_id_of(mandate.serial_number),
            principal=terms.principal_corporate_number,
            grantor_certificate_sha256=terms.grantor.certificate_sha256.hex(),
            grantee_certificate_sha256=terms.grantee.certificate_sha256.hex(),
            scope=scope_of(terms),
            status=status,
            # The AA certifies a root (depth 0) only after checking the representative.
            grantor_is_representative=mandate.depth == 0 and valid,
        )

    def evaluate(
        self,
        leaf_der: bytes,
        purpose: Purpose,
        *,
        principal: str,
        signer_certificate_der: bytes,
        status_of: StatusLookup,
        representative_revoked_at: datetime | None = None,
    ) -> ChainVerdict:
        """Whether the holder of ``signer_certificate_der`` may act for ``principal``
        (法人番号) for ``purpose`` through the chain ending in ``leaf_der`` (its
        ancestors read from its provenance extension). ``status_of(serial)`` gives
        each AC's revocation time. Raises :class:`MandateCertificateError`
        (AC_MALFORMED) when ``leaf_der`` is not a mandate AC.
        """
        leaf, leaf_hop = self.read(leaf_der, status_of)
        # Each ancestor is embedded bare, signed by the AA on its own: checked hop by hop
        # (the leaf's signature covers them all too).
        hops = [
            self.read(a, status_of, embedded_depth=depth)[1]
            for depth, a in enumerate(leaf.ancestors)
        ] + [leaf_hop]
        if representative_revoked_at is not None:
            hops[0] = replace(hops[0], representative_revoked_at=representative_revoked_at)
        # The holder is the certificate named by issuer and serial, whose digest the
        # mandate also carries: both must match the signer.
        signer = (
            hashlib.sha256(signer_certificate_der).hexdigest()
            if leaf.is_held_by(signer_certificate_der)
            else ""
        )
        return evaluate_chain(hops, purpose, principal=principal, signer_certificate_sha256=signer)
