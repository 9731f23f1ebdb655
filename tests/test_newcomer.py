"""A newcomer's stumbles (issue 10 item 10): the served address, the chain's reasons,
a bad 法人番号 in a query, the 電子委任状's times, and the OpenAPI security schemes."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import requests
from helpers_auth import bearer, login, new_corporation
from helpers_mandates import new_employee, root_grant, sub_grant
from live_server import LiveServer

# -- 1. public_base_url follows dairi serve --port --------------------------------


def test_dairi_serve_port_is_the_service_a_challenge_names(app, app_settings, pki):
    """Without DAIRI_PUBLIC_BASE_URL the challenge names the address actually served,
    not the configuration's default port."""
    with LiveServer(app_settings, workers=1, set_public_base_url=False) as server:
        response = requests.post(server.url + "/api/v1/auth/challenges", timeout=30)
        log = server.log()
    assert response.status_code == 201, (response.text, log[-2000:])
    signed = json.loads(base64.b64decode(response.json()["to_sign"]))
    assert signed["service"] == f"http://127.0.0.1:{server.port}"


def test_an_explicit_public_base_url_wins_over_the_port(app, app_settings, pki):
    """A deployment behind a proxy names its public address; serve must not replace it."""
    public = "https://dairi.example.jp"
    with LiveServer(
        app_settings, workers=1, set_public_base_url=False, env={"DAIRI_PUBLIC_BASE_URL": public}
    ) as server:
        response = requests.post(server.url + "/api/v1/auth/challenges", timeout=30)
    assert response.status_code == 201, response.text
    signed = json.loads(base64.b64decode(response.json()["to_sign"]))
    assert signed["service"] == public


# -- 2. /chain's top-level reasons say why it does not hold --------------------------


@pytest.fixture
def world(client, hsm, pki):
    a = new_corporation(pki, name="株式会社大理建設")
    return {
        "a": a,
        "yamada": new_employee(client, hsm, pki, a, "山田\u3000太郎"),
        "suzuki": new_employee(client, hsm, pki, a, "鈴木\u3000花子"),
    }


def _revoke(client, corp, mandate: dict) -> str:
    rep = login(client, corp.representative)
    assert (
        client.post(
            f"/api/v1/mandates/{mandate['id']}/revocation", json={}, headers=bearer(rep)
        ).status_code
        == 200
    )
    return rep


def test_a_revoked_roots_chain_names_why_it_does_not_hold(client, world):
    a, yamada = world["a"], world["yamada"]
    root = root_grant(client, a, yamada)
    held = client.get(
        f"/api/v1/mandates/{root['id']}/chain", headers=bearer(yamada.token)
    ).get_json()
    assert (held["holds"], held["reasons"]) == (True, [])
    rep = _revoke(client, a, root)
    of_root = client.get(f"/api/v1/mandates/{root['id']}/chain", headers=bearer(rep)).get_json()
    assert of_root["holds"] is False
    assert of_root["reasons"] == ["MANDATE_REVOKED"], of_root


def test_a_chain_under_a_revoked_root_names_every_hops_reason(client, hsm, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada)
    child = sub_grant(client, hsm, a, root, yamada, suzuki)
    _revoke(client, a, root)
    of_child = client.get(
        f"/api/v1/mandates/{child['id']}/chain", headers=bearer(suzuki.token)
    ).get_json()
    assert of_child["holds"] is False
    # Every hop's reason, once each, root first: a caller need not walk the hops.
    assert of_child["reasons"] == ["MANDATE_REVOKED", "PARENT_INVALID"], of_child


# -- 3. a bad 法人番号 in a query is CORPORATE_NUMBER_INVALID, before permission ------


def _wrong_check_digit(number: str) -> str:
    """The same 会社法人等番号 with another check digit: 13 digits, not a 法人番号."""
    return f"{(int(number[0]) % 9) + 1}{number[1:]}"


def _invalid(response) -> None:
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["code"] == "CORPORATE_NUMBER_INVALID", response.get_json()


def test_a_wrong_check_digit_in_a_query_is_corporate_number_invalid(client, world):
    a, yamada = world["a"], world["yamada"]
    wrong = _wrong_check_digit(a.corporate_number)
    assert wrong != a.corporate_number and len(wrong) == 13
    headers = bearer(yamada.token)
    _invalid(
        client.get(
            "/api/v1/authority", headers=headers, query_string={"principal": wrong, "action": "bid"}
        )
    )
    _invalid(client.get("/api/v1/mandates", headers=headers, query_string={"principal": wrong}))
    _invalid(client.get(f"/api/v1/corporations/{wrong}", headers=headers))
    _invalid(client.get(f"/api/v1/corporations/{wrong}/employees", headers=headers))
    # The right number still answers; another well-formed corporation is still 403.
    assert (
        client.get(f"/api/v1/corporations/{a.corporate_number}", headers=headers).status_code == 200
    )


def test_a_malformed_corporate_number_in_the_path_is_invalid_not_forbidden(client, world):
    headers = bearer(world["yamada"].token)
    for bad in ("123", "12345678901234", "abcdefghijklm"):
        _invalid(client.get(f"/api/v1/corporations/{bad}", headers=headers))


# -- 4. every time in the 電子委任状 is in 日本時間 ------------------------------------


def _pdf_text(pdf: bytes) -> str:
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "-", "-"],
        input=pdf,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()


def test_the_revocation_time_in_the_document_is_japan_time(client, world):
    a, yamada = world["a"], world["yamada"]
    root = root_grant(client, a, yamada)
    rep = login(client, a.representative)
    revoked = client.post(f"/api/v1/mandates/{root['id']}/revocation", json={}, headers=bearer(rep))
    assert revoked.status_code == 200
    revoked_at = datetime.fromisoformat(revoked.get_json()["revoked_at"])
    response = client.get(f"/api/v1/mandates/{root['id']}/document", headers=bearer(rep))
    assert response.status_code == 200
    text = _pdf_text(response.data)
    # Japan is UTC+9 all year (no summer time).
    jst = (revoked_at.astimezone(UTC) + timedelta(hours=9)).replace(tzinfo=None)
    shown = f"{jst.year}年{jst.month:02d}月{jst.day:02d}日 {jst.hour:02d}:{jst.minute:02d}"
    status_line = next(line for line in text.splitlines() if line.startswith("状態"))
    assert shown in status_line and "日本時間" in status_line, status_line
    assert revoked_at.astimezone(UTC).strftime("%Y-%m-%dT") not in text, text
    assert "+00:00" not in text, text


# -- 5. the OpenAPI document declares how to authenticate -----------------------------


def test_openapi_declares_bearer_and_basic_and_each_operation_names_its_own(client):
    spec = client.get("/openapi.json").get_json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["type"] == "http"
    assert schemes["bearerAuth"]["scheme"].lower() == "bearer"
    assert schemes["basicAuth"]["type"] == "http"
    assert schemes["basicAuth"]["scheme"].lower() == "basic"
    operations = {
        (method.upper(), path): op
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "delete"}
    }
    names = {
        (m, p): {name for requirement in op.get("security", []) for name in requirement}
        for (m, p), op in operations.items()
    }
    # Persons sign in for a bearer token; API clients send Basic credentials.
    assert names[("GET", "/api/v1/me")] >= {"bearerAuth"}
    assert names[("GET", "/api/v1/authority")] == {"bearerAuth", "basicAuth"}
    assert names[("POST", "/api/v1/mandates")] == {"bearerAuth"}
    # Open to anyone: no credentials asked for.
    assert names[("POST", "/api/v1/auth/challenges")] == set()
    assert names[("GET", "/healthz")] == set()
    # Cross-check against the service itself: every operation that turns an anonymous
    # caller away with 401 declares a scheme.
    for (method, path), declared in names.items():
        if method != "GET" or "{" in path:
            continue
        status = client.get(path).status_code
        assert (status == 401) == bool(declared), (path, status, declared)
