"""Personal data kept as configured (issue 9 item 7): with keep_personal_data=false no
personal data but the name reaches the database — the JPKI signing certificate is
replaced by its hash, issuer, serial, validity, a redacted status reference and the
keyed digest of the four items — and its revocation is still checked at login."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from helpers_auth import enrolled_employee, login, move_clock, new_corporation, try_login
from sqlalchemy import inspect, select, text

from app.factory import create_app
from app.people.models import Person
from devpki import TransportFetcherBackend
from devpki.ca import OCSP_VALIDITY
from devpki.cards import issue_my_number_card
from identity.trust import TrustPurpose, TrustStore
from identity.validation import CertificateRefused, CertificateValidator, load_status_reference

DER = serialization.Encoding.DER
ADDRESS = "東京都千代田区霞が関一丁目1番1号"  # what helpers_auth.new_card writes
BIRTH_DATE = "419900115"  # EYYYYMMDD, as inside the certificate


def _stored_bytes(app, database: Path | None) -> bytes:
    """Every byte the database holds: the SQLite file and its WAL, or (any backend)
    every row of every table."""
    found = b""
    if database is not None:
        for path in (database, database.with_name(database.name + "-wal")):
            if path.exists():
                found += path.read_bytes()
    engine = app.extensions["dairi"].engine
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        found += bytes(value)
                    elif value is not None:
                        found += str(value).encode("utf-8")
    return found


def _database_file(app) -> Path | None:
    url = app.extensions["dairi"].settings.database_url
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def _enrol_and_login(client, pki) -> str:
    corp = new_corporation(pki)
    card, person_id, _ = enrolled_employee(client, pki, corp)
    login(client, card.authentication)
    return person_id


def test_without_keep_personal_data_no_address_or_birth_date_reaches_the_database(client, app, pki):
    person_id = _enrol_and_login(client, pki)
    stored = _stored_bytes(app, _database_file(app))
    assert "山田\u3000太郎".encode() in stored  # the name is kept
    assert ADDRESS.encode() not in stored
    assert BIRTH_DATE.encode() not in stored
    with app.extensions["dairi"].session_factory() as session:
        person = session.get(Person, person_id)
        assert person.signing_certificate_der is None and person.personal_data is None
        assert len(person.identity_digest) == 64 and person.identity_key_id
        assert person.signing_certificate_serial and person.signing_certificate_issuer
        assert "JPKI for digital signature" in person.signing_certificate_issuer
        assert person.signing_certificate_not_before < person.signing_certificate_not_after


@pytest.fixture
def keeping_app(app, app_settings, hsm):  # `app` migrates the database
    application = create_app(app_settings.replace(keep_personal_data=True), hsm=hsm)
    application.config["TESTING"] = True
    yield application
    application.extensions["dairi"].engine.dispose()


def test_with_keep_personal_data_the_items_are_kept(keeping_app, pki):
    """The positive control: the search above finds the items when they are stored."""
    person_id = _enrol_and_login(keeping_app.test_client(), pki)
    stored = _stored_bytes(keeping_app, _database_file(keeping_app))
    assert ADDRESS.encode() in stored and BIRTH_DATE.encode() in stored
    with keeping_app.extensions["dairi"].session_factory() as session:
        person = session.get(Person, person_id)
        assert person.signing_certificate_der is not None
        assert person.personal_data is not None and len(person.identity_digest) == 64


# -- the status reference: revocation without the certificate ---------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def trust(pki, tmp_path) -> TrustStore:
    pki.export_trust(tmp_path)
    return TrustStore.from_directory(tmp_path)


@pytest.fixture
def signing(pki):
    card = issue_my_number_card(
        pki,
        name="山田\u3000花子",
        birth_date="419900515",
        sex="2",
        address="大阪府大阪市北区梅田一丁目2番3号",
        prefecture="大阪府",
        city="大阪市北区",
    )
    return card.signing.certificate


def _validator(pki, trust, clock=None, **kwargs) -> CertificateValidator:
    return CertificateValidator(
        trust,
        fetcher_backend=TransportFetcherBackend(pki.serve_url),
        clock=clock or Clock(),
        **kwargs,
    )


def test_the_status_reference_carries_no_personal_data(pki, trust, signing):
    validated = _validator(pki, trust).validate_now(
        signing.public_bytes(DER), TrustPurpose.JPKI_SIGN
    )
    reference = validated.status_reference()
    for needle in ("大阪".encode(), "花子".encode(), b"419900515"):
        assert needle not in reference
    redacted, *intermediates = load_status_reference(reference)
    assert intermediates == []  # JPKI signing certificates are issued by the anchor
    assert redacted.serial_number == signing.serial_number
    assert redacted.subject.native == {} and redacted.subject_alt_name_value is None
    assert redacted.ocsp_urls and redacted.crl_distribution_points


def test_revocation_is_found_from_the_reference_by_ocsp(pki, trust, signing):
    clock = Clock()
    validator = _validator(pki, trust, clock, cache_max_age=OCSP_VALIDITY * 3)
    reference = validator.validate_now(
        signing.public_bytes(DER), TrustPurpose.JPKI_SIGN
    ).status_reference()
    validator.check_status_now(reference, TrustPurpose.JPKI_SIGN)
    pki.ca_for_slug("jpki-sign").revoke(
        signing.serial_number, x509.ReasonFlags.affiliation_changed, now=pki.clock()
    )
    clock.now += OCSP_VALIDITY - timedelta(minutes=1)
    validator.check_status_now(reference, TrustPurpose.JPKI_SIGN)  # cached good answer
    with pytest.raises(CertificateRefused) as fresh:
        validator.check_status_now(reference, TrustPurpose.JPKI_SIGN, fresh=True)
    assert (fresh.value.code, fresh.value.revocation_source) == ("REENROLL_REQUIRED", "ocsp")
    assert "大阪" not in fresh.value.message


def test_the_reference_cache_ends_at_the_ocsp_next_update(pki, trust, signing):
    clock = Clock()
    validator = _validator(pki, trust, clock, cache_max_age=OCSP_VALIDITY * 3)
    reference = validator.validate_now(
        signing.public_bytes(DER), TrustPurpose.JPKI_SIGN
    ).status_reference()
    validator.check_status_now(reference, TrustPurpose.JPKI_SIGN)
    pki.ca_for_slug("jpki-sign").revoke(
        signing.serial_number, x509.ReasonFlags.key_compromise, now=pki.clock()
    )
    clock.now += OCSP_VALIDITY + timedelta(minutes=1)
    with pytest.raises(CertificateRefused) as refused:
        validator.check_status_now(reference, TrustPurpose.JPKI_SIGN)
    assert refused.value.code == "CERTIFICATE_REVOKED"


def test_revocation_is_found_from_the_reference_in_an_offline_crl(pki, trust, signing):
    ca = pki.ca_for_slug("jpki-sign")
    online = _validator(pki, trust)
    reference = online.validate_now(
        signing.public_bytes(DER), TrustPurpose.JPKI_SIGN
    ).status_reference()
    crls: list[bytes] = [ca.crl(now=pki.clock())]
    offline = CertificateValidator(
        trust, offline=True, offline_crls=lambda: crls, cache_max_age=timedelta(0)
    )
    offline.check_status_now(reference, TrustPurpose.JPKI_SIGN)
    ca.revoke(signing.serial_number, x509.ReasonFlags.affiliation_changed, now=pki.clock())
    crls[:] = [ca.crl(now=pki.clock())]
    with pytest.raises(CertificateRefused) as refused:
        offline.check_status_now(reference, TrustPurpose.JPKI_SIGN)
    assert (refused.value.code, refused.value.revocation_source) == ("REENROLL_REQUIRED", "crl")


def test_the_reference_expires_with_the_certificate_and_needs_a_trusted_issuer(
    pki, trust, signing, tmp_path
):
    clock = Clock()
    validator = _validator(pki, trust, clock)
    reference = validator.validate_now(
        signing.public_bytes(DER), TrustPurpose.JPKI_SIGN
    ).status_reference()
    clock.now = signing.not_valid_after_utc + timedelta(days=1)
    with pytest.raises(CertificateRefused) as expired:
        validator.check_status_now(reference, TrustPurpose.JPKI_SIGN)
    assert expired.value.code == "CERTIFICATE_EXPIRED"
    # The issuer must still be an anchor of the purpose.
    with pytest.raises(CertificateRefused) as unknown:
        _validator(pki, trust).check_status_now(reference, TrustPurpose.JPKI_AUTH)
    assert unknown.value.code == "CERTIFICATE_ISSUER_UNKNOWN"
    with pytest.raises(CertificateRefused) as malformed:
        validator.check_status_now(b"\x30\x03\x02\x01\x05", TrustPurpose.JPKI_SIGN)
    assert malformed.value.code == "CERTIFICATE_MALFORMED"


def test_login_still_sees_the_signing_certificate_revoked_without_its_der(client, app, pki):
    corp = new_corporation(pki)
    card, person_id, _ = enrolled_employee(client, pki, corp)
    with app.extensions["dairi"].session_factory() as session:
        assert (
            session.scalar(select(Person.signing_certificate_der).where(Person.id == person_id))
            is None
        )
    pki.ca_for_slug("jpki-sign").revoke(
        card.signing.certificate.serial_number,
        x509.ReasonFlags.affiliation_changed,
        now=pki.clock(),
    )
    move_clock(app, timedelta(minutes=6))
    response = try_login(client, card.authentication)
    assert response.status_code == 403 and response.get_json()["code"] == "REENROLL_REQUIRED"
