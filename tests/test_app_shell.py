"""The service shell: probes, problem+json errors, the OpenAPI document and its UI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import marshmallow as ma
from flask import Flask, request
from flask_smorest import Api, Blueprint
from sqlalchemy import func, select

from app.credentials.models import Credential
from app.factory import create_app
from app.http.problems import ProblemError
from app.http.request_scope import get_session
from app.migrate import migrate
from app.settings import Settings
from hsm import Hsm, KeyNotFound, PinIncorrect
from hsm.softhsm import ensure_softhsm_token, write_softhsm_conf

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROBLEM = "application/problem+json"
SECRET = "s3cr3t-detail-0451"


class NameSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))


def _probe_blueprint() -> Blueprint:
    """Test-only routes that fail in each way a real view can."""
    blp = Blueprint("probe", __name__, url_prefix="/_probe")

    @blp.route("/boom")
    def boom() -> str:
        raise RuntimeError(SECRET)

    @blp.route("/echo", methods=["POST"])
    def echo() -> dict[str, int]:
        return {"received": len(request.get_data())}

    @blp.route("/problem")
    def problem() -> str:
        raise ProblemError("CREDENTIAL_NAME_TAKEN", detail="the name is taken", name="x")

    @blp.route("/key-not-found")
    def key_not_found() -> str:
        raise KeyNotFound("no private key dairi-test/00/v1 on the token")

    @blp.route("/pin-incorrect")
    def pin_incorrect() -> str:
        raise PinIncorrect(f"token refused {SECRET}")

    @blp.route("/validate", methods=["POST"])
    @blp.arguments(NameSchema)
    @blp.response(200, NameSchema)
    def validate(data: dict[str, str]) -> dict[str, str]:
        return data

    @blp.route("/credentials", methods=["POST"])
    def add_credential() -> dict[str, str]:
        session = get_session()
        session.add(_credential(request.args["name"]))
        if request.args.get("commit"):
            session.commit()
            return {"status": "committed"}
        session.flush()
        raise RuntimeError(SECRET)

    return blp


def _credential(name: str) -> Credential:
    return Credential(
        name=name,
        algorithm="ec-p256",
        token_label="dairi-test",
        key_id=os.urandom(16).hex(),
        key_version=1,
        subject="CN=" + name,
    )


def _with_probes(app: Flask) -> Flask:
    api: Api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    api.register_blueprint(_probe_blueprint())
    return app


def _assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["code"] == code
    # The type is the code's entry in the catalogue (test_problems_catalogue.py follows it).
    assert body["type"].startswith(("http://", "https://"))
    assert body["type"].endswith("/api/v1/problems/" + code)
    assert body["title"]
    return body


# -- probes --------------------------------------------------------------------


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_checks_database_and_hsm(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"database": "ok", "hsm": "ok"}}


def test_readyz_names_a_missing_token(app_settings: Settings):
    migrate(app_settings.database_url)  # readiness writes to a migrated database
    app = create_app(app_settings.replace(hsm_token_label="no-such-token"))
    try:
        body = _assert_problem(app.test_client().get("/readyz"), 503, "NOT_READY")
    finally:
        app.extensions["dairi"].hsm.close()
        app.extensions["dairi"].engine.dispose()
    assert body["checks"] == {"database": "ok", "hsm": "HSM_UNAVAILABLE"}


def test_readyz_names_an_unreachable_database(app_settings: Settings, hsm: Hsm, tmp_path: Path):
    # A directory is not a database file: SQLite cannot open it.
    app = create_app(app_settings.replace(database_url=f"sqlite:///{tmp_path}"), hsm=hsm)
    try:
        body = _assert_problem(app.test_client().get("/readyz"), 503, "NOT_READY")
    finally:
        app.extensions["dairi"].engine.dispose()
    assert body["checks"] == {"database": "DATABASE_UNAVAILABLE", "hsm": "ok"}


_READYZ_IN_A_FRESH_PROCESS = """
import json, sys
from app.factory import create_app
from app.migrate import migrate
from app.settings import load_settings
settings = load_settings(env={}, **json.loads(sys.argv[1]))
migrate(settings.database_url)  # readiness writes to a migrated database
response = create_app(settings).test_client().get("/readyz")
print(json.dumps({"status": response.status_code, "mimetype": response.mimetype,
                  "body": response.get_json(force=True)}))
"""


def test_readyz_reports_a_wrong_pin_without_revealing_it(tmp_path: Path):
    # PKCS#11 login state belongs to the process, and this one is already logged in
    # to the test token; a wrong PIN can only be seen from a fresh process, on a
    # token of its own so that failed logins touch nothing shared.
    conf = tmp_path / "hsm" / "softhsm2.conf"
    write_softhsm_conf(conf, tmp_path / "hsm" / "tokens")
    ensure_softhsm_token(conf, "wrong-pin-test", tmp_path / "hsm" / "user-pin")
    wrong_pin = "not-the-pin-4711"  # the real one is random hex
    (tmp_path / "wrong-pin").write_text(wrong_pin + "\n")
    overrides = {
        "data_dir": str(tmp_path / "data"),
        "pki_dir": str(tmp_path / "pki"),
        "hsm_token_label": "wrong-pin-test",
        "hsm_pin_file": str(tmp_path / "wrong-pin"),
        "softhsm2_conf": str(conf),  # create_app exports it: SOFTHSM2_CONF is unset below
    }
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SOFTHSM2_CONF", "DAIRI_HSM_PIN"} and not k.startswith("DAIRI_")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_DIR), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", _READYZ_IN_A_FRESH_PROCESS, json.dumps(overrides)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 503
    assert result["mimetype"] == PROBLEM
    assert result["body"]["code"] == "NOT_READY"
    assert result["body"]["checks"] == {"database": "ok", "hsm": "HSM_PIN_INCORRECT"}
    assert wrong_pin not in json.dumps(result["body"])


# -- problem+json --------------------------------------------------------------


def test_unknown_url_is_a_not_found_problem(client):
    body = _assert_problem(client.get("/no/such/thing"), 404, "NOT_FOUND")
    assert body["instance"] == "/no/such/thing"


def test_wrong_method_is_a_method_not_allowed_problem(client):
    response = client.delete("/healthz")
    _assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["Allow"]


def test_body_over_the_limit_is_a_payload_too_large_problem(app):
    limit = 64 * 1024  # an endpoint that declares no cap of its own (app.http.edge)
    client = _with_probes(app).test_client()
    assert client.post("/_probe/echo", data=b"x" * limit).get_json() == {"received": limit}
    _assert_problem(client.post("/_probe/echo", data=b"x" * (limit + 1)), 413, "PAYLOAD_TOO_LARGE")


def test_unhandled_exception_is_an_internal_error_without_its_text(app, caplog):
    response = _with_probes(app).test_client().get("/_probe/boom")
    body = _assert_problem(response, 500, "INTERNAL_ERROR")
    assert SECRET not in response.get_data(as_text=True)
    assert "detail" not in body
    assert "Traceback" not in response.get_data(as_text=True)
    assert SECRET in caplog.text  # logged for the operator


def test_problem_error_carries_its_members(app):
    body = _assert_problem(
        _with_probes(app).test_client().get("/_probe/problem"), 409, "CREDENTIAL_NAME_TAKEN"
    )
    assert body["detail"] == "the name is taken"
    assert body["name"] == "x"


def test_domain_errors_map_to_statuses(app):
    client = _with_probes(app).test_client()
    body = _assert_problem(client.get("/_probe/key-not-found"), 404, "HSM_KEY_NOT_FOUND")
    assert body["detail"].startswith("no private key")
    response = client.get("/_probe/pin-incorrect")
    body = _assert_problem(response, 503, "HSM_PIN_INCORRECT")
    assert "detail" not in body
    assert SECRET not in response.get_data(as_text=True)


def test_validation_failure_lists_field_messages(app):
    client = _with_probes(app).test_client()
    body = _assert_problem(client.post("/_probe/validate", json={}), 422, "VALIDATION_FAILED")
    assert "name" in body["errors"]["json"]
    response = client.post("/_probe/validate", json={"name": "ok"})
    assert response.status_code == 200
    assert response.get_json() == {"name": "ok"}


def test_request_session_rolls_back_on_error_and_commits_explicitly(app):
    client = _with_probes(app).test_client()
    _assert_problem(client.post("/_probe/credentials?name=lost"), 500, "INTERNAL_ERROR")
    assert client.post("/_probe/credentials?name=kept&commit=1").status_code == 200
    with app.extensions["dairi"].session_factory() as session:
        names = session.scalars(select(Credential.name)).all()
        assert names == ["kept"]
        assert session.scalar(select(func.count()).select_from(Credential)) == 1


# -- OpenAPI and docs ----------------------------------------------------------


def test_openapi_document_lists_the_probes(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = json.loads(response.get_data(as_text=True))
    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["title"] == "dairi"
    assert {"/healthz", "/readyz"} <= set(spec["paths"])
    not_ready = spec["paths"]["/readyz"]["get"]["responses"]["503"]
    assert PROBLEM in not_ready["content"]
    assert PROBLEM in spec["components"]["responses"]["DEFAULT_ERROR"]["content"]


def test_docs_page_uses_local_assets_only(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "http://" not in page and "https://" not in page
    for asset in (
        "/docs/assets/swagger-ui.css",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui-standalone-preset.js",
        "/docs/swagger-initializer.js",
    ):
        assert f'"{asset}"' in page
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert served.data
    assert '"/openapi.json"' in client.get("/docs/swagger-initializer.js").get_data(as_text=True)
    _assert_problem(client.get("/docs/assets/../settings.py"), 404, "NOT_FOUND")
