"""The scope of a mandate (電子委任状) and its algebra: containment, intersection, coverage.

A scope grants actions, optionally restricted to named procuring entities and cases,
up to an amount, within a half-open validity window [not_before, not_after), with a
sub-delegation depth. Representations are canonical, so ``==`` is semantic equality:

* actions: ``"e-application:*"`` stands for every e-application procedure, so a
  specific ``"e-application:<procedure>"`` next to it is redundant and is dropped;
* times are normalised to UTC;
* ``None`` means "any" (entities, cases) or "no limit" (amount); an empty restriction
  is invalid, since it would grant nothing, and so is an amount limit of 0.

Every text a mandate carries is judged by one rule, :func:`check_text` (non-empty, no
control characters, bounded length; scope names also without outer spaces), and every
number by :func:`check_count`, here and in :mod:`delegation.mandate_terms` and
:mod:`delegation.instruction`: a grant instruction the attribute authority could not
certify is refused when it is read, before any certificate is validated (issue 10.3).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from dairi import DairiError

BID = "bid"
QUOTE = "quote"
CONTRACT = "contract"
INVOICE = "invoice"
E_APPLICATION = "e-application"
E_APPLICATION_PREFIX = "e-application:"
E_APPLICATION_ANY = "e-application:*"
BASE_ACTIONS = frozenset({BID, QUOTE, CONTRACT, INVOICE})
ACTION_LABELS: Mapping[str, str] = MappingProxyType(
    {
        BID: "入札",
        QUOTE: "見積",
        CONTRACT: "契約",
        INVOICE: "請求",
        E_APPLICATION: "電子申請",
    }
)
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?Z")
# Bounds of what a mandate may carry. Names fit the service's columns (300 characters);
# a restriction lists at most NAMES_MAX names; integers stay within what RFC 8785
# (canonical JSON, the instruction's form) writes exactly.
NAME_MAX_LENGTH = 300
NAMES_MAX = 100
JSON_INTEGER_MAX = 2**53 - 1
_JSON_KEYS = frozenset(
    {
        "actions",
        "procuring_entities",
        "cases",
        "amount_limit_jpy",
        "not_before",
        "not_after",
        "max_depth",
    }
)


class ScopeError(DairiError, ValueError):
    """A malformed scope, purpose or action name."""

    code = "SCOPE_INVALID"


def check_text(
    value: object, what: str, *, max_length: int = NAME_MAX_LENGTH, padded: bool = False
) -> str:
    """Return ``value`` if it is a text a mandate may carry; raise ScopeError SCOPE_INVALID.

    The one rule for every name in a scope, an instruction and a mandate certificate: a
    non-blank string of at most ``max_length`` characters without control characters
    (Unicode category C: controls, format characters, surrogates, private use,
    unassigned), and, unless ``padded`` (a person's or corporation's name as written),
    without leading or trailing white space. Full-width spaces inside Japanese names are
    fine.
    """
    if not isinstance(value, str) or not value.strip():
        raise ScopeError(f"{what} must be a non-empty string")
    if not padded and value.strip() != value:
        raise ScopeError(f"{what} must not begin or end with white space")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise ScopeError(f"{what} must not contain control characters")
    if len(value) > max_length:
        raise ScopeError(f"{what} is longer than {max_length} characters")
    return value


def check_count(
    value: object, what: str, *, minimum: int = 0, maximum: int | None = JSON_INTEGER_MAX
) -> int:
    """Return ``value`` if it is an integer from ``minimum`` to ``maximum`` (default
    :data:`JSON_INTEGER_MAX`; None: no bound), not a bool; raise ScopeError SCOPE_INVALID
    if not."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bound = "" if maximum is None else f" to {maximum}"
        raise ScopeError(f"{what} must be an integer from {minimum}{bound}")
    return value


def check_amount_limit(value: object) -> int | None:
    """An amount limit is None (no limit) or a positive integer: a limit of 0 would grant
    nothing, like an empty restriction. Raises ScopeError SCOPE_INVALID."""
    return None if value is None else check_count(value, "amount_limit_jpy", minimum=1)


def validate_action(text: object) -> str:
    """Return ``text`` if it names an action; raise ScopeError SCOPE_ACTION_UNKNOWN if not.

    Actions: bid, quote, contract, invoice, ``e-application:<procedure>`` (procedure
    non-empty and printable, no whitespace, no ``*``, at most NAME_MAX_LENGTH characters
    in all) and the wildcard ``e-application:*``.
    """
    if isinstance(text, str):
        if text in BASE_ACTIONS or text == E_APPLICATION_ANY:
            return text
        if text.startswith(E_APPLICATION_PREFIX) and len(text) <= NAME_MAX_LENGTH:
            proc = text[len(E_APPLICATION_PREFIX) :]
            if (
                proc
                and proc.isprintable()
                and "*" not in proc
                and not any(c.isspace() for c in proc)
            ):
                return text
    raise ScopeError(f"unknown action: {text!r}", "SCOPE_ACTION_UNKNOWN")


def _is_e_application(action: str) -> bool:
    return action.startswith(E_APPLICATION_PREFIX)


def _canonical_actions(actions: set[str] | frozenset[str]) -> frozenset[str]:
    if E_APPLICATION_ANY in actions:
        return frozenset(a for a in actions if a == E_APPLICATION_ANY or not _is_e_application(a))
    return frozenset(actions)


def _action_granted(actions: frozenset[str], action: str) -> bool:
    return action in actions or (_is_e_application(action) and E_APPLICATION_ANY in actions)


def _names(value: object, what: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, (frozenset, set, list, tuple)) or not value:
        raise ScopeError(f"{what} must be None or a non-empty set of names")
    if len(value) > NAMES_MAX:
        raise ScopeError(f"{what} lists more than {NAMES_MAX} names")
    for name in value:
        check_text(name, f"{what}: each name")
    return frozenset(value)


def _utc(value: object, what: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ScopeError(f"{what} must be a timezone-aware datetime")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ScopeError(f"{what} is out of range") from exc


def _time_json(t: datetime) -> str:
    return t.replace(tzinfo=None).isoformat() + "Z"


def _time_from_json(value: object, what: str) -> datetime:
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise ScopeError(f"{what} must be an ISO 8601 UTC time like 2026-04-01T00:00:00Z")
    try:
        return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)
    except ValueError as exc:
        raise ScopeError(f"{what} is not a valid time") from exc


@dataclass(frozen=True)
class Purpose:
    """One act to be authorised: an action (never the wildcard) for an entity and case,
    for an amount, at a time. ``None`` entity/case/amount means "not stated".

    Raises ScopeError (SCOPE_ACTION_UNKNOWN, or SCOPE_INVALID) when malformed.
    """

    action: str
    procuring_entity: str | None
    case: str | None
    amount_jpy: int | None
    at: datetime

    def __post_init__(self) -> None:
        if validate_action(self.action) == E_APPLICATION_ANY:
            raise ScopeError("a purpose names one concrete action, not a wildcard")
        for what, value in (("procuring_entity", self.procuring_entity), ("case", self.case)):
            if value is not None:
                _names([value], what)
        if self.amount_jpy is not None:
            # A purpose is asked, never certified: any amount is judged (and exceeds).
            check_count(self.amount_jpy, "amount_jpy", maximum=None)
        object.__setattr__(self, "at", _utc(self.at, "at"))


@dataclass(frozen=True)
class Scope:
    """What a mandate grants. Raises ScopeError (SCOPE_INVALID, or SCOPE_ACTION_UNKNOWN
    for an unknown action) when malformed; canonicalises actions and times (see module)."""

    actions: frozenset[str]
    procuring_entities: frozenset[str] | None
    cases: frozenset[str] | None
    amount_limit_jpy: int | None
    not_before: datetime
    not_after: datetime
    max_depth: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.actions, (frozenset, set, list, tuple)) or not self.actions:
            raise ScopeError("actions must be a non-empty set of action names")
        if len(self.actions) > NAMES_MAX:
            raise ScopeError(f"actions lists more than {NAMES_MAX} actions")
        actions = _canonical_actions({validate_action(a) for a in self.actions})
        set_ = object.__setattr__
        set_(self, "actions", actions)
        set_(self, "procuring_entities", _names(self.procuring_entities, "procuring_entities"))
        set_(self, "cases", _names(self.cases, "cases"))
        check_amount_limit(self.amount_limit_jpy)
        set_(self, "not_before", _utc(self.not_before, "not_before"))
        set_(self, "not_after", _utc(self.not_after, "not_after"))
        if self.not_before >= self.not_after:
            raise ScopeError("not_before must be earlier than not_after")
        check_count(self.max_depth, "max_depth")

    def check_certifiable(self) -> None:
        """Raise ScopeError SCOPE_INVALID unless an attribute certificate can state this
        scope exactly: its validity times in whole seconds (an AC's GeneralizedTime has no
        fractions, RFC 5755 §4.2.6), so nothing signed is silently rounded."""
        if self.not_before.microsecond or self.not_after.microsecond:
            raise ScopeError("validity times are whole seconds (not_before, not_after)")

    def _excess(self, other: Scope) -> list[str]:
        """Codes of the dimensions (not depth) in which ``other`` exceeds ``self``."""
        codes = []
        if not all(_action_granted(self.actions, a) for a in other.actions):
            codes.append("SCOPE_ACTION_NOT_GRANTED")
        for code, mine, theirs in (
            ("SCOPE_ENTITY_NOT_GRANTED", self.procuring_entities, other.procuring_entities),
            ("SCOPE_CASE_NOT_GRANTED", self.cases, other.cases),
        ):
            if mine is not None and (theirs is None or not theirs <= mine):
                codes.append(code)
        if self.amount_limit_jpy is not None and (
            other.amount_limit_jpy is None or other.amount_limit_jpy > self.amount_limit_jpy
        ):
            codes.append("SCOPE_AMOUNT_EXCEEDED")
        if other.not_before < self.not_before or other.not_after > self.not_after:
            codes.append("SCOPE_VALIDITY_EXCEEDED")
        return codes

    def contains(self, other: Scope) -> bool:
        """Whether ``other`` is within ``self`` in every dimension, depth included."""
        return other.max_depth <= self.max_depth and not self._excess(other)

    def intersection(self, other: Scope) -> Scope | None:
        """The largest scope within both, or None when they share nothing in a dimension."""
        actions = set(self.actions & other.actions)
        for a, b in ((self.actions, other.actions), (other.actions, self.actions)):
            if E_APPLICATION_ANY in a:
                actions |= {x for x in b if _is_e_application(x)}
        entities = _meet(self.procuring_entities, other.procuring_entities)
        cases = _meet(self.cases, other.cases)
        not_before = max(self.not_before, other.not_before)
        not_after = min(self.not_after, other.not_after)
        if (
            not actions
            or entities == frozenset()
            or cases == frozenset()
            or not_before >= not_after
        ):
            return None
        limits = [x for x in (self.amount_limit_jpy, other.amount_limit_jpy) if x is not None]
        return Scope(
            frozenset(actions),
            entities,
            cases,
            min(limits, default=None),
            not_before,
            not_after,
            min(self.max_depth, other.max_depth),
        )

    def escalations_of(self, child: Scope) -> tuple[str, ...]:
        """Why ``child`` may not be granted as a sub-delegation of ``self``; () if it may.

        Codes in order: SUBDELEGATION_NOT_ALLOWED, DEPTH_EXCEEDED, SCOPE_ACTION_NOT_GRANTED,
        SCOPE_ENTITY_NOT_GRANTED, SCOPE_CASE_NOT_GRANTED, SCOPE_AMOUNT_EXCEEDED,
        SCOPE_VALIDITY_EXCEEDED.
        """
        codes = []
        if self.max_depth == 0:
            codes.append("SUBDELEGATION_NOT_ALLOWED")
        elif child.max_depth > self.max_depth - 1:
            codes.append("DEPTH_EXCEEDED")
        return tuple(codes + self._excess(child))

    def uncovered(self, purpose: Purpose) -> tuple[str, ...]:
        """Why ``self`` does not authorise ``purpose``; () if it does.

        An unstated entity or case is not covered by a restricted scope; an unstated
        amount is covered by any scope (the limit applies only to a stated amount).
        Codes in order: SCOPE_ACTION_NOT_GRANTED, SCOPE_ENTITY_NOT_GRANTED,
        SCOPE_CASE_NOT_GRANTED, SCOPE_AMOUNT_EXCEEDED, MANDATE_NOT_YET_VALID, MANDATE_EXPIRED.
        """
        codes = []
        if not _action_granted(self.actions, purpose.action):
            codes.append("SCOPE_ACTION_NOT_GRANTED")
        if (
            self.procuring_entities is not None
            and purpose.procuring_entity not in self.procuring_entities
        ):
            codes.append("SCOPE_ENTITY_NOT_GRANTED")
        if self.cases is not None and purpose.case not in self.cases:
            codes.append("SCOPE_CASE_NOT_GRANTED")
        if (
            self.amount_limit_jpy is not None
            and purpose.amount_jpy is not None
            and purpose.amount_jpy > self.amount_limit_jpy
        ):
            codes.append("SCOPE_AMOUNT_EXCEEDED")
        if purpose.at < self.not_before:
            codes.append("MANDATE_NOT_YET_VALID")
        if purpose.at >= self.not_after:
            codes.append("MANDATE_EXPIRED")
        return tuple(codes)

    def covers(self, purpose: Purpose) -> bool:
        """Whether ``self`` authorises ``purpose`` (``uncovered(purpose) == ()``)."""
        return not self.uncovered(purpose)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: sorted lists, times as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``,
        null for any entity/case or no amount limit."""
        return {
            "actions": sorted(self.actions),
            "procuring_entities": _sorted_or_none(self.procuring_entities),
            "cases": _sorted_or_none(self.cases),
            "amount_limit_jpy": self.amount_limit_jpy,
            "not_before": _time_json(self.not_before),
            "not_after": _time_json(self.not_after),
            "max_depth": self.max_depth,
        }

    @classmethod
    def from_json(cls, data: object) -> Scope:
        """The scope of a ``to_json`` dict (all keys required, no others). Raises ScopeError
        SCOPE_INVALID on bad input (SCOPE_ACTION_UNKNOWN for an unknown action)."""
        if not isinstance(data, dict) or set(data) != _JSON_KEYS:
            raise ScopeError(f"a scope is an object with exactly the keys {sorted(_JSON_KEYS)}")
        for key in ("actions", "procuring_entities", "cases"):
            if not isinstance(data[key], list) and not (key != "actions" and data[key] is None):
                raise ScopeError(f"{key} must be a list" + (" or null" if key != "actions" else ""))
        return cls(
            actions=frozenset(_names(data["actions"], "actions") or ()),
            procuring_entities=_names(data["procuring_entities"], "procuring_entities"),
            cases=_names(data["cases"], "cases"),
            amount_limit_jpy=data["amount_limit_jpy"],
            not_before=_time_from_json(data["not_before"], "not_before"),
            not_after=_time_from_json(data["not_after"], "not_after"),
            max_depth=data["max_depth"],
        )


def _meet(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    return a if b is None else a & b


def _sorted_or_none(names: frozenset[str] | None) -> list[str] | None:
    return None if names is None else sorted(names)
