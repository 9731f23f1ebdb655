"""PAdES signatures made under a mandate (issue 11 item 3): the leaf AC in
signer-attributes-v2, the AA among the CMS certificates, the signature policy, the
grant evidence embedded and covered, the AC's revocation data in the DSS; checked
with poppler (pdfsig, pdfdetach), qpdf and pyHanko's validator. And the documents
dairi refuses to sign."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import subprocess
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from asn1crypto import cms, ocsp
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask
from helpers_app import own_service
from helpers_auth import new_corporation
from helpers_mandates import new_employee, root_grant, sub_grant
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_timestamp
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.pdf_embedded import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from app.mandates.evidence import mandate_evidence
from app.mandates.models import Mandate
from app.settings import Settings
from hsm import Hsm
from signing import (
    MANDATE_SIGNATURE_POLICY_OID,
    DocumentCertifiedNoChanges,
    DocumentError,
    DocumentMalformed,
    HsmSigner,
    MandateEvidence,
    MandateStamp,
    PadesLevel,
    PadesSpec,
    evidence_file_names,
)
from signing.mandate_evidence import MANDATE_SIGNATURE_POLICY_DOCUMENT

LEVELS = tuple(PadesLevel)

POLICY_SHA256 = "011dae495951c104153d38d38dcd5b3f2c167ad9bd1bcd00ce2498c75b2e58ec"


@pytest.fixture(scope="module")
def served(base_settings: Settings, hsm: Hsm, pki, tmp_path_factory) -> Iterator[Flask]:
    """The service on its own migrated database, for the whole module."""
    yield from own_service(base_settings, hsm, tmp_path_factory.mktemp("pades-mandate"))


@pytest.fixture(scope="module")
def chain(served: Flask, hsm: Hsm, pki) -> dict:
    """A representative's grant to 山田 (depth 0) and 山田's sub-delegation to 鈴木."""
    client = served.test_client()
    corp = new_corporation(pki, name="株式会社大理建設")
    yamada = new_employee(client, hsm, pki, corp, "山田\u3000太郎")
    suzuki = new_employee(client, hsm, pki, corp, "鈴木\u3000花子")
    root = root_grant(client, corp, yamada)
    sub = sub_grant(client, hsm, corp, root, yamada, suzuki)
    return {"corp": corp, "yamada": yamada, "suzuki": suzuki, "root": root, "sub": sub}


def _evidence(served: Flask, ids: list[str], *, long_term: bool) -> MandateEvidence:
    context = served.extensions["dairi"]
    with context.session_factory() as session:
        rows = [session.get(Mandate, i) for i in ids]
        evidence = mandate_evidence(context, session, rows, long_term=long_term)
        session.commit()
    return evidence


@pytest.fixture(scope="module")
def signed(served: Flask, chain: dict, bid: bytes) -> dict:
    """(depth, level) → signed PDF: depth 0 signed by 山田 under the root grant, depth 1
    by 鈴木 under the sub-delegation."""
    signer = served.extensions["dairi"].pades_signer
    chains = {
        0: (chain["yamada"], [chain["root"]["id"]]),
        1: (chain["suzuki"], [chain["root"]["id"], chain["sub"]["id"]]),
    }
    out = {}
    for depth, (who, ids) in chains.items():
        for level in LEVELS:
            evidence = _evidence(served, ids, long_term=level.long_term)
            spec = PadesSpec(level=level, reason="入札", mandate=evidence)
            out[depth, level] = signer.sign(bid, who.credential, spec).pdf
    return out


def _write(tmp_path: Path, pdf: bytes, name: str = "signed.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(pdf)
    return path


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)


def _pdfsig_verdicts(path: Path) -> list[str]:
    out = _run("pdfsig", "-nocert", path).stdout
    return re.findall(r"Signature Validation: (.+)", out)


def _expected_names(depth: int) -> list[str]:
    return sorted(name for d in range(depth + 1) for name in evidence_file_names(d))


def _detached(pdf: bytes) -> dict[str, bytes]:
    reader = PdfFileReader(BytesIO(pdf))
    names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
    found = {}
    for i in range(0, len(names), 2):
        spec = names[i + 1]
        found[str(names[i])] = spec["/EF"]["/F"].data
    return found


@pytest.mark.parametrize("depth", [0, 1])
@pytest.mark.parametrize("level", LEVELS, ids=str)
def test_outside_tools_accept_the_signature_and_list_the_evidence(signed, depth, level, tmp_path):
    path = _write(tmp_path, signed[depth, level])
    verdicts = _pdfsig_verdicts(path)
    # poppler verifies the signature; a B-LTA document timestamp (ETSI.RFC3161) it lists
    # but does not verify ("not yet been verified"): pyHanko checks it below.
    assert verdicts[0] == "Signature is Valid.", _run("pdfsig", path).stdout
    assert len(verdicts) == (2 if level is PadesLevel.B_LTA else 1)
    check = _run("qpdf", "--check", path)
    assert check.returncode == 0, check.stdout + check.stderr
    listed = _run("pdfdetach", "-list", path).stdout.splitlines()
    assert listed[0] == f"{3 * (depth + 1)} embedded files"
    assert sorted(re.sub(r"^\d+: ", "", line) for line in listed[1:]) == _expected_names(depth)


def _ac_context(trust_roots: list[bytes], aa_der: bytes, **kwargs) -> ValidationContext:
    return ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(r) for r in trust_roots],
        other_certs=[asn1_x509.Certificate.load(aa_der)],
        allow_fetching=False,
        **kwargs,
    )


def _validate(pdf: bytes, signer_context: ValidationContext, ac_context: ValidationContext):
    (sig, *_) = PdfFileReader(BytesIO(pdf)).embedded_signatures
    return asyncio.run(
        async_validate_pdf_signature(
            sig, signer_validation_context=signer_context, ac_validation_context=ac_context
        )
    )


@pytest.mark.parametrize("depth", [0, 1])
def test_pyhanko_validates_the_signature_and_the_mandate_ac(signed, served, chain, depth):
    context = served.extensions["dairi"]
    trust_roots = [c.public_bytes(Encoding.DER) for c in context.dev_pki.roots().values()]
    aa_der = context.attribute_authority.certificate_der
    soft = {"revocation_mode": "soft-fail"}
    status = _validate(
        signed[depth, PadesLevel.B_B],
        _ac_context(trust_roots, aa_der, **soft),
        _ac_context(trust_roots, aa_der, **soft),
    )
    assert status.bottom_line, status.pretty_print_details()
    assert not status.ac_validation_errs
    assert status.ac_attrs is not None and len(status.ac_attrs) > 0
    assert status.cades_signer_attrs is not None and status.cades_signer_attrs.valid
    leaf_id = (chain["sub"] if depth else chain["root"])["id"]
    # The AC's attributes, approved by the AA: role (the actions) and dairi's mandate.
    roles = [r["role_name"].native for r in status.ac_attrs["role"].attr_values]
    assert any(name.endswith(":bid") for name in roles), roles
    assert status.ac_attrs["dairi_mandate"].attr_values
    signed_data = (
        PdfFileReader(BytesIO(signed[depth, PadesLevel.B_B])).embedded_signatures[0].signed_data
    )
    certificates = {c.chosen.dump() for c in signed_data["certificates"]}
    assert aa_der in certificates
    attrs = signed_data["signer_infos"][0]["signed_attrs"]
    by_type = {a["type"].dotted: a["values"][0] for a in attrs}
    policy = by_type["1.2.840.113549.1.9.16.2.15"].chosen
    assert policy["sig_policy_id"].dotted == MANDATE_SIGNATURE_POLICY_OID
    # The policy text's SHA-256 as published in the README: a change of the text must
    # be a deliberate new version, not a silent one.
    assert policy["sig_policy_hash"]["digest"].native.hex() == POLICY_SHA256
    assert hashlib.sha256(MANDATE_SIGNATURE_POLICY_DOCUMENT).hexdigest() == POLICY_SHA256
    signer_attrs = by_type["0.4.0.19122.1.1"]  # signer-attributes-v2
    (certified,) = signer_attrs["certified_attributes_v2"]
    with context.session_factory() as session:
        assert (
            certified.chosen.untag().dump() == session.get(Mandate, leaf_id).attribute_certificate
        )


@pytest.mark.parametrize("level", [PadesLevel.B_LT, PadesLevel.B_LTA], ids=str)
def test_b_lt_carries_the_acs_revocation_data_in_its_dss(signed, served, level):
    context = served.extensions["dairi"]
    trust_roots = [
        asn1_x509.Certificate.load(c.public_bytes(Encoding.DER))
        for c in context.dev_pki.roots().values()
    ]
    pdf = signed[1, level]
    dss = DocumentSecurityStore.read_dss(PdfFileReader(BytesIO(pdf)))
    base = {"trust_roots": trust_roots, "allow_fetching": False, "revocation_mode": "hard-fail"}
    status = _validate(pdf, dss.as_validation_context(base), dss.as_validation_context(base))
    assert status.bottom_line, status.pretty_print_details()
    assert not status.ac_validation_errs and status.ac_attrs
    # The DSS holds the AA's CRL of ACs, its OCSP answer and the AA certificate.
    aa = asn1_x509.Certificate.load(context.attribute_authority.certificate_der)
    assert aa.dump() in {c.get_object().data for c in dss.certs.values()}
    assert any(
        asn1_crl.CertificateList.load(c.get_object().data).issuer == aa.subject for c in dss.crls
    )
    responders = [
        ocsp.OCSPResponse.load(o.get_object().data)["response_bytes"]["response"].parsed[
            "tbs_response_data"
        ]["responder_id"]
        for o in dss.ocsps
    ]
    assert any(r.name == "by_key" and r.chosen.native == aa.public_key.sha1 for r in responders)
    if level is PadesLevel.B_LTA:
        (doc_ts,) = PdfFileReader(BytesIO(pdf)).embedded_timestamp_signatures
        ts = validate_pdf_timestamp(doc_ts, dss.as_validation_context(base))
        assert ts.intact and ts.valid and ts.trusted
    # Without the DSS, hard-fail AC validation has no revocation data: an error.
    bare = _validate(
        pdf,
        dss.as_validation_context(base),
        ValidationContext(
            trust_roots=trust_roots,
            allow_fetching=False,
            revocation_mode="hard-fail",
            crls=[],
            ocsps=[],
        ),
    )
    assert bare.ac_validation_errs


def _openssl_verifies(signature: bytes, data: bytes, tmp_path: Path) -> bool:
    """openssl checks the detached CMS over ``data`` (signature only: the signer's
    path is the grant's business, checked when it was granted)."""
    sig, content = tmp_path / "sig.p7s", tmp_path / "content.json"
    sig.write_bytes(signature)
    content.write_bytes(data)
    verdict = _run(
        "openssl", "cms", "-verify", "-binary", "-noverify", "-inform", "DER",
        "-in", sig, "-content", content, "-out", "/dev/null",
    )  # fmt: skip
    return verdict.returncode == 0


def test_the_embedded_instructions_cms_verifies_over_the_embedded_json(signed, chain, tmp_path):
    files = _detached(signed[1, PadesLevel.B_B])
    assert sorted(files) == _expected_names(1)
    for depth in (0, 1):
        instruction, signature, ac = evidence_file_names(depth)
        data = files[instruction]
        assert _openssl_verifies(files[signature], data, tmp_path)
        assert not _openssl_verifies(files[signature], data + b" ", tmp_path)
        hop = chain["sub"] if depth else chain["root"]
        assert hashlib.sha256(data).hexdigest() == hop["instruction_sha256"]
        ac_info = cms.AttributeCertificateV2.load(files[ac])["ac_info"]
        assert ac_info["serial_number"].native == int(hop["id"].replace("-", ""), 16)


def test_the_signature_covers_the_embedded_evidence(signed, tmp_path):
    pdf = signed[0, PadesLevel.B_B]
    (sig,) = PdfFileReader(BytesIO(pdf)).embedded_signatures
    start, length = sig.byte_range[2], sig.byte_range[3]
    assert start + length == len(pdf)  # the whole file
    # One byte of an embedded file's data changed (its streams are compressed: flip a
    # byte inside the first embedded file stream of the last revision).
    reader = PdfFileReader(BytesIO(pdf))
    names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
    ref = names[1]["/EF"].raw_get("/F")
    offset = reader.xrefs[ref.reference]
    stream_at = pdf.index(b"stream", offset) + len(b"stream\n") + 10
    tampered = bytearray(pdf)
    tampered[stream_at] ^= 0x01
    path = _write(tmp_path, bytes(tampered))
    assert _pdfsig_verdicts(path) != ["Signature is Valid."]


def test_the_plain_path_adds_none_of_it(served, chain, bid):
    signer = served.extensions["dairi"].pades_signer
    pdf = signer.sign(bid, chain["yamada"].credential, PadesSpec()).pdf
    reader = PdfFileReader(BytesIO(pdf))
    assert "/Names" not in reader.root
    attrs = reader.embedded_signatures[0].signer_info["signed_attrs"]
    assert {a["type"].dotted for a in attrs} & {
        "1.2.840.113549.1.9.16.2.15",
        "0.4.0.19122.1.1",
    } == set()


# -- documents dairi refuses --------------------------------------------------------


def _certified(hsm: Hsm, credential, bid: bytes, permission: fields.MDPPerm) -> bytes:
    meta = signers.PdfSignatureMetadata(
        field_name="Author", certify=True, docmdp_permissions=permission, md_algorithm="sha256"
    )
    out = BytesIO()
    signers.PdfSigner(meta, signer=HsmSigner(hsm, credential)).sign_pdf(
        IncrementalPdfFileWriter(BytesIO(bid)), output=out
    )
    return out.getvalue()


def test_a_certification_forbidding_changes_is_refused_with_its_code(served, chain, hsm, bid):
    signer = served.extensions["dairi"].pades_signer
    who = chain["yamada"].credential
    locked = _certified(hsm, who, bid, fields.MDPPerm.NO_CHANGES)
    with pytest.raises(DocumentCertifiedNoChanges) as refused:
        signer.sign(locked, who, PadesSpec())
    assert refused.value.code == "DOCUMENT_CERTIFIED_NO_CHANGES"
    # A certification allowing form filling and signing is signed over.
    allowed = _certified(hsm, who, bid, fields.MDPPerm.FILL_FORMS)
    assert (
        len(PdfFileReader(BytesIO(signer.sign(allowed, who, PadesSpec()).pdf)).embedded_signatures)
        == 2
    )


def test_a_damaged_cross_reference_table_is_refused_not_repaired(served, chain, bid, tmp_path):
    signer = served.extensions["dairi"].pades_signer
    source = _write(tmp_path, bid, "bid.pdf")
    table = tmp_path / "table.pdf"
    assert _run("qpdf", "--object-streams=disable", source, table).returncode == 0
    good = table.read_bytes()
    signer.sign(good, chain["yamada"].credential, PadesSpec())  # a classic xref table signs
    start, end = good.rindex(b"\nxref"), good.rindex(b"startxref")
    # Every in-use offset moved 7 bytes: the table points into the middle of objects.
    shifted = re.sub(
        rb"(\d{10})( \d{5} n)", lambda m: b"%010d" % (int(m[1]) + 7) + m[2], good[start:end]
    )
    damaged = good[:start] + shifted + good[end:]
    assert "damaged" in _run("qpdf", "--check", _write(tmp_path, damaged, "d.pdf")).stderr
    with pytest.raises(DocumentMalformed, match=r"cross-reference|cannot be read"):
        signer.sign(damaged, chain["yamada"].credential, PadesSpec())
    # Only one object's offset wrong, one pyHanko never reads while signing: still refused.
    lines = good[start:end].split(b"\n")
    last = next(
        i
        for i in range(len(lines) - 1, 0, -1)
        if lines[i].endswith(b" n") or lines[i].endswith(b" n ")
    )
    lines[last] = b"%010d" % (int(lines[last][:10]) + 3) + lines[last][10:]
    one = good[:start] + b"\n".join(lines) + good[end:]
    with pytest.raises(DocumentMalformed, match="cross-reference"):
        signer.sign(one, chain["yamada"].credential, PadesSpec())


def test_the_visible_stamp_shows_the_mandate_in_japanese(served, chain, bid, tmp_path):
    evidence = _evidence(served, [chain["root"]["id"]], long_term=False)
    stamp = MandateStamp(
        agent="山田\u3000太郎",
        principal="株式会社大理建設 (代表取締役 佐藤\u3000一郎)",
        actions="入札、見積",
        case="令和8年度 第12号 庁舎改修工事",
        signed_at="2026-11-30 22:10 JST",
    )
    spec = PadesSpec(mandate=dataclasses.replace(evidence, stamp=stamp))
    pdf = served.extensions["dairi"].pades_signer.sign(bid, chain["yamada"].credential, spec).pdf
    path = _write(tmp_path, pdf)
    assert _pdfsig_verdicts(path) == ["Signature is Valid."]
    (sig,) = PdfFileReader(BytesIO(pdf)).embedded_signatures
    x0, y0, x1, y1 = (float(v) for v in sig.sig_field["/Rect"])
    assert x1 - x0 > 100 and y1 - y0 > 50  # visible, not a zero-size field
    # poppler reads the stamp's text back through the font's ToUnicode map.
    shown = _run("pdftotext", "-layout", path, "-").stdout
    for text in ("受任者", "委任者", "委任事項", "案件", "日時", "山田", "庁舎改修工事"):
        assert text in shown, shown


def test_a_second_signature_under_a_mandate_adds_only_new_evidence(served, chain, signed, tmp_path):
    signer = served.extensions["dairi"].pades_signer
    first = signed[0, PadesLevel.B_B]  # 山田 under the root grant: hop 0's files
    evidence = _evidence(served, [chain["root"]["id"], chain["sub"]["id"]], long_term=False)
    second = signer.sign(first, chain["suzuki"].credential, PadesSpec(mandate=evidence)).pdf
    path = _write(tmp_path, second)
    assert _pdfsig_verdicts(path) == ["Signature is Valid."] * 2
    assert _run("qpdf", "--check", path).returncode == 0
    assert sorted(_detached(second)) == _expected_names(1)  # hop 0's kept, not doubled
    # Another file under a name the document holds already is refused.
    name = evidence_file_names(0)[2]
    other = dataclasses.replace(
        evidence,
        files=tuple(
            dataclasses.replace(f, data=f.data + b"\0") if f.name == name else f
            for f in evidence.files
        ),
    )
    with pytest.raises(DocumentError, match=name):
        signer.sign(first, chain["suzuki"].credential, PadesSpec(mandate=other))
