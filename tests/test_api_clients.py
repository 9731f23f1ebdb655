"""API clients (relying parties) read only the corporations they are registered for
(issue 9.14): named 法人番号, or every corporation when an administrator registers
the client so — and the client's representation says which. Through HTTP, for every
endpoint a client scope reaches: another corporation's data is invisible (404, or
left out of a listing) and naming that corporation explicitly is 403 FORBIDDEN."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from helpers_auth import bearer, enrolled_employee, login, new_corporation, problem
from helpers_mandates import ENTITY, new_employee, root_grant
from sqlalchemy import text

from app.audit_trail.log import AuditLog
from app.database import make_engine
from app.people.models import Role, RoleAssignment

ALL_SCOPES = [
    "employees:read",
    "mandates:read",
    "authority:read",
    "signatures:verify",
    "audit:read",
]


def basic(created: dict) -> dict[str, str]:
    pair = f"{created['client_id']}:{created['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


@pytest.fixture
def world(client, app, hsm, pki) -> dict:
    """Corporations A and B, each with an employee holding a mandate; an administrator."""
    a, b = new_corporation(pki, name="株式会社エー"), new_corporation(pki, name="株式会社ビー")
    yamada = new_employee(client, hsm, pki, a, "山田\u3000太郎")
    tanaka = new_employee(client, hsm, pki, b, "田中\u3000三郎")
    admin_card, admin_person, _ = enrolled_employee(client, pki, a, "管理\u3000者")
    with app.extensions["dairi"].session_factory() as session, session.begin():
        session.add(
            RoleAssignment(person_id=admin_person, role=Role.ADMINISTRATOR.value, granted_by="test")
        )
    return {
        "a": a.corporate_number,
        "b": b.corporate_number,
        "a_mandate": root_grant(client, a, yamada)["id"],
        "b_mandate": root_grant(client, b, tanaka)["id"],
        "admin": bearer(login(client, admin_card.authentication)),
        "a_rep": bearer(login(client, a.representative)),
    }


def register(client, world, **body) -> dict:
    body.setdefault("name", "調達システム")
    body.setdefault("scopes", ALL_SCOPES)
    response = client.post("/api/v1/clients", headers=world["admin"], json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_client_for_one_corporation_reads_only_that_corporation(client, world):
    a, b = world["a"], world["b"]
    created = register(client, world, corporations=[a])
    assert created["corporations"] == [a] and created["all_corporations"] is False
    headers = basic(created)
    me = client.get("/api/v1/me", headers=headers).get_json()["caller"]
    assert me["corporations"] == [a] and me["all_corporations"] is False

    # Corporations and their staff: named explicitly, so another's is 403.
    assert client.get(f"/api/v1/corporations/{a}", headers=headers).status_code == 200
    problem(client.get(f"/api/v1/corporations/{b}", headers=headers), 403, "FORBIDDEN")
    staff = client.get(f"/api/v1/corporations/{a}/employees", headers=headers)
    assert [p["name"] for p in staff.get_json()["items"]] == ["山田\u3000太郎", "管理\u3000者"]
    problem(client.get(f"/api/v1/corporations/{b}/employees", headers=headers), 403, "FORBIDDEN")

    # The mandate listing leaves B out; naming B is 403.
    listed = client.get("/api/v1/mandates", headers=headers).get_json()
    assert [m["id"] for m in listed["items"]] == [world["a_mandate"]]
    assert listed["total"] == 1
    problem(client.get(f"/api/v1/mandates?principal={b}", headers=headers), 403, "FORBIDDEN")
    assert client.get(f"/api/v1/mandates?principal={a}", headers=headers).get_json()["total"] == 1

    # One mandate, its chain and its document: B's are as if they did not exist.
    for suffix in ("", "/chain", "/document"):
        assert (
            client.get(
                f"/api/v1/mandates/{world['a_mandate']}{suffix}", headers=headers
            ).status_code
            == 200
        ), suffix
        problem(
            client.get(f"/api/v1/mandates/{world['b_mandate']}{suffix}", headers=headers),
            404,
            "MANDATE_NOT_FOUND",
        )

    # Who may act: the principal is named, so B is 403.
    found = client.get(
        f"/api/v1/authority?principal={a}&action=bid&procuring_entity=" + quote(ENTITY),
        headers=headers,
    )
    assert [x["mandate_id"] for x in found.get_json()["authorities"]] == [world["a_mandate"]]
    problem(
        client.get(f"/api/v1/authority?principal={b}&action=bid", headers=headers), 403, "FORBIDDEN"
    )


def test_a_client_for_several_corporations_reads_each(client, world):
    a, b = world["a"], world["b"]
    headers = basic(register(client, world, corporations=[b, a, a]))
    listed = client.get("/api/v1/mandates", headers=headers).get_json()
    assert sorted(m["id"] for m in listed["items"]) == sorted(
        [world["a_mandate"], world["b_mandate"]]
    )
    assert client.get(f"/api/v1/corporations/{b}/employees", headers=headers).status_code == 200
    created = client.get("/api/v1/clients", headers=world["admin"]).get_json()["items"][0]
    assert created["corporations"] == sorted([a, b])


def test_a_client_for_all_corporations_is_shown_as_such(client, world):
    created = register(client, world, all_corporations=True)
    assert created["all_corporations"] is True and created["corporations"] == []
    headers = basic(created)
    listed = client.get("/api/v1/mandates", headers=headers).get_json()
    assert listed["total"] == 2
    for cn in (world["a"], world["b"]):
        assert (
            client.get(f"/api/v1/corporations/{cn}/employees", headers=headers).status_code == 200
        )
    assert (
        client.get(f"/api/v1/mandates/{world['b_mandate']}/document", headers=headers).status_code
        == 200
    )
    me = client.get("/api/v1/me", headers=headers).get_json()["caller"]
    assert me["all_corporations"] is True
    listed = client.get("/api/v1/clients", headers=world["admin"]).get_json()["items"]
    assert [(c["all_corporations"], c["corporations"]) for c in listed] == [(True, [])]


def test_a_registration_names_its_corporations_or_all_of_them(client, world):
    admin = world["admin"]
    body = {"name": "調達システム", "scopes": ["mandates:read"]}
    for extra in (
        {},
        {"corporations": []},
        {"all_corporations": False},
        {"corporations": [world["a"]], "all_corporations": True},
        {"corporations": ["12345"]},
    ):
        problem(
            client.post("/api/v1/clients", headers=admin, json={**body, **extra}),
            422,
            "VALIDATION_FAILED",
        )
    problem(
        client.post(
            "/api/v1/clients",
            headers=admin,
            json={**body, "corporations": [world["a"], "9234567890123"]},
        ),
        404,
        "CORPORATION_NOT_FOUND",
    )
    problem(
        client.post(
            "/api/v1/clients",
            headers=admin,  # wrong check digit
            json={**body, "corporations": [world["a"], "1234567890123"]},
        ),
        422,
        "CORPORATE_NUMBER_INVALID",
    )
    # Only an administrator registers clients (representatives cannot, today).
    problem(
        client.post(
            "/api/v1/clients", headers=world["a_rep"], json={**body, "corporations": [world["a"]]}
        ),
        403,
        "FORBIDDEN",
    )
    assert client.get("/api/v1/clients", headers=admin).get_json()["items"] == []


def test_the_registration_is_audited_with_its_corporations(client, app, world):
    created = register(client, world, corporations=[world["a"]])
    register(client, world, all_corporations=True)
    with app.extensions["dairi"].session_factory() as session:
        events = [
            r.event()
            for r in AuditLog(session).events()
            if r.event().tag == "client:registration:created"
        ]
    assert events[0].subject == created["client_id"]
    assert events[0].details["corporations"] == [world["a"]]
    assert events[0].details["all_corporations"] is False
    assert events[1].details["all_corporations"] is True


def test_clients_registered_before_the_change_keep_reading_everything(db_url):
    """0008 marks existing clients (registered by administrators when every client was
    global) as registered for all corporations, so they keep working, and say so."""
    from alembic import command

    from app.migrate import alembic_config

    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            config = alembic_config(db_url)
            config.attributes["connection"] = connection
            command.upgrade(config, "0007")
            connection.execute(
                text(
                    "INSERT INTO api_clients (id, client_id, secret_sha256, name, scopes, "
                    "created_by, created_at) VALUES ('c1', 'dairi_client_old', :h, 'old', "
                    "'mandates:read', 'person:x', CURRENT_TIMESTAMP)"
                ),
                {"h": "0" * 64},
            )
            command.upgrade(config, "0008")
            flag = connection.execute(
                text("SELECT all_corporations FROM api_clients WHERE id = 'c1'")
            ).scalar_one()
            assert bool(flag) is True
            command.downgrade(config, "0007")
            command.upgrade(config, "head")
    finally:
        engine.dispose()
