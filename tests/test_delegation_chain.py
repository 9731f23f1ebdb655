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
        scope = bid_scope(days=30 - i, max_depth=depth - 1 - i, amount_limit_jpy=100_000_000 - i)
        hops.append(
            Hop(f"m{i}", CORP, holders[i], holders[i + 1], scope, grantor_is_representative=i == 0)
        )
    if leaf_changes:
        from dataclasses import replace

        hops[-1] = replace(hops[-1], **leaf_changes)
    return hops


def purpose(**changes) -> Purpose:
    fields = dict(
        action=BID,
        procuring_entity=ENTITY,
        case="R8-関東-001",
        amount_jpy=50_000_000,
        at=datetime.now(UTC),
    )
    fields.update(changes)
    return Purpose(**fields)


def codes(hops, p=None, signer=C):
    return evaluate_chain(
        hops, p or purpose(), signer_certificate_sha256=signer, principal=CORP
    ).codes()


def test_a_depth_three_chain_within_scope_holds():
    verdict = evaluate_chain(chain(), purpose(), signer_certificate_sha256=C, principal=CORP)
    assert verdict.holds and [h.mandate_id for h in verdict.hops] == ["m0", "m1", "m2"]


def test_each_refusal_has_its_code():
    hops = chain()
    assert codes(hops, signer=B) == ("HOLDER_MISMATCH",)
    assert codes(hops, purpose(action=QUOTE)) == ("SCOPE_ACTION_NOT_GRANTED",)
    assert codes(hops, purpose(amount_jpy=10**12)) == ("SCOPE_AMOUNT_EXCEEDED",)
    assert codes(hops, purpose(at=datetime.now(UTC) + timedelta(days=60))) == ("MANDATE_EXPIRED",)
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


# -- judge_hop: the one rule for a proposed grant and for each stored hop (issue 10.3) ----

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def fixed_chain() -> list[Hop]:
    """REP -> A -> B at fixed times: m0 (depth 2, 1000 JPY) and m1 (depth 1, 500 JPY)."""

    def window(days: int, depth: int, amount: int):
        return bid_scope(
            days=1,
            not_before=NOW - timedelta(days=1),
            not_after=NOW + timedelta(days=days),
            max_depth=depth,
            amount_limit_jpy=amount,
        )

    return [
        Hop("m0", CORP, REP, A, window(30, 2, 1000), grantor_is_representative=True),
        Hop("m1", CORP, A, B, window(20, 1, 500)),
    ]


def proposed(grantor: str = B, grantee: str = C, **scope_changes) -> Hop:
    fields = dict(
        not_before=NOW - timedelta(hours=1),
        not_after=NOW + timedelta(days=10),
        max_depth=0,
        amount_limit_jpy=100,
    )
    fields.update(scope_changes)
    return Hop("new", CORP, grantor, grantee, bid_scope(**fields))


def judged(ancestors, hop, at=NOW, principal=CORP):
    from delegation.chain import judge_hop

    return judge_hop(ancestors, hop, principal=principal, at=at, proposed=True).reasons


def test_a_proposed_hop_within_its_parent_holds():
    assert judged(fixed_chain(), proposed()) == ()
    root = Hop("r", CORP, REP, A, bid_scope(), grantor_is_representative=True)
    assert judged([], root) == ()


def test_each_condition_of_a_proposed_hop_has_its_own_code():
    from dataclasses import replace

    chain_ = fixed_chain()
    assert judged(chain_, proposed(grantor=A)) == ("GRANTOR_NOT_PARENT_GRANTEE",)
    assert judged(chain_, replace(proposed(), principal="2120901007402")) == ("PRINCIPAL_MISMATCH",)
    assert judged(chain_, proposed(grantee=A)) == ("CHAIN_LOOP",)  # back to an ancestor
    assert judged(chain_, proposed(grantee=REP)) == ("CHAIN_LOOP",)  # to the representative
    assert judged(chain_, proposed(amount_limit_jpy=501)) == ("SCOPE_AMOUNT_EXCEEDED",)
    assert judged(chain_, proposed(amount_limit_jpy=None)) == ("SCOPE_AMOUNT_EXCEEDED",)
    assert judged(chain_, proposed(max_depth=1)) == ("DEPTH_EXCEEDED",)
    assert judged(chain_, proposed(not_after=NOW + timedelta(days=21))) == (
        "SCOPE_VALIDITY_EXCEEDED",
    )
    assert judged(chain_, proposed(procuring_entities=None)) == ("SCOPE_ENTITY_NOT_GRANTED",)
    leaf = replace(chain_[1], scope=replace(chain_[1].scope, max_depth=0))
    assert judged([chain_[0], leaf], proposed()) == ("SUBDELEGATION_NOT_ALLOWED",)
    # Time: the hop's own window already over, the parent's not begun or over.
    assert judged(
        chain_, proposed(not_before=NOW - timedelta(hours=2), not_after=NOW - timedelta(hours=1))
    ) == ("MANDATE_EXPIRED",)
    assert judged(chain_, proposed(), at=NOW - timedelta(days=2)) == ("PARENT_NOT_YET_VALID",)
    late = NOW + timedelta(days=20)
    assert judged(chain_, proposed(not_after=late), at=late) == (
        "PARENT_EXPIRED",
        "MANDATE_EXPIRED",
    )


def test_a_proposed_hop_under_a_failing_ancestor_is_refused_with_its_cause():
    from dataclasses import replace

    chain_ = fixed_chain()
    revoked = [
        replace(chain_[0], status=HopStatus(revoked_at=NOW - timedelta(seconds=1))),
        chain_[1],
    ]
    assert judged(revoked, proposed()) == ("ANCESTOR_REVOKED",)
    # A revocation after the grant's time does not count.
    later = [replace(chain_[0], status=HopStatus(revoked_at=NOW + timedelta(seconds=1))), chain_[1]]
    assert judged(later, proposed()) == ()
    rep_revoked = [replace(chain_[0], representative_revoked_at=NOW - timedelta(days=1)), chain_[1]]
    assert judged(rep_revoked, proposed()) == ("PARENT_INVALID",)
    root = Hop("r", CORP, REP, A, bid_scope())
    assert judged([], root) == ("GRANTOR_NOT_REPRESENTATIVE",)
    assert judged(
        [],
        replace(
            root, grantor_is_representative=True, representative_revoked_at=NOW - timedelta(days=1)
        ),
    ) == ("REPRESENTATIVE_CERT_REVOKED",)


def test_chain_evaluation_gives_each_stored_hop_the_verdict_judge_hop_gives():
    from dataclasses import replace

    from delegation.chain import judge_hop

    hops = [*fixed_chain(), replace(proposed(amount_limit_jpy=501), mandate_id="m2")]
    p = purpose(at=NOW, amount_jpy=10, case=None)
    verdict = evaluate_chain(hops, p, signer_certificate_sha256=C, principal=CORP)
    assert [h.reasons for h in verdict.hops] == [(), (), ("SCOPE_AMOUNT_EXCEEDED",)]
    assert [judge_hop(hops[:i], h, principal=CORP, at=NOW) for i, h in enumerate(hops)] == list(
        verdict.hops
    )
    # A stored hop under a revoked ancestor reads PARENT_INVALID (the ancestor says why).
    hops[0] = replace(hops[0], status=HopStatus(revoked_at=NOW - timedelta(seconds=1)))
    verdict = evaluate_chain(hops, p, signer_certificate_sha256=C, principal=CORP)
    assert [h.reasons for h in verdict.hops] == [
        ("MANDATE_REVOKED",),
        ("PARENT_INVALID",),
        ("SCOPE_AMOUNT_EXCEEDED", "PARENT_INVALID"),
    ]


def test_a_proposed_hop_lists_the_chains_state_before_the_signer_and_the_scope():
    """The first code is the refusal's: the parent's state first, then who signed, then
    the scope, then the hop's own validity (the order the service always answered in)."""
    late = NOW + timedelta(days=20)
    assert judged(
        fixed_chain(),
        proposed(grantor=A, amount_limit_jpy=501, not_after=late + timedelta(days=1)),
        at=late,
    ) == (
        "PARENT_EXPIRED",
        "GRANTOR_NOT_PARENT_GRANTEE",
        "SCOPE_AMOUNT_EXCEEDED",
        "SCOPE_VALIDITY_EXCEEDED",
    )
    from dataclasses import replace

    chain_ = fixed_chain()
    chain_[0] = replace(chain_[0], status=HopStatus(revoked_at=NOW - timedelta(seconds=1)))
    assert judged(
        chain_,
        proposed(
            grantor=A, not_after=NOW - timedelta(seconds=1), not_before=NOW - timedelta(hours=1)
        ),
    ) == ("ANCESTOR_REVOKED", "GRANTOR_NOT_PARENT_GRANTEE", "MANDATE_EXPIRED")
