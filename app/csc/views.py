"""The Cloud Signature Consortium API over HTTP (DESIGN §6; issue 12 item 2).

``/csc/v2/``: ``info``, ``credentials/list``, ``credentials/info``,
``credentials/authorize``, ``signatures/signHash`` and ``signatures/timestamp``;
``/csc/v1/`` the same operations (but the time-stamp) in the v1.0.4 shapes pyHanko's
``CSCSigner`` speaks (``hash``, ``hashAlgo``).

dairi's extensions, all prefixed ``dairi_``:

- Authentication is the bearer token from the JPKI card login (``/api/v1/auth``), not
  OAuth 2.0; ``info`` says so.
- ``credentials/authorize`` carries the signing purpose in ``dairi_purpose``
  (``principal``, ``action``, ``procuring_entity``, ``case``, ``amount``) and may name
  the mandate in ``dairi_mandate_id``. Called without ``authData`` it answers
  ``dairi_to_sign`` (base64 of the RFC 8785 bytes binding the service, the credential,
  the mandate, the purpose, the exact hashes and their count) and no SAD; called again
  with the same request and ``authData`` ``[{"id": "dairi_card_certificate", "value":
  b64 DER}, {"id": "dairi_card_signature", "value": b64}]`` (optionally
  ``dairi_card_intermediates``, comma-separated b64) — the JPKI authentication
  certificate of the signed-in person and its signature over ``dairi_to_sign`` — it
  answers ``{"SAD", "expiresIn"}``.
- Errors are RFC 9457 problem documents (``application/problem+json``) with dairi's
  stable ``code``, and also CSC's ``error`` and ``error_description`` members.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC
from typing import Any

import marshmallow as ma
from cryptography import x509
from flask import Response
from flask_smorest import Blueprint

from app.credentials.service import read_certificates
from app.csc.service import (
    CSC_FORMAT,
    LISTED_ALGORITHMS,
    MULTISIGN_CEILING,
    SHA256_OID,
    CscService,
    HashRequest,
    key_kind,
)
from app.http.problems import PROBLEM_CONTENT_TYPE, ProblemError
from app.http.request_scope import audit_refusals, current_context, get_session
from app.http.schemas import Base64Bytes, guard_json_body
from app.http.security import allow, current_caller
from app.people.models import Role
from app.people.sign_in import CardProof
from app.signing_sessions.activation import SigningPurpose
from app.signing_sessions.views import PurposeSchema
from hsm import KeyAlgorithm
from identity.certificate_files import load_certificate

v2 = Blueprint(
    "csc_v2",
    __name__,
    url_prefix="/csc/v2",
    description="Cloud Signature Consortium API v2 (hash signing, SCAL 2, JPKI card proof)",
)
v1 = Blueprint(
    "csc_v1",
    __name__,
    url_prefix="/csc/v1",
    description="Cloud Signature Consortium API v1.0.4 shapes (for pyHanko's CSCSigner)",
)
for _blp in (v1, v2):
    audit_refusals(_blp.name, "signature:csc:refused")

SPECS = {"v1": "1.0.4.0", "v2": "2.0.0.2"}
METHODS = [
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "signatures/signHash",
]
METHODS_V2 = [*METHODS, "signatures/timestamp"]
DESCRIPTION = (
    "dairi: remote signatures under electronic powers of attorney (電子委任状). "
    "Authentication: a bearer token from dairi's JPKI card login (/api/v1/auth), not "
    "OAuth 2.0. Signature activation (SCAL 2): credentials/authorize binds the exact "
    "hashes, their count, the credential, the mandate and the purpose (dairi_purpose) "
    "in dairi_to_sign, which the signed-in person's JPKI card signs (authData)."
)
# CSC's error member for an HTTP status (RFC 6749 style names the CSC API uses).
CSC_ERRORS = {400: "invalid_request", 401: "invalid_token", 403: "access_denied"}


def _csc_error(response: Response) -> Response:
    """Add CSC's ``error`` and ``error_description`` to each problem document."""
    if response.mimetype != PROBLEM_CONTENT_TYPE:
        return response
    try:
        body = json.loads(response.get_data())
    except ValueError:
        return response
    if not isinstance(body, dict):
        return response
    status = response.status_code
    body.setdefault(
        "error", CSC_ERRORS.get(status, "server_error" if status >= 500 else "invalid_request")
    )
    body.setdefault(
        "error_description", f"{body.get('code')}: {body.get('detail') or body.get('title')}"
    )
    response.set_data(json.dumps(body, ensure_ascii=False))
    return response


for _blp in (v1, v2):
    _blp.before_request(guard_json_body)
    _blp.after_request(_csc_error)


# -- schemas ------------------------------------------------------------------------


class _Lenient(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # CSC clients send members dairi does not use (PIN, OTP, …)


class CscInfoRequestSchema(_Lenient):
    lang = ma.fields.String(load_default=None, validate=ma.validate.Length(max=20))


class CscInfoSchema(ma.Schema):
    specs = ma.fields.String()
    name = ma.fields.String()
    logo = ma.fields.String()
    region = ma.fields.String()
    lang = ma.fields.String()
    description = ma.fields.String()
    authType = ma.fields.List(ma.fields.String())
    methods = ma.fields.List(ma.fields.String())


class CscListRequestSchema(_Lenient):
    maxResults = ma.fields.Integer(load_default=None, validate=ma.validate.Range(min=1, max=1000))


class CscListSchema(ma.Schema):
    credentialIDs = ma.fields.List(ma.fields.String())


class CscCredentialRequestSchema(_Lenient):
    credentialID = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=36))
    certificates = ma.fields.String(
        load_default="single", validate=ma.validate.OneOf(["none", "single", "chain"])
    )
    certInfo = ma.fields.Boolean(load_default=False)
    authInfo = ma.fields.Boolean(load_default=False)


class CscCredentialInfoSchema(ma.Schema):
    description = ma.fields.String()
    key = ma.fields.Dict(metadata={"description": "status, algo (OIDs), len, curve"})
    cert = ma.fields.Dict(metadata={"description": "status, certificates (b64 DER), …"})
    authMode = ma.fields.String(metadata={"description": "explicit"})
    SCAL = ma.fields.String(metadata={"description": "2: the SAD is bound to the hashes"})
    multisign = ma.fields.Integer(
        metadata={"description": "hashes one authorisation carries at most (csc_multisign)"}
    )
    lang = ma.fields.String()


class CscAuthDataSchema(_Lenient):
    id = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    value = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=40_000))


def _hash_list(description: str) -> ma.fields.List:
    return ma.fields.List(
        Base64Bytes(max_bytes=64),
        load_default=None,
        validate=ma.validate.Length(min=1, max=MULTISIGN_CEILING),
        metadata={"description": description},
    )


class CscAuthorizeRequestSchema(_Lenient):
    credentialID = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=36))
    numSignatures = ma.fields.Integer(
        required=True, strict=True, validate=ma.validate.Range(min=1, max=MULTISIGN_CEILING)
    )
    hashes = _hash_list("base64 SHA-256 values")
    hash = _hash_list("v1 name of hashes")
    hashAlgorithmOID = ma.fields.String(
        load_default=SHA256_OID, validate=ma.validate.Length(max=64)
    )
    authData = ma.fields.List(
        ma.fields.Nested(CscAuthDataSchema),
        load_default=list,
        validate=ma.validate.Length(max=10),
        metadata={
            "description": "dairi_card_certificate (b64 DER JPKI authentication "
            "certificate), dairi_card_signature (b64, over dairi_to_sign), optional "
            "dairi_card_intermediates (b64 DER, comma-separated)"
        },
    )
    dairi_purpose = ma.fields.Nested(
        PurposeSchema,
        required=True,
        metadata={"description": "dairi: the signing purpose the mandate must cover"},
    )
    dairi_mandate_id = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(min=1, max=36),
        metadata={"description": "dairi: the mandate to act under (default: the covering one)"},
    )


class CscAuthorizeSchema(ma.Schema):
    SAD = ma.fields.String(metadata={"description": "single use, bound to the hashes"})
    expiresIn = ma.fields.Integer(metadata={"description": "seconds, ≤ 300"})
    dairi_to_sign = ma.fields.String(
        metadata={
            "description": "dairi (first call, without authData): base64 of the RFC 8785 "
            "bytes the card's authentication key signs: service, purpose "
            "signature-activation, nonce, times, credential and its certificate's "
            "SHA-256, mandate, signing purpose, the hashes (hex, as documents) and count"
        }
    )
    dairi_expires_at = ma.fields.DateTime(metadata={"description": "dairi_to_sign's expiry"})
    dairi_mandate_id = ma.fields.String()


class CscSignHashRequestSchema(_Lenient):
    credentialID = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=36))
    SAD = ma.fields.String(load_default=None, validate=ma.validate.Length(max=200))
    hashes = _hash_list("base64 SHA-256 values")
    hash = _hash_list("v1 name of hashes")
    hashAlgorithmOID = ma.fields.String(load_default=None, validate=ma.validate.Length(max=64))
    hashAlgo = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(max=64),
        metadata={"description": "v1 name of hashAlgorithmOID"},
    )
    signAlgo = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    signAlgoParams = ma.fields.String(load_default=None, validate=ma.validate.Length(max=1000))


class CscSignaturesSchema(ma.Schema):
    signatures = ma.fields.List(ma.fields.String(), metadata={"description": "base64, in order"})


class CscTimestampRequestSchema(_Lenient):
    hash = Base64Bytes(required=True, max_bytes=64, metadata={"description": "base64 SHA-256"})
    hashAlgorithmOID = ma.fields.String(
        load_default=SHA256_OID, validate=ma.validate.Length(max=64)
    )


class CscTimestampSchema(ma.Schema):
    timestamp = ma.fields.String(metadata={"description": "base64 DER RFC 3161 TimeStampToken"})


# -- helpers --------------------------------------------------------------------------


def _service() -> CscService:
    caller = current_caller()
    assert caller.person_id is not None  # allow(EMPLOYEE) lets only people through
    return CscService(
        get_session(), current_context(), person_id=caller.person_id, actor=caller.actor
    )


def _hashes(args: dict[str, Any]) -> list[bytes]:
    found = args["hashes"] if args["hashes"] is not None else args["hash"]
    if found is None:
        raise ProblemError("VALIDATION_FAILED", errors={"hashes": ["Missing data."]})
    return list(found)


def _proof(auth_data: list[dict[str, str]]) -> CardProof | None:
    values = {item["id"]: item["value"] for item in auth_data}
    certificate = values.get("dairi_card_certificate")
    signature = values.get("dairi_card_signature")
    if certificate is None and signature is None:
        return None
    if certificate is None or signature is None:
        raise ProblemError(
            "CSC_AUTH_DATA_INVALID",
            detail="send both dairi_card_certificate and dairi_card_signature",
        )
    intermediates = [v for v in values.get("dairi_card_intermediates", "").split(",") if v]
    try:
        return CardProof(
            load_certificate(base64.b64decode(certificate, validate=True)),
            base64.b64decode(signature, validate=True),
            tuple(load_certificate(base64.b64decode(c, validate=True)) for c in intermediates),
        )
    except ValueError:
        raise ProblemError("CSC_AUTH_DATA_INVALID", detail="authData is not base64") from None


def _info(version: str) -> dict[str, Any]:
    settings = current_context().settings
    return {
        "specs": SPECS[version],
        "name": "dairi",
        "logo": f"{settings.public_base_url}/docs",
        "region": "JP",
        "lang": "ja-JP",
        "description": DESCRIPTION,
        "authType": ["external"],
        "methods": METHODS_V2 if version == "v2" else METHODS,
    }


def _credential_info(args: dict[str, Any]) -> dict[str, Any]:
    credential = _service().credential(args["credentialID"])
    algorithm = KeyAlgorithm(credential.algorithm)
    kind = key_kind(credential.algorithm)
    key: dict[str, Any] = {
        "status": "enabled" if credential.status == "active" else "disabled",
        "algo": LISTED_ALGORITHMS[kind],
        "len": algorithm.rsa_bits if kind == "rsa" else 256,
    }
    if kind == "ec":
        key["curve"] = "1.2.840.10045.3.1.7"  # P-256
    cert: dict[str, Any] = {
        "status": {"active": "valid", "revoked": "revoked", "suspended": "suspended"}.get(
            credential.status, "invalid"
        )
    }
    der = credential.certificate_der
    if der is not None and args["certificates"] != "none":
        chain: list[bytes] = [der]
        if args["certificates"] == "chain":
            chain += (
                read_certificates(credential.chain_pem.encode()) if credential.chain_pem else []
            )
        cert["certificates"] = [base64.b64encode(c).decode("ascii") for c in chain]
    if der is not None and args["certInfo"]:
        parsed = x509.load_der_x509_certificate(der)
        cert.update(
            issuerDN=parsed.issuer.rfc4514_string(),
            subjectDN=parsed.subject.rfc4514_string(),
            serialNumber=format(parsed.serial_number, "x"),
            validFrom=parsed.not_valid_before_utc.strftime("%Y%m%d%H%M%SZ"),
            validTo=parsed.not_valid_after_utc.strftime("%Y%m%d%H%M%SZ"),
        )
    return {
        "description": credential.name,
        "key": key,
        "cert": cert,
        "authMode": "explicit",
        "SCAL": "2",
        "multisign": current_context().settings.csc_multisign,
        "lang": "ja-JP",
    }


def _authorize(args: dict[str, Any]) -> dict[str, Any]:
    ask = HashRequest(
        credential_id=args["credentialID"],
        hashes=tuple(_hashes(args)),
        purpose=SigningPurpose(**args["dairi_purpose"]),
        mandate_id=args["dairi_mandate_id"],
        hash_algorithm_oid=args["hashAlgorithmOID"],
        num_signatures=args["numSignatures"],
    )
    service = _service()
    proof = _proof(args["authData"])
    if proof is None:
        pending = service.request_activation(ask)
        return {
            "dairi_to_sign": base64.b64encode(pending.challenge.to_sign()).decode("ascii"),
            "dairi_expires_at": pending.row.expires_at,
            "dairi_mandate_id": pending.row.mandate_id,
        }
    row, sad = service.authorize(ask, proof)
    assert row.sad_expires_at is not None and row.authorized_at is not None
    expires = row.sad_expires_at.replace(tzinfo=row.sad_expires_at.tzinfo or UTC)
    authorized = row.authorized_at.replace(tzinfo=row.authorized_at.tzinfo or UTC)
    return {"SAD": sad, "expiresIn": int((expires - authorized).total_seconds())}


def _sign_hash(args: dict[str, Any]) -> dict[str, Any]:
    hash_oid = args["hashAlgorithmOID"] or args["hashAlgo"] or SHA256_OID
    signatures = _service().sign_hashes(
        credential_id=args["credentialID"],
        sad=args["SAD"],
        hashes=_hashes(args),
        hash_algorithm_oid=hash_oid,
        sign_algorithm_oid=args["signAlgo"],
    )
    return {"signatures": [base64.b64encode(s).decode("ascii") for s in signatures]}


def _timestamp(args: dict[str, Any]) -> dict[str, Any]:
    if args["hashAlgorithmOID"] != SHA256_OID or len(args["hash"]) != 32:
        raise ProblemError("CSC_HASH_ALGORITHM_UNSUPPORTED", detail="send one SHA-256 hash")
    tsa = current_context().tsa
    if tsa is None:
        raise ProblemError("TIMESTAMP_FAILED", detail="no time-stamping authority is configured")
    try:
        token = asyncio.run(tsa.make_timestamper().async_timestamp(args["hash"], "sha256"))
    except (OSError, ValueError) as exc:  # TimestampRequestError is an OSError
        raise ProblemError("TIMESTAMP_FAILED", detail="the time-stamping authority failed") from exc
    return {"timestamp": base64.b64encode(token.dump()).decode("ascii")}


# -- views: the same operations under both versions -----------------------------------


def _routes(blp: Blueprint, version: str) -> None:
    @blp.route("/info", methods=["POST"])
    @blp.arguments(CscInfoRequestSchema, required=False)
    @blp.response(200, CscInfoSchema)
    def info(args: dict[str, Any]) -> dict[str, Any]:
        """The service: specs, name, region JP, lang, methods; authentication is dairi's
        JPKI login bearer token (not OAuth 2.0)."""
        return _info(version)

    @blp.route("/credentials/list", methods=["POST"])
    @allow(Role.EMPLOYEE)
    @blp.arguments(CscListRequestSchema, required=False)
    @blp.response(200, CscListSchema)
    def credentials_list(args: dict[str, Any]) -> dict[str, Any]:
        """The caller's own credentials (ids), oldest first."""
        found = [c.id for c in _service().credentials()]
        limit = args.get("maxResults")
        return {"credentialIDs": found[:limit] if limit else found}

    @blp.route("/credentials/info", methods=["POST"])
    @allow(Role.EMPLOYEE)
    @blp.arguments(CscCredentialRequestSchema)
    @blp.response(200, CscCredentialInfoSchema)
    def credentials_info(args: dict[str, Any]) -> dict[str, Any]:
        """One of the caller's credentials (another's: 403 ``CREDENTIAL_NOT_OWNED``): key
        status, algorithms, length; certificate status and certificates (``single`` or
        ``chain``); ``authMode`` explicit, ``SCAL`` 2, ``multisign``."""
        return _credential_info(args)

    @blp.route("/credentials/authorize", methods=["POST"])
    @allow(Role.EMPLOYEE)
    @blp.arguments(CscAuthorizeRequestSchema)
    @blp.response(200, CscAuthorizeSchema)
    def credentials_authorize(args: dict[str, Any]) -> dict[str, Any]:
        """SCAL 2 authorisation in two calls. Without ``authData``: the credential, the
        mandate (``dairi_mandate_id``, or the one covering ``dairi_purpose``: none → 403
        ``NO_COVERING_MANDATE``, several → 409 ``MANDATE_AMBIGUOUS``) and its chain are
        judged, and ``dairi_to_sign`` is answered (no SAD). The same request again with
        ``authData`` carrying the signed-in person's JPKI card proof over it → ``SAD``
        (single use, bound to the hashes and their count) and ``expiresIn``."""
        return _authorize(args)

    @blp.route("/signatures/signHash", methods=["POST"])
    @allow(Role.EMPLOYEE)
    @blp.arguments(CscSignHashRequestSchema)
    @blp.response(200, CscSignaturesSchema)
    def signatures_sign_hash(args: dict[str, Any]) -> dict[str, Any]:
        """Spend the SAD (``SAD_MISSING``, ``SAD_INVALID``, ``SAD_USED``,
        ``SAD_EXPIRED``), judge the mandate and the credential again, and sign each hash
        the SAD names (others: ``CSC_HASH_NOT_AUTHORIZED``; more than authorised:
        ``CSC_SIGNATURE_COUNT_EXCEEDED``) with the credential's key in the HSM: ECDSA
        (DER) or RSA PKCS#1 v1.5 over SHA-256, in the order given."""
        return _sign_hash(args)


@v2.route("/signatures/timestamp", methods=["POST"])
@allow(Role.EMPLOYEE)
@v2.arguments(CscTimestampRequestSchema)
@v2.response(200, CscTimestampSchema)
def signatures_timestamp(args: dict[str, Any]) -> dict[str, Any]:
    """An RFC 3161 time-stamp token over one SHA-256 hash from dairi's time-stamping
    authority (no SAD: nothing is signed with the caller's key; 503 ``TIMESTAMP_FAILED``
    if the authority fails)."""
    return _timestamp(args)


_routes(v2, "v2")
_routes(v1, "v1")

__all__ = ["CSC_FORMAT", "v1", "v2"]
