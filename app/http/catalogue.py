"""The error catalogue over HTTP: ``GET /api/v1/problems`` and one entry per code.

Each entry's URL is the ``type`` of the problem documents carrying its code
(:func:`app.http.problems.problem_type`), so a client that meets an unknown code
can follow ``type`` to its status and description. Public: no credentials.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import redirect, request, url_for
from flask_smorest import Blueprint
from werkzeug.wrappers import Response

from app.http.problems import (
    PROBLEM_CONTENT_TYPE,
    PROBLEMS_PATH,
    ProblemError,
    ProblemSchema,
    catalogue_entry,
)
from dairi.problems import CATALOGUE

blp = Blueprint(
    "problems",
    __name__,
    url_prefix=PROBLEMS_PATH,
    description="The error catalogue: every code the service answers with",
)


class ProblemEntrySchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"example": "TOKEN_EXPIRED"})
    status = ma.fields.Integer(required=True, metadata={"example": 401})
    type = ma.fields.String(
        required=True,
        metadata={"description": "This entry's URL: the problem type of the code", "format": "uri"},
    )
    title = ma.fields.String(required=True, metadata={"example": "Token expired"})
    description = ma.fields.String(required=True)


@blp.route("", methods=["GET"])
@blp.response(200, ProblemEntrySchema(many=True))
def list_problems() -> list[dict[str, Any]]:
    """Every error code, sorted: its HTTP status, type, title and description."""
    return [catalogue_entry(code) for code in sorted(CATALOGUE)]


@blp.route("/<code>", methods=["GET"])
@blp.response(200, ProblemEntrySchema)
@blp.alt_response(
    303, description="A browser (Accept: text/html) is sent to the code's row on /docs/problems"
)
@blp.alt_response(
    404,
    schema=ProblemSchema,
    content_type=PROBLEM_CONTENT_TYPE,
    description="No such code (NOT_FOUND)",
)
def get_problem(code: str) -> dict[str, Any] | Response:
    """One error code's entry (the ``type`` of its problem documents); a browser
    (preferring text/html) is sent to the code's row on ``/docs/problems``."""
    if code not in CATALOGUE:
        raise ProblemError("NOT_FOUND", detail=f"no error code {code}")
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        return redirect(url_for("docs.problems", _anchor=code), code=303)
    return catalogue_entry(code)
