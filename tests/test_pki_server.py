"""The development PKI served by its own process over real HTTP (``python -m
devpki.server``), judged by other tools than dairi: OCSP and time-stamps by the
``openssl`` command line, CRLs by ``cryptography``; and reached the way a deployment
reaches a CA: pyhanko-certvalidator's requests fetchers (through dairi's budgeted
backend) and pyHanko's ``HTTPTimeStamper``.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from asn1crypto import core, tsp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID
from helpers_pki_server import served_pki
from pyhanko.sign.timestamps import HTTPTimeStamper

from devpki import DevPki
from devpki.cards import MyNumberCard, issue_my_number_card
from hsm import Hsm
from identity.revocation_fetch import ResponderBreaker, RevocationFetcherBackend
from identity.trust import TrustPurpose, TrustStore
from identity.validation import CertificateRefused, CertificateValidator

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER


@pytest.fixture(scope="module")
def served(hsm: Hsm, tmp_path_factory: pytest.TempPathFactory):
    pki, server = served_pki(tmp_path_factory.mktemp("served-pki") / "pki", hsm)
    with server:
        yield pki, server


def card(pki: DevPki) -> MyNumberCard:
    return issue_my_number_card(
        pki,
        name="山田\u3000太郎",
        birth_date="419900115",
        sex="1",
        address="東京都千代田区霞が関一丁目1番1号",
        prefecture="東京都",
        city="千代田区",
    )


def validator(pki: DevPki, **backend: object) -> CertificateValidator:
    return CertificateValidator(
        TrustStore.from_directory(pki.directory / "trust"),
        fetcher_backend=RevocationFetcherBackend(budget_seconds=4, **backend),  # type: ignore[arg-type]
        cache_max_age=timedelta(0),
    )


def write_pem(path: Path, cert: x509.Certificate) -> str:
    path.write_bytes(cert.public_bytes(PEM))
    return str(path)


def openssl_ocsp(tmp_path: Path, issuer: x509.Certificate, cert: x509.Certificate, url: str) -> str:
    result = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            write_pem(tmp_path / "issuer.pem", issuer),
            "-cert",
            write_pem(tmp_path / "cert.pem", cert),
            "-url",
            url,
            "-CAfile",
            write_pem(tmp_path / "ca.pem", issuer),
            "-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout + result.stderr


def test_the_certificates_name_the_servers_port(served):
    pki, server = served
    issued = card(pki).authentication.certificate
    aia = issued.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
    dps = issued.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS)
    urls = [d.access_location.value for d in aia.value] + [
        n.value for point in dps.value for n in point.full_name or ()
    ]
    assert urls and all(u.startswith(f"http://127.0.0.1:{server.port}/pki/") for u in urls)


def test_ocsp_over_http_as_openssl_reads_it(served, tmp_path):
    pki, server = served
    issued = card(pki).authentication.certificate
    ca = pki.ca_for_slug("jpki-auth")
    url = f"{server.url}/pki/ocsp/jpki-auth"
    out = openssl_ocsp(tmp_path, ca.certificate, issued, url)
    assert "Response verify OK" in out and "cert.pem: good" in out, out
    # revoked by this process; the server re-reads the CA's state at the next request
    ca.revoke(issued.serial_number, x509.ReasonFlags.key_compromise, now=pki.clock())
    out = openssl_ocsp(tmp_path, ca.certificate, issued, url)
    assert "cert.pem: revoked" in out and "Reason: keyCompromise" in out, out


def test_crl_over_http_lists_a_revocation(served):
    pki, server = served
    issued = card(pki).signing.certificate
    ca = pki.ca_for_slug("jpki-sign")
    ca.revoke(issued.serial_number, x509.ReasonFlags.affiliation_changed, now=pki.clock())
    response = requests.get(f"{server.url}/pki/crl/jpki-sign.crl", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(response.content)
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    entry = crl.get_revoked_certificate_by_serial_number(issued.serial_number)
    assert entry is not None
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        is x509.ReasonFlags.affiliation_changed
    )


def test_time_stamp_over_http_verifies_with_openssl(served, tmp_path):
    pki, server = served
    digest = hashlib.sha256(b"dairi production mode").digest()
    stamper = HTTPTimeStamper(f"{server.url}/pki/tsa", timeout=10)
    token = asyncio.run(stamper.async_timestamp(digest, "sha256"))
    info = token["content"]["encap_content_info"]["content"].parsed
    assert info["message_imprint"]["hashed_message"].native == digest
    assert abs(info["gen_time"].native - datetime.now(UTC)) < timedelta(minutes=1)
    (tmp_path / "token.der").write_bytes(token.dump())
    result = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-digest",
            digest.hex(),
            "-token_in",
            "-in",
            str(tmp_path / "token.der"),
            "-CAfile",
            write_pem(tmp_path / "root.pem", pki.roots()["service-root"]),
            "-untrusted",
            write_pem(tmp_path / "tsa.pem", pki.tsa_certificate),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "Verification: OK" in result.stdout, result.stdout + result.stderr
    # a digest that was not stamped does not verify
    other = hashlib.sha256(b"something else").hexdigest()
    result = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-digest",
            other,
            "-token_in",
            "-in",
            str(tmp_path / "token.der"),
            "-CAfile",
            str(tmp_path / "root.pem"),
            "-untrusted",
            str(tmp_path / "tsa.pem"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "Verification: OK" not in result.stdout


def test_requests_the_server_refuses(served):
    _, server = served
    assert requests.get(f"{server.url}/pki/crl/nope.crl", timeout=5).status_code == 404
    assert requests.get(f"{server.url}/pki/tsa", timeout=5).status_code == 404
    assert requests.post(f"{server.url}/pki/tsa", data=b"x" * 70_000, timeout=5).status_code == 413
    assert requests.delete(f"{server.url}/pki/tsa", timeout=5).status_code == 405
    # a malformed time-stamp request is answered as a TSA does: a rejection
    answer = requests.post(
        f"{server.url}/pki/tsa",
        data=b"\x30\x00",
        timeout=5,
        headers={"Content-Type": "application/timestamp-query"},
    )
    assert answer.status_code == 200
    status = tsp.PKIStatusInfo.load(core.Sequence.load(answer.content)[0].dump())
    assert status["status"].native == "rejection"


def test_validator_over_http_good_revoked_and_server_stopped(served, tmp_path):
    pki, server = served
    holder = card(pki)
    breaker = ResponderBreaker(open_seconds=30)
    online = validator(pki, breaker=breaker)
    auth = holder.authentication.certificate.public_bytes(DER)
    signing = holder.signing.certificate.public_bytes(DER)
    assert (
        online.validate_now(auth, TrustPurpose.JPKI_AUTH).serial_number
        == holder.authentication.certificate.serial_number
    )
    pki.ca_for_slug("jpki-sign").revoke(
        holder.signing.certificate.serial_number,
        x509.ReasonFlags.affiliation_changed,
        now=pki.clock(),
    )
    with pytest.raises(CertificateRefused) as refused:
        online.validate_now(signing, TrustPurpose.JPKI_SIGN)
    assert refused.value.code == "REENROLL_REQUIRED"
    assert refused.value.revocation_source == "ocsp"

    server.stop()
    try:
        with pytest.raises(CertificateRefused) as refused:
            online.validate_now(auth, TrustPurpose.JPKI_AUTH)
        assert refused.value.code == "REVOCATION_STATUS_UNAVAILABLE"
        # the refused responders' breakers are open: the next check fails at once
        assert breaker.state(f"{server.url}/pki/ocsp/jpki-auth") == "open"
    finally:
        server.start()
    assert requests.get(f"{server.url}/pki/ca/jpki-auth.cer", timeout=5).status_code == 200
    fresh = validator(pki)
    assert (
        fresh.validate_now(auth, TrustPurpose.JPKI_AUTH).serial_number
        == holder.authentication.certificate.serial_number
    )
