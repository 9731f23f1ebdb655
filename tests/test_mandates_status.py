"""What relying parties see of the service's mandates: the AA's OCSP responder and CRL
(used by pyhanko-certvalidator), offline chain verification from the leaf AC alone, and
the signed 電子委任状 PDF."""

from __future__ import annotations

import base64
from io import BytesIO

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp, pem
from asn1crypto import x509 as asn1_x509
from helpers_auth import bearer, login, new_corporation
from helpers_delegation_ac import CRL_ONLY, DER, validate
from helpers_mandates import ENTITY, new_employee, now, root_grant, sub_grant
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import RevokedError

from delegation.certificates import parse_mandate_certificate
from delegation.scope import Purpose
from delegation.verify import MandateChainReader, serial_of
from devpki import TransportFetcherBackend


@pytest.fixture
def chain(client, hsm, pki):
    a = new_corporation(pki, name="株式会社大理建設")
    yamada = new_employee(client, hsm, pki, a, "山田\u3000太郎")
    suzuki = new_employee(client, hsm, pki, a, "鈴木\u3000花子")
    root = root_grant(client, a, yamada)
    child = sub_grant(client, hsm, a, root, yamada, suzuki)
    return {"a": a, "yamada": yamada, "suzuki": suzuki, "root": root, "child": child}


def service_context(client, pki, **kwargs) -> ValidationContext:
    """A relying party's context: OCSP/CRL for ACs fetched from this service's /ac/."""
    base = client.application.extensions["dairi"].settings.public_base_url

    def transport(method: str, url: str, body: bytes | None):
        if url.startswith(base + "/ac/"):
            response = client.open(
                url[len(base) :], method=method, data=body, content_type="application/ocsp-request"
            )
            return response.status_code, response.content_type, response.data
        return pki.serve_url(method, url, body)

    aa = client.get("/ac/aa.pem")
    assert aa.status_code == 200
    options = {
        "trust_roots": [
            asn1_x509.Certificate.load(pki.cas["service-root"].certificate.public_bytes(DER))
        ],
        "other_certs": [asn1_x509.Certificate.load(pem.unarmor(aa.data)[2])],
        "allow_fetching": True,
        "fetcher_backend": TransportFetcherBackend(transport),
        "revocation_mode": "require",
    }
    options.update(kwargs)
    return ValidationContext(**options)


def ac(mandate: dict) -> bytes:
    return base64.b64decode(mandate["attribute_certificate"])


def test_pyhanko_validates_the_acs_against_the_service_ocsp_and_crl(client, pki, chain):
    suzuki, child, root = chain["suzuki"], chain["child"], chain["root"]
    result = validate(ac(child), suzuki.certificate, service_context(client, pki))
    assert result.aa_path.leaf.subject.native["common_name"].endswith("Attribute Authority")
    validate(ac(child), suzuki.certificate, service_context(client, pki, revinfo_policy=CRL_ONLY))

    rep = login(client, chain["a"].representative)
    assert (
        client.post(
            f"/api/v1/mandates/{root['id']}/revocation", json={}, headers=bearer(rep)
        ).status_code
        == 200
    )
    # The cascade revoked the child too: its own status answers for its chain.
    with pytest.raises(RevokedError):
        validate(ac(child), suzuki.certificate, service_context(client, pki))
    with pytest.raises(RevokedError):
        validate(
            ac(child), suzuki.certificate, service_context(client, pki, revinfo_policy=CRL_ONLY)
        )
    listed = asn1_crl.CertificateList.load(client.get("/ac/crl").data)
    assert {
        e["user_certificate"].native for e in listed["tbs_cert_list"]["revoked_certificates"]
    } == {serial_of(root["id"]), serial_of(child["id"])}


def test_the_ocsp_responder_answers_garbage_with_a_malformed_request_status(client, chain):
    response = client.post("/ac/ocsp", data=b"garbage", content_type="application/ocsp-request")
    assert response.status_code == 200
    assert ocsp.OCSPResponse.load(response.data)["response_status"].native == "malformed_request"


def test_a_relying_party_judges_the_chain_from_the_leaf_alone(client, chain, other_aa):
    suzuki, child = chain["suzuki"], chain["child"]
    aa_der = pem.unarmor(client.get("/ac/aa.pem").data)[2]
    reader = MandateChainReader(aa_der)
    purpose = Purpose("bid", ENTITY, None, 1_000_000, now())
    principal = chain["a"].corporate_number
    verdict = reader.evaluate(
        ac(child),
        purpose,
        principal=principal,
        signer_certificate_der=suzuki.certificate,
        status_of=lambda serial: None,
    )
    assert verdict.holds, verdict
    assert [h.mandate_id for h in verdict.hops] == [chain["root"]["id"], child["id"]]

    # Someone else's certificate is not the holder.
    other = reader.evaluate(
        ac(child),
        purpose,
        principal=principal,
        signer_certificate_der=chain["yamada"].certificate,
        status_of=lambda serial: None,
    )
    assert other.reasons == ("HOLDER_MISMATCH",)

    # An AC with the same terms from another AA is not the AA's.
    parsed = parse_mandate_certificate(ac(child))
    foreign = other_aa.issue(
        parsed.terms,
        suzuki.certificate,
        serial_number=12345,
        ancestors=parsed.ancestors,
        depth=parsed.depth,
    )
    verdict = reader.evaluate(
        foreign,
        purpose,
        principal=principal,
        signer_certificate_der=suzuki.certificate,
        status_of=lambda serial: None,
    )
    assert verdict.hops[-1].reasons == ("AC_NOT_ISSUED_BY_AA",)

    # Revoked per the AA's answers: the hop says so.
    revoked = reader.evaluate(
        ac(child),
        purpose,
        principal=principal,
        signer_certificate_der=suzuki.certificate,
        status_of=lambda serial: purpose.at,
    )
    assert "MANDATE_REVOKED" in revoked.codes()


def test_the_document_is_a_japanese_pdf_signed_by_the_service(client, pki, chain):
    child = chain["child"]
    response = client.get(
        f"/api/v1/mandates/{child['id']}/document", headers=bearer(chain["suzuki"].token)
    )
    assert response.status_code == 200 and response.content_type == "application/pdf"
    reader = PdfFileReader(BytesIO(response.data))
    [signature] = reader.embedded_signatures
    aa_der = pem.unarmor(client.get("/ac/aa.pem").data)[2]
    assert signature.signer_cert.dump() == aa_der
    status = validate_pdf_signature(
        signature,
        ValidationContext(
            trust_roots=[
                asn1_x509.Certificate.load(pki.cas["service-root"].certificate.public_bytes(DER))
            ],
            allow_fetching=True,
            fetcher_backend=TransportFetcherBackend(pki.serve_url),
        ),
    )
    assert status.intact and status.valid and status.trusted
    assert status.timestamp_validity is not None  # B-T: a signature timestamp
    # Someone from another corporation gets nothing.
    other = new_corporation(pki, name="株式会社ビー")
    response = client.get(
        f"/api/v1/mandates/{child['id']}/document",
        headers=bearer(login(client, other.representative)),
    )
    assert response.status_code == 404
