"""The demo's logins: a representative and an employee prove themselves with
virtual cards over HTTP, exactly as a client would (challenge, card signature over
the canonical bytes, response, token).

Idempotent: the cards are kept under ``out/cards`` and used again by the next run;
an employee already enrolled (by name, for the demo's corporation) whose card is
gone is re-bound to a new card of the same person, never enrolled twice.
"""

from __future__ import annotations

import shutil
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from app.client import ApiClient, SoftwareCard, proof
from app.client.api import Answer, bearer
from app.context import ServiceContext
from dairi import DairiError
from devpki import DevPki
from devpki.cards import (
    CARD_MANIFEST,
    MY_NUMBER,
    REPRESENTATIVE,
    CardError,
    VirtualCard,
    issue_my_number_card,
    issue_representative_card,
    load_card,
    save_card,
)
from identity.corporate_number import corporate_number as corporate_number_of
from identity.names import same_name

# The demo's own corporation: 法人番号 1011001077777 (check digit 1), not the
# 4011001098993 that `dairi dev card create` issues by default, so the two never
# rename each other's corporation.
DEMO_REGISTERED_NUMBER = "011001077777"
DEMO_CORPORATE_NUMBER = corporate_number_of(DEMO_REGISTERED_NUMBER)
DEMO_EMPLOYEE_NAME = "山田\u3000太郎"
DEMO_CORPORATION = "株式会社代理建設"
DEMO_REPRESENTATIVE = "佐藤\u3000一郎"


class DemoFailed(RuntimeError):
    pass


def as_card(card: VirtualCard) -> SoftwareCard:
    """A virtual card's key pair as the client library's card."""
    return SoftwareCard(card.key, card.certificate.public_bytes(serialization.Encoding.DER))


def _proof(card: VirtualCard, to_sign: bytes) -> dict[str, Any]:
    return proof(as_card(card), to_sign)


class DemoClient(ApiClient):
    """The demo's HTTP client: :class:`app.client.ApiClient` (one connection pool to the
    service at ``url``) whose failures are :class:`DemoFailed`. Each call names its
    caller's token itself (the demo acts for several people on one client)."""

    def open(self, method: str, path: str, **kwargs: Any) -> Answer:
        try:
            return self.send(method, path, auth=False, **kwargs)
        except DairiError as exc:
            raise DemoFailed(exc.message) from exc


def call(client: DemoClient, method: str, path: str, expect: int, **kwargs: Any) -> Any:
    response = client.open(method, path, **kwargs)
    if response.status_code != expect:
        raise DemoFailed(f"{method} {path}: {response.status_code} {response.text}")
    return response.json()


def _challenge(client: DemoClient, purpose: str) -> tuple[str, bytes]:
    try:
        return client.challenge(purpose)
    except DairiError as exc:
        raise DemoFailed(f"{exc.code}: {exc.message}") from exc


def _login(client: DemoClient, card: VirtualCard) -> dict[str, Any]:
    """The login answer for ``card``; the demo's client keeps no token of its own."""
    try:
        return client.login(as_card(card))
    except DairiError as exc:
        raise DemoFailed(f"{exc.code}: {exc.message}") from exc
    finally:
        client.token = None


def _saved(directory: Path, kind: str) -> dict[str, VirtualCard] | None:
    """The card of ``kind`` kept in ``directory`` by an earlier run, if it is readable
    and every certificate on it is still valid; else None (and the directory removed)."""
    if not (directory / CARD_MANIFEST).exists():
        return None
    try:
        saved = load_card(directory)
    except CardError:
        saved = None
    now = datetime.now(UTC)
    if (
        saved is not None
        and saved.kind == kind
        and all(
            card.certificate.not_valid_before_utc <= now < card.certificate.not_valid_after_utc
            for card in saved.roles.values()
        )
    ):
        return saved.roles
    shutil.rmtree(directory)
    return None


@dataclass(frozen=True)
class DemoPeople:
    """Who the demo logged in: the corporation's representative and its employee."""

    client: DemoClient
    corporate_number: str
    representative: VirtualCard
    representative_token: str
    employee_person_id: str
    employee_token: str
    employee_card: dict[str, VirtualCard]  # by role: authentication, signing (署名用)


def enrolled_employees(
    client: DemoClient, token: str, corporate_number: str
) -> list[dict[str, Any]]:
    """Every enrolled employee of the corporation, as the service lists them."""
    with as_person(client, token) as representative:
        try:
            return list(representative.pages(f"/api/v1/corporations/{corporate_number}/employees"))
        except DairiError as exc:
            raise DemoFailed(f"{exc.code}: {exc.message}") from exc


def _me(client: DemoClient, token: str) -> dict[str, Any]:
    """Who ``token`` belongs to, as ``GET /api/v1/me`` shows the caller."""
    with as_person(client, token) as person:
        try:
            return person.me()
        except DairiError as exc:
            raise DemoFailed(f"{exc.code}: {exc.message}") from exc


def enrol_employee(
    client: DemoClient,
    pki: DevPki,
    representative_token: str,
    corporate_number: str,
    name: str,
    card_dir: Path,
) -> tuple[str, str, str, dict[str, VirtualCard]]:
    """The employee ``name`` of the corporation, logged in: (person id, access token,
    what was done, the card's key pairs by role: ``authentication``, ``signing``). An
    earlier run's card in ``card_dir`` logs in again; else an employee of that name is
    re-bound to a new card (the same person: same basic items), and only a corporation
    without one invites and enrols a new person."""
    kept = _saved(card_dir, MY_NUMBER)
    if kept is not None:
        try:
            token = _login(client, kept["authentication"])["access_token"]
            me = _me(client, token)
            if corporate_number in me["employee_of"]:
                return (
                    me["id"],
                    token,
                    "logged in again with the card of an earlier run",
                    kept,
                )
        except DemoFailed:
            pass  # not (or no longer) enrolled here: a new card below
        shutil.rmtree(card_dir)
    known = [
        e["person_id"]
        for e in enrolled_employees(client, representative_token, corporate_number)
        if same_name(e["name"], name)
    ]
    invitation = call(
        client,
        "POST",
        f"/api/v1/corporations/{corporate_number}/invitations",
        201,
        json={"person_id": known[0]} if known else {"name": name},
        headers=bearer(representative_token),
    )
    card = issue_my_number_card(
        pki,
        name=name,
        birth_date="419900115",
        sex="1",
        address="東京都千代田区霞が関一丁目1番1号",
        prefecture="東京都",
        city="千代田区",
    )
    save_card(card, card_dir)
    challenge_id, to_sign = _challenge(client, "enrolment")
    enrolled = call(
        client,
        "POST",
        "/api/v1/enrolments",
        201,
        json={
            "invitation_code": invitation["code"],
            "challenge_id": challenge_id,
            "authentication": _proof(card.authentication, to_sign),
            "signing": _proof(card.signing, to_sign),
        },
    )
    done = (
        "re-bound to a new My Number Card (enrolled by an earlier run)"
        if known
        else "enrolled with a My Number Card"
    )
    return (
        enrolled["person_id"],
        _login(client, card.authentication)["access_token"],
        done,
        {"authentication": card.authentication, "signing": card.signing},
    )


def as_person(client: DemoClient, token: str) -> ApiClient:
    """The client library's client for the person whose token this is (same service)."""
    return ApiClient(client.url, token)


def employee_credential(
    client: DemoClient, token: str, corporate_number: str, signing: VirtualCard, name: str
) -> tuple[dict[str, Any], str]:
    """The employee's HSM credential ``name``, over HTTP with the client library: an
    earlier run's that is still active, or a new one obtained with a fresh proof by the
    card's JPKI signing key. (The credential as the service shows it, what was done.)"""
    with as_person(client, token) as person:
        try:
            for credential in person.credentials():
                if credential["name"] == name and credential["status"] == "active":
                    return credential, "obtained by an earlier run"
            return person.issue_credential(as_card(signing), corporate_number, name), "issued"
        except DairiError as exc:
            raise DemoFailed(f"{exc.code}: {exc.message}") from exc


def log_in_people(
    context: ServiceContext, client: DemoClient, out: Path
) -> Generator[str, None, DemoPeople]:
    """Log the representative in with the card under ``out/cards`` (made on the first
    run), then the employee (enrolled on the first run), over HTTP."""
    pki = context.dev_pki
    if pki is None:
        raise DemoFailed("the demo needs development mode (the development PKI)")
    cards = out / "cards"
    kept = _saved(cards / "representative", REPRESENTATIVE)
    rep = _login(client, kept["representative"]) if kept is not None else None
    if rep is not None and rep["caller"]["representative_of"] != [DEMO_CORPORATE_NUMBER]:
        # A card of another corporation (an older demo's): not the demo's any more.
        shutil.rmtree(cards / "representative")
        kept = rep = None
    if kept is not None:
        representative = kept["representative"]
    else:
        representative = issue_representative_card(
            pki,
            corporate_name=DEMO_CORPORATION,
            registered_number=DEMO_REGISTERED_NUMBER,
            head_office_address="東京都千代田区丸の内一丁目1番1号",
            representative_name=DEMO_REPRESENTATIVE,
            representative_title="代表取締役",
        )
        save_card(representative, cards / "representative")
    rep = rep or _login(client, representative)
    corporate_number = rep["caller"]["representative_of"][0]
    yield (
        f"representative 佐藤 一郎 logged in over HTTP ({client.url}) with a registration "
        f"certificate: 法人番号 {corporate_number}, token expires {rep['expires_at']}"
    )

    person_id, token, done, card = enrol_employee(
        client, pki, rep["access_token"], corporate_number, DEMO_EMPLOYEE_NAME, cards / "employee"
    )
    yield f"employee 山田 太郎 {done}: person {person_id}"
    me = _me(client, token)
    yield (
        f"employee logged in over HTTP with the JPKI authentication certificate: roles "
        f"{', '.join(me['roles'])} of {', '.join(me['employee_of'])}"
    )
    yield f"virtual cards in {cards}/ (try `dairi dev card sign --card {cards / 'employee'}`)"
    return DemoPeople(
        client, corporate_number, representative, rep["access_token"], person_id, token, card
    )
