"""devpki: profiles of the development CAs, CRLs, OCSP and the TSA."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from fixtures_pki import make_credential

from devpki import DevPki, PkiError, UnknownCertificate
from devpki.tsa import DEV_TSA_POLICY


def test_jpki_and_registrar_cas_carry_the_real_issuer_names(pki: DevPki):
    assert pki.cas["jpki-auth"].certificate.subject.rfc4514_string() == (
        "OU=Japan Agency for Local Authority Information Systems,"
        "OU=JPKI for user authentication,O=JPKI,C=JP"
    )
    assert pki.cas["jpki-sign"].certificate.subject.rfc4514_string() == (
        "OU=Japan Agency for Local Authority Information Systems,"
        "OU=JPKI for digital signature,O=JPKI,C=JP"
    )
    registrar = pki.cas["registrar"].certificate.subject
    assert registrar.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == (
        "Ministry of Justice"
    )
    for ca in pki.cas.values():
        assert ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_employee_certificate_profile(hsm, pki):
    credential = make_credential(hsm, pki, "鈴木 一郎")
    cert = x509.load_der_x509_certificate(credential.certificate_der)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature and usage.value.content_commitment
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "鈴木 一郎"
    assert cert.issuer == pki.cas["employee-signing"].certificate.subject
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert any(d.access_location.value.endswith("/pki/ocsp/employee-signing") for d in aia)


def test_attribute_authority_is_an_end_entity_whose_key_is_in_the_hsm(hsm, pki):
    cert = pki.aa_certificate
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == hsm.public_key_info(pki.aa_key)
    signature = hsm.sign(pki.aa_key, b"aa")
    cert.public_key().verify(signature, b"aa", padding.PKCS1v15(), hashes.SHA256())


def _ocsp_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    return (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )


def test_ocsp_answers_good_then_revoked_with_reason(hsm, pki):
    ca = pki.cas["employee-signing"]
    credential = make_credential(hsm, pki, "高橋 次郎")
    cert = x509.load_der_x509_certificate(credential.certificate_der)
    status, ctype, body = pki.serve(
        "POST", "/pki/ocsp/employee-signing", _ocsp_request(cert, ca.certificate)
    )
    assert (status, ctype) == (200, "application/ocsp-response")
    response = ocsp.load_der_ocsp_response(body)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    response.responses  # noqa: B018
    ca.certificate.public_key().verify(
        response.signature, response.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256()
    )

    ca.revoke(cert.serial_number, x509.ReasonFlags.affiliation_changed, now=pki.clock())
    response = ocsp.load_der_ocsp_response(
        pki.serve("POST", "/pki/ocsp/employee-signing", _ocsp_request(cert, ca.certificate))[2]
    )
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason is x509.ReasonFlags.affiliation_changed

    crl = x509.load_der_x509_crl(pki.serve("GET", "/pki/crl/employee-signing.crl", None)[2])
    assert crl.is_signature_valid(ca.certificate.public_key())
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.affiliation_changed
    )
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=1)


def test_ocsp_refuses_malformed_and_foreign_requests(hsm, pki):
    malformed = ocsp.load_der_ocsp_response(
        pki.serve("POST", "/pki/ocsp/jpki-auth", b"\x30\x03garbage")[2]
    )
    assert malformed.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    credential = make_credential(hsm, pki, "伊藤 三郎")
    cert = x509.load_der_x509_certificate(credential.certificate_der)
    foreign = ocsp.load_der_ocsp_response(
        pki.serve(
            "POST",
            "/pki/ocsp/jpki-auth",
            _ocsp_request(cert, pki.cas["employee-signing"].certificate),
        )[2]
    )
    assert foreign.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_revoking_an_unknown_serial_is_refused(pki):
    with pytest.raises(UnknownCertificate):
        pki.cas["registrar"].revoke(12345, x509.ReasonFlags.key_compromise, now=pki.clock())


def test_tsa_grants_tokens_over_the_imprint(pki):
    digest = hashlib.sha256(b"bid").digest()
    request = tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": digest,
            },
            "nonce": 4242,
            "cert_req": True,
        }
    )
    status, ctype, body = pki.serve("POST", "/pki/tsa", request.dump())
    assert (status, ctype) == (200, "application/timestamp-reply")
    response = tsp.TimeStampResp.load(body)
    assert response["status"]["status"].native == "granted"
    signed = response["time_stamp_token"]["content"]
    info = signed["encap_content_info"]["content"].parsed
    assert info["message_imprint"]["hashed_message"].native == digest
    assert info["nonce"].native == 4242
    assert info["policy"].dotted == DEV_TSA_POLICY
    assert len(signed["certificates"]) == 1


@pytest.mark.parametrize(
    ("body", "fail_info"),
    [
        (b"not der at all", "bad_data_format"),
        (
            tsp.TimeStampReq(
                {
                    "version": 1,
                    "message_imprint": {
                        "hash_algorithm": {"algorithm": "md5"},
                        "hashed_message": b"0" * 16,
                    },
                }
            ).dump(),
            "bad_alg",
        ),
        (
            tsp.TimeStampReq(
                {
                    "version": 1,
                    "message_imprint": {
                        "hash_algorithm": {"algorithm": "sha256"},
                        "hashed_message": b"short",
                    },
                }
            ).dump(),
            "bad_data_format",
        ),
    ],
)
def test_tsa_rejects_bad_requests(pki, body, fail_info):
    # asn1crypto insists on a token; a rejection has none, so read the status alone.
    status = tsp.PKIStatusInfo.load(
        tsp.TimeStampResp.load(pki.serve("POST", "/pki/tsa", body)[2]).contents
    )
    assert status["status"].native == "rejection"
    assert fail_info in status["fail_info"].native


def test_unknown_paths_are_not_found(pki):
    assert pki.serve("GET", "/pki/crl/nobody.crl", None)[0] == 404
    assert pki.serve("GET", "/pki/../etc/passwd", None)[0] == 404
    assert pki.serve_url("GET", "http://elsewhere.invalid/pki/tsa", None)[0] == 404


def test_a_missing_pki_directory_is_explained(tmp_path):
    with pytest.raises(PkiError, match="dairi dev pki"):
        DevPki(tmp_path / "nothing-here")


def test_csr_from_the_token_is_certified(hsm, pki):
    from asn1crypto import x509 as asn1_x509

    from hsm import KeyAlgorithm, build_csr

    ref = hsm.generate_key(KeyAlgorithm.RSA_2048)
    issued = pki.certify_csr(build_csr(hsm, ref, asn1_x509.Name.build({"common_name": "外部 CA"})))
    assert issued.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == hsm.public_key_info(ref)
    with pytest.raises(PkiError):
        pki.certify_csr(b"\x30\x00")
