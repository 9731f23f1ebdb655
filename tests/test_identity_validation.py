"""identity.trust and identity.validation against the development PKI (no mocks)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from pyhanko_certvalidator import validate as pkix

from devpki import DevCA, TransportFetcherBackend
from devpki.ca import CaUrls, end_entity_key_usage, new_rsa_key
from devpki.cards import (
    issue_my_number_card,
    issue_representative_card,
    registered_corporation_info,
)
from devpki.pki import CA_SUBJECTS
from identity import profiles
from identity.trust import TrustPurpose, TrustStore
from identity.validation import CertificateRefused, CertificateValidator

DER = serialization.Encoding.DER
UNKNOWN_OID = "1.3.6.1.4.1.99999.1"


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(DER)


def new_card(pki, **kw):
    return issue_my_number_card(
        pki,
        name="山田\u3000花子",
        birth_date="419900515",
        sex="2",
        address="大阪府大阪市北区梅田一丁目2番3号",
        prefecture="大阪府",
        city="大阪市北区",
        **kw,
    )


def representative(pki, number="011001098993"):
    return issue_representative_card(
        pki,
        corporate_name="株式会社代理",
        registered_number=number,
        head_office_address="東京都千代田区丸の内一丁目1番1号",
        representative_name="佐藤\u3000一郎",
        representative_title="代表取締役",
    )


def policies(oid: str) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(oid), None)])


def issue(
    ca: DevCA,
    pki,
    *,
    policy=profiles.JPKI_AUTH_POLICY,
    non_repudiation=False,
    key_usage=None,
    extra=(),
):
    key = new_rsa_key()
    return ca.issue(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.LOCALITY_NAME, "京都府"),
                x509.NameAttribute(NameOID.COMMON_NAME, "CRAFTED"),
            ]
        ),
        key.public_key(),
        now=pki.clock(),
        key_usage=key_usage or end_entity_key_usage(non_repudiation=non_repudiation),
        extensions=[(policies(policy), False), *extra],
    )


def refused(call, code: str) -> CertificateRefused:
    with pytest.raises(CertificateRefused) as info:
        call()
    assert info.value.code == code, info.value.message
    return info.value


class CountingTransport:
    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __call__(self, method, url, body):
        self.calls.append((method, url))
        return self.inner(method, url, body)


@pytest.fixture(scope="module")
def trust(pki, tmp_path_factory) -> TrustStore:
    directory = tmp_path_factory.mktemp("trust")
    pki.export_trust(directory)
    return TrustStore.from_directory(directory)


@pytest.fixture
def online(pki, trust) -> CertificateValidator:
    return CertificateValidator(trust, fetcher_backend=TransportFetcherBackend(pki.serve_url))


@pytest.fixture(scope="module")
def card(pki):
    return new_card(pki)


def test_trust_store_loads_one_file_per_purpose(pki, trust, tmp_path: Path):
    roots = {slug: der(c) for slug, c in pki.roots().items()}
    assert trust.anchors_for(TrustPurpose.JPKI_AUTH) == (roots["jpki-auth"],)
    assert trust.anchors_for(TrustPurpose.REGISTRAR) == (roots["registrar"],)
    assert (
        trust.anchors_for(TrustPurpose.TSA)
        == trust.anchors_for(TrustPurpose.SERVICE)
        == (roots["service-root"],)
    )
    # several certificates in one file; a missing file means no anchor
    pem = b"".join(
        pki.roots()[s].public_bytes(serialization.Encoding.PEM) for s in ("jpki-auth", "jpki-sign")
    )
    (tmp_path / "jpki-auth.pem").write_bytes(pem)
    store = TrustStore.from_directory(tmp_path)
    assert store.anchors_for(TrustPurpose.JPKI_AUTH) == (roots["jpki-auth"], roots["jpki-sign"])
    assert store.anchors_for(TrustPurpose.JPKI_SIGN) == ()


def test_valid_jpki_authentication_certificate(pki, online, card):
    cert = der(card.authentication.certificate)
    result = online.validate_now(cert, TrustPurpose.JPKI_AUTH)
    assert result.kind is profiles.CertificateKind.JPKI_AUTH and not result.test_card
    assert result.sha256 == hashlib.sha256(cert).hexdigest()
    assert result.path == (cert, der(pki.roots()["jpki-auth"]))
    assert result.serial_number == card.authentication.certificate.serial_number
    assert "JPKI for user authentication" in result.issuer
    assert result.personal_data is None and result.corporation is None
    assert result.not_before < result.validated_at < result.not_after


def test_valid_jpki_signing_certificate_carries_personal_data(online, card):
    result = online.validate_now(der(card.signing.certificate), TrustPurpose.JPKI_SIGN)
    assert result.kind is profiles.CertificateKind.JPKI_SIGN
    assert result.personal_data.name == "山田\u3000花子"
    assert result.personal_data.address == "大阪府大阪市北区梅田一丁目2番3号"
    assert result.personal_data.birth_date.value.isoformat() == "1990-05-15"
    assert "大阪" in result.subject
    for secret in ("大阪", "梅田", "date(1990", "419900515", "female"):
        assert secret not in repr(result)


def test_representative_certificate_with_critical_extensions_validates(online, pki):
    card = representative(pki)
    critical = {e.oid.dotted_string for e in card.certificate.extensions if e.critical}
    assert profiles.REGISTRATION_EXTENSIONS <= critical
    result = online.validate_now(der(card.certificate), TrustPurpose.REGISTRAR)
    assert result.kind is profiles.CertificateKind.CORPORATE_REGISTRATION
    assert result.corporation.registered_number == "011001098993"
    assert result.corporation.corporate_number == "4011001098993"
    assert result.corporation.representative_title == "代表取締役"


def test_the_widening_is_what_admits_the_registration_extensions(online, pki, monkeypatch):
    assert profiles.REGISTRATION_EXTENSIONS <= pkix.SUPPORTED_EXTENSIONS
    assert UNKNOWN_OID not in pkix.SUPPORTED_EXTENSIONS
    card = representative(pki)
    monkeypatch.setattr(
        pkix, "SUPPORTED_EXTENSIONS", pkix.SUPPORTED_EXTENSIONS - profiles.REGISTRATION_EXTENSIONS
    )
    error = refused(
        lambda: online.validate_now(der(card.certificate), TrustPurpose.REGISTRAR),
        "CERTIFICATE_INVALID",
    )
    assert profiles.REGISTERED_CORPORATION_INFO in error.message


def test_unknown_extra_critical_extension_is_refused(online, pki):
    unknown = (
        x509.UnrecognizedExtension(x509.ObjectIdentifier(UNKNOWN_OID), core.UTF8String("x").dump()),
        True,
    )
    jp = asn1_x509.CertificatePolicies([{"policy_identifier": profiles.REGISTRATION_POLICY}])
    registration = [
        (x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), True)
        for oid, value in (
            (profiles.CERTIFICATE_POLICIES_JP, jp.dump()),
            (profiles.REGISTRAR, core.UTF8String("東京法務局登記官").dump()),
            (
                profiles.REGISTERED_CORPORATION_INFO,
                registered_corporation_info({0: "株式会社代理", 1: "011001098993"}),
            ),
        )
    ]
    cert = issue(
        pki.ca_for_slug("registrar"), pki, non_repudiation=True, extra=[*registration, unknown]
    )
    error = refused(
        lambda: online.validate_now(der(cert), TrustPurpose.REGISTRAR), "CERTIFICATE_INVALID"
    )
    assert UNKNOWN_OID in error.message
    auth = issue(pki.ca_for_slug("jpki-auth"), pki, extra=[unknown])
    error = refused(
        lambda: online.validate_now(der(auth), TrustPurpose.JPKI_AUTH), "CERTIFICATE_INVALID"
    )
    assert UNKNOWN_OID in error.message and "京都" not in error.message  # subject scrubbed
    assert "京都" not in error.detail and error.__cause__ is None


def test_policy_of_another_purpose_is_a_policy_mismatch(online, card):
    refused(
        lambda: online.validate_now(der(card.signing.certificate), TrustPurpose.JPKI_AUTH),
        "CERTIFICATE_POLICY_MISMATCH",
    )
    refused(
        lambda: online.validate_now(der(card.authentication.certificate), TrustPurpose.REGISTRAR),
        "CERTIFICATE_POLICY_MISMATCH",
    )


@pytest.mark.parametrize(
    "subject",
    [
        CA_SUBJECTS["jpki-auth"],  # a look-alike of the real CA
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Other")]),
    ],
)
def test_certificate_from_an_unknown_ca_is_refused(online, pki, tmp_path, subject):
    foreign = DevCA.create(
        "foreign",
        tmp_path / "foreign",
        subject,
        CaUrls(
            "http://foreign.invalid/ca.cer",
            "http://foreign.invalid/crl",
            "http://foreign.invalid/ocsp",
        ),
        now=pki.clock(),
    )
    cert = issue(foreign, pki)
    refused(
        lambda: online.validate_now(der(cert), TrustPurpose.JPKI_AUTH), "CERTIFICATE_ISSUER_UNKNOWN"
    )
    refused(
        lambda: online.validate_now(der(foreign.certificate), TrustPurpose.JPKI_AUTH),
        "CERTIFICATE_POLICY_MISMATCH",
    )  # a CA certificate has no JPKI policy


def test_purpose_without_anchors_is_issuer_unknown(pki, card):
    validator = CertificateValidator(
        TrustStore({TrustPurpose.JPKI_SIGN: ()}),
        fetcher_backend=TransportFetcherBackend(pki.serve_url),
    )
    refused(
        lambda: validator.validate_now(
            der(card.authentication.certificate), TrustPurpose.JPKI_AUTH
        ),
        "CERTIFICATE_ISSUER_UNKNOWN",
    )


def test_expired_and_not_yet_valid(online, card):
    cert = card.authentication.certificate
    refused(
        lambda: online.validate_now(
            der(cert), TrustPurpose.JPKI_AUTH, at=cert.not_valid_after_utc + timedelta(days=1)
        ),
        "CERTIFICATE_EXPIRED",
    )
    refused(
        lambda: online.validate_now(
            der(cert), TrustPurpose.JPKI_AUTH, at=cert.not_valid_before_utc - timedelta(days=1)
        ),
        "CERTIFICATE_NOT_YET_VALID",
    )


def test_revoked_by_crl_offline(pki, trust):
    card = new_card(pki)
    ca = pki.ca_for_slug("jpki-auth")
    validator = CertificateValidator(
        trust, offline=True, offline_crls=lambda: [ca.crl(now=pki.clock())]
    )
    assert validator.validate_now(der(card.authentication.certificate), TrustPurpose.JPKI_AUTH)
    ca.revoke(
        card.authentication.certificate.serial_number,
        x509.ReasonFlags.key_compromise,
        now=pki.clock(),
    )
    validator = CertificateValidator(trust, offline=True, offline_crls=[ca.crl(now=pki.clock())])
    error = refused(
        lambda: validator.validate_now(
            der(card.authentication.certificate), TrustPurpose.JPKI_AUTH
        ),
        "CERTIFICATE_REVOKED",
    )
    assert (error.reason, error.revocation_source) == ("key_compromise", "crl")


def test_revoked_by_ocsp_online(pki, online):
    card = new_card(pki)
    pki.ca_for_slug("jpki-auth").revoke(
        card.authentication.certificate.serial_number,
        x509.ReasonFlags.cessation_of_operation,
        now=pki.clock(),
    )
    error = refused(
        lambda: online.validate_now(der(card.authentication.certificate), TrustPurpose.JPKI_AUTH),
        "CERTIFICATE_REVOKED",
    )
    assert (error.reason, error.revocation_source) == ("cessation_of_operation", "ocsp")


def test_signing_certificate_revoked_for_changed_details_means_reenrol(pki, online):
    card = new_card(pki)
    for slug, cert in (("jpki-sign", card.signing), ("jpki-auth", card.authentication)):
        pki.ca_for_slug(slug).revoke(
            cert.certificate.serial_number, x509.ReasonFlags.affiliation_changed, now=pki.clock()
        )
    error = refused(
        lambda: online.validate_now(der(card.signing.certificate), TrustPurpose.JPKI_SIGN),
        "REENROLL_REQUIRED",
    )
    assert error.reason == "affiliation_changed" and error.revocation_source == "ocsp"
    assert "大阪" not in error.message and "419900515" not in error.message
    # only the signing certificate means re-enrol; any other revocation is a revocation
    refused(
        lambda: online.validate_now(der(card.authentication.certificate), TrustPurpose.JPKI_AUTH),
        "CERTIFICATE_REVOKED",
    )


def test_test_cards_refused_unless_allowed(pki, trust, online):
    test_card = new_card(pki, test_card=True)
    auth, sign = der(test_card.authentication.certificate), der(test_card.signing.certificate)
    refused(
        lambda: online.validate_now(auth, TrustPurpose.JPKI_AUTH), "CERTIFICATE_POLICY_MISMATCH"
    )
    allowing = CertificateValidator(
        trust, allow_test_cards=True, fetcher_backend=TransportFetcherBackend(pki.serve_url)
    )
    result = allowing.validate_now(auth, TrustPurpose.JPKI_AUTH)
    assert result.test_card and result.kind is profiles.CertificateKind.JPKI_AUTH
    signed = allowing.validate_now(sign, TrustPurpose.JPKI_SIGN)
    assert signed.test_card and signed.personal_data.name == "山田\u3000花子"
    # the anchor decides the purpose: an authentication test card is no signing card
    refused(
        lambda: allowing.validate_now(auth, TrustPurpose.JPKI_SIGN), "CERTIFICATE_ISSUER_UNKNOWN"
    )


def test_wrong_key_usage_is_refused(pki, online):
    key_encipherment = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    auth = issue(pki.ca_for_slug("jpki-auth"), pki, key_usage=key_encipherment)
    refused(
        lambda: online.validate_now(der(auth), TrustPurpose.JPKI_AUTH),
        "CERTIFICATE_KEY_USAGE_MISMATCH",
    )
    sign = issue(pki.ca_for_slug("jpki-sign"), pki, policy=profiles.JPKI_SIGN_POLICY)
    error = refused(
        lambda: online.validate_now(der(sign), TrustPurpose.JPKI_SIGN),
        "CERTIFICATE_KEY_USAGE_MISMATCH",
    )
    assert "non_repudiation" in error.message


def test_offline_without_usable_crl_has_no_revocation_status(pki, trust, card):
    cert = der(card.authentication.certificate)
    refused(
        lambda: CertificateValidator(trust, offline=True).validate_now(
            cert, TrustPurpose.JPKI_AUTH
        ),
        "REVOCATION_STATUS_UNAVAILABLE",
    )
    stale = pki.ca_for_slug("jpki-auth").crl(now=pki.clock() - timedelta(days=3))
    refused(
        lambda: CertificateValidator(trust, offline=True, offline_crls=[stale]).validate_now(
            cert, TrustPurpose.JPKI_AUTH
        ),
        "REVOCATION_STATUS_UNAVAILABLE",
    )
    unreachable = CertificateValidator(
        trust,
        fetcher_backend=TransportFetcherBackend(
            lambda method, url, body: (503, "text/plain", b"down")
        ),
    )
    refused(
        lambda: unreachable.validate_now(cert, TrustPurpose.JPKI_AUTH),
        "REVOCATION_STATUS_UNAVAILABLE",
    )


@pytest.mark.parametrize("blob", [b"", b"not a certificate", b"\x30\x03\x02\x01\x01"])
def test_malformed_der_is_refused(online, card, blob):
    refused(lambda: online.validate_now(blob, TrustPurpose.JPKI_AUTH), "CERTIFICATE_MALFORMED")


def test_truncated_certificate_is_malformed(online, card):
    cert = der(card.authentication.certificate)
    refused(
        lambda: online.validate_now(cert[:-10], TrustPurpose.JPKI_AUTH), "CERTIFICATE_MALFORMED"
    )


@pytest.mark.parametrize("number", ["01100109899", "01100109899A"])
def test_malformed_registered_number_is_refused(online, pki, number):
    card = representative(pki, number)
    refused(
        lambda: online.validate_now(der(card.certificate), TrustPurpose.REGISTRAR),
        "CORPORATE_NUMBER_INVALID",
    )


def test_service_purpose_with_an_intermediate(pki, trust):
    issued = pki.issue_employee_certificate("鈴木 次郎", new_rsa_key().public_key())
    validator = CertificateValidator(trust, fetcher_backend=TransportFetcherBackend(pki.serve_url))
    result = validator.validate_now(
        der(issued.certificate), TrustPurpose.SERVICE, intermediates=[der(c) for c in issued.chain]
    )
    assert result.path == (
        der(issued.certificate),
        der(issued.chain[0]),
        der(pki.roots()["service-root"]),
    )
    refused(
        lambda: validator.validate_now(der(issued.certificate), TrustPurpose.TSA),
        "CERTIFICATE_KEY_USAGE_MISMATCH",
    )  # no timeStamping extended key usage


def test_verdicts_are_cached_and_refusals_are_not(pki, trust):
    counting = CountingTransport(pki.serve_url)
    validator = CertificateValidator(trust, fetcher_backend=TransportFetcherBackend(counting))
    card = new_card(pki)
    first = validator.validate_now(der(card.authentication.certificate), TrustPurpose.JPKI_AUTH)
    fetched = len(counting.calls)
    assert fetched >= 1 and any("/pki/ocsp/" in url for _, url in counting.calls)
    again = validator.validate_now(der(card.authentication.certificate), TrustPurpose.JPKI_AUTH)
    assert again is first and len(counting.calls) == fetched
    # a revocation inside the cache window is seen only when the window ends
    pki.ca_for_slug("jpki-auth").revoke(
        card.authentication.certificate.serial_number,
        x509.ReasonFlags.key_compromise,
        now=pki.clock(),
    )
    assert (
        validator.validate_now(der(card.authentication.certificate), TrustPurpose.JPKI_AUTH)
        is first
    )
    calls = len(counting.calls)
    pki.ca_for_slug("jpki-sign").revoke(
        card.signing.certificate.serial_number, x509.ReasonFlags.key_compromise, now=pki.clock()
    )
    for _ in range(2):
        refused(
            lambda: validator.validate_now(der(card.signing.certificate), TrustPurpose.JPKI_SIGN),
            "CERTIFICATE_REVOKED",
        )
    assert len(counting.calls) >= calls + 2  # each refusal asked again


def test_cache_disabled_sees_a_fresh_revocation(pki, trust):
    counting = CountingTransport(pki.serve_url)
    validator = CertificateValidator(
        trust, fetcher_backend=TransportFetcherBackend(counting), cache_max_age=timedelta(0)
    )
    card = new_card(pki)
    cert = der(card.authentication.certificate)
    validator.validate_now(cert, TrustPurpose.JPKI_AUTH)
    fetched = len(counting.calls)
    validator.validate_now(cert, TrustPurpose.JPKI_AUTH)
    assert len(counting.calls) > fetched
    pki.ca_for_slug("jpki-auth").revoke(
        card.authentication.certificate.serial_number,
        x509.ReasonFlags.key_compromise,
        now=pki.clock(),
    )
    refused(lambda: validator.validate_now(cert, TrustPurpose.JPKI_AUTH), "CERTIFICATE_REVOKED")
