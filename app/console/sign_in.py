"""Cross-device sign-in to the console (in the manner of OAuth's device authorization
grant, RFC 8628): a browser cannot reach a My Number Card, so the card signs in from
another device.

1. The browser asks to sign in (:meth:`ConsoleSignIns.start`): it gets a random secret
   in an HttpOnly cookie (only the SHA-256 is stored) and a code of 8 letters to read
   out, valid ``console_sign_in_seconds``.
2. ``dairi client approve CODE`` opens a login challenge for that code
   (:meth:`ConsoleSignIns.challenge`) and answers it with the card
   (:meth:`ConsoleSignIns.approve`): the same login as the API's
   (:meth:`app.people.sign_in.AuthService.login`: enrolment, revocation, the
   representative's registration certificate), whose access token is bound to the
   browser's secret and lives at most ``console_session_seconds``.
3. The browser's next page finds its cookie is now a session: the same token check
   as a bearer token (expiry, logout, a revoked card ends it).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.console.models import ConsoleSignIn
from app.people.models import AccessToken, AuthChallenge
from app.people.sign_in import TOKEN_PREFIX, AuthService, CardProof, ChallengePurpose
from dairi import DairiError
from identity.proof import Challenge

# RFC 8628 §6.1: letters without vowels (no words, nothing to misread), 20^8 codes.
CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
CODE_LENGTH = 8
USER_AGENT_LENGTH = 200


class SignInError(DairiError):
    pass


def normalise_code(text: str) -> str:
    """A code as typed (any case, with a hyphen or spaces) as stored."""
    code = "".join(text.split()).replace("-", "").upper()
    if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        raise SignInError(
            f"a sign-in code is {CODE_LENGTH} letters, as the console shows it",
            "CONSOLE_CODE_INVALID",
        )
    return code


def shown_code(code: str) -> str:
    """``ABCD-EFGH``: how the console shows a code."""
    return f"{code[:4]}-{code[4:]}"


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Started:
    row: ConsoleSignIn
    secret: str  # the browser's cookie; shown once


class ConsoleSignIns:
    """The sign-ins of one database session (the caller commits)."""

    def __init__(self, session: Session, auth: AuthService) -> None:
        self.session = session
        self.auth = auth
        self.settings = auth.settings

    def start(self, user_agent: str) -> Started:
        """A pending sign-in with a new code and browser secret; purges expired ones."""
        now = self.auth.clock()
        self.session.execute(delete(ConsoleSignIn).where(ConsoleSignIn.expires_at <= now))
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ConsoleSignIn(
            user_code="".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH)),
            browser_sha256=secret_sha256(secret),
            user_agent=user_agent[:USER_AGENT_LENGTH],
            requested_at=now,
            expires_at=now + timedelta(seconds=self.settings.console_sign_in_seconds),
        )
        self.session.add(row)
        self.session.flush()
        return Started(row, secret)

    def pending(self, code: str) -> ConsoleSignIn:
        """The sign-in waiting for this code; ``CONSOLE_SIGN_IN_NOT_FOUND`` if there is
        none (unknown, expired or approved already: which one is not said)."""
        row = self.session.scalar(
            select(ConsoleSignIn).where(ConsoleSignIn.user_code == normalise_code(code))
        )
        if row is None or row.approved_at is not None or row.expires_at <= self.auth.clock():
            raise SignInError(
                "no console sign-in is waiting for this code (mistyped, expired or used)",
                "CONSOLE_SIGN_IN_NOT_FOUND",
            )
        return row

    def challenge(
        self, code: str, client_keys: list[str]
    ) -> tuple[ConsoleSignIn, AuthChallenge, Challenge]:
        """Open a login challenge for the sign-in of ``code`` (the latest one counts)."""
        row = self.pending(code)
        challenge_row, challenge = self.auth.open_challenge(ChallengePurpose.LOGIN, client_keys)
        row.challenge_id = challenge_row.id
        return row, challenge_row, challenge

    def approve(self, code: str, challenge_id: str, proof: CardProof) -> AccessToken:
        """Log in with the card's answer to the challenge opened for ``code`` and bind
        the access token to the browser's secret."""
        row = self.pending(code)
        if row.challenge_id != challenge_id:
            raise SignInError(
                "this challenge was not opened for this sign-in code", "CONSOLE_CHALLENGE_MISMATCH"
            )
        issued = self.auth.login(challenge_id, proof)
        token = issued.row  # its own secret (issued.token) is dropped unseen
        now = self.auth.clock()
        token.token_sha256 = row.browser_sha256
        token.expires_at = min(
            token.expires_at, now + timedelta(seconds=self.settings.console_session_seconds)
        )
        row.approved_at = now
        row.token_id = token.id
        self.session.flush()
        return token

    def state(self, secret: str) -> ConsoleSignIn | None:
        """The sign-in a browser's cookie started (None: unknown or purged)."""
        return self.session.scalar(
            select(ConsoleSignIn).where(ConsoleSignIn.browser_sha256 == secret_sha256(secret))
        )
