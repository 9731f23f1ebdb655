"""``dairi demo`` end to end: logins over HTTP with virtual cards, then signed bids."""

from __future__ import annotations

import subprocess

from pyhanko.keys import load_certs_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from app.dev.demo import run_demo
from delegation.certificates import parse_mandate_certificate
from devpki.cards import load_card


def test_the_demo_logs_people_in_and_writes_valid_signed_bids(app_settings, app, pki, tmp_path):
    out = tmp_path / "demo"
    lines = list(run_demo(app_settings, out))
    text = "\n".join(lines)
    assert "representative 佐藤 一郎 logged in over HTTP" in text
    assert "法人番号 4011001098993" in text
    assert "roles employee of 4011001098993" in text
    assert load_card(out / "cards" / "employee").kind == "my-number"
    assert load_card(out / "cards" / "representative").kind == "representative"
    # The bids are judged by tools other than the demo: poppler's pdfsig checks each
    # signature's integrity and signer, pyHanko's validator its trust (the demo's
    # published anchors, nothing fetched) and timestamp, and the PAdES level's parts.
    roots = list(load_certs_from_pemder(sorted(str(p) for p in (out / "trust").glob("*.pem"))))
    for level, timestamped, dss, document_timestamps in (
            ("B-B", False, False, 0), ("B-T", True, False, 0), ("B-LT", True, True, 0),
            ("B-LTA", True, True, 1)):
        path = out / f"bid-{level}.pdf"
        shown = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True,
                               timeout=60).stdout
        first = shown.split("Signature #2:")[0]
        assert "Signature Validation: Signature is Valid." in first, shown
        assert "Signer Certificate Common Name: 山田　太郎" in first, shown
        assert ("Signature #2:" in shown) == bool(document_timestamps), shown
        with path.open("rb") as f:
            reader = PdfFileReader(f)
            [signature] = reader.embedded_regular_signatures
            status = validate_pdf_signature(signature, ValidationContext(
                trust_roots=roots, allow_fetching=False))
            assert status.intact and status.valid and status.trusted, status.pretty_print_details()
            assert (status.timestamp_validity is not None
                    and status.timestamp_validity.valid) == timestamped, level
            assert ("/DSS" in reader.root) == dss, level
            assert len(reader.embedded_timestamp_signatures) == document_timestamps, level
    # The 電子委任状 is signed by the attribute authority, whole document.
    [document] = (out / "mandates").glob("*.pdf")
    shown = subprocess.run(["pdfsig", str(document)], capture_output=True, text=True,
                           timeout=60).stdout
    assert "Signature Validation: Signature is Valid." in shown, shown
    assert "Total document signed" in shown, shown
    assert "Attribute Authority" in shown, shown
    # The mandates: a representative's grant and its sub-delegation, with the AA certificate.
    acs = sorted((out / "mandates").glob("*.der"))
    assert [p.name[0] for p in acs] == ["0", "1"]
    leaf = parse_mandate_certificate(acs[1].read_bytes())
    [embedded] = leaf.ancestors  # the root, embedded bare (issue 10 item 12)
    assert parse_mandate_certificate(embedded, embedded_depth=0).serial_number == \
        parse_mandate_certificate(acs[0].read_bytes()).serial_number
    assert leaf.terms.grantee.name == "鈴木\u3000花子"
    assert (out / "trust" / "aa.pem").is_file()
    assert "who may bid for 令和8年度 第42号 庁舎清掃業務委託 now: 山田\u3000太郎 (chain of 1), " \
        "鈴木\u3000花子 (chain of 2)" in text, text
