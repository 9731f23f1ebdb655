"""Logging in through the HTTP API with virtual cards, as a client would."""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import serialization
from flask import Flask
from flask.testing import FlaskClient

from devpki import DevPki
from devpki.cards import MyNumberCard, VirtualCard, issue_my_number_card, issue_representative_card
from identity.corporate_number import corporate_number

PROBLEM = "application/problem+json"
_numbers = itertools.count(1)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def der(card: VirtualCard) -> bytes:
    return card.certificate.public_bytes(serialization.Encoding.DER)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def proof(card: VirtualCard, to_sign: bytes) -> dict[str, object]:
    return {"certificate": b64(der(card)), "signature": b64(card.sign(to_sign))}


def open_challenge(client: FlaskClient, purpose: str = "login") -> dict:
    response = client.post("/api/v1/auth/challenges", json={"purpose": purpose})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def try_login(client: FlaskClient, card: VirtualCard, *, challenge: dict | None = None):
    challenge = challenge or open_challenge(client)
    to_sign = base64.b64decode(challenge["to_sign"])
    return client.post(
        f"/api/v1/auth/challenges/{challenge['id']}/response", json=proof(card, to_sign)
    )


def login(client: FlaskClient, card: VirtualCard) -> str:
    response = try_login(client, card)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["access_token"]


@dataclass(frozen=True)
class Corp:
    corporate_number: str
    registered_number: str
    representative: VirtualCard
    name: str = "株式会社テスト商事"


def new_corporation(
    pki: DevPki, *, title: str = "代表取締役", name: str = "株式会社テスト商事"
) -> Corp:
    registered = f"0110010{next(_numbers):05d}"
    card = issue_representative_card(
        pki,
        corporate_name=name,
        registered_number=registered,
        head_office_address="東京都千代田区丸の内一丁目1番1号",
        representative_name="佐藤\u3000一郎",
        representative_title=title,
    )
    return Corp(corporate_number(registered), registered, card, name)


def new_card(pki: DevPki, name: str = "山田\u3000太郎") -> MyNumberCard:
    return issue_my_number_card(
        pki,
        name=name,
        birth_date="419900115",
        sex="1",
        address="東京都千代田区霞が関一丁目1番1号",
        prefecture="東京都",
        city="千代田区",
    )


def invite(client: FlaskClient, token: str, corporate_number: str, **body: str) -> dict:
    response = client.post(
        f"/api/v1/corporations/{corporate_number}/invitations", json=body, headers=bearer(token)
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def try_enrol(
    client: FlaskClient, code: str, card: MyNumberCard, *, signing: VirtualCard | None = None
):
    challenge = open_challenge(client, "enrolment")
    to_sign = base64.b64decode(challenge["to_sign"])
    return client.post(
        "/api/v1/enrolments",
        json={
            "invitation_code": code,
            "challenge_id": challenge["id"],
            "authentication": proof(card.authentication, to_sign),
            "signing": proof(signing or card.signing, to_sign),
        },
    )


def enrolled_employee(
    client: FlaskClient, pki: DevPki, corp: Corp, name: str = "山田\u3000太郎"
) -> tuple[MyNumberCard, str, str]:
    """A new employee of ``corp``: (card, person id, access token)."""
    rep = login(client, corp.representative)
    code = invite(client, rep, corp.corporate_number, name=name)["code"]
    card = new_card(pki, name)
    response = try_enrol(client, code, card)
    assert response.status_code == 201, response.get_json()
    return card, response.get_json()["person_id"], login(client, card.authentication)


def move_clock(app: Flask, delta: timedelta) -> None:
    """Move the service's one clock forward from now by ``delta``."""
    app.extensions["dairi"].clock = lambda: datetime.now(UTC) + delta


def problem(response, status: int, code: str) -> dict:
    """The problem+json body of ``response``, asserting its status and stable code."""
    assert response.status_code == status, (response.status_code, response.get_data()[:500])
    assert response.content_type == PROBLEM
    body = response.get_json()
    assert body["code"] == code, body
    return body


def audit_codes(app: Flask) -> list[tuple[str, str]]:
    """(tag, refusal code or "") of every audit event, after verifying the chain."""
    from app.audit_trail.log import AuditLog

    with app.extensions["dairi"].session_factory() as session:
        log = AuditLog(session)
        log.verify()
        return [(r.tag, json.loads(r.details).get("code", "")) for r in log.events()]
