"""Login by proof of possession: challenges, responses, logout, and who am I."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from app.audit_trail.log import AuditLog, record_refusal
from app.http.problems import ProblemError
from app.http.ratelimit import RateLimited, client_address
from app.http.request_scope import audit_refusals, current_context, get_session
from app.http.schemas import Base64Bytes, guard_json_body
from app.http.security import (
    SCOPES,
    allow,
    authenticate,
    current_caller,
    record_refused_attempt,
    token_caller,
)
from app.people.caller import LiveToken
from app.people.models import Role
from app.people.sign_in import AuthError, AuthService, CardProof, ChallengePurpose
from dairi import DairiError
from identity.certificate_files import load_certificate
from identity.proof import b64url

blp = Blueprint(
    "auth",
    __name__,
    url_prefix="/api/v1",
    description="Login with a My Number Card or a commercial-registration "
    "certificate (challenge and response)",
)
blp.before_request(guard_json_body)
# Every refusal is audited (app.http.request_scope); refused logins are recorded here.
audit_refusals(blp.name, "auth:request:refused")

ALL_ROLES = tuple(Role)


class ChallengeRequestSchema(ma.Schema):
    purpose = ma.fields.String(
        load_default=ChallengePurpose.LOGIN, validate=ma.validate.OneOf(ChallengePurpose.ALL)
    )


class ChallengeSchema(ma.Schema):
    id = ma.fields.String()
    purpose = ma.fields.String()
    challenge = ma.fields.String(metadata={"description": "32 random bytes, base64url"})
    to_sign = ma.fields.String(
        metadata={
            "description": "base64 of the RFC 8785 canonical JSON the card signs "
            "(RSASSA-PKCS1-v1_5 over its SHA-256 DigestInfo)"
        }
    )
    expires_at = ma.fields.DateTime()


class ProofSchema(ma.Schema):
    certificate = Base64Bytes(required=True, metadata={"description": "DER (or PEM), base64"})
    intermediates = ma.fields.List(
        Base64Bytes(), load_default=list, validate=ma.validate.Length(max=5)
    )
    signature = Base64Bytes(required=True)


class TokenSchema(ma.Schema):
    access_token = ma.fields.String()
    token_type = ma.fields.String()
    expires_in = ma.fields.Integer()
    expires_at = ma.fields.DateTime()
    caller = ma.fields.Dict()


class CallerSchema(ma.Schema):
    caller = ma.fields.Dict()


def card_proof(args: dict[str, Any]) -> CardProof:
    """A :class:`ProofSchema` body's certificates as DER (``CERTIFICATE_MALFORMED`` if not)."""
    return CardProof(
        load_certificate(args["certificate"]),
        args["signature"],
        tuple(load_certificate(c) for c in args["intermediates"]),
    )


def auth_service() -> AuthService:
    context = current_context()
    return AuthService(
        get_session(),
        context.settings,
        context.certificate_validator,
        context.clock,
        hsm=context.hsm,
    )


def client_keys() -> list[str]:
    """Whom the challenge limit counts against: the client's address (through
    ``trusted_proxy_hops`` proxies) and, when credentials come with the request,
    the person behind them (:attr:`app.http.security.Caller.rate_key`: all of one
    person's tokens share it)."""
    keys = [f"address:{client_address()}"]
    caller = authenticate()
    if caller is not None:
        keys.append(caller.rate_key)
    return keys


@blp.route("/auth/challenges", methods=["POST"])
@blp.arguments(ChallengeRequestSchema, required=False)  # no body: a login challenge
@blp.response(201, ChallengeSchema)
def open_challenge(args: dict[str, Any]) -> dict[str, Any]:
    """Open a challenge (32 random bytes, single use, valid at most 120 s).

    Sign ``to_sign`` (decoded from base64) with the card and send certificate and
    signature to ``/auth/challenges/{id}/response`` (login) or ``/enrolments``.
    Rate-limited per client; open challenges are bounded. No credentials needed.
    """
    keys = client_keys()
    try:
        row, challenge = auth_service().open_challenge(args["purpose"], keys)
    except (AuthError, RateLimited) as exc:
        caller = authenticate()
        record_refusal(
            current_context().session_factory,
            "auth:challenge:refused",
            actor=caller.actor if caller else "anonymous",
            code=exc.code,
        )
        raise
    return {
        "id": row.id,
        "purpose": row.purpose,
        "challenge": b64url(challenge.nonce),
        "to_sign": base64.b64encode(challenge.to_sign()).decode("ascii"),
        "expires_at": challenge.expires_at,
    }


@blp.route("/auth/challenges/<challenge_id>/response", methods=["POST"])
@blp.arguments(ProofSchema)
@blp.response(201, TokenSchema)
def answer_challenge(args: dict[str, Any], challenge_id: str) -> dict[str, Any]:
    """Answer a login challenge: an access token for the certificate's holder.

    A JPKI authentication certificate logs in the enrolled employee (and their
    auditor/administrator roles); a commercial-registration certificate logs in
    a representative of its corporation. The challenge is spent by this call,
    whatever the outcome.
    """
    context = current_context()
    session = get_session()
    actor = "anonymous"
    try:
        proof = card_proof(args)
        actor = "certificate:" + hashlib.sha256(proof.certificate_der).hexdigest()[:32]
        issued = auth_service().login(challenge_id, proof)
    except DairiError as exc:
        # A refused login is a refused authentication attempt: counted against the
        # address and the certificate presented, and over the limit a 429.
        limited = record_refused_attempt(
            "auth:login:refused",
            exc.code,
            actor=actor,
            subject=challenge_id,
            keys=[actor] if actor != "anonymous" else [],
        )
        if limited is not None:
            raise limited from None
        raise
    row = issued.row
    who = f"person:{row.person_id}" if row.person_id else f"representative:{row.id}"
    AuditLog(session).append(
        "auth:login:succeeded",
        actor=who,
        subject=row.id,
        principal=row.corporate_number,
        details={"certificate_sha256": row.certificate_sha256},
    )
    caller = token_caller(session, LiveToken.of(row)).describe()
    return {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": context.settings.access_token_seconds,
        "expires_at": row.expires_at,
        "caller": caller,
    }


@blp.route("/auth/logout", methods=["POST"])
@allow(*ALL_ROLES)
@blp.response(204)
def logout() -> None:
    """Revoke the access token of this request at once."""
    caller = current_caller()
    if caller.token is None:
        raise ProblemError("NOT_A_TOKEN", detail="API clients have no session to end")
    session = get_session()
    auth_service().revoke_token(caller.token)
    AuditLog(session).append("auth:token:revoked", actor=caller.actor, subject=caller.token.id)


@blp.route("/me", methods=["GET"])
@allow(*ALL_ROLES, scopes=SCOPES)
@blp.response(200, CallerSchema)
def me() -> dict[str, Any]:
    """Who the credentials of this request belong to, and their roles."""
    return {"caller": current_caller().describe()}
