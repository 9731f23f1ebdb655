"""Signing sessions (DESIGN §6 signature activation, SCAL2; issue 11 items 2 and 7).

Nothing is signed without a SAD bought by a card proof over ``to_sign``, which binds
the credential, the mandate, the purpose and the exact documents. The mandate chain
is judged, with revocation checked fresh, when the session opens, when the SAD is
issued and again when it is spent; the credential is re-checked each time too.

Every state change writes its audit event in the caller's unit of work; this service
never commits, except the SAD's consumption, which stands whatever follows (a spent
SAD stays spent, like a spent login challenge): a conditional ``UPDATE … WHERE
sad_used_at IS NULL`` in a transaction of its own, so two requests can never both
spend one SAD.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.audit_trail.log import AuditLog
from app.context import ServiceContext
from app.credentials.models import Credential
from app.credentials.service import CredentialService
from app.database import new_id
from app.mandates.models import Mandate
from app.mandates.service import MandateService
from app.people.models import Person
from app.people.sign_in import AuthService, CardProof
from app.signing_sessions.acting_under import covering_mandate, instruction_parent, judge
from app.signing_sessions.activation import (
    SAD_LIFETIME,
    SessionRefused,
    SigningPurpose,
    Upload,
    activation_challenge,
    binding_json,
    new_sad,
    sad_digest,
    stored_challenge,
)
from app.signing_sessions.models import SessionDocument, SessionStatus, SigningSession
from app.unit_of_work import separate_transaction
from identity.proof import Challenge
from identity.trust import TrustPurpose
from signing import (
    PadesLevel,
    SigningCredential,
    XmlAlreadySigned,
    check_pdf,
    parse_untrusted_xml,
)

# What a session may produce: PAdES signatures of PDFs, a detached CMS over a
# sub-delegation instruction (issue 11 item 4), or XAdES signatures of XML documents
# (e-applications; issue 12 item 1), enveloped or detached.
PADES, CMS, XADES = "pades", "cms", "xades"
SESSION_FORMATS = (PADES, CMS, XADES)
ENVELOPED, DETACHED = "enveloped", "detached"
XADES_PACKAGINGS = (ENVELOPED, DETACHED)
_DS_SIGNATURE = "{http://www.w3.org/2000/09/xmldsig#}Signature"


def check_xml(document: bytes, max_bytes: int, packaging: str) -> None:
    """Refuse at upload what the XAdES signer would refuse: not XML
    (``DOCUMENT_NOT_XML``), a DTD or entity (``XML_UNSAFE``, before any parsing), over
    the limit (``DOCUMENT_TOO_LARGE``), or, for an enveloped signature, a document
    signed already (``XML_ALREADY_SIGNED``)."""
    root = parse_untrusted_xml(document, max_bytes).getroot()
    if packaging == ENVELOPED and next(root.iter(_DS_SIGNATURE), None) is not None:
        raise XmlAlreadySigned(
            "the XML is signed already; an enveloped signature would break that "
            "signature: sign it detached"
        )


@dataclass(frozen=True)
class OpenedSession:
    row: SigningSession
    documents: list[SessionDocument]
    challenge: Challenge


class SigningSessionService:
    """Opens, authorises and signs the signing sessions of one person."""

    def __init__(
        self, session: Session, context: ServiceContext, *, person_id: str, actor: str
    ) -> None:
        self.session = session
        self.context = context
        self.person_id = person_id
        self.actor = actor
        self.credentials = CredentialService(session, context.hsm, context.dev_pki)
        self.mandates = MandateService(
            session,
            context.settings,
            context.certificate_validator,
            context.attribute_authority,
            context.clock,
        )

    # -- opening --------------------------------------------------------------------

    def open(
        self,
        *,
        credential_id: str,
        purpose: SigningPurpose,
        format: str,
        level: PadesLevel,
        uploads: Sequence[Upload],
        mandate_id: str | None = None,
        stamp: bool = False,
        packaging: str | None = None,
    ) -> OpenedSession:
        """Open a session: the caller's active credential, the documents checked as
        PDFs (or, for ``xades``, XML documents; ``packaging`` enveloped by default, or
        detached) that can be signed, the mandate named (or the one covering the purpose
        held by the credential's certificate), its chain judged now; returns the row,
        its documents and the card challenge ``to_sign``."""
        settings = self.context.settings
        if format not in SESSION_FORMATS:
            raise SessionRefused(f"format {format!r} is not signed here", "SESSION_FORMAT_INVALID")
        if (format == CMS) != purpose.sub_delegation:
            raise SessionRefused(
                "a sub-delegation instruction is signed as cms, and nothing else is",
                "SESSION_FORMAT_INVALID",
            )
        if format == XADES:
            packaging = packaging or ENVELOPED
            if packaging not in XADES_PACKAGINGS:
                raise SessionRefused(
                    f"packaging {packaging!r} is not signed here", "SESSION_FORMAT_INVALID"
                )
            if stamp:
                raise SessionRefused(
                    "a visible stamp is drawn on PDFs only", "SESSION_FORMAT_INVALID"
                )
        elif packaging is not None:
            raise SessionRefused(
                "packaging is chosen for xades sessions only", "SESSION_FORMAT_INVALID"
            )
        if not uploads:
            raise SessionRefused("send at least one document", "DOCUMENTS_MISSING")
        if len(uploads) > settings.max_documents_per_session:
            raise SessionRefused(
                f"a session signs at most {settings.max_documents_per_session} documents",
                "DOCUMENTS_TOO_MANY",
            )
        if format == CMS:
            mandate_id = instruction_parent(uploads, purpose, mandate_id)
        for upload in uploads if format == PADES else ():
            check_pdf(upload.data, settings.max_document_bytes)  # DOCUMENT_* codes
        for upload in uploads if format == XADES else ():
            assert packaging is not None
            check_xml(upload.data, settings.max_document_bytes, packaging)
        credential, _ = self.own_credential(credential_id)
        now = self.context.clock()
        if mandate_id is None:
            mandate_id = covering_mandate(self.session, credential, purpose, now)
        self.judge(mandate_id, purpose, credential, now)
        digests = [hashlib.sha256(u.data).hexdigest() for u in uploads]
        row = SigningSession(
            person_id=self.person_id,
            credential_id=credential.id,
            credential_certificate_sha256=credential.certificate_sha256,
            mandate_id=mandate_id,
            principal=purpose.principal,
            purpose=json.dumps(purpose.to_json(), ensure_ascii=False, sort_keys=True),
            format=format,
            level=level.value,
            stamp=stamp,
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
            purpose=purpose,
            format=format,
            level=level.value,
            document_sha256s=digests,
            packaging=packaging,
        )
        row.nonce = challenge.nonce
        row.binding = binding_json(challenge)
        row.issued_at, row.expires_at = challenge.issued_at, challenge.expires_at
        documents = [
            SessionDocument(
                session_id=row.id,
                position=index,
                name=upload.name,
                size=len(upload.data),
                sha256=digest,
                content=upload.data,
            )
            for index, (upload, digest) in enumerate(zip(uploads, digests, strict=True))
        ]
        self.session.add(row)
        self.session.flush()  # the documents refer to it
        self.session.add_all(documents)
        self.session.flush()
        AuditLog(self.session).append(
            "signature:session:opened",
            actor=self.actor,
            subject=row.id,
            principal=row.principal,
            details={
                "credential_id": credential.id,
                "mandate_id": mandate_id,
                "purpose": purpose.to_json(),
                "format": format,
                "level": level.value,
                **({"packaging": packaging} if packaging else {}),
                "documents": digests,
            },
        )
        return OpenedSession(row, documents, challenge)

    # -- authorising ----------------------------------------------------------------

    def authorize(
        self, session_id: str, proof: CardProof, *, row: SigningSession | None = None
    ) -> tuple[SigningSession, str]:
        """Check the card's signature over ``to_sign`` (path, policy, revocation now; the
        signed-in person's own card), judge the chain again and issue the SAD: returns
        the row and the SAD, shown this once. ``row``: the session as :meth:`owned`
        just loaded it in this unit of work (saves loading it again)."""
        if row is None or row.id != session_id or row.person_id != self.person_id:
            row = self.owned(session_id)
        if row.authorized_at is not None:
            raise SessionRefused("the session is authorised already", "SESSION_ALREADY_AUTHORIZED")
        now = self.context.clock()
        if now >= row.expires_at:
            raise SessionRefused("the session's challenge expired; open another", "SESSION_EXPIRED")
        context, settings = self.context, self.context.settings
        challenge = stored_challenge(
            row.nonce, settings.public_base_url, row.issued_at, row.expires_at, row.binding
        )
        auth = AuthService(self.session, settings, context.certificate_validator, context.clock)
        validated = auth.check_proof(challenge, proof, TrustPurpose.JPKI_AUTH)
        person = self.session.get(Person, self.person_id)
        if person is None or validated.sha256 != person.auth_certificate_sha256:
            raise SessionRefused("the card is not that of the person signed in", "CARD_NOT_CALLERS")
        credential, _ = self.own_credential(row.credential_id)
        self.judge(row.mandate_id, SigningPurpose.from_json(row.purpose), credential, now)
        sad, digest = new_sad()
        expires_at = now + SAD_LIFETIME
        done = self.session.execute(
            update(SigningSession)
            .where(SigningSession.id == row.id, SigningSession.authorized_at.is_(None))
            .values(
                authorized_at=now,
                status=SessionStatus.AUTHORIZED.value,
                card_certificate_sha256=validated.sha256,
                sad_sha256=digest,
                sad_expires_at=expires_at,
            )
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise SessionRefused("the session is authorised already", "SESSION_ALREADY_AUTHORIZED")
        self.session.refresh(row)
        AuditLog(self.session).append(
            "signature:sad:issued",
            actor=self.actor,
            subject=row.id,
            principal=row.principal,
            details={
                "mandate_id": row.mandate_id,
                "card_certificate_sha256": validated.sha256,
                "documents": len(json.loads(row.binding)["documents"]),
                "sad_expires_at": expires_at.isoformat(),
            },
        )
        return row, sad

    # -- spending the SAD -------------------------------------------------------------

    def spend_sad(
        self, session_id: str, sad: str | None, *, hand_out: str | None = None
    ) -> SigningSession:
        """Consume the session's SAD for good (a transaction of its own, committed
        before the signatures are made). Raises ``SAD_MISSING``, ``SAD_INVALID`` (not
        this session's), ``SAD_USED``, ``SAD_EXPIRED``, ``SESSION_NOT_FOUND``; with
        ``hand_out`` (a format whose one signed document the caller wants in the
        answer), ``NOT_ACCEPTABLE`` for a session of another format or of several
        documents, the SAD left unspent."""
        if not sad:
            raise SessionRefused("send the SAD the authorisation issued", "SAD_MISSING")
        digest = sad_digest(sad)
        with separate_transaction(self.session):
            row = self.owned(session_id)
            now = self.context.clock()
            if row.sad_sha256 is None and now >= row.expires_at:
                raise SessionRefused("the session expired unauthorised", "SESSION_EXPIRED")
            if row.sad_sha256 is None or not hmac.compare_digest(digest, row.sad_sha256):
                raise SessionRefused("the SAD was not issued for this session", "SAD_INVALID")
            if row.sad_used_at is not None:
                raise SessionRefused("the SAD was used already", "SAD_USED")
            assert row.sad_expires_at is not None  # set with sad_sha256
            if now >= row.sad_expires_at:
                raise SessionRefused("the SAD expired; authorise a new session", "SAD_EXPIRED")
            if hand_out is not None and (
                row.format != hand_out or json.loads(row.binding)["document_count"] != 1
            ):
                raise SessionRefused(
                    f"only a {hand_out} session of one document answers it; "
                    "ask for application/json (the documents' hrefs)",
                    "NOT_ACCEPTABLE",
                )
            done = self.session.execute(
                update(SigningSession)
                .where(
                    SigningSession.id == row.id,
                    SigningSession.sad_sha256 == digest,
                    SigningSession.sad_used_at.is_(None),
                )
                .values(sad_used_at=now)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise SessionRefused("the SAD was used already", "SAD_USED")
        self.session.refresh(row)
        return row

    # -- shared checks -----------------------------------------------------------------

    def owned(self, session_id: str) -> SigningSession:
        """The caller's session; anyone else's is as if it did not exist."""
        row = self.session.scalars(
            select(SigningSession)
            .where(SigningSession.id == session_id)
            .execution_options(populate_existing=True)
        ).first()
        if row is None or row.person_id != self.person_id:
            raise SessionRefused(f"no signing session {session_id}", "SESSION_NOT_FOUND")
        return row

    def documents(self, row: SigningSession) -> list[SessionDocument]:
        return list(
            self.session.scalars(
                select(SessionDocument)
                .where(SessionDocument.session_id == row.id)
                .order_by(SessionDocument.position)
            )
        )

    def own_credential(self, credential_id: str) -> tuple[Credential, SigningCredential]:
        """The caller's credential, active (``CREDENTIAL_UNKNOWN``, ``CREDENTIAL_NOT_OWNED``,
        ``CREDENTIAL_NOT_ACTIVE`` for a revoked, suspended or pending one)."""
        credential = self.session.get(Credential, credential_id, populate_existing=True)
        if credential is None:
            raise SessionRefused(f"no credential {credential_id}", "CREDENTIAL_UNKNOWN")
        if credential.person_id != self.person_id:
            raise SessionRefused("the credential is not the caller's", "CREDENTIAL_NOT_OWNED")
        return credential, self.credentials.signing_credential(credential)

    def covering_mandate(
        self, credential: Credential, purpose: SigningPurpose, now: datetime
    ) -> str:
        """:func:`~app.signing_sessions.acting_under.covering_mandate` in this session."""
        return covering_mandate(self.session, credential, purpose, now)

    _covering_mandate = covering_mandate  # the name app.csc calls it by

    def judge(
        self, mandate_id: str, purpose: SigningPurpose, credential: Credential, now: datetime
    ) -> list[Mandate]:
        """:func:`~app.signing_sessions.acting_under.judge` with this service's mandates."""
        return judge(self.mandates, mandate_id, purpose, credential, now)
