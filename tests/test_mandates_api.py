"""Mandates over the HTTP API: grants by representatives, sub-delegations by employees
with their HSM keys, every refusal with its own code, revocation cascading, chains,
the authority query, tenant isolation and the audit trail."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography import x509
from helpers_auth import bearer, login, move_clock, problem
from helpers_delegation import sign_instruction
from helpers_mandates import (
    ENTITY,
    OTHER_ENTITY,
    instruction,
    now,
    post_grant,
    root_grant,
    scope,
    sub_grant,
    try_root_grant,
    try_sub_grant,
)

from app.audit_trail.log import AuditLog
from app.people.models import Role, RoleAssignment
from delegation.certificates import parse_mandate_certificate
from delegation.scope import BID, CONTRACT, QUOTE
from devpki.cards import issue_representative_card


def ac_of(mandate: dict) -> bytes:
    return base64.b64decode(mandate["attribute_certificate"])


def audit_tags(app) -> list[tuple[str, str | None]]:
    with app.extensions["dairi"].session_factory() as session:
        log = AuditLog(session)
        log.verify()
        return [(r.tag, json_code(r.details)) for r in log.events()]


def json_code(details: str) -> str | None:
    import json

    return json.loads(details).get("code")


# -- granting -------------------------------------------------------------------


def test_a_representative_grants_and_an_employee_sub_delegates(client, app, hsm, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada)
    assert root["depth"] == 0 and root["status"] == "active"
    assert root["principal"] == {"corporate_number": a.corporate_number, "name": "株式会社大理建設"}
    assert root["grantor"]["title"] == "代表取締役"
    assert root["grantee"] == {
        "person_id": yamada.person_id,
        "name": yamada.name,
        "certificate_sha256": yamada.sha256,
    }
    parsed = parse_mandate_certificate(ac_of(root))
    assert parsed.is_held_by(yamada.certificate) and parsed.depth == 0
    assert parsed.terms.amount_limit_jpy == 100_000_000

    child = sub_grant(
        client,
        hsm,
        a,
        root,
        yamada,
        suzuki,
        scope(actions=frozenset({"bid"}), amount_limit_jpy=50_000_000, max_depth=0),
    )
    assert child["depth"] == 1 and child["parent_id"] == root["id"]
    assert child["grantor"]["certificate_sha256"] == yamada.sha256
    parsed_child = parse_mandate_certificate(ac_of(child))
    # The root embedded bare: the same mandate without provenance (issue 10 item 12).
    [embedded] = parsed_child.ancestors
    assert (
        parse_mandate_certificate(embedded, embedded_depth=0).serial_number
        == parse_mandate_certificate(ac_of(root)).serial_number
    )
    assert parsed_child.is_held_by(suzuki.certificate)

    fetched = client.get(f"/api/v1/mandates/{child['id']}", headers=bearer(suzuki.token))
    assert fetched.status_code == 200 and fetched.get_json()["id"] == child["id"]
    assert ("mandate:granted", None) in audit_tags(app)


def test_grantor_not_a_representative(client, app, pki, world):
    a, yamada = world["a"], world["yamada"]
    director = issue_representative_card(
        pki,
        corporate_name=a.name,
        registered_number=a.registered_number,
        head_office_address="東京都千代田区丸の内一丁目1番1号",
        representative_name="佐藤\u3000一郎",
        representative_title="取締役",
    )
    problem(
        try_root_grant(client, a, yamada, scope(), signers=(director,)),
        403,
        "GRANTOR_NOT_REPRESENTATIVE",
    )
    assert ("mandate:grant:refused", "GRANTOR_NOT_REPRESENTATIVE") in audit_tags(app)


def test_representative_certificate_revoked(client, pki, world):
    a, yamada = world["a"], world["yamada"]
    token = login(client, a.representative)
    pki.ca_for_slug("registrar").revoke(
        a.representative.certificate.serial_number, x509.ReasonFlags.key_compromise, now=now()
    )
    # No cache to clear: a grant checks revocation fresh (the login's answer is cached).
    problem(
        try_root_grant(client, a, yamada, scope(), token=token), 403, "REPRESENTATIVE_CERT_REVOKED"
    )


def test_principal_mismatch(client, world):
    a, b, yamada = world["a"], world["b"], world["yamada"]
    # B's representative signs an instruction naming A as principal (its own code since
    # issue 10.3: PRINCIPAL_MISMATCH is a hop whose principal is not its chain's).
    problem(
        try_root_grant(client, a, yamada, scope(), signers=(b.representative,)),
        403,
        "REPRESENTATIVE_CORPORATION_MISMATCH",
    )


def test_joint_representation_needs_enough_distinct_representatives(client, app, pki, world):
    a, yamada = world["a"], world["yamada"]
    url = f"/api/v1/corporations/{a.corporate_number}/joint-representation"
    rep = login(client, a.representative)
    problem(client.put(url, json={"representatives": 2}, headers=bearer(rep)), 403, "FORBIDDEN")
    with app.extensions["dairi"].session_factory() as session, session.begin():
        session.add(
            RoleAssignment(
                person_id=yamada.person_id, role=Role.ADMINISTRATOR.value, granted_by="test"
            )
        )
    problem(
        client.put(url, json={"representatives": 0}, headers=bearer(yamada.token)),
        422,
        "VALIDATION_FAILED",
    )
    assert client.put(
        url, json={"representatives": 2}, headers=bearer(yamada.token)
    ).get_json() == {"representatives": 2}
    assert (
        client.get(f"/api/v1/corporations/{a.corporate_number}", headers=bearer(rep)).get_json()[
            "joint_representatives"
        ]
        == 2
    )
    problem(try_root_grant(client, a, yamada, scope()), 403, "JOINT_REPRESENTATION_INCOMPLETE")
    # The same representative twice is still one representative.
    problem(
        try_root_grant(client, a, yamada, scope(), signers=(a.representative, a.representative)),
        403,
        "JOINT_REPRESENTATION_INCOMPLETE",
    )
    second = issue_representative_card(
        pki,
        corporate_name=a.name,
        registered_number=a.registered_number,
        head_office_address="東京都千代田区丸の内一丁目1番1号",
        representative_name="高橋\u3000二郎",
        representative_title="代表取締役",
    )
    granted = try_root_grant(client, a, yamada, scope(), signers=(a.representative, second))
    assert granted.status_code == 201, granted.get_json()


def test_instruction_signature_invalid(client, world):
    a, yamada = world["a"], world["yamada"]
    signed = instruction(a, yamada, scope())
    tampered = instruction(a, yamada, scope(amount_limit_jpy=900_000_000))
    problem(
        post_grant(
            client,
            login(client, a.representative),
            tampered,
            sign_instruction(a.representative, signed),
            yamada,
        ),
        422,
        "INSTRUCTION_SIGNATURE_INVALID",
    )


def test_malformed_requests(client, world):
    a, yamada = world["a"], world["yamada"]
    token = login(client, a.representative)
    body = {
        "instruction": "not base64!",
        "signatures": "AAAA",
        "grantee_certificate": "AAAA",
        "grantee_person_id": yamada.person_id,
    }
    problem(
        client.post("/api/v1/mandates", json=body, headers=bearer(token)), 422, "VALIDATION_FAILED"
    )
    problem(
        post_grant(client, token, b'{"type": 1}', b"\x30\x00", yamada), 422, "INSTRUCTION_MALFORMED"
    )
    data = instruction(a, yamada, scope())
    problem(
        post_grant(client, token, data, b"garbage", yamada), 422, "INSTRUCTION_SIGNATURE_INVALID"
    )


def test_holder_mismatch(client, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    data = instruction(a, yamada, scope())
    problem(
        post_grant(
            client,
            login(client, a.representative),
            data,
            sign_instruction(a.representative, data),
            yamada,
            grantee_certificate=suzuki.certificate,
        ),
        403,
        "HOLDER_MISMATCH",
    )


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"actions": frozenset({CONTRACT})}, "SCOPE_ACTION_NOT_GRANTED"),
        ({"procuring_entities": frozenset({OTHER_ENTITY})}, "SCOPE_ENTITY_NOT_GRANTED"),
        ({"procuring_entities": None}, "SCOPE_ENTITY_NOT_GRANTED"),
        ({"amount_limit_jpy": 200_000_000}, "SCOPE_AMOUNT_EXCEEDED"),
        ({"not_after": now() + timedelta(days=60)}, "SCOPE_VALIDITY_EXCEEDED"),
        ({"max_depth": 1}, "DEPTH_EXCEEDED"),
    ],
)
def test_a_sub_delegation_may_not_escalate(client, hsm, world, change, code):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada, scope(cases=frozenset({"第42号"})))
    granted = scope(cases=frozenset({"第42号"}), max_depth=0)
    granted = type(granted)(**{**granted.__dict__, **change})
    problem(try_sub_grant(client, hsm, a, root, yamada, suzuki, granted), 403, code)


def test_a_case_outside_the_parent_is_refused(client, hsm, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada, scope(cases=frozenset({"第42号"})))
    problem(
        try_sub_grant(
            client, hsm, a, root, yamada, suzuki, scope(cases=frozenset({"第43号"}), max_depth=0)
        ),
        403,
        "SCOPE_CASE_NOT_GRANTED",
    )


def test_sub_delegation_not_allowed(client, hsm, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada, scope(max_depth=0))
    problem(
        try_sub_grant(client, hsm, a, root, yamada, suzuki, scope(max_depth=0)),
        403,
        "SUBDELEGATION_NOT_ALLOWED",
    )


def test_a_sub_delegation_must_be_signed_by_the_parent_grantee(client, hsm, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada)
    problem(
        try_sub_grant(client, hsm, a, root, yamada, suzuki, scope(max_depth=0), signer=suzuki),
        403,
        "GRANTOR_NOT_PARENT_GRANTEE",
    )


def test_expired_and_not_yet_valid_parents(client, app, hsm, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    later = root_grant(
        client,
        a,
        yamada,
        scope(not_before=now() + timedelta(days=1), not_after=now() + timedelta(days=30)),
    )
    problem(
        try_sub_grant(
            client,
            hsm,
            a,
            later,
            yamada,
            suzuki,
            scope(not_before=now() + timedelta(days=1), max_depth=0),
        ),
        403,
        "PARENT_NOT_YET_VALID",
    )
    short = root_grant(client, a, yamada, scope(not_after=now() + timedelta(minutes=2)))
    move_clock(app, timedelta(minutes=3))
    problem(
        try_sub_grant(
            client,
            hsm,
            a,
            short,
            yamada,
            suzuki,
            scope(not_after=now() + timedelta(minutes=2), max_depth=0),
        ),
        403,
        "PARENT_EXPIRED",
    )


def test_a_revoked_ancestor_refuses_new_sub_delegations(client, hsm, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada)
    rep = login(client, a.representative)
    assert (
        client.post(
            f"/api/v1/mandates/{root['id']}/revocation", json={}, headers=bearer(rep)
        ).status_code
        == 200
    )
    problem(
        try_sub_grant(client, hsm, a, root, yamada, suzuki, scope(max_depth=0)),
        403,
        "ANCESTOR_REVOKED",
    )


def test_the_grantee_must_be_an_employee_of_the_principal(client, world):
    a, tanaka = world["a"], world["tanaka"]
    problem(try_root_grant(client, a, tanaka, scope()), 422, "GRANTEE_NOT_EMPLOYEE")


def test_an_employee_of_another_corporation_cannot_submit(client, world):
    a, yamada, tanaka = world["a"], world["yamada"], world["tanaka"]
    data = instruction(a, yamada, scope())
    problem(
        post_grant(client, tanaka.token, data, sign_instruction(a.representative, data), yamada),
        403,
        "FORBIDDEN",
    )


# -- revocation, chains, authority ----------------------------------------------------


def test_revocation_cascades_and_is_permitted_to_grantors_only(client, app, hsm, world):
    a, b, yamada, suzuki = world["a"], world["b"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada)
    child = sub_grant(client, hsm, a, root, yamada, suzuki)
    url = f"/api/v1/mandates/{child['id']}/revocation"
    problem(client.post(url, json={}, headers=bearer(suzuki.token)), 403, "FORBIDDEN")
    problem(
        client.post(url, json={}, headers=bearer(login(client, b.representative))),
        404,
        "MANDATE_NOT_FOUND",
    )
    problem(
        client.post(url, json={"reason": "because"}, headers=bearer(yamada.token)),
        422,
        "VALIDATION_FAILED",
    )

    rep = login(client, a.representative)
    response = client.post(
        f"/api/v1/mandates/{root['id']}/revocation", json={}, headers=bearer(rep)
    )
    assert response.status_code == 200
    assert response.get_json()["revoked"] == [root["id"], child["id"]]
    problem(client.post(url, json={}, headers=bearer(yamada.token)), 409, "MANDATE_ALREADY_REVOKED")

    verdict = client.get(
        f"/api/v1/mandates/{child['id']}/chain", headers=bearer(suzuki.token)
    ).get_json()
    assert verdict["holds"] is False
    assert [h["reasons"] for h in verdict["hops"]] == [
        ["MANDATE_REVOKED"],
        ["MANDATE_REVOKED", "PARENT_INVALID"],
    ]
    # Before the revocation the chain held.
    earlier = (now() - timedelta(seconds=30)).isoformat()
    before = client.get(
        f"/api/v1/mandates/{child['id']}/chain",
        query_string={"at": earlier, "action": "bid", "procuring_entity": ENTITY},
        headers=bearer(suzuki.token),
    ).get_json()
    assert before["holds"] is True, before
    tags = audit_tags(app)
    assert ("mandate:revoked", None) in tags
    assert ("mandate:revocation:refused", "FORBIDDEN") in tags


def test_a_grantor_revokes_the_mandate_they_granted(client, hsm, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada)
    child = sub_grant(client, hsm, a, root, yamada, suzuki)
    response = client.post(
        f"/api/v1/mandates/{child['id']}/revocation",
        json={"reason": "affiliation_changed"},
        headers=bearer(yamada.token),
    )
    assert response.status_code == 200 and response.get_json()["revoked"] == [child["id"]]
    assert (
        client.get(f"/api/v1/mandates/{root['id']}", headers=bearer(yamada.token)).get_json()[
            "status"
        ]
        == "active"
    )


def test_chain_for_a_purpose(client, hsm, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada)
    child = sub_grant(
        client,
        hsm,
        a,
        root,
        yamada,
        suzuki,
        scope(actions=frozenset({"bid"}), amount_limit_jpy=10_000_000, max_depth=0),
    )
    url = f"/api/v1/mandates/{child['id']}/chain"
    ok = client.get(
        url,
        query_string={"action": "bid", "procuring_entity": ENTITY, "amount_jpy": 9_000_000},
        headers=bearer(suzuki.token),
    )
    assert ok.get_json()["holds"] is True
    over = client.get(
        url,
        query_string={"action": "quote", "procuring_entity": ENTITY, "amount_jpy": 20_000_000},
        headers=bearer(suzuki.token),
    ).get_json()
    assert over["holds"] is False
    assert over["reasons"] == ["SCOPE_ACTION_NOT_GRANTED", "SCOPE_AMOUNT_EXCEEDED"]
    problem(
        client.get(url, query_string={"action": "dance"}, headers=bearer(suzuki.token)),
        422,
        "SCOPE_ACTION_UNKNOWN",
    )


def test_who_could_act_and_through_which_chain(client, app, hsm, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada)
    child = sub_grant(
        client, hsm, a, root, yamada, suzuki, scope(actions=frozenset({"bid"}), max_depth=0)
    )
    rep = login(client, a.representative)

    def ask(**query):
        response = client.get(
            "/api/v1/authority",
            headers=bearer(rep),
            query_string={"principal": a.corporate_number, **query},
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()["authorities"]

    bid = ask(action="bid", procuring_entity=ENTITY)
    assert [(x["grantee"]["person_id"], [h["mandate_id"] for h in x["chain"]]) for x in bid] == [
        (yamada.person_id, [root["id"]]),
        (suzuki.person_id, [root["id"], child["id"]]),
    ]
    assert [x["grantee"]["person_id"] for x in ask(action="quote", procuring_entity=ENTITY)] == [
        yamada.person_id
    ]
    assert ask(action="bid", procuring_entity=OTHER_ENTITY) == []
    assert ask(action="bid") == []  # an unstated entity is not within a restricted scope
    assert (
        client.post(
            f"/api/v1/mandates/{root['id']}/revocation", json={}, headers=bearer(rep)
        ).status_code
        == 200
    )
    assert ask(action="bid", procuring_entity=ENTITY) == []
    earlier = (now() - timedelta(seconds=30)).isoformat()
    assert len(ask(action="bid", procuring_entity=ENTITY, at=earlier)) == 2


def test_tenant_isolation(client, world):
    a, yamada, tanaka = world["a"], world["yamada"], world["tanaka"]
    root = root_grant(client, a, yamada)
    problem(
        client.get(f"/api/v1/mandates/{root['id']}", headers=bearer(tanaka.token)),
        404,
        "MANDATE_NOT_FOUND",
    )
    problem(
        client.get(
            "/api/v1/mandates",
            query_string={"principal": a.corporate_number},
            headers=bearer(tanaka.token),
        ),
        403,
        "FORBIDDEN",
    )
    problem(
        client.get(
            "/api/v1/authority",
            headers=bearer(tanaka.token),
            query_string={"principal": a.corporate_number, "action": "bid"},
        ),
        403,
        "FORBIDDEN",
    )
    # Without a principal, each sees their own corporations' mandates.
    assert client.get("/api/v1/mandates", headers=bearer(tanaka.token)).get_json()["total"] == 0
    mine = client.get("/api/v1/mandates", headers=bearer(yamada.token)).get_json()
    assert [m["id"] for m in mine["items"]] == [root["id"]]
    problem(
        client.get("/api/v1/mandates/not-a-uuid", headers=bearer(yamada.token)),
        404,
        "MANDATE_NOT_FOUND",
    )
    problem(client.get("/api/v1/mandates"), 401, "UNAUTHENTICATED")


def test_listing_by_grantee_and_status(client, hsm, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada)
    child = sub_grant(client, hsm, a, root, yamada, suzuki)
    rep = login(client, a.representative)

    def ids(**query):
        response = client.get("/api/v1/mandates", headers=bearer(rep), query_string=query)
        assert response.status_code == 200, response.get_json()
        return [m["id"] for m in response.get_json()["items"]]

    assert ids(grantee=suzuki.person_id) == [child["id"]]
    assert ids(grantee=yamada.sha256) == [root["id"]]
    assert set(ids(status="active")) == {root["id"], child["id"]}
    client.post(f"/api/v1/mandates/{child['id']}/revocation", json={}, headers=bearer(rep))
    assert ids(status="active") == [root["id"]]
    assert ids(status="revoked") == [child["id"]]


def test_listing_by_action_and_procuring_entity(client, hsm, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    # Bids for ENTITY only; quotes for any procuring entity (null in the scope).
    bids = root_grant(client, a, yamada, scope(actions=frozenset({BID})))
    quotes = root_grant(
        client, a, suzuki, scope(actions=frozenset({QUOTE}), procuring_entities=None)
    )
    rep = login(client, a.representative)

    def ids(**query):
        response = client.get("/api/v1/mandates", headers=bearer(rep), query_string=query)
        assert response.status_code == 200, response.get_json()
        return {m["id"] for m in response.get_json()["items"]}

    assert ids(action=BID) == {bids["id"]}
    assert ids(action=QUOTE) == {quotes["id"]}
    assert ids(procuring_entity=ENTITY) == {bids["id"], quotes["id"]}  # "any" covers it
    assert ids(procuring_entity="他の機関") == {quotes["id"]}
    assert ids(action=BID, procuring_entity="他の機関") == set()
    assert ids(action="contract") == set()
    # Not an action at all: refused as the domain refuses it, as the document says.
    problem(
        client.get("/api/v1/mandates", headers=bearer(rep), query_string={"action": "0"}),
        422,
        "SCOPE_ACTION_UNKNOWN",
    )


def test_every_mandate_endpoint_refuses_anonymous_callers(client):
    some = "00000000-0000-4000-8000-000000000000"
    for method, path in (
        ("POST", "/api/v1/mandates"),
        ("GET", "/api/v1/mandates"),
        ("GET", f"/api/v1/mandates/{some}"),
        ("POST", f"/api/v1/mandates/{some}/revocation"),
        ("GET", f"/api/v1/mandates/{some}/chain"),
        ("GET", f"/api/v1/mandates/{some}/document"),
        ("GET", "/api/v1/authority"),
    ):
        problem(
            client.open(path, method=method, json={} if method == "POST" else None),
            401,
            "UNAUTHENTICATED",
        )


def test_malformed_queries_get_problems(client, world):
    a, yamada = world["a"], world["yamada"]
    token = bearer(login(client, a.representative))
    for query in (
        {"action": "bid"},  # no principal
        {"principal": a.corporate_number},  # no action
        {
            "principal": a.corporate_number,
            "action": "bid",
            "at": "2026-11-21T10:00:00",
        },  # a time without its zone
        {"principal": a.corporate_number, "action": "bid", "amount_jpy": -1},
        {"principal": "123", "action": "bid"},
    ):
        problem(
            client.get("/api/v1/authority", query_string=query, headers=token),
            422,
            "VALIDATION_FAILED",
        )
    problem(
        client.get(
            "/api/v1/authority",
            headers=token,
            query_string={"principal": a.corporate_number, "action": "e-application:*"},
        ),
        422,
        "SCOPE_INVALID",
    )
    problem(
        client.get("/api/v1/mandates", query_string={"status": "lost"}, headers=token),
        422,
        "VALIDATION_FAILED",
    )
    # Nothing was written by any of the refused grants above or here.
    data = instruction(a, yamada, scope())
    problem(
        post_grant(client, yamada.token, data, b"\x30\x03\x02\x01\x00", yamada),
        422,
        "INSTRUCTION_SIGNATURE_INVALID",
    )
    assert client.get("/api/v1/mandates", headers=token).get_json()["total"] == 0
