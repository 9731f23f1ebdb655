"""Every error leaves the service as RFC 9457 ``application/problem+json`` with a stable code.

Views raise :class:`ProblemError`, a domain error (a :class:`dairi.DairiError`
such as :class:`hsm.HsmError`), or let
werkzeug/flask-smorest raise an HTTP error; the handlers registered by
:func:`register_error_handlers` turn each into a problem document whose status
and title are the code's entry in :data:`dairi.problems.CATALOGUE` and whose
``type`` is that entry's URL. Server errors (5xx) never carry exception text: it
is logged, not sent. A code missing from the catalogue is answered as a 500
``INTERNAL_ERROR`` (and logged): it is a bug, never the caller's fault.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import marshmallow as ma
from flask import Flask, Response, current_app, has_app_context, has_request_context, request
from werkzeug.exceptions import HTTPException

from app.http.request_scope import EXTENSION_KEY
from app.outages import OUTAGES, as_outage
from dairi import DairiError
from dairi.problems import CATALOGUE, UnknownProblemCode, problem

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

# Where the catalogue is served; each code's entry is the ``type`` of its problems.
PROBLEMS_PATH = "/api/v1/problems"

# The code of each HTTP error werkzeug or flask-smorest raises: the status's name as
# Python 3.11 spells it (later versions rename some), or the code clients know.
HTTP_ERROR_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    410: "GONE",
    411: "LENGTH_REQUIRED",
    412: "PRECONDITION_FAILED",
    413: "PAYLOAD_TOO_LARGE",
    414: "REQUEST_URI_TOO_LONG",
    415: "UNSUPPORTED_MEDIA_TYPE",
    416: "REQUESTED_RANGE_NOT_SATISFIABLE",
    417: "EXPECTATION_FAILED",
    418: "IM_A_TEAPOT",
    421: "MISDIRECTED_REQUEST",
    422: "VALIDATION_FAILED",
    423: "LOCKED",
    424: "FAILED_DEPENDENCY",
    428: "PRECONDITION_REQUIRED",
    429: "TOO_MANY_REQUESTS",
    431: "REQUEST_HEADER_FIELDS_TOO_LARGE",
    451: "UNAVAILABLE_FOR_LEGAL_REASONS",
    500: "INTERNAL_SERVER_ERROR",
    501: "NOT_IMPLEMENTED",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
    505: "HTTP_VERSION_NOT_SUPPORTED",
}

_RESERVED = {"type", "title", "status", "detail", "code", "instance"}


def problem_type(code: str) -> str:
    """The problem ``type`` of ``code``: the URL of its entry in the catalogue,
    ``<public_base_url>/api/v1/problems/<code>``.

    RFC 9457 prefers a type URI that, dereferenced, documents the problem type
    (§3.1.1, §4.1); the entry does. Outside a dairi application the path alone (a
    relative reference).
    """
    context = current_app.extensions.get(EXTENSION_KEY) if has_app_context() else None
    base = context.settings.public_base_url if context is not None else ""
    return f"{base}{PROBLEMS_PATH}/{code}"


def catalogue_entry(code: str) -> dict[str, Any]:
    """The published form of a catalogued code: code, status, type, title, description."""
    entry = problem(code)
    return {
        "code": entry.code,
        "status": entry.status,
        "type": problem_type(entry.code),
        "title": entry.title,
        "description": entry.description,
    }


class ProblemError(DairiError):
    """A refusal a view raises, answered as a problem document.

    The status and title are the code's entry in :data:`dairi.problems.CATALOGUE`
    (:class:`dairi.problems.UnknownProblemCode` for a code that is not there).
    ``detail`` is shown to the caller (also with a 5xx: write it for them);
    ``extra`` members are added to the document (e.g. ``checks``, ``errors``) and
    cannot replace the standard members.
    """

    def __init__(
        self,
        code: str | int,
        *args: str | None,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        if isinstance(code, int):
            # The form before the catalogue, ProblemError(status, code, title, detail),
            # accepted while raise sites written alongside this change are converted;
            # the status must be the catalogue's, the title is the catalogue's.
            # tests/test_problems_catalogue.py refuses this form in the tree.
            status, code = code, str(args[0])
            detail = detail or (args[2] if len(args) > 2 else None)
            if problem(code).status != status:
                raise ValueError(
                    f"{code} is {problem(code).status} in dairi.problems, not {status}"
                )
        elif args:
            detail = detail or args[0]
        entry = problem(code)
        super().__init__(detail or entry.title, code)
        self.status = entry.status
        self.title = entry.title
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem_response(
    code: str,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A Flask response with the problem document of a catalogued code: type, title,
    status, detail, code, instance, and the ``extra`` members."""
    entry = problem(code)
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": entry.title,
        "status": entry.status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    if has_request_context():
        body["instance"] = request.path
    body.update({k: v for k, v in extra.items() if k not in _RESERVED and v is not None})
    response = Response(
        json.dumps(body, ensure_ascii=False), status=entry.status, content_type=PROBLEM_CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class ProblemSchema(ma.Schema):
    """The problem document (RFC 9457), for the OpenAPI description only."""

    class Meta:
        unknown = ma.INCLUDE  # problem types add their own members

    type = ma.fields.String(
        metadata={
            "description": "The code's entry in the catalogue: "
            "<public base URL>/api/v1/problems/<code>",
            "format": "uri",
        }
    )
    title = ma.fields.String(metadata={"description": "The code's title in the catalogue"})
    status = ma.fields.Integer()
    detail = ma.fields.String()
    code = ma.fields.String(
        validate=ma.validate.OneOf(sorted(CATALOGUE)),
        metadata={"description": "Stable error code; GET /api/v1/problems describes each"},
    )
    instance = ma.fields.String()
    errors = ma.fields.Dict(metadata={"description": "Field messages (VALIDATION_FAILED)"})


def _handle_problem(exc: ProblemError) -> Response:
    if exc.status >= 500:
        logger.error("problem %s: %s", exc.code, exc, exc_info=exc.__cause__ is not None)
    return problem_response(exc.code, exc.detail, headers=exc.headers, **exc.extra)


def _handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status >= 500:
        logger.error("HTTP %s", status, exc_info=exc)
    code = HTTP_ERROR_CODES.get(status)
    if code is None:  # an HTTPException with a status no catalogued code has
        logger.error("HTTP %s has no catalogued code", status, exc_info=exc)
        return problem_response("INTERNAL_ERROR")
    # flask-smorest's abort() puts message/errors/headers in exc.data; webargs puts
    # validation messages in data["messages"].
    data: dict[str, Any] = getattr(exc, "data", None) or {}
    errors = data.get("errors", data.get("messages"))
    detail = data.get("message") or exc.description
    if status >= 500:
        detail = None
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    return problem_response(code, detail, headers=headers, errors=errors)


def _handle_exception(exc: Exception) -> Response:
    # A dependency outage (the database, the TSA ...) becomes its coded 503, logged
    # once per outage rather than with a traceback per request.
    exc = as_outage(exc, OUTAGES) or exc
    if isinstance(exc, DairiError):
        try:
            entry = problem(exc.code)
        except UnknownProblemCode:
            logger.error(
                "%s is not in the error catalogue (dairi/problems.py): %s", exc.code, exc.message
            )
            return problem_response("INTERNAL_ERROR")
        headers = {"Retry-After": str(exc.retry_after or 60)} if entry.retryable else None
        if entry.status >= 500:
            if not exc.logged:
                logger.error("%s: %s", exc.code, exc.message)
            return problem_response(exc.code, headers=headers)
        return problem_response(exc.code, exc.message, headers=headers)
    if isinstance(exc, ma.ValidationError):
        return problem_response("VALIDATION_FAILED", errors=exc.normalized_messages())
    logger.exception("unhandled error")
    return problem_response("INTERNAL_ERROR")


def problem_for(exc: Exception) -> Response:
    """The problem+json answer the API gives for ``exc`` (for pages that show the same
    status, code and detail in another form, e.g. the console's)."""
    if isinstance(exc, ProblemError):
        return _handle_problem(exc)
    if isinstance(exc, HTTPException):
        return _handle_http_exception(exc)
    return _handle_exception(exc)


def register_error_handlers(app: Flask) -> None:
    """Install the problem+json handlers; call after flask-smorest's Api so these win."""
    app.register_error_handler(ProblemError, _handle_problem)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_exception)
