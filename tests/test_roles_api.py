"""Who may call what: every protected endpoint, its roles, and 401/403 for the rest —
including an employee or representative of one corporation asking about another."""

from __future__ import annotations

import base64

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from helpers_auth import (
    PROBLEM,
    bearer,
    enrolled_employee,
    invite,
    login,
    new_card,
    new_corporation,
)

from app.people.models import Person, Role, RoleAssignment

# (method, path template, JSON body) for every endpoint that needs credentials.
PROTECTED = [
    ("GET", "/api/v1/me", None),
    ("POST", "/api/v1/auth/logout", None),
    ("GET", "/api/v1/corporations/{cn}", None),
    ("GET", "/api/v1/corporations/{cn}/employees", None),
    ("POST", "/api/v1/corporations/{cn}/invitations", {"name": "山田\u3000花子"}),
    ("POST", "/api/v1/role-assignments", {"person_id": "x", "role": "auditor"}),
    ("DELETE", "/api/v1/role-assignments/x", None),
    ("POST", "/api/v1/clients", {"name": "調達システム", "scopes": ["employees:read"]}),
    ("GET", "/api/v1/clients", None),
    ("DELETE", "/api/v1/clients/x", None),
    ("PUT", "/api/v1/corporations/{cn}/joint-representation", {"representatives": 2}),
]


def call(client, method, path, body=None, headers=None):
    return client.open(path, method=method, json=body, headers=headers or {})


def assert_problem(response, status, code):
    assert response.status_code == status, (response.status_code, response.get_json())
    assert response.content_type == PROBLEM
    assert response.get_json()["code"] == code


@pytest.fixture
def world(client, app, pki):
    """Two corporations A and B, each with a representative and an employee; an administrator."""
    a, b = new_corporation(pki, name="株式会社エー"), new_corporation(pki, name="株式会社ビー")
    _, a_person, a_employee = enrolled_employee(client, pki, a, "山田\u3000太郎")
    _, _, b_employee = enrolled_employee(client, pki, b, "田中\u3000三郎")
    admin_card, admin_person, _ = enrolled_employee(client, pki, a, "管理\u3000者")
    with app.extensions["dairi"].session_factory() as session, session.begin():
        session.add(
            RoleAssignment(person_id=admin_person, role=Role.ADMINISTRATOR.value, granted_by="test")
        )
    return {
        "a": a,
        "b": b,
        "a_person": a_person,
        "a_employee": a_employee,
        "b_employee": b_employee,
        "a_rep": login(client, a.representative),
        "b_rep": login(client, b.representative),
        "admin": login(client, admin_card.authentication),
    }


def test_every_protected_endpoint_refuses_anonymous_callers(client, pki):
    cn = new_corporation(pki).corporate_number
    for method, path, body in PROTECTED:
        assert_problem(call(client, method, path.format(cn=cn), body), 401, "UNAUTHENTICATED")
    response = client.get("/api/v1/me", headers={"Authorization": "Bearer nonsense"})
    assert_problem(response, 401, "TOKEN_INVALID")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_employees_and_representatives_stay_inside_their_corporation(client, world):
    a, b = world["a"].corporate_number, world["b"].corporate_number
    for token in (world["a_employee"], world["a_rep"]):
        assert (
            client.get(f"/api/v1/corporations/{a}/employees", headers=bearer(token)).status_code
            == 200
        )
        for path in (f"/api/v1/corporations/{b}", f"/api/v1/corporations/{b}/employees"):
            assert_problem(client.get(path, headers=bearer(token)), 403, "FORBIDDEN")
    assert_problem(
        client.post(
            f"/api/v1/corporations/{b}/invitations",
            json={"name": "x"},
            headers=bearer(world["a_rep"]),
        ),
        403,
        "FORBIDDEN",
    )
    names = [
        p["name"]
        for p in client.get(
            f"/api/v1/corporations/{a}/employees", headers=bearer(world["a_rep"])
        ).get_json()["items"]
    ]
    assert names == ["山田\u3000太郎", "管理\u3000者"]


def test_employees_cannot_invite_or_administer(client, world):
    a = world["a"].corporate_number
    token = bearer(world["a_employee"])
    assert_problem(
        client.post(f"/api/v1/corporations/{a}/invitations", json={"name": "x"}, headers=token),
        403,
        "FORBIDDEN",
    )
    for method, path, body in PROTECTED[5:]:
        assert_problem(call(client, method, path, body, token), 403, "FORBIDDEN")
    for method, path, body in PROTECTED[5:]:
        assert_problem(call(client, method, path, body, bearer(world["a_rep"])), 403, "FORBIDDEN")


def test_administrators_grant_the_auditor_role_which_reads_every_corporation(client, app, world):
    admin = bearer(world["admin"])
    b = world["b"].corporate_number
    response = client.post(
        "/api/v1/role-assignments",
        headers=admin,
        json={"person_id": world["a_person"], "role": "auditor"},
    )
    assert response.status_code == 201, response.get_json()
    auditor = bearer(world["a_employee"])  # the same login: roles apply per request
    assert client.get(f"/api/v1/corporations/{b}/employees", headers=auditor).status_code == 200
    assert client.get("/api/v1/clients", headers=auditor).status_code == 200
    assert_problem(
        client.post(
            "/api/v1/clients", headers=auditor, json={"name": "x", "scopes": ["employees:read"]}
        ),
        403,
        "FORBIDDEN",
    )
    assert_problem(
        client.post(
            "/api/v1/role-assignments",
            headers=admin,
            json={"person_id": world["a_person"], "role": "auditor"},
        ),
        409,
        "ROLE_ALREADY_ASSIGNED",
    )
    # Taking the role away is effective at once.
    assignment = response.get_json()["id"]
    assert client.delete(f"/api/v1/role-assignments/{assignment}", headers=admin).status_code == 204
    assert_problem(
        client.get(f"/api/v1/corporations/{b}/employees", headers=auditor), 403, "FORBIDDEN"
    )
    assert_problem(
        client.post(
            "/api/v1/role-assignments",
            headers=admin,
            json={"person_id": world["a_person"], "role": "employee"},
        ),
        422,
        "VALIDATION_FAILED",
    )


def test_api_clients_read_within_their_scopes_with_hashed_secrets(client, app, world):
    admin = bearer(world["admin"])
    a = world["a"].corporate_number
    created = client.post(
        "/api/v1/clients",
        headers=admin,
        json={"name": "調達システム", "scopes": ["employees:read"], "corporations": [a]},
    )
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    secret, client_id = body["client_secret"], body["client_id"]
    basic = {
        "Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    }
    assert client.get(f"/api/v1/corporations/{a}/employees", headers=basic).status_code == 200
    assert client.get("/api/v1/me", headers=basic).get_json()["caller"]["scopes"] == [
        "employees:read"
    ]
    # Out of scope, wrong secret, revoked.
    assert_problem(client.get("/api/v1/clients", headers=basic), 403, "FORBIDDEN")
    wrong = {"Authorization": "Basic " + base64.b64encode(f"{client_id}:nope".encode()).decode()}
    assert_problem(client.get("/api/v1/me", headers=wrong), 401, "CLIENT_CREDENTIALS_INVALID")
    assert_problem(
        client.get("/api/v1/me", headers={"Authorization": "Basic %%%"}),
        401,
        "CLIENT_CREDENTIALS_INVALID",
    )
    listed = client.get("/api/v1/clients", headers=admin).get_json()["items"]
    assert [c["client_secret"] for c in listed] == [None]
    with app.extensions["dairi"].session_factory() as session:
        from app.people.models import ApiClient

        stored = session.query(ApiClient).one()
        assert secret not in stored.secret_sha256 and len(stored.secret_sha256) == 64
    assert client.delete(f"/api/v1/clients/{client_id}", headers=admin).status_code == 204
    assert_problem(client.get("/api/v1/me", headers=basic), 401, "CLIENT_CREDENTIALS_INVALID")


def test_the_openapi_document_states_the_roles_of_each_endpoint(client):
    spec = client.get("/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/corporations/{corporate_number}/invitations"]["post"]
    assert "Roles: representative (of that corporation), administrator." in operation["description"]


def test_the_first_administrator_is_created_from_the_command_line(cli_env, app, pki, tmp_path):
    from app.cli.main import main

    card = new_card(pki, "初代\u3000管理者")
    paths = {}
    for role in ("authentication", "signing"):
        paths[role] = tmp_path / f"{role}.pem"
        paths[role].write_bytes(
            getattr(card, role).certificate.public_bytes(serialization.Encoding.PEM)
        )
    args = [
        "admin",
        "create",
        "--auth-cert",
        str(paths["authentication"]),
        "--sign-cert",
        str(paths["signing"]),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "初代\u3000管理者" in result.output
    client = app.test_client()
    token = login(client, card.authentication)
    assert client.get("/api/v1/me", headers=bearer(token)).get_json()["caller"]["roles"] == [
        "administrator"
    ]
    # The same certificates given the other way round are refused with a code.
    swapped = [
        "admin",
        "create",
        "--auth-cert",
        str(paths["signing"]),
        "--sign-cert",
        str(paths["authentication"]),
    ]
    result = CliRunner().invoke(main, swapped)
    assert result.exit_code == 2 and "CERTIFICATE_POLICY_MISMATCH" in result.output
    with app.extensions["dairi"].session_factory() as session:
        assert session.query(Person).count() == 1


def test_an_invitation_for_a_stranger_or_unknown_corporation_is_refused(client, world):
    a_rep = bearer(world["a_rep"])
    a = world["a"].corporate_number
    assert_problem(
        client.post(
            f"/api/v1/corporations/{a}/invitations",
            headers=a_rep,
            json={"person_id": "no-such-person"},
        ),
        404,
        "PERSON_NOT_FOUND",
    )
    assert_problem(
        client.post(f"/api/v1/corporations/{a}/invitations", headers=a_rep, json={}),
        422,
        "VALIDATION_FAILED",
    )
    admin = bearer(world["admin"])
    assert_problem(
        client.post(
            "/api/v1/corporations/9234567890123/invitations", headers=admin, json={"name": "x"}
        ),
        404,
        "CORPORATION_NOT_FOUND",
    )
    assert_problem(
        client.post(
            "/api/v1/corporations/1234567890123/invitations", headers=admin, json={"name": "x"}
        ),
        422,
        "CORPORATE_NUMBER_INVALID",
    )
    assert invite(client, world["admin"], a, name="新人\u3000一")["rebind"] is False
