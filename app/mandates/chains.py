"""How a stored mandate chain is judged: the chain-evaluation view of a row, and the
live check of a root representative's registration certificates.

Nothing here writes. A representative revoked after the grant is *recorded* on the
mandate by the sweep (:mod:`app.mandates.sweep`); until then a chain evaluation finds it
by checking the certificates itself (:func:`representative_revoked_at`) and reports it
in its verdict all the same.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from asn1crypto import pem

from app.mandates.models import Mandate
from delegation.chain import Hop, HopStatus
from identity.trust import TrustPurpose
from identity.validation import CertificateRefused, CertificateValidator

# A representative's certificate revoked for renewal does not undo the grants it made.
RENEWAL_REASONS = frozenset({"superseded"})


def hop_of(row: Mandate, representative_revoked_at: datetime | None = None) -> Hop:
    """The chain-evaluation view of a stored mandate (its AC was checked at issuance);
    ``representative_revoked_at`` stands in for what the row has not recorded yet."""
    return Hop(
        mandate_id=row.id,
        principal=row.principal,
        grantor_certificate_sha256=row.grantor_certificate_sha256,
        grantee_certificate_sha256=row.grantee_certificate_sha256,
        scope=row.scope,
        status=HopStatus(revoked_at=row.revoked_at),
        grantor_is_representative=row.depth == 0,
        representative_revoked_at=row.representative_revoked_at or representative_revoked_at,
    )


def representative_revocation(
    validator: CertificateValidator, root: Mandate, clock: Callable[[], datetime]
) -> tuple[datetime, str | None] | None:
    """When (and why) a registration certificate of the root's representatives was
    revoked after the grant, for any reason but renewal, as the validator (its CRL or
    OCSP answer, through its cache) tells now; None when none was, when the row has
    recorded it already, or for a sub-delegation. The time is the one the CRL or OCSP
    answer gives (else now), so the chain fails from then on."""
    if (
        root.depth != 0
        or root.representative_revoked_at is not None
        or not root.representative_certificates
    ):
        return None
    for _, _, der in pem.unarmor(root.representative_certificates.encode(), multiple=True):
        try:
            validator.validate_now(der, TrustPurpose.REGISTRAR)
        except CertificateRefused as exc:
            if exc.code == "CERTIFICATE_REVOKED" and exc.reason not in RENEWAL_REASONS:
                return min(exc.revoked_at or clock(), clock()), exc.reason
    return None


def representative_revoked_at(
    validator: CertificateValidator, root: Mandate, clock: Callable[[], datetime]
) -> datetime | None:
    """:func:`representative_revocation`'s time only."""
    found = representative_revocation(validator, root, clock)
    return None if found is None else found[0]
