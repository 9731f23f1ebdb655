"""The authority query (DESIGN §5 "point in time"): who could act for a corporation
for a purpose at a time, and through which chain. Reads only, from what is recorded
(a representative's later revocation once the sweep has recorded it)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, defer

from app.mandates.chains import hop_of
from app.mandates.models import Mandate
from delegation.chain import Hop, evaluate_chain
from delegation.scope import Purpose

# The authority query reads terms and status only, not the signed documents.
_WITHOUT_DOCUMENTS = tuple(
    defer(c)
    for c in (
        Mandate.instruction,
        Mandate.signatures,
        Mandate.attribute_certificate,
        Mandate.grantee_certificate_der,
        Mandate.representative_certificates,
    )
)


@dataclass(frozen=True)
class Authority:
    """One way someone could act: the leaf mandate and its chain, root first."""

    grantee_person_id: str
    grantee_name: str
    grantee_certificate_sha256: str
    chain: tuple[Mandate, ...]

    @property
    def mandate(self) -> Mandate:
        return self.chain[-1]


class AuthorityQuery:
    """Answers the authority query from one session; needs nothing else."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, principal: str, purpose: Purpose) -> list[Authority]:
        """Who could act for ``principal`` for ``purpose`` at ``purpose.at``, and through
        which chain: every mandate whose whole chain holds, leaves sorted by grantee."""
        at = purpose.at
        rows = self.session.scalars(
            select(Mandate)
            .options(*_WITHOUT_DOCUMENTS)
            .where(
                Mandate.principal == principal,
                Mandate.not_before <= at,
                Mandate.not_after > at,
                or_(Mandate.revoked_at.is_(None), Mandate.revoked_at > at),
            )
        ).all()
        by_id = {r.id: r for r in rows}
        hops: dict[str, Hop] = {}

        def hop(row: Mandate) -> Hop:  # scopes are parsed only for chains worth judging
            if row.id not in hops:
                hops[row.id] = hop_of(row)
            return hops[row.id]

        found = []
        for row in rows:
            if not hop(row).scope.covers(purpose):
                continue
            chain = [row]
            while chain[0].parent_id is not None and chain[0].parent_id in by_id:
                chain.insert(0, by_id[chain[0].parent_id])
            if chain[0].parent_id is not None:
                continue  # an ancestor is not live at T
            verdict = evaluate_chain(
                [hop(m) for m in chain],
                purpose,
                signer_certificate_sha256=row.grantee_certificate_sha256,
                principal=principal,
            )
            if verdict.holds:
                found.append(
                    Authority(
                        row.grantee_person_id,
                        row.grantee_name,
                        row.grantee_certificate_sha256,
                        tuple(chain),
                    )
                )
        return sorted(found, key=lambda a: (a.grantee_name, a.mandate.depth, a.mandate.id))
