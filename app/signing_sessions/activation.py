"""Signature activation's values (DESIGN §6, SCAL2): what a session asks to sign for,
the card challenge that binds it all, and the SAD.

``to_sign`` is a :class:`identity.proof.Challenge` (RFC 8785 JSON, 32 random bytes,
at most 120 s) of purpose ``signature-activation`` whose ``context`` names the session,
the credential and its certificate's SHA-256, the mandate, the signing purpose, the
format and level, the documents' SHA-256s in order and their count. The SAD the card's
signature buys is 32 random bytes, shown once and kept only as its SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from dairi import DairiError
from delegation.scope import Purpose
from identity.corporate_number import validate_corporate_number
from identity.proof import MAX_CHALLENGE_LIFETIME, Challenge, b64url

ACTIVATION_PURPOSE = "signature-activation"
# The purpose action of a session that signs a grant instruction (issue 11 item 4).
SUB_DELEGATION = "sub-delegation"
SAD_BYTES = 32
SAD_LIFETIME = timedelta(minutes=5)


@dataclass(frozen=True)
class SigningPurpose:
    """What a signature is made for: the principal (法人番号) acted for and the act."""

    principal: str
    action: str
    procuring_entity: str | None = None
    case: str | None = None
    amount: int | None = None

    def __post_init__(self) -> None:
        validate_corporate_number(self.principal)  # CORPORATE_NUMBER_INVALID
        if not self.sub_delegation:
            self.at(datetime.now().astimezone())  # SCOPE_INVALID / SCOPE_ACTION_UNKNOWN

    @property
    def sub_delegation(self) -> bool:
        """Signing a sub-delegation instruction (復代理) with the parent's credential."""
        return self.action == SUB_DELEGATION

    def at(self, moment: datetime) -> Purpose:
        """The purpose as a mandate judges it, at ``moment``."""
        return Purpose(self.action, self.procuring_entity, self.case, self.amount, moment)

    def to_json(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "action": self.action,
            "procuring_entity": self.procuring_entity,
            "case": self.case,
            "amount": self.amount,
        }

    @classmethod
    def from_json(cls, text: str) -> SigningPurpose:
        return cls(**json.loads(text))


def activation_challenge(
    *,
    service: str,
    now: datetime,
    lifetime: timedelta,
    session_id: str,
    credential_id: str,
    certificate_sha256: str,
    mandate_id: str,
    purpose: SigningPurpose,
    format: str,
    level: str,
    document_sha256s: list[str],
    packaging: str | None = None,
) -> Challenge:
    """A fresh card challenge binding everything the SAD will allow, and nothing more
    (``packaging``: an XAdES session's, enveloped or detached; bound when given)."""
    challenge = Challenge.new(
        purpose=ACTIVATION_PURPOSE,
        service=service,
        now=now,
        lifetime=min(lifetime, MAX_CHALLENGE_LIFETIME),
    )
    binding = {
        "session": session_id,
        "credential": {"id": credential_id, "certificate_sha256": certificate_sha256},
        "mandate": mandate_id,
        "signing_purpose": purpose.to_json(),
        "format": format,
        "level": level,
        "documents": list(document_sha256s),
        "document_count": len(document_sha256s),
    }
    if packaging is not None:
        binding["packaging"] = packaging
    return replace(challenge, context=tuple(binding.items()))


def stored_challenge(
    nonce: bytes, service: str, issued_at: datetime, expires_at: datetime, binding: str
) -> Challenge:
    """The challenge of a stored session, as it was issued (its ``to_sign`` is the same)."""
    return Challenge(
        nonce,
        ACTIVATION_PURPOSE,
        service,
        issued_at,
        expires_at,
        tuple(json.loads(binding).items()),
    )


def binding_json(challenge: Challenge) -> str:
    return json.dumps(dict(challenge.context), ensure_ascii=False, sort_keys=True)


def new_sad() -> tuple[str, str]:
    """A fresh SAD (base64url, shown once) and its SHA-256 (hex, stored)."""
    sad = b64url(secrets.token_bytes(SAD_BYTES))
    return sad, sad_digest(sad)


def sad_digest(sad: str) -> str:
    return hashlib.sha256(sad.encode("ascii", "replace")).hexdigest()


class SessionRefused(DairiError):
    """A signing-session request that is refused; ``code`` says why."""

    code = "SESSION_NOT_FOUND"

    def __init__(self, message: str, code: str, *, mandates: Sequence[str] = ()) -> None:
        super().__init__(message, code)
        self.mandates = list(mandates)


@dataclass(frozen=True)
class Upload:
    """A document as uploaded: the name it was sent under and its bytes."""

    name: str
    data: bytes
