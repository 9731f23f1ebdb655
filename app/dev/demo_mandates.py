"""The demo's 電子委任状, all over HTTP with the client library (:mod:`app.client`):
the representative builds the grant instruction to the demo employee and signs it with
the registration certificate's key (:func:`app.client.grants.build_instruction`,
:func:`app.client.api.sign_grant`); the employee sub-delegates part of it to a second
employee through the service (:func:`app.client.subdelegation.sub_delegate`: a signing
session of format ``cms`` in which the service signs the instruction with the
employee's HSM credential, authorised by the employee's card). The ACs, the AA
certificate and the signed 電子委任状 PDF are written for offline verifiers.

Idempotent: a mandate an earlier run granted that is still active, to the same
holder certificate, with the same actions, entities, cases, amount and depth, is
used again instead of granting a second one.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.client.api import sign_grant, unb64
from app.client.grants import GrantTerms, build_instruction
from app.client.subdelegation import sub_delegate
from app.dev.demo_login import (
    DemoFailed,
    DemoPeople,
    as_card,
    as_person,
    bearer,
    call,
    employee_credential,
    enrol_employee,
)
from dairi import DairiError
from delegation.scope import BID, QUOTE
from devpki import DevPki
from devpki.cards import VirtualCard

SECOND_EMPLOYEE_NAME = "鈴木\u3000花子"
SECOND_CREDENTIAL = "鈴木 花子 (demo)"
ENTITY = "国土交通省 関東地方整備局"
CASE = "令和8年度 第42号 庁舎清掃業務委託"
APPLICATION = "e-application:建設業許可申請"  # the e-application procedure granted too

# What the representative grants the employee, and what the employee sub-delegates.
ROOT_TERMS = GrantTerms(
    actions=(BID, QUOTE, APPLICATION),
    procuring_entities=(ENTITY,),
    amount_limit_jpy=100_000_000,
    max_depth=1,
)
SUB_TERMS = GrantTerms(
    actions=(BID,), procuring_entities=(ENTITY,), cases=(CASE,), amount_limit_jpy=20_000_000
)


def _terms(terms: GrantTerms) -> dict[str, Any]:
    """The terms as ``GET /api/v1/mandates`` shows a scope (validity aside)."""
    return {
        "actions": sorted(terms.actions),
        "procuring_entities": sorted(terms.procuring_entities) or None,
        "cases": sorted(terms.cases) or None,
        "amount_limit_jpy": terms.amount_limit_jpy,
        "max_depth": terms.max_depth,
    }


def _granted_before(
    people: DemoPeople,
    grantee_person_id: str,
    holder_certificate: bytes,
    terms: GrantTerms,
    parent_id: str | None,
) -> dict[str, Any] | None:
    """An active mandate of the demo's corporation to this holder with ``terms`` under
    ``parent_id``, as an earlier run granted it; or None."""
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
    wanted = _terms(terms)
    holder_sha256 = hashlib.sha256(holder_certificate).hexdigest()
    for mandate in listed["items"]:
        if (
            mandate["parent_id"] == parent_id
            and mandate["grantee"]["certificate_sha256"] == holder_sha256
            and all(mandate["scope"][k] == v for k, v in wanted.items())
        ):
            return dict(mandate)
    return None


def grant_root(
    people: DemoPeople, holder_certificate: bytes, employee_name: str
) -> Generator[str, None, dict[str, Any]]:
    """The representative's mandate to the employee (whose HSM credential's certificate
    is ``holder_certificate``): an earlier run's, or granted now with the client."""
    root = _granted_before(people, people.employee_person_id, holder_certificate, ROOT_TERMS, None)
    how = " (granted by an earlier run, still active)"
    if root is None:
        how = " (instruction built by the client, signed with the registration certificate)"
        card = as_card(people.representative)
        now = datetime.now(UTC).replace(microsecond=0)
        terms = replace(ROOT_TERMS, not_after=now + timedelta(days=90))
        instruction = build_instruction(
            card.certificate_der, holder_certificate, terms, grantee_name=employee_name, now=now
        ).canonical()
        with as_person(people.client, people.representative_token) as representative:
            try:
                root = representative.grant(
                    instruction,
                    sign_grant(card, instruction),
                    holder_certificate,
                    people.employee_person_id,
                )
            except DairiError as exc:
                raise DemoFailed(f"grant: {exc.code}: {exc.message}") from exc
    yield (
        f"mandate {root['id']}: 佐藤 一郎（代表取締役） → 山田 太郎, bid, quote and 建設業許可申請 "
        f"for {ENTITY} up to 100,000,000 円, may sub-delegate once{how}"
    )
    return root


@dataclass(frozen=True)
class SecondEmployee:
    person_id: str
    token: str
    card: dict[str, VirtualCard]
    credential: dict[str, Any]  # as the service shows it

    @property
    def certificate(self) -> bytes:
        return unb64(self.credential["certificate"], "a certificate")


def second_employee(
    people: DemoPeople, pki: DevPki, out: Path
) -> Generator[str, None, SecondEmployee]:
    """The second employee, logged in with their own card and holding an HSM credential."""
    person, token, done, card = enrol_employee(
        people.client,
        pki,
        people.representative_token,
        people.corporate_number,
        SECOND_EMPLOYEE_NAME,
        out / "cards" / "second-employee",
    )
    obtained, how = employee_credential(
        people.client,
        token,
        people.corporate_number,
        card["signing"],
        f"{SECOND_CREDENTIAL} {person}",
    )
    yield (
        f"second employee 鈴木 花子 {done}: person {person}, "
        f"HSM credential {how} over HTTP ({obtained['id']})"
    )
    return SecondEmployee(person, token, card, obtained)


def sub_delegate_to(
    people: DemoPeople, credential_id: str, root: dict[str, Any], second: SecondEmployee
) -> Generator[str, None, dict[str, Any]]:
    """The employee's sub-delegation to ``second`` under ``root``: an earlier run's, or
    made now through the service (format ``cms`` signing session, then the grant)."""
    leaf = _granted_before(people, second.person_id, second.certificate, SUB_TERMS, root["id"])
    session = None
    if leaf is not None:
        yield (
            f"mandate {leaf['id']}: 山田 太郎 → 鈴木 花子, bid for {CASE} up to "
            "20,000,000 円 (granted by an earlier run, still active)"
        )
        return leaf
    terms = replace(
        SUB_TERMS, not_after=datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    )
    with as_person(people.client, people.employee_token) as employee:
        try:
            for event, value in sub_delegate(
                employee,
                as_card(people.employee_card["authentication"]),
                credential_id,
                str(root["id"]),
                second.certificate,
                second.person_id,
                terms,
                grantee_name=SECOND_EMPLOYEE_NAME,
            ):
                if event == "session":
                    session = value["id"]
                elif event == "granted":
                    leaf = dict(value)
        except DairiError as exc:
            raise DemoFailed(f"sub-delegation: {exc.code}: {exc.message}") from exc
    if leaf is None:
        raise DemoFailed("the sub-delegation granted nothing")
    yield (
        f"mandate {leaf['id']}: 山田 太郎 → 鈴木 花子, bid for {CASE} up to 20,000,000 円 "
        f"(instruction signed by the service with 山田 太郎's HSM key in signing session "
        f"{session}, authorised by his card)"
    )
    return leaf


def publish_mandates(
    people: DemoPeople, root: dict[str, Any], leaf: dict[str, Any], second_token: str, out: Path
) -> Iterator[str]:
    """Write the ACs and the 電子委任状 PDF, and ask who may bid for the case now."""
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


__all__ = [
    "APPLICATION",
    "CASE",
    "ENTITY",
    "SecondEmployee",
    "grant_root",
    "publish_mandates",
    "second_employee",
    "sub_delegate_to",
]
