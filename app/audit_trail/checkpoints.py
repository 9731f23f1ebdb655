"""Checkpoints, online verification and exports of the audit chain (issue 14 items 1, 3, 4).

- The audit key: in production the key ``audit_key_id`` in the token and the
  certificate file ``audit_certificate_file`` (PEM, leaf first, then its issuers);
  in development mode a key generated in the token on first use and certified by
  the development service root (``<pki_dir>/audit/``).
- :func:`take_checkpoint` signs the current head and has the TSA time-stamp the
  signature; one row per head sequence (a second taker of the same head finds the
  first's). ``dairi audit checkpoint`` takes one on demand; ``--if-due`` only when
  :func:`checkpoint_due` (the head moved and the last one is older than
  ``audit_checkpoint_interval_seconds``), for cron or a timer. Appending never
  waits for the HSM or the TSA.
- :func:`list_checkpoints` is what ``GET /api/v1/audit/checkpoints`` lists;
  :func:`verify_database` is what ``GET /api/v1/audit/verification`` answers.
- :func:`export_audit` writes the offline proof (:mod:`audit.export`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.audit_trail.log import fold_refusals
from app.audit_trail.models import AuditCheckpoint, AuditHead, AuditRecord
from app.context import ServiceContext, load_pem_certificates
from audit import (
    GENESIS_HASH,
    AuditEvent,
    Checkpoint,
    CheckpointSigner,
    CheckpointStatement,
    Link,
    Trust,
    VerificationReport,
    verify_log,
    write_export,
)
from audit import take_checkpoint as sign_checkpoint
from audit.cms import CmsInvalid, verify_path
from audit.export import ExportSummary, read_pem_certificates
from audit.verify import verify_checkpoints
from dairi import DairiError
from hsm import KeyAlgorithm, KeyRef, SignatureScheme

DER = serialization.Encoding.DER
_SIGNERS: weakref.WeakKeyDictionary[ServiceContext, CheckpointSigner] = weakref.WeakKeyDictionary()


class AuditKeyUnavailable(DairiError):
    """No audit key is configured (production) or can be made (development)."""

    code = "AUDIT_KEY_NOT_CONFIGURED"


class TimestampUnavailable(DairiError):
    code = "TIMESTAMP_FAILED"


def _dev_audit_key(ctx: ServiceContext) -> tuple[KeyRef, bytes]:
    """The development audit key and certificate, made once per PKI directory."""
    pki = ctx.dev_pki
    if pki is None:
        raise AuditKeyUnavailable(
            "no audit key: set audit_key_id and audit_certificate_file"
            " (or run in development mode with its PKI)"
        )
    directory = ctx.settings.pki_dir / "audit"
    directory.mkdir(mode=0o700, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes' first checkpoints make one key
        key_file, cert_file = directory / "key.json", directory / "cert.pem"
        if not key_file.is_file():
            from devpki.ca import end_entity_key_usage  # development mode only

            ref = ctx.hsm.generate_key(KeyAlgorithm.RSA_2048)
            public_key = serialization.load_der_public_key(ctx.hsm.public_key_info(ref))
            cert = pki.cas["service-root"].issue(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dairi development"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "dairi Development Audit"),
                    ]
                ),
                public_key,  # type: ignore[arg-type]
                now=datetime.now(UTC),
                key_usage=end_entity_key_usage(non_repudiation=True),
                lifetime=timedelta(days=1825),
            )
            ctx.hsm.store_certificate(ref, cert.public_bytes(DER))
            cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            key_file.write_text(
                json.dumps(
                    {"token_label": ref.token_label, "key_id": ref.key_id, "version": ref.version}
                )
            )
        key = json.loads(key_file.read_text())
        return (
            KeyRef(key["token_label"], key["key_id"], key["version"]),
            read_pem_certificates(cert_file)[0],
        )


def audit_signer(ctx: ServiceContext) -> CheckpointSigner:
    """The audit key as a checkpoint signer (built once per context)."""
    cached = _SIGNERS.get(ctx)
    if cached is not None:
        return cached
    settings = ctx.settings
    chain: tuple[bytes, ...] = ()
    if settings.audit_key_id:
        certs = read_pem_certificates(Path(settings.audit_certificate_file))
        if not certs:
            raise AuditKeyUnavailable(
                f"no certificate in audit_certificate_file {settings.audit_certificate_file!r}"
            )
        ref = KeyRef(settings.hsm_token_label, settings.audit_key_id)
        certificate, chain = certs[0], tuple(certs[1:])
    else:
        ref, certificate = _dev_audit_key(ctx)
    public_key = x509.load_der_x509_certificate(certificate).public_key()
    scheme = (
        SignatureScheme.ECDSA
        if isinstance(public_key, ec.EllipticCurvePublicKey)
        else SignatureScheme.RSA_PKCS1V15
    )
    hsm = ctx.hsm
    signer = CheckpointSigner(certificate, chain, lambda data: hsm.sign(ref, data, scheme=scheme))
    _SIGNERS[ctx] = signer
    return signer


def _timestamp(ctx: ServiceContext):  # type: ignore[no-untyped-def]
    tsa = ctx.tsa
    if tsa is None:
        raise TimestampUnavailable("no TSA is configured (tsa_url) to time-stamp checkpoints")

    def stamp(digest: bytes) -> bytes:
        try:
            return asyncio.run(tsa.make_timestamper().async_timestamp(digest, "sha256")).dump()
        except Exception as exc:  # the TSA refused, failed or timed out
            raise TimestampUnavailable(
                f"the TSA did not time-stamp the checkpoint ({type(exc).__name__})"
            ) from exc

    return stamp


def _head(session: Session) -> AuditHead:
    return session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()


def last_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.sequence.desc()).limit(1)
    ).first()


def checkpoint_due(session: Session, interval_seconds: int, now: datetime) -> bool:
    """Whether the head has moved past the last checkpoint and that one is older than
    ``interval_seconds`` (0: never due)."""
    if interval_seconds <= 0:
        return False
    head, last = _head(session), last_checkpoint(session)
    if head.sequence == 0 or (last is not None and last.sequence >= head.sequence):
        return False
    return last is None or now - last.taken_at >= timedelta(seconds=interval_seconds)


def take_checkpoint(ctx: ServiceContext, *, if_due: bool = False) -> AuditCheckpoint | None:
    """Sign the current head and store it; the existing row when the head already
    has one; None for an empty log, or with ``if_due`` when none is due. The head is
    read without a lock (appenders do not wait for the HSM and the TSA)."""
    signer, stamp = audit_signer(ctx), _timestamp(ctx)
    with ctx.session_factory() as session:
        now = ctx.clock()
        if if_due and not checkpoint_due(
            session, ctx.settings.audit_checkpoint_interval_seconds, now
        ):
            return None
        head = _head(session)
        if head.sequence == 0:
            return None
        existing = session.get(AuditCheckpoint, head.sequence)
        if existing is not None:
            return existing
        sequence, head_hash = head.sequence, head.hash
    signed = sign_checkpoint(sequence, head_hash, now, signer, stamp)
    row = AuditCheckpoint(
        sequence=sequence,
        head_hash=head_hash,
        taken_at=now,
        statement=signed.statement_bytes,
        signature_der=signed.signature_der,
        timestamp_der=signed.timestamp_der,
        signer_certificate_der=signer.certificate_der,
    )
    with ctx.session_factory() as session:
        try:
            with session.begin():
                session.add(row)
        except IntegrityError:  # another process checkpointed this head meanwhile
            pass
        stored = session.get(AuditCheckpoint, sequence)
        session.expunge_all()
        return stored


def list_checkpoints(
    session: Session, *, after: int = 0, limit: int = 100
) -> list[AuditCheckpoint]:
    """Checkpoints in sequence order after ``after`` (a cursor), at most ``limit``."""
    return list(
        session.scalars(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.sequence > after)
            .order_by(AuditCheckpoint.sequence)
            .limit(limit)
        )
    )


def trust_for(ctx: ServiceContext) -> Trust:
    """The roots the service trusts (``trust_dir``/*.pem), with the certificates that
    may sign checkpoints pinned: the current audit key's and those of
    ``trust_dir``/audit.pem (keep a retired audit key's certificate there)."""
    pinned = read_pem_certificates(ctx.settings.trust_dir / "audit.pem")
    with contextlib.suppress(AuditKeyUnavailable):
        pinned.append(audit_signer(ctx).certificate_der)
    return Trust(tuple(load_pem_certificates(ctx.settings.trust_dir)), tuple(pinned))


Reader = Session | sessionmaker[Session]


@contextlib.contextmanager
def _page(source: Reader) -> Iterator[Session]:
    """A session for one page of reading: the caller's own, or a short transaction
    of its own (on SQLite every transaction holds the write lock, so a long scan
    in one transaction would keep appenders waiting)."""
    if isinstance(source, Session):
        yield source
        return
    with source() as session:
        yield session


def _links(source: Reader, after: int, until: int, batch: int = 5000) -> Iterator[Link]:
    """Every event in (``after``, ``until``] as a link, read in keyset pages."""
    columns = (
        AuditRecord.sequence,
        AuditRecord.occurred_at,
        AuditRecord.actor,
        AuditRecord.tag,
        AuditRecord.subject,
        AuditRecord.principal,
        AuditRecord.details,
        AuditRecord.previous_hash,
        AuditRecord.hash,
    )
    while True:
        with _page(source) as session:
            rows = session.execute(
                select(*columns)
                .where(AuditRecord.sequence > after, AuditRecord.sequence <= until)
                .order_by(AuditRecord.sequence)
                .limit(batch)
            ).all()
        for seq, at, actor, tag, subject, principal, details, previous, stored in rows:
            event = AuditEvent(
                seq, at, actor, tag, subject, principal, json.loads(details), previous
            )
            yield Link(seq, previous, event.digest(), stored)
        if len(rows) < batch:
            return
        after = rows[-1][0]


def verify_database(
    source: Reader, trust: Trust, *, from_checkpoint: bool = False
) -> VerificationReport:
    """The chain in the database checked now: every checkpoint (signature, key,
    time-stamp), then the events from the start — or, with ``from_checkpoint``, from
    the last checkpoint that verifies — against their stored hashes, the checkpoints
    and the head row, up to the head as it was when the check began (events
    appended meanwhile are left for the next check). Says which sequence breaks
    first and how.

    ``source`` is a session factory (each page of events is read in a short
    transaction of its own: what ``GET /api/v1/audit/verification`` should pass,
    with its request's own session not holding a transaction on SQLite) or a
    session (everything read in it)."""
    with _page(source) as session:
        # Read in this order, so that appends and checkpoints committed meanwhile (on
        # PostgreSQL each statement sees the latest commits) cannot look like a break:
        # a checkpoint is of a head already committed, and the head row moves with
        # each event in one transaction. A row beyond the head read after it was
        # written behind the head's back; the scan goes one past the head to see it.
        stored = [
            c.stored()
            for c in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.sequence))
        ]
        beyond = session.scalar(select(func.max(AuditRecord.sequence))) or 0
        head = _head(session)
        head_at = (head.sequence, head.hash)
    start, start_hash = 1, GENESIS_HASH
    if from_checkpoint and stored:
        good, _ = verify_checkpoints(stored[-1:], trust)
        if good and good[0].statement.sequence <= head_at[0]:
            start, start_hash = good[0].statement.sequence + 1, good[0].statement.head_hash
    until = head_at[0] + 1 if beyond > head_at[0] else head_at[0]
    return verify_log(
        _links(source, start - 1, until),
        stored,
        trust,
        start_sequence=start,
        start_hash=start_hash,
        head=head_at,
    )


def _roots_for(certificates: list[bytes], pool: list[bytes], roots: list[bytes]) -> list[bytes]:
    found: list[bytes] = []
    for der in certificates:
        with contextlib.suppress(CmsInvalid, ValueError):
            path = verify_path(der, pool, roots, at=datetime.now(UTC))
            if path[-1] not in found:
                found.append(path[-1])
    return found


def export_audit(
    ctx: ServiceContext, directory: Path, *, first: int | None = None, last: int | None = None
) -> ExportSummary:
    """Write the offline proof of events ``first``-``last`` (default: all) to
    ``directory``. Open refusal windows are folded into the chain first and, when
    the export runs to the head, the head is checkpointed, so every exported event
    is covered by a signed, time-stamped checkpoint."""
    with ctx.session_factory() as session, session.begin():
        fold_refusals(session, open_windows=True)
    if last is None:
        take_checkpoint(ctx)
    with ctx.session_factory() as session:
        head = _head(session)
        first = max(first or 1, 1)
        last = min(last if last is not None else head.sequence, head.sequence)
        anchor = GENESIS_HASH
        if first > 1:
            anchor = (
                session.scalar(select(AuditRecord.hash).where(AuditRecord.sequence == first - 1))
                or GENESIS_HASH
            )
        rows = list(
            session.scalars(
                select(AuditCheckpoint)
                .where(AuditCheckpoint.sequence >= first - 1, AuditCheckpoint.sequence <= last)
                .order_by(AuditCheckpoint.sequence)
            )
        )
        checkpoints = [
            Checkpoint(CheckpointStatement.parse(c.statement), c.signature_der, c.timestamp_der)
            for c in rows
        ]
        signers = list(dict.fromkeys(c.signer_certificate_der for c in rows))
    chain = list(audit_signer(ctx).chain_der) if checkpoints else []
    tsa_certs = _token_certificates([c.timestamp_der for c in checkpoints if c.timestamp_der])
    trusted = load_pem_certificates(ctx.settings.trust_dir)
    roots = _roots_for(signers + tsa_certs, chain + tsa_certs, trusted)

    def events() -> Iterator[AuditEvent]:
        after = first - 1
        while after < last:
            with ctx.session_factory() as session:  # a short transaction per page
                page = [
                    r.event()
                    for r in session.scalars(
                        select(AuditRecord)
                        .where(AuditRecord.sequence > after, AuditRecord.sequence <= last)
                        .order_by(AuditRecord.sequence)
                        .limit(5000)
                    )
                ]
            if not page:
                return
            yield from page
            after = page[-1].sequence

    return write_export(
        directory,
        events(),
        checkpoints,
        audit_certificates_der=signers,
        chain_der=chain,
        roots_der=roots,
        start_sequence=first,
        anchor_hash=anchor,
        exported_at=ctx.clock(),
        retention_years=ctx.settings.audit_retention_years,
    )


def _token_certificates(tokens: list[bytes]) -> list[bytes]:
    found: list[bytes] = []
    for der in tokens:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            for choice in cms.ContentInfo.load(der)["content"]["certificates"] or []:
                if choice.name == "certificate" and choice.chosen.dump() not in found:
                    found.append(choice.chosen.dump())
    return found


def count_events(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditRecord)) or 0
