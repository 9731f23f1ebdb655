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
    return issue_my_number_card(
        pki,
        name="山田\u3000太郎",
        birth_date="319800401",
        sex="1",
        address="東京都千代田区霞が関一丁目1番1号",
        prefecture="東京都",
        city="千代田区",
    )


def test_my_number_card_certificates_are_classified_and_parsed(card):
    assert certificate_kind(asn1(card.authentication.certificate)) is CertificateKind.JPKI_AUTH
    signing = asn1(card.signing.certificate)
    assert certificate_kind(signing) is CertificateKind.JPKI_SIGN
    data = jpki_personal_data(signing)
    assert data.name == "山田\u3000太郎"
    assert data.sex == "1"  # the raw JPKI code (男)
    assert data.birth_date == BirthDate(date(1980, 4, 1), "昭和", "319800401")
    assert data.address == "東京都千代田区霞が関一丁目1番1号"
    assert data.name_flags == "0000"
    # Personal data stays out of reprs (and so out of logs).
    assert "霞が関" not in repr(data) and "1980" not in repr(data)


@pytest.mark.parametrize(
    "text",
    [
        "519200101",  # 大正 date under the 令和 code
        "420190501",  # 令和 began that day: the 平成 code is wrong
        "519890107",  # still 昭和
        "719800401",  # unknown era
        "31980041",  # too short
        "319800231",  # no such day
    ],
)
def test_birth_dates_outside_their_era_are_refused(text):
    with pytest.raises(ProfileError):
        BirthDate.parse(text)


def test_era_boundaries():
    assert BirthDate.parse("420190430").era == "平成"
    assert BirthDate.parse("520190501").era == "令和"
    assert BirthDate.parse("419890108").era == "平成"


def test_registration_certificate_is_parsed_with_its_corporate_number(pki):
    rep = issue_representative_card(
        pki,
        corporate_name="株式会社サンプル商事",
        registered_number="011001098993",
        head_office_address="東京都千代田区丸の内一丁目1番1号",
        representative_name="佐藤 一郎",
        representative_title="代表取締役",
        extra_fields={7: "unknown field kept"},
    )
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
    critical = {
        ext["extn_id"].dotted
        for ext in cert["tbs_certificate"]["extensions"]
        if ext["critical"].native
    }
    assert "1.2.392.100300.1.1.3" in critical


@pytest.mark.parametrize(
    "number", ["01100109899", "0110010989930", "01100109899X", "０１１００１０９８９９３"]
)
def test_registration_numbers_of_wrong_length_or_characters_are_refused(pki, number):
    rep = issue_representative_card(
        pki,
        corporate_name="株式会社不正",
        registered_number=number,
        head_office_address="東京都",
        representative_name="誰か",
        representative_title="代表取締役",
    )
    with pytest.raises((CorporateNumberError, ProfileError)) as info:
        registered_corporation(asn1(rep.certificate))
    assert info.value.code in {"CORPORATE_NUMBER_INVALID", "CERTIFICATE_PROFILE_INVALID"}


def test_test_cards_carry_the_test_policy(pki):
    test_card = issue_my_number_card(
        pki,
        name="試験\u3000花子",
        birth_date="420000101",
        sex="2",
        address="大阪府",
        prefecture="大阪府",
        city="大阪市",
        test_card=True,
    )
    assert certificate_kind(asn1(test_card.signing.certificate)) is CertificateKind.OTHER


# -- issue 10 item 11: profiles as wide as real cards ---------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("019800401", date(1980, 4, 1)),  # era unknown, the Gregorian date known
        ("019800000", None),  # month and day unknown
        ("000000000", None),  # nothing known
    ],
)
def test_a_birth_date_of_unknown_era_is_accepted_and_kept_raw(text, value):
    birth = BirthDate.parse(text)
    assert (birth.value, birth.era, birth.raw) == (value, "不明", text)


@pytest.mark.parametrize("text", ["01980040", "0198004O1", "０19800401"])
def test_a_birth_date_of_unknown_era_is_still_nine_ascii_digits(text):
    with pytest.raises(ProfileError):
        BirthDate.parse(text)


@pytest.fixture(scope="module")
def unknown_card(pki):
    """A holder whose era of birth and sex the register does not know (不明)."""
    return issue_my_number_card(
        pki,
        name="不明\u3000太郎",
        birth_date="019800000",
        sex="3",
        address="東京都千代田区霞が関一丁目1番1号",
        prefecture="東京都",
        city="千代田区",
    )


def test_sex_and_birth_date_of_unknown_value_are_read_raw(card, unknown_card):
    data = jpki_personal_data(asn1(unknown_card.signing.certificate))
    assert data.sex == "3"
    assert (data.birth_date.value, data.birth_date.era, data.birth_date.raw) == (
        None,
        "不明",
        "019800000",
    )
    assert jpki_personal_data(asn1(card.signing.certificate)).sex == "1"


def test_sexes_other_than_the_jpki_codes_are_refused(pki):
    for sex in ("4", "male", ""):
        cert = issue_my_number_card(
            pki,
            name="山田\u3000太郎",
            birth_date="319800401",
            sex=sex,
            address="東京都",
            prefecture="東京都",
            city="千代田区",
        )
        with pytest.raises(ProfileError):
            jpki_personal_data(asn1(cert.signing.certificate))


def test_a_holder_of_unknown_birth_era_and_sex_enrols_over_http(client, pki, unknown_card):
    from helpers_auth import invite, login, new_corporation, try_enrol

    corp = new_corporation(pki)
    rep = login(client, corp.representative)
    code = invite(client, rep, corp.corporate_number, name="不明\u3000太郎")["code"]
    response = try_enrol(client, code, unknown_card)
    assert response.status_code == 201, response.get_json()
    assert login(client, unknown_card.authentication)


def test_the_basic_items_digest_of_known_values_is_unchanged():
    """Digests of people enrolled before item 11 must still match on a re-bind: the
    document of known values is what it was (bytes written out here, not computed)."""
    from identity.profiles import JpkiPersonalData, basic_items_document

    items = JpkiPersonalData(
        name="山田\u3000太郎", sex="1", birth_date=BirthDate.parse("419900115"), address="東京都"
    )
    assert (
        basic_items_document(items)
        == (
            '{"address":"東京都","birth_date":"1990-01-15","name":"山田太郎","sex":"male",'
            '"type":"dairi-jpki-basic-items/1"}'
        ).encode()
    )
    unknown = JpkiPersonalData(
        name="山田\u3000太郎", sex="3", birth_date=BirthDate.parse("019900100"), address="東京都"
    )
    assert (
        basic_items_document(unknown)
        == (
            '{"address":"東京都","birth_date":"019900100","name":"山田太郎","sex":"3",'
            '"type":"dairi-jpki-basic-items/1"}'
        ).encode()
    )


def test_unknown_values_are_stored_raw_when_personal_data_is_kept(
    app, app_settings, hsm, pki, unknown_card
):
    import json

    from helpers_auth import invite, login, new_corporation, try_enrol

    from app.factory import create_app
    from app.people.models import Person

    keeping = create_app(app_settings.replace(keep_personal_data=True), hsm=hsm)
    keeping.config["TESTING"] = True
    try:
        client = keeping.test_client()
        corp = new_corporation(pki)
        code = invite(
            client, login(client, corp.representative), corp.corporate_number, name="不明\u3000太郎"
        )["code"]
        response = try_enrol(client, code, unknown_card)
        assert response.status_code == 201, response.get_json()
        with keeping.extensions["dairi"].session_factory() as session:
            person = session.get(Person, response.get_json()["person_id"])
            kept = json.loads(person.personal_data)
        assert (kept["birth_date"], kept["sex"]) == ("019800000", "3")
    finally:
        keeping.extensions["dairi"].engine.dispose()


def _extension(cert, name):
    return next(
        ext for ext in asn1(cert)["tbs_certificate"]["extensions"] if ext["extn_id"].native == name
    )


@pytest.mark.parametrize("role", ["authentication", "signing"])
def test_development_jpki_certificates_look_like_real_ones(card, role):
    """Real cards: certificatePolicies critical with a CPS qualifier, and an issuerAltName
    (DESIGN §4). The validator must accept the critical extension (login and enrolment
    tests over HTTP run on these cards)."""
    cert = getattr(card, role).certificate
    policies = _extension(cert, "certificate_policies")
    assert policies["critical"].native is True
    qualifiers = [q for p in policies["extn_value"].parsed for q in (p["policy_qualifiers"] or [])]
    assert [q["policy_qualifier_id"].native for q in qualifiers] == [
        "certification_practice_statement"
    ]
    assert qualifiers[0]["qualifier"].native.startswith("http")
    alt = _extension(cert, "issuer_alt_name")["extn_value"].parsed
    assert [n.name for n in alt] == ["directory_name"]
    assert alt[0].chosen.native["country_name"] == "JP"


def test_development_registration_certificates_write_names_without_spaces(pki):
    rep = issue_representative_card(
        pki,
        corporate_name="株式会社サンプル商事",
        registered_number="011001098993",
        head_office_address="東京都千代田区丸の内一丁目1番1号",
        representative_name="佐藤\u3000一郎",
        representative_title="代表取締役",
    )
    cert = asn1(rep.certificate)
    assert registered_corporation(cert).representative_name == "佐藤一郎"
    assert cert.subject.native["common_name"] == "佐藤一郎"


def _registration_certificate(pki, info_der: bytes):
    """A registration certificate whose registeredCorporationInfo is ``info_der`` as given."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from devpki.ca import end_entity_key_usage, new_rsa_key
    from identity.profiles import REGISTERED_CORPORATION_INFO

    key = new_rsa_key()
    return pki.ca_for_slug("registrar").issue(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]),
        key.public_key(),
        now=pki.clock(),
        key_usage=end_entity_key_usage(non_repudiation=True),
        extensions=[
            (
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier(REGISTERED_CORPORATION_INFO), info_der
                ),
                True,
            )
        ],
    )


def _tlv(tag: int, content: bytes) -> bytes:
    assert len(content) < 0x80
    return bytes([tag, len(content)]) + content


def test_registration_fields_are_read_in_every_directory_string_type(pki):
    """registeredCorporationInfo fields are DirectoryString: each of its five string types
    is read. The DER is written byte by byte here (tag, length, encoded text)."""
    name = "株式会社ビー"
    fields = [
        _tlv(0xA0, _tlv(0x1E, name.encode("utf-16-be"))),  # [0] BMPString
        _tlv(0xA1, _tlv(0x13, b"011001098993")),  # [1] PrintableString
        _tlv(0xA2, _tlv(0x1C, "東京都".encode("utf-32-be"))),  # [2] UniversalString
        _tlv(0xA3, _tlv(0x0C, "佐藤一郎".encode())),  # [3] UTF8String
        _tlv(0xA4, _tlv(0x0C, "代表取締役".encode())),  # [4] UTF8String
        _tlv(0xA6, _tlv(0x14, b"Tokyo Legal Affairs Bureau")),  # [6] TeletexString
    ]
    der = _tlv(0x30, b"".join(fields))
    info = registered_corporation(asn1(_registration_certificate(pki, der)))
    assert (
        info.corporate_name,
        info.registered_number,
        info.head_office_address,
        info.representative_name,
        info.representative_title,
        info.registry_office,
    ) == (name, "011001098993", "東京都", "佐藤一郎", "代表取締役", "Tokyo Legal Affairs Bureau")


@pytest.mark.parametrize(
    "inner",
    [
        _tlv(0x02, b"\x01"),  # INTEGER
        _tlv(0x16, b"ia5"),  # IA5String: not a DirectoryString type
        _tlv(0x1E, b"\x00"),  # BMPString of an odd number of bytes
    ],
)
def test_registration_fields_of_other_types_are_refused(pki, inner):
    der = _tlv(0x30, _tlv(0xA0, inner) + _tlv(0xA1, _tlv(0x13, b"011001098993")))
    with pytest.raises(ProfileError):
        registered_corporation(asn1(_registration_certificate(pki, der)))


# -- policy OIDs are settings (today's values the defaults) ----------------------------

SMARTPHONE_AUTH = "1.2.392.200149.8.5.1.3.99"  # invented here: a policy not in the defaults
OTHER_REGISTRATION = "1.2.392.100300.1.3.99"  # likewise


def test_policy_oid_settings_default_to_todays_values(base_settings):
    assert base_settings.jpki_auth_policies == ("1.2.392.200149.8.5.1.3.30",)
    assert base_settings.jpki_sign_policies == ("1.2.392.200149.8.5.1.1.20",)
    assert base_settings.jpki_test_policies == ("1.2.392.200149.8.5.1.0.20",)
    assert base_settings.registration_policies == ("1.2.392.100300.1.3.4",)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"jpki_auth_policies": ""}, "jpki_auth_policies"),
        ({"jpki_sign_policies": "1.2.392.x"}, "jpki_sign_policies"),
        ({"registration_policies": "urn:policy"}, "registration_policies"),
        # a test-card policy taken as a real one would let test cards in without allow_test_cards
        ({"jpki_auth_policies": "1.2.392.200149.8.5.1.3.30,1.2.392.200149.8.5.1.0.20"}, "test"),
        # one policy for both JPKI certificates would blur authentication and signing
        ({"jpki_sign_policies": "1.2.392.200149.8.5.1.3.30"}, "both"),
    ],
)
def test_policy_oid_settings_are_checked_at_start(base_settings, changes, message):
    from app.settings import SettingsError, load_settings

    env = {f"DAIRI_{k.upper()}": v for k, v in changes.items()}
    with pytest.raises(SettingsError, match=message):
        load_settings(env=env, data_dir=str(base_settings.data_dir))


@pytest.fixture
def configured_app(app, app_settings, hsm):
    """A second app on the same database, with one more JPKI authentication policy
    and one more registration policy configured."""
    from app.factory import create_app

    configured = create_app(
        app_settings.replace(
            jpki_auth_policies=("1.2.392.200149.8.5.1.3.30", SMARTPHONE_AUTH),
            registration_policies=("1.2.392.100300.1.3.4", OTHER_REGISTRATION),
        ),
        hsm=hsm,
    )
    configured.config["TESTING"] = True
    yield configured
    configured.extensions["dairi"].engine.dispose()


def test_a_configured_jpki_policy_is_accepted_over_http(client, configured_app, pki):
    from helpers_auth import invite, login, new_corporation, try_enrol, try_login

    card = issue_my_number_card(
        pki,
        name="山田\u3000太郎",
        birth_date="419900115",
        sex="1",
        address="東京都",
        prefecture="東京都",
        city="千代田区",
        auth_policy=SMARTPHONE_AUTH,
    )
    refused = try_login(client, card.authentication)  # the default policy set
    assert (refused.status_code, refused.get_json()["code"]) == (403, "CERTIFICATE_POLICY_MISMATCH")
    other = configured_app.test_client()
    corp = new_corporation(pki)
    code = invite(
        other, login(other, corp.representative), corp.corporate_number, name="山田\u3000太郎"
    )["code"]
    response = try_enrol(other, code, card)
    assert response.status_code == 201, response.get_json()
    assert login(other, card.authentication)


def test_a_configured_registration_policy_is_accepted_over_http(client, configured_app, pki):
    from helpers_auth import login, try_login

    rep = issue_representative_card(
        pki,
        corporate_name="株式会社サンプル商事",
        registered_number="011001098993",
        head_office_address="東京都",
        representative_name="佐藤一郎",
        representative_title="代表取締役",
        policy=OTHER_REGISTRATION,
    )
    refused = try_login(client, rep)
    assert (refused.status_code, refused.get_json()["code"]) == (403, "CERTIFICATE_POLICY_MISMATCH")
    assert login(configured_app.test_client(), rep)


def test_a_configured_test_card_policy_is_refused_unless_test_cards_are_allowed(
    app, app_settings, hsm, pki
):
    from helpers_auth import try_login

    from app.factory import create_app

    test_policy = "1.2.392.200149.8.5.1.0.99"  # invented
    card = issue_my_number_card(
        pki,
        name="試験\u3000花子",
        birth_date="420000101",
        sex="2",
        address="東京都",
        prefecture="東京都",
        city="千代田区",
        auth_policy=test_policy,
    )
    for allow, expected in (
        (False, "CERTIFICATE_POLICY_MISMATCH"),
        (True, "CERTIFICATE_NOT_ENROLLED"),
    ):  # past the policy check
        other = create_app(
            app_settings.replace(jpki_test_policies=(test_policy,), allow_test_cards=allow), hsm=hsm
        )
        other.config["TESTING"] = True
        try:
            response = try_login(other.test_client(), card.authentication)
            assert response.get_json()["code"] == expected, response.get_json()
        finally:
            other.extensions["dairi"].engine.dispose()


# -- 支配人 is not a default representative title ------------------------------------


def test_a_manager_is_not_a_representative_by_default_but_may_be_configured(
    client, app, app_settings, hsm, pki
):
    """A 支配人's authority is limited to one 営業所's business, so the defaults do not
    make one a representative; an installation may still list the title."""
    from helpers_auth import login, new_corporation, try_login

    from app.factory import create_app

    assert "支配人" not in app_settings.representative_titles
    corp = new_corporation(pki, title="支配人")
    refused = try_login(client, corp.representative)
    assert (refused.status_code, refused.get_json()["code"]) == (403, "NOT_A_REPRESENTATIVE")
    configured = create_app(
        app_settings.replace(representative_titles=(*app_settings.representative_titles, "支配人")),
        hsm=hsm,
    )
    configured.config["TESTING"] = True
    try:
        assert login(configured.test_client(), corp.representative)
    finally:
        configured.extensions["dairi"].engine.dispose()
