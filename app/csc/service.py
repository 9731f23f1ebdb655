"""Hash signing for the CSC API (SCAL 2) over the signing sessions' activation.

An authorisation is a :class:`~app.signing_sessions.models.SigningSession` row of format
``csc-hash``: its ``to_sign`` binds the service, the credential and its certificate, the
mandate, the signing purpose and the exact hashes (hex SHA-256 values, as the sessions'
``documents``) with their count. The card proof over it buys a SAD (the sessions' own
:meth:`~app.signing_sessions.service.SigningSessionService.authorize`: random, kept as
its SHA-256, single use, 5 minutes). ``signHash`` spends the SAD, judges the mandate
and the credential again and signs each hash the SAD names, raw, in the HSM. Such a row
has no documents, so the sessions' own signing step refuses its SAD (``SAD_INVALID``).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.audit_trail.log import AuditLog
from app.context import ServiceContext
from app.credentials.models import Credential, CredentialStatus
from app.credentials.service import CredentialError
from app.database import new_id
from app.people.sign_in import CardProof
from app.signing_sessions.activation import (
    SAD_LIFETIME,
    SigningPurpose,
    activation_challenge,
    binding_json,
    sad_digest,
    stored_challenge,
)
from app.signing_sessions.models import SessionStatus, SigningSession
from app.signing_sessions.service import SessionRefused, SigningSessionService
from hsm import KeyAlgorithm, KeyRef, SignatureScheme
from identity.proof import Challenge

CSC_FORMAT = "csc-hash"
CSC_LEVEL = "raw"
# The most hashes any request may list, whatever the ``csc_multisign`` setting (its own
# upper bound): what the request schemas accept before the setting is applied.
MULTISIGN_CEILING = 1000
SHA256_OID = "2.16.840.1.101.3.4.2.1"
# Signature algorithms signHash takes, by key: the signature OID or the bare key OID.
SIGN_ALGORITHMS: dict[str, dict[str, SignatureScheme]] = {
    "ec": {
        "1.2.840.10045.4.3.2": SignatureScheme.ECDSA,  # ecdsa-with-SHA256
        "1.2.840.10045.2.1": SignatureScheme.ECDSA,  # id-ecPublicKey
    },
    "rsa": {
        "1.2.840.113549.1.1.11": SignatureScheme.RSA_PKCS1V15,  # sha256WithRSAEncryption
        "1.2.840.113549.1.1.1": SignatureScheme.RSA_PKCS1V15,  # rsaEncryption
    },
}
# What credentials/info lists in key/algo (pyHanko reads them as signature mechanisms).
LISTED_ALGORITHMS = {"ec": ["1.2.840.10045.4.3.2"], "rsa": ["1.2.840.113549.1.1.11"]}


# The threads that record and commit a signHash batch while the request's own thread has
# the HSM sign it: per process (a forked worker starts its own), a few (a worker handles
# one request at a time).
RECORDING_THREADS = 2
_executor: tuple[int, concurrent.futures.ThreadPoolExecutor] | None = None
_executor_lock = threading.Lock()


def _recording_threads() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None or _executor[0] != os.getpid():
            pool = concurrent.futures.ThreadPoolExecutor(RECORDING_THREADS, "dairi-csc-record")
            _executor = (os.getpid(), pool)
        return _executor[1]


def key_kind(algorithm: str) -> str:
    return "rsa" if KeyAlgorithm(algorithm).is_rsa else "ec"


@dataclass(frozen=True)
class HashRequest:
    """What an authorisation asks for: the credential, the exact SHA-256 hashes (their
    count is ``numSignatures``), the purpose and, optionally, the mandate."""

    credential_id: str
    hashes: tuple[bytes, ...]
    purpose: SigningPurpose
    mandate_id: str | None = None
    hash_algorithm_oid: str = SHA256_OID
    num_signatures: int | None = None


@dataclass(frozen=True)
class PendingActivation:
    row: SigningSession
    challenge: Challenge


class CscService:
    """The CSC API's operations for one signed-in person, over their own credentials."""

    def __init__(
        self, session: Session, context: ServiceContext, *, person_id: str, actor: str
    ) -> None:
        self.session = session
        self.context = context
        self.person_id = person_id
        self.actor = actor
        self.sessions = SigningSessionService(session, context, person_id=person_id, actor=actor)

    # -- credentials -------------------------------------------------------------------

    def credentials(self) -> Sequence[Credential]:
        return self.sessions.credentials.owned(person_id=self.person_id)

    def credential(self, credential_id: str) -> Credential:
        """The caller's credential in any state (``CREDENTIAL_UNKNOWN``,
        ``CREDENTIAL_NOT_OWNED``)."""
        credential = self.session.get(Credential, credential_id, populate_existing=True)
        if credential is None:
            raise SessionRefused(f"no credential {credential_id}", "CREDENTIAL_UNKNOWN")
        if credential.person_id != self.person_id:
            raise SessionRefused("the credential is not the caller's", "CREDENTIAL_NOT_OWNED")
        return credential

    # -- authorising -------------------------------------------------------------------

    def request_activation(self, ask: HashRequest) -> PendingActivation:
        """The first step of ``credentials/authorize``: the credential (own, active), the
        mandate named or covering the purpose, its chain judged now; returns the row and
        the card challenge binding the hashes and their count."""
        self._check(ask)
        credential, _ = self.sessions.own_credential(ask.credential_id)
        now = self.context.clock()
        mandate_id = ask.mandate_id
        if mandate_id is None:
            # the sessions' own choice of mandate (NO_COVERING_MANDATE, MANDATE_AMBIGUOUS)
            mandate_id = self.sessions._covering_mandate(credential, ask.purpose, now)
        self.sessions.judge(mandate_id, ask.purpose, credential, now)
        settings = self.context.settings
        hashes = [h.hex() for h in ask.hashes]
        row = SigningSession(
            person_id=self.person_id,
            credential_id=credential.id,
            credential_certificate_sha256=credential.certificate_sha256,
            mandate_id=mandate_id,
            principal=ask.purpose.principal,
            purpose=json.dumps(ask.purpose.to_json(), ensure_ascii=False, sort_keys=True),
            format=CSC_FORMAT,
            level=CSC_LEVEL,
            stamp=False,
            status=SessionStatus.OPEN.value,
        )
        row.id = new_id()
        challenge = activation_challenge(
            service=settings.public_base_url,
            now=now,
            lifetime=timedelta(seconds=settings.challenge_seconds),
            session_id=row.id,
            credential_id=credential.id,
            certificate_sha256=str(credential.certificate_sha256),
            mandate_id=mandate_id,
            purpose=ask.purpose,
            format=CSC_FORMAT,
            level=CSC_LEVEL,
            document_sha256s=hashes,
        )
        row.nonce = challenge.nonce
        row.binding = binding_json(challenge)
        row.issued_at, row.expires_at = challenge.issued_at, challenge.expires_at
        self.session.add(row)
        self.session.flush()
        AuditLog(self.session).append(
            "signature:csc:requested",
            actor=self.actor,
            subject=row.id,
            principal=row.principal,
            details={
                "credential_id": credential.id,
                "mandate_id": mandate_id,
                "purpose": ask.purpose.to_json(),
                "hashes": hashes,
            },
        )
        return PendingActivation(row, challenge)

    def authorize(self, ask: HashRequest, proof: CardProof) -> tuple[SigningSession, str]:
        """The second step: the card proof over the ``to_sign`` last issued for exactly
        this request (``CSC_ACTIVATION_NOT_FOUND`` if none) → the SAD (the sessions'
        checks: ``CARD_NOT_CALLERS``, ``SESSION_EXPIRED``, the chain again)."""
        self._check(ask)
        row = self._pending(ask)
        return self.sessions.authorize(row.id, proof)

    def to_sign(self, row: SigningSession) -> bytes:
        return stored_challenge(
            row.nonce,
            self.context.settings.public_base_url,
            row.issued_at,
            row.expires_at,
            row.binding,
        ).to_sign()

    # -- signing -----------------------------------------------------------------------

    def sign_hashes(
        self,
        *,
        credential_id: str,
        sad: str | None,
        hashes: Sequence[bytes],
        hash_algorithm_oid: str,
        sign_algorithm_oid: str,
    ) -> list[bytes]:
        """Spend the SAD and sign each hash with the credential's key in the HSM.

        Raises ``CREDENTIAL_*``, ``SAD_MISSING``, ``SAD_INVALID`` (not this caller's,
        not this credential's), ``SAD_USED``, ``SAD_EXPIRED``, the chain's codes,
        ``CSC_SIGNATURE_COUNT_EXCEEDED``, ``CSC_HASH_NOT_AUTHORIZED``,
        ``CSC_HASH_ALGORITHM_UNSUPPORTED``, ``CSC_SIGN_ALGORITHM_UNSUPPORTED``.

        A refusal once the SAD is found usable leaves it spent (a transaction of its
        own, :meth:`SigningSessionService.spend_sad`). A batch that passes every check
        spends it with a conditional update (``sad_used_at`` still empty), which holds the
        row's write until the commit (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's row
        lock), so a second request with the same SAD waits and finds it used. Then a
        recording thread appends the batch's ``signature:csc:created`` event (every hash,
        in order) and commits while this thread has the HSM sign: the fsync overlaps the
        signing.
        Signatures are answered only once both have succeeded. A failed commit drops the
        signatures and leaves the SAD unspent; a failed HSM after the commit leaves it
        spent and appends ``signature:csc:failed``. So no SAD ever yields two answered
        batches, and no answered signature lacks its committed event.
        """
        if not sad:
            raise SessionRefused("send the SAD the authorisation issued", "SAD_MISSING")
        credential = self._active_credential(credential_id)
        if hash_algorithm_oid != SHA256_OID:
            raise SessionRefused("only SHA-256 hashes are signed", "CSC_HASH_ALGORITHM_UNSUPPORTED")
        scheme = SIGN_ALGORITHMS[key_kind(credential.algorithm)].get(sign_algorithm_oid)
        if scheme is None:
            raise SessionRefused(
                f"signAlgo {sign_algorithm_oid} does not fit the credential's key",
                "CSC_SIGN_ALGORITHM_UNSUPPORTED",
            )
        digest = sad_digest(sad)
        row = self.session.scalars(
            select(SigningSession)
            .where(
                SigningSession.person_id == self.person_id,
                SigningSession.sad_sha256 == digest,
            )
            .execution_options(populate_existing=True)
        ).first()
        if row is None or row.format != CSC_FORMAT or row.credential_id != credential.id:
            raise SessionRefused("the SAD was not issued for this credential", "SAD_INVALID")
        now = self.context.clock()
        if row.sad_used_at is not None:
            raise SessionRefused("the SAD was used already", "SAD_USED")
        assert row.sad_expires_at is not None  # set with sad_sha256
        if now >= row.sad_expires_at:
            raise SessionRefused("the SAD expired; authorise a new session", "SAD_EXPIRED")
        try:
            self.sessions.judge(
                row.mandate_id, SigningPurpose.from_json(row.purpose), credential, now
            )
            binding = json.loads(row.binding)
            if len(hashes) > binding["document_count"]:
                raise SessionRefused(
                    f"the SAD allows {binding['document_count']} signatures",
                    "CSC_SIGNATURE_COUNT_EXCEEDED",
                )
            named = set(binding["documents"])
            if any(h.hex() not in named for h in hashes):
                raise SessionRefused(
                    "the SAD was issued for other hashes", "CSC_HASH_NOT_AUTHORIZED"
                )
        except SessionRefused:
            self.sessions.spend_sad(row.id, sad)  # a refused try spends the SAD for good
            raise
        sessions = SigningSession.__table__.c  # a Core statement: no ORM bookkeeping
        spent = self.session.execute(
            update(SigningSession.__table__)
            .where(
                sessions.id == row.id,
                sessions.sad_sha256 == digest,
                sessions.sad_used_at.is_(None),
            )
            .values(sad_used_at=now, status=SessionStatus.SIGNED.value, signed_at=now)
        )
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            raise SessionRefused("the SAD was used already", "SAD_USED")
        ref = credential.key_ref
        # Every check has passed and the SAD is spent in this transaction: a thread of its
        # own records the batch and commits (the fsync) while this one has the HSM sign
        # (PKCS#11 gives up the GIL). Nothing is answered unless both succeed.
        recorded = _recording_threads().submit(
            self._record_batch, row, credential.id, ref, hashes, sign_algorithm_oid, now
        )
        try:
            signatures = self.context.hsm.sign_digests(
                ref, list(hashes), hash_algorithm="sha256", scheme=scheme
            )
        except BaseException as exc:
            concurrent.futures.wait([recorded])  # the session is this thread's again
            if isinstance(exc, Exception) and recorded.exception() is None:
                self._record_failure(row, credential.id, len(hashes), exc)  # SAD spent
            raise
        recorded.result()  # raises if the commit failed: signatures dropped, SAD unspent
        return signatures

    # -- internals ---------------------------------------------------------------------

    def _active_credential(self, credential_id: str) -> Credential:
        """The caller's active credential, as :meth:`SigningSessionService.own_credential`
        checks it (``CREDENTIAL_UNKNOWN``, ``CREDENTIAL_NOT_OWNED``,
        ``CREDENTIAL_NOT_ACTIVE``) without building its signing view: raw hashes need
        only its key, not its certificate chain parsed."""
        credential = self.credential(credential_id)
        if credential.status != CredentialStatus.ACTIVE or credential.certificate_der is None:
            raise CredentialError(
                f"credential {credential.name!r} is {credential.status}", "CREDENTIAL_NOT_ACTIVE"
            )
        return credential

    def _record_batch(
        self,
        row: SigningSession,
        credential_id: str,
        ref: KeyRef,
        hashes: Sequence[bytes],
        sign_algorithm_oid: str,
        now: datetime,
    ) -> None:
        """The batch's one ``signature:csc:created`` event, naming each hash in order,
        committed with the spent SAD. Runs in a recording thread while the request's
        thread waits on the HSM, never beside another use of the session."""
        # No SignatureRecord: that table holds PAdES/XAdES documents; the event is the record.
        # append_many for one event: Core statements, less work than append's ORM flush.
        AuditLog(self.session).append_many(
            "signature:csc:created",
            actor=self.actor,
            subject=row.id,
            principal=row.principal,
            at=now,
            details=[
                {
                    "format": "raw-hash",
                    "credential_id": credential_id,
                    "mandate_id": row.mandate_id,
                    "count": len(hashes),
                    "hashes_sha256": [each.hex() for each in hashes],
                    "sign_algorithm": sign_algorithm_oid,
                    "key_id": ref.key_id,
                    "key_version": ref.version,
                }
            ],
        )
        self.session.commit()

    def _record_failure(
        self, row: SigningSession, credential_id: str, count: int, exc: Exception
    ) -> None:
        """After the commit the HSM failed: the batch's ``signature:csc:created`` event
        stands, so a ``signature:csc:failed`` event says none of its hashes was answered."""
        self.session.rollback()
        AuditLog(self.session).append(
            "signature:csc:failed",
            actor=self.actor,
            subject=row.id,
            principal=row.principal,
            details={
                "credential_id": credential_id,
                "count": count,
                "code": getattr(exc, "code", type(exc).__name__),
            },
        )
        self.session.commit()

    def _check(self, ask: HashRequest) -> None:
        if ask.hash_algorithm_oid != SHA256_OID:
            raise SessionRefused("only SHA-256 hashes are signed", "CSC_HASH_ALGORITHM_UNSUPPORTED")
        if not ask.hashes:
            raise SessionRefused("send at least one hash", "CSC_HASHES_INVALID")
        if any(len(h) != 32 for h in ask.hashes):
            raise SessionRefused("each hash is 32 bytes (SHA-256)", "CSC_HASHES_INVALID")
        multisign = self.context.settings.csc_multisign
        if len(ask.hashes) > multisign:
            raise SessionRefused(f"at most {multisign} hashes at once", "CSC_HASHES_INVALID")
        if ask.num_signatures is not None and ask.num_signatures != len(ask.hashes):
            raise SessionRefused(
                "numSignatures must equal the number of hashes (SCAL 2)", "CSC_HASHES_INVALID"
            )

    def _pending(self, ask: HashRequest) -> SigningSession:
        rows = self.session.scalars(
            select(SigningSession)
            .where(
                SigningSession.person_id == self.person_id,
                SigningSession.credential_id == ask.credential_id,
                SigningSession.format == CSC_FORMAT,
                SigningSession.authorized_at.is_(None),
            )
            .order_by(SigningSession.issued_at.desc())
            .limit(20)
        )
        hashes = [h.hex() for h in ask.hashes]
        for row in rows:
            binding = json.loads(row.binding)
            if (
                binding["documents"] == hashes
                and binding["signing_purpose"] == ask.purpose.to_json()
                and (ask.mandate_id is None or row.mandate_id == ask.mandate_id)
            ):
                return row
        raise SessionRefused(
            "no to_sign was issued for this request: call credentials/authorize without "
            "authData first",
            "CSC_ACTIVATION_NOT_FOUND",
        )


__all__ = ["CSC_FORMAT", "MULTISIGN_CEILING", "SAD_LIFETIME", "CscService", "HashRequest"]
