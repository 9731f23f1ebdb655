"""Schema pieces shared by the API blueprints, and the guards every JSON API shares."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask import request
from marshmallow.types import ErrorMessages

from app.http.problems import ProblemError
from identity.corporate_number import validate_corporate_number

# Login, enrolment and administration bodies are small: a certificate chain and a
# signature fit easily. Anything bigger is refused before it is read.
SMALL_BODY_BYTES = 64 * 1024

CORPORATE_NUMBER = re.compile(r"^[1-9][0-9]{12}$")
# A concrete action (a purpose names no wildcard), as far as a pattern can say what
# delegation.scope.validate_action accepts (it also refuses unprintable procedure
# names). Documented only: the domain checks it, with its own codes.
ACTION = re.compile(r"^(?:bid|quote|contract|invoice|e-application:[^\s*\x00-\x1f\x7f-\x9f]+)$")

# Listings page through at most this many pages (2·10**8 rows at the largest page size).
MAX_PAGE = 1_000_000

# No body the API takes nests deeper than a few levels; Python's JSON reader
# recurses per level and fails near 1,000, so deeper bodies are refused before parsing.
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(rb"[\[\]{}]")
_LONG_NUMBER = re.compile(rb"[0-9]{4300}")
_SURROGATE = re.compile("[\ud800-\udfff]")


# The response schema of an answer that is not JSON (DER, PDF, PEM): its content
# type is documented beside it, so clients (and schemathesis) know what comes back.
BINARY: dict[str, str] = {"type": "string", "format": "binary"}


def binary_request(content_type: str) -> dict[str, object]:
    """``@blp.doc(requestBody=...)`` of an OCSP responder or TSA reading a raw DER body.
    Documented optional: those protocols answer a missing or malformed request in
    band (200 with an error status, RFC 6960 and RFC 3161), not with an HTTP error."""
    return {"required": False, "content": {content_type: {"schema": BINARY}}}


class Base64Bytes(ma.fields.Field):
    """Bytes sent as base64 (standard or URL-safe alphabet, padding optional)."""

    # typed as marshmallow types it (not ClassVar: Field declares it plainly)
    default_error_messages: ErrorMessages = {  # noqa: RUF012
        "invalid": "Not valid base64.",
        "empty": "Must not be empty.",
    }

    def __init__(self, *, max_bytes: int = SMALL_BODY_BYTES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_bytes = max_bytes
        # a new mapping: the caller's metadata wins, and is not written into
        self.metadata = {
            "type": "string",
            "format": "byte",
            "minLength": 1,  # empty is refused (and decodes to nothing)
            **self.metadata,
        }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bytes:
        if not isinstance(value, str) or len(value) > self.max_bytes * 2:
            raise self.make_error("invalid")
        text = "".join(value.split()).replace("-", "+").replace("_", "/")
        text += "=" * (-len(text) % 4)
        try:
            decoded = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise self.make_error("invalid") from exc
        if not decoded:
            raise self.make_error("empty")
        return decoded

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else base64.b64encode(value).decode("ascii")


class Moment(ma.fields.AwareDateTime):
    """An instant with its offset (ISO 8601), read as UTC; one that cannot be
    expressed in UTC (``9999-12-31T23:59:59-23:59``) is a validation failure."""

    default_error_messages: ErrorMessages = {  # noqa: RUF012 (as on Base64Bytes)
        "out_of_range": "Not a time that can be expressed in UTC."
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError as exc:
            raise self.make_error("out_of_range") from exc


class PageArgs(ma.Schema):
    """``page`` and ``page_size`` query arguments of every listing. Bounded, so
    that the offset fits every database's integers (``page=10**20`` is a 422)."""

    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=MAX_PAGE))
    page_size = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=200))


def _check_digit(value: str) -> None:
    # 13 digits with a wrong check digit is no corporation's number: a 422
    # CORPORATE_NUMBER_INVALID while the arguments are read, before a view's permission
    # check could call it FORBIDDEN (issue 10.10). The format is the Regexp's message.
    if CORPORATE_NUMBER.match(value):
        validate_corporate_number(value)


def corporate_number_field(**kwargs: Any) -> ma.fields.String:
    """A 法人番号: 13 digits (else 422 VALIDATION_FAILED) with a right check digit (else
    422 CORPORATE_NUMBER_INVALID)."""
    return ma.fields.String(
        validate=[
            ma.validate.Regexp(CORPORATE_NUMBER, error="A 法人番号 is 13 digits."),
            _check_digit,
        ],
        **kwargs,
    )


def action_field(**kwargs: Any) -> ma.fields.String:
    """The action of a purpose: bid, quote, contract, invoice or
    ``e-application:<procedure>`` (anything else: 422 ``SCOPE_ACTION_UNKNOWN``, and
    ``SCOPE_INVALID`` for the wildcard ``e-application:*``, from the domain)."""
    return ma.fields.String(
        metadata={
            "pattern": ACTION.pattern,
            "description": "bid, quote, contract, invoice or e-application:<procedure>",
        },
        **kwargs,
    )


def guard_json_body() -> None:
    """``before_request`` for JSON APIs: a body must be JSON. Its size was capped before
    (``app.http.edge``: DEFAULT_BODY_BYTES, for any transfer encoding). JSON nested too deep
    is refused before it is parsed (400 ``JSON_TOO_DEEP``), a number too long to read is
    a 400, and text no database can store — NUL, unpaired surrogates — in the body, the
    path or the query is a 422 ``VALIDATION_FAILED``."""
    has_body = bool(request.content_length) or "chunked" in request.headers.get(
        "Transfer-Encoding", ""
    )
    if request.method in {"POST", "PUT", "PATCH"} and has_body and not request.is_json:
        raise ProblemError("UNSUPPORTED_MEDIA_TYPE", detail="send application/json")
    refuse_unstorable_text("path", request.view_args or {})
    refuse_unstorable_text("query", request.args.to_dict(flat=False))
    if request.method in {"POST", "PUT", "PATCH"} and has_body:
        body = request.get_data(cache=True)
        refuse_deep_json(body)
        try:
            document = json.loads(body)
        except ValueError:
            # Not JSON: webargs answers that itself (400). Python also refuses here an
            # integer of more than 4,300 digits, which webargs would let through as a 500.
            if _LONG_NUMBER.search(body):
                raise ProblemError(
                    "BAD_REQUEST", detail="a number in the body is too long to read"
                ) from None
            return
        refuse_unstorable_text("json", document)


def refuse_unstorable_text(location: str, value: object) -> None:
    """Refuse (422 ``VALIDATION_FAILED``) any string in ``value`` (keys included) that
    holds NUL or an unpaired surrogate: PostgreSQL stores no NUL in text, and no
    database stores a lone surrogate (which a JSON ``\\u`` escape can spell)."""
    for text in _strings(value):
        if "\x00" in text or _SURROGATE.search(text):
            raise ProblemError(
                "VALIDATION_FAILED",
                detail="text must not hold NUL or unpaired surrogates",
                errors={location: ["text must not hold NUL or unpaired surrogates"]},
            )


def _strings(value: object) -> Iterator[str]:
    # Recursion is bounded: bodies nest at most MAX_JSON_DEPTH levels (checked first).
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def refuse_deep_json(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse (400 ``JSON_TOO_DEEP``) a JSON text whose arrays and objects nest deeper
    than ``limit``, before a parser recurses into it. Brackets inside strings do not
    count; the scan is linear in the body's size."""
    depth = 0
    for bracket in _JSON_BRACKET.finditer(_JSON_STRING.sub(b'""', body)):
        depth += 1 if bracket.group() in (b"[", b"{") else -1
        if depth > limit:
            raise ProblemError(
                "JSON_TOO_DEEP", detail=f"JSON here nests at most {limit} levels deep"
            )
