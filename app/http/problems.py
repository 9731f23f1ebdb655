"""Every error leaves the service as RFC 9457 ``application/problem+json`` with a stable code.

Views raise :class:`ProblemError`, a domain error (a :class:`dairi.DairiError`
such as :class:`hsm.HsmError`), or let
werkzeug/flask-smorest raise an HTTP error; the handlers registered by
:func:`register_error_handlers` turn each into a problem document. Server
errors (5xx) never carry exception text: it is logged, not sent.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

import marshmallow as ma
from flask import Flask, Response, has_request_context, request
from werkzeug.exceptions import HTTPException

from app.outages import OUTAGES, as_outage
from dairi import DairiError

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

# The status a domain error code maps to; see status_for_code for the rules.
STATUS_BY_CODE: dict[str, int] = {
    "HSM_KEY_NOT_FOUND": 404,
    "HSM_PIN_INCORRECT": 503,
    "HSM_TOKEN_NOT_FOUND": 503,
    "HSM_UNAVAILABLE": 503,
    "HSM_ERROR": 503,
    "HSM_UNSUPPORTED_SCHEME": 422,
    # identity: a certificate or proof that does not hold is understood and refused
    "CERTIFICATE_MALFORMED": 422,
    "CERTIFICATE_ISSUER_UNKNOWN": 403,
    "CERTIFICATE_EXPIRED": 403,
    "CERTIFICATE_NOT_YET_VALID": 403,
    "CERTIFICATE_REVOKED": 403,
    "CERTIFICATE_POLICY_MISMATCH": 403,
    "CERTIFICATE_KEY_USAGE_MISMATCH": 403,
    "CERTIFICATE_INVALID": 403,
    "SIGNATURE_INVALID": 403,
    "REENROLL_REQUIRED": 403,
    "CERTIFICATE_NOT_ENROLLED": 403,
    "CERTIFICATE_ALREADY_ENROLLED": 409,
    "NOT_A_REPRESENTATIVE": 403,
    "ENROLMENT_NAME_MISMATCH": 403,
    "REBIND_IDENTITY_MISMATCH": 403,
    "REBIND_NOT_PERMITTED": 403,
    "REVOCATION_STATUS_UNAVAILABLE": 503,
    "CHALLENGE_NOT_FOUND": 404,
    "CHALLENGE_EXPIRED": 410,
    "CHALLENGE_REPLAYED": 409,
    "CHALLENGE_PURPOSE_MISMATCH": 409,
    "CHALLENGES_EXHAUSTED": 503,
    "RATE_LIMITED": 429,
    "UNAUTHENTICATED": 401,
    "TOKEN_INVALID": 401,
    "TOKEN_EXPIRED": 401,
    "CLIENT_CREDENTIALS_INVALID": 401,
    "CLIENT_NOT_FOUND": 404,
    "FORBIDDEN": 403,
    "INVITATION_INVALID": 404,
    "INVITATION_EXPIRED": 410,
    "CORPORATION_NOT_FOUND": 404,
    "PERSON_NOT_FOUND": 404,
    # delegation: a grant or revocation the rules refuse (DESIGN §5)
    "INSTRUCTION_MALFORMED": 422,
    "SCOPE_ACTION_UNKNOWN": 422,
    "AC_MALFORMED": 422,
    "GRANTEE_NOT_EMPLOYEE": 422,
    "MANDATE_EXPIRED": 422,
    "PRINCIPAL_MISMATCH": 403,
    "GRANTOR_NOT_REPRESENTATIVE": 403,
    "REPRESENTATIVE_CERT_REVOKED": 403,
    "JOINT_REPRESENTATION_INCOMPLETE": 403,
    "GRANTOR_NOT_PARENT_GRANTEE": 403,
    "SUBDELEGATION_NOT_ALLOWED": 403,
    "DEPTH_EXCEEDED": 403,
    "SCOPE_ACTION_NOT_GRANTED": 403,
    "SCOPE_ENTITY_NOT_GRANTED": 403,
    "SCOPE_CASE_NOT_GRANTED": 403,
    "SCOPE_AMOUNT_EXCEEDED": 403,
    "SCOPE_VALIDITY_EXCEEDED": 403,
    "ANCESTOR_REVOKED": 403,
    "PARENT_EXPIRED": 403,
    "PARENT_NOT_YET_VALID": 403,
    "HOLDER_MISMATCH": 403,
    "MANDATE_NOT_FOUND": 404,
    "PARENT_NOT_FOUND": 404,
    "MANDATE_ALREADY_REVOKED": 409,
    "INSTRUCTION_REPLAYED": 409,
    "INSTRUCTION_STALE": 422,
    "HOLDER_NOT_GRANTEE": 403,
    "PERSON_NOT_EMPLOYEE": 422,
    "AA_NOT_CONFIGURED": 503,
    # dependency outages (issue 16.7): the client may retry after Retry-After
    "DATABASE_UNAVAILABLE": 503,
    "STORAGE_FULL": 503,
    "TIMESTAMP_FAILED": 503,
    "VALIDATION_DATA_UNAVAILABLE": 503,
    "SIGNING_FAILED": 503,
}
DEFAULT_STATUS = 400

# Codes for HTTP errors whose HTTPStatus name is not the one clients should see.
_CODE_BY_STATUS = {413: "PAYLOAD_TOO_LARGE", 422: "VALIDATION_FAILED"}

_RESERVED = {"type", "title", "status", "detail", "code", "instance"}


def status_for_code(code: str) -> int:
    """HTTP status for a domain error code.

    ``STATUS_BY_CODE`` first; then codes ending in ``_INVALID`` or starting with
    ``DOCUMENT_`` are 422; anything else is ``DEFAULT_STATUS`` (400).
    """
    if code in STATUS_BY_CODE:
        return STATUS_BY_CODE[code]
    if code.endswith("_INVALID") or code.startswith("DOCUMENT_"):
        return 422
    return DEFAULT_STATUS


def problem_type(code: str) -> str:
    """The problem ``type`` URI for a code: ``urn:dairi:problem:<code-in-kebab-case>``."""
    return "urn:dairi:problem:" + code.lower().replace("_", "-")


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class ProblemError(Exception):
    """An error a view wants the client to see, as a problem document.

    ``extra`` members are added to the document (e.g. ``checks``, ``errors``);
    they cannot replace the standard members.
    """

    def __init__(
        self,
        status: int,
        code: str,
        title: str | None = None,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title or code)
        self.headers = headers
        self.status = status
        self.code = code
        self.title = title or _title(status)
        self.detail = detail
        self.extra = extra


def problem_response(
    status: int,
    code: str,
    title: str | None = None,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A Flask response with the problem document: type, title, status, detail, code, instance."""
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title or _title(status),
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    if has_request_context():
        body["instance"] = request.path
    body.update({k: v for k, v in extra.items() if k not in _RESERVED and v is not None})
    response = Response(
        json.dumps(body, ensure_ascii=False), status=status, content_type=PROBLEM_CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class ProblemSchema(ma.Schema):
    """The problem document (RFC 9457), for the OpenAPI description only."""

    class Meta:
        unknown = ma.INCLUDE  # problem types add their own members

    type = ma.fields.String(metadata={"description": "urn:dairi:problem:<code>"})
    title = ma.fields.String()
    status = ma.fields.Integer()
    detail = ma.fields.String()
    code = ma.fields.String(metadata={"description": "Stable error code"})
    instance = ma.fields.String()
    errors = ma.fields.Dict(metadata={"description": "Field messages (VALIDATION_FAILED)"})


def _handle_problem(exc: ProblemError) -> Response:
    if exc.status >= 500:
        logger.error("problem %s: %s", exc.code, exc, exc_info=exc.__cause__ is not None)
    return problem_response(exc.status, exc.code, exc.title, exc.detail, headers=exc.headers,
                            **exc.extra)


def _handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status >= 500:
        logger.error("HTTP %s", status, exc_info=exc)
    try:
        name = HTTPStatus(status).name
    except ValueError:
        name = "HTTP_ERROR"
    code = _CODE_BY_STATUS.get(status, name)
    # flask-smorest's abort() puts message/errors/headers in exc.data; webargs puts
    # validation messages in data["messages"].
    data: dict[str, Any] = getattr(exc, "data", None) or {}
    errors = data.get("errors", data.get("messages"))
    detail = data.get("message") or exc.description
    if status >= 500:
        detail = None
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    return problem_response(status, code, exc.name, detail, headers=headers, errors=errors)


def _handle_exception(exc: Exception) -> Response:
    # A dependency outage (the database, the TSA ...) becomes its coded 503, logged
    # once per outage rather than with a traceback per request.
    exc = as_outage(exc, OUTAGES) or exc
    if isinstance(exc, DairiError):
        status = status_for_code(exc.code)
        headers = ({"Retry-After": str(exc.retry_after or 60)} if status in (429, 503)
                   else None)
        if status >= 500:
            if not exc.logged:
                logger.error("%s: %s", exc.code, exc.message)
            return problem_response(status, exc.code, headers=headers)
        return problem_response(status, exc.code, detail=exc.message, headers=headers)
    if isinstance(exc, ma.ValidationError):
        return problem_response(422, "VALIDATION_FAILED", errors=exc.normalized_messages())
    logger.exception("unhandled error")
    return problem_response(500, "INTERNAL_ERROR", "Internal Server Error")


def register_error_handlers(app: Flask) -> None:
    """Install the problem+json handlers; call after flask-smorest's Api so these win."""
    app.register_error_handler(ProblemError, _handle_problem)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_exception)
