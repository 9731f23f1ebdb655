"""The last step of a signing session: the SAD spent, the chain judged a third time,
the credential re-checked, then every document signed under the mandate, each with
its signature record and ``signature:FORMAT:created`` event (pades, xades, cms) in the
unit of work; and the signed documents handed out once each."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import update

from app.audit_trail.log import AuditLog
from app.mandates.document import jst_text
from app.mandates.evidence import mandate_evidence
from app.mandates.models import Mandate
from app.signatures.models import SignatureRecord
from app.signing_sessions.activation import SigningPurpose
from app.signing_sessions.models import SessionDocument, SessionStatus, SigningSession
from app.signing_sessions.service import (
    CMS,
    DETACHED,
    XADES,
    SessionRefused,
    SigningSessionService,
)
from delegation.scope import ACTION_LABELS, E_APPLICATION, E_APPLICATION_PREFIX
from signing import (
    MandateStamp,
    PadesLevel,
    PadesResult,
    PadesSpec,
    SigningCredential,
    XadesLevel,
    XadesResult,
    XadesSpec,
    sign_detached,
)
from signing.xades import XadesPackaging


@dataclass(frozen=True)
class SignedDocument:
    index: int
    name: str
    sha256: str
    signed_sha256: str
    signature_id: str
    # Handed out with the answer (sign_session's hand_out): the signed bytes and the
    # file name to serve them under.
    content: bytes | None = None
    served_name: str | None = None


def sign_session(
    service: SigningSessionService,
    session_id: str,
    sad: str | None,
    *,
    hand_out: str | None = None,
) -> list[SignedDocument]:
    """Spend the SAD and sign the session's documents; raises the SAD's, the
    credential's, the chain's or the signer's refusal (the SAD stays spent).

    ``hand_out``: the session's format, to hand its one signed document out with the
    answer rather than keep it to be fetched: it is recorded as fetched
    (``signature:document:fetched``) in this unit of work and never stored, so its
    ``href`` answers ``DOCUMENT_ALREADY_FETCHED``. A session of another format or of
    several documents is refused first (``NOT_ACCEPTABLE``), its SAD unspent."""
    row = service.spend_sad(session_id, sad, hand_out=hand_out)
    now = service.context.clock()
    credential, signing_credential = service.own_credential(row.credential_id)
    purpose = SigningPurpose.from_json(row.purpose)
    chain = service.judge(row.mandate_id, purpose, credential, now)
    documents = service.documents(row)
    binding = json.loads(row.binding)
    # The SAD names these documents and no others: their digests, in order, and count.
    held = [hashlib.sha256(d.content or b"").hexdigest() for d in documents]
    if held != binding["documents"] or len(documents) != binding["document_count"]:
        raise SessionRefused("the documents are not those the SAD names", "SAD_INVALID")
    packaging = binding.get("packaging")
    if row.format == CMS:
        results = [_cms(service, signing_credential, d.content or b"") for d in documents]
    elif row.format == XADES:
        xades_level = XadesLevel(row.level)
        evidence = mandate_evidence(
            service.context, service.session, chain, long_term=xades_level.long_term
        )
        xades = service.context.xades_signer
        shape: XadesPackaging = "detached" if packaging == DETACHED else "enveloped"
        results = [
            _as_result(
                xades.sign(
                    d.content or b"",
                    signing_credential,
                    XadesSpec(
                        xades_level,
                        packaging=shape,
                        mandate=evidence,
                        detached_uri=detached_uri(d.name) if packaging == DETACHED else None,
                    ),
                )
            )
            for d in documents
        ]
    else:
        level = PadesLevel(row.level)
        stamp = _stamp(chain, purpose, now) if row.stamp else None
        evidence = mandate_evidence(
            service.context, service.session, chain, long_term=level.long_term, stamp=stamp
        )
        spec = PadesSpec(level, mandate=evidence)
        signer = service.context.pades_signer
        results = [signer.sign(d.content or b"", signing_credential, spec) for d in documents]
    log = AuditLog(service.session)
    signed: list[SignedDocument] = []
    for document, result in zip(documents, results, strict=True):
        ref = signing_credential.key_ref
        record = SignatureRecord(
            credential_id=credential.id,
            token_label=ref.token_label,
            key_id=ref.key_id,
            key_version=ref.version,
            format=row.format,
            level=result.level.value,
            document_sha256=result.document_sha256,
            signed_document_sha256=result.signed_document_sha256,
            session_id=row.id,
            mandate_id=row.mandate_id,
            person_id=row.person_id,
        )
        service.session.add(record)
        service.session.flush()
        document.content = None  # only the signed document is kept, until fetched
        document.signed_content = None if hand_out else result.pdf
        document.fetched_at = now if hand_out else None
        document.signed_sha256 = result.signed_document_sha256
        document.signature_id = record.id
        log.append(
            f"signature:{row.format}:created",
            actor=service.actor,
            subject=record.id,
            principal=row.principal,
            details={
                "session_id": row.id,
                "mandate_id": row.mandate_id,
                "credential_id": credential.id,
                "level": result.level.value,
                **({"packaging": packaging} if packaging else {}),
                "index": document.position,
                "document_sha256": result.document_sha256,
                "signed_document_sha256": result.signed_document_sha256,
            },
        )
        if hand_out:
            record_fetch(
                service,
                row,
                record.id,
                document.position,
                result.signed_document_sha256,
                in_answer=True,
            )
        signed.append(
            SignedDocument(
                document.position,
                document.name,
                document.sha256,
                result.signed_document_sha256,
                record.id,
                result.pdf if hand_out else None,
                served_name(document.name, row.format, packaging) if hand_out else None,
            )
        )
    row.status = SessionStatus.SIGNED.value
    row.signed_at = now
    service.session.flush()
    return signed


def detached_uri(name: str) -> str:
    """The URI a detached XAdES signature names its document by: the uploaded file
    name, percent-encoded (UTF-8), so it is a relative URI reference and never a
    fragment; a verifier finds the document under that name beside the signature."""
    return quote(name, safe="")


def served_name(name: str, format: str, packaging: str | None) -> str:
    """The file name a signed document is served under: the upload's, except for a
    detached XAdES signature, a document of its own (``NAME.xades.xml``)."""
    if format == XADES and packaging == DETACHED:
        stem = name[:-4] if name.lower().endswith(".xml") else name
        return f"{stem}.xades.xml"
    return name


def record_fetch(
    service: SigningSessionService,
    row: SigningSession,
    signature_id: str | None,
    index: int,
    signed_sha256: str | None,
    *,
    in_answer: bool = False,
) -> None:
    """The audit event of a signed document handed out: fetched from its href, or
    ``in_answer`` to the signing request itself."""
    details: dict[str, object] = {
        "session_id": row.id,
        "index": index,
        "signed_sha256": signed_sha256,
    }
    if in_answer:
        details["in_answer"] = True
    AuditLog(service.session).append(
        "signature:document:fetched",
        actor=service.actor,
        subject=signature_id,
        principal=row.principal,
        details=details,
    )


def fetch_signed(
    service: SigningSessionService, session_id: str, index: int
) -> tuple[SessionDocument, str, str]:
    """The signed document at ``index``, handed out once: its bytes are dropped from
    storage in this unit of work (``DOCUMENT_ALREADY_FETCHED`` afterwards). Returns
    the document, the session's format and the file name to serve it under."""
    row = service.owned(session_id)
    document = next((d for d in service.documents(row) if d.position == index), None)
    if document is None or (document.signed_sha256 is None):
        raise SessionRefused(
            f"session {session_id} has no signed document {index}", "DOCUMENT_NOT_FOUND"
        )
    if document.fetched_at is not None:
        raise SessionRefused("the signed document was fetched already", "DOCUMENT_ALREADY_FETCHED")
    content = document.signed_content
    done = service.session.execute(
        update(SessionDocument)
        .where(SessionDocument.id == document.id, SessionDocument.fetched_at.is_(None))
        .values(fetched_at=service.context.clock(), signed_content=None)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise SessionRefused("the signed document was fetched already", "DOCUMENT_ALREADY_FETCHED")
    record_fetch(service, row, document.signature_id, index, document.signed_sha256)
    service.session.expunge(document)
    document.signed_content = content
    packaging = json.loads(row.binding).get("packaging")
    return document, row.format, served_name(document.name, row.format, packaging)


def _cms(
    service: SigningSessionService, credential: SigningCredential, instruction: bytes
) -> PadesResult:
    """A detached CMS over the grant instruction, made with the HSM key, in the shape
    of a signing result (level B-B: CMS with signingCertificateV2, no timestamp)."""
    cms = sign_detached(service.context.hsm, credential, instruction)
    return PadesResult(
        pdf=cms,
        level=PadesLevel.B_B,
        field_name="",
        document_sha256=hashlib.sha256(instruction).hexdigest(),
        signed_document_sha256=hashlib.sha256(cms).hexdigest(),
    )


def _as_result(result: XadesResult) -> PadesResult:
    """An XAdES result in the shape of a signing result (the level names are the same)."""
    return PadesResult(
        pdf=result.xml,
        level=PadesLevel(result.level.value),
        field_name=result.signature_id,
        document_sha256=result.document_sha256,
        signed_document_sha256=result.signed_document_sha256,
    )


def _stamp(chain: list[Mandate], purpose: SigningPurpose, now) -> MandateStamp:  # type: ignore[no-untyped-def]
    action = purpose.action
    label = ACTION_LABELS.get(action) or (
        f"{ACTION_LABELS[E_APPLICATION]} ({action.removeprefix(E_APPLICATION_PREFIX)})"
        if action.startswith(E_APPLICATION_PREFIX)
        else action
    )
    return MandateStamp(
        agent=chain[-1].grantee_name,
        principal=chain[0].principal_name,
        actions=label,
        case=purpose.case or "—",
        signed_at=jst_text(now),
    )
