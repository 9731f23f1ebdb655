"""The service with ``dev_mode = false`` (issue 10 item 2), as a deployment runs it:

- the PKI it trusts is served by a separate process over real HTTP on a loopback
  port (``python -m devpki.server``): certificates are checked with
  pyhanko-certvalidator's requests fetchers (OCSP, CRL) and the 電子委任状 is
  time-stamped by pyHanko's ``HTTPTimeStamper`` at ``tsa_url``;
- the attribute authority's key is made in SoftHSM by ``dairi aa create-key`` (a
  process of its own), its request certified by that PKI's CA, and configured by
  ``aa_key_label`` and ``aa_certificate_file``; employees' keys are certified the
  external way (``credential request`` → CA → ``credential import``);
- the 電子委任状 is drawn on the configured page size (B5 here, read back by poppler).

One scenario — login, enrolment, a root grant, a sub-delegation, the chain query, the
signed 電子委任状, a revocation seen over OCSP, and the refusal while the PKI server is
stopped — runs through Flask's test client and through ``dairi serve`` (two gunicorn
workers, ``tests/live_server.py``). Before this, every mandate endpoint answered 503
``AA_NOT_CONFIGURED`` with ``dev_mode = false``.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import requests
from asn1crypto import cms, pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from helpers_auth import bearer, enrolled_employee, login, new_corporation, problem, try_login
from helpers_cli import cli_environment
from helpers_mandates import ENTITY, Employee, root_grant, sub_grant
from helpers_pki_server import PkiServer, served_pki
from live_server import LiveServer
from pyhanko.pdf_utils.reader import PdfFileReader

from app.context import ServiceContext
from app.credentials.service import CredentialOwner, CredentialService
from app.factory import create_app
from app.migrate import migrate
from app.pdf_text import FontNotFound, find_japanese_font
from app.settings import Settings, SettingsError, load_settings
from devpki import DevPki
from hsm import Hsm, KeyAlgorithm, KeyRef

DER = serialization.Encoding.DER
DAIRI = str(Path(sys.executable).with_name("dairi"))
B5_POINTS = "515.91 x 728.5 pts"  # JIS B5, 182 x 257 mm, as pdfinfo prints it
A4_POINTS = "595.28 x 841.89 pts"


@dataclass(frozen=True)
class Production:
    pki: DevPki
    server: PkiServer
    aa_key_label: str
    aa_certificate_file: Path


@pytest.fixture(scope="module")
def production(hsm: Hsm, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("production")
    pki, server = served_pki(root / "pki", hsm)
    # The AA key is made by the command line, in a process of its own, as an operator
    # would; its request is certified by the PKI's CA and the result configured by file.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIRI_")}
    env.update(cli_environment(base_settings.replace(data_dir=root / "cli")))
    env["DAIRI_DEV_MODE"] = "false"
    made = subprocess.run(
        [
            DAIRI,
            "aa",
            "create-key",
            "--csr",
            str(root / "aa.csr"),
            "--organization",
            "dairi production test",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    label = re.search(r'aa_key_label = "([^"]+)"', made.stdout)
    assert label is not None, made.stdout
    _, _, csr_der = pem.unarmor((root / "aa.csr").read_bytes())
    issued = pki.certify_attribute_authority(csr_der)
    aa_file = root / "aa.pem"
    aa_file.write_bytes(
        issued.certificate.public_bytes(serialization.Encoding.PEM)
        + pki.roots()["service-root"].public_bytes(serialization.Encoding.PEM)
    )
    with server:
        yield Production(pki, server, label.group(1), aa_file)


def production_settings(base: Settings, production: Production, tmp_path: Path) -> Settings:
    return base.replace(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'dairi.db'}",
        dev_mode=False,
        pki_dir=tmp_path / "no-development-pki",
        trust_dir=production.pki.directory / "trust",
        tsa_url=f"{production.server.url}/pki/tsa",
        aa_key_label=production.aa_key_label,
        aa_certificate_file=str(production.aa_certificate_file),
        pdf_page_size="B5",
        revocation_cache_seconds=0,  # every check asks the PKI server
        revocation_breaker_seconds=1,
    )


def production_environment(production: Production) -> dict[str, str]:
    """The same settings as DAIRI_* variables, for ``dairi serve``."""
    return {
        "DAIRI_DEV_MODE": "false",
        "DAIRI_TRUST_DIR": str(production.pki.directory / "trust"),
        "DAIRI_TSA_URL": f"{production.server.url}/pki/tsa",
        "DAIRI_AA_KEY_LABEL": production.aa_key_label,
        "DAIRI_AA_CERTIFICATE_FILE": str(production.aa_certificate_file),
        "DAIRI_PDF_PAGE_SIZE": "B5",
        "DAIRI_REVOCATION_CACHE_SECONDS": "0",
        "DAIRI_REVOCATION_BREAKER_SECONDS": "1",
    }


# --- a client over real HTTP with the Flask test client's shape ----------------------


class _HttpResponse:
    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.status_code = response.status_code
        self.headers = response.headers
        self.content_type = response.headers.get("Content-Type", "")
        self.data = response.content

    def get_json(self) -> Any:
        return self.response.json()

    def get_data(self) -> bytes:
        return self.response.content


class HttpClient:
    """``post``/``get`` as the helpers call them on a Flask test client, over HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def post(
        self, path: str, json: Any = None, headers: dict[str, str] | None = None
    ) -> _HttpResponse:
        return _HttpResponse(
            self.session.post(self.url + path, json=json, headers=headers, timeout=90)
        )

    def get(
        self,
        path: str,
        headers: dict[str, str] | None = None,
        query_string: dict[str, str] | None = None,
    ) -> _HttpResponse:
        return _HttpResponse(
            self.session.get(self.url + path, headers=headers, params=query_string, timeout=90)
        )


# --- the scenario ------------------------------------------------------------------------


def employee(
    client: Any, context: ServiceContext, hsm: Hsm, pki: DevPki, corp: Any, name: str
) -> tuple[Employee, Any]:
    """An employee enrolled through the API whose HSM key is certified the external way:
    a request from the service, certified by the PKI's employee CA, imported back."""
    card, person_id, token = enrolled_employee(client, pki, corp, name)
    owner = CredentialOwner(person_id, corp.corporate_number)
    with context.session_factory() as session:
        service = CredentialService(session, hsm, None)
        pending, csr = service.request(
            f"{name} {person_id}", KeyAlgorithm.RSA_2048, service.employee_subject(owner), owner
        )
        issued = pki.certify_csr(csr)
        active = service.import_certificate(
            pending.id,
            issued.certificate.public_bytes(DER),
            [c.public_bytes(DER) for c in issued.chain],
        )
        session.commit()
        credential = service.signing_credential(active)
    return Employee(name, person_id, token, credential), card


def time_stamp_signer_serial(pdf: bytes) -> int:
    """The serial number of the TSA certificate that time-stamped the PDF's signature."""
    signature = PdfFileReader(BytesIO(pdf)).embedded_signatures[0]
    attrs = signature.signer_info["unsigned_attrs"]
    token = next(a["values"][0] for a in attrs if a["type"].native == "signature_time_stamp_token")
    signed: cms.SignedData = token["content"]
    sid = signed["signer_infos"][0]["sid"].chosen
    return int(sid["serial_number"].native)


def pdfinfo_page_size(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "document.pdf"
    path.write_bytes(pdf)
    shown = subprocess.run(
        ["pdfinfo", str(path)], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    found = re.search(r"Page size:\s+(.+?)(?: \(|$)", shown, re.MULTILINE)
    assert found is not None, shown
    return found.group(1).strip()


def scenario(
    client: Any, context: ServiceContext, hsm: Hsm, production: Production, tmp_path: Path
) -> tuple[str, str]:
    """Runs the scenario; (the sub-delegated mandate's id, its grantor's token)."""
    pki, server = production.pki, production.server
    corp = new_corporation(pki, name="株式会社本番商事")
    assert login(client, corp.representative)  # the registration certificate, by OCSP

    agent, _ = employee(client, context, hsm, pki, corp, "本番\u3000一郎")
    sub_agent, sub_card = employee(client, context, hsm, pki, corp, "本番\u3000二郎")

    # a root grant (the representative's CMS) and a sub-delegation (the agent's HSM key)
    parent = root_grant(client, corp, agent)
    child = sub_grant(client, hsm, corp, parent, agent, sub_agent)
    assert child["parent_id"] == parent["id"] and child["depth"] == 1
    aa = x509.load_pem_x509_certificates(production.aa_certificate_file.read_bytes())[0]
    assert (
        aa.subject.rfc4514_string() == "CN=dairi Attribute Authority,O=dairi production test,C=JP"
    )
    for mandate in (parent, child):  # each AC signed by the AA key made by the CLI
        ac = cms.AttributeCertificateV2.load(base64.b64decode(mandate["attribute_certificate"]))
        aa.public_key().verify(  # type: ignore[union-attr, call-arg]
            ac["signature"].native, ac["ac_info"].dump(), padding.PKCS1v15(), hashes.SHA256()
        )
    served_aa = client.get("/ac/aa.pem")
    assert served_aa.status_code == 200
    assert x509.load_pem_x509_certificate(served_aa.data) == aa  # … whose certificate is served

    # the chain query
    at = (datetime.now(UTC) + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    chain = client.get(
        f"/api/v1/mandates/{child['id']}/chain",
        headers=bearer(agent.token),
        query_string={"at": at, "action": "bid", "procuring_entity": ENTITY},
    )
    assert chain.status_code == 200, chain.get_json()
    body = chain.get_json()
    assert body["holds"] is True, body
    assert [hop["mandate_id"] for hop in body["hops"]] == [parent["id"], child["id"]]

    # the 電子委任状: drawn on B5, signed by the configured AA, time-stamped over HTTP
    document = client.get(f"/api/v1/mandates/{child['id']}/document", headers=bearer(agent.token))
    assert document.status_code == 200, document.get_data()[:500]
    pdf = document.get_data()
    assert pdfinfo_page_size(pdf, tmp_path) == B5_POINTS
    assert time_stamp_signer_serial(pdf) == pki.tsa_certificate.serial_number
    signer = PdfFileReader(BytesIO(pdf)).embedded_signatures[0].signer_cert
    assert signer.serial_number == aa.serial_number

    # a revocation at the CA is seen over OCSP at the next check
    pki.ca_for_slug("jpki-auth").revoke(
        sub_card.authentication.certificate.serial_number,
        x509.ReasonFlags.key_compromise,
        now=pki.clock(),
    )
    problem(try_login(client, sub_card.authentication), 403, "CERTIFICATE_REVOKED")

    # the PKI server stopped: a login is refused as an outage, never taken as good
    server.stop()
    try:
        refused = try_login(client, corp.representative)
        body = problem(refused, 503, "REVOCATION_STATUS_UNAVAILABLE")
        assert int(refused.headers["Retry-After"]) > 0, body
    finally:
        server.start()
    return child["id"], agent.token


def test_production_mode_through_the_test_client(production, base_settings, hsm, tmp_path):
    settings = production_settings(base_settings, production, tmp_path)
    migrate(settings.database_url)
    application = create_app(settings, hsm=hsm)
    application.config["TESTING"] = True
    context = application.extensions["dairi"]
    try:
        assert context.dev_pki is None
        mandate_id, token = scenario(application.test_client(), context, hsm, production, tmp_path)
    finally:
        context.engine.dispose()
    # The stored signed document follows a change of the page size setting: drawn again.
    a4 = create_app(settings.replace(pdf_page_size="A4"), hsm=hsm)
    try:
        document = a4.test_client().get(
            f"/api/v1/mandates/{mandate_id}/document", headers=bearer(token)
        )
        assert document.status_code == 200, document.get_data()[:500]
        assert pdfinfo_page_size(document.get_data(), tmp_path) == A4_POINTS
    finally:
        a4.extensions["dairi"].engine.dispose()


def test_production_mode_served_by_two_workers(production, base_settings, hsm, tmp_path):
    settings = production_settings(base_settings, production, tmp_path)
    migrate(settings.database_url)
    # The test's own context on the served database: it makes employees' credentials
    # (keys in the same token) as an operator's `dairi credential request/import` would.
    context = ServiceContext(settings, hsm=hsm)
    try:
        with LiveServer(settings, workers=2, env=production_environment(production)) as live:
            scenario(HttpClient(live.url), context, hsm, production, tmp_path)
            log = live.log()
        assert "Traceback" not in log, log[-3000:]
    finally:
        context.engine.dispose()


def test_a_mandate_endpoint_without_a_configured_aa_is_refused(base_settings, hsm, tmp_path):
    """Production mode with no AA settings: the one refusal left, with its code."""
    settings = base_settings.replace(
        data_dir=tmp_path, dev_mode=False, database_url=f"sqlite:///{tmp_path / 'dairi.db'}"
    )
    migrate(settings.database_url)
    application = create_app(settings, hsm=hsm)
    try:
        response = application.test_client().get("/ac/aa.pem")
        problem(response, 503, "AA_NOT_CONFIGURED")
    finally:
        application.extensions["dairi"].engine.dispose()


# --- the settings' refusals ---------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"aa_key_label": "dairi:00ff:v1"}, "set together"),
        ({"aa_certificate_file": "aa.pem"}, "set together"),
        ({"aa_key_label": "my-aa-key", "aa_certificate_file": "aa.pem"}, "dairi key label"),
        ({"aa_key_label": "dairi:not-hex:v1", "aa_certificate_file": "aa.pem"}, "dairi key label"),
        ({"pdf_page_size": "A5"}, "pdf_page_size must be one of A4, B5, letter"),
    ],
)
def test_production_settings_refused_at_start(changes, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env={}, **changes)


def test_the_aa_key_label_names_a_token_key():
    settings = load_settings(
        env={}, aa_key_label="dairi:00FF:v2", aa_certificate_file="/etc/dairi/aa.pem"
    )
    assert settings.aa_key == KeyRef(settings.hsm_token_label, "00ff", 2)
    assert load_settings(env={}).aa_key is None


def test_the_font_is_found_and_a_latin_font_is_refused(tmp_path):
    found = find_japanese_font("")
    assert found.is_file()
    # fontconfig agrees that this file is a Japanese font
    langs = subprocess.run(
        ["fc-query", "--format=%{lang}", str(found)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "ja" in langs.split("|")
    latin = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if latin.is_file():
        with pytest.raises(FontNotFound):
            find_japanese_font(str(latin))
    with pytest.raises(FontNotFound):
        find_japanese_font(str(tmp_path / "missing.ttf"))
