"""``dairi client`` against the real served app (gunicorn on a loopback port): login with
a virtual card, a PKCS#12 file and a SoftHSM token standing in for a card; a credential
issued and listed; a mandate granted by a representative and revoked; errors as one
line ``error CODE: …`` with exit status 2. One server for the module (start-up is slow).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from helpers_auth import new_card, new_corporation
from live_server import DAIRI, LiveServer

from app.cli.main import main
from app.client import (
    ApiClient,
    SigningRequest,
    SoftwareCard,
    Upload,
    check_to_sign,
    check_uploaded,
    directory_card,
    run_session,
    sign_files,
)
from app.client.grants import GrantTerms, build_sub_instruction
from app.client.state import ClientState, save_state
from app.migrate import migrate
from dairi import DairiError
from delegation.instruction import GrantInstruction
from delegation.scope import Scope
from devpki.cards import save_card
from hsm.softhsm import write_softhsm_conf

NAME = "山田\u3000太郎"


@pytest.fixture(scope="module")
def server(base_settings, pki, tmp_path_factory):
    data = tmp_path_factory.mktemp("client-server")
    settings = base_settings.replace(
        database_url=f"sqlite:///{data / 'dairi.db'}", data_dir=str(data)
    )
    migrate(settings.database_url)
    with LiveServer(settings, workers=2) as live:
        yield live


def enrol(url: str, pki, corp, name: str, directory: Path) -> str:
    """A new employee ``name`` of ``corp`` enrolled over HTTP with a virtual card saved in
    ``directory``: their person id."""
    card = new_card(pki, name)
    save_card(card, directory)
    with ApiClient(url) as api:
        api.login(SoftwareCard(corp.representative.key, _der(corp.representative)))
        code = api.call(
            "POST",
            f"/api/v1/corporations/{corp.corporate_number}/invitations",
            json={"name": name},
        )["code"]
        challenge_id, to_sign = api.challenge("enrolment")
        enrolled = api.call(
            "POST",
            "/api/v1/enrolments",
            auth=False,
            json={
                "invitation_code": code,
                "challenge_id": challenge_id,
                "authentication": _proof(card.authentication, to_sign),
                "signing": _proof(card.signing, to_sign),
            },
        )
    return str(enrolled["person_id"])


@pytest.fixture(scope="module")
def people(server, pki, tmp_path_factory):
    """A corporation's representative and an enrolled employee, as card directories."""
    root = tmp_path_factory.mktemp("client-cards")
    corp = new_corporation(pki, name="株式会社代理クライアント")
    save_card(corp.representative, root / "rep")
    person_id = enrol(server.url, pki, corp, NAME, root / "employee")
    return {
        "corp": corp,
        "rep_dir": root / "rep",
        "employee_dir": root / "employee",
        "person_id": person_id,
        "root": root,
    }


def _der(virtual) -> bytes:
    return virtual.certificate.public_bytes(serialization.Encoding.DER)


def _proof(virtual, to_sign: bytes) -> dict[str, str]:
    return {
        "certificate": base64.b64encode(_der(virtual)).decode(),
        "signature": base64.b64encode(virtual.sign(to_sign)).decode(),
    }


def run(server, state: Path, *args: str, env: dict[str, str] | None = None):
    """``dairi client --url … --state … ARGS`` in this process."""
    result = CliRunner().invoke(
        main, ["client", "--url", server.url, "--state", str(state), *args], env=env
    )
    return result


def ok(result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.output, result.stderr)
    return result.stdout


def refused(result, code: str) -> str:
    """The one error line of a refused command: ``error CODE: …`` and exit status 2."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error {code}: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def employee_state(server, people, tmp_path_factory) -> Path:
    state = tmp_path_factory.mktemp("employee-state") / "client.json"
    ok(run(server, state, "login", "--card", str(people["employee_dir"])))
    return state


@pytest.fixture(scope="module")
def rep_state(server, people, tmp_path_factory) -> Path:
    state = tmp_path_factory.mktemp("rep-state") / "client.json"
    ok(run(server, state, "login", "--card", str(people["rep_dir"])))
    return state


def test_login_with_a_virtual_card_keeps_the_token_private(server, people, employee_state):
    kept = json.loads(employee_state.read_text())
    assert kept["url"] == server.url and kept["access_token"]
    assert stat.S_IMODE(employee_state.stat().st_mode) == 0o600
    me = json.loads(ok(run(server, employee_state, "--json", "whoami")))["caller"]
    assert me["id"] == people["person_id"]
    assert people["corp"].corporate_number in me["employee_of"]
    # The login's own output names the person but never prints the token.
    again = people["root"] / "again.json"
    output = ok(run(server, again, "login", "--card", str(people["employee_dir"])))
    assert people["person_id"] in output
    assert json.loads(again.read_text())["access_token"] not in output
    # Another service is never sent this one's token.
    other = CliRunner().invoke(
        main, ["client", "--url", "http://127.0.0.1:9", "--state", str(again), "whoami"]
    )
    refused(other, "CLIENT_NOT_LOGGED_IN")


def test_login_with_a_pkcs12_file(server, people, tmp_path):
    rep = people["corp"].representative
    p12 = tmp_path / "registration.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"rep",
            rep.key,
            rep.certificate,
            None,
            serialization.BestAvailableEncryption(b"correct horse"),
        )
    )
    password = tmp_path / "password"
    password.write_text("correct horse\n")
    state = tmp_path / "state.json"
    output = run(
        server, state, "--json", "login", "--p12", str(p12), "--p12-password-file", str(password)
    )
    caller = json.loads(ok(output))["caller"]
    assert caller["representative_of"] == [people["corp"].corporate_number]
    assert "access_token" not in json.loads(output.stdout)
    # Logging out ends the token at the service and forgets it here.
    token = json.loads(state.read_text())["access_token"]
    assert ok(run(server, state, "logout")) == f"logged out of {server.url}\n"
    assert json.loads(state.read_text())["access_token"] is None
    refused(run(server, state, "whoami"), "CLIENT_NOT_LOGGED_IN")
    with ApiClient(server.url, token) as api:
        assert api.send("GET", "/api/v1/me").status_code == 401
    # The password from the environment; a wrong one is the card's fault, not a traceback.
    wrong = run(server, state, "login", "--p12", str(p12), env={"DAIRI_P12_PASSWORD": "wrong"})
    refused(wrong, "CLIENT_CARD_UNUSABLE")


CARD_TOKEN_SCRIPT = textwrap.dedent(
    """
    import sys
    import pkcs11
    from pkcs11 import Attribute, CertificateType, ObjectClass
    from pkcs11.util.rsa import decode_rsa_private_key
    from cryptography import x509
    module, label, pin, key_der, cert_der = sys.argv[1:6]
    token = pkcs11.lib(module).get_token(token_label=label)
    certificate = open(cert_der, "rb").read()
    with token.open(rw=True, user_pin=pin) as session:
        key = decode_rsa_private_key(open(key_der, "rb").read())
        key.update({Attribute.TOKEN: True, Attribute.LABEL: "auth", Attribute.ID: b"\\x01",
                    Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})
        session.create_object(key)
        session.create_object({
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True, Attribute.LABEL: "auth", Attribute.ID: b"\\x01",
            Attribute.SUBJECT: x509.load_der_x509_certificate(certificate).subject.public_bytes(),
            Attribute.VALUE: certificate,
        })
    """
)


def test_login_with_a_pkcs11_token_standing_in_for_a_card(server, people, base_settings, tmp_path):
    """The employee's authentication key imported into a SoftHSM token of its own (not
    the service's), then ``dairi client login --pkcs11-…`` in a process of its own."""
    conf = tmp_path / "softhsm2.conf"
    write_softhsm_conf(conf, tmp_path / "tokens")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIRI_")}
    env["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "card",
            "--so-pin",
            "87654321",
            "--pin",
            "123456",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    authentication = directory_card(people["employee_dir"], "authentication")
    (tmp_path / "key.der").write_bytes(
        authentication.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "cert.der").write_bytes(authentication.certificate_der)
    module = base_settings.hsm.module_path
    subprocess.run(
        [
            sys.executable,
            "-c",
            CARD_TOKEN_SCRIPT,
            module,
            "card",
            "123456",
            str(tmp_path / "key.der"),
            str(tmp_path / "cert.der"),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    (tmp_path / "key.der").unlink()
    card = ["--pkcs11-module", module, "--pkcs11-token", "card", "--pkcs11-key-id", "01"]
    state = tmp_path / "state.json"
    base = [DAIRI, "client", "--url", server.url, "--state", str(state), "--json"]
    done = subprocess.run(
        [*base, "login", *card],
        env={**env, "DAIRI_CARD_PIN": "123456"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["caller"]["id"] == people["person_id"]
    # A wrong PIN: one line with the card's code, exit status 2.
    wrong = subprocess.run(
        [*base, "login", *card[:4], "--pkcs11-key-label", "auth"],
        env={**env, "DAIRI_CARD_PIN": "000000"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode == 2
    assert wrong.stderr.strip().startswith("error CLIENT_CARD_UNUSABLE: "), wrong.stderr
    assert "Traceback" not in wrong.stderr


@pytest.fixture(scope="module")
def credential(server, people, employee_state) -> dict:
    corporate_number = people["corp"].corporate_number
    issued = run(
        server,
        employee_state,
        "--json",
        "credential",
        "issue",
        "--corporation",
        corporate_number,
        "--name",
        "山田 太郎 (client)",
        "--card",
        str(people["employee_dir"]),
    )
    return json.loads(ok(issued))["credential"]


def test_credential_issue_and_list(server, people, employee_state, rep_state, credential):
    assert credential["status"] == "active"
    assert credential["person_id"] == people["person_id"]
    assert f"NTRJP-{people['corp'].corporate_number}" in credential["subject"]
    listed = ok(run(server, employee_state, "credential", "list"))
    assert listed.splitlines() == [
        f"{credential['id']}  active  {credential['algorithm']}  山田 太郎 (client)  "
        f"{credential['subject']}"
    ]
    # A representative lists the corporation's.
    corporation = json.loads(
        ok(
            run(
                server,
                rep_state,
                "--json",
                "credential",
                "list",
                "--corporation",
                people["corp"].corporate_number,
            )
        )
    )
    assert [c["id"] for c in corporation["credentials"]] == [credential["id"]]


def test_grant_by_a_representative_and_revoke(server, people, rep_state, credential):
    corporate_number = people["corp"].corporate_number
    granted = run(
        server,
        rep_state,
        "--json",
        "grant",
        "--grantee-credential",
        credential["id"],
        "--action",
        "bid",
        "--action",
        "quote",
        "--entity",
        "国土交通省関東地方整備局",
        "--amount-limit",
        "50000000",
        "--not-after",
        "2099-01-01T00:00:00+09:00",
        "--sub-delegation-depth",
        "1",
        "--card",
        str(people["rep_dir"]),
    )
    mandate = json.loads(ok(granted))["mandate"]
    assert mandate["principal"]["corporate_number"] == corporate_number
    assert mandate["grantee"]["name"] == NAME
    assert mandate["scope"]["actions"] == ["bid", "quote"]
    assert mandate["scope"]["procuring_entities"] == ["国土交通省関東地方整備局"]
    assert mandate["scope"]["amount_limit_jpy"] == 50_000_000
    assert mandate["scope"]["max_depth"] == 1
    assert mandate["scope"]["not_after"].startswith("2098-12-31T15:00:00")
    assert mandate["status"] == "active"

    line = ok(run(server, rep_state, "revoke", mandate["id"], "--reason", "privilege_withdrawn"))
    assert line.startswith(f"mandate {mandate['id']} revoked at ") and line.count("\n") == 1
    with ApiClient(server.url, json.loads(rep_state.read_text())["access_token"]) as api:
        assert api.call("GET", f"/api/v1/mandates/{mandate['id']}")["status"] == "revoked"
    # Revoked twice: the service's code, one line, exit status 2; --json prints it too.
    again = run(server, rep_state, "--json", "revoke", mandate["id"])
    refused(again, "MANDATE_ALREADY_REVOKED")
    assert json.loads(again.stdout)["error"] == "MANDATE_ALREADY_REVOKED"


def test_errors_are_one_line_with_a_code(server, people, tmp_path):
    state = tmp_path / "state.json"
    # Nothing listens on the discard port: a connection error, not a traceback.
    unreachable = CliRunner().invoke(
        main,
        [
            "client",
            "--url",
            "http://127.0.0.1:9",
            "--state",
            str(state),
            "login",
            "--card",
            str(people["employee_dir"]),
        ],
    )
    refused(unreachable, "CLIENT_CONNECTION_FAILED")
    refused(run(server, state, "credential", "list"), "CLIENT_NOT_LOGGED_IN")
    refused(run(server, state, "login"), "INPUT_INVALID")  # no card named
    refused(run(server, state, "login", "--card", str(tmp_path)), "DEV_CARD_INVALID")


def test_credential_renew_reissues_the_mandates_it_holds(
    server, people, employee_state, rep_state, tmp_path
):
    card = ["--card", str(people["employee_dir"])]
    corporation = ["--corporation", people["corp"].corporate_number]
    old = json.loads(
        ok(run(server, employee_state, "--json", "credential", "issue", *corporation, *card))
    )["credential"]
    # Granted to the certificate as a file this time (PEM), the person named.
    holder = tmp_path / "holder.pem"
    holder.write_text(
        "-----BEGIN CERTIFICATE-----\n"
        + textwrap.fill(old["certificate"], 64)
        + "\n-----END CERTIFICATE-----\n"
    )
    granted = run(
        server,
        rep_state,
        "--json",
        "grant",
        "--grantee-certificate",
        str(holder),
        "--grantee-person",
        people["person_id"],
        "--action",
        "contract",
        "--card",
        str(people["rep_dir"]),
    )
    mandate = json.loads(ok(granted))["mandate"]
    renewed = run(server, employee_state, "credential", "renew", old["id"], *card)
    lines = ok(renewed).splitlines()
    assert lines[0].startswith(f"credential {old['id']} renewed: ")
    [moved] = lines[1:]
    assert moved.startswith(f"mandate {mandate['id']} re-issued as ")
    new_id = lines[0].split(": ", 1)[1].split()[0]
    listed = json.loads(ok(run(server, employee_state, "--json", "credential", "list")))
    status = {c["id"]: c["status"] for c in listed["credentials"]}
    assert (status[old["id"]], status[new_id]) == ("revoked", "active")
    # The old credential is not renewed twice.
    refused(
        run(server, employee_state, "credential", "renew", old["id"], *card),
        "CREDENTIAL_NOT_ACTIVE",
    )


# -- sign: the client's own checks (no service needed) ------------------------------


def _activation(request: SigningRequest, digests: list[str], session_id: str) -> bytes:
    """to_sign as the service writes it (app.signing_sessions.activation)."""
    return json.dumps(
        {
            "service": "http://dairi.example",
            "purpose": "signature-activation",
            "session": session_id,
            "credential": {"id": request.credential_id, "certificate_sha256": "00" * 32},
            "mandate": "m-1",
            "signing_purpose": request.json()["purpose"],
            "format": "pades",
            "level": request.level,
            "documents": digests,
            "document_count": len(digests),
        }
    ).encode()


def test_sign_checks_what_the_card_would_sign(tmp_path):
    a, b = tmp_path / "a.pdf", tmp_path / "b.pdf"
    a.write_bytes(b"%PDF-1.7 a")
    b.write_bytes(b"%PDF-1.7 b")
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b)]
    reported = {
        "documents": [
            {"index": 0, "name": "a.pdf", "sha256": digests[0]},
            {"index": 1, "name": "b.pdf", "sha256": digests[1]},
        ]
    }
    check_uploaded(["a.pdf", "b.pdf"], digests, reported)
    swapped = {
        "documents": [reported["documents"][0], {**reported["documents"][1], "sha256": digests[0]}]
    }
    with pytest.raises(DairiError) as caught:
        check_uploaded(["a.pdf", "b.pdf"], digests, swapped)
    assert caught.value.code == "CLIENT_DIGEST_MISMATCH"
    with pytest.raises(DairiError) as caught:
        check_uploaded(["a.pdf", "b.pdf"], digests, {"documents": reported["documents"][:1]})
    assert caught.value.code == "CLIENT_DIGEST_MISMATCH"

    request = SigningRequest("cred-1", "1011001077777", "bid", "国土交通省", None, 10, "B-T")
    check_to_sign(_activation(request, digests, "s-1"), request, digests, "s-1")
    for bound, code in [
        (_activation(request, digests[::-1], "s-1"), "CLIENT_DIGEST_MISMATCH"),
        (_activation(request, digests, "s-2"), "CLIENT_ACTIVATION_MISMATCH"),
        (
            _activation(SigningRequest("cred-1", "1011001077777", "contract"), digests, "s-1"),
            "CLIENT_ACTIVATION_MISMATCH",
        ),
        (
            _activation(
                SigningRequest("cred-2", "1011001077777", "bid", "国土交通省", None, 10, "B-T"),
                digests,
                "s-1",
            ),
            "CLIENT_ACTIVATION_MISMATCH",
        ),
    ]:
        with pytest.raises(DairiError) as caught:
            check_to_sign(bound, request, digests, "s-1")
        assert caught.value.code == code


class ScriptedService(ApiClient):
    """A signing-session service answering from a script (no network): the session
    names the uploads; the signatures' answer is ``signed`` (a document-answering
    service: one document in the answer when asked; else hrefs). Records each request."""

    def __init__(self, request: SigningRequest, uploads, *, in_answer: bool = True, digest=None):
        super().__init__("http://dairi.example", "token")
        self.request, self.uploads, self.in_answer, self.digest = (
            request,
            uploads,
            in_answer,
            digest,
        )
        self.asked: list[tuple[str, str, str | None]] = []

    def send(self, method, path, *, auth=True, **kwargs):
        self.asked.append((method, path, (kwargs.get("headers") or {}).get("Accept")))
        digests = [hashlib.sha256(u.content).hexdigest() for u in self.uploads]
        if path == "/api/v1/signing-sessions":
            to_sign = _activation(self.request, digests, "s-1")
            documents = [{"index": i, "sha256": d} for i, d in enumerate(digests)]
            return _answer(
                json.dumps(
                    {
                        "id": "s-1",
                        "documents": documents,
                        "to_sign": base64.b64encode(to_sign).decode(),
                    }
                )
            )
        if path.endswith("/authorization"):
            return _answer(json.dumps({"sad": "sad-1"}))
        signed = [b"signed " + u.content for u in self.uploads]
        accept = kwargs.get("headers", {}).get("Accept", "")
        if path.endswith("/signatures") and self.in_answer and accept.startswith("application/pdf"):
            digest = self.digest or base64.b64encode(hashlib.sha256(signed[0]).digest()).decode()
            return _answer(
                signed[0],
                "application/pdf",
                {"Repr-Digest": f"sha-256=:{digest}:", "Dairi-Signature-Id": "sig-0"},
            )
        if path.endswith("/signatures"):
            listed = [
                {
                    "index": i,
                    "href": f"/d/{i}",
                    "signature_id": f"sig-{i}",
                    "signed_sha256": hashlib.sha256(s).hexdigest(),
                }
                for i, s in enumerate(signed)
            ]
            return _answer(json.dumps({"documents": listed}))
        return _answer(signed[int(path.rsplit("/", 1)[1])], "application/pdf")


def _answer(body, content_type="application/json", headers=None):
    response = requests.Response()
    response.status_code = 200
    response._content = body.encode() if isinstance(body, str) else body
    response.headers.update({"Content-Type": content_type, **(headers or {})})
    return response


class StubCard:
    certificate_der = b"card"
    intermediates_der = ()

    def sign(self, data: bytes) -> bytes:
        return b"signature"


def test_sign_takes_one_document_from_the_signing_answer_and_fetches_several():
    request = SigningRequest("cred-1", "1011001077777", "bid", "国土交通省", None, 10, "B-T")
    one = [Upload("a.pdf", b"%PDF-1.7 a")]
    service = ScriptedService(request, one)
    events = list(run_session(service, StubCard(), request, one))
    assert events[-1] == (
        "fetched",
        (
            {
                "index": 0,
                "name": "a.pdf",
                "signature_id": "sig-0",
                "signed_sha256": hashlib.sha256(b"signed %PDF-1.7 a").hexdigest(),
            },
            b"signed %PDF-1.7 a",
        ),
    )
    assert service.asked[2:] == [
        (
            "POST",
            "/api/v1/signing-sessions/s-1/signatures",
            "application/pdf, application/json;q=0.5",
        )
    ]
    # Several documents: the hrefs, each fetched; so too from a service answering only hrefs.
    two = [*one, Upload("b.pdf", b"%PDF-1.7 b")]
    for uploads, in_answer in ((two, True), (one, False)):
        service = ScriptedService(request, uploads, in_answer=in_answer)
        fetched = [
            v for e, v in run_session(service, StubCard(), request, uploads) if e == "fetched"
        ]
        assert [content for _, content in fetched] == [b"signed " + u.content for u in uploads]
        assert [a[1] for a in service.asked[3:]] == [f"/d/{i}" for i in range(len(uploads))]
    # A document that is not the one the answer's digest names is refused.
    service = ScriptedService(request, one, digest=base64.b64encode(b"0" * 32).decode())
    with pytest.raises(DairiError) as caught:
        list(run_session(service, StubCard(), request, one))
    assert caught.value.code == "CLIENT_DIGEST_MISMATCH"


def test_the_client_goes_through_the_environments_proxy_and_sends_no_netrc_password(
    tmp_path, monkeypatch
):
    """The environment is read once per client, not per call: the proxy it names is
    still used, and a .netrc entry for the service is never sent."""
    listener = socket.create_server(("127.0.0.1", 0))
    heard: list[bytes] = []

    def proxy() -> None:
        connection, _ = listener.accept()
        with connection:
            heard.append(connection.recv(65536))
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
            )

    thread = threading.Thread(target=proxy)
    thread.start()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine dairi.example login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{listener.getsockname()[1]}")
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with ApiClient("http://dairi.example") as client:
        assert client.call("GET", "/api/v1/problems", auth=False) == {}
    thread.join(5)
    listener.close()
    request = heard[0].decode("latin-1")
    assert request.startswith("GET http://dairi.example/api/v1/problems HTTP/1.1\r\n")
    assert "authorization" not in request.lower()


def test_sign_force_replaces_an_earlier_signed_file_whole(tmp_path):
    """With --force the earlier signed copy is replaced by the new one once it is
    complete, never rewritten in place: a link to the earlier one keeps it whole."""
    request = SigningRequest("cred-1", "1011001077777", "bid", "国土交通省", None, 10, "B-T")
    source = tmp_path / "a.pdf"
    source.write_bytes(b"%PDF-1.7 a")
    target = tmp_path / "a-signed.pdf"
    target.write_bytes(b"earlier")
    os.link(target, tmp_path / "kept.pdf")
    service = ScriptedService(request, [Upload("a.pdf", b"%PDF-1.7 a")])
    list(sign_files(service, StubCard(), request, [source], force=True))
    assert target.read_bytes() == b"signed %PDF-1.7 a"
    assert (tmp_path / "kept.pdf").read_bytes() == b"earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-signed.pdf", "a.pdf", "kept.pdf"]


def test_sign_refuses_to_overwrite_before_sending_anything(tmp_path, people):
    bid = tmp_path / "bid.pdf"
    bid.write_bytes(b"%PDF-1.7")
    (tmp_path / "bid-signed.pdf").write_bytes(b"earlier")
    state = tmp_path / "state.json"
    save_state(state, ClientState("http://127.0.0.1:9", "token"))
    # The URL answers nothing: a request would fail with CLIENT_CONNECTION_FAILED.
    done = CliRunner().invoke(
        main,
        [
            "client",
            "--url",
            "http://127.0.0.1:9",
            "--state",
            str(state),
            "sign",
            str(bid),
            "--credential",
            "c",
            "--principal",
            "1011001077777",
            "--action",
            "bid",
            "--card",
            str(people["employee_dir"]),
        ],
    )
    refused(done, "CLIENT_OUTPUT_EXISTS")
    assert (tmp_path / "bid-signed.pdf").read_bytes() == b"earlier"


# -- sign: live, through the signing-session API ---------------------------------------

ENTITY = "国土交通省関東地方整備局"


def test_sign_a_bid_under_a_mandate_then_refused_once_revoked(
    server, people, employee_state, rep_state, credential, bid, tmp_path
):
    corporate_number = people["corp"].corporate_number
    grant = [
        "grant",
        "--grantee-credential",
        credential["id"],
        "--action",
        "bid",
        "--entity",
        ENTITY,
        "--amount-limit",
        "90000000",
        "--card",
        str(people["rep_dir"]),
    ]
    mandate = json.loads(ok(run(server, rep_state, "--json", *grant)))["mandate"]
    source = tmp_path / "入札書.pdf"
    source.write_bytes(bid)
    sign = [
        "sign",
        str(source),
        "--credential",
        credential["id"],
        "--principal",
        corporate_number,
        "--action",
        "bid",
        "--entity",
        ENTITY,
        "--amount",
        "12000000",
        "--level",
        "B-B",
        "--stamp",
        "--mandate",
        mandate["id"],
        "--card",
        str(people["employee_dir"]),
    ]
    lines = ok(run(server, employee_state, *sign)).splitlines()
    target = tmp_path / "入札書-signed.pdf"
    assert len(lines) == 3, lines
    assert lines[0].startswith("session ") and f"under mandate {mandate['id']}" in lines[0]
    assert lines[2].startswith(f"{target}  B-B  sha256=")
    signed = target.read_bytes()
    assert lines[2].endswith(hashlib.sha256(signed).hexdigest())
    assert signed.startswith(bid)  # an incremental update of the input
    checked = subprocess.run(["pdfsig", str(target)], capture_output=True, text=True, check=False)
    assert "Signature is Valid." in checked.stdout, checked.stdout

    # Again: the signed file is there, so nothing is sent without --force.
    refused(run(server, employee_state, *sign), "CLIENT_OUTPUT_EXISTS")
    # Two mandates cover the purpose: the error names both, to choose one with --mandate.
    second = json.loads(ok(run(server, rep_state, "--json", *grant)))["mandate"]
    unnamed = [*sign[: sign.index("--mandate")], *sign[sign.index("--mandate") + 2 :]]
    line = refused(run(server, employee_state, *unnamed, "--force"), "MANDATE_AMBIGUOUS")
    assert mandate["id"] in line and second["id"] in line
    # Once the mandate is revoked, the service refuses the session: one line, exit 2.
    ok(run(server, rep_state, "revoke", mandate["id"]))
    refused(run(server, employee_state, *sign, "--force"), "MANDATE_REVOKED")
    assert target.read_bytes() == signed


def test_a_sub_delegation_instruction_lies_within_its_parent(credential):
    """What ``build_sub_instruction`` leaves out is the parent's, so the child is
    within it; the grantor is the parent's grantee."""
    now = datetime.now(UTC).replace(microsecond=0)
    parent_scope = Scope(
        frozenset({"bid", "quote"}),
        frozenset({ENTITY}),
        None,
        50_000_000,
        now - timedelta(days=1),
        now + timedelta(days=30),
        max_depth=1,
    )
    parent = {
        "id": "parent-1",
        "principal": {"corporate_number": "1011001077777", "name": "株式会社代理建設"},
        "grantee": {"name": NAME},
        "scope": parent_scope.to_json(),
    }
    holder = base64.b64decode(credential["certificate"])
    made = build_sub_instruction(
        parent, holder, GrantTerms(("bid",)), grantee_name="鈴木\u3000花子"
    )
    parsed = GrantInstruction.parse(made.canonical())
    assert (parsed.parent, parsed.grantor_name, parsed.grantor_title) == ("parent-1", NAME, None)
    assert parsed.principal_corporate_number == "1011001077777"
    assert parsed.grantee_certificate_sha256 == hashlib.sha256(holder).hexdigest()
    assert parsed.scope.procuring_entities == frozenset({ENTITY})
    assert parsed.scope.amount_limit_jpy == 50_000_000
    assert parsed.scope.not_after == parent_scope.not_after
    assert parent_scope.contains(parsed.scope)
    wider = build_sub_instruction(parent, holder, GrantTerms(("contract",)), grantee_name="x")
    assert not parent_scope.contains(wider.scope)


# -- sub-delegate: the service signs the instruction with the grantee's credential -----


def test_sub_delegate_through_a_cms_session(
    server, pki, people, employee_state, rep_state, credential, tmp_path
):
    corp = people["corp"]
    second_dir = tmp_path / "second"
    second_person = enrol(server.url, pki, corp, "鈴木\u3000花子", second_dir)
    second_state = tmp_path / "second.json"
    ok(run(server, second_state, "login", "--card", str(second_dir)))
    second = json.loads(
        ok(
            run(
                server,
                second_state,
                "--json",
                "credential",
                "issue",
                "--corporation",
                corp.corporate_number,
                "--card",
                str(second_dir),
            )
        )
    )["credential"]
    certificate = tmp_path / "second.der"
    certificate.write_bytes(base64.b64decode(second["certificate"]))
    parent = json.loads(
        ok(
            run(
                server,
                rep_state,
                "--json",
                "grant",
                "--grantee-credential",
                credential["id"],
                "--action",
                "quote",
                "--entity",
                "東京都財務局",
                "--sub-delegation-depth",
                "1",
                "--card",
                str(people["rep_dir"]),
            )
        )
    )["mandate"]
    lines = ok(
        run(
            server,
            employee_state,
            "sub-delegate",
            "--parent",
            parent["id"],
            "--credential",
            credential["id"],
            "--grantee-person",
            second_person,
            "--grantee-certificate",
            str(certificate),
            "--action",
            "quote",
            "--card",
            str(people["employee_dir"]),
        )
    ).splitlines()
    assert len(lines) == 3, lines
    mandate_id = lines[2].split()[1]
    with ApiClient(server.url, json.loads(rep_state.read_text())["access_token"]) as api:
        child = api.call("GET", f"/api/v1/mandates/{mandate_id}")
    assert (child["parent_id"], child["depth"], child["status"]) == (parent["id"], 1, "active")
    assert child["grantor"]["name"] == NAME and child["grantee"]["person_id"] == second_person
    assert child["scope"]["procuring_entities"] == ["東京都財務局"]
    # Beyond the parent (a contract): refused by the service, one line, nothing granted.
    refused(
        run(
            server,
            employee_state,
            "sub-delegate",
            "--parent",
            parent["id"],
            "--credential",
            credential["id"],
            "--grantee-person",
            second_person,
            "--grantee-certificate",
            str(certificate),
            "--action",
            "contract",
            "--card",
            str(people["employee_dir"]),
        ),
        "SCOPE_ACTION_NOT_GRANTED",
    )
