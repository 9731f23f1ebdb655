"""Mandates (電子委任状): grant, read, revoke, judge chains, ask who may act; and the
attribute authority's CRL and OCSP responder for mandate ACs under ``/ac/``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from asn1crypto import pem
from flask import Response, request
from flask_smorest import Blueprint

from app.audit_trail.log import record_refusal
from app.http.edge import body_limit
from app.http.problems import ProblemError
from app.http.request_scope import (
    audit_refusals,
    current_context,
    get_session,
    refusal_recorded,
)
from app.http.schemas import (
    BINARY,
    Base64Bytes,
    Moment,
    PageArgs,
    action_field,
    binary_request,
    corporate_number_field,
    guard_json_body,
)
from app.http.security import allow, current_caller
from app.mandates.ac_status import AcStatus
from app.mandates.authority import AuthorityQuery
from app.mandates.document import ChainLine, MandateDocument, document_lines, jst_text, mandate_pdf
from app.mandates.instruction_schema import (
    GRANT_INSTRUCTION_SCHEMA,
    SCHEMA_NAME,
    SCHEMA_REF,
    SchemaComponentsBlueprint,
)
from app.mandates.models import Mandate
from app.mandates.publication import document_state, signed_document
from app.mandates.service import REVOCATION_REASONS, MandateService, status_at
from app.people.caller import Permission, permits
from app.people.models import Role
from dairi import DairiError
from delegation.chain import ChainVerdict
from delegation.scope import (
    ACTION_LABELS,
    E_APPLICATION_PREFIX,
    Purpose,
    ScopeError,
    validate_action,
)
from signing import PadesLevel, PadesSpec

blp = SchemaComponentsBlueprint(
    "mandates",
    __name__,
    url_prefix="/api/v1",
    description="Electronic powers of attorney (電子委任状): mandates and authority",
    schemas={SCHEMA_NAME: GRANT_INSTRUCTION_SCHEMA},
)
blp.before_request(guard_json_body)

ac_blp = Blueprint(
    "ac",
    __name__,
    url_prefix="/ac",
    description="The attribute authority's status services for mandate ACs",
)
# Every refusal these endpoints answer is audited (app.http.request_scope), under the
# tag of its view; the service's refusals are recorded by _refused with the same tags.
audit_refusals(
    blp.name,
    "mandate:request:refused",
    {
        "grant": "mandate:grant:refused",
        "revoke": "mandate:revocation:refused",
        "get_mandate": "mandate:read:refused",
        "list_mandates": "mandate:list:refused",
        "chain": "mandate:chain:refused",
        "document": "mandate:document:refused",
        "authority": "mandate:authority:refused",
    },
)
audit_refusals(ac_blp.name, "ac:request:refused")

READERS = (Role.EMPLOYEE, Role.REPRESENTATIVE, Role.AUDITOR, Role.ADMINISTRATOR)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # a document's state leaves its issue time out
OCSP_REQUEST_BYTES = 16 * 1024


def mandate_service() -> MandateService:
    """The mandate service on the request's session (the API's and the console's)."""
    context = current_context()
    return MandateService(
        get_session(),
        context.settings,
        context.certificate_validator,
        context.attribute_authority,
        context.clock,
    )


def _ac_status() -> AcStatus:
    context = current_context()
    return AcStatus(get_session(), context.attribute_authority, context.clock)


def readable_mandate(mandate_id: str) -> Mandate:
    row = mandate_service().get(mandate_id)
    if not permits(current_caller(), Permission.READ, row.principal):
        # Another corporation's mandate: as if it did not exist.
        raise ProblemError("MANDATE_NOT_FOUND", detail=f"no mandate {mandate_id}")
    return row


def _refused(tag: str, exc: DairiError, subject: str | None = None) -> None:
    get_session().rollback()
    record_refusal(
        current_context().session_factory,
        tag,
        actor=current_caller().actor,
        code=exc.code,
        subject=subject,
    )
    refusal_recorded()


# -- schemas ------------------------------------------------------------------


class GrantRequestSchema(ma.Schema):
    instruction = Base64Bytes(
        required=True,
        metadata={
            "description": f"The grant instruction ({SCHEMA_REF}): canonical JSON (RFC 8785), "
            "exactly the bytes signed, with a fresh nonce and its creation time "
            "(UTC, whole seconds, like 2026-04-01T09:00:00Z). Each is "
            "accepted once (409 INSTRUCTION_REPLAYED) and only within "
            "instruction_max_age_seconds of its creation (422 INSTRUCTION_STALE)"
        },
    )
    signatures = Base64Bytes(
        required=True,
        metadata={
            "description": "Detached CMS SignedData over the instruction: the representatives' "
            "(registration certificates) or the parent grantee's"
        },
    )
    grantee_certificate = Base64Bytes(
        required=True,
        metadata={
            "description": "The grantee's signing certificate (DER): the AC holder; its SHA-256 "
            "is the instruction's grantee.certificate_sha256"
        },
    )
    grantee_person_id = ma.fields.String(
        required=True,
        validate=ma.validate.Length(max=36),
        metadata={"description": "The enrolled employee"},
    )


class MandateSchema(ma.Schema):
    id = ma.fields.String()
    principal = ma.fields.Dict(metadata={"description": "corporate_number (法人番号), name"})
    parent_id = ma.fields.String(allow_none=True)
    depth = ma.fields.Integer()
    grantor = ma.fields.Dict()
    grantee = ma.fields.Dict()
    scope = ma.fields.Dict()
    status = ma.fields.String(
        metadata={"description": "active, revoked, expired or not_yet_valid (now)"}
    )
    revoked_at = ma.fields.DateTime(allow_none=True)
    revocation_reason = ma.fields.String(allow_none=True)
    instruction = Base64Bytes()
    instruction_sha256 = ma.fields.String()
    attribute_certificate = Base64Bytes(metadata={"description": "DER RFC 5755 ACv2"})
    created_at = ma.fields.DateTime()
    reissued_from_id = ma.fields.String(
        metadata={
            "description": "Present on a mandate the attribute authority re-issued when its "
            "holder's credential (or an ancestor's) was renewed: the mandate it supersedes"
        }
    )


class MandatePageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(MandateSchema))
    page = ma.fields.Integer()
    page_size = ma.fields.Integer()
    total = ma.fields.Integer()


class MandateQuerySchema(PageArgs):
    principal = corporate_number_field()
    grantee = ma.fields.String(
        metadata={"description": "Person id or the holder certificate's SHA-256"}
    )
    status = ma.fields.String(validate=ma.validate.OneOf(["active", "revoked"]))
    at = Moment(metadata={"description": "Status at this time (default now)"})
    action = action_field()  # mandates whose scope names this action
    procuring_entity = ma.fields.String(
        validate=ma.validate.Length(min=1, max=300),
        metadata={"description": "Mandates whose scope names this procuring entity, or any entity"},
    )


class PurposeQuerySchema(ma.Schema):
    action = action_field()
    procuring_entity = ma.fields.String(validate=ma.validate.Length(min=1, max=300))
    case = ma.fields.String(validate=ma.validate.Length(min=1, max=300))
    amount_jpy = ma.fields.Integer(validate=ma.validate.Range(min=0))
    at = Moment()


class AuthorityQuerySchema(PurposeQuerySchema):
    principal = corporate_number_field(required=True)
    action = action_field(required=True)


class RevocationRequestSchema(ma.Schema):
    reason = ma.fields.String(
        load_default="privilege_withdrawn", validate=ma.validate.OneOf(REVOCATION_REASONS)
    )


class RevocationSchema(ma.Schema):
    revoked = ma.fields.List(
        ma.fields.String(),
        metadata={"description": "The mandate and every descendant revoked with it"},
    )
    revoked_at = ma.fields.DateTime()


class ChainSchema(ma.Schema):
    at = ma.fields.DateTime()
    holds = ma.fields.Boolean()
    reasons = ma.fields.List(
        ma.fields.String(),
        metadata={
            "description": "Why the chain does not hold: the chain's own reason codes, then "
            "each hop's (root first), once each; empty exactly when it holds"
        },
    )
    hops = ma.fields.List(ma.fields.Dict())


class AuthoritySchema(ma.Schema):
    at = ma.fields.DateTime()
    principal = ma.fields.String()
    purpose = ma.fields.Dict()
    authorities = ma.fields.List(
        ma.fields.Dict(),
        metadata={"description": "Who could act, each with the chain (root first) it acts through"},
    )


def mandate_json(row: Mandate, at: datetime) -> dict[str, Any]:
    shown = _mandate_fields(row, at)
    if row.reissued_from_id is not None:
        shown["reissued_from_id"] = row.reissued_from_id
    return shown


def _mandate_fields(row: Mandate, at: datetime) -> dict[str, Any]:
    return {
        "id": row.id,
        "principal": {"corporate_number": row.principal, "name": row.principal_name},
        "parent_id": row.parent_id,
        "depth": row.depth,
        "grantor": {
            "name": row.grantor_name,
            "title": row.grantor_title,
            "certificate_sha256": row.grantor_certificate_sha256,
        },
        "grantee": {
            "person_id": row.grantee_person_id,
            "name": row.grantee_name,
            "certificate_sha256": row.grantee_certificate_sha256,
        },
        "scope": row.scope.to_json(),
        "status": status_at(row, at),
        "revoked_at": row.revoked_at,
        "revocation_reason": row.revocation_reason,
        "instruction": row.instruction,
        "instruction_sha256": row.instruction_sha256,
        "attribute_certificate": row.attribute_certificate,
        "created_at": row.created_at,
    }


def _purpose(args: dict[str, Any], at: datetime) -> Purpose | None:
    if "action" not in args:
        return None
    try:
        return Purpose(
            args["action"],
            args.get("procuring_entity"),
            args.get("case"),
            args.get("amount_jpy"),
            args.get("at") or at,
        )
    except ScopeError as exc:
        raise ProblemError(exc.code, detail=exc.message) from None


def _verdict_json(rows: list[Mandate], verdict: ChainVerdict, at: datetime) -> dict[str, Any]:
    hops = [
        {
            "mandate_id": row.id,
            "depth": row.depth,
            "grantor": row.grantor_name,
            "grantee": row.grantee_name,
            "status": status_at(row, at),
            "holds": hop.holds,
            "reasons": list(hop.reasons),
        }
        for row, hop in zip(rows, verdict.hops, strict=True)
    ]
    # Top-level reasons: every code the verdict has, chain-level first, then each hop's
    # root first, once each, so ``holds`` is false exactly when ``reasons`` is not empty.
    return {"at": at, "holds": verdict.holds, "reasons": list(verdict.codes()), "hops": hops}


# -- endpoints ----------------------------------------------------------------


@blp.route("/mandates", methods=["POST"])
@allow(Role.REPRESENTATIVE, Role.EMPLOYEE, Role.ADMINISTRATOR)
@blp.arguments(GrantRequestSchema)
@blp.response(201, MandateSchema)
def grant(args: dict[str, Any]) -> dict[str, Any]:
    """Grant a mandate: a representative's grant (signed with the registration
    certificates, as many as joint representation requires) or a sub-delegation
    (signed by the parent's grantee with the signing key the parent names). The
    attribute authority issues the mandate's AC.

    ``instruction`` is the base64 of the grant instruction's canonical JSON, whose
    members (``type`` ``dairi-grant-instruction/2``, times in UTC whole seconds like
    ``2026-04-01T09:00:00Z``) the schema ``GrantInstruction`` gives:
    [#/components/schemas/GrantInstruction](#/components/schemas/GrantInstruction).
    """
    caller = current_caller()
    try:
        row = mandate_service().grant(
            args["instruction"],
            args["signatures"],
            grantee_certificate=args["grantee_certificate"],
            grantee_person_id=args["grantee_person_id"],
            actor=caller,
        )
    except DairiError as exc:
        _refused("mandate:grant:refused", exc)
        raise
    return mandate_json(row, current_context().clock())


@blp.route("/mandates", methods=["GET"])
@allow(*READERS, scopes=("mandates:read",))
@blp.arguments(MandateQuerySchema, location="query")
@blp.response(200, MandatePageSchema)
def list_mandates(args: dict[str, Any]) -> dict[str, Any]:
    """Mandates, newest first: of one principal, a grantee, with a status at a time.
    People and API clients see their own corporations' mandates only."""
    return mandate_page(args)


def mandate_page(args: dict[str, Any]) -> dict[str, Any]:
    """One page of mandates for :class:`MandateQuerySchema` arguments, as the caller
    may read them (the API's listing and the console's)."""
    if args.get("action") is not None:
        validate_action(args["action"])  # 422 SCOPE_ACTION_UNKNOWN, as the domain says
    caller = current_caller()
    principal = args.get("principal")
    if principal is not None and not permits(caller, Permission.READ, principal):
        raise ProblemError("FORBIDDEN", detail=f"not allowed for corporation {principal}")
    principals = (
        [principal]
        if principal
        else (None if caller.reads_all_corporations else sorted(caller.readable_corporations))
    )
    size = args["page_size"]
    rows, total = mandate_service().search(
        principals=principals,
        grantee=args.get("grantee"),
        status=args.get("status"),
        at=args.get("at"),
        action=args.get("action"),
        procuring_entity=args.get("procuring_entity"),
        limit=size,
        offset=(args["page"] - 1) * size,
    )
    at = args.get("at") or current_context().clock()
    return {
        "items": [mandate_json(r, at) for r in rows],
        "page": args["page"],
        "page_size": size,
        "total": total,
    }


@blp.route("/mandates/<mandate_id>", methods=["GET"])
@allow(*READERS, scopes=("mandates:read",))
@blp.response(200, MandateSchema)
def get_mandate(mandate_id: str) -> dict[str, Any]:
    """One mandate with its instruction and attribute certificate."""
    return mandate_json(readable_mandate(mandate_id), current_context().clock())


@blp.route("/mandates/<mandate_id>/revocation", methods=["POST"])
@allow(Role.REPRESENTATIVE, Role.EMPLOYEE, Role.ADMINISTRATOR)
@blp.arguments(RevocationRequestSchema, required=False)  # no body: the default reason
@blp.response(200, RevocationSchema)
def revoke(args: dict[str, Any], mandate_id: str) -> dict[str, Any]:
    """Revoke a mandate, at once, with every mandate granted under it. Its grantor,
    the grantor of any ancestor, a representative of the principal or an
    administrator may."""
    return revoke_mandate(mandate_id, args["reason"])


def revoke_mandate(mandate_id: str, reason: str) -> dict[str, Any]:
    """Revoke as the caller (the API's and the console's); refusals audited."""
    readable_mandate(mandate_id)
    try:
        revoked = mandate_service().revoke(mandate_id, actor=current_caller(), reason=reason)
    except DairiError as exc:
        _refused("mandate:revocation:refused", exc, subject=mandate_id)
        raise
    return {"revoked": [m.id for m in revoked], "revoked_at": revoked[0].revoked_at}


@blp.route("/mandates/<mandate_id>/chain", methods=["GET"])
@allow(*READERS, scopes=("mandates:read", "authority:read"))
@blp.arguments(PurposeQuerySchema, location="query")
@blp.response(200, ChainSchema)
def chain(args: dict[str, Any], mandate_id: str) -> dict[str, Any]:
    """The mandate's chain, root first, judged at ``at`` (default now): every hop and
    why it holds or not, and, with ``action`` (and entity, case, amount), whether the
    chain authorises that purpose."""
    readable_mandate(mandate_id)
    at = args.get("at") or current_context().clock()
    rows, verdict = mandate_service().chain(mandate_id, _purpose(args, at), at=at)
    return _verdict_json(rows, verdict, at)


@blp.route("/authority", methods=["GET"])
@allow(*READERS, scopes=("authority:read",))
@blp.arguments(AuthorityQuerySchema, location="query")
@blp.response(200, AuthoritySchema)
def authority(args: dict[str, Any]) -> dict[str, Any]:
    """Who could act for the principal for this purpose at ``at`` (default now), and
    through which chain."""
    return authority_answer(args)


def authority_answer(args: dict[str, Any]) -> dict[str, Any]:
    """The authority query for :class:`AuthorityQuerySchema` arguments, as the caller
    may ask it (the API's and the console's)."""
    caller = current_caller()
    principal = args["principal"]
    if not permits(caller, Permission.READ, principal):
        raise ProblemError("FORBIDDEN", detail=f"not allowed for corporation {principal}")
    at = args.get("at") or current_context().clock()
    purpose = _purpose(args, at)
    assert purpose is not None  # action is required here
    found = AuthorityQuery(get_session()).find(principal, purpose)
    return {
        "at": purpose.at,
        "principal": principal,
        "purpose": {
            "action": purpose.action,
            "procuring_entity": purpose.procuring_entity,
            "case": purpose.case,
            "amount_jpy": purpose.amount_jpy,
        },
        "authorities": [
            {
                "grantee": {
                    "person_id": a.grantee_person_id,
                    "name": a.grantee_name,
                    "certificate_sha256": a.grantee_certificate_sha256,
                },
                "mandate_id": a.mandate.id,
                "chain": [
                    {
                        "mandate_id": m.id,
                        "depth": m.depth,
                        "grantor": m.grantor_name,
                        "grantee": m.grantee_name,
                    }
                    for m in a.chain
                ],
            }
            for a in found
        ],
    }


@blp.route("/mandates/<mandate_id>/document", methods=["GET"])
@allow(*READERS, scopes=("mandates:read",))
@blp.response(
    200,
    BINARY,
    description="The 電子委任状 as a PDF signed by the service",
    content_type="application/pdf",
)
def document(mandate_id: str) -> Response:
    """The human-readable 電子委任状 (Japanese PDF), signed by the service's attribute
    authority: principal, grantor, grantee, scope, validity, status and the chain."""
    return document_response(mandate_id)


def document_response(mandate_id: str) -> Response:
    """The signed 電子委任状 PDF of a mandate the caller may read (API and console)."""
    readable_mandate(mandate_id)
    context = current_context()
    now = context.clock()
    rows, verdict = mandate_service().chain(mandate_id, None, at=now)
    shown = document_of(rows, verdict, now)
    # Signed (HSM + TSA) once per mandate and state, not per request (issue 9.12).
    # The drawing's settings too: a document drawn in another font or page size is drawn
    # again after the setting changes.
    layout = context.mandate_layout
    state = document_state(
        [
            *document_lines(dataclasses.replace(shown, issued_at=_EPOCH)),
            f"layout {layout.page} {layout.font_file}",
        ]
    )

    def sign() -> bytes:
        return context.pades_signer.sign(
            mandate_pdf(shown, context.mandate_layout),
            context.aa_credential,
            PadesSpec(level=PadesLevel.B_T, reason="電子委任状の発行", location="dairi"),
        ).pdf

    pdf = signed_document(get_session(), context.session_factory, mandate_id, state, sign, now)
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="mandate-{mandate_id}.pdf"'},
    )


STATUS_LABELS = {
    "active": "有効",
    "revoked": "失効",
    "expired": "期間満了",
    "not_yet_valid": "有効期間前",
}


def _party(name: str, title: str | None) -> str:
    return f"{name}（{title}）" if title else name


def _action_label(action: str) -> str:
    if action.startswith(E_APPLICATION_PREFIX):
        procedure = action[len(E_APPLICATION_PREFIX) :]
        return ACTION_LABELS["e-application"] + (
            "（全手続）" if procedure == "*" else f"（{procedure}）"
        )
    return ACTION_LABELS.get(action, action)


def document_of(rows: list[Mandate], verdict: ChainVerdict, now: datetime) -> MandateDocument:
    leaf = rows[-1]
    scope = leaf.scope
    status = STATUS_LABELS[status_at(leaf, now)]
    if leaf.revoked_at is not None:
        # In 日本時間 like every other time the document prints (issue 10.10).
        status += f"（{jst_text(leaf.revoked_at)} 日本時間）"
    elif not verdict.holds:
        status += "（委任の連鎖に失効・無効があります）"
    return MandateDocument(
        mandate_id=leaf.id,
        principal_name=leaf.principal_name,
        principal_corporate_number=leaf.principal,
        grantor=_party(leaf.grantor_name, leaf.grantor_title),
        grantee=leaf.grantee_name,
        actions=tuple(_action_label(a) for a in sorted(scope.actions)),
        procuring_entities=None
        if scope.procuring_entities is None
        else tuple(sorted(scope.procuring_entities)),
        cases=None if scope.cases is None else tuple(sorted(scope.cases)),
        amount_limit_jpy=scope.amount_limit_jpy,
        not_before=scope.not_before,
        not_after=scope.not_after,
        max_depth=scope.max_depth,
        status=status,
        attribute_certificate_serial=format(leaf.serial_number, "x"),
        instruction_sha256=leaf.instruction_sha256,
        chain=tuple(
            ChainLine(
                r.depth,
                r.id,
                _party(r.grantor_name, r.grantor_title),
                r.grantee_name,
                "有効" if hop.holds else "無効（" + "、".join(hop.reasons) + "）",
            )
            for r, hop in zip(rows, verdict.hops, strict=True)
        ),
        issued_at=now,
    )


# -- the AA's status services ---------------------------------------------------


@ac_blp.route("/crl", methods=["GET"])
@ac_blp.response(
    200,
    BINARY,
    description="DER CRL of revoked mandate ACs, signed by the AA",
    content_type="application/pkix-crl",
)
def ac_crl() -> Response:
    """The AA's CRL of mandate attribute certificates (onlyContainsAttributeCerts)."""
    return Response(_ac_status().crl(), mimetype="application/pkix-crl")


@ac_blp.route("/ocsp", methods=["POST"])
@ac_blp.doc(requestBody=binary_request("application/ocsp-request"))
@ac_blp.response(
    200,
    BINARY,
    description="DER OCSP response signed by the AA",
    content_type="application/ocsp-response",
)
@body_limit(OCSP_REQUEST_BYTES)  # larger: 413 before reading past it (app.http.edge)
def ac_ocsp() -> Response:
    """OCSP (RFC 6960) for mandate ACs; POST a DER OCSPRequest."""
    body = request.get_data(cache=False)
    return Response(_ac_status().ocsp_response(body), mimetype="application/ocsp-response")


@ac_blp.route("/aa.pem", methods=["GET"])
@ac_blp.response(
    200, BINARY, description="The AA certificate (PEM)", content_type="application/x-pem-file"
)
def aa_certificate() -> Response:
    """The attribute authority's certificate, for relying parties' trust settings."""
    der = current_context().attribute_authority.certificate_der
    return Response(pem.armor("CERTIFICATE", der), mimetype="application/x-pem-file")
