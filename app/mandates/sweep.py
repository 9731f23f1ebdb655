"""The mandates sweep (``dairi mandates sweep``), a periodic job: it records what has
changed outside dairi since the last run, so that reading never has to.

- A root representative's registration certificate revoked after the grant (for any
  reason but renewal) is recorded on the root mandate with the revocation time its CRL
  or OCSP answer gives, and audited (``mandate:representative-revoked``); from then on
  the authority query, which reads only what is recorded, leaves that chain out from
  that time. Until the sweep has run, a chain evaluation (``/chain``, ``/document``,
  and the check every signature makes) finds the revocation itself and reports it in
  its verdict, without writing.
- The AA's published CRL is re-made when it nears its nextUpdate, so ``GET /ac/crl``
  finds a fresh one.

Everything is written in the caller's unit of work (one transaction).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit_trail.log import AuditLog
from app.mandates.chains import representative_revocation
from app.mandates.models import Mandate
from app.mandates.publication import renew_crl
from delegation.certificates import AttributeAuthority
from identity.validation import CertificateValidator

SWEEP_ACTOR = "service:sweep"


@dataclass
class SweepReport:
    roots_checked: int = 0
    # Root mandates whose representative's revocation the sweep recorded.
    representative_revoked: list[str] = field(default_factory=list)
    crl_renewed: bool = False


def sweep(
    session: Session,
    validator: CertificateValidator,
    aa: AttributeAuthority,
    clock: Callable[[], datetime],
) -> SweepReport:
    """Run the sweep in ``session``'s transaction (the caller commits)."""
    report = SweepReport()
    roots = session.scalars(
        select(Mandate)
        .where(
            Mandate.depth == 0,
            Mandate.representative_revoked_at.is_(None),
            Mandate.representative_certificates.is_not(None),
        )
        .order_by(Mandate.created_at, Mandate.id)
    ).all()
    for root in roots:
        report.roots_checked += 1
        found = representative_revocation(validator, root, clock)
        if found is None:
            continue
        revoked_at, reason = found
        root.representative_revoked_at = revoked_at
        AuditLog(session).append(
            "mandate:representative-revoked",
            actor=SWEEP_ACTOR,
            subject=root.id,
            principal=root.principal,
            details={"reason": reason, "revoked_at": revoked_at.isoformat()},
        )
        report.representative_revoked.append(root.id)
    session.flush()
    report.crl_renewed = renew_crl(session, aa, clock())
    return report
