"""The console's pages (``/console/``): server-rendered, Japanese by default
(``?lang=en`` switches, kept in a cookie). The one script (no inline script: CSP
``script-src 'self'``) lets the sign-in page move on by itself once its code is
approved; without it, the page's link does. Pages call the API's own services and permission
rules (``current_caller`` is the cookie's holder), never copies of them.

Security: the session is an HttpOnly, SameSite=Strict cookie (Secure when the
service is https) holding a secret whose SHA-256 is an access token's; every POST
must come from this origin (``Origin``) and, once signed in, carry the session's CSRF
token; CSP forbids scripts and framing; pages are never cached.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import segno
from flask import (
    Blueprint,
    abort,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from app.audit_trail.log import AuditLog
from app.audit_trail.views import (
    AUDIT_READERS,
    EventQuerySchema,
    chain_verification,
    checkpoint_page,
    event_page,
    mandate_history_page,
)
from app.console.models import ConsoleSignIn
from app.console.sign_in import ConsoleSignIns, shown_code
from app.console.text import LANGUAGES, text_for
from app.database import read_only_transaction
from app.http.edge import body_limit, lock_free
from app.http.problems import ProblemError, problem_for
from app.http.request_scope import current_context, get_session
from app.http.security import end_reads, token_caller
from app.mandates.document import MandateDocument, jst_text
from app.mandates.models import Mandate
from app.mandates.service import REVOCATION_REASONS
from app.mandates.views import (
    READERS,
    AuthorityQuerySchema,
    MandateQuerySchema,
    authority_answer,
    document_of,
    document_response,
    mandate_page,
    mandate_service,
    readable_mandate,
    revoke_mandate,
)
from app.people.caller import Access, Caller, permits
from app.people.models import Role
from app.people.sign_in import AuthError
from app.people.sign_in_views import auth_service
from app.people.views import corporation_row, employee_page, invite_employee
from app.signatures.models import SignatureRecord
from app.verification.service import purpose_from, report_pdf, verify_document
from app.verification.views import MAX_UPLOAD_BYTES, service_trust
from delegation.chain import ChainVerdict
from identity.corporate_number import validate_corporate_number
from signing.report import render_text

COOKIE = "dairi_console"
LANGUAGE_COOKIE = "dairi_lang"
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
PAGE_SIZE = 20

blp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)


# -- who, in which language, and the checks every request passes -----------------------


def csrf_token(secret: str) -> str:
    """The session's CSRF token: derived from the cookie's secret, which a page of
    another site can neither read (HttpOnly) nor send (SameSite=Strict)."""
    return hmac.new(b"dairi-console-csrf", secret.encode(), hashlib.sha256).hexdigest()


@blp.before_request
def _before() -> None:
    language = request.args.get("lang") or request.cookies.get(LANGUAGE_COOKIE) or "ja"
    g.console_language = language if language in LANGUAGES else "ja"
    g.console_secret = request.cookies.get(COOKIE)
    g.console_caller = None
    if g.console_secret:
        session = get_session()
        read_only_transaction(session)
        try:
            caller = token_caller(session, auth_service().token(g.console_secret))
        except AuthError:
            caller = None  # a pending sign-in, or a session that has ended
        end_reads(session)
        g.console_caller = caller
        g.dairi_caller = caller  # what the API's services read (current_caller)
    if request.method == "POST":
        _check_origin()
        if g.console_caller is not None:
            sent = request.form.get("csrf_token", "")
            if not hmac.compare_digest(sent, csrf_token(g.console_secret)):
                raise ProblemError("CSRF_TOKEN_INVALID", detail="reload the page and try again")


def _check_origin() -> None:
    origin = request.headers.get("Origin")
    if origin is None or origin.rstrip("/") != request.host_url.rstrip("/"):
        raise ProblemError("CSRF_TOKEN_INVALID", detail="a form of another site was refused")


@blp.after_request
def _after(response: BaseResponse) -> BaseResponse:
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"
    headers["Cache-Control"] = "no-store"
    if "lang" in request.args and request.args["lang"] in LANGUAGES:
        _set_cookie(response, LANGUAGE_COOKIE, request.args["lang"], 365 * 86400)
    return response


@blp.errorhandler(Exception)
def _error_page(exc: Exception) -> tuple[str, int] | BaseResponse:
    """The API's answer to the same error (status, code, detail), as a page."""
    if isinstance(exc, HTTPException) and isinstance(exc.response, BaseResponse):
        return exc.response  # abort(redirect(...)): not an error
    problem = problem_for(exc)
    body = problem.get_json(force=True) or {}
    page = _render(
        "console/error.html",
        status=problem.status_code,
        code=body.get("code", "INTERNAL_ERROR"),
        detail=body.get("detail", ""),
    )
    return page, problem.status_code


def _https() -> bool:
    return current_context().settings.public_base_url.startswith("https://")


def _render(template: str, **values: Any) -> str:
    language = g.get("console_language", "ja")
    caller: Caller | None = g.get("console_caller")
    secret = g.get("console_secret")
    return render_template(
        template,
        t=text_for(language),
        lang=language,
        other_language=LANGUAGES[1 - LANGUAGES.index(language)],
        caller=caller,
        csrf=csrf_token(secret) if caller is not None and secret else "",
        may_audit=caller is not None and permits(caller, Access(frozenset(AUDIT_READERS)), None),
        jst=jst_text,
        **values,
    )


def _span(page: dict[str, Any]) -> dict[str, int]:
    """``first`` and ``last``: the positions (from 1) of a page's items in the listing."""
    first = (page["page"] - 1) * page["page_size"] + 1
    return {"first": first, "last": first + len(page["items"]) - 1}


def _signed_in(access: Access | None = None) -> Caller:
    """The signed-in caller, who must hold one of ``access``'s roles if it names any;
    without a session, off to the sign-in page."""
    caller: Caller | None = g.console_caller
    if caller is None:
        abort(redirect(url_for("console.sign_in")))
    if access is not None and not permits(caller, access, None):
        raise ProblemError("FORBIDDEN", detail="your roles do not allow this page")
    return caller


def _set_cookie(response: BaseResponse, name: str, value: str, max_age: int) -> None:
    """Every console cookie: HttpOnly, SameSite=Strict, for /console, Secure under https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        secure=_https(),
        httponly=True,
        samesite="Strict",
    )


def _set_session_cookie(response: BaseResponse, secret: str, until: datetime) -> None:
    seconds = max(0, int((until - current_context().clock()).total_seconds()))
    _set_cookie(response, COOKIE, secret, seconds)


# -- sign-in and sign-out ----------------------------------------------------------------


@blp.get("/sign-in")
def sign_in() -> str | BaseResponse:
    if g.console_caller is not None:
        return redirect(url_for("console.home"))
    return _render("console/sign_in.html")


@blp.post("/sign-in")
def start_sign_in() -> BaseResponse:
    started = ConsoleSignIns(get_session(), auth_service()).start(
        request.headers.get("User-Agent", "")
    )
    response = redirect(url_for("console.wait"), code=303)
    _set_session_cookie(response, started.secret, started.row.expires_at)
    return response


def _waiting_sign_in() -> ConsoleSignIn | None:
    """The unexpired sign-in this browser's cookie started, if any."""
    secret = g.console_secret
    row = ConsoleSignIns(get_session(), auth_service()).state(secret) if secret else None
    return row if row is not None and row.expires_at > current_context().clock() else None


@blp.get("/sign-in/wait")
def wait() -> str | BaseResponse:
    secret = g.console_secret
    caller: Caller | None = g.console_caller
    if caller is not None and caller.token is not None:
        # Approved: the cookie now lasts as long as the session's token.
        response = redirect(url_for("console.home"))
        _set_session_cookie(response, secret, caller.token.expires_at)
        return response
    row = _waiting_sign_in()
    if row is None:
        return _render("console/expired.html")
    settings = current_context().settings
    code = shown_code(row.user_code)
    link = f"dairi:approve?code={row.user_code}&service={quote(settings.public_base_url)}"
    qr = segno.make(link, error="m").svg_inline(scale=4, omitsize=False)
    return _render(
        "console/wait.html",
        code=code,
        command=f"dairi client --url {settings.public_base_url} approve {code}",
        qr=qr,  # segno's own SVG of a code of letters and our URL: shown as is (|safe)
        expires_at=row.expires_at,
    )


@blp.get("/sign-in/status")
def sign_in_status() -> dict[str, str]:
    """What the waiting page's script asks: ``pending``, ``approved`` or ``expired``."""
    if g.console_caller is not None:
        return {"state": "approved"}
    return {"state": "pending" if _waiting_sign_in() is not None else "expired"}


@blp.post("/sign-out")
def sign_out() -> BaseResponse:
    caller: Caller | None = g.console_caller
    if caller is not None and caller.token is not None:
        session = get_session()
        auth_service().revoke_token(caller.token)
        AuditLog(session).append("console:sign-out", actor=caller.actor, subject=caller.token.id)
    response = redirect(url_for("console.sign_in"), code=303)
    response.delete_cookie(COOKIE, path="/console", secure=_https(), samesite="Strict")
    return response


# -- pages -------------------------------------------------------------------------------


@blp.get("/")
def home() -> str:
    caller = _signed_in()
    return _render("console/home.html", described=caller.describe())


_MANDATE_QUERY = MandateQuerySchema()


@blp.get("/mandates")
def mandates() -> str:
    _signed_in(Access(frozenset(READERS)))
    query = {k: v for k, v in request.args.items() if v != "" and k != "lang"}
    query.setdefault("page_size", str(PAGE_SIZE))
    args = _MANDATE_QUERY.load(query)
    page = mandate_page(args)
    return _render("console/mandates.html", page=page, args=args, **_span(page))


# -- one mandate: its chain, history, documents; revocation ---------------------------

REVOKERS = (Role.REPRESENTATIVE, Role.EMPLOYEE, Role.ADMINISTRATOR)
BOX_WIDTH, BOX_HEIGHT, BOX_GAP = 520, 64, 36


def chain_boxes(shown: MandateDocument, verdict: ChainVerdict) -> list[dict[str, Any]]:
    """The chain diagram's boxes, top to bottom: the principal, then each hop's
    grantee (a hop below the root is 復代理), with the hop's status and whether it
    holds."""
    boxes = [
        {
            "y": 0,
            "title": f"{shown.principal_name}（{shown.principal_corporate_number}）",
            "detail": shown.chain[0].grantor if shown.chain else shown.grantor,
            "status": "",
            "ok": True,
        }
    ]
    for line, hop in zip(shown.chain, verdict.hops, strict=True):
        boxes.append(
            {
                "y": len(boxes) * (BOX_HEIGHT + BOX_GAP),
                "title": line.grantee,
                "detail": f"復代理人（{line.depth}次）" if line.depth > 0 else "代理人",
                "status": line.status,
                "ok": hop.holds,
            }
        )
    return boxes


@blp.get("/mandates/<mandate_id>")
def mandate(mandate_id: str) -> str:
    caller = _signed_in(Access(frozenset(READERS)))
    row = readable_mandate(mandate_id)
    now = current_context().clock()
    session = get_session()
    rows, verdict = mandate_service().chain(mandate_id, None, at=now)
    shown = document_of(rows, verdict, now)
    # Its history as the API shows it, to those who may read the audit trail.
    history = (
        mandate_history_page({"cursor": None, "page_size": 200}, mandate_id)["items"]
        if permits(caller, Access(frozenset(AUDIT_READERS)), None)
        else None
    )
    signatures = session.scalars(
        select(SignatureRecord)
        .where(SignatureRecord.mandate_id == mandate_id)
        .order_by(SignatureRecord.created_at)
        .limit(200)
    ).all()
    related = session.scalars(
        select(Mandate).where(
            (Mandate.reissued_from_id == mandate_id) | (Mandate.parent_id == mandate_id)
        )
    ).all()
    boxes = chain_boxes(shown, verdict)
    return _render(
        "console/mandate.html",
        row=row,
        shown=shown,
        boxes=boxes,
        box_width=BOX_WIDTH,
        box_height=BOX_HEIGHT,
        svg_height=boxes[-1]["y"] + BOX_HEIGHT + 4,
        history=history,
        signatures=signatures,
        related=related,
        may_revoke=row.revoked_at is None and any(caller.holds(r) for r in REVOKERS),
        revoked=request.args.get("revoked") == "1",
    )


@blp.get("/mandates/<mandate_id>/document.pdf")
def mandate_document(mandate_id: str) -> BaseResponse:
    _signed_in(Access(frozenset(READERS)))
    return document_response(mandate_id)


@blp.get("/mandates/<mandate_id>/ac.der")
def mandate_ac(mandate_id: str) -> BaseResponse:
    _signed_in(Access(frozenset(READERS)))
    row = readable_mandate(mandate_id)
    return BaseResponse(
        row.attribute_certificate,
        mimetype="application/pkix-attr-cert",
        headers={"Content-Disposition": f'attachment; filename="mandate-{mandate_id}.ac.der"'},
    )


@blp.get("/mandates/<mandate_id>/revoke")
def confirm_revocation(mandate_id: str) -> str:
    _signed_in(Access(frozenset(REVOKERS)))
    row = readable_mandate(mandate_id)
    return _render("console/revoke.html", row=row, reasons=REVOCATION_REASONS)


@blp.post("/mandates/<mandate_id>/revoke")
def revoke(mandate_id: str) -> BaseResponse:
    _signed_in(Access(frozenset(REVOKERS)))
    reason = request.form.get("reason", "")
    if reason not in REVOCATION_REASONS:
        raise ProblemError("VALIDATION_FAILED", detail="choose a revocation reason")
    revoke_mandate(mandate_id, reason)
    return redirect(url_for("console.mandate", mandate_id=mandate_id, revoked="1"), code=303)


# -- verification: upload a signed document, read the verdict ---------------------------

PURPOSE_FORM_FIELDS = ("principal", "action", "procuring_entity", "case")


def _may_verify() -> None:
    if not current_context().settings.console_open_verification:
        _signed_in()


@blp.get("/verify")
def verify_form() -> str:
    _may_verify()
    return _render("console/verify.html", report=None, text="", form={})


@blp.post("/verify")
@lock_free
@body_limit(MAX_UPLOAD_BYTES)
def verify() -> str | BaseResponse:
    """The API's verification of one uploaded document (and the purpose, if given),
    shown as a page or downloaded as JSON or the 検証結果 PDF (the button pressed)."""
    _may_verify()
    upload = request.files.get("document")
    if upload is None or not upload.filename:
        raise ProblemError("VALIDATION_FAILED", detail="choose the signed PDF or XML file")
    fields: dict[str, object] = {
        name: request.form[name].strip()
        for name in PURPOSE_FORM_FIELDS
        if request.form.get(name, "").strip()
    }
    if request.form.get("amount", "").strip():
        amount = request.form["amount"].strip().replace(",", "")
        if not amount.isdigit():
            raise ProblemError("VALIDATION_FAILED", detail="the amount is whole yen")
        fields["amount"] = int(amount)
    purpose = purpose_from(fields) if fields else None
    report = verify_document(
        upload.read(),
        service_trust(),
        purpose,
        max_bytes=current_context().settings.max_document_bytes,
    )
    language = g.console_language
    output = request.form.get("format", "page")
    if output == "pdf":
        return BaseResponse(
            report_pdf(report, language),
            mimetype="application/pdf",
            headers={"Content-Disposition": 'attachment; filename="verification.pdf"'},
        )
    if output == "json":
        return BaseResponse(
            json.dumps(report.to_json(), ensure_ascii=False, indent=2, default=str),
            mimetype="application/json",
            headers={"Content-Disposition": 'attachment; filename="verification.json"'},
        )
    return _render(
        "console/verify.html",
        report=report,
        text=render_text(report, language),
        form={k: str(v) for k, v in fields.items()},
    )


# -- authority: who could act for this corporation, for this purpose, on this date -------


_AUTHORITY_QUERY = AuthorityQuerySchema()


@blp.get("/authority")
def authority() -> str:
    _signed_in(Access(frozenset(READERS)))
    query = {k: v for k, v in request.args.items() if v != "" and k != "lang"}
    answer = authority_answer(_AUTHORITY_QUERY.load(query)) if query else None
    return _render("console/authority.html", answer=answer, form=query)


# -- audit: the event timeline, checkpoints, the chain's state, an export ---------------


_EVENT_QUERY = EventQuerySchema()
EXPORT_PAGE = 200  # the API's largest page


def _event_args() -> dict[str, Any]:
    skipped = {"lang", "page_size", "check"}
    query = {k: v for k, v in request.args.items() if v != "" and k not in skipped}
    return dict(_EVENT_QUERY.load(query))


@blp.get("/audit")
def audit() -> str:
    _signed_in(Access(frozenset(AUDIT_READERS)))
    args = _event_args()
    page = event_page(args)
    filters = {k: v for k, v in request.args.items() if k in EVENT_FILTERS and v != ""}
    return _render(
        "console/audit.html",
        page=page,
        filters=filters,
        checkpoints=checkpoint_page({"cursor": None, "page_size": 5})["items"],
        chain=chain_verification(from_start=False) if request.args.get("check") == "1" else None,
    )


EVENT_FILTERS = ("principal", "actor", "tag", "subject", "from", "to")


@blp.get("/audit/export.jsonl")
def audit_export() -> BaseResponse:
    """Every event the filters select and the caller may see, one JSON object a line,
    in sequence order (each with its hashes: ``dairi audit verify`` reads the chain)."""
    _signed_in(Access(frozenset(AUDIT_READERS)))
    args = _event_args()
    args["page_size"] = EXPORT_PAGE

    def lines() -> Iterator[str]:
        while True:
            page = event_page(args)
            for item in page["items"]:
                yield json.dumps(item, ensure_ascii=False, default=str) + "\n"
            if not page["has_more"]:
                return
            args["cursor"] = page["next_cursor"]

    return BaseResponse(
        stream_with_context(lines()),
        mimetype="application/jsonl",
        headers={"Content-Disposition": 'attachment; filename="audit-events.jsonl"'},
    )


# -- people: a corporation's employees and invitations (representatives) ---------------

EMPLOYEE_READERS = (Role.EMPLOYEE, Role.REPRESENTATIVE, Role.AUDITOR, Role.ADMINISTRATOR)
INVITERS = (Role.REPRESENTATIVE, Role.ADMINISTRATOR)


def _corporation_page(corporate_number: str, roles: tuple[Role, ...]) -> Caller:
    """The caller, who must hold one of ``roles`` for this corporation (as the API's
    ``allow`` with ``corporation_arg`` decides)."""
    caller = _signed_in()
    validate_corporate_number(corporate_number)
    if not permits(caller, Access(frozenset(roles)), corporate_number):
        raise ProblemError("FORBIDDEN", detail=f"not allowed for corporation {corporate_number}")
    return caller


@blp.get("/people")
def people_home() -> BaseResponse:
    """The people page of the caller's first corporation (a representative's)."""
    caller = _signed_in()
    mine = sorted(caller.representative_of or caller.employee_of)
    if not mine:
        raise ProblemError("FORBIDDEN", detail="no corporation of yours to show")
    return redirect(url_for("console.people", corporate_number=mine[0]))


@blp.get("/corporations/<corporate_number>/people")
def people(corporate_number: str) -> str:
    caller = _corporation_page(corporate_number, EMPLOYEE_READERS)
    args = {"page": max(1, request.args.get("page", 1, type=int) or 1), "page_size": PAGE_SIZE}
    page = employee_page(args, corporate_number)
    return _render(
        "console/people.html",
        corporation=corporation_row(corporate_number),
        page=page,
        args=args,
        **_span(page),
        may_invite=permits(caller, Access(frozenset(INVITERS)), corporate_number),
    )


@blp.post("/corporations/<corporate_number>/invitations")
def invitation(corporate_number: str) -> str:
    _corporation_page(corporate_number, INVITERS)
    name = " ".join(request.form.get("name", "").split()).replace(" ", "\u3000")
    if not name or len(name) > 200:
        raise ProblemError("VALIDATION_FAILED", detail="the employee's name as on the card")
    issued = invite_employee(corporate_number, name, None)
    return _render(
        "console/invitation.html", issued=issued, corporation=corporation_row(corporate_number)
    )
