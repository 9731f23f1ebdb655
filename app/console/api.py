"""The approving device's side of a console sign-in (``dairi client approve CODE``):
a login challenge opened for the code the browser shows, and the card's answer."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from app.audit_trail.log import AuditLog
from app.console.sign_in import ConsoleSignIns, shown_code
from app.http.request_scope import audit_refusals, get_session
from app.http.schemas import guard_json_body
from app.http.security import record_refused_attempt, token_caller
from app.people.caller import LiveToken
from app.people.sign_in_views import ProofSchema, auth_service, card_proof, client_keys
from dairi import DairiError
from identity.proof import b64url

blp = Blueprint(
    "console_sign_in",
    __name__,
    url_prefix="/api/v1/console/sign-ins",
    description="Approve a web console sign-in from another device with the card",
)
blp.before_request(guard_json_body)
audit_refusals(blp.name, "console:sign-in:refused")


class SignInChallengeSchema(ma.Schema):
    id = ma.fields.String(metadata={"description": "The login challenge's id"})
    challenge = ma.fields.String(metadata={"description": "32 random bytes, base64url"})
    to_sign = ma.fields.String(
        metadata={"description": "base64 of the RFC 8785 JSON the card signs (as for login)"}
    )
    expires_at = ma.fields.DateTime()
    sign_in = ma.fields.Dict(
        metadata={
            "description": "What is being approved: the code, when the browser asked and "
            "its user agent (check them against the browser in front of you)"
        }
    )


class ApprovalSchema(ProofSchema):
    challenge_id = ma.fields.String(required=True, validate=ma.validate.Length(max=36))


class ApprovedSchema(ma.Schema):
    caller = ma.fields.Dict()
    session_expires_at = ma.fields.DateTime()


def _sign_ins() -> ConsoleSignIns:
    return ConsoleSignIns(get_session(), auth_service())


@blp.route("/<code>/challenge", methods=["POST"])
@blp.response(201, SignInChallengeSchema)
def open_sign_in_challenge(code: str) -> dict[str, Any]:
    """Open a login challenge for the console sign-in showing ``code`` (``ABCD-EFGH``;
    case, hyphen and spaces do not matter). No credentials needed: the card's answer
    is the proof. Rate-limited per client as login challenges are."""
    row, challenge_row, challenge = _sign_ins().challenge(code, client_keys())
    return {
        "id": challenge_row.id,
        "challenge": b64url(challenge.nonce),
        "to_sign": base64.b64encode(challenge.to_sign()).decode("ascii"),
        "expires_at": challenge.expires_at,
        "sign_in": {
            "code": shown_code(row.user_code),
            "requested_at": row.requested_at.isoformat(),
            "user_agent": row.user_agent,
        },
    }


@blp.route("/<code>/approval", methods=["POST"])
@blp.arguments(ApprovalSchema)
@blp.response(200, ApprovedSchema)
def approve_sign_in(args: dict[str, Any], code: str) -> dict[str, Any]:
    """Answer the challenge opened for ``code`` with the card (a My Number Card's
    authentication certificate, or a representative's registration certificate), as a
    login does: the browser showing the code is then signed in as the card's holder.
    The challenge is spent by this call, whatever the outcome."""
    session = get_session()
    actor = "anonymous"
    try:
        proof = card_proof(args)
        actor = "certificate:" + hashlib.sha256(proof.certificate_der).hexdigest()[:32]
        token = _sign_ins().approve(code, args["challenge_id"], proof)
    except DairiError as exc:
        limited = record_refused_attempt(
            "console:sign-in:refused",
            exc.code,
            actor=actor,
            subject=args["challenge_id"],
            keys=[actor] if actor != "anonymous" else [],
        )
        if limited is not None:
            raise limited from None
        raise
    who = f"person:{token.person_id}" if token.person_id else f"representative:{token.id}"
    AuditLog(session).append(
        "console:sign-in:approved",
        actor=who,
        subject=token.id,
        principal=token.corporate_number,
        details={"certificate_sha256": token.certificate_sha256},
    )
    return {
        "caller": token_caller(session, LiveToken.of(token)).describe(),
        "session_expires_at": token.expires_at,
    }
