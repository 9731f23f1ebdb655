"""signing.verification_xml: dairi's XAdES signatures under a real mandate judged
offline, as a relying party would; tampering and signature wrapping refused.

Expectations are written by hand (ETSI TS 119 102-1 indications); the signatures
themselves are checked by xmlsec1 and signxml in tests/test_xades.py.
"""

from __future__ import annotations

import base64
import copy
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask
from helpers_app import own_service
from helpers_auth import new_corporation
from helpers_mandates import ENTITY, new_employee, root_grant
from lxml import etree
from signxml.xades import XAdESSignatureConfiguration

from app.mandates.evidence import mandate_evidence
from app.mandates.models import Mandate
from app.settings import Settings
from delegation.scope import Purpose
from hsm import Hsm
from signing import (
    DocumentNotXml,
    DocumentTooLarge,
    XadesLevel,
    XadesSigner,
    XadesSpec,
    XmlUnsafe,
)
from signing.verification import DocumentNotSigned, Indication, VerificationTrust
from signing.verification_xml import SIGNATURE_WRAPPING, XmlSignatureReader, verify_xml

NS = {
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xades": "http://uri.etsi.org/01903/v1.3.2#",
}
APPLICATION = """<?xml version="1.0" encoding="UTF-8"?>
<?xml-stylesheet type="text/xsl" href="form.xsl"?>
<入札書 xmlns="urn:example:bid">
  <入札者><商号>株式会社大理建設</商号></入札者>
  <発注者>国土交通省関東地方整備局</発注者>
  <金額>9800000</金額>
</入札書>
""".encode()
SP = "ds:Object/xades:QualifyingProperties/xades:SignedProperties"


@pytest.fixture(scope="module")
def served(base_settings: Settings, hsm: Hsm, pki, tmp_path_factory) -> Iterator[Flask]:
    yield from own_service(base_settings, hsm, tmp_path_factory.mktemp("verify-xml"))


@pytest.fixture(scope="module")
def chain(served: Flask, hsm: Hsm, pki) -> dict:
    client = served.test_client()
    corp = new_corporation(pki, name="株式会社大理建設")
    yamada = new_employee(client, hsm, pki, corp, "山田\u3000太郎")
    return {"corp": corp, "yamada": yamada, "root": root_grant(client, corp, yamada)}


@pytest.fixture(scope="module")
def signed(served: Flask, hsm: Hsm, chain) -> dict:
    """Every level, enveloped, under the representative's grant; and a detached B-LTA."""
    context = served.extensions["dairi"]
    with context.session_factory() as session:
        evidence = mandate_evidence(
            context, session, [session.get(Mandate, chain["root"]["id"])], long_term=True
        )
        session.commit()
    signer = XadesSigner(
        hsm,
        tsa=context.tsa,
        validation_data=context.validation_data,
        max_document_bytes=1_000_000,
    )
    who = chain["yamada"].credential
    made = {
        level: signer.sign(APPLICATION, who, XadesSpec(level=level, mandate=evidence)).xml
        for level in XadesLevel
    }
    spec = XadesSpec(
        level=XadesLevel.B_LTA, packaging="detached", mandate=evidence, detached_uri="bid.xml"
    )
    made["detached"] = signer.sign(APPLICATION, who, spec).xml
    made["ac_crls"] = evidence.ac_crls_der
    return made


@pytest.fixture(scope="module")
def trust(served, pki, signed) -> VerificationTrust:
    """The relying party's anchors, and the CRLs it fetched itself (for B-B and B-T,
    which carry none)."""
    context = served.extensions["dairi"]
    now = datetime.now(UTC)
    return VerificationTrust(
        roots=tuple(c.public_bytes(Encoding.DER) for c in pki.roots().values()),
        aa_certificates=(context.attribute_authority.certificate_der,),
        registration_roots=(pki.roots()["registrar"].public_bytes(Encoding.DER),),
        crls=(
            *(pki.cas[slug].crl(now=now) for slug in ("service-root", "employee-signing")),
            *signed["ac_crls"],
        ),
    )


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the verifier tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _purpose(**changes) -> Purpose:
    fields = {"action": "bid", "procuring_entity": ENTITY, "case": None, "amount_jpy": 9_800_000}
    fields.update(changes)
    return Purpose(at=datetime.now(UTC), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("level", list(XadesLevel), ids=str)
def test_each_level_passes_offline_for_its_purpose(signed, trust, chain, level, no_network):
    # B-LT and B-LTA carry their own validation data: the relying party needs no CRL.
    given = (
        trust
        if not level.long_term
        else VerificationTrust(
            roots=trust.roots,
            aa_certificates=trust.aa_certificates,
            registration_roots=trust.registration_roots,
        )
    )
    report = verify_xml(signed[level], given, _purpose(), principal=chain["corp"].corporate_number)
    (sig,) = report.signatures
    assert (sig.indication, sig.sub_indication, sig.reasons) == (
        Indication.TOTAL_PASSED,
        None,
        (),
    ), sig.message
    assert sig.level.value == level.value
    assert sig.signer.name == "山田\u3000太郎"
    assert sig.coverage.coverage == "ENTIRE_FILE"
    expected = {"B-B": [], "B-T": ["signature"], "B-LT": ["signature"]}.get(
        level.value, ["signature", "archive"]
    )
    assert [t.kind for t in sig.timestamps] == expected
    assert all(t.valid and "TSA" in t.tsa for t in sig.timestamps)
    mandate = sig.mandate
    assert mandate is not None and mandate.holds and mandate.covers_purpose is True
    (hop,) = mandate.hops
    assert hop.mandate_id == chain["root"]["id"] and hop.depth == 0
    assert mandate.root_grant.checked and mandate.root_grant.reasons == ()
    assert mandate.root_grant.corporation == "株式会社大理建設"
    assert report.to_json()["signatures"][0]["level"] == level.value


def test_a_detached_signature_needs_and_checks_its_document(signed, trust, no_network):
    bare = VerificationTrust(
        roots=trust.roots,
        aa_certificates=trust.aa_certificates,
        registration_roots=trust.registration_roots,
    )
    (sig,) = verify_xml(signed["detached"], bare, detached={"bid.xml": APPLICATION}).signatures
    assert sig.indication is Indication.TOTAL_PASSED, sig.message
    assert sig.level.value == "B-LTA" and sig.coverage.coverage == "DETACHED:bid.xml"
    (sig,) = verify_xml(signed["detached"], bare).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        "SIGNED_DATA_NOT_FOUND",
    )
    changed = APPLICATION.replace(b"9800000", b"9800001")
    (sig,) = verify_xml(signed["detached"], bare, detached={"bid.xml": changed}).signatures
    assert (sig.indication, sig.sub_indication) == (Indication.TOTAL_FAILED, "HASH_FAILURE")


def test_a_changed_byte_fails(signed, trust):
    xml = signed[XadesLevel.B_LTA]
    for old, new in (
        (b"9800000", b"9800001"),  # the document
        (b'href="form.xsl"', b'href="evil.xsl"'),  # the signed stylesheet instruction
    ):
        tampered = xml.replace(old, new, 1)
        assert tampered != xml
        (sig,) = verify_xml(tampered, trust).signatures
        assert (sig.indication, sig.sub_indication) == (Indication.TOTAL_FAILED, "HASH_FAILURE")
    # the validation data the archive time-stamp covers: one CRL more
    root = etree.fromstring(xml)
    crls = root.find(
        "ds:Signature/ds:Object/xades:QualifyingProperties/xades:UnsignedProperties/"
        "xades:UnsignedSignatureProperties/xades:RevocationValues/xades:CRLValues",
        NS,
    )
    crls.append(copy.deepcopy(crls[0]))
    (sig,) = verify_xml(etree.tostring(root.getroottree(), encoding="UTF-8"), trust).signatures
    assert (sig.indication, sig.sub_indication) == (Indication.TOTAL_FAILED, "HASH_FAILURE")
    assert [t.valid for t in sig.timestamps] == [True, False]
    # the signature value: the time-stamp over it no longer matches, nor the key
    root = etree.fromstring(xml)
    value = root.find("ds:Signature/ds:SignatureValue", NS)
    raw = bytearray(base64.b64decode(value.text))
    raw[7] ^= 1
    value.text = base64.b64encode(bytes(raw)).decode()
    (sig,) = verify_xml(etree.tostring(root.getroottree(), encoding="UTF-8"), trust).signatures
    assert (sig.indication, sig.sub_indication) == (Indication.TOTAL_FAILED, "SIG_CRYPTO_FAILURE")


def _wrapped(xml: bytes, how: str) -> bytes:
    """A signature-wrapping rearrangement: the signed SignedProperties moved away and
    a forged one (another signing time) in its place."""
    root = etree.fromstring(xml)
    signature = root.find("ds:Signature", NS)
    original = signature.find(SP, NS)
    forged = copy.deepcopy(original)
    forged.find(
        "xades:SignedSignatureProperties/xades:SigningTime", NS
    ).text = "2020-01-01T00:00:00Z"
    original.addprevious(forged)
    if how == "into-object":  # the original, Id and all, inside a new ds:Object
        holder = etree.SubElement(signature, f"{{{NS['ds']}}}Object")
        holder.append(original)
        del forged.attrib["Id"]
    elif how == "duplicate-id":  # both stay, the forged one first
        holder = etree.SubElement(root, "wrapper")
        holder.append(original)
    return etree.tostring(root.getroottree(), encoding="UTF-8")


@pytest.mark.parametrize("how", ["into-object", "duplicate-id"])
def test_signature_wrapping_is_refused(signed, trust, how):
    wrapped = _wrapped(signed[XadesLevel.B_T], how)
    if how == "into-object":
        # Every digest still matches: only where the references point gives it away.
        root = etree.fromstring(wrapped)
        der = root.findtext("ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate", None, NS)
        results = XmlSignatureReader().verify(
            root,
            x509_cert=x509.load_der_x509_certificate(base64.b64decode(der)),
            expect_config=XAdESSignatureConfiguration(expect_references=6),
        )
        assert len(results) == 6
    (sig,) = verify_xml(wrapped, trust).signatures
    assert (sig.indication, sig.sub_indication) == (Indication.TOTAL_FAILED, "FORMAT_FAILURE")
    assert sig.reasons == (SIGNATURE_WRAPPING,)


def test_the_signed_document_moved_under_a_forged_root_is_refused(signed, trust):
    root = etree.fromstring(signed[XadesLevel.B_B])
    forged = etree.Element("{urn:example:bid}入札書")
    etree.SubElement(forged, "{urn:example:bid}金額").text = "1"
    forged.append(root)
    (sig,) = verify_xml(etree.tostring(forged, encoding="UTF-8"), trust).signatures
    assert sig.indication is Indication.TOTAL_FAILED and sig.reasons == (SIGNATURE_WRAPPING,)


def test_a_second_signature_is_checked_on_its_own(signed, trust):
    # A copy of the signature under new Ids with a forged value: signxml alone would
    # check the first signature's cryptography in its place.
    root = etree.fromstring(signed[XadesLevel.B_B])
    forged = copy.deepcopy(root.find("ds:Signature", NS))
    for element in forged.iter():
        for name in ("Id", "Target", "URI", "ObjectReference"):
            value = element.get(name)
            if value and value.lstrip("#").startswith("SignXML"):
                element.set(name, value.replace("SignXML", "Forged", 1))
    forged.find("ds:SignatureValue", NS).text = base64.b64encode(b"\0" * 256).decode()
    root.append(forged)
    report = verify_xml(etree.tostring(root.getroottree(), encoding="UTF-8"), trust)
    assert [s.field_name.startswith("Forged") for s in report.signatures] == [False, True]
    forged_report = report.signatures[1]
    assert (forged_report.indication, forged_report.sub_indication) == (
        Indication.TOTAL_FAILED,
        "SIG_CRYPTO_FAILURE",
    ), forged_report.message
    assert report.indication is Indication.TOTAL_FAILED


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"action": "contract"}, "SCOPE_ACTION_NOT_GRANTED"),
        ({"amount_jpy": 100_000_001}, "SCOPE_AMOUNT_EXCEEDED"),
    ],
)
def test_a_purpose_outside_the_mandate_fails_with_its_code(signed, trust, chain, changes, code):
    report = verify_xml(
        signed[XadesLevel.B_LT],
        trust,
        _purpose(**changes),
        principal=chain["corp"].corporate_number,
    )
    (sig,) = report.signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.TOTAL_FAILED,
        "SIG_CONSTRAINTS_FAILURE",
    )
    assert sig.mandate.covers_purpose is False and code in sig.reasons


def test_the_mandate_needs_a_trusted_aa_and_the_right_principal(signed, trust, chain):
    xml = signed[XadesLevel.B_LT]
    (sig,) = verify_xml(xml, trust, _purpose(), principal="1234567890123").signatures
    assert sig.indication is Indication.TOTAL_FAILED and "PRINCIPAL_MISMATCH" in sig.reasons
    no_aa = VerificationTrust(roots=trust.roots, registration_roots=trust.registration_roots)
    (sig,) = verify_xml(xml, no_aa, _purpose()).signatures
    assert sig.indication is Indication.TOTAL_FAILED and sig.reasons == ("AC_NOT_ISSUED_BY_AA",)


def test_hostile_or_unsigned_xml_is_refused(trust):
    bomb = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    with pytest.raises(XmlUnsafe) as info:
        verify_xml(bomb, trust)
    assert info.value.code == "XML_UNSAFE"
    with pytest.raises(DocumentNotSigned):
        verify_xml(APPLICATION, trust)
    with pytest.raises(DocumentNotXml):
        verify_xml(b"%PDF-1.7\n", trust)
    with pytest.raises(DocumentTooLarge):
        verify_xml(APPLICATION, trust, max_bytes=100)


def test_a_sub_delegated_signature_shows_both_hops_and_its_evidence_is_checked(
    served, hsm, pki, chain, trust
):
    from dataclasses import replace

    from helpers_mandates import sub_grant

    from signing.mandate_evidence import evidence_file_names

    client = served.test_client()
    suzuki = new_employee(client, hsm, pki, chain["corp"], "鈴木\u3000花子")
    sub = sub_grant(client, hsm, chain["corp"], chain["root"], chain["yamada"], suzuki)
    context = served.extensions["dairi"]
    with context.session_factory() as session:
        rows = [session.get(Mandate, i) for i in (chain["root"]["id"], sub["id"])]
        evidence = mandate_evidence(context, session, rows, long_term=True)
        session.commit()
    signer = XadesSigner(
        hsm, tsa=context.tsa, validation_data=context.validation_data, max_document_bytes=1_000_000
    )
    spec = XadesSpec(level=XadesLevel.B_LT, mandate=evidence)
    purpose, principal = _purpose(), chain["corp"].corporate_number
    signed = signer.sign(APPLICATION, suzuki.credential, spec).xml
    (sig,) = verify_xml(signed, trust, purpose, principal=principal).signatures
    assert sig.indication is Indication.TOTAL_PASSED, (sig.message, sig.reasons)
    assert [hop.depth for hop in sig.mandate.hops] == [0, 1]
    # The sub-delegation's instruction edited: not the one its AC certifies.
    name = evidence_file_names(1)[0]
    files = tuple(replace(f, data=f.data + b" ") if f.name == name else f for f in evidence.files)
    altered = signer.sign(
        APPLICATION, suzuki.credential, replace(spec, mandate=replace(evidence, files=files))
    ).xml
    (sig,) = verify_xml(altered, trust, purpose, principal=principal).signatures
    assert sig.indication is Indication.TOTAL_FAILED
    assert sig.reasons == ("EVIDENCE_MISMATCH",)
