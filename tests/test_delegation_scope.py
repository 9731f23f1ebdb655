"""Scope algebra of a mandate: properties (hypothesis) and one example per reason code."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delegation.scope import (
    ACTION_LABELS,
    BID,
    CONTRACT,
    E_APPLICATION_ANY,
    INVOICE,
    QUOTE,
    Purpose,
    Scope,
    ScopeError,
    validate_action,
)

BASE = datetime(2026, 4, 1, tzinfo=UTC)
PROCS = ["e-application:入札参加資格審査", "e-application:工事成績", "e-application:x"]
ACTIONS = [BID, QUOTE, CONTRACT, INVOICE, E_APPLICATION_ANY, *PROCS[:2]]
ENTITIES = ["国土交通省関東地方整備局", "防衛省", "東京都"]
CASES = ["R8-関東-001", "R8-関東-002", "R8-東京-017"]
KANTO, CASE1 = ENTITIES[0], CASES[0]


def h(n: int) -> datetime:
    return BASE + timedelta(hours=n)


def names(pool: list[str]) -> st.SearchStrategy[frozenset[str] | None]:
    return st.none() | st.frozensets(st.sampled_from(pool), min_size=1)


amounts = st.none() | st.sampled_from([1, 1000, 5000, 10_000])


@st.composite
def scopes(draw: st.DrawFn) -> Scope:
    start = draw(st.integers(0, 4))
    return Scope(
        draw(st.frozensets(st.sampled_from(ACTIONS), min_size=1)),
        draw(names(ENTITIES)),
        draw(names(CASES)),
        draw(amounts),
        h(start),
        h(start + draw(st.integers(1, 4))),
        draw(st.integers(0, 3)),
    )


def _within(draw: st.DrawFn, pool: frozenset[str] | None, universe: list[str]):
    return draw(names(universe) if pool is None else names(sorted(pool)).filter(bool))


@st.composite
def narrower(draw: st.DrawFn, s: Scope) -> Scope:
    """A scope within ``s`` (often ``s`` itself in some dimensions)."""
    pool = set(s.actions) | (set(PROCS) if E_APPLICATION_ANY in s.actions else set())
    lo = s.not_before + timedelta(hours=draw(st.integers(0, 1)))
    hi = s.not_after - timedelta(hours=draw(st.integers(0, 1)))
    if lo >= hi:
        lo, hi = s.not_before, s.not_after
    amount = s.amount_limit_jpy
    return Scope(
        draw(st.frozensets(st.sampled_from(sorted(pool)), min_size=1)),
        _within(draw, s.procuring_entities, ENTITIES),
        _within(draw, s.cases, CASES),
        draw(amounts if amount is None else st.integers(1, amount)),
        lo,
        hi,
        draw(st.integers(0, s.max_depth)),
    )


@st.composite
def wider(draw: st.DrawFn, s: Scope) -> Scope:
    """A scope containing ``s``."""

    def grow(pool: frozenset[str] | None, universe: list[str]) -> frozenset[str] | None:
        if pool is None or draw(st.booleans()):
            return None
        return pool | draw(st.frozensets(st.sampled_from(universe)))

    amount = s.amount_limit_jpy
    return Scope(
        s.actions | draw(st.frozensets(st.sampled_from(ACTIONS))),
        grow(s.procuring_entities, ENTITIES),
        grow(s.cases, CASES),
        None if amount is None else draw(st.none() | st.integers(amount, amount + 10)),
        s.not_before - timedelta(hours=draw(st.integers(0, 2))),
        s.not_after + timedelta(hours=draw(st.integers(0, 2))),
        s.max_depth + draw(st.integers(0, 2)),
    )


@st.composite
def tweak(draw: st.DrawFn, s: Scope) -> Scope:
    """``s`` with one dimension taken from another scope."""
    o = draw(scopes())
    key = draw(
        st.sampled_from(
            [
                "actions",
                "procuring_entities",
                "cases",
                "amount_limit_jpy",
                "max_depth",
                "not_before",
            ]
        )
    )
    if key == "not_before":
        return replace(s, not_before=o.not_before, not_after=o.not_after)
    return replace(s, **{key: getattr(o, key)})


def related(a: Scope) -> st.SearchStrategy[Scope]:
    return scopes() | narrower(a) | wider(a) | tweak(a)


pairs = scopes().flatmap(lambda a: st.tuples(st.just(a), related(a)))


purposes = st.builds(
    Purpose,
    st.sampled_from([BID, QUOTE, CONTRACT, INVOICE, *PROCS]),
    st.none() | st.sampled_from(ENTITIES),
    st.none() | st.sampled_from(CASES),
    st.none() | st.integers(0, 12_000),
    st.integers(-1, 10).map(h),
)


@st.composite
def purpose_for(draw: st.DrawFn, s: Scope) -> Purpose:
    """A purpose ``s`` most likely covers."""
    action = draw(st.sampled_from(sorted(s.actions)))
    if action == E_APPLICATION_ANY:
        action = draw(st.sampled_from(PROCS))
    pick = lambda pool: draw(st.sampled_from(sorted(pool))) if pool else None  # noqa: E731
    hours = int((s.not_after - s.not_before) / timedelta(hours=1))
    return Purpose(
        action,
        pick(s.procuring_entities),
        pick(s.cases),
        draw(st.none() | st.integers(0, s.amount_limit_jpy or 12_000)),
        s.not_before + timedelta(hours=draw(st.integers(0, hours - 1))),
    )


@given(scopes())
def test_contains_is_reflexive(a: Scope) -> None:
    assert a.contains(a)
    assert a.intersection(a) == a


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)  # a loaded machine
@given(st.data())
def test_narrower_and_wider_are_contained_and_contains_is_transitive(data: st.DataObject) -> None:
    a = data.draw(scopes())
    b = data.draw(narrower(a))
    c = data.draw(narrower(b))
    assert a.contains(b) and b.contains(c) and a.contains(c)
    assert data.draw(wider(a)).contains(c)
    x, y = data.draw(related(c)), data.draw(related(c))
    if x.contains(c) and c.contains(y):
        assert x.contains(y)


@given(pairs)
def test_contains_is_antisymmetric(ab: tuple[Scope, Scope]) -> None:
    a, b = ab
    if E_APPLICATION_ANY in a.actions:  # a redundant procedure changes nothing
        assert replace(a, actions=a.actions | {PROCS[0]}) == a
    if a.contains(b) and b.contains(a):
        assert a == b and hash(a) == hash(b)


@given(st.data())
def test_intersection_is_the_greatest_lower_bound(data: st.DataObject) -> None:
    c = data.draw(scopes())
    a = data.draw(wider(c) | related(c))
    b = data.draw(wider(c) | related(a))
    meet = a.intersection(b)
    assert meet == b.intersection(a)
    if meet is not None:
        assert a.contains(meet) and b.contains(meet)
    if a.contains(c) and b.contains(c):
        assert meet is not None and meet.contains(c)


@given(pairs)
def test_contains_iff_intersection_is_the_other(ab: tuple[Scope, Scope]) -> None:
    a, b = ab
    assert a.contains(b) == (a.intersection(b) == b)


@given(st.data())
def test_coverage_is_monotone_and_intersection_covers_exactly_the_common(
    data: st.DataObject,
) -> None:
    a = data.draw(scopes())
    b = data.draw(related(a))
    p = data.draw(purposes | purpose_for(b))
    assert a.covers(p) == (a.uncovered(p) == ())
    if a.contains(b) and b.covers(p):
        assert a.covers(p)
    meet = a.intersection(b)
    assert (meet is not None and meet.covers(p)) == (a.covers(p) and b.covers(p))


@given(pairs)
def test_escalations_are_exactly_containment_with_a_lower_depth(pc: tuple[Scope, Scope]) -> None:
    parent, child = pc
    ok = parent.contains(child) and child.max_depth < parent.max_depth
    assert (parent.escalations_of(child) == ()) == ok


@given(scopes())
def test_json_round_trip(a: Scope) -> None:
    doc = a.to_json()
    assert json.loads(json.dumps(doc, ensure_ascii=False)) == doc
    assert Scope.from_json(json.loads(json.dumps(doc))) == a


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@given(st.data())
def test_from_json_raises_only_scope_error(data: st.DataObject) -> None:
    doc = data.draw(scopes()).to_json()
    key = data.draw(st.sampled_from(sorted(doc)))
    doc[key] = data.draw(json_values)
    if data.draw(st.booleans()):
        del doc[key]
    bad = data.draw(st.just(doc) | json_values)
    try:
        Scope.from_json(bad)
    except ScopeError as exc:
        assert exc.code in ("SCOPE_INVALID", "SCOPE_ACTION_UNKNOWN")


# -- examples ---------------------------------------------------------------------------


def scope(**kw: object) -> Scope:
    base: dict[str, object] = dict(
        actions={BID, QUOTE},
        procuring_entities={KANTO},
        cases={CASE1},
        amount_limit_jpy=50_000_000,
        not_before=h(0),
        not_after=h(24 * 365),
        max_depth=1,
    )
    return Scope(**{**base, **kw})  # type: ignore[arg-type]


def purpose(**kw: object) -> Purpose:
    base: dict[str, object] = dict(
        action=BID, procuring_entity=KANTO, case=CASE1, amount_jpy=12_000_000, at=h(10)
    )
    return Purpose(**{**base, **kw})  # type: ignore[arg-type]


def test_actions_and_labels() -> None:
    assert [ACTION_LABELS[a] for a in (BID, QUOTE, CONTRACT, INVOICE, "e-application")] == [
        "入札",
        "見積",
        "契約",
        "請求",
        "電子申請",
    ]
    assert validate_action(PROCS[0]) == PROCS[0]
    assert validate_action(E_APPLICATION_ANY) == E_APPLICATION_ANY
    for bad in (
        "sign",
        "BID",
        "e-application:",
        "e-application:a b",
        "e-application:a*",
        "e-application:\u3000",
        "",
        None,
        3,
    ):
        with pytest.raises(ScopeError) as exc:
            validate_action(bad)
        assert exc.value.code == "SCOPE_ACTION_UNKNOWN"


def test_wildcard_absorbs_specific_procedures() -> None:
    s = scope(actions={BID, E_APPLICATION_ANY, PROCS[0]})
    assert s.actions == {BID, E_APPLICATION_ANY}
    assert s == scope(actions={BID, E_APPLICATION_ANY})
    only = scope(actions={PROCS[0]})
    assert s.contains(only) and not only.contains(s)
    assert s.intersection(scope(actions={PROCS[0], CONTRACT})) == only
    assert s.covers(purpose(action=PROCS[2]))


@pytest.mark.parametrize(
    "kw",
    [
        dict(actions=set()),
        dict(actions="bid"),
        dict(procuring_entities=set()),
        dict(cases=frozenset()),
        dict(cases={" R8-関東-001"}),
        dict(amount_limit_jpy=-1),
        dict(amount_limit_jpy=True),
        dict(amount_limit_jpy=1.5),
        dict(not_after=h(0)),
        dict(not_before=datetime(2026, 4, 1)),
        dict(max_depth=-1),
        dict(max_depth=None),
        # One validator for every scope field (issue 10.3): what a mandate AC cannot carry.
        dict(amount_limit_jpy=0),
        dict(amount_limit_jpy=2**53),
        dict(max_depth=2**53),
        dict(cases={"R8-\x00関東"}),
        dict(procuring_entities={"防衛省\u200b"}),
        dict(cases={"R8\n001"}),
        dict(cases={"x" * 301}),
        dict(cases={f"R8-{n:03d}" for n in range(101)}),
    ],
)
def test_invalid_scopes(kw: dict[str, object]) -> None:
    with pytest.raises(ScopeError) as exc:
        scope(**kw)
    assert exc.value.code == "SCOPE_INVALID"


def test_escalation_codes() -> None:
    parent = scope(max_depth=2)
    assert parent.escalations_of(scope(max_depth=1)) == ()
    assert scope(max_depth=0).escalations_of(scope(max_depth=0)) == ("SUBDELEGATION_NOT_ALLOWED",)
    assert parent.escalations_of(scope(max_depth=2)) == ("DEPTH_EXCEEDED",)
    child = scope(
        actions={BID, CONTRACT},
        procuring_entities=None,
        cases={CASE1, CASES[1]},
        amount_limit_jpy=None,
        not_after=h(24 * 366),
        max_depth=0,
    )
    assert parent.escalations_of(child) == (
        "SCOPE_ACTION_NOT_GRANTED",
        "SCOPE_ENTITY_NOT_GRANTED",
        "SCOPE_CASE_NOT_GRANTED",
        "SCOPE_AMOUNT_EXCEEDED",
        "SCOPE_VALIDITY_EXCEEDED",
    )
    assert scope(max_depth=0).escalations_of(child)[:2] == (
        "SUBDELEGATION_NOT_ALLOWED",
        "SCOPE_ACTION_NOT_GRANTED",
    )
    assert parent.escalations_of(scope(not_before=h(-1), max_depth=0)) == (
        "SCOPE_VALIDITY_EXCEEDED",
    )


def test_uncovered_codes() -> None:
    s = scope()
    assert s.covers(purpose())
    assert s.uncovered(purpose(action=CONTRACT)) == ("SCOPE_ACTION_NOT_GRANTED",)
    assert s.uncovered(purpose(procuring_entity="防衛省")) == ("SCOPE_ENTITY_NOT_GRANTED",)
    assert s.uncovered(purpose(case="R8-関東-999")) == ("SCOPE_CASE_NOT_GRANTED",)
    assert s.uncovered(purpose(amount_jpy=50_000_001)) == ("SCOPE_AMOUNT_EXCEEDED",)
    assert s.covers(purpose(amount_jpy=50_000_000))
    assert s.uncovered(purpose(at=h(-1))) == ("MANDATE_NOT_YET_VALID",)
    assert s.uncovered(purpose(at=h(24 * 365))) == ("MANDATE_EXPIRED",)
    assert s.uncovered(purpose(action=INVOICE, procuring_entity=None, case=None, at=h(-1))) == (
        "SCOPE_ACTION_NOT_GRANTED",
        "SCOPE_ENTITY_NOT_GRANTED",
        "SCOPE_CASE_NOT_GRANTED",
        "MANDATE_NOT_YET_VALID",
    )
    assert s.covers(purpose(amount_jpy=None))  # no amount stated: the limit does not apply
    anyone = scope(procuring_entities=None, cases=None, amount_limit_jpy=None)
    assert anyone.covers(purpose(procuring_entity=None, case=None, amount_jpy=10**15))


@pytest.mark.parametrize(
    "kw",
    [
        dict(action=E_APPLICATION_ANY),
        dict(amount_jpy=-5),
        dict(case=""),
        dict(at=datetime(2026, 4, 1)),
    ],
)
def test_invalid_purposes(kw: dict[str, object]) -> None:
    with pytest.raises(ScopeError):
        purpose(**kw)


def test_intersection_examples() -> None:
    a = scope(actions={BID, E_APPLICATION_ANY}, procuring_entities=None, max_depth=3)
    b = scope(actions={PROCS[0], QUOTE}, amount_limit_jpy=None, not_before=h(5), max_depth=0)
    assert a.intersection(b) == scope(actions={PROCS[0]}, not_before=h(5), max_depth=0)
    assert a.intersection(scope(actions={CONTRACT})) is None
    assert a.intersection(scope(not_before=h(24 * 365), not_after=h(24 * 400))) is None
    assert scope().intersection(scope(procuring_entities={"防衛省"})) is None


def test_json_example_with_utc_normalisation() -> None:
    jst = timezone(timedelta(hours=9))
    s = scope(
        actions={QUOTE, BID, E_APPLICATION_ANY},
        cases=None,
        not_before=datetime(2026, 4, 1, 9, tzinfo=jst),
        not_after=h(1) + timedelta(microseconds=5),
    )
    assert s.not_before.tzinfo is UTC and s.not_before == h(0)
    assert s.to_json() == {
        "actions": [BID, E_APPLICATION_ANY, QUOTE],
        "procuring_entities": [KANTO],
        "cases": None,
        "amount_limit_jpy": 50_000_000,
        "not_before": "2026-04-01T00:00:00Z",
        "not_after": "2026-04-01T01:00:00.000005Z",
        "max_depth": 1,
    }
    assert Scope.from_json(s.to_json()) == s
    with pytest.raises(ScopeError):
        Scope.from_json({k: v for k, v in s.to_json().items() if k != "cases"})


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"actions": "bid"},
        {"actions": [1]},
        {"cases": []},
        {"cases": "R8"},
        {"amount_limit_jpy": "100"},
        {"max_depth": 1.0},
        {"not_before": "2026-04-01T00:00:00+09:00"},
        {"not_before": "2026-04-01"},
        {"not_before": 0},
        {"not_after": "2026-02-30T00:00:00Z"},
        {"not_after": "２０２６-04-01T00:00:00Z"},
        None,
        [],
        "{}",
    ],
)
def test_from_json_rejects(change: object) -> None:
    doc = {**scope().to_json(), **change} if isinstance(change, dict) else change
    with pytest.raises(ScopeError) as exc:
        Scope.from_json(doc)
    assert exc.value.code == "SCOPE_INVALID"
    with pytest.raises(ScopeError) as exc:
        Scope.from_json({**scope().to_json(), "actions": ["sign"]})
    assert exc.value.code == "SCOPE_ACTION_UNKNOWN"


def test_the_bounds_of_a_scope_are_inclusive() -> None:
    s = scope(
        amount_limit_jpy=1,
        max_depth=2**53 - 1,
        cases={"x" * 300},
        procuring_entities={f"庁{n}" for n in range(100)},
    )
    assert s.amount_limit_jpy == 1 and s.max_depth == 9007199254740991
    assert scope(amount_limit_jpy=2**53 - 1).amount_limit_jpy == 9007199254740991
    # Full-width spaces inside a name are a name's, not a control character.
    assert scope(cases={"R8\u3000関東"}).cases == {"R8\u3000関東"}


def test_check_text_refuses_each_kind_of_bad_text() -> None:
    from delegation.scope import check_text

    assert check_text("  山田\u3000太郎 ", "name", padded=True) == "  山田\u3000太郎 "
    for bad, padded in (
        (" x", False),
        ("", True),
        ("\u3000", True),
        ("a\tb", True),
        ("a\u202eb", True),
        ("a\ue000", True),
        (7, True),
        ("y" * 11, True),
    ):
        with pytest.raises(ScopeError) as exc:
            check_text(bad, "name", padded=padded, max_length=10)
        assert exc.value.code == "SCOPE_INVALID", bad


def test_only_whole_second_scopes_are_certifiable() -> None:
    scope().check_certifiable()
    for changes in (
        dict(not_before=h(0) + timedelta(microseconds=1)),
        dict(not_after=h(24) + timedelta(milliseconds=500)),
    ):
        with pytest.raises(ScopeError) as exc:
            scope(**changes).check_certifiable()
        assert exc.value.code == "SCOPE_INVALID"


def test_a_purpose_may_state_any_amount_and_is_judged_by_it() -> None:
    """Only what a mandate certifies is bounded; an amount asked about is answered."""
    huge = 10**20
    assert scope(amount_limit_jpy=None).covers(purpose(amount_jpy=huge))
    assert scope().uncovered(purpose(amount_jpy=huge)) == ("SCOPE_AMOUNT_EXCEEDED",)
    with pytest.raises(ScopeError):
        purpose(amount_jpy=-1)
