"""What the service publishes about mandates without signing per request (issue 9.12):
the AA's CRL, its OCSP answers and the signed 電子委任状.

Every PKCS#11 call is serialised per process, so a flood of anonymous ``/ac/crl`` or
``/ac/ocsp`` requests (or readers fetching documents, with a TSA round trip each)
would stall signing. So:

- **CRL**: one CRL is stored in the database (:class:`PublishedCrl`) and served by
  every worker alike. It is re-made in the same transaction as a revocation, and by
  the first request that finds it within :data:`AC_CRL_RENEWAL` of its nextUpdate
  (under the row lock, so workers make one between them).
- **OCSP**: a signed answer is kept per process for the request's CertIDs and served
  again for :data:`AC_OCSP_REUSE` while the statuses it states are still the
  database's (read per request: a revocation shows at once, on every worker). Served
  again, it carries no nonce (RFC 8954 allows that). A request about serials the AA
  never issued gets ``unauthorized``, unsigned (as RFC 5019 §2.2.3 has it), so random
  serials cannot make the HSM sign either.
- **Document**: the signed PDF is stored per mandate with a digest of everything it
  states but its issue time; it is signed again (HSM and TSA) only when that changes.
  No transaction is held while it is signed. This is the one write a ``GET`` makes
  besides the audit of a refusal, and deliberately so: what the document states
  (status, the chain's verdict) changes with time as well as with grants and
  revocations, so it cannot be made once at grant time; it is a cache of a signed
  rendering, written in a transaction of its own, never domain state.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from asn1crypto import ocsp
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.mandates import document as mandate_document
from app.mandates.models import Mandate, PublishedCrl, SignedMandateDocument
from delegation.certificates import AttributeAuthority
from delegation.verify import mandate_id_of

AC_CRL_VALIDITY = timedelta(minutes=15)  # thisUpdate to nextUpdate
# The CRL is re-made once less than this is left, so no one is handed one about to lapse.
AC_CRL_RENEWAL = timedelta(minutes=5)
AC_OCSP_VALIDITY = timedelta(minutes=5)  # thisUpdate to nextUpdate of an answer
# How long the responder serves one signed answer again (it then has ≥ 4 minutes left).
AC_OCSP_REUSE = timedelta(minutes=1)
OCSP_ANSWERS_KEPT = 4096  # per process; least recently used dropped first
_CRL_ROW = 1

Status = tuple[str, datetime | None, str | None]  # good|revoked|unknown, when, reason


# -- the CRL --------------------------------------------------------------------------


def _fresh(row: PublishedCrl, now: datetime) -> bool:
    return bool(row.crl_der) and row.this_update <= now < row.next_update - AC_CRL_RENEWAL


def publish_crl(session: Session, aa: AttributeAuthority, now: datetime) -> bytes:
    """Make the AA's CRL from the mandates as the session sees them and store it, in the
    caller's transaction (the caller commits). Locks the CRL row first, so concurrent
    revocations publish one after the other, the later one listing both."""
    row = session.scalars(
        select(PublishedCrl)
        .where(PublishedCrl.id == _CRL_ROW)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    revoked = session.execute(
        select(Mandate.id, Mandate.revoked_at, Mandate.revocation_reason).where(
            Mandate.revoked_at.is_not(None)
        )
    ).all()
    # Issue time in ms, but never below the last number: a CRL number only rises.
    number = max(row.number + 1, int(now.timestamp() * 1000))
    # (the query's IS NOT NULL, spelled out for the type checker: a CRL entry needs a time)
    row.crl_der = aa.crl(
        ((uuid.UUID(i).int, t, r or "unspecified") for i, t, r in revoked if t is not None),
        this_update=now,
        next_update=now + AC_CRL_VALIDITY,
        number=number,
    )
    row.number, row.this_update, row.next_update = number, now, now + AC_CRL_VALIDITY
    session.flush()
    return row.crl_der


def current_crl(session: Session, aa: AttributeAuthority, now: datetime) -> bytes:
    """The published CRL; re-made first when it is near its nextUpdate, in the caller's
    unit of work (the caller commits; ``dairi mandates sweep`` re-makes it in time, so
    a periodic sweep leaves none to re-make on ``GET /ac/crl``)."""
    row = session.get(PublishedCrl, _CRL_ROW)
    if row is None:
        raise RuntimeError("the published_crls row is missing: run `dairi db upgrade`")
    if _fresh(row, now):
        return row.crl_der
    locked = session.scalars(
        select(PublishedCrl)
        .where(PublishedCrl.id == _CRL_ROW)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return locked.crl_der if _fresh(locked, now) else publish_crl(session, aa, now)


def renew_crl(session: Session, aa: AttributeAuthority, now: datetime) -> bool:
    """Re-make the published CRL if it is within :data:`AC_CRL_RENEWAL` of its
    nextUpdate (the caller commits); whether it was."""
    row = session.scalars(
        select(PublishedCrl)
        .where(PublishedCrl.id == _CRL_ROW)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if _fresh(row, now):
        return False
    publish_crl(session, aa, now)
    return True


# -- OCSP -----------------------------------------------------------------------------


class _OcspAnswers:
    """Signed answers of one process, by the request's CertIDs (thread-safe, bounded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: OrderedDict[
            tuple[bytes, ...], tuple[tuple[Status, ...], datetime, bytes]
        ] = OrderedDict()

    def get(
        self, key: tuple[bytes, ...], statuses: tuple[Status, ...], now: datetime
    ) -> bytes | None:
        with self._lock:
            found = self._answers.get(key)
            if found is None:
                return None
            stated, produced_at, der = found
            if stated != statuses or not produced_at <= now < produced_at + AC_OCSP_REUSE:
                del self._answers[key]  # a revocation, or too old: never served again
                return None
            self._answers.move_to_end(key)
            return der

    def put(
        self, key: tuple[bytes, ...], statuses: tuple[Status, ...], now: datetime, der: bytes
    ) -> None:
        with self._lock:
            self._answers[key] = (statuses, now, der)
            self._answers.move_to_end(key)
            while len(self._answers) > OCSP_ANSWERS_KEPT:
                self._answers.popitem(last=False)


# One store per AA object, i.e. per ServiceContext (per app, per worker process).
_answers_by_aa: weakref.WeakKeyDictionary[AttributeAuthority, _OcspAnswers] = (
    weakref.WeakKeyDictionary()
)
_answers_lock = threading.Lock()


def _answers(aa: AttributeAuthority) -> _OcspAnswers:
    with _answers_lock:
        return _answers_by_aa.setdefault(aa, _OcspAnswers())


def _cert_ids(request_der: bytes) -> list[ocsp.CertId] | None:
    """The request's CertIDs, or None when it does not parse (the AA answers that)."""
    try:
        request = ocsp.OCSPRequest.load(bytes(request_der), strict=True)
        cert_ids = [r["req_cert"] for r in request["tbs_request"]["request_list"]]
        for cert_id in cert_ids:
            cert_id.native  # noqa: B018 - parse now, inside this error handling
        return cert_ids
    except (ValueError, TypeError, KeyError, IndexError, OverflowError):
        return None


def _statuses(session: Session, serials: Sequence[int]) -> dict[int, Status]:
    ids = {mandate_id_of(s): s for s in serials if 0 < s < 2**128}
    rows = (
        session.execute(
            select(Mandate.id, Mandate.revoked_at, Mandate.revocation_reason).where(
                Mandate.id.in_(list(ids))
            )
        ).all()
        if ids
        else []
    )
    found: dict[int, Status] = {s: ("unknown", None, None) for s in serials}
    for mandate_id, revoked_at, reason in rows:
        found[ids[mandate_id]] = (
            ("good", None, None) if revoked_at is None else ("revoked", revoked_at, reason)
        )
    return found


def ocsp_answer(
    session: Session, aa: AttributeAuthority, request_der: bytes, now: datetime
) -> bytes:
    """The AA's OCSP response to ``request_der``: reused while it states the database's
    statuses and is younger than :data:`AC_OCSP_REUSE`, else signed afresh."""
    cert_ids = _cert_ids(request_der)
    if not cert_ids:  # malformed: the AA says so, unsigned
        return aa.ocsp_response(request_der, lambda serial: ("unknown", None, None), now=now)
    serials = [c["serial_number"].native for c in cert_ids]
    by_serial = _statuses(session, serials)
    if all(state == "unknown" for state, _, _ in by_serial.values()):
        return ocsp.OCSPResponse({"response_status": "unauthorized"}).dump()
    statuses = tuple(by_serial[s] for s in serials)
    key = tuple(c.dump() for c in cert_ids)
    answers = _answers(aa)
    cached = answers.get(key, statuses, now)
    if cached is not None:
        return cached
    der = aa.ocsp_response(
        request_der, by_serial.__getitem__, now=now, validity=AC_OCSP_VALIDITY, echo_nonce=False
    )
    if ocsp.OCSPResponse.load(der)["response_status"].native == "successful":
        answers.put(key, statuses, now, der)
    return der


# -- the signed 電子委任状 ---------------------------------------------------------------


def signed_document(
    session: Session,
    session_factory: sessionmaker[Session],
    mandate_id: str,
    state_sha256: str,
    sign: Callable[[], bytes],
    now: datetime,
) -> bytes:
    """The stored signed document of ``mandate_id`` if it was made in ``state_sha256``
    (read through the request's ``session``); otherwise ``sign()`` makes it, outside any
    transaction, and it is stored in a transaction of its own (``session_factory``):
    the request itself, a ``GET``, writes nothing."""
    stored = session.get(SignedMandateDocument, mandate_id)
    if stored is not None and stored.state_sha256 == state_sha256:
        return stored.pdf
    # Hold no lock (SQLite: the write lock of BEGIN IMMEDIATE) over the HSM and TSA, nor
    # while the cache is written below; the request has nothing of its own to keep.
    session.rollback()
    pdf = sign()
    with session_factory() as cache:
        try:
            with cache.begin():
                stored = cache.scalars(
                    select(SignedMandateDocument)
                    .where(SignedMandateDocument.mandate_id == mandate_id)
                    .with_for_update()
                ).first()
                if stored is None:
                    cache.add(
                        SignedMandateDocument(
                            mandate_id=mandate_id,
                            state_sha256=state_sha256,
                            pdf=pdf,
                            created_at=now,
                        )
                    )
                elif stored.state_sha256 == state_sha256:
                    pdf = stored.pdf  # another worker signed it meanwhile: serve one document
                else:
                    stored.state_sha256, stored.pdf, stored.created_at = state_sha256, pdf, now
        except IntegrityError:  # another worker stored the first one at the same moment
            with cache.begin():
                stored = cache.get(SignedMandateDocument, mandate_id)
                if stored is not None and stored.state_sha256 == state_sha256:
                    pdf = stored.pdf
    return pdf


def document_state(lines: Sequence[str]) -> str:
    """The digest of a document's lines (rendered without its issue time) and of the
    version of its drawing, so a document drawn by an older renderer is drawn again."""
    return hashlib.sha256(
        "\n".join([f"rendering {mandate_document.RENDERING}", *lines]).encode()
    ).hexdigest()
