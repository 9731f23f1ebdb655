"""signing.verification_names: names compared through remembered prepared forms, only
inside a verification; RFC 5280 §7.1 equality (case and inner spaces folded) kept."""

from __future__ import annotations

from asn1crypto import x509

from signing.verification_names import remembered_count, remembered_names


def _name(common_name: str, organization: str = "株式会社代理建設") -> x509.Name:
    built = x509.Name.build({"common_name": common_name, "organization_name": organization})
    return x509.Name.load(built.dump())  # as parsed from a certificate


def test_equality_inside_a_verification_is_rfc_5280s():
    pairs = [
        (_name("dairi Development Root CA"), _name("dairi Development Root CA"), True),
        (_name("dairi Development Root CA"), _name("DAIRI  development root ca"), True),
        (_name("dairi Development Root CA"), _name("dairi Development TSA"), False),
        (_name("山田 太郎"), _name("山田 太郎", organization="別の会社"), False),
    ]
    with remembered_names():
        inside = [a == b for a, b, _ in pairs]
        again = [a == b for a, b, _ in pairs]  # from the remembered forms
    assert inside == again == [expected for _, _, expected in pairs]


def test_outside_a_verification_nothing_is_remembered():
    before = remembered_count()
    assert _name("Outside Only CA") == _name("outside only ca")
    assert remembered_count() == before
    with remembered_names():
        assert _name("Inside Only CA") == _name("inside  only CA")
    assert remembered_count() == before + 2
