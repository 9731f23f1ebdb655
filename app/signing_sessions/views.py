"""Signing sessions over the API (DESIGN §6 signature activation, SCAL2; issue 11 items
2 and 7): open a session with the documents (multipart), authorise it with the card's
signature over ``to_sign`` (a SAD, single use, 5 minutes), sign with the SAD, fetch
each signed document once."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any
from urllib.parse import quote

from flask import Response, request
from flask.blueprints import BlueprintSetupState
from flask_smorest import Blueprint

from app.audit_trail.log import record_refusal
from app.http.edge import body_limit
from app.http.problems import ProblemError
from app.http.request_scope import audit_refusals, current_context, get_session, refusal_recorded
from app.http.schemas import BINARY, guard_json_body, refuse_unstorable_text
from app.http.security import allow, current_caller
from app.people.models import Role
from app.people.sign_in import CardProof
from app.people.sign_in_views import ProofSchema
from app.signing_sessions.activation import SigningPurpose, stored_challenge
from app.signing_sessions.models import SigningSession
from app.signing_sessions.schemas import (
    MULTIPART,
    ActivationSchema,
    PurposeSchema,  # noqa: F401 - app.csc imports it from here
    SessionRequestSchema,
    SessionSchema,
    SignaturesSchema,
    SignRequestSchema,
)
from app.signing_sessions.service import (
    OpenedSession,
    SessionRefused,
    SigningSessionService,
    Upload,
)
from app.signing_sessions.signing import SignedDocument, fetch_signed, sign_session
from dairi import DairiError
from identity.certificate_files import load_certificate
from signing import PadesLevel

blp = Blueprint(
    "signing_sessions",
    __name__,
    url_prefix="/api/v1",
    description="Signing sessions: documents, the card's activation (SAD) and the signatures",
)
OPEN = "open_session"
audit_refusals(
    blp.name,
    "signature:session:refused",
    {"authorize": "signature:sad:refused", "sign": "signature:signing:refused"},
)
NAME_MAX = 255
# What a signed document is served as, per session format.
CMS_MEDIA_TYPE = "application/pkcs7-signature"
XML_MEDIA_TYPE = "application/xml"
MEDIA_TYPES = {"pades": "application/pdf", "cms": CMS_MEDIA_TYPE, "xades": XML_MEDIA_TYPE}
FORMATS = {media: format for format, media in MEDIA_TYPES.items()}
JSON_MEDIA_TYPE = "application/json"
# What POST …/signatures answers, in order of preference when the client accepts any.
SIGNATURE_ANSWERS = [JSON_MEDIA_TYPE, *MEDIA_TYPES.values()]
DEFAULT_EXTENSIONS = {"pades": ".pdf", "cms": ".json", "xades": ".xml"}
# Schemas are built once (a marshmallow schema copies its fields when built); loading
# keeps no state in them.
SESSION_REQUEST = SessionRequestSchema()


@blp.before_request
def _guard() -> None:
    """JSON bodies, except the multipart upload that opens a session."""
    if request.endpoint != f"{blp.name}.{OPEN}":
        guard_json_body()
        return
    refuse_unstorable_text("path", request.view_args or {})
    refuse_unstorable_text("query", request.args.to_dict(flat=False))
    if request.mimetype != "multipart/form-data":
        raise ProblemError("UNSUPPORTED_MEDIA_TYPE", detail="send multipart/form-data")


# -- helpers ------------------------------------------------------------------


def _service() -> SigningSessionService:
    caller = current_caller()
    assert caller.person_id is not None  # allow(EMPLOYEE) lets only people through
    return SigningSessionService(
        get_session(), current_context(), person_id=caller.person_id, actor=caller.actor
    )


def _refused(tag: str, exc: DairiError, subject: str | None) -> None:
    get_session().rollback()
    record_refusal(
        current_context().session_factory,
        tag,
        actor=current_caller().actor,
        code=exc.code,
        subject=subject,
    )
    refusal_recorded()


@functools.lru_cache(maxsize=256)
def _certificate(data: bytes) -> bytes:
    """:func:`load_certificate`, once per process for the same bytes (a card's
    certificate comes back with every authorisation; a refusal is not cached)."""
    return load_certificate(data)


def _card_proof(args: dict[str, Any]) -> CardProof:
    """:func:`app.people.sign_in_views.card_proof`, its certificates read through
    :func:`_certificate`."""
    return CardProof(
        _certificate(args["certificate"]),
        args["signature"],
        tuple(_certificate(c) for c in args["intermediates"]),
    )


def _answer_refusal(exc: DairiError) -> DairiError:
    if isinstance(exc, SessionRefused) and exc.mandates:
        return ProblemError(exc.code, detail=exc.message, mandates=exc.mandates)
    return exc


def _state(
    service: SigningSessionService,
    row: SigningSession,
    opened: OpenedSession | None = None,
) -> dict[str, Any]:
    """The session's state; with ``opened`` (the session just opened), its documents
    and challenge as :meth:`SigningSessionService.open` made them, not read back."""
    challenge = (
        opened.challenge
        if opened is not None
        else stored_challenge(
            row.nonce,
            current_context().settings.public_base_url,
            row.issued_at,
            row.expires_at,
            row.binding,
        )
    )
    documents = opened.documents if opened is not None else service.documents(row)
    return {
        "id": row.id,
        "status": row.status,
        "credential_id": row.credential_id,
        "mandate_id": row.mandate_id,
        "purpose": json.loads(row.purpose),
        "format": row.format,
        "packaging": json.loads(row.binding).get("packaging"),
        "level": row.level,
        "documents": [
            {
                "position": d.position,
                "name": d.name,
                "size": d.size,
                "sha256": d.sha256,
                "signed_sha256": d.signed_sha256,
                "fetched": d.fetched_at is not None,
            }
            for d in documents
        ],
        "to_sign": base64.b64encode(challenge.to_sign()).decode("ascii"),
        "expires_at": row.expires_at,
        "authorized_at": row.authorized_at,
        "sad_expires_at": row.sad_expires_at,
        "signed_at": row.signed_at,
    }


def _uploads(format: str) -> list[Upload]:
    uploads = []
    extension = DEFAULT_EXTENSIONS.get(format, "")
    for index, part in enumerate(request.files.getlist("document")):
        name = (part.filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
        name = name[:NAME_MAX] or f"document-{index}{extension}"
        refuse_unstorable_text("document", name)
        uploads.append(Upload(name, part.read()))
    return uploads


# -- views --------------------------------------------------------------------


@blp.route("/signing-sessions", methods=["POST"])
@allow(Role.EMPLOYEE)
@blp.doc(requestBody=MULTIPART)
@blp.response(201, SessionSchema)
def open_session() -> dict[str, Any]:
    """Open a signing session: the credential (the caller's own, active), the purpose,
    the format (``pades``: PDFs; ``xades``: XML documents such as e-applications, with
    ``packaging`` ``enveloped`` (default) or ``detached``, checked at upload:
    ``DOCUMENT_NOT_XML``, ``XML_UNSAFE`` for a DTD or entity, ``XML_ALREADY_SIGNED``
    for enveloped), the level, one or more documents (parts named ``document``, at most
    ``max_documents_per_session``, each at most ``max_document_bytes``) and the mandate
    to act under (default: the one covering the purpose held by the credential; none →
    403 ``NO_COVERING_MANDATE``, several → 409 ``MANDATE_AMBIGUOUS`` with ``mandates``).
    The chain is judged now. The answer's ``to_sign`` is what the card signs next."""
    raw = request.form.get("request")
    if raw is None:
        raise ProblemError("VALIDATION_FAILED", errors={"request": ["Missing data."]})
    try:
        args = SESSION_REQUEST.loads(raw)
    except json.JSONDecodeError:
        raise ProblemError("VALIDATION_FAILED", errors={"request": ["Not JSON."]}) from None
    refuse_unstorable_text("request", args)
    service = _service()
    try:
        opened = service.open(
            credential_id=args["credential_id"],
            purpose=SigningPurpose(**args["purpose"]),
            format=args["format"],
            level=PadesLevel(args["level"]),
            uploads=_uploads(args["format"]),
            mandate_id=args["mandate_id"],
            stamp=args["stamp"],
            packaging=args["packaging"],
        )
    except DairiError as exc:
        _refused("signature:session:refused", exc, None)
        raise _answer_refusal(exc) from None
    return _state(service, opened.row, opened)


@blp.route("/signing-sessions/<session_id>", methods=["GET"])
@allow(Role.EMPLOYEE)
@blp.response(200, SessionSchema)
def get_session_state(session_id: str) -> dict[str, Any]:
    """The session's state; its owner's only (others: 404 ``SESSION_NOT_FOUND``)."""
    service = _service()
    return _state(service, service.owned(session_id))


@blp.route("/signing-sessions/<session_id>/authorization", methods=["POST"])
@allow(Role.EMPLOYEE)
@blp.arguments(ProofSchema())
@blp.response(200, ActivationSchema)
def authorize(args: dict[str, Any], session_id: str) -> dict[str, Any]:
    """Authorise the session with the card: the JPKI authentication certificate of the
    person signed in (another's: 403 ``CARD_NOT_CALLERS``) and its signature over
    ``to_sign``. The chain is judged again, revocation checked now. Returns the SAD,
    single use, within 5 minutes; once per session (409 ``SESSION_ALREADY_AUTHORIZED``)."""
    service = _service()
    try:
        owned = service.owned(session_id)  # an unknown session is that, whatever the proof
        row, sad = service.authorize(session_id, _card_proof(args), row=owned)
    except DairiError as exc:
        _refused("signature:sad:refused", exc, session_id)
        raise
    documents = len(json.loads(row.binding)["documents"])
    return {"sad": sad, "expires_at": row.sad_expires_at, "documents": documents}


@blp.route("/signing-sessions/<session_id>/signatures", methods=["POST"])
@allow(Role.EMPLOYEE)
@blp.arguments(SignRequestSchema())
@blp.response(200, SignaturesSchema)
@blp.doc(
    responses={
        "200": {
            "description": "The signed documents' hrefs (JSON), or with ``Accept`` naming "
            "the session's media type, its one signed document itself",
            "content": {
                **{media: {"schema": BINARY} for media in MEDIA_TYPES.values()},
                JSON_MEDIA_TYPE: {"schema": SignaturesSchema},
            },
            "headers": {
                "Repr-Digest": {
                    "description": "A signed document in the answer: its SHA-256 "
                    "(RFC 9530, sha-256=:base64:)",
                    "schema": {"type": "string"},
                },
                "Dairi-Signature-Id": {
                    "description": "A signed document in the answer: its signature record",
                    "schema": {"type": "string"},
                },
            },
        }
    }
)
def sign(args: dict[str, Any], session_id: str) -> Response | dict[str, Any]:
    """Spend the SAD (``SAD_MISSING``, ``SAD_INVALID``, ``SAD_USED``, ``SAD_EXPIRED``):
    the chain is judged a third time and the credential re-checked, then every
    document is signed (PAdES, or XAdES for an ``xades`` session, at the session's
    level, under the mandate; audited as ``signature:FORMAT:created``).

    By default (``Accept: application/json``) the answer lists the signed documents,
    each fetched once from its ``href``. A session of one document can answer the
    signed document itself instead, saving the fetch: send ``Accept`` with the
    session's media type (``application/pdf``, ``application/xml`` for ``xades``,
    ``application/pkcs7-signature`` for ``cms``). It is then handed out as if fetched
    (its ``href`` answers 410 ``DOCUMENT_ALREADY_FETCHED``), with ``Repr-Digest`` and
    ``Dairi-Signature-Id`` headers. Asked of a session of several documents or of
    another format: 406 ``NOT_ACCEPTABLE``, the SAD left unspent."""
    accepted = request.accept_mimetypes  # none at all: any answer, so the default
    wanted = accepted.best_match(SIGNATURE_ANSWERS) if accepted else JSON_MEDIA_TYPE
    hand_out = FORMATS.get(wanted) if wanted else None
    try:
        if wanted is None:
            raise ProblemError(
                "NOT_ACCEPTABLE", detail="the answer is application/json or the signed document"
            )
        signed = sign_session(_service(), session_id, args["sad"], hand_out=hand_out)
    except DairiError as exc:
        _refused("signature:signing:refused", exc, session_id)
        raise
    if hand_out is not None:
        (document,) = signed
        assert document.content is not None and document.served_name is not None
        return _document_response(document.content, hand_out, document.served_name, document)
    base = f"/api/v1/signing-sessions/{session_id}/documents"
    return {
        "documents": [
            {
                "index": d.index,
                "name": d.name,
                "sha256": d.sha256,
                "signed_sha256": d.signed_sha256,
                "signature_id": d.signature_id,
                "href": f"{base}/{d.index}",
            }
            for d in signed
        ]
    }


@blp.route("/signing-sessions/<session_id>/documents/<int:index>", methods=["GET"])
@allow(Role.EMPLOYEE)
@blp.response(
    200, BINARY, content_type="application/pdf", description="The signed PDF (or XML, or CMS)"
)
@blp.doc(
    responses={
        "200": {
            "description": "The signed PDF, the signed XML (xades enveloped), the XAdES "
            "signature document (xades detached, named NAME.xades.xml) or the detached CMS",
            "content": {media: {"schema": BINARY} for media in MEDIA_TYPES.values()},
        }
    }
)
def fetch_document(session_id: str, index: int) -> Response:
    """A signed document, once (then 410 ``DOCUMENT_ALREADY_FETCHED``): a PDF, or for a
    ``cms`` session the detached CMS over the sub-delegation instruction, which the
    grantee sends with the instruction to ``POST /api/v1/mandates``; for an ``xades``
    session the signed XML (``application/xml``), or when detached the signature
    document (``NAME.xades.xml``), whose reference URI is the document's file name
    percent-encoded."""
    document, format, name = fetch_signed(_service(), session_id, index)
    assert document.signed_content is not None
    return _document_response(document.signed_content, format, name)


def _document_response(
    content: bytes, format: str, name: str, signed: SignedDocument | None = None
) -> Response:
    """A signed document as an attachment named ``name``; handed out with the
    signatures' answer (``signed``), with its digest and signature record."""
    response = Response(content, mimetype=MEDIA_TYPES[format])
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
    if signed is not None:
        digest = base64.b64encode(bytes.fromhex(signed.signed_sha256)).decode("ascii")
        response.headers["Repr-Digest"] = f"sha-256=:{digest}:"
        response.headers["Dairi-Signature-Id"] = signed.signature_id
    return response


# After the views: the deferred setup runs in order, and the view must be registered.
@blp.record_once
def _body_cap(state: BlueprintSetupState) -> None:
    # Every document of a session arrives in one body (app.http.edge caps it).
    settings = state.app.extensions["dairi"].settings
    cap = settings.max_documents_per_session * (settings.max_document_bytes + 8192) + 65536
    body_limit(cap)(state.app.view_functions[f"{blp.name}.{OPEN}"])
