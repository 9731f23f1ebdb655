"""Chain evaluation (DESIGN §5): does a chain of mandates, root first, let its
leaf's holder act for the principal for this purpose at time T?

Each hop arrives already checked on its own (its attribute certificate validated
under the AA and its status at T known: :class:`HopStatus`); this module applies
the rules between hops and to the purpose, and reports every hop with every
reason it fails, so a relying party sees the whole picture, not the first error.

The rules between hops live in one function, :func:`judge_hop` ("these ancestors
plus this hop, at T"). :func:`evaluate_chain` applies it to every hop of a stored
chain, and the service applies it to a proposed grant (``proposed=True``) before it
issues anything, so granting and chain evaluation cannot disagree (issue 10.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from delegation.scope import Purpose, Scope


@dataclass(frozen=True)
class HopStatus:
    """What per-certificate validation said about one mandate at T."""

    valid: bool = True  # the AC verifies under the AA (signature, path, holder form)
    refusal: str | None = None  # its code when not valid, e.g. AC_NOT_ISSUED_BY_AA
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class Hop:
    """One mandate of a chain."""

    mandate_id: str
    principal: str  # 法人番号
    grantor_certificate_sha256: str
    grantee_certificate_sha256: str
    scope: Scope
    status: HopStatus = field(default_factory=HopStatus)
    # Root only: the representative's certificate was valid at grant time and,
    # unless the policy allows otherwise, not revoked before T.
    grantor_is_representative: bool = False
    representative_revoked_at: datetime | None = None


@dataclass(frozen=True)
class HopVerdict:
    mandate_id: str
    reasons: tuple[str, ...]

    @property
    def holds(self) -> bool:
        return not self.reasons


def _own_reasons(ancestors: Sequence[Hop], hop: Hop, principal: str, at: datetime) -> list[str]:
    """The rules between ``hop`` and its ancestors (not whether the ancestors hold)."""
    reasons: list[str] = []
    holders = {a.grantee_certificate_sha256 for a in ancestors}
    holders.add((ancestors[0] if ancestors else hop).grantor_certificate_sha256)
    if (
        hop.mandate_id in {a.mandate_id for a in ancestors}
        or hop.grantee_certificate_sha256 in holders
    ):
        reasons.append("CHAIN_LOOP")
    if not hop.status.valid:
        reasons.append(hop.status.refusal or "AC_INVALID")
    if hop.status.revoked_at is not None and hop.status.revoked_at <= at:
        reasons.append("MANDATE_REVOKED")
    if hop.principal != principal:
        reasons.append("PRINCIPAL_MISMATCH")
    if not ancestors:
        if not hop.grantor_is_representative:
            reasons.append("GRANTOR_NOT_REPRESENTATIVE")
        revoked = hop.representative_revoked_at
        if revoked is not None and revoked <= at:
            reasons.append("REPRESENTATIVE_CERT_REVOKED")
    else:
        parent = ancestors[-1]
        if hop.grantor_certificate_sha256 != parent.grantee_certificate_sha256:
            reasons.append("GRANTOR_NOT_PARENT_GRANTEE")
        reasons.extend(parent.scope.escalations_of(hop.scope))
    return reasons


def judge_hop(
    ancestors: Sequence[Hop], hop: Hop, *, principal: str, at: datetime, proposed: bool = False
) -> HopVerdict:
    """Judge one hop under its ``ancestors`` (root first; none for a root) at ``at``.

    The one place the rules between hops are written. Reason codes, in this order for
    a stored hop (a proposed one lists the chain's state first: see below):

    * ``CHAIN_LOOP``: the hop's id or grantee already appears in the chain (the root's
      grantor included);
    * the hop's own AC status: its refusal code (``AC_*``), ``MANDATE_REVOKED``;
    * ``PRINCIPAL_MISMATCH``: the hop's principal is not the chain's ``principal``;
    * a root: ``GRANTOR_NOT_REPRESENTATIVE`` (not granted by a representative whose
      certificate was valid at grant time), ``REPRESENTATIVE_CERT_REVOKED`` (that
      certificate revoked by ``at``);
    * a child: ``GRANTOR_NOT_PARENT_GRANTEE`` (granted by someone other than the
      parent's holder), then the parent's ``Scope.escalations_of`` codes
      (``SUBDELEGATION_NOT_ALLOWED``, ``DEPTH_EXCEEDED``, ``SCOPE_*_NOT_GRANTED``,
      ``SCOPE_AMOUNT_EXCEEDED``, ``SCOPE_VALIDITY_EXCEEDED``);
    * an ancestor that does not hold at ``at``: ``PARENT_INVALID`` for a stored hop; for
      a ``proposed`` one ``ANCESTOR_REVOKED`` when an ancestor is revoked by ``at``,
      else ``PARENT_INVALID``;
    * ``proposed`` only (a grant made at ``at``): ``PARENT_NOT_YET_VALID`` /
      ``PARENT_EXPIRED`` (the parent is not in force at ``at``) and ``MANDATE_EXPIRED``
      (the hop's own validity has ended by ``at``). A stored chain needs neither: a
      child's window lies within its parent's, and the leaf's is judged with the purpose.

    A proposed hop's codes come in the order a grantor can act on them
    (:data:`PROPOSED_ORDER`: the chain it would join, then who signed, then the scope,
    then its own validity), so the first is the refusal's code.
    """
    reasons = _own_reasons(ancestors, hop, principal, at)
    failing = [a for i, a in enumerate(ancestors) if _own_reasons(ancestors[:i], a, principal, at)]
    if failing:
        # A child cannot stand on a parent that does not.
        revoked = any(
            a.status.revoked_at is not None and a.status.revoked_at <= at for a in failing
        )
        reasons.append("ANCESTOR_REVOKED" if proposed and revoked else "PARENT_INVALID")
    if proposed:
        if ancestors:
            parent = ancestors[-1].scope
            if at < parent.not_before:
                reasons.append("PARENT_NOT_YET_VALID")
            if at >= parent.not_after:
                reasons.append("PARENT_EXPIRED")
        if hop.scope.not_after <= at:
            reasons.append("MANDATE_EXPIRED")
        reasons.sort(key=_proposed_rank)  # stable: escalations keep their order
    return HopVerdict(hop.mandate_id, tuple(dict.fromkeys(reasons)))


# A proposed hop's codes first by this order; others (the escalations) next; then the
# hop's own expiry.
PROPOSED_ORDER = (
    "CHAIN_LOOP",
    "PRINCIPAL_MISMATCH",
    "ANCESTOR_REVOKED",
    "PARENT_INVALID",
    "PARENT_NOT_YET_VALID",
    "PARENT_EXPIRED",
    "GRANTOR_NOT_REPRESENTATIVE",
    "REPRESENTATIVE_CERT_REVOKED",
    "GRANTOR_NOT_PARENT_GRANTEE",
)


def _proposed_rank(code: str) -> int:
    if code == "MANDATE_EXPIRED":
        return len(PROPOSED_ORDER) + 1
    return PROPOSED_ORDER.index(code) if code in PROPOSED_ORDER else len(PROPOSED_ORDER)


@dataclass(frozen=True)
class ChainVerdict:
    """The verdict on a chain for a purpose: every hop, and the purpose itself."""

    hops: tuple[HopVerdict, ...]
    reasons: tuple[str, ...]  # chain-level reasons (empty chain, holder, purpose)

    @property
    def holds(self) -> bool:
        return not self.reasons and all(h.holds for h in self.hops)

    def codes(self) -> tuple[str, ...]:
        """Every reason code, chain-level first, without repeats."""
        seen = dict.fromkeys(self.reasons)
        for hop in self.hops:
            seen.update(dict.fromkeys(hop.reasons))
        return tuple(seen)


def evaluate_chain(
    chain: Sequence[Hop], purpose: Purpose, *, signer_certificate_sha256: str, principal: str
) -> ChainVerdict:
    """Judge ``chain`` (root first) for ``purpose`` at ``purpose.at``.

    Every hop is judged by :func:`judge_hop` under the hops before it (its codes);
    chain-level codes: ``CHAIN_EMPTY``, ``HOLDER_MISMATCH`` and the leaf's purpose
    codes (``SCOPE_*``, ``MANDATE_EXPIRED``, ``MANDATE_NOT_YET_VALID``).
    """
    if not chain:
        return ChainVerdict((), ("CHAIN_EMPTY",))
    at = purpose.at
    verdicts = [
        judge_hop(chain[:index], hop, principal=principal, at=at) for index, hop in enumerate(chain)
    ]
    chain_reasons: list[str] = []
    leaf = chain[-1]
    if leaf.grantee_certificate_sha256 != signer_certificate_sha256:
        chain_reasons.append("HOLDER_MISMATCH")
    chain_reasons.extend(leaf.scope.uncovered(purpose))
    return ChainVerdict(tuple(verdicts), tuple(dict.fromkeys(chain_reasons)))
