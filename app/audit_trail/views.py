"""The auditor's HTTP API (issue 14 item 2): the audit events, the checkpoints, the chain
verified now, a mandate's whole history, and the authority report (who could act for a
corporation at a time, through which chains, and which signatures were made in a range),
as JSON, CSV and a Japanese PDF.

Who reads: auditors and administrators every corporation; a representative the events
of the corporations they represent; an API client with ``audit:read`` those of the
corporations it is registered for (or all, if registered so). Events that name no
corporation (logins, access refusals, roles ...) are read by auditors, administrators
and all-corporation clients only. Every refusal is recorded in the audit log with its code
(``audit:access:refused``, by :func:`app.http.request_scope.audit_refusals`, or
``auth:access:refused`` from :func:`app.http.security.allow`). Reading writes nothing.

Paging is by an opaque cursor naming the last sequence number returned. Events are
appended one writer at a time under the chain head's lock held to the commit, so
sequence order is commit order: an event with a higher number than one a reader has
seen is never committed before it, and a cursor neither skips nor repeats an event,
however many are appended meanwhile.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import marshmallow as ma
from flask import Response, request
from flask_smorest import Blueprint
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app.audit_trail import service as audit_service
from app.audit_trail.models import AuditRecord
from app.http.problems import ProblemError
from app.http.request_scope import audit_refusals, current_context, get_session
from app.http.schemas import BINARY, Moment, action_field, corporate_number_field, guard_json_body
from app.http.security import Caller, allow, current_caller
from app.mandates.authority import Authority, AuthorityQuery
from app.mandates.document import jst_text
from app.mandates.models import Mandate
from app.pdf_text import PageLayout, draw_pages, wrap
from app.people.caller import CallerKind
from app.people.models import Corporation, Role
from audit import BREAK_KINDS
from delegation.scope import ACTION_LABELS, E_APPLICATION_PREFIX, Purpose, ScopeError

blp = Blueprint(
    "audit",
    __name__,
    url_prefix="/api/v1",
    description="The audit trail: events, checkpoints, verification, mandate "
    "histories and authority reports",
)
blp.before_request(guard_json_body)

AUDIT_READERS = (Role.AUDITOR, Role.ADMINISTRATOR, Role.REPRESENTATIVE)
AUDIT_SCOPES = ("audit:read",)
REFUSED_TAG = "audit:access:refused"
# Every refusal these views answer (403, 404, 422 ...) is recorded with this tag.
audit_refusals(blp.name, REFUSED_TAG)

# At most this many events per page.
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
# A report lists at most this many signatures (``signatures_truncated`` says when more).
MAX_REPORT_SIGNATURES = 5000
# A report without an action judges every (action, entity, case) its live mandates name,
# at most this many.
MAX_REPORT_PURPOSES = 200

# A cursor is opaque to clients (only what the service returned is passed back); its
# pattern is documented so that a well-formed one is never refused.
_CURSOR = re.compile(r"^c1\.(0|[1-9][0-9]{0,17})$")
_TAG_FILTER = re.compile(r"^[a-z0-9_.:-]+\*?$")


# -- who may read what ----------------------------------------------------------------


def visible_corporations(caller: Caller) -> frozenset[str] | None:
    """The corporations whose events ``caller`` reads; None for every event (auditors,
    administrators, all-corporation API clients). A representative reads the
    corporations they represent (not those they are only employed by)."""
    if caller.reads_all_corporations:
        return None
    if caller.kind is CallerKind.CLIENT:
        return caller.client_of
    return caller.representative_of


def _principals(caller: Caller, principal: str | None) -> frozenset[str] | None:
    """What the query may cover: the principal asked for (403 FORBIDDEN, recorded, if
    the caller may not read it), else everything the caller reads."""
    visible = visible_corporations(caller)
    if principal is None:
        return visible
    if visible is not None and principal not in visible:
        raise ProblemError(
            "FORBIDDEN", detail=f"not allowed to read the audit trail of {principal}"
        )
    return frozenset({principal})


# -- cursors ----------------------------------------------------------------------------


def encode_cursor(sequence: int) -> str:
    return f"c1.{sequence}"


def decode_cursor(cursor: str | None) -> int:
    """The sequence a cursor names (0 without one); 422 ``CURSOR_INVALID`` if it is not
    one this service gave (the query schema refuses it first, as VALIDATION_FAILED)."""
    if cursor is None:
        return 0
    found = _CURSOR.match(cursor)
    if found is None:
        raise ProblemError("CURSOR_INVALID", detail="cursor is not one this service returned")
    return int(found.group(1))


# -- schemas ----------------------------------------------------------------------------


def cursor_field() -> ma.fields.String:
    return ma.fields.String(
        validate=ma.validate.Regexp(_CURSOR, error="Not a cursor this service returned."),
        metadata={"description": "Opaque: next_cursor of the page before (absent: from the first)"},
    )


class CursorArgs(ma.Schema):
    cursor = cursor_field()
    page_size = ma.fields.Integer(
        load_default=DEFAULT_PAGE_SIZE,
        validate=ma.validate.Range(min=1, max=MAX_PAGE_SIZE),
        metadata={"description": f"Events per page, at most {MAX_PAGE_SIZE}"},
    )


class EventQuerySchema(CursorArgs):
    principal = corporate_number_field(
        metadata={"description": "Events of this corporation (法人番号)"}
    )
    actor = ma.fields.String(
        validate=ma.validate.Length(min=1, max=100),
        metadata={
            "description": "Who acted, e.g. person:<id>, representative:<token id>, "
            "client:<id>, service"
        },
    )
    tag = ma.fields.String(
        validate=[
            ma.validate.Length(min=1, max=101),
            ma.validate.Regexp(_TAG_FILTER, error="A tag, or a tag prefix ending in *."),
        ],
        metadata={
            "description": "source:subject:action, e.g. mandate:granted; a trailing * matches "
            "a prefix (mandate:*)"
        },
    )
    subject = ma.fields.String(
        validate=ma.validate.Length(min=1, max=100),
        metadata={"description": "The id the event is about (a mandate, person, token ...)"},
    )
    from_ = Moment(
        data_key="from",
        metadata={"description": "Events at or after this time (ISO 8601 with offset)"},
    )
    to = Moment(
        metadata={
            "description": "Events before this time (ISO 8601 with offset); "
            "a range that ends before it starts holds none"
        }
    )


class EventSchema(ma.Schema):
    sequence = ma.fields.Integer()
    occurred_at = ma.fields.DateTime()
    actor = ma.fields.String()
    tag = ma.fields.String()
    subject = ma.fields.String(allow_none=True)
    principal = ma.fields.String(allow_none=True)
    details = ma.fields.Dict()
    previous_hash = ma.fields.String()
    hash = ma.fields.String(metadata={"description": "SHA-256 of the event's RFC 8785 form"})


class EventPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(EventSchema))
    next_cursor = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "Pass as cursor for the events after these (also once more are "
            "appended); null only when no event has been returned yet"
        },
    )
    has_more = ma.fields.Boolean(
        metadata={"description": "Whether more matching events exist now after this page"}
    )
    page_size = ma.fields.Integer()


class HistoryEventSchema(EventSchema):
    relation = ma.fields.String(
        metadata={
            "description": "mandate (about this mandate), cascade (revoked with an ancestor), "
            "sub-delegation (a mandate granted under it), signature (made "
            "under it) or mentioned"
        }
    )


class HistoryPageSchema(EventPageSchema):
    mandate_id = ma.fields.String()
    items = ma.fields.List(ma.fields.Nested(HistoryEventSchema))


class CheckpointSchema(ma.Schema):
    sequence = ma.fields.Integer()
    head_hash = ma.fields.String()
    taken_at = ma.fields.String(metadata={"description": "ISO 8601, UTC"})
    statement = ma.fields.String(
        metadata={
            "description": "The signed statement: RFC 8785 JSON of type, version, sequence, "
            "head_hash, taken_at"
        }
    )
    signature = ma.fields.String(
        metadata={"description": "Detached CMS SignedData over the statement, base64 DER"}
    )
    timestamp_token = ma.fields.String(
        allow_none=True,
        metadata={"description": "RFC 3161 token over the signature value, base64 DER"},
    )


class CheckpointPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(CheckpointSchema))
    next_cursor = ma.fields.String(allow_none=True)
    has_more = ma.fields.Boolean()
    page_size = ma.fields.Integer()


class VerificationQuerySchema(ma.Schema):
    from_ = ma.fields.String(
        data_key="from",
        load_default="checkpoint",
        validate=ma.validate.OneOf(["checkpoint", "start"]),
        metadata={
            "description": "checkpoint: from the last checkpoint (default); start: the whole chain"
        },
    )


class BreakSchema(ma.Schema):
    sequence = ma.fields.Integer(allow_none=True)
    kind = ma.fields.String(metadata={"description": ", ".join(sorted(BREAK_KINDS))})
    message = ma.fields.String()
    description = ma.fields.String(metadata={"description": "What the kind of break means"})


class VerificationSchema(ma.Schema):
    intact = ma.fields.Boolean()
    checked_from = ma.fields.String(
        metadata={"description": "start, or checkpoint (from the one after the last checkpoint)"}
    )
    events = ma.fields.Integer(metadata={"description": "Events checked"})
    first_sequence = ma.fields.Integer(allow_none=True)
    last_sequence = ma.fields.Integer(allow_none=True)
    head_hash = ma.fields.String()
    checkpoints_verified = ma.fields.Integer()
    last_checkpoint = ma.fields.Integer(allow_none=True)
    unprotected_events = ma.fields.Integer(
        metadata={"description": "Events after the last checkpoint"}
    )
    first_break = ma.fields.Nested(
        BreakSchema,
        allow_none=True,
        metadata={"description": "The lowest sequence that does not hold, and how; null if intact"},
    )
    breaks = ma.fields.List(ma.fields.Nested(BreakSchema))
    notes = ma.fields.List(ma.fields.String())


class ReportQuerySchema(ma.Schema):
    principal = corporate_number_field(required=True)
    at = Moment(metadata={"description": "Who could act at this time (default now)"})
    from_ = Moment(data_key="from", metadata={"description": "Signatures from (default: any)"})
    to = Moment(metadata={"description": "Signatures before (default: any)"})
    # Absent: every (action, entity, case) the principal's live mandates name.
    action = action_field()
    procuring_entity = ma.fields.String(validate=ma.validate.Length(min=1, max=300))
    case = ma.fields.String(validate=ma.validate.Length(min=1, max=300))
    format = ma.fields.String(
        validate=ma.validate.OneOf(["json", "csv", "pdf"]),
        metadata={"description": "Overrides Accept: json, csv (text/csv) or pdf (application/pdf)"},
    )


class ReportSchema(ma.Schema):
    principal = ma.fields.Dict(metadata={"description": "corporate_number, name"})
    at = ma.fields.DateTime()
    range = ma.fields.Dict(metadata={"description": "from, to of the signatures"})
    authorities = ma.fields.List(
        ma.fields.Dict(),
        metadata={
            "description": "Who could act at ``at``: grantee, leaf mandate, the chain (root "
            "first) and the purposes (action, entity, case) it held for"
        },
    )
    signatures = ma.fields.List(
        ma.fields.Dict(), metadata={"description": "Signature events of the principal in the range"}
    )
    signatures_truncated = ma.fields.Boolean()


# -- events -----------------------------------------------------------------------------


def event_json(row: AuditRecord) -> dict[str, Any]:
    return {
        "sequence": row.sequence,
        "occurred_at": row.occurred_at,
        "actor": row.actor,
        "tag": row.tag,
        "subject": row.subject,
        "principal": row.principal,
        "details": json.loads(row.details),
        "previous_hash": row.previous_hash,
        "hash": row.hash,
    }


def _page(session: Session, query: Any, after: int, size: int) -> tuple[list[AuditRecord], bool]:
    rows = list(
        session.scalars(
            query.where(AuditRecord.sequence > after).order_by(AuditRecord.sequence).limit(size + 1)
        )
    )
    return rows[:size], len(rows) > size


def _page_json(
    rows: Sequence[AuditRecord], more: bool, after: int, size: int, items: list[dict[str, Any]]
) -> dict[str, Any]:
    last = rows[-1].sequence if rows else after
    return {
        "items": items,
        "next_cursor": encode_cursor(last) if last else None,
        "has_more": more,
        "page_size": size,
    }


@blp.route("/audit/events", methods=["GET"])
@allow(*AUDIT_READERS, scopes=AUDIT_SCOPES)
@blp.arguments(EventQuerySchema, location="query")
@blp.response(200, EventPageSchema)
def events(args: dict[str, Any]) -> dict[str, Any]:
    """Audit events in sequence order, filtered by principal (法人番号), actor, tag,
    subject and time (from inclusive, to exclusive), a page at a time. A representative
    or API client sees only the events of its corporations."""
    return event_page(args)


def event_page(args: dict[str, Any]) -> dict[str, Any]:
    """One page of events for :class:`EventQuerySchema` arguments, as the caller may
    see them (the API's and the console's)."""
    principals = _principals(current_caller(), args.get("principal"))
    after = decode_cursor(args.get("cursor"))
    query = select(AuditRecord)
    if principals is not None:
        query = query.where(AuditRecord.principal.in_(sorted(principals)))
    if "actor" in args:
        query = query.where(AuditRecord.actor == args["actor"])
    if "tag" in args:
        tag: str = args["tag"]
        query = query.where(
            AuditRecord.tag.startswith(tag[:-1], autoescape=True)
            if tag.endswith("*")
            else AuditRecord.tag == tag
        )
    if "subject" in args:
        query = query.where(AuditRecord.subject == args["subject"])
    if args.get("from_") is not None:
        query = query.where(AuditRecord.occurred_at >= args["from_"])
    if args.get("to") is not None:
        query = query.where(AuditRecord.occurred_at < args["to"])
    size = args["page_size"]
    rows, more = _page(get_session(), query, after, size)
    return _page_json(rows, more, after, size, [event_json(r) for r in rows])


# -- a mandate's history ------------------------------------------------------------------


def relation(row: AuditRecord, details: dict[str, Any], mandate_id: str) -> str:
    """How an event of a mandate's history relates to it."""
    if row.subject == mandate_id:
        return "mandate"
    if row.tag.startswith("signature:") and details.get("mandate_id") == mandate_id:
        return "signature"
    cascaded = details.get("cascaded")
    if isinstance(cascaded, list) and mandate_id in cascaded:
        return "cascade"
    if row.tag == "mandate:granted" and details.get("parent") == mandate_id:
        return "sub-delegation"
    return "mentioned"


@blp.route("/mandates/<mandate_id>/history", methods=["GET"])
@allow(*AUDIT_READERS, scopes=AUDIT_SCOPES)
@blp.arguments(CursorArgs, location="query")
@blp.response(200, HistoryPageSchema)
def mandate_history(args: dict[str, Any], mandate_id: str) -> dict[str, Any]:
    """A mandate's whole history from the audit trail, in sequence order: its grant,
    re-issues, refusals about it, its revocation (its own, or with an ancestor), the
    mandates granted under it, and every signature made under it (a ``signature:*``
    event naming it as ``details.mandate_id``). Another corporation's mandate is 404,
    as if it did not exist."""
    return mandate_history_page(args, mandate_id)


def mandate_history_page(args: dict[str, Any], mandate_id: str) -> dict[str, Any]:
    """One page of a mandate's history (the API's and the console's)."""
    session = get_session()
    visible = visible_corporations(current_caller())
    row = session.get(Mandate, mandate_id) if len(mandate_id) <= 36 else None
    if row is None or (visible is not None and row.principal not in visible):
        raise ProblemError("MANDATE_NOT_FOUND", detail=f"no mandate {mandate_id}")
    # Its own events, and its principal's events that name it in their details.
    query = select(AuditRecord).where(
        or_(
            AuditRecord.subject == row.id,
            and_(
                AuditRecord.principal == row.principal,
                AuditRecord.details.contains(json.dumps(row.id), autoescape=True),
            ),
        )
    )
    after = decode_cursor(args.get("cursor"))
    size = args["page_size"]
    rows, more = _page(session, query, after, size)
    items = []
    for record in rows:
        item = event_json(record)
        item["relation"] = relation(record, item["details"], row.id)
        items.append(item)
    return {**_page_json(rows, more, after, size, items), "mandate_id": row.id}


# -- checkpoints and verification -------------------------------------------------------


class CheckpointQuerySchema(ma.Schema):
    cursor = cursor_field()
    page_size = ma.fields.Integer(
        load_default=DEFAULT_PAGE_SIZE, validate=ma.validate.Range(min=1, max=MAX_PAGE_SIZE)
    )


@blp.route("/audit/checkpoints", methods=["GET"])
@allow(*AUDIT_READERS, scopes=AUDIT_SCOPES)
@blp.arguments(CheckpointQuerySchema, location="query")
@blp.response(200, CheckpointPageSchema)
def checkpoints(args: dict[str, Any]) -> dict[str, Any]:
    """The signed checkpoints of the chain in sequence order, a page at a time: the
    head's sequence and hash, the time, the signed statement (RFC 8785 JSON), the audit
    key's detached CMS signature and the TSA's RFC 3161 token over it (base64 DER).
    ``openssl cms -verify`` and ``openssl ts -verify`` check them without dairi."""
    return checkpoint_page(args)


def checkpoint_page(args: dict[str, Any]) -> dict[str, Any]:
    """One page of checkpoints (the API's and the console's)."""
    after = decode_cursor(args.get("cursor"))
    size = args["page_size"]
    rows = audit_service.list_checkpoints(get_session(), after=after, limit=size + 1)
    shown = rows[:size]
    last = shown[-1].sequence if shown else after
    return {
        "items": [c.as_dict() for c in shown],
        "next_cursor": encode_cursor(last) if last else None,
        "has_more": len(rows) > size,
        "page_size": size,
    }


@blp.route("/audit/verification", methods=["GET"])
@allow(*AUDIT_READERS, scopes=AUDIT_SCOPES)
@blp.arguments(VerificationQuerySchema, location="query")
@blp.response(200, VerificationSchema)
def verification(args: dict[str, Any]) -> dict[str, Any]:
    """The chain and every checkpoint checked now, from the last checkpoint that
    verifies (default) or from the start (``from=start``): intact or not, and the first
    sequence that breaks and how (edited, inserted, deleted, swapped, truncated,
    rewritten; a forged checkpoint: wrong key, altered head, time-stamp over other
    data). Events appended meanwhile are left to the next check."""
    return chain_verification(from_start=args["from_"] == "start")


def chain_verification(*, from_start: bool) -> dict[str, Any]:
    """The chain checked now (the API's and the console's)."""
    # The request's transaction ends first: on SQLite it would hold the write lock for
    # the whole scan, which reads pages in short transactions of its own instead.
    get_session().rollback()
    context = current_context()
    report = audit_service.verification(context, context.session_factory, from_start=from_start)
    for found in (report.get("first_break"), *report.get("breaks", ())):
        if found is not None:
            found["description"] = BREAK_KINDS.get(found["kind"], found["kind"])
    return report


# -- the authority report -------------------------------------------------------------------


@dataclass
class ReportLine:
    """One way someone could act, with the purposes it held for."""

    authority: Authority
    purposes: list[Purpose]


def _purposes(session: Session, principal: str, at: datetime) -> list[Purpose]:
    """Every (action, entity, case) a mandate of ``principal`` live at ``at`` names; a
    wildcard e-application stands for one procedure."""
    rows = session.scalars(
        select(Mandate).where(
            Mandate.principal == principal,
            Mandate.not_before <= at,
            Mandate.not_after > at,
            or_(Mandate.revoked_at.is_(None), Mandate.revoked_at > at),
        )
    ).all()
    found: dict[tuple[str, str | None, str | None], Purpose] = {}
    for row in rows:
        scope = row.scope
        for action in sorted(scope.actions):
            concrete = action.replace("*", "any")
            for entity in (
                sorted(scope.procuring_entities) if scope.procuring_entities is not None else [None]
            ):
                for case in sorted(scope.cases) if scope.cases is not None else [None]:
                    key = (concrete, entity, case)
                    if key not in found:
                        found[key] = Purpose(concrete, entity, case, None, at)
    if len(found) > MAX_REPORT_PURPOSES:
        raise ProblemError(
            "REPORT_TOO_LARGE",
            detail=(
                f"the live mandates name more than {MAX_REPORT_PURPOSES} purposes: name an "
                "action (and procuring_entity, case)"
            ),
        )
    return [found[k] for k in sorted(found, key=lambda k: (k[0], k[1] or "", k[2] or ""))]


def who_could_act(
    query: AuthorityQuery, principal: str, purposes: Iterable[Purpose]
) -> list[ReportLine]:
    """The authority query for each purpose, by leaf mandate."""
    lines: dict[str, ReportLine] = {}
    for purpose in purposes:
        for found in query.find(principal, purpose):
            line = lines.setdefault(found.mandate.id, ReportLine(found, []))
            line.purposes.append(purpose)
    return sorted(
        lines.values(),
        key=lambda line: (
            line.authority.grantee_name,
            line.authority.mandate.depth,
            line.authority.mandate.id,
        ),
    )


def _purpose_json(purpose: Purpose) -> dict[str, Any]:
    return {
        "action": purpose.action,
        "procuring_entity": purpose.procuring_entity,
        "case": purpose.case,
    }


def _report(args: dict[str, Any]) -> dict[str, Any]:
    principal: str = args["principal"]
    context = current_context()
    session = get_session()
    at = args.get("at") or context.clock()
    if "action" in args:
        try:
            purposes = [
                Purpose(args["action"], args.get("procuring_entity"), args.get("case"), None, at)
            ]
        except ScopeError as exc:
            raise ProblemError(exc.code, detail=exc.message) from None
    else:
        purposes = _purposes(session, principal, at)
    lines = who_could_act(AuthorityQuery(session), principal, purposes)
    corporation = session.get(Corporation, principal)
    query = select(AuditRecord).where(
        AuditRecord.principal == principal, AuditRecord.tag.startswith("signature:")
    )
    if args.get("from_") is not None:
        query = query.where(AuditRecord.occurred_at >= args["from_"])
    if args.get("to") is not None:
        query = query.where(AuditRecord.occurred_at < args["to"])
    signatures = list(
        session.scalars(query.order_by(AuditRecord.sequence).limit(MAX_REPORT_SIGNATURES + 1))
    )
    return {
        "principal": {
            "corporate_number": principal,
            "name": corporation.name if corporation is not None else None,
        },
        "at": at,
        "range": {"from": args.get("from_"), "to": args.get("to")},
        "authorities": [
            {
                "grantee": {
                    "person_id": line.authority.grantee_person_id,
                    "name": line.authority.grantee_name,
                    "certificate_sha256": line.authority.grantee_certificate_sha256,
                },
                "mandate_id": line.authority.mandate.id,
                "chain": [
                    {
                        "mandate_id": m.id,
                        "depth": m.depth,
                        "grantor": m.grantor_name,
                        "grantor_title": m.grantor_title,
                        "grantee": m.grantee_name,
                    }
                    for m in line.authority.chain
                ],
                "purposes": [_purpose_json(p) for p in line.purposes],
            }
            for line in lines
        ],
        "signatures": [
            {**event_json(r), "mandate_id": json.loads(r.details).get("mandate_id")}
            for r in signatures[:MAX_REPORT_SIGNATURES]
        ],
        "signatures_truncated": len(signatures) > MAX_REPORT_SIGNATURES,
    }


_FORMATS = {"json": "application/json", "csv": "text/csv", "pdf": "application/pdf"}


def _format(args: dict[str, Any]) -> str:
    if "format" in args:
        return str(args["format"])
    if not request.headers.get("Accept"):
        return "json"
    best = request.accept_mimetypes.best_match(list(_FORMATS.values()))
    if best is None:
        raise ProblemError(
            "NOT_ACCEPTABLE", detail="the report is application/json, text/csv or application/pdf"
        )
    return next(name for name, mime in _FORMATS.items() if mime == best)


@blp.route("/audit/authority-report", methods=["GET"])
@allow(*AUDIT_READERS, scopes=AUDIT_SCOPES)
@blp.arguments(ReportQuerySchema, location="query")
@blp.response(200, ReportSchema)
@blp.doc(
    responses={
        "200": {
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Report"}},
                "text/csv": {"schema": BINARY},
                "application/pdf": {"schema": BINARY},
            }
        }
    }
)
def authority_report(args: dict[str, Any]) -> Any:
    """Who could act for the corporation at ``at`` (default now) and through which
    chains (every purpose its live mandates name, or the one given), and the signatures
    made for it from ``from`` to ``to``. JSON, CSV (``Accept: text/csv`` or
    ``format=csv``) or a Japanese PDF (``Accept: application/pdf`` or ``format=pdf``)."""
    _principals(current_caller(), args["principal"])
    kind = _format(args)
    report = _report(args)
    number = args["principal"]
    if kind == "csv":
        return Response(
            report_csv(report),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="authority-{number}.csv"'},
        )
    if kind == "pdf":
        return Response(
            report_pdf(report, current_context().clock()),
            mimetype="application/pdf",
            headers={"Content-Disposition": f'inline; filename="authority-{number}.pdf"'},
        )
    return report


CSV_COLUMNS = (
    "record",
    "principal",
    "at",
    "grantee_name",
    "grantee_person_id",
    "mandate_id",
    "depth",
    "chain_mandate_ids",
    "chain",
    "purposes",
    "sequence",
    "occurred_at",
    "tag",
    "actor",
    "subject",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A CSV cell; text a spreadsheet would take for a formula is quoted with '."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _chain_text(chain: list[dict[str, Any]]) -> str:
    if not chain:
        return ""
    first = chain[0]
    grantor = first["grantor"] + (f"（{first['grantor_title']}）" if first["grantor_title"] else "")
    return " → ".join([grantor, *(hop["grantee"] for hop in chain)])


def _purposes_text(purposes: list[dict[str, Any]]) -> str:
    return "; ".join(
        "/".join(p[k] or "*" for k in ("action", "procuring_entity", "case")) for p in purposes
    )


def report_csv(report: dict[str, Any]) -> bytes:
    """One row per authority (record ``authority``) and per signature (``signature``),
    UTF-8 with a BOM so that spreadsheets read the Japanese names."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    number = report["principal"]["corporate_number"]
    for a in report["authorities"]:
        writer.writerow(
            [
                _cell(v)
                for v in (
                    "authority",
                    number,
                    report["at"],
                    a["grantee"]["name"],
                    a["grantee"]["person_id"],
                    a["mandate_id"],
                    a["chain"][-1]["depth"],
                    " > ".join(hop["mandate_id"] for hop in a["chain"]),
                    _chain_text(a["chain"]),
                    _purposes_text(a["purposes"]),
                    None,
                    None,
                    None,
                    None,
                    None,
                )
            ]
        )
    for s in report["signatures"]:
        writer.writerow(
            [
                _cell(v)
                for v in (
                    "signature",
                    number,
                    None,
                    None,
                    None,
                    s["mandate_id"],
                    None,
                    None,
                    None,
                    None,
                    s["sequence"],
                    s["occurred_at"],
                    s["tag"],
                    s["actor"],
                    s["subject"],
                )
            ]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# The report's page: 10 pt IPA Gothic, 2 cm margins, like the 電子委任状.
REPORT_LAYOUT = PageLayout(font_size=10, leading=17)
REPORT_TITLE = "代理権限報告書"
_INDENT = "　　"


def _action_label(action: str) -> str:
    if action.startswith(E_APPLICATION_PREFIX):
        return ACTION_LABELS["e-application"] + f"（{action[len(E_APPLICATION_PREFIX) :]}）"
    return ACTION_LABELS.get(action, action)


def report_lines(report: dict[str, Any], issued_at: datetime) -> list[str]:
    """The report's text, one entry per logical line (times in 日本時間)."""
    principal = report["principal"]
    start, end = report["range"]["from"], report["range"]["to"]
    lines = [
        REPORT_TITLE,
        "",
        f"法人番号: {principal['corporate_number']}",
        f"法人名: {principal['name'] or '（未登録）'}",
        f"基準日時: {jst_text(report['at'])}（日本時間）",
        f"署名の期間: {jst_text(start) if start else '指定なし'} から "
        f"{jst_text(end) if end else '指定なし'} まで（日本時間）",
        "",
        "【基準日時に代理できた者と委任の連鎖】",
    ]
    if not report["authorities"]:
        lines.append("（該当なし）")
    for number, a in enumerate(report["authorities"], start=1):
        lines.append(f"{number}. {a['grantee']['name']}（委任状番号 {a['mandate_id']}）")
        lines.append(f"{_INDENT}連鎖: {_chain_text(a['chain'])}")
        lines.append(f"{_INDENT}委任状の連鎖: " + " → ".join(h["mandate_id"] for h in a["chain"]))
        purposes = "、".join(
            _action_label(p["action"])
            + "（"
            + "・".join(v for v in (p["procuring_entity"], p["case"]) if v)
            + "）"
            if p["procuring_entity"] or p["case"]
            else _action_label(p["action"])
            for p in a["purposes"]
        )
        lines.append(f"{_INDENT}委任事項: {purposes}")
    lines += ["", "【期間内の署名】"]
    if not report["signatures"]:
        lines.append("（該当なし）")
    for s in report["signatures"]:
        lines.append(
            f"・{jst_text(s['occurred_at'])} {s['tag']} 実行者 {s['actor']}"
            + (f" 委任状番号 {s['mandate_id']}" if s["mandate_id"] else "")
            + f"（記録番号 {s['sequence']}）"
        )
    if report["signatures_truncated"]:
        lines.append(f"（先頭の {MAX_REPORT_SIGNATURES} 件のみ）")
    lines += [
        "",
        f"本書は dairi の監査記録から作成しました。作成日時: {jst_text(issued_at)}（日本時間）",
    ]
    return lines


def report_pdf(report: dict[str, Any], issued_at: datetime) -> bytes:
    """The report as an A4 PDF in IPA Gothic, wrapped to the margins, paged."""
    # Fewer than fit (as the 電子委任状 does), one of them the heading of a long report.
    per_page = REPORT_LAYOUT.lines_per_page - 5
    wrapped = [
        piece
        for line in report_lines(report, issued_at)
        for piece in wrap(
            line, REPORT_LAYOUT.line_width_em, indent=_INDENT, font_file=REPORT_LAYOUT.font_file
        )
    ]
    pages = [wrapped[i : i + per_page] for i in range(0, len(wrapped), per_page)] or [[]]
    if len(pages) > 1:
        for number, page in enumerate(pages, start=1):
            page.insert(
                0, f"{REPORT_TITLE} {principal_line(report)}（{number} / {len(pages)} ページ）"
            )
    return draw_pages(pages, REPORT_LAYOUT)


def principal_line(report: dict[str, Any]) -> str:
    return f"法人番号 {report['principal']['corporate_number']}"
