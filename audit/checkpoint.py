"""Signed checkpoints of the audit chain (DESIGN §8, issue 14 item 1).

A checkpoint states the chain's head — its sequence number, its hash and the
time it was taken — as RFC 8785 canonical JSON (:meth:`CheckpointStatement.canonical`).
The audit key signs that statement (a detached CMS SignedData, RFC 5652) and a TSA
time-stamps the signature (an RFC 3161 token whose message imprint is the
SHA-256 of the SignerInfo's signature value, as a CAdES signature time-stamp is).
Anyone with the statement, the two DER blobs and the roots can check it, e.g.
``openssl cms -verify -binary -inform DER -in N.p7s -content N.json -CAfile roots.pem``.

A checkpoint proves that the chain up to its sequence ended in its hash at that
time: events before it cannot be edited, inserted, removed or reordered without
that hash changing, and events after it cannot be removed below it unnoticed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import rfc8785
from asn1crypto import cms

from audit.cms import CmsInvalid, sign_detached, verify_path, verify_signed_data, verify_timestamp
from dairi import DairiError

STATEMENT_TYPE = "dairi-audit-checkpoint"
STATEMENT_VERSION = 1


class CheckpointInvalid(DairiError):
    """A checkpoint that does not hold. ``kind`` is one of :data:`CHECKPOINT_KINDS`."""

    code = "AUDIT_CHECKPOINT_INVALID"

    def __init__(self, message: str, kind: str, sequence: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.sequence = sequence


# What a forged or damaged checkpoint looks like to the verifier.
CHECKPOINT_KINDS = {
    "checkpoint_malformed": "the statement or its signature cannot be read",
    "checkpoint_altered": "the statement is not the one that was signed (altered head)",
    "checkpoint_wrong_key": "signed by a key that is not a trusted audit key",
    "checkpoint_timestamp_mismatch": "the time-stamp token covers other data",
    "checkpoint_timestamp_invalid": "the time-stamp token is not a trusted TSA's",
    "checkpoint_timestamp_missing": "the checkpoint has no time-stamp token",
}


@dataclass(frozen=True)
class CheckpointStatement:
    """The head of the chain at one time."""

    sequence: int
    head_hash: str
    taken_at: datetime

    def canonical(self) -> bytes:
        return rfc8785.dumps(
            {
                "type": STATEMENT_TYPE,
                "version": STATEMENT_VERSION,
                "sequence": self.sequence,
                "head_hash": self.head_hash,
                "taken_at": self.taken_at.astimezone(UTC).isoformat(timespec="microseconds"),
            }
        )

    @classmethod
    def parse(cls, data: bytes) -> CheckpointStatement:
        try:
            raw = json.loads(data)
            if raw.get("type") != STATEMENT_TYPE or raw.get("version") != STATEMENT_VERSION:
                raise ValueError("not a dairi audit checkpoint statement")
            statement = cls(
                int(raw["sequence"]), str(raw["head_hash"]), datetime.fromisoformat(raw["taken_at"])
            )
            if statement.taken_at.tzinfo is None or len(statement.head_hash) != 64:
                raise ValueError("naive time or malformed hash")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CheckpointInvalid(
                f"unreadable checkpoint statement ({exc})", "checkpoint_malformed"
            ) from exc
        return statement


@dataclass(frozen=True)
class CheckpointSigner:
    """The audit key: its certificate (and chain, root excluded) and a callable
    signing bytes with SHA-256 in the HSM (PKCS#1 v1.5 for RSA, ECDSA for EC)."""

    certificate_der: bytes
    chain_der: tuple[bytes, ...]
    sign: Callable[[bytes], bytes]


@dataclass(frozen=True)
class Checkpoint:
    statement: CheckpointStatement
    signature_der: bytes  # DER ContentInfo, detached SignedData over statement.canonical()
    timestamp_der: bytes | None = None  # RFC 3161 TimeStampToken over the signature value

    @property
    def statement_bytes(self) -> bytes:
        return self.statement.canonical()


def signature_value(signature_der: bytes) -> bytes:
    """The SignerInfo's signature value: what the checkpoint's time-stamp covers."""
    try:
        return cms.ContentInfo.load(signature_der)["content"]["signer_infos"][0]["signature"].native
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise CheckpointInvalid("unreadable checkpoint signature", "checkpoint_malformed") from exc


def take_checkpoint(
    sequence: int,
    head_hash: str,
    taken_at: datetime,
    signer: CheckpointSigner,
    timestamp: Callable[[bytes], bytes] | None,
) -> Checkpoint:
    """Sign the head and, with ``timestamp`` (SHA-256 digest → DER TimeStampToken),
    have the signature time-stamped."""
    statement = CheckpointStatement(sequence, head_hash, taken_at)
    signature = sign_detached(
        statement.canonical(),
        signer.certificate_der,
        signer.chain_der,
        signer.sign,
        signing_time=taken_at,
    )
    token = None
    if timestamp is not None:
        token = timestamp(hashlib.sha256(signature_value(signature)).digest())
    return Checkpoint(statement, signature, token)


@dataclass(frozen=True)
class Trust:
    """Roots a checkpoint's audit certificate and its TSA must lead to; with
    ``audit_certificates``, only those certificates may sign checkpoints."""

    roots_der: tuple[bytes, ...]
    audit_certificates_der: tuple[bytes, ...] = ()
    require_timestamp: bool = True
    certificates_der: tuple[bytes, ...] = field(default=())  # intermediates offered


@dataclass(frozen=True)
class VerifiedCheckpoint:
    statement: CheckpointStatement
    signer_der: bytes
    timestamped_at: datetime | None


def verify_checkpoint(
    statement_bytes: bytes,
    signature_der: bytes,
    timestamp_der: bytes | None,
    trust: Trust,
    *,
    sequence_hint: int | None = None,
) -> VerifiedCheckpoint:
    """Check one checkpoint; raises :class:`CheckpointInvalid` with its kind and
    sequence (``sequence_hint`` when the statement cannot be read)."""
    try:
        statement = CheckpointStatement.parse(statement_bytes)
    except CheckpointInvalid as exc:
        exc.sequence = sequence_hint
        raise
    seq = statement.sequence

    def fail(message: str, kind: str, cause: Exception | None = None) -> CheckpointInvalid:
        error = CheckpointInvalid(f"checkpoint {seq}: {message}", kind, seq)
        error.__cause__ = cause
        return error

    try:
        signed = verify_signed_data(
            signature_der, detached=statement_bytes, extra_certificates=trust.certificates_der
        )
    except CmsInvalid as exc:
        kind = {"content": "checkpoint_altered", "malformed": "checkpoint_malformed"}.get(
            exc.reason, "checkpoint_wrong_key"
        )
        raise fail(exc.message, kind, exc) from exc
    timestamped_at = None
    if timestamp_der is not None:
        try:
            stamp = verify_timestamp(
                timestamp_der, signed.signature, trust.roots_der, trust.certificates_der
            )
        except CmsInvalid as exc:
            kind = (
                "checkpoint_timestamp_mismatch"
                if exc.reason == "imprint"
                else "checkpoint_timestamp_invalid"
            )
            raise fail(exc.message, kind, exc) from exc
        timestamped_at = stamp.gen_time
    elif trust.require_timestamp:
        raise fail("no time-stamp token", "checkpoint_timestamp_missing")
    if trust.audit_certificates_der and signed.signer_der not in trust.audit_certificates_der:
        raise fail(
            "signed by a certificate that is not a trusted audit certificate",
            "checkpoint_wrong_key",
        )
    try:
        verify_path(
            signed.signer_der,
            signed.certificates_der,
            trust.roots_der,
            at=timestamped_at or statement.taken_at,
        )
    except CmsInvalid as exc:
        raise fail(exc.message, "checkpoint_wrong_key", exc) from exc
    return VerifiedCheckpoint(statement, signed.signer_der, timestamped_at)


def checkpoint_heads(checkpoints: Iterable[VerifiedCheckpoint]) -> dict[int, str]:
    return {c.statement.sequence: c.statement.head_hash for c in checkpoints}
