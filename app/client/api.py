"""The client side of dairi's HTTP API: one :class:`ApiClient` per service URL, and the
flows a person drives with a card (login, credential, grant, revoke, sign).

A refusal from the service is raised as a :class:`dairi.DairiError` with the service's
stable code and detail (its problem+json answer, RFC 9457); a service that cannot be
reached is ``CLIENT_CONNECTION_FAILED``; an answer that is not what the API documents
is ``CLIENT_RESPONSE_INVALID``. Nothing here prints: the command line
(:mod:`app.client.cli`) and the demo decide what to show.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from typing import Any

import requests

from app.client.cards import Card, sign_cms
from dairi import DairiError

TIMEOUT_SECONDS = 120
PAGE_SIZE = 100


class ClientError(DairiError):
    """The client could not complete a call (the service's refusals keep their own code)."""

    code = "CLIENT_RESPONSE_INVALID"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ClientError(f"the service sent {what} that is not base64") from exc


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def proof(card: Card, to_sign: bytes) -> dict[str, Any]:
    """A card proof as the API takes it: certificate, intermediates, signature over
    ``to_sign``."""
    body: dict[str, Any] = {
        "certificate": b64(card.certificate_der),
        "signature": b64(card.sign(to_sign)),
    }
    if card.intermediates_der:
        body["intermediates"] = [b64(d) for d in card.intermediates_der]
    return body


def refusal(response: requests.Response, method: str, path: str) -> DairiError:
    """The service's refusal as a coded error: its problem+json ``code`` and ``detail``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        detail = str(body.get("detail") or body.get("title") or "")
        mandates = body.get("mandates")
        if isinstance(mandates, list) and mandates:
            # MANDATE_AMBIGUOUS: which mandates cover the purpose, to choose one from.
            detail += f"; mandates {', '.join(map(str, mandates))} (name one with --mandate)"
        return DairiError(f"{detail} ({method} {path}: {response.status_code})", body["code"])
    return ClientError(f"{method} {path}: HTTP {response.status_code} without a problem document")


class ApiClient:
    """One connection pool to the service at ``url``, with an optional access token."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.session = requests.Session()
        # What the environment says for this URL (proxy, no_proxy, CA bundle), read once:
        # requests would read it again on every call (~0.2 ms each). Never .netrc
        # credentials: the service is sent the caller's token or nothing.
        environment = self.session.merge_environment_settings(self.url, {}, None, None, None)
        self.session.proxies.update(environment["proxies"])
        self.session.verify = environment["verify"]
        self.session.trust_env = False

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(
        self, method: str, path: str, *, auth: bool = True, **kwargs: Any
    ) -> requests.Response:
        """The raw answer (any status); ``CLIENT_CONNECTION_FAILED`` when there is none."""
        headers = dict(kwargs.pop("headers", None) or {})
        if auth and self.token and "Authorization" not in headers:
            headers.update(bearer(self.token))
        try:
            return self.session.request(
                method, self.url + path, headers=headers, timeout=TIMEOUT_SECONDS, **kwargs
            )
        except requests.RequestException as exc:
            raise ClientError(
                f"{method} {self.url}{path}: {type(exc).__name__}", "CLIENT_CONNECTION_FAILED"
            ) from exc

    def call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        """The JSON answer of a 2xx; the service's refusal raised with its code."""
        response = self.send(method, path, auth=auth, **kwargs)
        if not 200 <= response.status_code < 300:
            raise refusal(response, method, path)
        try:
            return response.json()
        except ValueError as exc:
            raise ClientError(f"{method} {path}: the answer is not JSON") from exc

    def pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a paged list."""
        page = 1
        seen = 0
        while True:
            listed = self.call(
                "GET", path, params={**(params or {}), "page": page, "page_size": PAGE_SIZE}
            )
            yield from listed["items"]
            seen += len(listed["items"])
            if not listed["items"] or seen >= listed["total"]:
                return
            page += 1

    # -- login and challenges --------------------------------------------------

    def challenge(self, purpose: str) -> tuple[str, bytes]:
        """Open a challenge of ``purpose``: (its id, the bytes the card signs)."""
        body = self.call(
            "POST", "/api/v1/auth/challenges", auth=purpose != "login", json={"purpose": purpose}
        )
        return str(body["id"]), unb64(body["to_sign"], "a challenge")

    def login(self, card: Card) -> dict[str, Any]:
        """Log in with ``card`` (JPKI authentication or registration certificate): the
        token answer (``access_token``, ``expires_at``, ``caller``); the client keeps
        the token for its next calls."""
        challenge_id, to_sign = self.challenge("login")
        answer = self.call(
            "POST",
            f"/api/v1/auth/challenges/{challenge_id}/response",
            auth=False,
            json=proof(card, to_sign),
        )
        self.token = answer["access_token"]
        return dict(answer)

    def me(self) -> dict[str, Any]:
        return dict(self.call("GET", "/api/v1/me")["caller"])

    # -- credentials -----------------------------------------------------------

    def issue_credential(
        self,
        signing_card: Card,
        corporate_number: str,
        name: str | None = None,
        algorithm: str | None = None,
    ) -> dict[str, Any]:
        """Obtain a signing credential with a fresh proof by the JPKI signing key."""
        challenge_id, to_sign = self.challenge("credential")
        body: dict[str, Any] = {
            "corporate_number": corporate_number,
            "challenge_id": challenge_id,
            "signing": proof(signing_card, to_sign),
        }
        if name:
            body["name"] = name
        if algorithm:
            body["algorithm"] = algorithm
        return dict(self.call("POST", "/api/v1/credentials", json=body))

    def renew_credential(
        self,
        credential_id: str,
        signing_card: Card,
        name: str | None = None,
        algorithm: str | None = None,
    ) -> dict[str, Any]:
        """Renew a credential with a fresh proof by the JPKI signing key: the new
        credential, with ``renewed_from`` and ``reissued_mandates`` ({from, to} each: the
        live mandates re-issued to the new certificate; the old ones are superseded)."""
        challenge_id, to_sign = self.challenge("credential")
        body: dict[str, Any] = {
            "challenge_id": challenge_id,
            "signing": proof(signing_card, to_sign),
        }
        if name:
            body["name"] = name
        if algorithm:
            body["algorithm"] = algorithm
        return dict(self.call("POST", f"/api/v1/credentials/{credential_id}/renewal", json=body))

    def credentials(self, corporate_number: str | None = None) -> list[dict[str, Any]]:
        """The caller's own credentials, or (a representative) the corporation's."""
        path = (
            f"/api/v1/corporations/{corporate_number}/credentials"
            if corporate_number
            else "/api/v1/credentials"
        )
        return list(self.pages(path))

    def credential(self, credential_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/v1/credentials/{credential_id}"))

    # -- mandates --------------------------------------------------------------

    def grant(
        self,
        instruction: bytes,
        signatures: bytes,
        grantee_certificate: bytes,
        grantee_person_id: str,
    ) -> dict[str, Any]:
        """Post a signed grant instruction: the mandate the service issued."""
        return dict(
            self.call(
                "POST",
                "/api/v1/mandates",
                json={
                    "instruction": b64(instruction),
                    "signatures": b64(signatures),
                    "grantee_certificate": b64(grantee_certificate),
                    "grantee_person_id": grantee_person_id,
                },
            )
        )

    def revoke_mandate(self, mandate_id: str, reason: str | None = None) -> dict[str, Any]:
        """Revoke a mandate (and every descendant with it)."""
        return dict(
            self.call(
                "POST",
                f"/api/v1/mandates/{mandate_id}/revocation",
                json={"reason": reason} if reason else {},
            )
        )


def sign_grant(card: Card, instruction: bytes) -> bytes:
    """The representative's detached CMS over the instruction's canonical bytes."""
    return sign_cms(card, instruction)
