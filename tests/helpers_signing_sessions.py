"""Signing sessions over HTTP as an employee's client drives them: open with documents
(multipart), authorise with the card, sign with the SAD, fetch."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from io import BytesIO

from flask.testing import FlaskClient
from helpers_auth import Corp, bearer, enrolled_employee, proof
from helpers_mandates import ENTITY, Employee

from app.credentials.service import CredentialOwner, CredentialService
from devpki import DevPki
from devpki.cards import MyNumberCard
from hsm import Hsm, KeyAlgorithm


@dataclass(frozen=True)
class Signer:
    """An enrolled employee with their card and an HSM credential (by id)."""

    employee: Employee
    card: MyNumberCard
    credential_id: str

    @property
    def token(self) -> str:
        return self.employee.token


def new_signer(client: FlaskClient, hsm: Hsm, pki: DevPki, corp: Corp, name: str) -> Signer:
    card, person_id, token = enrolled_employee(client, pki, corp, name)
    context = client.application.extensions["dairi"]
    with context.session_factory() as session:
        service = CredentialService(session, hsm, context.dev_pki)
        issued = service.issue(
            f"{name} {person_id}",
            KeyAlgorithm.EC_P256,
            CredentialOwner(person_id, corp.corporate_number),
        )
        session.commit()
        credential = service.signing_credential(issued)
        credential_id = issued.id
    return Signer(Employee(name, person_id, token, credential), card, credential_id)


def purpose(corp: Corp, **changes: object) -> dict:
    fields: dict[str, object] = {
        "principal": corp.corporate_number,
        "action": "bid",
        "procuring_entity": ENTITY,
        "case": "令和8年度 第42号",
        "amount": 12_345_000,
    }
    fields.update(changes)
    return fields


def try_open(
    client: FlaskClient,
    signer: Signer,
    corp: Corp,
    documents: list[bytes],
    *,
    token: str | None = None,
    level: str = "B-B",
    names: list[str] | None = None,
    **request: object,
):
    body = {
        "credential_id": signer.credential_id,
        "purpose": purpose(corp),
        "format": "pades",
        "level": level,
    }
    body.update(request)
    data = {
        "request": json.dumps(body, ensure_ascii=False),
        "document": [
            (BytesIO(d), names[i] if names else f"入札書-{i}.pdf") for i, d in enumerate(documents)
        ],
    }
    return client.post(
        "/api/v1/signing-sessions",
        headers=bearer(token or signer.token),
        data=data,
        content_type="multipart/form-data",
    )


def opened(client, signer, corp, documents, **kwargs) -> dict:
    response = try_open(client, signer, corp, documents, **kwargs)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert [d["sha256"] for d in body["documents"]] == [
        hashlib.sha256(d).hexdigest() for d in documents
    ]
    return body


def try_authorize(client, signer: Signer, session: dict, *, card=None, token: str | None = None):
    to_sign = base64.b64decode(session["to_sign"])
    return client.post(
        f"/api/v1/signing-sessions/{session['id']}/authorization",
        headers=bearer(token or signer.token),
        json=proof(card or signer.card.authentication, to_sign),
    )


def authorized(client, signer: Signer, session: dict) -> str:
    response = try_authorize(client, signer, session)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["sad"]


def try_sign(client, signer: Signer, session_id: str, sad: str | None, token: str | None = None):
    return client.post(
        f"/api/v1/signing-sessions/{session_id}/signatures",
        headers=bearer(token or signer.token),
        json={} if sad is None else {"sad": sad},
    )
