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
import json as jsonlib
import os
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH, select_proxy
from urllib3 import HTTPHeaderDict, encode_multipart_formdata

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


def refusal(response: Answer, method: str, path: str) -> DairiError:
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


@dataclass(frozen=True)
class Answer:
    """The service's answer to one call: status, headers (case-insensitive) and body."""

    status_code: int
    headers: HTTPHeaderDict
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` if it is not."""
        return jsonlib.loads(self.content)


class ApiClient:
    """One connection pool to the service at ``url``, with an optional access token.

    Calls go through urllib3 (what requests is built on) and answer an :class:`Answer`:
    requests' own per-call work (merging settings, hooks, cookies, its response
    object) was ~1 ms of client time a request, a third of a signature's HTTP
    overhead. The environment is read once, as requests reads it: the proxy for
    ``url`` (``HTTP(S)_PROXY``, ``NO_PROXY``) and the CA bundle (``REQUESTS_CA_BUNDLE``,
    ``CURL_CA_BUNDLE``, else certifi's); never .netrc credentials: the service is sent
    the caller's token or nothing."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.pool = _pool_for(self.url)
        # One random multipart boundary per client, not per upload: the service compiles
        # a pattern per boundary it meets (werkzeug), and keeps the last few compiled.
        self.boundary = os.urandom(16).hex()

    def close(self) -> None:
        self.pool.clear()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        headers: dict[str, str] | None = None,
        json: Any = None,
        files: Sequence[tuple[str, Any]] | None = None,
        params: dict[str, Any] | None = None,
        data: bytes | None = None,
    ) -> Answer:
        """The raw answer (any status); ``CLIENT_CONNECTION_FAILED`` when there is none.
        ``json``: a JSON body; ``files``: a multipart/form-data body of (name, (file
        name or None, content, media type)) parts; ``data``: a body as it is."""
        sent = {**DEFAULT_HEADERS, **(headers or {})}
        if auth and self.token and "Authorization" not in sent:
            sent.update(bearer(self.token))
        url = self.url + path
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, doseq=True)
        body = data
        if files is not None:
            body, sent["Content-Type"] = encode_multipart_formdata(list(files), self.boundary)
        elif json is not None:
            body = jsonlib.dumps(json, allow_nan=False).encode("utf-8")
            sent.setdefault("Content-Type", "application/json")
        try:
            answer = self.pool.request(
                method, url, body=body, headers=sent, timeout=TIMEOUT_SECONDS, retries=RETRIES
            )
        except urllib3.exceptions.HTTPError as exc:
            raise ClientError(
                f"{method} {self.url}{path}: {type(exc).__name__}", "CLIENT_CONNECTION_FAILED"
            ) from exc
        return Answer(answer.status, answer.headers, answer.data)

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


# As requests would send them (it also names itself; this names dairi's client).
DEFAULT_HEADERS = {"Accept": "*/*", "User-Agent": "dairi-client"}
# No retries (as requests: a call is made once), redirects followed (as requests).
RETRIES = urllib3.Retry(total=None, connect=0, read=False, status=0, other=0, redirect=10)


def _pool_for(url: str) -> urllib3.PoolManager:
    """Connections to ``url`` as requests would make them from the environment (read
    now, once): through its proxy for ``url`` if any, verified against its CA bundle."""
    # verify=None: the environment's CA bundle if it names one (never False: this
    # client always verifies the service's certificate).
    environment = requests.Session().merge_environment_settings(url, {}, None, None, None)
    verify = environment["verify"]
    bundle = verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH
    where = "ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"
    tls: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED, where: bundle}
    proxy = select_proxy(url, environment["proxies"])
    if proxy:
        return urllib3.ProxyManager(proxy, proxy_headers=HTTPAdapter().proxy_headers(proxy), **tls)
    return urllib3.PoolManager(**tls)


def sign_grant(card: Card, instruction: bytes) -> bytes:
    """The representative's detached CMS over the instruction's canonical bytes."""
    return sign_cms(card, instruction)
