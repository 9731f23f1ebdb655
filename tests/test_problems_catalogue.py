"""The error catalogue (issue 10 item 4): every code dairi answers with is defined once,
with its status and a description, published at /api/v1/problems and in /docs, and
the ``type`` of every problem document resolves to its entry."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask
from flask_smorest import Api, Blueprint
from werkzeug.exceptions import default_exceptions

from app.http.problems import HTTP_ERROR_CODES, ProblemError, problem_type
from dairi import DairiError
from dairi.problems import CATALOGUE, UnknownProblemCode, problem
from delegation.certificates import AttributeAuthority

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROBLEM = "application/problem+json"
# The catalogue itself (every code is written there once, so it proves no use).
CATALOGUE_MODULE = Path("dairi/problems.py")
# Every package that can raise a coded error (migrations hold no codes).
SOURCE_PACKAGES = ("app", "dairi", "hsm", "identity", "delegation", "signing", "audit", "devpki")

# Upper-case literals in the source that are not error codes: environment variables,
# WSGI keys, SQLite result names. A new one goes here; a new code goes into the catalogue.
NOT_CODES = frozenset(
    {
        "CONTENT_LENGTH",
        "HTTP_TRANSFER_ENCODING",
        "PATH_INFO",
        "REQUEST_METHOD",
        "DATABASE_URL",
        "SOFTHSM2_CONF",
        "SQLITE_CANTOPEN",
        "SQLITE_IOERR",
        "SQLITE_READONLY",
    }
)
# The shape of a code: upper-case words joined by underscores.
MULTI_WORD_CODE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
CODE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$")
# Calls whose first string argument is a code.
CODE_FIRST = {"ProblemError", "problem_response", "fail", "problem"}


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _strings(nodes: list[ast.expr]) -> list[ast.Constant]:
    return [n for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def code_literals(tree: ast.AST) -> set[tuple[str, int]]:
    """(code, line) of every error code written in a module.

    A code is any multi-word upper-case literal (outside ``__all__``, ``DAIRI_*``
    settings names and :data:`NOT_CODES`), and any upper-case literal where a code
    goes: ``code = "X"``, ``code="X"``, the first string of :data:`CODE_FIRST` calls,
    the string after an HTTP status (``_refuse(403, "FORBIDDEN")``), the second
    argument of an error's constructor (``SomeError("message", "CODE")``).
    """
    found: set[tuple[str, int]] = set()
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            skipped.update(id(c) for c in ast.walk(node.value))
    for node in ast.walk(tree):
        candidates: list[ast.Constant] = []
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "code" for t in targets) and node.value:
                candidates += _strings([node.value])
        elif isinstance(node, ast.keyword) and node.arg == "code":
            candidates += _strings([node.value])
        elif isinstance(node, ast.Call):
            name = _name(node.func)
            strings = _strings(node.args)
            if name in CODE_FIRST and strings:
                candidates.append(strings[0])
            if (
                name.endswith(("Error", "Refused", "Unavailable", "Invalid", "Malformed"))
                and len(node.args) > 1
            ):
                candidates += _strings([node.args[1]])
            for before, after in zip(node.args, node.args[1:], strict=False):
                if (
                    isinstance(before, ast.Constant)
                    and isinstance(before.value, int)
                    and 400 <= before.value < 600
                ):
                    candidates += _strings([after])
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MULTI_WORD_CODE.match(node.value)
            and id(node) not in skipped
            and not node.value.startswith("DAIRI_")
            and node.value not in NOT_CODES
        ):
            candidates.append(node)
        found.update((c.value, c.lineno) for c in candidates if CODE.match(c.value))
    return found


def source_codes() -> dict[str, list[str]]:
    """Every code literal in the service's packages: code -> ["path:line", ...]."""
    codes: dict[str, list[str]] = {}
    for package in SOURCE_PACKAGES:
        for path in sorted((PROJECT_DIR / package).rglob("*.py")):
            relative = path.relative_to(PROJECT_DIR)
            if "migrations" in path.parts or relative == CATALOGUE_MODULE:
                continue
            for code, line in code_literals(ast.parse(path.read_text(), str(path))):
                codes.setdefault(code, []).append(f"{relative}:{line}")
    return codes


# -- the catalogue itself ----------------------------------------------------------


def test_every_code_has_a_status_and_a_one_line_description():
    assert len(CATALOGUE) > 100
    for code, entry in CATALOGUE.items():
        assert entry.code == code and CODE.match(code), code
        assert 400 <= entry.status <= 599, code
        assert entry.description.strip() and "\n" not in entry.description, code
        assert entry.title and entry.title[0].isupper(), code


def test_an_uncatalogued_code_is_refused():
    with pytest.raises(UnknownProblemCode):
        problem("NO_SUCH_CODE")
    with pytest.raises(UnknownProblemCode):
        ProblemError("NO_SUCH_CODE", detail="x")


def test_every_code_literal_in_the_source_is_catalogued():
    missing = {code: where for code, where in source_codes().items() if code not in CATALOGUE}
    assert not missing, (
        "codes raised but not in dairi/problems.py CATALOGUE (add them with a status and "
        f"a description, or to NOT_CODES here if they are not error codes): {missing}"
    )


def test_every_catalogued_code_is_answered_somewhere():
    """No dead entries: each code is written in the source or is an HTTP error's code."""
    written = set(source_codes()) | set(HTTP_ERROR_CODES.values())
    assert set(CATALOGUE) - written == set()


def test_the_ast_walk_finds_codes_in_every_position():
    tree = ast.parse(
        'class E(DairiError):\n    code = "CLASS_CODE"\n'
        'raise E("message", "SECOND_ARGUMENT")\n'
        'raise ProblemError("FIRST_ARGUMENT", detail="x")\n'
        'raise _refuse(403, "FORBIDDEN", "no")\n'
        'raise AuthError("m", code="KEYWORD")\n'
        'reasons.append("VERDICT_REASON")\n'
        '__all__ = ["EXPORTED_NAME"]\n'
        'os.environ.get("DAIRI_HSM_PIN")\n'
        'environ.get("PATH_INFO")\n'
        'request("GET", url)\n'
    )
    assert {code for code, _ in code_literals(tree)} == {
        "CLASS_CODE",
        "SECOND_ARGUMENT",
        "FIRST_ARGUMENT",
        "FORBIDDEN",
        "KEYWORD",
        "VERDICT_REASON",
    }


def test_no_raise_site_states_a_status():
    """A status is written in the catalogue only: ``ProblemError(403, "X")``, the form
    from before it (still accepted while raise sites are converted), is not in the tree."""
    stated = []
    for package in SOURCE_PACKAGES:
        for path in sorted((PROJECT_DIR / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Call)
                    and _name(node.func) in CODE_FIRST
                    and node.args
                    and not (
                        isinstance(node.args[0], ast.Constant)
                        and isinstance(node.args[0].value, str)
                    )
                    and not isinstance(node.args[0], ast.Attribute | ast.Name)
                ):
                    stated.append(f"{path.relative_to(PROJECT_DIR)}:{node.lineno}")
    assert stated == []


def test_the_form_from_before_the_catalogue_must_agree_with_it():
    assert ProblemError(409, "ROLE_ALREADY_ASSIGNED", detail="held").status == 409
    with pytest.raises(ValueError, match="ROLE_ALREADY_ASSIGNED is 409"):
        ProblemError(400, "ROLE_ALREADY_ASSIGNED", detail="held")


def test_each_werkzeug_http_error_has_its_code():
    for status in default_exceptions:
        assert problem(HTTP_ERROR_CODES[status]).status == status


@pytest.mark.parametrize(
    ("code", "status"),
    [
        # Each fell back to the default 400 before the catalogue (issue 10.4); the first
        # three were mapped since, AA_KEY_MISMATCH was not.
        ("CLIENT_NOT_FOUND", 404),
        ("TIMESTAMP_FAILED", 503),
        ("VALIDATION_DATA_UNAVAILABLE", 503),
        ("AA_KEY_MISMATCH", 503),
        # The suffix rule said 422 for *_INVALID; the table said 403: the table was meant.
        ("CERTIFICATE_INVALID", 403),
        ("INSTRUCTION_SIGNATURE_INVALID", 422),
        ("DOCUMENT_NOT_PDF", 422),
        ("HSM_KEY_NOT_FOUND", 404),
        ("HSM_PIN_INCORRECT", 503),
        ("RATE_LIMITED", 429),
    ],
)
def test_statuses_users_rely_on(code: str, status: int):
    assert problem(code).status == status


def test_the_outage_codes_are_503_with_retry():
    for code in (
        "DATABASE_UNAVAILABLE",
        "STORAGE_FULL",
        "TIMESTAMP_FAILED",
        "VALIDATION_DATA_UNAVAILABLE",
        "SIGNING_FAILED",
        "HSM_UNAVAILABLE",
        "REVOCATION_STATUS_UNAVAILABLE",
        "AA_KEY_MISMATCH",
    ):
        assert problem(code).status == 503 and problem(code).retryable


def test_problem_error_is_a_dairi_error_with_its_catalogued_status():
    error = ProblemError("ROLE_ALREADY_ASSIGNED", detail="the person holds that role", name="x")
    assert isinstance(error, DairiError)
    assert (error.code, error.status, error.detail, error.extra) == (
        "ROLE_ALREADY_ASSIGNED",
        409,
        "the person holds that role",
        {"name": "x"},
    )


# -- over HTTP --------------------------------------------------------------------


def _path(uri: str) -> str:
    return urlsplit(uri).path


def test_the_catalogue_is_published(client, app):
    response = client.get("/api/v1/problems")
    assert response.status_code == 200
    listed = response.get_json()
    assert [e["code"] for e in listed] == sorted(CATALOGUE)
    base = app.extensions["dairi"].settings.public_base_url
    for entry in listed:
        expected = CATALOGUE[entry["code"]]
        assert entry == {
            "code": expected.code,
            "status": expected.status,
            "title": expected.title,
            "description": expected.description,
            "type": f"{base}/api/v1/problems/{expected.code}",
        }


def test_every_type_resolves_to_its_entry(client, app):
    with app.test_request_context():
        types = {code: problem_type(code) for code in CATALOGUE}
    base = app.extensions["dairi"].settings.public_base_url
    for code, uri in types.items():
        assert uri.startswith(base + "/"), uri  # absolute, under the public base URL
        response = client.get(_path(uri))
        assert response.status_code == 200, code
        assert response.get_json()["code"] == code
        assert response.get_json()["status"] == CATALOGUE[code].status


def test_an_unknown_code_is_not_found(client):
    response = client.get("/api/v1/problems/NO_SUCH_CODE")
    assert response.status_code == 404
    assert response.mimetype == PROBLEM
    assert response.get_json()["code"] == "NOT_FOUND"


def test_a_browser_following_a_type_gets_the_docs_row(client):
    response = client.get(
        "/api/v1/problems/TOKEN_EXPIRED",
        headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/docs/problems#TOKEN_EXPIRED")


def test_a_refusal_points_at_its_entry(client):
    refused = client.get("/api/v1/me")
    assert refused.status_code == 401 and refused.mimetype == PROBLEM
    body = refused.get_json()
    assert body["code"] == "UNAUTHENTICATED"
    assert body["title"] == CATALOGUE["UNAUTHENTICATED"].title
    entry = client.get(_path(body["type"])).get_json()
    assert (entry["code"], entry["status"]) == ("UNAUTHENTICATED", 401)
    assert entry["type"] == body["type"]


def test_the_openapi_document_lists_the_catalogue(client):
    spec = json.loads(client.get("/openapi.json").get_data(as_text=True))
    code = spec["components"]["schemas"]["Problem"]["properties"]["code"]
    assert code["enum"] == sorted(CATALOGUE)
    assert {"/api/v1/problems", "/api/v1/problems/{code}"} <= set(spec["paths"])


def test_the_docs_page_lists_every_code(client):
    response = client.get("/docs/problems")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    page = response.get_data(as_text=True)
    for entry in CATALOGUE.values():
        assert f'id="{entry.code}"' in page
        assert f"<td>{entry.status}</td>" in page
    assert 'href="/docs/problems"' in client.get("/docs").get_data(as_text=True)


def _probe(app: Flask, error: Exception) -> Flask:
    blp = Blueprint("catalogue_probe", __name__, url_prefix="/_catalogue_probe")

    @blp.route("/raise")
    def raise_it() -> str:
        raise error

    api: Api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    api.register_blueprint(blp)
    return app


def test_a_domain_error_with_an_uncatalogued_code_is_a_server_fault(app, caplog):
    # Before the catalogue any unknown code was a 400 (the caller's fault).
    response = (
        _probe(app, DairiError("secret-ish detail", "NOT_IN_THE_CATALOGUE"))
        .test_client()
        .get("/_catalogue_probe/raise")
    )
    assert response.status_code == 500
    assert response.get_json()["code"] == "INTERNAL_ERROR"
    assert "secret-ish" not in response.get_data(as_text=True)
    assert "NOT_IN_THE_CATALOGUE" in caplog.text


def test_an_aa_key_mismatch_is_the_services_fault(app, pki):
    """The AA's HSM key does not match its certificate (a deployment fault). Before the
    catalogue the client was told 400 "the signing key does not match the AA
    certificate", as if its request were wrong; now a 503 with Retry-After, no detail."""
    context = app.extensions["dairi"]
    real = context.attribute_authority
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    context.__dict__["attribute_authority"] = AttributeAuthority(
        real.certificate_der,
        lambda data: impostor.sign(data, padding.PKCS1v15(), hashes.SHA256()),
        ocsp_url=real.ocsp_url,
        crl_url=real.crl_url,
    )
    response = app.test_client().get("/ac/crl")
    assert response.status_code == 503, response.get_data()
    body = response.get_json()
    assert body["code"] == "AA_KEY_MISMATCH"
    assert "detail" not in body
    assert int(response.headers["Retry-After"]) > 0
