"""The demo's 電子委任状: the representative grants a mandate to the demo employee
(signing the grant instruction with the registration certificate's key), who
sub-delegates part of it to a second employee (signing with the HSM key the first
mandate names), all over HTTP. The ACs, the AA certificate and the signed
電子委任状 PDF are written for offline verifiers.

Idempotent: a mandate an earlier run granted that is still active, to the same
holder certificate, with the same actions, entities, cases, amount and depth, is
used again instead of granting a second one.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.context import ServiceContext
from app.credentials.models import Credential
from app.credentials.service import CredentialService
from app.dev.demo_login import (
    DEMO_CORPORATION,
    DEMO_REPRESENTATIVE,
    DemoFailed,
    DemoPeople,
    b64,
    bearer,
    call,
    employee_credential,
    enrol_employee,
)
from delegation.instruction import GrantInstruction
from delegation.scope import BID, QUOTE, Scope
from signing import SigningCredential, sign_detached

SECOND_EMPLOYEE_NAME = "鈴木\u3000花子"
SECOND_CREDENTIAL = "鈴木 花子 (demo)"
ENTITY = "国土交通省 関東地方整備局"
CASE = "令和8年度 第42号 庁舎清掃業務委託"


def _grant(
    people: DemoPeople,
    token: str,
    instruction: GrantInstruction,
    signatures: bytes,
    grantee: SigningCredential,
    grantee_person_id: str,
) -> dict[str, Any]:
    return call(
        people.client,
        "POST",
        "/api/v1/mandates",
        201,
        headers=bearer(token),
        json={
            "instruction": b64(instruction.canonical()),
            "signatures": b64(signatures),
            "grantee_certificate": b64(grantee.certificate_der),
            "grantee_person_id": grantee_person_id,
        },
    )


_SAME_TERMS = ("actions", "procuring_entities", "cases", "amount_limit_jpy", "max_depth")


def _granted_before(
    people: DemoPeople,
    grantee_person_id: str,
    holder: SigningCredential,
    scope: Scope,
    parent_id: str | None,
) -> dict[str, Any] | None:
    """An active mandate of the demo's corporation to this holder with ``scope``'s terms
    (its validity aside) under ``parent_id``, as an earlier run granted it; or None."""
    listed = call(
        people.client,
        "GET",
        "/api/v1/mandates",
        200,
        headers=bearer(people.representative_token),
        params={
            "principal": people.corporate_number,
            "grantee": grantee_person_id,
            "status": "active",
            "page_size": 100,
        },
    )
    wanted = scope.to_json()
    holder_sha256 = hashlib.sha256(holder.certificate_der).hexdigest()
    for mandate in listed["items"]:
        if (
            mandate["parent_id"] == parent_id
            and mandate["grantee"]["certificate_sha256"] == holder_sha256
            and all(mandate["scope"][k] == wanted[k] for k in _SAME_TERMS)
        ):
            return dict(mandate)
    return None


def grant_demo_mandates(
    context: ServiceContext, people: DemoPeople, employee: Credential, employee_name: str, out: Path
) -> Iterator[str]:
    pki = context.dev_pki
    assert pki is not None  # log_in_people checked development mode
    session = context.session_factory()
    credentials = CredentialService(session, context.hsm, pki)
    holder = credentials.signing_credential(employee)
    second_person, second_token, done, second_signing = enrol_employee(
        people.client,
        pki,
        people.representative_token,
        people.corporate_number,
        SECOND_EMPLOYEE_NAME,
        out / "cards" / "second-employee",
    )
    obtained, how = employee_credential(
        people.client,
        second_token,
        people.corporate_number,
        second_signing,
        f"{SECOND_CREDENTIAL} {second_person}",
    )
    second = credentials.signing_credential(credentials.get(obtained["id"]))
    session.close()
    yield (
        f"second employee 鈴木 花子 {done}: person {second_person}, "
        f"HSM credential {how} over HTTP (key {second.key_ref})"
    )

    # Each instruction carries a fresh nonce and its creation time (the service accepts
    # it once, within instruction_max_age_seconds of that time).
    now = context.clock().replace(microsecond=0)
    granted = Scope(
        frozenset({BID, QUOTE}),
        frozenset({ENTITY}),
        None,
        100_000_000,
        now - timedelta(minutes=1),
        now + timedelta(days=90),
        max_depth=1,
    )
    root_instruction = GrantInstruction(
        people.corporate_number,
        DEMO_CORPORATION,
        DEMO_REPRESENTATIVE,
        "代表取締役",
        employee_name,
        hashlib.sha256(holder.certificate_der).hexdigest(),
        granted,
        created_at=now,
    )
    root = _granted_before(people, people.employee_person_id, holder, granted, None)
    again = " (granted by an earlier run, still active)" if root else ""
    root = root or _grant(
        people,
        people.representative_token,
        root_instruction,
        people.representative.sign_cms(root_instruction.canonical()),
        holder,
        people.employee_person_id,
    )
    yield (
        f"mandate {root['id']}: 佐藤 一郎（代表取締役） → 山田 太郎, bid and quote for "
        f"{ENTITY} up to 100,000,000 円, may sub-delegate once{again}"
    )

    narrowed = Scope(
        frozenset({BID}),
        frozenset({ENTITY}),
        frozenset({CASE}),
        20_000_000,
        now - timedelta(minutes=1),
        now + timedelta(days=30),
    )
    sub_instruction = GrantInstruction(
        people.corporate_number,
        DEMO_CORPORATION,
        employee_name,
        None,
        SECOND_EMPLOYEE_NAME,
        hashlib.sha256(second.certificate_der).hexdigest(),
        narrowed,
        parent=root["id"],
        created_at=now,
    )
    leaf = _granted_before(people, second_person, second, narrowed, root["id"])
    again = " (granted by an earlier run, still active)" if leaf else ""
    leaf = leaf or _grant(
        people,
        people.employee_token,
        sub_instruction,
        sign_detached(context.hsm, holder, sub_instruction.canonical()),
        second,
        second_person,
    )
    yield (
        f"mandate {leaf['id']}: 山田 太郎 → 鈴木 花子 (sub-delegation signed with the HSM "
        f"key), bid for {CASE} up to 20,000,000 円{again}"
    )

    directory = out / "mandates"
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*"):
        old.unlink()
    for mandate in (root, leaf):
        path = directory / f"{mandate['depth']}-{mandate['id']}.der"
        path.write_bytes(base64.b64decode(mandate["attribute_certificate"]))
        yield f"{path}  mandate attribute certificate (RFC 5755), depth {mandate['depth']}"
    document = people.client.open(
        "GET", f"/api/v1/mandates/{leaf['id']}/document", headers=bearer(second_token)
    )
    if document.status_code != 200:
        raise DemoFailed(f"GET the 電子委任状: {document.status_code} {document.text}")
    pdf = directory / f"{leaf['id']}.pdf"
    pdf.write_bytes(document.content)
    yield f"{pdf}  電子委任状 (Japanese PDF, signed by the service)"

    who = call(
        people.client,
        "GET",
        "/api/v1/authority",
        200,
        headers=bearer(people.representative_token),
        params={
            "principal": people.corporate_number,
            "action": BID,
            "procuring_entity": ENTITY,
            "case": CASE,
        },
    )
    names = ", ".join(
        f"{a['grantee']['name']} (chain of {len(a['chain'])})" for a in who["authorities"]
    )
    yield f"who may bid for {CASE} now: {names}"
