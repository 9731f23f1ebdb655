"""Every PDF dairi draws, as a reader's PDF software lays it out (issue 10 item 9).

The text is read back with poppler (``pdftotext -bbox``, Debian's poppler-utils), which
places each glyph by the font's ``/W`` widths, as a viewer does. A font whose widths are
not in thousandths of an em, or a line wrapped by a guess instead of the measured width,
shows here as words beyond the margins or glyphs advancing more than an em.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import pytest
from helpers_auth import new_corporation
from helpers_mandates import new_employee, root_grant, scope, sub_grant
from pyhanko.pdf_utils.reader import PdfFileReader

from app.dev.sample_documents import bid_pdf
from app.mandates import document as mandate_document
from app.mandates.document import ChainLine, MandateDocument, mandate_pdf

# What a printed page needs: nothing closer than 2 cm (56 pt, rounded down) to any edge.
MARGIN_PT = 56.0
# A full-width character advances 1 em; nothing should advance more than 1.2 em.
MAX_ADVANCE_EM = 1.2
XHTML = "{http://www.w3.org/1999/xhtml}"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: install Debian's poppler-utils (make system-packages)")
    return path


@dataclass(frozen=True)
class Word:
    text: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float


@dataclass(frozen=True)
class Page:
    width: float
    height: float
    words: tuple[Word, ...]
    font_sizes: frozenset[float]


def _font_sizes(pdf: bytes) -> list[frozenset[float]]:
    """The sizes set by ``Tf`` on each page, in its content and the forms it draws."""
    reader = PdfFileReader(BytesIO(pdf))
    sizes = []
    kids = reader.root["/Pages"]["/Kids"]
    for page in (kids[i] for i in range(len(kids))):
        streams = [page["/Contents"]]
        xobjects = page.get("/Resources", {}).get("/XObject", {})
        streams += [xobjects[name] for name in xobjects]
        found = set()
        for stream in streams:
            text = stream.data.decode("latin-1")
            found |= {float(size) for size in re.findall(r"/\S+\s+([\d.]+)\s+Tf", text)}
        sizes.append(frozenset(found))
    return sizes


def pages_of(pdf: bytes, tmp_path: Path) -> list[Page]:
    """Each page's size and words with their boxes (top-left origin), as poppler sees them."""
    source = tmp_path / "in.pdf"
    source.write_bytes(pdf)
    out = subprocess.run(
        [_tool("pdftotext"), "-bbox", str(source), "-"], check=True, capture_output=True, timeout=60
    ).stdout
    root = ET.fromstring(out)
    pages = []
    for page, sizes in zip(root.iter(f"{XHTML}page"), _font_sizes(pdf), strict=True):
        words = tuple(
            Word(
                w.text or "",
                float(w.get("xMin")),
                float(w.get("yMin")),
                float(w.get("xMax")),
                float(w.get("yMax")),
            )
            for w in page.iter(f"{XHTML}word")
        )
        pages.append(Page(float(page.get("width")), float(page.get("height")), words, sizes))
    return pages


def assert_readable(pages: list[Page]) -> None:
    """Every word inside the margins; no glyph wider than 1.2 em at the page's font size."""
    assert pages
    for number, page in enumerate(pages, start=1):
        assert page.words, f"page {number} shows no text"
        assert len(page.font_sizes) == 1, page.font_sizes  # one size: the em is known
        [size] = page.font_sizes
        for word in page.words:
            where = f"page {number}: {word.text!r} at {word}"
            assert word.x_min >= MARGIN_PT, where
            assert word.x_max <= page.width - MARGIN_PT, where
            assert word.y_min >= MARGIN_PT, where
            assert word.y_max <= page.height - MARGIN_PT, where
            advance = (word.x_max - word.x_min) / len(word.text)
            assert advance <= MAX_ADVANCE_EM * size, f"{where}: {advance / size:.2f} em"


def shown_text(pages: list[Page]) -> str:
    """All words in reading order with no white space: wrapped lines join up again."""
    return compact("".join(word.text for page in pages for word in page.words))


def compact(text: str) -> str:
    return re.sub(r"\s", "", text)


# --- the sample bid --------------------------------------------------------------------------


def test_sample_bid_is_readable(tmp_path):
    pages = pages_of(bid_pdf(), tmp_path)
    assert len(pages) == 1
    assert_readable(pages)
    text = shown_text(pages)
    for needle in (
        "入札書",
        "件名:令和8年度第42号庁舎清掃業務委託",
        "発注機関:国土交通省関東地方整備局",
        "入札金額:金12,345,000円（税抜）",
        "上記のとおり、入札説明書及び契約条項を承諾のうえ入札します。",
        "入札者:株式会社サンプル商事",
    ):
        assert needle in text


def test_a_long_bid_line_wraps_inside_the_margins(tmp_path):
    case = "令和8年度 第42号 " + "本庁舎及び別館並びに附属棟の清掃・警備・設備保守業務委託" * 4
    pages = pages_of(bid_pdf(case=case, bidder="株式会社サンプル商事 ¥✓" * 6), tmp_path)
    assert_readable(pages)
    text = shown_text(pages)
    assert compact("件名: " + case) in text
    assert compact("入札者: " + "株式会社サンプル商事 ¥✓" * 6) in text


# --- the 電子委任状 ------------------------------------------------------------------------


def _document(**changes: object) -> MandateDocument:
    fields: dict[str, object] = {
        "mandate_id": "0b7e1c52-6a8d-4f7e-9a43-2f5d8c1e9b70",
        "principal_name": "株式会社大理建設",
        "principal_corporate_number": "1234567890123",
        "grantor": "佐藤 次郎（部長）",
        "grantee": "山田 花子（課長）",
        "actions": ("入札", "見積"),
        "procuring_entities": ("国土交通省関東地方整備局",),
        "cases": None,
        "amount_limit_jpy": 100_000_000,
        "not_before": datetime(2026, 3, 31, 15, 0, tzinfo=UTC),
        "not_after": datetime(2026, 11, 21, 1, 0, tzinfo=UTC),
        "max_depth": 0,
        "status": "有効",
        "attribute_certificate_serial": "7f3a09c2e4b1",
        "instruction_sha256": "ab" * 32,
        "chain": (ChainLine(0, "m-0001", "大理 一郎（代表取締役）", "佐藤 次郎（部長）", "有効"),),
        "issued_at": datetime(2026, 4, 1, 0, 30, tzinfo=UTC),
    }
    fields.update(changes)
    return MandateDocument(**fields)  # type: ignore[arg-type]


def test_long_serial_digest_and_names_wrap_inside_the_margins(tmp_path):
    # Unbroken runs (no space, no 、) and characters whose width only the font knows
    # (¥ and ✓ are full width in IPA Gothic, though Unicode calls them narrow).
    serial = "0123456789abcdef" * 12
    digest = "f" * 64 + "e" * 64
    grantee = "山田 花子（" + "¥✓" * 40 + "）"
    pages = pages_of(
        mandate_pdf(
            _document(
                attribute_certificate_serial=serial, instruction_sha256=digest, grantee=grantee
            )
        ),
        tmp_path,
    )
    assert_readable(pages)
    text = shown_text(pages)
    for needle in (
        "属性証明書シリアル番号: " + serial,
        "指図書 SHA-256: " + digest,
        "受任者: " + grantee,
    ):
        assert compact(needle) in text


@pytest.fixture
def depth_two(client, hsm, pki):
    """A representative's grant, a sub-delegation and a sub-sub-delegation (depth 2)."""
    corp = new_corporation(pki, name="株式会社大理建設工業")
    yamada = new_employee(client, hsm, pki, corp, "山田\u3000太郎")
    suzuki = new_employee(client, hsm, pki, corp, "鈴木\u3000花子")
    tanaka = new_employee(client, hsm, pki, corp, "田中\u3000三郎")
    root = root_grant(client, corp, yamada, scope(max_depth=2))
    child = sub_grant(client, hsm, corp, root, yamada, suzuki, scope(max_depth=1))
    leaf = sub_grant(client, hsm, corp, child, suzuki, tanaka, scope(max_depth=0))
    return {"tanaka": tanaka, "chain": (root, child, leaf)}


def _document_pdf(client, depth_two) -> bytes:
    from helpers_auth import bearer

    leaf = depth_two["chain"][-1]
    response = client.get(
        f"/api/v1/mandates/{leaf['id']}/document", headers=bearer(depth_two["tanaka"].token)
    )
    assert response.status_code == 200, response.get_json()
    assert response.content_type == "application/pdf"
    return response.data


def test_mandate_document_of_a_depth_two_chain_is_readable(client, depth_two, tmp_path):
    pdf = _document_pdf(client, depth_two)
    pages = pages_of(pdf, tmp_path)
    assert_readable(pages)
    text = shown_text(pages)
    root, child, leaf = depth_two["chain"]
    serial = format(int(leaf["id"].replace("-", ""), 16), "x")  # the AC serial is the id
    for needle in (
        "電子委任状",
        f"委任状番号: {leaf['id']}",
        "委任者（法人）: 株式会社大理建設工業",
        "受任者: 田中 三郎",
        "有効期間:",
        "【委任の連鎖】",
        f"第0段 佐藤 一郎（代表取締役） → 山田 太郎 [有効]（委任状番号 {root['id']}）",
        f"第1段 山田 太郎 → 鈴木 花子 [有効]（委任状番号 {child['id']}）",
        f"第2段 鈴木 花子 → 田中 三郎 [有効]（委任状番号 {leaf['id']}）　← 本書",
        f"属性証明書シリアル番号: {serial}",
        f"指図書 SHA-256: {leaf['instruction_sha256']}",
        "本書は dairi が発行し、電子署名を付しています。",
    ):
        assert compact(needle) in text, needle


def test_signed_mandate_document_passes_pdfsig_and_qpdf(client, depth_two, tmp_path):
    path = tmp_path / "mandate.pdf"
    path.write_bytes(_document_pdf(client, depth_two))
    qpdf = shutil.which("qpdf")
    if qpdf is None:
        pytest.fail("qpdf is missing: install Debian's qpdf (make system-packages)")
    checked = subprocess.run(
        [qpdf, "--check", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "No syntax or stream encoding errors found" in checked.stdout
    signed = subprocess.run(
        [_tool("pdfsig"), str(path)], capture_output=True, text=True, timeout=60
    )
    assert "Signature Validation: Signature is Valid." in signed.stdout, signed.stdout
    assert "ETSI.CAdES.detached" in signed.stdout


def test_documents_signed_by_an_older_renderer_are_drawn_again(client, depth_two, monkeypatch):
    # The service keeps each signed 電子委任状 until what it says changes; a document
    # drawn before a change of the drawing (such as this issue's) must not be served on.
    first = _document_pdf(client, depth_two)
    assert _document_pdf(client, depth_two) == first  # kept: one signature per state
    monkeypatch.setattr(mandate_document, "RENDERING", mandate_document.RENDERING + "+next")
    again = _document_pdf(client, depth_two)
    assert again != first
    assert _document_pdf(client, depth_two) == again
