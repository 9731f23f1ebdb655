"""Chain evaluation (DESIGN §5): does a chain of mandates, root first, let its
leaf's holder act for the principal for this purpose at time T?

Each hop arrives already checked on its own (its attribute certificate validated
under the AA and its status at T known: :class:`HopStatus`); this module applies
the rules between hops and to the purpose, and reports every hop with every
reason it fails, so a relying party sees the whole picture, not the first error.
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


def evaluate_chain(chain: Sequence[Hop], purpose: Purpose, *, signer_certificate_sha256: str,
                   principal: str) -> ChainVerdict:
    """Judge ``chain`` (root first) for ``purpose`` at ``purpose.at``.

    Reason codes: ``CHAIN_EMPTY``, ``CHAIN_LOOP``, ``AC_*`` (from per-AC
    validation), ``MANDATE_REVOKED``, ``PRINCIPAL_MISMATCH``,
    ``GRANTOR_NOT_REPRESENTATIVE``, ``REPRESENTATIVE_CERT_REVOKED``,
    ``GRANTOR_NOT_PARENT_GRANTEE``, the scope escalation codes
    (``SUBDELEGATION_NOT_ALLOWED``, ``DEPTH_EXCEEDED``, ``SCOPE_*_NOT_GRANTED``,
    ``SCOPE_AMOUNT_EXCEEDED``, ``SCOPE_VALIDITY_EXCEEDED``), ``HOLDER_MISMATCH``
    and the leaf's purpose codes (``SCOPE_*``, ``MANDATE_EXPIRED``,
    ``MANDATE_NOT_YET_VALID``).
    """
    if not chain:
        return ChainVerdict((), ("CHAIN_EMPTY",))
    at = purpose.at
    verdicts = []
    seen_ids: set[str] = set()
    seen_holders: set[str] = {chain[0].grantor_certificate_sha256}
    for index, hop in enumerate(chain):
        reasons: list[str] = []
        if hop.mandate_id in seen_ids or hop.grantee_certificate_sha256 in seen_holders:
            reasons.append("CHAIN_LOOP")
        seen_ids.add(hop.mandate_id)
        seen_holders.add(hop.grantee_certificate_sha256)
        if not hop.status.valid:
            reasons.append(hop.status.refusal or "AC_INVALID")
        if hop.status.revoked_at is not None and hop.status.revoked_at <= at:
            reasons.append("MANDATE_REVOKED")
        if hop.principal != principal:
            reasons.append("PRINCIPAL_MISMATCH")
        if index == 0:
            if not hop.grantor_is_representative:
                reasons.append("GRANTOR_NOT_REPRESENTATIVE")
            revoked = hop.representative_revoked_at
            if revoked is not None and revoked <= at:
                reasons.append("REPRESENTATIVE_CERT_REVOKED")
        else:
            parent = chain[index - 1]
            if hop.grantor_certificate_sha256 != parent.grantee_certificate_sha256:
                reasons.append("GRANTOR_NOT_PARENT_GRANTEE")
            reasons.extend(parent.scope.escalations_of(hop.scope))
            if any(not v.holds for v in verdicts):
                # A child cannot stand on a parent that does not.
                reasons.append("PARENT_INVALID")
        verdicts.append(HopVerdict(hop.mandate_id, tuple(dict.fromkeys(reasons))))
    chain_reasons: list[str] = []
    leaf = chain[-1]
    if leaf.grantee_certificate_sha256 != signer_certificate_sha256:
        chain_reasons.append("HOLDER_MISMATCH")
    chain_reasons.extend(leaf.scope.uncovered(purpose))
    return ChainVerdict(tuple(verdicts), tuple(dict.fromkeys(chain_reasons)))
