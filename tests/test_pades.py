"""signing.pades: every baseline level, validated by pyHanko's own validator."""

from __future__ import annotations

import threading
from io import BytesIO

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from fixtures_pki import make_credential
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import copy_into_new_writer
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko_certvalidator import ValidationContext

from hsm import Hsm, KeyAlgorithm, KeyNotFound, KeyRef
from signing import (
    DocumentEncrypted,
    DocumentMalformed,
    DocumentNotPdf,
    DocumentTooLarge,
    PadesLevel,
    PadesSigner,
    PadesSpec,
    SignerCertificateRevoked,
    SigningCredential,
)


def offline_context(trust_roots: list[bytes], **kwargs) -> ValidationContext:
    return ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(r) for r in trust_roots],
        allow_fetching=False,
        **kwargs,
    )


def signatures(pdf: bytes):
    return PdfFileReader(BytesIO(pdf)).embedded_signatures


@pytest.fixture(scope="module")
def signed(pades_signer: PadesSigner, employee: SigningCredential, bid: bytes):
    return {
        level: pades_signer.sign(bid, employee, PadesSpec(level=level, reason="入札"))
        for level in PadesLevel
    }


def test_b_b_is_a_valid_pades_signature_over_the_whole_document(signed, trust_roots, bid):
    result = signed[PadesLevel.B_B]
    (sig,) = signatures(result.pdf)
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    status = validate_pdf_signature(sig, offline_context(trust_roots, revocation_mode="soft-fail"))
    assert status.intact and status.valid and status.trusted
    assert status.coverage.name == "ENTIRE_FILE"
    assert status.timestamp_validity is None
    assert status.signing_cert.subject.native["common_name"] == "山田 太郎"
    assert result.pdf.startswith(bid)  # an incremental update: the bid is untouched
    assert result.field_name == "Signature1"


def test_b_t_carries_a_valid_signature_timestamp(signed, trust_roots):
    (sig,) = signatures(signed[PadesLevel.B_T].pdf)
    status = validate_pdf_signature(sig, offline_context(trust_roots, revocation_mode="soft-fail"))
    assert status.bottom_line
    assert status.timestamp_validity is not None
    assert status.timestamp_validity.intact and status.timestamp_validity.valid
    assert status.timestamp_validity.trusted


def _dss(pdf: bytes) -> DocumentSecurityStore:
    return DocumentSecurityStore.read_dss(PdfFileReader(BytesIO(pdf)))


def test_b_lt_validates_offline_from_its_dss(signed, trust_roots, pki):
    pdf = signed[PadesLevel.B_LT].pdf
    dss = _dss(pdf)
    assert len(list(dss.ocsps)) >= 2  # the signer's and the TSA's status
    (sig,) = signatures(pdf)
    # Revocation is required and fetching is off: only the DSS can satisfy it.
    context = dss.as_validation_context(
        {
            "trust_roots": [asn1_x509.Certificate.load(r) for r in trust_roots],
            "allow_fetching": False,
            "revocation_mode": "hard-fail",
        }
    )
    status = validate_pdf_signature(sig, context)
    assert status.bottom_line and status.timestamp_validity.trusted
    # Without the DSS the same strict validation cannot succeed.
    bare = validate_pdf_signature(
        sig, offline_context(trust_roots, revocation_mode="hard-fail", crls=[], ocsps=[])
    )
    assert not bare.bottom_line


def test_b_lta_ends_with_a_document_timestamp(signed, trust_roots):
    pdf = signed[PadesLevel.B_LTA].pdf
    sig, doc_ts = signatures(pdf)
    assert doc_ts.sig_object["/Type"] == "/DocTimeStamp"
    assert len(list(_dss(pdf).ocsps)) >= 2
    ts_status = validate_pdf_timestamp(
        doc_ts, offline_context(trust_roots, revocation_mode="soft-fail")
    )
    assert ts_status.intact and ts_status.valid and ts_status.trusted
    context = _dss(pdf).as_validation_context(
        {
            "trust_roots": [asn1_x509.Certificate.load(r) for r in trust_roots],
            "allow_fetching": False,
            "revocation_mode": "hard-fail",
        }
    )
    assert validate_pdf_signature(sig, context).bottom_line


def test_each_document_is_signed_once_by_the_hsm(pades_signer, employee, bid, hsm, monkeypatch):
    calls = []
    real_sign = Hsm.sign

    def counting_sign(self, ref, data, **kwargs):
        calls.append(ref)
        return real_sign(self, ref, data, **kwargs)

    monkeypatch.setattr(Hsm, "sign", counting_sign)
    for level in PadesLevel:
        calls.clear()
        pades_signer.sign(bid, employee, PadesSpec(level=level))
        assert calls == [employee.key_ref], level


def test_a_second_signature_keeps_the_first_valid(pades_signer, employee, bid, trust_roots):
    once = pades_signer.sign(bid, employee, PadesSpec(level=PadesLevel.B_T))
    twice = pades_signer.sign(once.pdf, employee, PadesSpec(level=PadesLevel.B_T))
    assert twice.field_name == "Signature2"
    first, second = signatures(twice.pdf)
    ctx = offline_context(trust_roots, revocation_mode="soft-fail")
    assert validate_pdf_signature(first, ctx).intact
    assert validate_pdf_signature(second, ctx).bottom_line


def test_ec_p256_credentials_sign_too(pades_signer, hsm, pki, bid, trust_roots):
    credential = make_credential(hsm, pki, "佐藤 花子", KeyAlgorithm.EC_P256)
    result = pades_signer.sign(bid, credential, PadesSpec(level=PadesLevel.B_LT))
    (sig,) = signatures(result.pdf)
    status = validate_pdf_signature(sig, offline_context(trust_roots, revocation_mode="soft-fail"))
    assert status.bottom_line
    assert status.md_algorithm == "sha256"


def test_threads_signing_at_once_all_produce_valid_signatures(
    pades_signer, employee, bid, trust_roots
):
    outputs: list[bytes] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                outputs.append(
                    pades_signer.sign(bid, employee, PadesSpec(level=PadesLevel.B_LT)).pdf
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ctx = offline_context(trust_roots, revocation_mode="soft-fail")
    for pdf in outputs:
        (sig,) = signatures(pdf)
        assert validate_pdf_signature(sig, ctx).bottom_line


# --- refusals --------------------------------------------------------------


def _encrypted(bid: bytes) -> bytes:
    writer = copy_into_new_writer(PdfFileReader(BytesIO(bid)))
    writer.encrypt("owner-secret", "user-secret")
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("make", "error", "code"),
    [
        (
            lambda bid: b"PK\x03\x04 this is a zip file, not a PDF",
            DocumentNotPdf,
            "DOCUMENT_NOT_PDF",
        ),
        (lambda bid: b"", DocumentNotPdf, "DOCUMENT_NOT_PDF"),
        (lambda bid: bid[: len(bid) // 2], DocumentMalformed, "DOCUMENT_MALFORMED"),
        (
            lambda bid: b"%PDF-1.7\n garbage garbage\n%%EOF\n",
            DocumentMalformed,
            "DOCUMENT_MALFORMED",
        ),
        (_encrypted, DocumentEncrypted, "DOCUMENT_ENCRYPTED"),
        (lambda bid: bid + b" " * 2_000_000, DocumentTooLarge, "DOCUMENT_TOO_LARGE"),
    ],
)
def test_unsignable_documents_are_refused_with_a_stable_code(
    pades_signer, employee, bid, make, error, code
):
    with pytest.raises(error) as info:
        pades_signer.sign(make(bid), employee, PadesSpec(level=PadesLevel.B_B))
    assert info.value.code == code


def test_unknown_key_is_refused(pades_signer, employee, bid, hsm):
    ghost = SigningCredential(
        KeyRef(hsm.config.token_label, "ab" * 16),
        employee.algorithm,
        employee.certificate_der,
        employee.chain_der,
    )
    with pytest.raises(KeyNotFound):
        pades_signer.sign(bid, ghost, PadesSpec(level=PadesLevel.B_B))


def test_revoked_signer_certificate_is_refused_before_the_key_is_used(
    pades_signer, hsm, pki, bid, monkeypatch
):
    credential = make_credential(hsm, pki, "退職 済")
    serial = x509.load_der_x509_certificate(credential.certificate_der).serial_number
    pki.cas["employee-signing"].revoke(
        serial, x509.ReasonFlags.affiliation_changed, now=pki.clock()
    )
    used = []
    monkeypatch.setattr(Hsm, "sign", lambda *a, **k: used.append(a))
    with pytest.raises(SignerCertificateRevoked) as info:
        pades_signer.sign(bid, credential, PadesSpec(level=PadesLevel.B_B))
    assert info.value.code == "SIGNER_CERTIFICATE_REVOKED"
    assert used == []
