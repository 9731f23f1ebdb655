"""XAdES through the signing sessions (issue 12 item 1): a Japanese e-application
(電子申請) signed under the mandate through the whole HTTP flow, checked by xmlsec1 and
by dairi's own XML verification; the refusals that matter for XML."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from helpers_auth import audit_codes, bearer, der, new_corporation, problem
from helpers_mandates import ENTITY, root_grant, scope
from helpers_signing_sessions import (
    authorized,
    new_signer,
    opened,
    purpose,
    try_authorize,
    try_open,
    try_sign,
)
from lxml import etree
from test_xades import xmlsec1_verify

from app.cli.main import main
from app.client.api import ApiClient
from app.client.cards import SoftwareCard
from app.client.signing import SigningRequest, sign_files
from app.dev.sample_documents import bid_pdf
from app.mandates.evidence import mandate_evidence
from app.mandates.models import Mandate
from app.signatures.models import SignatureRecord
from delegation.scope import Purpose
from signing.verification import Indication, VerificationTrust
from signing.verification_xml import verify_xml

ACTION = "e-application:建設業許可申請"
APPLICATION = """<?xml version="1.0" encoding="UTF-8"?>
<申請書 xmlns="urn:example:e-application" 様式="建設業許可申請">
  <申請者><商号>株式会社大理建設</商号><法人番号>0104010123451</法人番号></申請者>
  <提出先>国土交通省関東地方整備局</提出先>
  <内容>一般建設業の許可を申請します。</内容>
</申請書>
""".encode()
# An internal entity: harmless here, but the door to expansion bombs and external ones.
WITH_ENTITY = b'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x "xx">]>\n<a>&x;&x;</a>\n'
NS = {"ds": "http://www.w3.org/2000/09/xmldsig#", "xades": "http://uri.etsi.org/01903/v1.3.2#"}
ROLE = (
    "ds:Object/xades:QualifyingProperties/xades:SignedProperties/"
    "xades:SignedSignatureProperties/xades:SignerRoleV2/xades:CertifiedRolesV2/"
    "xades:CertifiedRole/xades:X509AttributeCertificate"
)


@pytest.fixture
def world(client, hsm, pki):
    """Corporation A; 山田 holds a root mandate for one e-application procedure at one
    office."""
    a = new_corporation(pki, name="株式会社大理建設")
    yamada = new_signer(client, hsm, pki, a, "山田\u3000太郎")
    granted = scope(actions=frozenset({ACTION}), amount_limit_jpy=None)
    return {"a": a, "yamada": yamada, "mandate": root_grant(client, a, yamada.employee, granted)}


def e_purpose(corp, **changes) -> dict:
    return purpose(corp, **({"action": ACTION, "case": None, "amount": None} | changes))


def open_xades(client, world, documents, names, **request):
    a, yamada = world["a"], world["yamada"]
    request.setdefault("purpose", e_purpose(a))
    return try_open(client, yamada, a, documents, names=names, format="xades", **request)


def pem_dir(pki, signer, directory: Path) -> Path:
    """The roots (trusted) and the signer's intermediate CAs (untrusted), one per file."""
    for n, cert in enumerate(pki.roots().values()):
        (directory / f"root-{n}.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    for n, cert_der in enumerate(signer.employee.credential.chain_der):
        pem = x509.load_der_x509_certificate(cert_der).public_bytes(Encoding.PEM)
        (directory / f"chain-{n}.pem").write_bytes(pem)
    return directory


def sign_and_fetch(client, signer, session) -> tuple[dict, bytes, str]:
    sad = authorized(client, signer, session)
    response = try_sign(client, signer, session["id"], sad)
    assert response.status_code == 200, response.get_json()
    (result,) = response.get_json()["documents"]
    fetched = client.get(result["href"], headers=bearer(signer.token))
    assert fetched.status_code == 200 and fetched.mimetype == "application/xml"
    assert hashlib.sha256(fetched.get_data()).hexdigest() == result["signed_sha256"]
    disposition = fetched.headers["Content-Disposition"]
    return result | {"sad": sad}, fetched.get_data(), unquote(disposition.split("''", 1)[1])


def test_an_e_application_is_signed_b_t_enveloped_under_the_mandate(
    client, app, pki, world, tmp_path
):
    a, yamada, mandate = world["a"], world["yamada"], world["mandate"]
    response = open_xades(client, world, [APPLICATION], ["建設業許可申請書.xml"], level="B-T")
    assert response.status_code == 201, response.get_json()
    session = response.get_json()
    assert (session["format"], session["packaging"]) == ("xades", "enveloped")
    assert session["mandate_id"] == mandate["id"]
    bound = json.loads(base64.b64decode(session["to_sign"]))
    assert (bound["format"], bound["packaging"], bound["level"]) == ("xades", "enveloped", "B-T")

    result, xml, name = sign_and_fetch(client, yamada, session)
    assert name == "建設業許可申請書.xml"
    outcome = xmlsec1_verify(pem_dir(pki, yamada, tmp_path), xml, tmp_path)
    assert outcome.returncode == 0 and "OK" in outcome.stdout + outcome.stderr, outcome.stderr
    # The application as sent, the signature in it, the leaf AC as the certified role.
    root = etree.fromstring(xml)
    assert root.findtext("{urn:example:e-application}提出先") == "国土交通省関東地方整備局"
    signature = root.find("ds:Signature", NS)
    context = app.extensions["dairi"]
    with context.session_factory() as db:
        row = db.get(Mandate, mandate["id"])
        assert row is not None
        ac = bytes(row.attribute_certificate)
        ac_crls = mandate_evidence(context, db, [row], long_term=True).ac_crls_der
        db.commit()
        record = db.get(SignatureRecord, result["signature_id"])
        assert record is not None and (record.format, record.level) == ("xades", "B-T")
    assert [base64.b64decode(r.text) for r in signature.findall(ROLE, NS)] == [ac]
    assert signature.find(".//xades:SignatureTimeStamp", NS) is not None

    # dairi's own verification: the purpose holds under the mandate, for corporation A.
    now = datetime.now(UTC)
    trust = VerificationTrust(
        roots=tuple(c.public_bytes(Encoding.DER) for c in pki.roots().values()),
        aa_certificates=(context.attribute_authority.certificate_der,),
        registration_roots=(pki.roots()["registrar"].public_bytes(Encoding.DER),),
        crls=(
            *(pki.cas[slug].crl(now=now) for slug in ("service-root", "employee-signing")),
            *ac_crls,
        ),
    )
    asked = Purpose(ACTION, ENTITY, None, None, now)
    (verdict,) = verify_xml(xml, trust, asked, principal=a.corporate_number).signatures
    assert verdict.indication == Indication.TOTAL_PASSED, verdict.message
    assert verdict.level.value == "B-T" and verdict.mandate.covers_purpose is True
    wider = Purpose("e-application:産業廃棄物処理業許可申請", ENTITY, None, None, now)
    (verdict,) = verify_xml(xml, trust, wider, principal=a.corporate_number).signatures
    assert verdict.indication != Indication.TOTAL_PASSED

    # The SAD is spent: replayed, refused and audited.
    problem(try_sign(client, yamada, session["id"], result["sad"]), 409, "SAD_USED")
    codes = audit_codes(app)
    assert [tag for tag, _ in codes].count("signature:xades:created") == 1
    # Refused signing is tagged for what it is, not as a PAdES refusal.
    assert ("signature:signing:refused", "SAD_USED") in codes
    assert not any(tag == "signature:pades:refused" for tag, _ in codes)


def test_detached_and_the_refusals_that_matter_for_xml(client, app, pki, world, tmp_path):
    a, yamada, mandate = world["a"], world["yamada"], world["mandate"]
    # Detached B-B: the signature document, served beside the application it names.
    session = opened(
        client,
        yamada,
        a,
        [APPLICATION],
        names=["application.xml"],
        format="xades",
        packaging="detached",
        purpose=e_purpose(a),
    )
    _, signature, name = sign_and_fetch(client, yamada, session)
    assert name == "application.xades.xml"
    assert etree.fromstring(signature).tag == "{http://www.w3.org/2000/09/xmldsig#}Signature"
    dir_ = pem_dir(pki, yamada, tmp_path)
    outcome = xmlsec1_verify(dir_, signature, tmp_path, document=APPLICATION)
    assert outcome.returncode == 0, outcome.stderr
    changed = APPLICATION.replace("許可を申請".encode(), "許可を取下げ".encode())
    assert xmlsec1_verify(dir_, signature, tmp_path, document=changed).returncode != 0

    # Refused at upload, before any card proof: each with its code, audited.
    for document, code, extra in (
        (WITH_ENTITY, "XML_UNSAFE", {}),
        (bid_pdf(), "DOCUMENT_NOT_XML", {}),
        (signature, "XML_ALREADY_SIGNED", {}),  # enveloped over a signed document
    ):
        response = open_xades(client, world, [APPLICATION, document], ["a.xml", "b.xml"], **extra)
        problem(response, 422, code)
        assert ("signature:session:refused", code) in audit_codes(app)
    # Signed detached, a signed document is left as it is: accepted.
    response = open_xades(client, world, [signature], ["s.xml"], packaging="detached")
    assert response.status_code == 201, response.get_json()
    # A purpose outside the mandate: another procedure, or a bid.
    named = {"mandate_id": mandate["id"]}
    other = e_purpose(a, action="e-application:産業廃棄物処理業許可申請")
    problem(
        open_xades(client, world, [APPLICATION], ["a.xml"], purpose=other, **named),
        403,
        "SCOPE_ACTION_NOT_GRANTED",
    )
    problem(
        open_xades(client, world, [APPLICATION], ["a.xml"], purpose=other),
        403,
        "NO_COVERING_MANDATE",
    )
    # Packaging is an XAdES choice only.
    response = try_open(client, yamada, a, [bid_pdf()], packaging="detached")
    problem(response, 422, "SESSION_FORMAT_INVALID")
    # Another card than the signed-in person's cannot buy the SAD (unchanged for XML).
    session = opened(client, yamada, a, [APPLICATION], format="xades", purpose=e_purpose(a))
    other_card = new_signer(client, app.extensions["dairi"].hsm, pki, a, "鈴木\u3000花子").card
    problem(
        try_authorize(client, yamada, session, card=other_card.authentication),
        403,
        "CARD_NOT_CALLERS",
    )


class InProcessApi(ApiClient):
    """The client library's calls answered by the app in process (the Flask test client
    instead of a served process; tests/test_client.py covers the transport)."""

    def __init__(self, flask_client, token: str) -> None:
        super().__init__("http://dairi.test", token)
        self.flask = flask_client

    def send(self, method: str, path: str, *, auth: bool = True, **kwargs: Any):
        headers = dict(kwargs.pop("headers", None) or {})
        if auth and self.token:
            headers.update(bearer(self.token))
        if "files" in kwargs:  # requests' multipart parts → the test client's form
            form: dict[str, Any] = {}
            for field, (name, content, media) in kwargs.pop("files"):
                if name is None:
                    form[field] = content
                else:
                    form.setdefault(field, []).append((BytesIO(content), name, media))
            kwargs.update(data=form, content_type="multipart/form-data")
        answer = self.flask.open(path, method=method, headers=headers, **kwargs)
        response = requests.Response()
        response.status_code = answer.status_code
        response._content = answer.get_data()
        response.headers.update(answer.headers)
        return response


def test_the_client_signs_xml_enveloped_and_detached(client, pki, world, tmp_path):
    a, yamada = world["a"], world["yamada"]
    card = SoftwareCard(yamada.card.authentication.key, der(yamada.card.authentication))
    source = tmp_path / "申請書.xml"
    source.write_bytes(APPLICATION)
    api = InProcessApi(client, yamada.token)
    written = {}
    for packaging in ("enveloped", "detached"):
        request = SigningRequest(
            yamada.credential_id,
            a.corporate_number,
            ACTION,
            ENTITY,
            level="B-B",
            format="xades",
            packaging=packaging if packaging == "detached" else None,
        )
        events = list(sign_files(api, card, request, [source]))
        assert [e for e, _ in events] == ["session", "authorized", "signed"]
        written[packaging] = events[-1][1].target
    assert written["enveloped"].name == "申請書-signed.xml"
    assert written["detached"].name == "申請書.xades.xml"
    enveloped = etree.fromstring(written["enveloped"].read_bytes())
    assert enveloped.find("ds:Signature", NS) is not None
    assert etree.fromstring(written["detached"].read_bytes()).tag == f"{{{NS['ds']}}}Signature"
    assert source.read_bytes() == APPLICATION  # the input is left as it was
    # The command line: --packaging and --stamp each go with one format only (refused
    # before any card or service is touched).
    base = ["client", "--url", "http://127.0.0.1:9", "--state", str(tmp_path / "s.json")]
    sign = ["sign", str(source), "--credential", "c", "--principal", a.corporate_number]
    for extra in (
        ["--action", "bid", "--packaging", "detached"],
        ["--action", ACTION, "--format", "xades", "--stamp"],
    ):
        result = CliRunner().invoke(main, [*base, *sign, *extra])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error INPUT_INVALID: "), result.stderr
