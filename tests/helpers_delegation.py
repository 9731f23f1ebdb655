"""Signing grant instructions as a grantor's card would (CMS SignedData, detached)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from delegation.scope import BID, Scope
from devpki.cards import VirtualCard


def sign_instruction(card: VirtualCard, data: bytes) -> bytes:
    """DER of a detached CMS SignedData over ``data`` made with the card's key."""
    return card.sign_cms(data)


def bid_scope(days: int = 30, **changes: object) -> Scope:
    now = datetime.now(UTC).replace(microsecond=0)
    fields: dict[str, object] = {
        "actions": frozenset({BID}),
        "procuring_entities": frozenset({"国土交通省関東地方整備局"}),
        "cases": None,
        "amount_limit_jpy": 100_000_000,
        "not_before": now - timedelta(minutes=1),
        "not_after": now + timedelta(days=days),
        "max_depth": 1,
    }
    fields.update(changes)
    return Scope(**fields)  # type: ignore[arg-type]
