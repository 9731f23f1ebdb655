"""signing.verification_asn1: inside a verification, names are compared through
remembered prepared forms (RFC 5280 §7.1 equality kept: case and inner spaces folded)
and validation data DER seen before is not parsed again; outside, nothing changes."""

from __future__ import annotations

from datetime import UTC, datetime

from asn1crypto import crl, x509

from signing.verification_asn1 import remembered_asn1, remembered_count


def _name(common_name: str, organization: str = "株式会社代理建設") -> x509.Name:
    built = x509.Name.build({"common_name": common_name, "organization_name": organization})
    return x509.Name.load(built.dump())  # as parsed from a certificate


def test_name_equality_inside_a_verification_is_rfc_5280s():
    pairs = [
        (_name("dairi Development Root CA"), _name("dairi Development Root CA"), True),
        (_name("dairi Development Root CA"), _name("DAIRI  development root ca"), True),
        (_name("dairi Development Root CA"), _name("dairi Development TSA"), False),
        (_name("山田 太郎"), _name("山田 太郎", organization="別の会社"), False),
    ]
    with remembered_asn1():
        inside = [a == b for a, b, _ in pairs]
        again = [a == b for a, b, _ in pairs]  # from the remembered forms
    assert inside == again == [expected for _, _, expected in pairs]


def test_outside_a_verification_nothing_is_remembered():
    names, _ = remembered_count()
    assert _name("Outside Only CA") == _name("outside only ca")
    assert remembered_count()[0] == names
    with remembered_asn1():
        assert _name("Inside Only CA") == _name("inside  only CA")
    assert remembered_count()[0] == names + 2


def test_validation_data_is_parsed_once_per_distinct_der_inside_only(pki):
    now = datetime.now(UTC)
    der = pki.cas["employee-signing"].crl(now=now)
    other = pki.cas["service-root"].crl(now=now)
    assert crl.CertificateList.load(der) is not crl.CertificateList.load(der)
    with remembered_asn1():
        first = crl.CertificateList.load(der)
        assert crl.CertificateList.load(der) is first
        assert crl.CertificateList.load(other) is not first
        assert crl.CertificateList.load(other).issuer == crl.CertificateList.load(other).issuer
    assert first.dump() == der
    assert crl.CertificateList.load(der) is not first


def test_an_outsize_name_is_not_remembered():
    names, _ = remembered_count()
    huge = _name("x" * 3000)
    with remembered_asn1():
        assert huge == _name("X" * 3000)
    assert remembered_count()[0] == names
