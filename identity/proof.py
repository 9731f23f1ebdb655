"""Proofs of possession (DESIGN §4): a challenge, the canonical bytes a card signs,
and the check of that signature.

What a card signs is RFC 8785 canonical JSON naming the service, the challenge,
the purpose and the expiry, so a signature made for one service or one purpose
cannot be replayed at another. Path, policy and revocation checks of the
certificate are :mod:`identity.validation`'s; this module checks the signature.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from dairi import DairiError

CHALLENGE_BYTES = 32
MAX_CHALLENGE_LIFETIME = timedelta(seconds=120)


class ProofRefused(DairiError):
    """A proof of possession does not hold (its ``code`` says why)."""

    code = "SIGNATURE_INVALID"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Challenge:
    """A single-use random challenge for one purpose at one service."""

    nonce: bytes = field(repr=False)
    purpose: str
    service: str
    issued_at: datetime
    expires_at: datetime
    # Further members the signer commits to (e.g. document digests); JSON values.
    context: tuple[tuple[str, object], ...] = ()

    @classmethod
    def new(
        cls,
        *,
        purpose: str,
        service: str,
        now: datetime,
        lifetime: timedelta = MAX_CHALLENGE_LIFETIME,
    ) -> Challenge:
        """A fresh challenge of 32 random bytes, valid for ``lifetime`` (at most 120 s)."""
        if lifetime > MAX_CHALLENGE_LIFETIME or lifetime <= timedelta(0):
            raise ValueError("a challenge lives more than 0 and at most 120 seconds")
        return cls(secrets.token_bytes(CHALLENGE_BYTES), purpose, service, now, now + lifetime)

    def to_sign(self) -> bytes:
        """The canonical bytes (RFC 8785) the holder signs."""
        # JSON values; rfc8785 refuses anything else at run time
        document: dict[str, Any] = {
            "service": self.service,
            "purpose": self.purpose,
            "challenge": b64url(self.nonce),
            "issued_at": _timestamp(self.issued_at),
            "expires_at": _timestamp(self.expires_at),
        }
        document.update(dict(self.context))
        return rfc8785.dumps(document)


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def verify_possession(certificate: x509.Certificate, message: bytes, signature: bytes) -> None:
    """Check that ``signature`` over ``message`` was made with ``certificate``'s key.

    RSA: PKCS#1 v1.5 over a SHA-256 DigestInfo, as the My Number Card signs.
    P-256/P-384: ECDSA with SHA-256 (DER). Raises :class:`ProofRefused`
    (``SIGNATURE_INVALID``) otherwise.
    """
    key = certificate.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        else:
            raise ProofRefused("the certificate's key type cannot sign a proof")
    except (InvalidSignature, ValueError) as exc:
        raise ProofRefused("the signature does not verify with the certificate's key") from exc
