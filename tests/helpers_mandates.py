"""Granting mandates through the HTTP API as representatives and employees would."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient
from helpers_auth import Corp, b64, bearer, enrolled_employee, login
from helpers_delegation import sign_instruction

from app.credentials.service import CredentialOwner, CredentialService
from delegation.instruction import GrantInstruction
from delegation.scope import BID, QUOTE, Scope
from devpki import DevPki
from devpki.cards import VirtualCard
from hsm import Hsm, KeyAlgorithm
from signing import SigningCredential, sign_detached

ENTITY = "国土交通省関東地方整備局"
OTHER_ENTITY = "東京都財務局"


@dataclass(frozen=True)
class Employee:
    """An enrolled employee with an HSM signing credential (the AC holder)."""

    name: str
    person_id: str
    token: str
    credential: SigningCredential

    @property
    def certificate(self) -> bytes:
        return self.credential.certificate_der

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.credential.certificate_der).hexdigest()


def new_employee(client: FlaskClient, hsm: Hsm, pki: DevPki, corp: Corp, name: str) -> Employee:
    """An employee enrolled through the API, with a credential issued to them by the
    service (key in the HSM, owned by the person for ``corp``)."""
    _, person_id, token = enrolled_employee(client, pki, corp, name)
    context = client.application.extensions["dairi"]
    with context.session_factory() as session:
        service = CredentialService(session, hsm, context.dev_pki)
        issued = service.issue(
            f"{name} {person_id}",
            KeyAlgorithm.RSA_2048,
            CredentialOwner(person_id, corp.corporate_number),
        )
        session.commit()  # services never commit: the caller ends the unit of work
        credential = service.signing_credential(issued)
    return Employee(name, person_id, token, credential)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# One end for every default scope, so a child made a second after its parent does not
# outlast it.
END = now() + timedelta(days=30)


def scope(**changes: object) -> Scope:
    fields: dict[str, object] = {
        "actions": frozenset({BID, QUOTE}),
        "procuring_entities": frozenset({ENTITY}),
        "cases": None,
        "amount_limit_jpy": 100_000_000,
        "not_before": now() - timedelta(minutes=1),
        "not_after": END,
        "max_depth": 1,
    }
    fields.update(changes)
    return Scope(**fields)  # type: ignore[arg-type]


def instruction(
    corp: Corp,
    grantee: Employee,
    granted: Scope,
    *,
    parent: str | None = None,
    grantor_name: str = "佐藤\u3000一郎",
    grantor_title: str | None = "代表取締役",
    principal_name: str | None = None,
    corporate_number: str | None = None,
    holder: Employee | None = None,
    created_at: datetime | None = None,
) -> bytes:
    """A fresh instruction (new nonce, made now unless ``created_at``) naming ``grantee``
    with the holder certificate of ``holder`` (default: the grantee's own)."""
    return GrantInstruction(
        principal_corporate_number=corporate_number or corp.corporate_number,
        principal_name=principal_name or corp.name,
        grantor_name=grantor_name,
        grantor_title=grantor_title,
        grantee_name=grantee.name,
        grantee_certificate_sha256=(holder or grantee).sha256,
        scope=granted,
        parent=parent,
        created_at=created_at or now(),
    ).canonical()


def post_grant(
    client: FlaskClient,
    token: str,
    data: bytes,
    signatures: bytes,
    grantee: Employee,
    *,
    grantee_certificate: bytes | None = None,
):
    return client.post(
        "/api/v1/mandates",
        headers=bearer(token),
        json={
            "instruction": b64(data),
            "signatures": b64(signatures),
            "grantee_certificate": b64(grantee_certificate or grantee.certificate),
            "grantee_person_id": grantee.person_id,
        },
    )


def try_root_grant(
    client: FlaskClient,
    corp: Corp,
    grantee: Employee,
    granted: Scope,
    *,
    signers: tuple[VirtualCard, ...] | None = None,
    token: str | None = None,
    **kwargs: object,
):
    data = instruction(corp, grantee, granted, **kwargs)  # type: ignore[arg-type]
    cards = signers or (corp.representative,)
    signatures = sign_instruction(cards[0], data) if len(cards) == 1 else sign_jointly(cards, data)
    return post_grant(
        client, token or login(client, corp.representative), data, signatures, grantee
    )


def root_grant(
    client: FlaskClient,
    corp: Corp,
    grantee: Employee,
    granted: Scope | None = None,
    **kwargs: object,
) -> dict:
    response = try_root_grant(client, corp, grantee, granted or scope(), **kwargs)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def try_sub_grant(
    client: FlaskClient,
    hsm: Hsm,
    corp: Corp,
    parent: dict,
    grantor: Employee,
    grantee: Employee,
    granted: Scope,
    *,
    signer: Employee | None = None,
):
    data = instruction(
        corp, grantee, granted, parent=parent["id"], grantor_name=grantor.name, grantor_title=None
    )
    signatures = sign_detached(hsm, (signer or grantor).credential, data)
    return post_grant(client, grantor.token, data, signatures, grantee)


def sub_grant(client, hsm, corp, parent, grantor, grantee, granted=None) -> dict:
    response = try_sub_grant(
        client, hsm, corp, parent, grantor, grantee, granted or scope(max_depth=0)
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def sign_jointly(cards: tuple[VirtualCard, ...], data: bytes) -> bytes:
    """One CMS SignedData carrying every card's SignerInfo over ``data``."""
    from asn1crypto import cms

    parts = [cms.ContentInfo.load(sign_instruction(card, data)) for card in cards]
    first = parts[0]["content"]
    for other in parts[1:]:
        signed = other["content"]
        first["certificates"] = [*first["certificates"], *signed["certificates"]]
        first["signer_infos"] = [*first["signer_infos"], *signed["signer_infos"]]
    return cms.ContentInfo({"content_type": "signed_data", "content": first}).dump()
