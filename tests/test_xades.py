"""signing.xades: XAdES baseline signatures checked by outside verifiers (xmlsec1,
signxml's XAdESVerifier, asn1crypto, pyhanko-certvalidator) and by hand."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms, crl, ocsp, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from fixtures_pki import make_credential
from helpers_delegation_ac import AcEndpoints, make_terms
from lxml import etree
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from signxml import DigestAlgorithm
from signxml.exceptions import InvalidDigest, InvalidSignature
from signxml.xades import XAdESSignatureConfiguration, XAdESSignaturePolicy, XAdESVerifier

from devpki import TransportFetcherBackend
from hsm import Hsm, KeyAlgorithm
from signing import (
    MANDATE_SIGNATURE_POLICY_OID,
    DocumentNotXml,
    DocumentTooLarge,
    EvidenceFile,
    HsmXmlKey,
    MandateEvidence,
    SignerCertificateRevoked,
    SigningError,
    TimestampAuthority,
    TimestampFailed,
    ValidationDataSource,
    XadesLevel,
    XadesSigner,
    XadesSpec,
    XmlAlreadySigned,
    XmlUnsafe,
)
from signing.mandate_evidence import MANDATE_SIGNATURE_POLICY_DOCUMENT, evidence_file_names

DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM
NS = {
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xades": "http://uri.etsi.org/01903/v1.3.2#",
    "xades141": "http://uri.etsi.org/01903/v1.4.1#",
}
APPLICATION = """<?xml version="1.0" encoding="UTF-8"?>
<申請書 xmlns="urn:example:e-application" 様式="建設業許可申請">
  <申請者><商号>株式会社大理建設</商号><法人番号>0104010123451</法人番号></申請者>
  <提出先>国土交通省関東地方整備局</提出先>
  <内容>一般建設業の許可を申請します。</内容>
</申請書>
""".encode()
# As e-Gov forms come: a stylesheet instruction and a comment beside the root.
STYLED = APPLICATION.replace(
    b"?>\n",
    b'?>\n<?xml-stylesheet type="text/xsl" href="form.xsl"?>\n<!-- \xe6\xa7\x98\xe5\xbc\x8f -->\n',
    1,
)
LEVELS = list(XadesLevel)
INSTRUCTION = '{"grantee":"山田 太郎","actions":["e-application:建設業許可申請"]}'.encode()
# the document, three evidence files, the signed properties and KeyInfo
MANDATE_REFERENCES = 6


@pytest.fixture(scope="module")
def xades_signer(hsm, pki, trust_roots, dev_tsa) -> XadesSigner:
    return XadesSigner(
        hsm,
        tsa=dev_tsa,
        validation_data=ValidationDataSource(trust_roots, TransportFetcherBackend(pki.serve_url)),
        max_document_bytes=100_000,
    )


@pytest.fixture(scope="module")
def mandate(pki, aa, employee) -> MandateEvidence:
    endpoints = AcEndpoints(pki, aa)
    ac = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
    instruction, cms_name, ac_name = evidence_file_names(0)
    return MandateEvidence(
        leaf_ac_der=ac,
        aa_certificate_der=aa.certificate_der,
        aa_chain_der=(pki.cas["service-root"].certificate.public_bytes(DER),),
        ac_crls_der=(endpoints.crl(),),
        files=(
            EvidenceFile(instruction, INSTRUCTION, "application/json", "委任の指示 (hop 0)"),
            EvidenceFile(cms_name, b"0\x80fake-cms", "application/pkcs7-signature", "its CMS"),
            EvidenceFile(ac_name, ac, "application/pkix-attr-cert", "the hop's AC"),
        ),
    )


@pytest.fixture(scope="module")
def pem_dir(pki, employee, tmp_path_factory) -> Path:
    """The roots (trusted) and the intermediate CAs (untrusted) as PEM, for xmlsec1."""
    directory = tmp_path_factory.mktemp("xades-pem")
    roots = list(pki.roots().values())
    (directory / "roots.pem").write_bytes(b"".join(c.public_bytes(PEM) for c in roots))
    # xmlsec1 reads one certificate per PEM file
    for n, cert in enumerate(roots):
        (directory / f"root-{n}.pem").write_bytes(cert.public_bytes(PEM))
    for n, der in enumerate(employee.chain_der):
        cert = x509.load_der_x509_certificate(der)
        (directory / f"chain-{n}.pem").write_bytes(cert.public_bytes(PEM))
    return directory


@pytest.fixture(scope="module")
def signed(xades_signer, employee, mandate):
    """Every level, enveloped, under the mandate (RSA)."""
    return {
        level: xades_signer.sign(APPLICATION, employee, XadesSpec(level=level, mandate=mandate)).xml
        for level in LEVELS
    }


@pytest.fixture(scope="module")
def ec_employee(hsm, pki):
    return make_credential(hsm, pki, "佐藤 花子", KeyAlgorithm.EC_P256)


@pytest.fixture(scope="module")
def detached(xades_signer, ec_employee, mandate):
    spec = XadesSpec(
        level=XadesLevel.B_LTA,
        packaging="detached",
        mandate=mandate,
        detached_uri="application.xml",
    )
    return xades_signer.sign(APPLICATION, ec_employee, spec).xml


def xmlsec1_verify(pem_dir: Path, xml: bytes, tmp_path: Path, *, document: bytes | None = None):
    (tmp_path / "signed.xml").write_bytes(xml)
    if document is not None:
        (tmp_path / "application.xml").write_bytes(document)
    return subprocess.run(
        [
            "xmlsec1",
            "--verify",
            *(a for p in sorted(pem_dir.glob("root-*.pem")) for a in ("--trusted-pem", str(p))),
            *(a for p in sorted(pem_dir.glob("chain-*.pem")) for a in ("--untrusted-pem", str(p))),
            "--id-attr:Id",
            "http://uri.etsi.org/01903/v1.3.2#:SignedProperties",
            "--id-attr:Id",
            "http://www.w3.org/2000/09/xmldsig#:KeyInfo",
            str(tmp_path / "signed.xml"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )


class Utf8XAdESVerifier(XAdESVerifier):
    """signxml's verifier, copying documents as UTF-8: its default (ASCII) turns the
    Japanese element names of an e-application into character references that do not
    parse back (the signer has the same one-line override)."""

    def _tostring(self, xml_node, **kwargs):
        kwargs.setdefault("encoding", "utf-8")
        return etree.tostring(xml_node, **kwargs)


def signxml_verify(pem_dir: Path, xml: bytes, references: int = MANDATE_REFERENCES, **kwargs):
    policy = XAdESSignaturePolicy(
        Identifier=f"urn:oid:{MANDATE_SIGNATURE_POLICY_OID}",
        Description="",
        DigestMethod=DigestAlgorithm.SHA256,
        DigestValue=base64.b64encode(
            hashlib.sha256(MANDATE_SIGNATURE_POLICY_DOCUMENT).digest()
        ).decode(),
    )
    return Utf8XAdESVerifier().verify(
        xml,
        ca_pem_file=str(pem_dir / "roots.pem"),
        expect_signature_policy=policy,
        expect_config=XAdESSignatureConfiguration(expect_references=references),
        **kwargs,
    )


def signature_of(xml: bytes) -> etree._Element:
    root = etree.fromstring(xml)
    return root if root.tag == f"{{{NS['ds']}}}Signature" else root.find("ds:Signature", NS)


def token_imprint(signature: etree._Element, path: str) -> tuple[bytes, cms.ContentInfo]:
    encoded = signature.findtext(f"ds:Object/xades:QualifyingProperties/{path}", namespaces=NS)
    token = cms.ContentInfo.load(base64.b64decode(encoded))
    info = token["content"]["encap_content_info"]["content"].parsed
    assert isinstance(info, tsp.TSTInfo)
    assert info["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    return info["message_imprint"]["hashed_message"].native, token


USP = "xades:UnsignedProperties/xades:UnsignedSignatureProperties"


@pytest.mark.parametrize("level", LEVELS)
def test_every_level_verifies_with_xmlsec1_and_signxml(signed, level, pem_dir, tmp_path):
    xml = signed[level]
    outcome = xmlsec1_verify(pem_dir, xml, tmp_path)
    assert outcome.returncode == 0 and "OK" in outcome.stdout + outcome.stderr, outcome.stderr
    assert "SignedInfo References (ok/all): 6/6" in outcome.stderr
    results = signxml_verify(pem_dir, xml)
    assert len(results) == MANDATE_REFERENCES
    assert b"\xe4\xb8\x80\xe8\x88\xac\xe5\xbb\xba\xe8\xa8\xad\xe6\xa5\xad" in results[0].signed_data


def test_one_changed_byte_fails_both_verifiers(signed, pem_dir, tmp_path):
    xml = signed[XadesLevel.B_T]
    tampered = xml.replace("一般建設業".encode(), "特定建設業".encode(), 1)
    assert tampered != xml
    outcome = xmlsec1_verify(pem_dir, tampered, tmp_path)
    assert outcome.returncode != 0
    with pytest.raises(InvalidDigest):
        signxml_verify(pem_dir, tampered)
    # ...one byte of a piece of grant evidence
    evidence = signature_of(xml).find("ds:Object[@MimeType='application/json']", NS)
    evidence.text = base64.b64encode(INSTRUCTION.replace("山田".encode(), "田中".encode())).decode()
    swapped = etree.tostring(evidence.getroottree(), encoding="UTF-8")
    assert xmlsec1_verify(pem_dir, swapped, tmp_path).returncode != 0
    with pytest.raises(InvalidDigest):
        signxml_verify(pem_dir, swapped)
    # ...and one byte of the signature value
    sig = signature_of(xml)
    value = sig.find("ds:SignatureValue", NS)
    raw = bytearray(base64.b64decode(value.text))
    raw[10] ^= 1
    value.text = base64.b64encode(bytes(raw)).decode()
    forged = etree.tostring(sig.getroottree(), encoding="UTF-8")
    assert xmlsec1_verify(pem_dir, forged, tmp_path).returncode != 0
    with pytest.raises(InvalidSignature):
        signxml_verify(pem_dir, forged)


def test_signed_properties_name_the_signer_the_mandate_and_the_policy(signed, employee, mandate):
    sig = signature_of(signed[XadesLevel.B_B])
    ssp = sig.find(
        "ds:Object/xades:QualifyingProperties/xades:SignedProperties/"
        "xades:SignedSignatureProperties",
        NS,
    )
    roles = ssp.findall(
        "xades:SignerRoleV2/xades:CertifiedRolesV2/xades:CertifiedRole/xades:X509AttributeCertificate",
        NS,
    )
    assert [base64.b64decode(r.text) for r in roles] == [mandate.leaf_ac_der]
    digest = ssp.findtext(
        "xades:SigningCertificateV2/xades:Cert/xades:CertDigest/ds:DigestValue", namespaces=NS
    )
    assert base64.b64decode(digest) == hashlib.sha256(employee.certificate_der).digest()
    policy = ssp.find("xades:SignaturePolicyIdentifier/xades:SignaturePolicyId", NS)
    assert policy.findtext("xades:SigPolicyId/xades:Identifier", namespaces=NS) == (
        f"urn:oid:{MANDATE_SIGNATURE_POLICY_OID}"
    )
    certs = [
        base64.b64decode(c.text)
        for c in sig.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)
    ]
    assert certs[0] == employee.certificate_der
    assert mandate.aa_certificate_der in certs
    assert ssp.findtext("xades:SigningTime", namespaces=NS).endswith("Z")
    # the grant evidence: signed objects, each named by a DataObjectFormat
    objects = [o for o in sig.findall("ds:Object", NS) if o.get("MimeType")]
    assert [base64.b64decode(o.text) for o in objects] == [f.data for f in mandate.files]
    referenced = {r.get("URI") for r in sig.findall("ds:SignedInfo/ds:Reference", NS)}
    assert {f"#{o.get('Id')}" for o in objects} <= referenced
    formats = sig.findall(
        "ds:Object/xades:QualifyingProperties/xades:SignedProperties/"
        "xades:SignedDataObjectProperties/xades:DataObjectFormat",
        NS,
    )
    assert [f.findtext("xades:Description", namespaces=NS).split(":")[0] for f in formats[1:]] == [
        f.name for f in mandate.files
    ]
    assert (
        sig.find(f"ds:Object/xades:QualifyingProperties/{USP}", NS) is None
    )  # B-B: nothing unsigned


def test_signature_timestamp_covers_the_canonical_signature_value(signed, trust_roots):
    for level in LEVELS[1:]:
        sig = signature_of(signed[level])
        imprint, _ = token_imprint(
            sig, f"{USP}/xades:SignatureTimeStamp/xades:EncapsulatedTimeStamp"
        )
        value = sig.find("ds:SignatureValue", NS)
        by_hand = etree.tostring(value, method="c14n", exclusive=True, with_comments=False)
        assert by_hand.startswith(
            b'<ds:SignatureValue xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
        )
        assert imprint == hashlib.sha256(by_hand).digest(), level


def _values(sig: etree._Element, path: str) -> list[bytes]:
    return [
        base64.b64decode(e.text)
        for e in sig.findall(f"ds:Object/xades:QualifyingProperties/{USP}/{path}", NS)
    ]


def test_b_lt_carries_what_validates_the_signer_offline(
    signed, trust_roots, employee, mandate, pki
):
    sig = signature_of(signed[XadesLevel.B_LT])
    certs = _values(sig, "xades:CertificateValues/xades:EncapsulatedX509Certificate")
    ocsps = _values(sig, "xades:RevocationValues/xades:OCSPValues/xades:EncapsulatedOCSPValue")
    crls = _values(sig, "xades:RevocationValues/xades:CRLValues/xades:EncapsulatedCRLValue")
    assert {
        employee.certificate_der,
        mandate.aa_certificate_der,
        pki.tsa_certificate.public_bytes(DER),
    } <= set(certs)
    assert set(mandate.ac_crls_der) <= set(crls)

    def validate(cert_der: bytes, **usage) -> None:
        context = ValidationContext(
            trust_roots=[asn1_x509.Certificate.load(r) for r in trust_roots],
            other_certs=[asn1_x509.Certificate.load(c) for c in certs],
            ocsps=[ocsp.OCSPResponse.load(o) for o in ocsps],
            crls=[crl.CertificateList.load(c) for c in crls],
            allow_fetching=False,
            revocation_mode="hard-fail",
        )
        validator = CertificateValidator(
            asn1_x509.Certificate.load(cert_der), validation_context=context
        )
        asyncio.run(validator.async_validate_usage(**usage))

    validate(employee.certificate_der, key_usage={"non_repudiation"})
    validate(
        pki.tsa_certificate.public_bytes(DER), key_usage=set(), extended_key_usage={"time_stamping"}
    )
    validate(mandate.aa_certificate_der, key_usage={"digital_signature"})


def _archive_input_by_hand(sig: etree._Element, document: etree._ElementTree | None) -> bytes:
    """EN 319 132-1 §5.5.2.2, written out for the signatures dairi makes."""
    doc = sig.getroottree().getroot()
    parts = []
    for ref in sig.findall("ds:SignedInfo/ds:Reference", NS):
        uri = ref.get("URI")
        if uri == "":  # the document node-set, top-level processing instructions too
            copy = etree.fromstring(etree.tostring(doc.getroottree(), encoding="utf-8"))
            copy.remove(copy.find("ds:Signature", NS))
            parts.append(etree.tostring(copy.getroottree(), method="c14n", with_comments=False))
        elif uri.startswith("#"):
            (target,) = doc.xpath("//*[@Id=$i]", i=uri[1:])
            parts.append(etree.tostring(target, method="c14n", with_comments=False))
        else:
            parts.append(etree.tostring(document, method="c14n", with_comments=False))
    for name in ("ds:SignedInfo", "ds:SignatureValue", "ds:KeyInfo"):
        element = sig.find(name, NS)
        parts.append(etree.tostring(element, method="c14n", exclusive=True, with_comments=False))
    usp = sig.find(f"ds:Object/xades:QualifyingProperties/{USP}", NS)
    for prop in usp:
        if prop.tag == f"{{{NS['xades141']}}}ArchiveTimeStamp":
            break
        parts.append(etree.tostring(prop, method="c14n", exclusive=True, with_comments=False))
    for obj in sig.findall("ds:Object", NS):
        if obj.find("xades:QualifyingProperties", NS) is None:
            parts.append(etree.tostring(obj, method="c14n", exclusive=True, with_comments=False))
    return b"".join(parts)


def test_b_lta_archive_timestamp_covers_signature_and_validation_data(signed, detached):
    for xml, document in (
        (signed[XadesLevel.B_LTA], None),
        (detached, etree.fromstring(APPLICATION).getroottree()),
    ):
        sig = signature_of(xml)
        usp = sig.find(f"ds:Object/xades:QualifyingProperties/{USP}", NS)
        assert [etree.QName(p).localname for p in usp] == [
            "SignatureTimeStamp",
            "CertificateValues",
            "RevocationValues",
            "ArchiveTimeStamp",
        ]
        imprint, _ = token_imprint(
            sig, f"{USP}/xades141:ArchiveTimeStamp/xades:EncapsulatedTimeStamp"
        )
        assert imprint == hashlib.sha256(_archive_input_by_hand(sig, document)).digest()


def test_detached_ecdsa_signature_verifies_against_the_referenced_file(
    detached, ec_employee, pem_dir, tmp_path
):
    sig = signature_of(detached)
    assert sig.find("ds:SignedInfo/ds:Reference", NS).get("URI") == "application.xml"
    outcome = xmlsec1_verify(pem_dir, detached, tmp_path, document=APPLICATION)
    assert outcome.returncode == 0, outcome.stderr
    resolved = etree.fromstring(APPLICATION)
    results = signxml_verify(
        pem_dir, detached, uri_resolver=lambda uri: resolved if uri == "application.xml" else None
    )
    assert len(results) == MANDATE_REFERENCES
    # raw r||s, 64 bytes for P-256
    assert len(base64.b64decode(sig.findtext("ds:SignatureValue", namespaces=NS))) == 64
    changed = APPLICATION.replace(b"0104010123451", b"0104010123452")
    assert xmlsec1_verify(pem_dir, detached, tmp_path, document=changed).returncode != 0
    with pytest.raises(InvalidDigest):
        signxml_verify(pem_dir, detached, uri_resolver=lambda uri: etree.fromstring(changed))


@pytest.mark.parametrize(
    ("document", "error", "code"),
    [
        (  # billion laughs
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
            b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
            b"<lolz>&lol3;</lolz>",
            XmlUnsafe,
            "XML_UNSAFE",
        ),
        (  # external entity
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
            XmlUnsafe,
            "XML_UNSAFE",
        ),
        (  # the same hidden in UTF-16
            '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r SYSTEM "http://127.0.0.1:9/x.dtd"><r/>'.encode(
                "utf-16"
            ),
            XmlUnsafe,
            "XML_UNSAFE",
        ),
        (b"%PDF-1.7\n", DocumentNotXml, "DOCUMENT_NOT_XML"),
        (b"<a><b></a>", DocumentNotXml, "DOCUMENT_NOT_XML"),
        (b"", DocumentNotXml, "DOCUMENT_NOT_XML"),
        (b"<a>" + b"x" * 100_001 + b"</a>", DocumentTooLarge, "DOCUMENT_TOO_LARGE"),
    ],
    ids=[
        "billion-laughs",
        "external-entity",
        "utf16-doctype",
        "pdf",
        "unbalanced",
        "empty",
        "too-large",
    ],
)
def test_hostile_or_unreadable_documents_are_refused_before_the_key_is_used(
    xades_signer, employee, monkeypatch, document, error, code
):
    used = []
    monkeypatch.setattr(Hsm, "sign", lambda *a, **k: used.append(a))
    with pytest.raises(error) as info:
        xades_signer.sign(document, employee, XadesSpec(level=XadesLevel.B_B))
    assert info.value.code == code
    assert used == []


class _RefusingTsa(TimeStamper):
    async def async_request_tsa_response(self, req):
        raise TimestampRequestError("the TSA answered 503")


def test_refusals_of_configuration_and_certificate(hsm, pki, xades_signer, employee, monkeypatch):
    no_tsa = XadesSigner(hsm, tsa=None, validation_data=None, max_document_bytes=100_000)
    with pytest.raises(TimestampFailed):
        no_tsa.sign(APPLICATION, employee, XadesSpec(level=XadesLevel.B_T))
    down = XadesSigner(
        hsm,
        tsa=TimestampAuthority("down", _RefusingTsa),
        validation_data=None,
        max_document_bytes=100_000,
    )
    with pytest.raises(TimestampFailed) as info:
        down.sign(APPLICATION, employee, XadesSpec(level=XadesLevel.B_T))
    assert info.value.code == "TIMESTAMP_FAILED"
    assert down.sign(APPLICATION, employee, XadesSpec(level=XadesLevel.B_B)).xml  # B-B needs none
    with pytest.raises(ValueError):
        XadesSpec(packaging="detached")
    with pytest.raises(ValueError):
        XadesSpec(detached_uri="a.xml")
    credential = make_credential(hsm, pki, "退職 済")
    serial = x509.load_der_x509_certificate(credential.certificate_der).serial_number
    pki.cas["employee-signing"].revoke(
        serial, x509.ReasonFlags.affiliation_changed, now=pki.clock()
    )
    used = []
    monkeypatch.setattr(Hsm, "sign", lambda *a, **k: used.append(a))
    with pytest.raises(SignerCertificateRevoked):
        xades_signer.sign(APPLICATION, credential, XadesSpec(level=XadesLevel.B_B))
    assert used == []


def test_a_plain_signature_names_no_role_and_no_policy(xades_signer, employee, pem_dir, tmp_path):
    xml = xades_signer.sign(APPLICATION, employee, XadesSpec(level=XadesLevel.B_B)).xml
    sig = signature_of(xml)
    ssp = sig.find(
        "ds:Object/xades:QualifyingProperties/xades:SignedProperties/"
        "xades:SignedSignatureProperties",
        NS,
    )
    assert [etree.QName(p).localname for p in ssp] == ["SigningTime", "SigningCertificateV2"]
    assert len(sig.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)) == 2  # leaf, CA
    assert xmlsec1_verify(pem_dir, xml, tmp_path).returncode == 0


def test_the_key_adapter_signs_only_what_dairi_signs_with(hsm, employee, ec_employee):
    rsa_key, ec_key = HsmXmlKey(hsm, employee), HsmXmlKey(hsm, ec_employee)
    assert len(rsa_key.sign(b"x", padding.PKCS1v15(), hashes.SHA256())) == 256
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    with pytest.raises(SigningError):
        rsa_key.sign(b"x", pss, hashes.SHA256())
    with pytest.raises(SigningError):
        rsa_key.sign(b"x", padding.PKCS1v15(), hashes.SHA1())
    der = ec_key.sign(b"x", signature_algorithm=ec.ECDSA(hashes.SHA256()))
    ec_key.public_key().verify(der, b"x", ec.ECDSA(hashes.SHA256()))  # DER, as cryptography's
    with pytest.raises(SigningError):
        ec_key.sign(b"x", signature_algorithm=ec.ECDSA(hashes.SHA384()))


def test_a_signed_document_is_signed_again_detached_not_enveloped(
    signed, xades_signer, ec_employee, pem_dir, tmp_path
):
    once = signed[XadesLevel.B_B]
    # an enveloped signature would change what the first one covers and break it
    with pytest.raises(XmlAlreadySigned) as info:
        xades_signer.sign(once, ec_employee, XadesSpec(level=XadesLevel.B_B))
    assert info.value.code == "XML_ALREADY_SIGNED"
    spec = XadesSpec(level=XadesLevel.B_B, packaging="detached", detached_uri="application.xml")
    countersigned = xades_signer.sign(once, ec_employee, spec).xml
    assert xmlsec1_verify(pem_dir, once, tmp_path).returncode == 0
    outcome = xmlsec1_verify(pem_dir, countersigned, tmp_path, document=once)
    assert outcome.returncode == 0, outcome.stderr


def test_processing_instructions_beside_the_root_are_kept_and_signed(
    xades_signer, employee, pem_dir, tmp_path
):
    # XML-DSig signs the document node-set: a verifier (xmlsec1) digests the
    # stylesheet instruction too, so dropping or ignoring it would break the signature.
    enveloped = xades_signer.sign(STYLED, employee, XadesSpec(level=XadesLevel.B_LTA)).xml
    assert b'<?xml-stylesheet type="text/xsl" href="form.xsl"?>' in enveloped
    outcome = xmlsec1_verify(pem_dir, enveloped, tmp_path)
    assert outcome.returncode == 0, outcome.stderr
    sig = signature_of(enveloped)
    imprint, _ = token_imprint(sig, f"{USP}/xades141:ArchiveTimeStamp/xades:EncapsulatedTimeStamp")
    assert imprint == hashlib.sha256(_archive_input_by_hand(sig, None)).digest()
    restyled = enveloped.replace(b'href="form.xsl"', b'href="evil.xsl"')
    assert xmlsec1_verify(pem_dir, restyled, tmp_path).returncode != 0

    spec = XadesSpec(level=XadesLevel.B_B, packaging="detached", detached_uri="application.xml")
    detached = xades_signer.sign(STYLED, employee, spec).xml
    outcome = xmlsec1_verify(pem_dir, detached, tmp_path, document=STYLED)
    assert outcome.returncode == 0, outcome.stderr
    restyled = STYLED.replace(b'href="form.xsl"', b'href="evil.xsl"')
    assert xmlsec1_verify(pem_dir, detached, tmp_path, document=restyled).returncode != 0


def test_a_detached_signature_covers_the_whole_file_even_if_an_id_matches_its_uri(
    xades_signer, employee, pem_dir, tmp_path
):
    # signxml would otherwise sign only the element whose Id equals the URI
    decoy = APPLICATION.replace("<提出先>".encode(), '<提出先 Id="application.xml">'.encode())
    spec = XadesSpec(level=XadesLevel.B_B, packaging="detached", detached_uri="application.xml")
    signature = xades_signer.sign(decoy, employee, spec).xml
    assert xmlsec1_verify(pem_dir, signature, tmp_path, document=decoy).returncode == 0
    changed = decoy.replace("一般建設業".encode(), "特定建設業".encode())
    assert xmlsec1_verify(pem_dir, signature, tmp_path, document=changed).returncode != 0
