"""The attribute authority's OCSP responder and AC CRL, and what dairi refuses to certify."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta

import pytest
from asn1crypto import cms, crl, ocsp, pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from helpers_delegation_ac import (
    AcEndpoints,
    make_terms,
    now,
)
from pyhanko_certvalidator.authority import AuthorityWithCert
from pyhanko_certvalidator.fetchers.common_utils import format_ocsp_request

from delegation.certificates import (
    AttributeAuthority,
    MandateCertificateError,
    MandateTerms,
    parse_mandate_certificate,
)
from delegation.scope import ScopeError

# -- the AA's OCSP responder and CRL -------------------------------------------


def _request(
    aa: AttributeAuthority, ac_der: bytes, algorithm: str = "sha1", nonce: bool = True
) -> bytes:
    """An OCSP request exactly as pyhanko-certvalidator's fetcher formats it for an AC."""
    authority = AuthorityWithCert(asn1_x509.Certificate.load(aa.certificate_der))
    return format_ocsp_request(
        cms.AttributeCertificateV2.load(ac_der),
        authority,
        certid_hash_algo=algorithm,
        request_nonces=nonce,
    ).dump()


def _basic(response_der: bytes) -> ocsp.BasicOCSPResponse:
    response = ocsp.OCSPResponse.load(response_der)
    assert response["response_status"].native == "successful"
    return response["response_bytes"]["response"].parsed


def test_the_ocsp_responder_answers_for_ac_serials(endpoints, aa, employee):
    good, revoked, unknown = (
        endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
        for _ in range(3)
    )
    endpoints.revoke(revoked, "cessation_of_operation")
    endpoints.issued.discard(parse_mandate_certificate(unknown).serial_number)
    request = ocsp.OCSPRequest.load(_request(aa, good))
    basic = _basic(aa.ocsp_response(request.dump(), endpoints.status_of, now=now()))
    data = basic["tbs_response_data"]
    assert data["responses"][0]["cert_status"].name == "good"
    assert data["responder_id"].name == "by_key"
    assert (
        data["responder_id"].chosen.native
        == asn1_x509.Certificate.load(aa.certificate_der).public_key.sha1
    )
    assert basic["certs"][0].dump() == aa.certificate_der
    assert (
        data["response_extensions"][0]["extn_value"].native
        == request["tbs_request"]["request_extensions"][0]["extn_value"].native
    )
    x509.load_der_x509_certificate(aa.certificate_der).public_key().verify(
        basic["signature"].native, data.dump(), padding.PKCS1v15(), hashes.SHA256()
    )
    answer = _basic(
        aa.ocsp_response(
            _request(aa, revoked, "sha256", nonce=False), endpoints.status_of, now=now()
        )
    )
    status = answer["tbs_response_data"]["responses"][0]["cert_status"]
    assert status.name == "revoked"
    assert status.chosen["revocation_reason"].native == "cessation_of_operation"
    assert answer["tbs_response_data"]["response_extensions"].native is None
    answer = _basic(aa.ocsp_response(_request(aa, unknown), endpoints.status_of, now=now()))
    assert answer["tbs_response_data"]["responses"][0]["cert_status"].name == "unknown"


def test_the_ocsp_responder_refuses_garbage_and_other_issuers(aa, other_aa, endpoints, employee):
    for garbage in (b"", b"\x30\x00", b"not DER at all"):
        response = ocsp.OCSPResponse.load(aa.ocsp_response(garbage, endpoints.status_of, now=now()))
        assert response["response_status"].native == "malformed_request"
    # Same key, other name: the CertID's issuerNameHash does not name this AA.
    other = AcEndpoints(endpoints.pki, other_aa).issue(
        make_terms(employee.certificate_der), employee.certificate_der
    )
    foreign = aa.ocsp_response(_request(other_aa, other), endpoints.status_of, now=now())
    assert ocsp.OCSPResponse.load(foreign)["response_status"].native == "unauthorized"


@pytest.mark.parametrize("digest", ["sha1", "sha256"])
def test_the_responder_answers_an_openssl_request_that_openssl_accepts(
    endpoints, aa, employee, tmp_path, digest
):
    """An independent client both ways: OpenSSL builds the request (its CertID for
    the AC's serial under the AA) and checks the signed answer against the AA's
    certificate, with the status it prints."""
    good, revoked = (
        endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
        for _ in range(2)
    )
    # cessationOfOperation (5): OpenSSL 3.0 names reasons 0-8 only, not privilegeWithdrawn.
    endpoints.revoke(revoked, "cessation_of_operation")
    (tmp_path / "aa.pem").write_bytes(pem.armor("CERTIFICATE", aa.certificate_der))
    for ac, expected in ((good, "good"), (revoked, "revoked")):
        serial = str(parse_mandate_certificate(ac).serial_number)
        subprocess.run(
            [
                "openssl",
                "ocsp",
                f"-{digest}",
                "-issuer",
                "aa.pem",
                "-serial",
                serial,
                "-reqout",
                "request.der",
            ],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            timeout=30,
        )
        answer = aa.ocsp_response(
            (tmp_path / "request.der").read_bytes(), endpoints.status_of, now=now()
        )
        (tmp_path / "response.der").write_bytes(answer)
        shown = subprocess.run(
            [
                "openssl",
                "ocsp",
                "-respin",
                "response.der",
                "-issuer",
                "aa.pem",
                "-VAfile",
                "aa.pem",
                f"-{digest}",
                "-serial",
                serial,
                "-no_nonce",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert shown.returncode == 0, shown.stderr
        assert "Response verify OK" in shown.stderr + shown.stdout
        assert f"{serial}: {expected}" in shown.stdout, shown.stdout
        if expected == "revoked":
            assert "Reason: cessationOfOperation" in shown.stdout, shown.stdout


def test_the_ac_crl(aa):
    at = now() - timedelta(hours=2)
    der = aa.crl(
        [(12, at, "privilege_withdrawn"), (11, at, "unspecified")],
        this_update=now(),
        next_update=now() + timedelta(days=1),
        number=42,
    )
    parsed = crl.CertificateList.load(der)
    tbs = parsed["tbs_cert_list"]
    assert tbs["issuer"] == asn1_x509.Certificate.load(aa.certificate_der).subject
    assert [e["user_certificate"].native for e in tbs["revoked_certificates"]] == [11, 12]
    entries = list(parsed["tbs_cert_list"]["revoked_certificates"])
    assert entries[0].crl_reason_value is None
    assert entries[1].crl_reason_value.native == "privilege_withdrawn"
    assert parsed.crl_number_value.native == 42
    assert (
        parsed.authority_key_identifier
        == asn1_x509.Certificate.load(aa.certificate_der).key_identifier
    )
    idp = parsed.issuing_distribution_point_value
    assert idp["only_contains_attribute_certs"].native
    assert "issuing_distribution_point" in parsed.critical_extensions
    x509.load_der_x509_certificate(aa.certificate_der).public_key().verify(
        parsed["signature"].native, tbs.dump(), padding.PKCS1v15(), hashes.SHA256()
    )
    empty = crl.CertificateList.load(
        aa.crl([], this_update=now(), next_update=now() + timedelta(days=1), number=0)
    )
    assert empty["tbs_cert_list"]["revoked_certificates"].native is None
    with pytest.raises(MandateCertificateError) as refused:
        aa.crl([(1, at, "remove_from_crl")], this_update=now(), next_update=now(), number=1)
    assert refused.value.code == "REVOCATION_REASON_INVALID"


# -- refusals ------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"principal_corporate_number": "1234567890123"},  # wrong check digit
        {"instruction_digest": b"short"},
        {"principal_name": "株式会社\n大理"},
        {"principal_name": "株" * 301},
        {"grantee": "山田"},
        # The scope is the terms' own: an AC states no fractions of a second, and terms are
        # refused rather than rounded into something other than what was signed.
        {"not_before": now() - timedelta(minutes=5, microseconds=1)},
        {"not_after": now() + timedelta(days=30, milliseconds=250)},
    ],
)
def test_terms_dairi_would_not_certify_are_refused(changes):
    with pytest.raises(MandateCertificateError) as refused:
        make_terms(b"cert", **changes)
    assert refused.value.code == "MANDATE_TERMS_INVALID"


@pytest.mark.parametrize(
    "changes",
    [
        {"not_before": datetime(2030, 1, 1)},  # naive
        {"not_after": now() - timedelta(days=60)},  # before not_before
        {"actions": ()},
        {"actions": "bid"},
        {"procuring_entities": ()},
        {"amount_limit_jpy": 0},
        {"max_depth": -1},
        {"cases": ("R7-\u0000",)},
    ],
)
def test_a_scope_dairi_would_not_certify_is_refused_by_the_scope_itself(changes):
    """One validator (delegation.scope) for a grant's scope and a mandate's terms."""
    with pytest.raises(ScopeError) as refused:
        make_terms(b"cert", **changes)
    assert refused.value.code == "SCOPE_INVALID"


@pytest.mark.parametrize(
    ("name", "title"),
    [("山田\u0007太郎", None), ("山田", "代\u200e"), ("山" * 201, None), ("山田", "代" * 101)],
)
def test_a_party_dairi_would_not_certify_is_refused(name, title):
    from delegation.certificates import MandateParty

    with pytest.raises(MandateCertificateError) as refused:
        MandateParty(name, title, bytes(32))
    assert refused.value.code == "MANDATE_TERMS_INVALID"


def test_an_ac_repeating_a_name_is_malformed(endpoints, employee):
    der = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
    value = parse_mandate_certificate(der).terms.to_asn1()
    value["actions"] = ["bid", "bid"]
    with pytest.raises(MandateCertificateError) as refused:
        MandateTerms.from_asn1(value, not_before=now(), not_after=now() + timedelta(days=1))
    assert refused.value.code == "MANDATE_TERMS_INVALID"


def test_sets_are_encoded_in_a_stable_order():
    terms = make_terms(b"cert", actions=frozenset({"quote", "bid"}))
    assert terms.actions == ("bid", "quote")


@pytest.mark.parametrize("der", [b"", b"\x30\x00", b"garbage"])
def test_malformed_acs_are_refused(der):
    with pytest.raises(MandateCertificateError) as refused:
        parse_mandate_certificate(der)
    assert refused.value.code == "AC_MALFORMED"


def test_an_ac_without_the_mandate_attribute_is_malformed(endpoints, employee, aa):
    der = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
    ac = cms.AttributeCertificateV2.load(der)
    info = ac["ac_info"].copy()
    info["attributes"] = [info["attributes"][0]]
    stripped = cms.AttributeCertificateV2(
        {
            "ac_info": info,
            "signature_algorithm": ac["signature_algorithm"],
            "signature": ac["signature"].native,
        }
    ).dump()
    with pytest.raises(MandateCertificateError) as refused:
        parse_mandate_certificate(stripped)
    assert refused.value.code == "AC_MALFORMED"
    with pytest.raises(MandateCertificateError) as refused:
        aa.issue(make_terms(employee.certificate_der), b"not a certificate", serial_number=5)
    assert refused.value.code == "HOLDER_CERTIFICATE_MALFORMED"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"serial_number": 0}, "MANDATE_TERMS_INVALID"),
        ({"serial_number": 2**160}, "MANDATE_TERMS_INVALID"),
        ({"targets": "portal.example.jp"}, "MANDATE_TERMS_INVALID"),
        ({"targets": ["has space.example.jp"]}, "MANDATE_TERMS_INVALID"),
        ({"depth": 1}, "PROVENANCE_INCONSISTENT"),
        ({"ancestors": [b"garbage"], "depth": 1}, "AC_MALFORMED"),
    ],
)
def test_issuance_arguments_are_checked(aa, employee, changes, code):
    arguments: dict[str, object] = {"serial_number": 5}
    arguments.update(changes)
    with pytest.raises(MandateCertificateError) as refused:
        aa.issue(make_terms(employee.certificate_der), employee.certificate_der, **arguments)  # type: ignore[arg-type]
    assert refused.value.code == code
