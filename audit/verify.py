"""Checking the audit chain and its checkpoints, and naming the first break.

The same code judges the database (online: each event's stored hash is one more
witness) and an export (offline: an event's hash is witnessed only by the next
event's ``previous_hash``, a checkpoint or the export's recorded head). It reads
events once, in order, holding only a few of them, so a million events take
seconds.

Kinds of break (:data:`BREAK_KINDS`), each reported with the first sequence
number that does not hold:

- ``edited``: an event's content no longer hashes to what the chain recorded;
- ``inserted``: an event the chain does not link (an extra one, renumbered or not);
- ``deleted``: an event is missing (a gap, or the rest renumbered into it);
- ``swapped``: two events in each other's place;
- ``truncated``: the log ends before a checkpoint or the recorded head;
- ``rewritten``: the events up to a checkpoint link, but to another head than the
  one signed (the chain was recomputed after an edit);
- a forged or damaged checkpoint (:data:`audit.checkpoint.CHECKPOINT_KINDS`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import rfc8785

from audit.chain import GENESIS_HASH
from audit.checkpoint import (
    CHECKPOINT_KINDS,
    CheckpointInvalid,
    Trust,
    VerifiedCheckpoint,
    verify_checkpoint,
)

BREAK_KINDS: dict[str, str] = {
    "edited": "an event's content is not what the chain recorded",
    "inserted": "an event the chain does not link",
    "deleted": "an event is missing",
    "swapped": "two events are in each other's place",
    "truncated": "the log ends before a checkpoint or its recorded head",
    "rewritten": "the events link, but to another head than the checkpoint signed",
    "malformed": "an event that cannot be read",
    "manifest_mismatch": "a file of the export is not the one its manifest lists",
    **CHECKPOINT_KINDS,
}


class Link(NamedTuple):
    """What the chain needs of one event: its sequence, the hash it names as its
    predecessor's, its own hash computed now, and (online) the hash stored beside it.
    (A tuple: a million are made per million events verified.)"""

    sequence: int
    previous_hash: str
    digest: str
    stored: str | None = None
    raw: bytes | None = None  # offline: the canonical line, to test renumbering at a break

    @property
    def witness(self) -> str:
        """The hash the chain recorded for this event (stored, else computed)."""
        return self.stored if self.stored is not None else self.digest


# What an offline reader yields, in Link's order: (sequence, previous_hash, digest,
# stored, raw).
LinkTuple = tuple[int, str, str, str | None, bytes | None]


@dataclass(frozen=True)
class Break:
    sequence: int | None
    kind: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "kind": self.kind, "message": self.message}


class _ChainBroken(Exception):
    def __init__(self, found: Break) -> None:
        self.found = found


@dataclass(frozen=True)
class ChainScan:
    events: int
    first_sequence: int | None
    last_sequence: int | None
    head_hash: str
    broken: Break | None


def _renumbered(link: Link, sequence: int) -> str | None:
    """The hash ``link``'s event had under ``sequence`` (offline, when its line is known)."""
    if link.raw is None:
        return None
    try:
        value = json.loads(link.raw)
        value["sequence"] = sequence
        return hashlib.sha256(rfc8785.dumps(value)).hexdigest()
    except (ValueError, TypeError, rfc8785.CanonicalizationError):
        return None


def scan_chain(
    links: Iterable[Link | LinkTuple],
    *,
    start_sequence: int = 1,
    start_hash: str = GENESIS_HASH,
    checkpoints: Mapping[int, str] | None = None,
    head: tuple[int, str] | None = None,
) -> ChainScan:
    """Walk the links in order from ``start_sequence`` (whose predecessor hashed to
    ``start_hash``); stop at the first break and name it. ``checkpoints`` maps the
    sequence of each verified checkpoint to its signed head hash; ``head`` is the
    head recorded apart from the events (the database's head row, an export's
    manifest), so that a log cut short is seen."""
    checkpoints = checkpoints or {}
    expected, previous, before_previous = start_sequence, start_hash, None
    last_checkpoint = start_sequence - 1
    count = 0

    def broken(sequence: int | None, kind: str, message: str) -> ChainScan:
        return ChainScan(
            count,
            start_sequence if count else None,
            expected - 1 if count else None,
            previous,
            Break(sequence, kind, message),
        )

    items = iter(links)
    nxt = next(items, None)
    while nxt is not None:
        cur, nxt = nxt, next(items, None)
        if cur[0] == expected and cur[1] == previous:  # the common case, kept lean
            own = cur[2] if cur[3] is None else cur[3]
            if own != cur[2]:
                return broken(
                    expected, "edited", f"event {expected} does not hash to its stored hash"
                )
            if expected in checkpoints:
                if checkpoints[expected] != own:
                    if nxt is None or nxt[1] != own:
                        return broken(
                            expected,
                            "edited",
                            f"event {expected} does not hash to the head its checkpoint signed",
                        )
                    return broken(
                        last_checkpoint + 1,
                        "rewritten",
                        f"events {last_checkpoint + 1}-{expected} link, but not to"
                        f" the head checkpoint {expected} signed",
                    )
                last_checkpoint = expected
            before_previous, previous = previous, own
            expected += 1
            count += 1
            continue
        # The first event that does not follow: say how.
        cur, nxt = Link._make(cur), (Link._make(nxt) if nxt is not None else None)
        s = expected
        if nxt is not None and nxt.previous_hash == previous:
            if cur.previous_hash in (nxt.witness, _renumbered(nxt, s)):
                return broken(s, "swapped", f"events {s} and {s + 1} are in each other's place")
            return broken(
                s, "inserted", f"event at {s} is not linked by the chain; the next one is"
            )
        if before_previous is not None and cur.previous_hash == before_previous:
            return broken(
                s - 1,
                "inserted",
                f"event {s - 1} is not linked by the chain; event {cur.sequence}"
                f" names the one before it",
            )
        if cur.sequence > s:
            return broken(s, "deleted", f"event {s} is missing (next found: {cur.sequence})")
        if cur.sequence < s:
            kind = "inserted" if cur.sequence == s - 1 else "swapped"
            return broken(
                cur.sequence, kind, f"event {cur.sequence} appears again after event {s - 1}"
            )
        intact = (
            cur.digest == cur.stored
            if cur.stored is not None
            else nxt is None or nxt.previous_hash == cur.digest
        )
        if not intact:
            return broken(
                s,
                "deleted",
                f"event {s} is not the one the chain recorded there"
                " (the events after a removed one renumbered)",
            )
        if count == 0:
            return broken(
                s,
                "edited",
                f"event {s} names another predecessor than the chain's"
                f" ({'genesis' if start_hash == GENESIS_HASH else 'the anchor'})",
            )
        return broken(s - 1, "edited", f"event {s - 1} does not hash to what event {s} recorded")

    last = expected - 1
    beyond = [seq for seq in checkpoints if seq > last]
    if (head is not None and head[0] > last) or beyond:
        target = max([head[0] if head is not None else last, *beyond])
        return broken(last + 1, "truncated", f"the log ends at {last}, before {target}")
    if head is not None and head[0] < last and count:
        return broken(
            head[0] + 1,
            "inserted",
            f"events after the recorded head {head[0]} (found up to {last})",
        )
    if head is not None and head[0] == last and head[1] != previous and count:
        return broken(last, "edited", f"event {last} does not hash to the recorded head")
    return ChainScan(
        count, start_sequence if count else None, last if count else None, previous, None
    )


@dataclass(frozen=True)
class VerificationReport:
    """The verdict: intact or not, and where the first break is."""

    intact: bool
    events: int
    first_sequence: int | None
    last_sequence: int | None
    head_hash: str
    checkpoints: int  # verified
    last_checkpoint: int | None
    breaks: tuple[Break, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def first_break(self) -> Break | None:
        if not self.breaks:
            return None
        return min(self.breaks, key=lambda b: (b.sequence is None, b.sequence or 0))

    def as_dict(self) -> dict[str, Any]:
        first = self.first_break
        return {
            "intact": self.intact,
            "events": self.events,
            "first_sequence": self.first_sequence,
            "last_sequence": self.last_sequence,
            "head_hash": self.head_hash,
            "checkpoints_verified": self.checkpoints,
            "last_checkpoint": self.last_checkpoint,
            "unprotected_events": (
                self.last_sequence - (self.last_checkpoint or 0)
                if self.last_sequence is not None
                else 0
            ),
            "first_break": first.as_dict() if first else None,
            "breaks": [b.as_dict() for b in self.breaks],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint as stored or exported: the bytes a verifier checks."""

    sequence: int  # as recorded beside it (the statement says it again, signed)
    statement: bytes
    signature_der: bytes
    timestamp_der: bytes | None


def verify_checkpoints(
    stored: Iterable[StoredCheckpoint], trust: Trust
) -> tuple[list[VerifiedCheckpoint], list[Break]]:
    verified: list[VerifiedCheckpoint] = []
    breaks: list[Break] = []
    for item in stored:
        try:
            checkpoint = verify_checkpoint(
                item.statement,
                item.signature_der,
                item.timestamp_der,
                trust,
                sequence_hint=item.sequence,
            )
        except CheckpointInvalid as exc:
            breaks.append(Break(exc.sequence, exc.kind, exc.message))
            continue
        if checkpoint.statement.sequence != item.sequence:
            breaks.append(
                Break(
                    item.sequence,
                    "checkpoint_altered",
                    f"checkpoint filed as {item.sequence} states {checkpoint.statement.sequence}",
                )
            )
            continue
        verified.append(checkpoint)
    return verified, breaks


def verify_log(
    links: Iterable[Link],
    stored_checkpoints: Iterable[StoredCheckpoint],
    trust: Trust,
    *,
    start_sequence: int = 1,
    start_hash: str = GENESIS_HASH,
    head: tuple[int, str] | None = None,
    notes: Iterable[str] = (),
) -> VerificationReport:
    """Verify the checkpoints, then the chain against the verified ones."""
    verified, breaks = verify_checkpoints(stored_checkpoints, trust)
    heads = {
        c.statement.sequence: c.statement.head_hash
        for c in verified
        if c.statement.sequence >= start_sequence
    }
    notes = list(notes)
    anchor = next((c for c in verified if c.statement.sequence == start_sequence - 1), None)
    if anchor is not None:
        if anchor.statement.head_hash != start_hash:
            breaks.append(
                Break(
                    start_sequence,
                    "edited",
                    f"the range's anchor is not the head checkpoint {start_sequence - 1} signed",
                )
            )
        start_hash = anchor.statement.head_hash
    elif start_sequence > 1:
        notes.append(
            f"the first event's predecessor ({start_sequence - 1}) is taken from the"
            " manifest: no checkpoint anchors it"
        )
    scan = scan_chain(
        links, start_sequence=start_sequence, start_hash=start_hash, checkpoints=heads, head=head
    )
    if scan.broken is not None:
        breaks.append(scan.broken)
    covered = [s for s in heads if scan.last_sequence is not None and s <= scan.last_sequence]
    return VerificationReport(
        intact=not breaks,
        events=scan.events,
        first_sequence=scan.first_sequence,
        last_sequence=scan.last_sequence,
        head_hash=scan.head_hash,
        checkpoints=len(verified),
        last_checkpoint=max(covered, default=None),
        breaks=tuple(breaks),
        notes=tuple(notes),
    )
