"""The demo's logins: a representative and an employee prove themselves with
virtual cards through the HTTP API, exactly as a client would (challenge, card
signature over the canonical bytes, response, token)."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from flask.testing import FlaskClient

from app.context import ServiceContext
from app.factory import create_app
from devpki import DevPki
from devpki.cards import (
    VirtualCard,
    issue_my_number_card,
    issue_representative_card,
    save_card,
)

DEMO_REGISTERED_NUMBER = "011001098993"  # 法人番号 4011001098993
DEMO_EMPLOYEE_NAME = "山田\u3000太郎"
DEMO_CORPORATION = "株式会社代理建設"
DEMO_REPRESENTATIVE = "佐藤\u3000一郎"


class DemoFailed(RuntimeError):
    pass


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _proof(card: VirtualCard, to_sign: bytes) -> dict[str, str]:
    return {
        "certificate": b64(card.certificate.public_bytes(serialization.Encoding.DER)),
        "signature": b64(card.sign(to_sign)),
    }


def call(client: FlaskClient, method: str, path: str, expect: int, **kwargs: Any) -> Any:
    response = client.open(path, method=method, **kwargs)
    if response.status_code != expect:
        raise DemoFailed(f"{method} {path}: {response.status_code} {response.get_data(True)}")
    return response.get_json()


def _challenge(client: FlaskClient, purpose: str) -> tuple[str, bytes]:
    body = call(client, "POST", "/api/v1/auth/challenges", 201, json={"purpose": purpose})
    return body["id"], base64.b64decode(body["to_sign"])


def _login(client: FlaskClient, card: VirtualCard) -> dict[str, Any]:
    challenge_id, to_sign = _challenge(client, "login")
    return call(client, "POST", f"/api/v1/auth/challenges/{challenge_id}/response", 201,
                 json=_proof(card, to_sign))


@dataclass(frozen=True)
class DemoPeople:
    """Who the demo logged in: the corporation's representative and its employee."""

    client: FlaskClient
    corporate_number: str
    representative: VirtualCard
    representative_token: str
    employee_person_id: str
    employee_token: str


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def enrol_employee(client: FlaskClient, pki: DevPki, representative_token: str,
                   corporate_number: str, name: str, card_dir: Path) -> tuple[str, str]:
    """Invite, enrol (My Number Card saved in ``card_dir``) and log in an employee:
    (person id, access token)."""
    invitation = call(client, "POST", f"/api/v1/corporations/{corporate_number}/invitations",
                       201, json={"name": name}, headers=bearer(representative_token))
    card = issue_my_number_card(pki, name=name, birth_date="419900115", sex="1",
                                address="東京都千代田区霞が関一丁目1番1号",
                                prefecture="東京都", city="千代田区")
    save_card(card, card_dir)
    challenge_id, to_sign = _challenge(client, "enrolment")
    enrolled = call(client, "POST", "/api/v1/enrolments", 201, json={
        "invitation_code": invitation["code"], "challenge_id": challenge_id,
        "authentication": _proof(card.authentication, to_sign),
        "signing": _proof(card.signing, to_sign)})
    return enrolled["person_id"], _login(client, card.authentication)["access_token"]


def log_in_people(context: ServiceContext, out: Path) -> Generator[str, None, DemoPeople]:
    """Create a representative card and a My Number Card under ``out/cards``, log the
    representative in, invite and enrol the employee, and log the employee in."""
    pki = context.dev_pki
    if pki is None:
        raise DemoFailed("the demo needs development mode (the development PKI)")
    client = create_app(context.settings, hsm=context.hsm).test_client()
    cards = out / "cards"
    shutil.rmtree(cards, ignore_errors=True)

    representative = issue_representative_card(
        pki, corporate_name=DEMO_CORPORATION, registered_number=DEMO_REGISTERED_NUMBER,
        head_office_address="東京都千代田区丸の内一丁目1番1号",
        representative_name=DEMO_REPRESENTATIVE, representative_title="代表取締役")
    save_card(representative, cards / "representative")
    rep = _login(client, representative)
    corporate_number = rep["caller"]["representative_of"][0]
    yield (f"representative 佐藤 一郎 logged in over HTTP with a registration certificate: "
           f"法人番号 {corporate_number}, token expires {rep['expires_at']}")

    person_id, token = enrol_employee(client, pki, rep["access_token"], corporate_number,
                                      DEMO_EMPLOYEE_NAME, cards / "employee")
    yield f"employee 山田 太郎 enrolled with a My Number Card: person {person_id}"
    me = call(client, "GET", "/api/v1/me", 200, headers=bearer(token))
    yield (f"employee logged in over HTTP with the JPKI authentication certificate: roles "
           f"{', '.join(me['caller']['roles'])} of {', '.join(me['caller']['employee_of'])}")
    yield f"virtual cards in {cards}/ (try `dairi dev card sign --card {cards / 'employee'}`)"
    return DemoPeople(client, corporate_number, representative, rep["access_token"],
                      person_id, token)
