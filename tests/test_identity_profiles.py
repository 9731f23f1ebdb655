"""identity.profiles over the development cards (devpki.cards)."""

from __future__ import annotations

from datetime import date

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization

from devpki.cards import issue_my_number_card, issue_representative_card
from identity.corporate_number import CorporateNumberError
from identity.profiles import (
    REGISTRATION_POLICY,
    BirthDate,
    CertificateKind,
    ProfileError,
    certificate_kind,
    jpki_personal_data,
    registered_corporation,
)


def asn1(cert):
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


@pytest.fixture(scope="module")
def card(pki):
    return issue_my_number_card(pki, name="山田\u3000太郎", birth_date="319800401", sex="1",
                                address="東京都千代田区霞が関一丁目1番1号",
                                prefecture="東京都", city="千代田区")


def test_my_number_card_certificates_are_classified_and_parsed(card):
    assert certificate_kind(asn1(card.authentication.certificate)) is CertificateKind.JPKI_AUTH
    signing = asn1(card.signing.certificate)
    assert certificate_kind(signing) is CertificateKind.JPKI_SIGN
    data = jpki_personal_data(signing)
    assert data.name == "山田\u3000太郎"
    assert data.sex == "male"
    assert data.birth_date == BirthDate(date(1980, 4, 1), "昭和")
    assert data.address == "東京都千代田区霞が関一丁目1番1号"
    assert data.name_flags == "0000"
    # Personal data stays out of reprs (and so out of logs).
    assert "霞が関" not in repr(data) and "1980" not in repr(data)


@pytest.mark.parametrize("text", [
    "519200101",  # 大正 date under the 令和 code
    "420190501",  # 令和 began that day: the 平成 code is wrong
    "519890107",  # still 昭和
    "719800401",  # unknown era
    "31980041",  # too short
    "319800231",  # no such day
])
def test_birth_dates_outside_their_era_are_refused(text):
    with pytest.raises(ProfileError):
        BirthDate.parse(text)


def test_era_boundaries():
    assert BirthDate.parse("420190430").era == "平成"
    assert BirthDate.parse("520190501").era == "令和"
    assert BirthDate.parse("419890108").era == "平成"


def test_registration_certificate_is_parsed_with_its_corporate_number(pki):
    rep = issue_representative_card(
        pki, corporate_name="株式会社サンプル商事", registered_number="011001098993",
        head_office_address="東京都千代田区丸の内一丁目1番1号",
        representative_name="佐藤 一郎", representative_title="代表取締役",
        extra_fields={7: "unknown field kept"})
    cert = asn1(rep.certificate)
    assert certificate_kind(cert) is CertificateKind.CORPORATE_REGISTRATION
    info = registered_corporation(cert)
    assert info.corporate_name == "株式会社サンプル商事"
    assert info.registered_number == "011001098993"
    assert info.corporate_number == "4011001098993"
    assert info.representative_title == "代表取締役"
    assert info.registry_office == "東京法務局"
    assert info.registrar == "東京法務局登記官"
    assert info.policies == (REGISTRATION_POLICY,)
    assert info.other_fields == {7: "unknown field kept"}
    critical = {ext["extn_id"].dotted for ext in cert["tbs_certificate"]["extensions"]
                if ext["critical"].native}
    assert "1.2.392.100300.1.1.3" in critical


@pytest.mark.parametrize("number", ["01100109899", "0110010989930", "01100109899X",
                                    "０１１００１０９８９９３"])
def test_registration_numbers_of_wrong_length_or_characters_are_refused(pki, number):
    rep = issue_representative_card(
        pki, corporate_name="株式会社不正", registered_number=number,
        head_office_address="東京都", representative_name="誰か", representative_title="代表取締役")
    with pytest.raises((CorporateNumberError, ProfileError)) as info:
        registered_corporation(asn1(rep.certificate))
    assert info.value.code in {"CORPORATE_NUMBER_INVALID", "CERTIFICATE_PROFILE_INVALID"}


def test_test_cards_carry_the_test_policy(pki):
    test_card = issue_my_number_card(pki, name="試験\u3000花子", birth_date="420000101",
                                     sex="2", address="大阪府", prefecture="大阪府",
                                     city="大阪市", test_card=True)
    assert certificate_kind(asn1(test_card.signing.certificate)) is CertificateKind.OTHER
