"""signing.verification: dairi's PAdES signatures judged offline, as a relying party would.

Expectations are written by hand (ETSI TS 119 102-1 indications) and one passing
signature is cross-checked with poppler's ``pdfsig``.
"""

from __future__ import annotations

import socket
import subprocess
import time
from datetime import UTC, datetime
from io import BytesIO

import pytest
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from signing import PadesLevel, PadesSpec
from signing.errors import DocumentMalformed, DocumentNotPdf, DocumentTooLarge
from signing.verification import (
    DocumentNotSigned,
    Indication,
    VerificationTrust,
    verify_pdf,
)


@pytest.fixture(scope="module")
def signed(pades_signer, employee, bid):
    return {
        level: pades_signer.sign(bid, employee, PadesSpec(level=level)).pdf for level in PadesLevel
    }


@pytest.fixture(scope="module")
def trust(trust_roots) -> VerificationTrust:
    return VerificationTrust(roots=tuple(trust_roots))


@pytest.fixture(scope="module")
def trust_with_crls(trust, pki) -> VerificationTrust:
    """What a relying party that fetched the CAs' CRLs itself would hold (for B-B/B-T)."""
    now = datetime.now(UTC)
    crls = tuple(pki.cas[slug].crl(now=now) for slug in ("service-root", "employee-signing"))
    return VerificationTrust(roots=trust.roots, crls=crls)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the verifier tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("level", list(PadesLevel), ids=str)
def test_each_level_passes_offline_and_reaches_its_level(
    signed, trust, trust_with_crls, level, no_network
):
    # B-B and B-T carry no revocation data: the relying party brings CRLs.
    given = trust if level.long_term else trust_with_crls
    report = verify_pdf(signed[level], given)
    (sig,) = report.signatures
    assert (sig.indication, sig.sub_indication, sig.message) == (
        Indication.TOTAL_PASSED,
        None,
        None,
    )
    assert report.indication is Indication.TOTAL_PASSED
    assert sig.level is level
    assert sig.signer.name == "山田 太郎"
    assert sig.coverage.coverage == ("ENTIRE_FILE" if not level.long_term else "ENTIRE_REVISION")
    kinds = [t.kind for t in sig.timestamps]
    assert (
        kinds
        == {
            PadesLevel.B_B: [],
            PadesLevel.B_T: ["signature"],
            PadesLevel.B_LT: ["signature"],
            PadesLevel.B_LTA: ["signature", "document"],
        }[level]
    )
    assert all(t.valid and "dairi Development TSA" in t.tsa for t in sig.timestamps)
    assert sig.revocation_data == (("document DSS",) if level.long_term else ("relying party",))
    assert report.to_json()["signatures"][0]["indication"] == "TOTAL_PASSED"


def test_without_revocation_data_a_b_b_signature_is_indeterminate(signed, trust, no_network):
    (sig,) = verify_pdf(signed[PadesLevel.B_B], trust).signatures
    assert sig.indication is Indication.INDETERMINATE
    assert sig.level is PadesLevel.B_B


def test_a_byte_changed_in_the_signed_range_fails_with_hash_failure(signed, trust):
    pdf = bytearray(signed[PadesLevel.B_LTA])
    # One digit of the page size, inside the first revision (the signed range).
    at = pdf.index(b"/MediaBox")
    digit = next(i for i in range(at, at + 40) if pdf[i : i + 1].isdigit() and pdf[i] != ord("0"))
    pdf[digit] = ord("1") if pdf[digit] != ord("1") else ord("2")
    (sig,) = verify_pdf(bytes(pdf), trust).signatures
    assert sig.indication is Indication.TOTAL_FAILED
    assert sig.sub_indication == "HASH_FAILURE"


def test_a_signer_outside_the_trust_roots_has_no_chain(signed, pki):
    jpki_only = VerificationTrust(
        roots=(pki.roots()["jpki-sign"].public_bytes(serialization.Encoding.DER),)
    )
    (sig,) = verify_pdf(signed[PadesLevel.B_LTA], jpki_only).signatures
    assert sig.indication is Indication.INDETERMINATE
    assert sig.sub_indication == "NO_CERTIFICATE_CHAIN_FOUND"


def _annotation(
    subtype: str, rect: tuple[int, int, int, int], **entries
) -> generic.DictionaryObject:
    """An annotation dictionary: /Type /Annot, its /Subtype and /Rect, ``entries`` by key."""
    made = generic.DictionaryObject(
        {
            generic.NameObject("/Type"): generic.NameObject("/Annot"),
            generic.NameObject("/Subtype"): generic.NameObject(subtype),
            generic.NameObject("/Rect"): generic.ArrayObject(map(generic.NumberObject, rect)),
            generic.NameObject("/DA"): generic.TextStringObject("/Helv 12 Tf 0 g"),
        }
    )
    for key, value in entries.items():
        made[generic.NameObject(f"/{key}")] = value
    return made


def _with_annotation(pdf: bytes) -> bytes:
    """An incremental update after signing that adds a visible text note to page 1."""
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    note = generic.TextStringObject("金額訂正 99,999,999 円")
    annot = _annotation("/FreeText", (50, 50, 300, 80), Contents=note)
    annots = page.get("/Annots", generic.ArrayObject())
    annots.append(writer.add_object(annot))
    page[generic.NameObject("/Annots")] = annots
    writer.update_container(page)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def _with_new_page_content(pdf: bytes) -> bytes:
    """An incremental update that replaces what page 1 shows."""
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    stream = generic.StreamObject(stream_data=b"BT /F1 24 Tf 100 700 Td (FORGED) Tj ET")
    page[generic.NameObject("/Contents")] = writer.add_object(stream)
    writer.update_container(page)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def test_an_update_after_signing_that_a_reader_sees_fails(signed, trust_with_crls):
    for changed in (_with_annotation, _with_new_page_content):
        (sig,) = verify_pdf(changed(signed[PadesLevel.B_T]), trust_with_crls).signatures
        assert sig.coverage.coverage == "ENTIRE_REVISION", changed
        assert sig.coverage.revisions_after == 1
        assert sig.coverage.modification_level == "OTHER"
        assert sig.coverage.changes_allowed is False
        assert sig.indication is Indication.TOTAL_FAILED
        assert sig.sub_indication == "SIG_CONSTRAINTS_FAILURE"
        assert sig.reasons == ("DOCUMENT_MODIFIED_AFTER_SIGNING",)


def test_a_harmless_update_after_signing_passes(signed, trust):
    # The B-LTA's own later revision (DSS and document timestamp) is harmless.
    (lta,) = verify_pdf(signed[PadesLevel.B_LTA], trust).signatures
    assert lta.coverage.revisions_after == 1
    assert lta.coverage.modification_level == "LTA_UPDATES"
    assert lta.indication is Indication.TOTAL_PASSED


def test_pdfsig_agrees_on_a_passing_signature(signed, trust, tmp_path):
    path = tmp_path / "bid.pdf"
    path.write_bytes(signed[PadesLevel.B_LTA])
    out = subprocess.run(
        ["pdfsig", "-nocert", str(path)], capture_output=True, text=True, timeout=60
    ).stdout
    assert "Signature Validation: Signature is Valid." in out
    assert "Signer Certificate Common Name: 山田 太郎" in out
    (sig, *_) = verify_pdf(signed[PadesLevel.B_LTA], trust).signatures
    assert sig.indication is Indication.TOTAL_PASSED


def test_input_that_is_not_a_signed_pdf_is_refused(bid, signed, trust):
    with pytest.raises(DocumentNotPdf):
        verify_pdf(b"hello", trust)
    with pytest.raises(DocumentMalformed):
        verify_pdf(signed[PadesLevel.B_B][:-4000], trust)
    with pytest.raises(DocumentNotSigned):
        verify_pdf(bid, trust)
    with pytest.raises(DocumentTooLarge):
        verify_pdf(signed[PadesLevel.B_B], trust, max_bytes=1000)


def test_a_signer_certificate_revoked_before_signing_fails(hsm, pki, bid, dev_tsa, trust):
    from cryptography import x509 as pyca_x509
    from fixtures_pki import make_credential

    from signing import PadesSigner

    # A signer that checks nothing before signing (as a forger's tool would not).
    careless = PadesSigner(hsm, tsa=dev_tsa, validation_data=None, max_document_bytes=2_000_000)
    early = make_credential(hsm, pki, "早川 一郎")
    late = make_credential(hsm, pki, "遅野 次郎")
    early_pdf = None
    for credential in (early, late):
        serial = pyca_x509.load_der_x509_certificate(credential.certificate_der).serial_number
        if credential is late:
            late_pdf = careless.sign(bid, credential, PadesSpec(level=PadesLevel.B_T)).pdf
            time.sleep(1.1)  # a CRL states whole seconds
        pki.cas["employee-signing"].revoke(
            serial, pyca_x509.ReasonFlags.key_compromise, now=datetime.now(UTC)
        )
        if credential is early:
            time.sleep(1.1)
            early_pdf = careless.sign(bid, credential, PadesSpec(level=PadesLevel.B_T)).pdf
    now = datetime.now(UTC)
    crls = tuple(pki.cas[slug].crl(now=now) for slug in ("service-root", "employee-signing"))
    given = VerificationTrust(roots=trust.roots, crls=crls)
    (revoked,) = verify_pdf(early_pdf, given).signatures
    assert revoked.indication is not Indication.TOTAL_PASSED
    assert revoked.sub_indication in {"REVOKED", "REVOKED_NO_POE"}
    # Revoked only after the timestamp proved the signature existed: it stands.
    (stands,) = verify_pdf(late_pdf, given).signatures
    assert stands.indication is Indication.TOTAL_PASSED, stands.message


def test_online_the_missing_revocation_data_is_fetched(signed, trust, pki):
    from devpki import TransportFetcherBackend

    fetched = []

    def transport(method, url, body):
        fetched.append(url)
        return pki.serve_url(method, url, body)

    online = VerificationTrust(
        roots=trust.roots, allow_fetching=True, fetcher_backend=TransportFetcherBackend(transport)
    )
    (sig,) = verify_pdf(signed[PadesLevel.B_B], online).signatures
    assert sig.indication is Indication.TOTAL_PASSED, sig.message
    assert sig.revocation_data == ("online",)
    assert fetched  # the signer's status came from the responders


def _with_amount_field(pdf: bytes, value: str) -> bytes:
    """The bid with a text field 入札金額 holding ``value`` (a filled-in form)."""
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    page_ref = writer.root["/Pages"]["/Kids"][0]
    page = page_ref.get_object()
    field = _annotation(
        "/Widget",
        (50, 700, 300, 720),
        FT=generic.NameObject("/Tx"),
        T=generic.TextStringObject("入札金額"),
        V=generic.TextStringObject(value),
        P=page_ref,
    )
    field_ref = writer.add_object(field)
    page[generic.NameObject("/Annots")] = generic.ArrayObject([field_ref])
    writer.update_container(page)
    writer.root[generic.NameObject("/AcroForm")] = generic.DictionaryObject(
        {generic.NameObject("/Fields"): generic.ArrayObject([field_ref])}
    )
    writer.update_root()
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def _with_field_value(pdf: bytes, value: str) -> bytes:
    """An incremental update after signing that sets 入札金額 to ``value``."""
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    for ref in writer.root["/AcroForm"]["/Fields"]:
        field = ref.get_object()
        if field.get("/T") == "入札金額":
            field[generic.NameObject("/V")] = generic.TextStringObject(value)
            writer.update_container(field)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def signed_form(pades_signer, employee, bid) -> bytes:
    form = _with_amount_field(bid, "10,000,000 円")
    return pades_signer.sign(form, employee, PadesSpec(level=PadesLevel.B_T)).pdf


def test_a_form_field_value_changed_after_signing_fails(signed_form, trust_with_crls):
    (before,) = verify_pdf(signed_form, trust_with_crls).signatures
    assert before.indication is Indication.TOTAL_PASSED, before.message
    changed = _with_field_value(signed_form, "99,999,999 円")
    (sig,) = verify_pdf(changed, trust_with_crls).signatures
    assert sig.coverage.revisions_after == 1
    assert sig.coverage.modification_level == "FORM_FILLING"
    assert sig.indication is Indication.TOTAL_FAILED
    assert sig.sub_indication == "SIG_CONSTRAINTS_FAILURE"
    assert sig.reasons == ("DOCUMENT_MODIFIED_AFTER_SIGNING",)


def test_a_co_signature_after_signing_is_harmless(
    signed_form, pades_signer, employee, trust_with_crls
):
    # A second signature fills a new signature field: form filling a reader expects.
    co_signed = pades_signer.sign(signed_form, employee, PadesSpec(level=PadesLevel.B_T)).pdf
    first, second = verify_pdf(co_signed, trust_with_crls).signatures
    assert first.coverage.revisions_after == 1
    assert first.coverage.modification_level == "FORM_FILLING"
    assert (first.indication, second.indication) == (Indication.TOTAL_PASSED,) * 2, first.message
