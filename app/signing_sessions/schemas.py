"""The signing sessions' request and answer schemas (marshmallow), and the OpenAPI
description of the multipart upload that opens a session."""

from __future__ import annotations

import marshmallow as ma

from app.http.schemas import BINARY, action_field, corporate_number_field
from app.signing_sessions.service import SESSION_FORMATS, XADES_PACKAGINGS
from signing import PadesLevel


class PurposeSchema(ma.Schema):
    principal = corporate_number_field(required=True)
    action = action_field(required=True)
    procuring_entity = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(min=1, max=300)
    )
    case = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(min=1, max=300)
    )
    amount = ma.fields.Integer(
        load_default=None, allow_none=True, validate=ma.validate.Range(min=0), strict=True
    )


class SessionRequestSchema(ma.Schema):
    credential_id = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=36))
    purpose = ma.fields.Nested(PurposeSchema, required=True)
    format = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(SESSION_FORMATS),
        metadata={"description": "pades (PDF), xades (XML) or cms (a sub-delegation)"},
    )
    packaging = ma.fields.String(
        load_default=None,
        validate=ma.validate.OneOf(XADES_PACKAGINGS),
        metadata={"description": "xades only: enveloped (default) or detached"},
    )
    level = ma.fields.String(
        required=True, validate=ma.validate.OneOf([lv.value for lv in PadesLevel])
    )
    mandate_id = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=36))
    stamp = ma.fields.Boolean(load_default=False)


class DocumentSchema(ma.Schema):
    index = ma.fields.Integer(attribute="position")
    name = ma.fields.String()
    bytes = ma.fields.Integer(attribute="size")
    sha256 = ma.fields.String(metadata={"description": "SHA-256 (hex) as uploaded"})
    signed_sha256 = ma.fields.String(allow_none=True)
    fetched = ma.fields.Boolean()


class SessionSchema(ma.Schema):
    id = ma.fields.String()
    status = ma.fields.String(metadata={"description": "open, authorized or signed"})
    credential_id = ma.fields.String()
    mandate_id = ma.fields.String()
    purpose = ma.fields.Dict()
    format = ma.fields.String()
    packaging = ma.fields.String(
        allow_none=True, metadata={"description": "xades: enveloped or detached; else null"}
    )
    level = ma.fields.String()
    documents = ma.fields.List(ma.fields.Nested(DocumentSchema))
    to_sign = ma.fields.String(
        metadata={
            "description": "base64 of the RFC 8785 bytes the card's authentication key signs: "
            "service, purpose signature-activation, nonce, times, session, credential and "
            "its certificate's SHA-256, mandate, signing purpose, format, level, the "
            "documents' SHA-256s in order and their count, and for xades the packaging"
        }
    )
    expires_at = ma.fields.DateTime(metadata={"description": "to_sign's expiry (≤ 120 s)"})
    authorized_at = ma.fields.DateTime(allow_none=True)
    sad_expires_at = ma.fields.DateTime(allow_none=True)
    signed_at = ma.fields.DateTime(allow_none=True)


class ActivationSchema(ma.Schema):
    sad = ma.fields.String(metadata={"description": "The SAD: shown once, single use"})
    expires_at = ma.fields.DateTime(metadata={"description": "Within 5 minutes"})
    documents = ma.fields.Integer(metadata={"description": "How many documents it signs"})


class SignRequestSchema(ma.Schema):
    sad = ma.fields.String(load_default=None, validate=ma.validate.Length(max=200))


class SignedDocumentSchema(ma.Schema):
    index = ma.fields.Integer()
    name = ma.fields.String()
    sha256 = ma.fields.String()
    signed_sha256 = ma.fields.String()
    signature_id = ma.fields.String()
    href = ma.fields.String(
        metadata={"description": "GET it once (application/pdf, or application/xml for xades)"}
    )


class SignaturesSchema(ma.Schema):
    documents = ma.fields.List(ma.fields.Nested(SignedDocumentSchema))


MULTIPART = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["request", "document"],
                "properties": {
                    "request": {
                        "type": "string",
                        "description": "JSON: credential_id, purpose {principal, action, "
                        "procuring_entity, case, amount}, format (pades, xades or cms), "
                        "packaging? (xades: enveloped or detached), level, mandate_id?, "
                        "stamp? (pades)",
                    },
                    "document": {"type": "array", "items": BINARY},
                },
            }
        }
    },
}
