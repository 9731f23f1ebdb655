"""Mandate attribute certificates: structure, round trip, and validation by
pyhanko-certvalidator's ``async_validate_ac`` with the AA's OCSP and CRL answered in process."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asn1crypto import cms, ocsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fixtures_pki import make_credential
from helpers_delegation_ac import (
    CRL_ONLY,
    DER,
    make_terms,
    now,
    sha256,
    validate,
)
from pyhanko_certvalidator.context import ACTargetDescription
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InvalidAttrCertificateError,
    RevokedError,
)

from delegation import asn1
from delegation.certificates import (
    AttributeAuthority,
    MandateCertificateError,
    MandateTerms,
    parse_mandate_certificate,
)

# -- structure and round trip --------------------------------------------------


def test_an_issued_ac_round_trips(endpoints, employee, pki):
    terms = make_terms(employee.certificate_der)
    der = endpoints.issue(terms, employee.certificate_der)
    parsed = parse_mandate_certificate(der)
    assert parsed.terms == terms
    assert parsed.der == der and parsed.depth == 0 and parsed.ancestors == ()
    assert parsed.targets == ()
    assert parsed.serial_number in endpoints.issued
    assert parsed.is_held_by(employee.certificate_der)
    assert parsed.issuer == asn1_x509.Certificate.load(
        pki.aa_certificate.public_bytes(DER)).subject.dump()
    assert "Attribute Authority" in parsed.issuer_name
    assert MandateTerms.from_attribute_certificate(der) == terms


def test_the_ac_follows_rfc_5755_and_registers_the_dairi_types(endpoints, employee, pki, aa):
    der = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
    ac = cms.AttributeCertificateV2.load(der)
    info = ac["ac_info"]
    holder = asn1_x509.Certificate.load(employee.certificate_der)
    aa_cert = asn1_x509.Certificate.load(aa.certificate_der)
    assert info["version"].native == "v2"
    assert info["holder"]["base_certificate_id"]["serial"].native == holder.serial_number
    assert info["holder"]["base_certificate_id"]["issuer"][0].chosen == holder.issuer
    assert info["issuer"].name == "v2_form"
    assert info["issuer"].chosen["issuer_name"][0].chosen == aa_cert.subject
    assert ac["signature_algorithm"]["algorithm"].native == "sha256_rsa"
    validity = info["att_cert_validity_period"]
    assert validity["not_before_time"].tag == 24  # GeneralizedTime
    attributes = {a["type"].native: a["values"] for a in info["attributes"]}
    assert [r["role_name"].chosen.dump() for r in attributes["role"]] == [
        asn1_x509.GeneralName(name="uniform_resource_identifier", value=v).chosen.dump()
        for v in ("urn:dairi:action:bid", "urn:dairi:action:quote",
                  "urn:dairi:action:e-application:%E5%BB%BA%E8%A8%AD%E6%A5%AD%E8%A8%B1"
                  "%E5%8F%AF%E7%94%B3%E8%AB%8B")]
    mandate = attributes[asn1.MANDATE_ATTRIBUTE][0].native
    assert mandate["principal"]["name"] == "株式会社大理建設"
    assert mandate["sub_delegation"] == {"max_depth": 1} and mandate["cases"] is None
    assert info["attributes"][1]["type"].dotted == asn1.MANDATE_ATTRIBUTE_OID
    extensions = {e["extn_id"].native: e for e in info["extensions"]}
    assert set(extensions) == {"authority_key_identifier", "authority_information_access",
                               "crl_distribution_points", asn1.PROVENANCE_EXTENSION}
    assert not any(e["critical"].native for e in extensions.values())
    aki = extensions["authority_key_identifier"]["extn_value"].parsed
    assert aki["key_identifier"].native == aa_cert.key_identifier
    aia = extensions["authority_information_access"]["extn_value"].native
    assert aia == [{"access_method": "ocsp", "access_location": aa.ocsp_url}]
    assert extensions["crl_distribution_points"]["extn_value"].native[0][
        "distribution_point"] == [aa.crl_url]
    assert extensions[asn1.PROVENANCE_EXTENSION]["extn_id"].dotted == \
        asn1.PROVENANCE_EXTENSION_OID
    assert extensions[asn1.PROVENANCE_EXTENSION]["extn_value"].native == {
        "depth": 0, "ancestors": []}


def test_mandate_encoding_uses_implicit_tags():
    terms = make_terms(b"cert", max_depth=0, cases=("R7-001",), procuring_entities=None)
    der = terms.to_asn1().dump()
    value = asn1.Mandate.load(der)
    assert value["sub_delegation"].native is None  # max_depth 0: absent
    assert value["procuring_entities"].native is None
    assert b"\xa1\x08\x0c\x06R7-001" in der  # cases [1] IMPLICIT SEQUENCE OF
    assert b"\x82\x04\x05\xf5\xe1\x00" in der  # amountLimitJPY [2] IMPLICIT INTEGER
    assert b"\x84\x20" + sha256(b"instruction") in der  # instructionDigest [4] IMPLICIT
    assert MandateTerms.from_asn1(value, not_before=terms.not_before,
                                  not_after=terms.not_after) == terms


# -- validation by pyhanko-certvalidator --------------------------------------


def test_pyhanko_certvalidator_accepts_the_ac_checking_it_by_ocsp(endpoints, employee, pki):
    der = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
    context = endpoints.context()
    result = validate(der, employee.certificate_der, context)
    assert result.aa_cert.dump() == pki.aa_certificate.public_bytes(DER)
    assert set(result.approved_attributes) == {"role", asn1.MANDATE_ATTRIBUTE}
    assert endpoints.hits["ocsp"] == 1 and endpoints.hits["crl"] == 0
    responses = [ocsp.OCSPResponse.load(o.dump()) for o in context.ocsps]
    serials = {r["response_bytes"]["response"].parsed["tbs_response_data"]["responses"][0][
        "cert_id"]["serial_number"].native for r in responses}
    assert parse_mandate_certificate(der).serial_number in serials


def test_an_ac_revoked_at_the_ocsp_responder_is_refused(endpoints, employee):
    der = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
    endpoints.revoke(der, "privilege_withdrawn")
    with pytest.raises(RevokedError, match="privilege"):
        validate(der, employee.certificate_der, endpoints.context())


def test_an_ac_on_the_aa_crl_is_refused(pki, endpoints, employee):
    """The dev AA certificate carries cRLSign, so its AC CRL is accepted (pyhanko-
    certvalidator refuses a CRL whose issuer's keyUsage lacks it)."""
    good = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
    revoked = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
    endpoints.revoke(revoked, "affiliation_changed")
    validate(good, employee.certificate_der, endpoints.context(revinfo_policy=CRL_ONLY))
    assert endpoints.hits == {"ocsp": 0, "crl": 1}
    with pytest.raises(RevokedError, match="affiliation"):
        validate(revoked, employee.certificate_der, endpoints.context(revinfo_policy=CRL_ONLY))
    # Offline, with the AA's CRL and the service root's CRL handed over.
    offline = endpoints.context(
        allow_fetching=False, fetcher_backend=None,
        crls=[endpoints.crl(), pki.cas["service-root"].crl(now=now())])
    with pytest.raises(RevokedError):
        validate(revoked, employee.certificate_der, offline)


def test_an_ac_held_by_another_certificate_is_refused(endpoints, employee, hsm, pki):
    other = make_credential(hsm, pki, "佐藤 花子")
    der = endpoints.issue(make_terms(other.certificate_der), other.certificate_der)
    validate(der, other.certificate_der, endpoints.context())
    assert not parse_mandate_certificate(der).is_held_by(employee.certificate_der)
    with pytest.raises(InvalidAttrCertificateError, match="base_certificate_id"):
        validate(der, employee.certificate_der, endpoints.context())


def test_an_ac_signed_by_another_key_under_the_aa_name_is_refused(endpoints, employee):
    der = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
    ac = cms.AttributeCertificateV2.load(der)
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = cms.AttributeCertificateV2({
        "ac_info": ac["ac_info"], "signature_algorithm": ac["signature_algorithm"],
        "signature": impostor.sign(ac["ac_info"].dump(), padding.PKCS1v15(), hashes.SHA256()),
    }).dump()
    with pytest.raises(InvalidAttrCertificateError, match="signature could not be verified"):
        validate(forged, employee.certificate_der, endpoints.context())


def test_the_aa_refuses_to_sign_with_a_key_other_than_its_certificates(pki, employee):
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = AttributeAuthority(
        pki.aa_certificate.public_bytes(DER),
        lambda data: impostor.sign(data, padding.PKCS1v15(), hashes.SHA256()),
        ocsp_url="http://x/ocsp", crl_url="http://x/crl")
    with pytest.raises(MandateCertificateError) as refused:
        wrong.issue(make_terms(employee.certificate_der), employee.certificate_der,
                    serial_number=1)
    assert refused.value.code == "AA_KEY_MISMATCH"


def test_an_expired_ac_is_refused(endpoints, employee):
    terms = make_terms(employee.certificate_der, not_before=now() - timedelta(days=10),
                       not_after=now() - timedelta(days=1))
    der = endpoints.issue(terms, employee.certificate_der)
    with pytest.raises(ExpiredError):
        validate(der, employee.certificate_der, endpoints.context())


def test_provenance_carries_the_ancestors_whole(endpoints, employee, hsm, pki):
    manager = make_credential(hsm, pki, "部長 次郎")
    root = endpoints.issue(make_terms(manager.certificate_der, max_depth=2),
                           manager.certificate_der)
    child = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der,
                            ancestors=[root], depth=1)
    leaf = endpoints.issue(make_terms(employee.certificate_der, max_depth=0),
                           employee.certificate_der, ancestors=[root, child], depth=2)
    parsed = parse_mandate_certificate(leaf)
    assert parsed.depth == 2 and parsed.ancestors == (root, child)
    assert parse_mandate_certificate(parsed.ancestors[1]).ancestors == (root,)
    assert parse_mandate_certificate(parsed.ancestors[0]).is_held_by(manager.certificate_der)
    provenance = {e["extn_id"].native: e for e in
                  cms.AttributeCertificateV2.load(leaf)["ac_info"]["extensions"]}[
        asn1.PROVENANCE_EXTENSION]["extn_value"].parsed
    assert [a.dump() for a in provenance["ancestors"]] == [root, child]
    # A generic verifier sees one valid AC (the extension is not critical).
    validate(leaf, employee.certificate_der, endpoints.context())
    for ancestors, depth in (([root], 2), ([child], 1)):
        with pytest.raises(MandateCertificateError) as refused:
            endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der,
                            ancestors=ancestors, depth=depth)
        assert refused.value.code == "PROVENANCE_INCONSISTENT"


def test_target_information_restricts_the_relying_parties(endpoints, employee):
    targets = ["https://www.e-bisc.go.jp/", "portal.example.go.jp"]
    der = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der,
                          targets=targets)
    assert parse_mandate_certificate(der).targets == tuple(targets)
    ext = {e["extn_id"].native: e for e in
           cms.AttributeCertificateV2.load(der)["ac_info"]["extensions"]}["target_information"]
    assert ext["critical"].native
    names = [t.chosen for t in ext["extn_value"].parsed[0]]
    assert [n.name for n in names] == ["uniform_resource_identifier", "dns_name"]
    with pytest.raises(InvalidAttrCertificateError, match="targeting"):
        validate(der, employee.certificate_der, endpoints.context())
    elsewhere = ACTargetDescription(validator_names=[
        asn1_x509.GeneralName(name="dns_name", value="other.example.jp")])
    with pytest.raises(InvalidAttrCertificateError, match="targeting"):
        validate(der, employee.certificate_der,
                 endpoints.context(acceptable_ac_targets=elsewhere))
    here = ACTargetDescription(validator_names=[
        asn1_x509.GeneralName(name="dns_name", value="portal.example.go.jp")])
    validate(der, employee.certificate_der, endpoints.context(acceptable_ac_targets=here))
