"""Chain evaluation: every hop judged, every reason reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from helpers_delegation import bid_scope

from delegation.chain import Hop, HopStatus, evaluate_chain
from delegation.scope import BID, QUOTE, Purpose

CORP = "4011001098993"
REP, A, B, C = "r" * 64, "a" * 64, "b" * 64, "c" * 64
ENTITY = "国土交通省関東地方整備局"


def chain(depth: int = 3, **leaf_changes) -> list[Hop]:
    """Representative -> A -> B -> C, each within its parent."""
    holders = [REP, A, B, C][: depth + 1]
    hops = []
    for i in range(depth):
        scope = bid_scope(days=30 - i, max_depth=depth - 1 - i,
                          amount_limit_jpy=100_000_000 - i)
        hops.append(Hop(f"m{i}", CORP, holders[i], holders[i + 1], scope,
                        grantor_is_representative=i == 0))
    if leaf_changes:
        from dataclasses import replace

        hops[-1] = replace(hops[-1], **leaf_changes)
    return hops


def purpose(**changes) -> Purpose:
    fields = dict(action=BID, procuring_entity=ENTITY, case="R8-関東-001",
                  amount_jpy=50_000_000, at=datetime.now(UTC))
    fields.update(changes)
    return Purpose(**fields)


def codes(hops, p=None, signer=C):
    return evaluate_chain(hops, p or purpose(), signer_certificate_sha256=signer,
                          principal=CORP).codes()


def test_a_depth_three_chain_within_scope_holds():
    verdict = evaluate_chain(chain(), purpose(), signer_certificate_sha256=C, principal=CORP)
    assert verdict.holds and [h.mandate_id for h in verdict.hops] == ["m0", "m1", "m2"]


def test_each_refusal_has_its_code():
    hops = chain()
    assert codes(hops, signer=B) == ("HOLDER_MISMATCH",)
    assert codes(hops, purpose(action=QUOTE)) == ("SCOPE_ACTION_NOT_GRANTED",)
    assert codes(hops, purpose(amount_jpy=10**12)) == ("SCOPE_AMOUNT_EXCEEDED",)
    assert codes(hops, purpose(at=datetime.now(UTC) + timedelta(days=60))) == (
        "MANDATE_EXPIRED",)
    assert codes([]) == ("CHAIN_EMPTY",)


def test_escalation_depth_and_sub_delegation_are_refused():
    escalated = chain(scope=bid_scope(days=30, max_depth=0, amount_limit_jpy=10**12))
    assert "SCOPE_AMOUNT_EXCEEDED" in codes(escalated)
    from dataclasses import replace

    hops = chain()
    hops[1] = replace(hops[1], scope=bid_scope(days=29, max_depth=0))
    assert "SUBDELEGATION_NOT_ALLOWED" in codes(hops)
    hops = chain()
    hops[2] = replace(hops[2], scope=bid_scope(days=28, max_depth=1))
    assert "DEPTH_EXCEEDED" in codes(hops)


def test_revocation_principal_grantor_and_loops():
    from dataclasses import replace

    now = datetime.now(UTC)
    hops = chain()
    hops[0] = replace(hops[0], status=HopStatus(revoked_at=now - timedelta(minutes=1)))
    verdict = evaluate_chain(hops, purpose(), signer_certificate_sha256=C, principal=CORP)
    assert verdict.hops[0].reasons == ("MANDATE_REVOKED",)
    assert verdict.hops[2].reasons == ("PARENT_INVALID",)  # descendants fall with it
    future = chain()
    future[0] = replace(future[0], status=HopStatus(revoked_at=now + timedelta(days=1)))
    assert codes(future) == ()  # not yet revoked at T
    hops = chain()
    hops[1] = replace(hops[1], principal="2120901007402")
    assert "PRINCIPAL_MISMATCH" in codes(hops)
    hops = chain()
    hops[0] = replace(hops[0], grantor_is_representative=False)
    assert "GRANTOR_NOT_REPRESENTATIVE" in codes(hops)
    hops = chain()
    hops[0] = replace(hops[0], representative_revoked_at=now - timedelta(days=1))
    assert "REPRESENTATIVE_CERT_REVOKED" in codes(hops)
    hops = chain()
    hops[2] = replace(hops[2], grantor_certificate_sha256=REP)
    assert "GRANTOR_NOT_PARENT_GRANTEE" in codes(hops)
    looping = chain()
    looping[2] = replace(looping[2], grantee_certificate_sha256=A)
    assert "CHAIN_LOOP" in codes(looping, signer=A)
    hops = chain()
    hops[1] = replace(hops[1], status=HopStatus(valid=False, refusal="AC_NOT_ISSUED_BY_AA"))
    assert "AC_NOT_ISSUED_BY_AA" in codes(hops)
