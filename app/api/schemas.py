"""Schema pieces shared by the API blueprints, and the guards every JSON API shares."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, ClassVar

import marshmallow as ma
from flask import request

from app.errors import ProblemError

# Login, enrolment and administration bodies are small: a certificate chain and a
# signature fit easily. Anything bigger is refused before it is read.
SMALL_BODY_BYTES = 64 * 1024

CORPORATE_NUMBER = re.compile(r"^[1-9][0-9]{12}$")


class Base64Bytes(ma.fields.Field):
    """Bytes sent as base64 (standard or URL-safe alphabet, padding optional)."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": "Not valid base64.", "empty": "Must not be empty."}

    def __init__(self, *, max_bytes: int = SMALL_BODY_BYTES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_bytes = max_bytes
        self.metadata.setdefault("type", "string")
        self.metadata.setdefault("format", "byte")

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


class PageArgs(ma.Schema):
    """``page`` and ``page_size`` query arguments of every listing."""

    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1))
    page_size = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=200))


def corporate_number_field(**kwargs: Any) -> ma.fields.String:
    return ma.fields.String(validate=ma.validate.Regexp(
        CORPORATE_NUMBER, error="A 法人番号 is 13 digits."), **kwargs)


def guard_json_body(limit: int = SMALL_BODY_BYTES) -> None:
    """``before_request`` for JSON APIs: a body must be JSON and at most ``limit`` bytes."""
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise ProblemError(413, "PAYLOAD_TOO_LARGE",
                           detail=f"bodies here are at most {limit} bytes")
    has_body = bool(request.content_length) or "chunked" in request.headers.get(
        "Transfer-Encoding", "")
    if request.method in {"POST", "PUT", "PATCH"} and has_body and not request.is_json:
        raise ProblemError(415, "UNSUPPORTED_MEDIA_TYPE", detail="send application/json")
