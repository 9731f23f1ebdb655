"""The 電子委任状 PDF: its lines, wrapping, pagination and the text really in the PDF."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from io import BytesIO

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from app.mandates.document import (
    CONTINUATION_INDENT,
    LINE_WIDTH,
    LINES_PER_PAGE,
    ChainLine,
    MandateDocument,
    document_lines,
    document_pages,
    jst_text,
    mandate_pdf,
    text_width,
    wrap_line,
)

ROOT = ChainLine(0, "m-0001", "大理 一郎（代表取締役）", "佐藤 次郎（部長）", "有効")
LEAF = ChainLine(1, "m-0002", "佐藤 次郎（部長）", "山田 花子（課長）", "有効")


def _document(**changes) -> MandateDocument:
    document = MandateDocument(
        mandate_id="m-0002",
        principal_name="株式会社大理建設",
        principal_corporate_number="1234567890123",
        grantor="佐藤 次郎（部長）",
        grantee="山田 花子（課長）",
        actions=("入札", "見積", "電子申請（建設業許可申請）"),
        procuring_entities=("国土交通省関東地方整備局",),
        cases=("令和8年度第42号庁舎清掃業務委託",),
        amount_limit_jpy=100_000_000,
        not_before=datetime(2026, 3, 31, 15, 0, tzinfo=UTC),
        not_after=datetime(2026, 11, 21, 1, 0, tzinfo=UTC),
        max_depth=0,
        status="有効",
        attribute_certificate_serial="7f3a09c2e4b1",
        instruction_sha256="ab" * 32,
        chain=(ROOT, LEAF),
        issued_at=datetime(2026, 4, 1, 0, 30, tzinfo=UTC),
    )
    return dataclasses.replace(document, **changes)


def _line(lines: list[str], label: str) -> str:
    [line] = [line for line in lines if line.startswith(f"{label}: ")]
    return line


# --- reading the PDF back (no text-extraction package needed) ---------------------------


def _to_unicode(font) -> dict[int, str]:
    """CID -> text from the font's ToUnicode CMap (bfchar and bfrange entries)."""
    cmap = font["/ToUnicode"].data.decode("ascii")

    def text(hex_digits: str) -> str:
        return bytes.fromhex(hex_digits).decode("utf-16-be")

    mapping: dict[int, str] = {}
    for block in re.findall(r"beginbfchar(.*?)endbfchar", cmap, re.S):
        for cid, dst in re.findall(r"<(\w+)>\s*<(\w+)>", block):
            mapping[int(cid, 16)] = text(dst)
    for block in re.findall(r"beginbfrange(.*?)endbfrange", cmap, re.S):
        for low, high, dst in re.findall(r"<(\w+)>\s*<(\w+)>\s*(\[[^\]]*\]|<\w+>)", block):
            cids = range(int(low, 16), int(high, 16) + 1)
            if dst.startswith("["):
                targets = [text(t) for t in re.findall(r"<(\w+)>", dst)]
            else:
                first = int(dst[1:-1], 16)
                targets = [chr(first + i) for i in range(len(cids))]
            mapping.update(zip(cids, targets, strict=True))
    return mapping


def _pdf_pages(pdf: bytes) -> list[list[str]]:
    """The text lines shown on each page: the glyphs of every TJ, mapped via ToUnicode."""
    reader = PdfFileReader(BytesIO(pdf))
    pages = []
    kids = reader.root["/Pages"]["/Kids"]
    for page in (kids[i] for i in range(len(kids))):
        form = page["/Resources"]["/XObject"]["/Text"]
        to_unicode = _to_unicode(form["/Resources"]["/Font"]["/F1"])
        content = form.data.decode("latin-1")
        content = re.sub(r"/ActualText \((?:\\.|[^\\)])*\)", "", content)
        lines = []
        for array in re.findall(r"\[(.*?)\]\s*TJ", content, re.S):
            glyphs = "".join(re.findall(r"<([0-9a-fA-F]*)>", array))
            lines.append(
                "".join(to_unicode[int(glyphs[i : i + 4], 16)] for i in range(0, len(glyphs), 4))
            )
        pages.append(lines)
    return pages


# --- the PDF ------------------------------------------------------------------------------


def test_pdf_is_a4_with_an_embedded_japanese_font():
    reader = PdfFileReader(BytesIO(mandate_pdf(_document())))
    pages = reader.root["/Pages"]["/Kids"]
    assert len(pages) == 1
    page = pages[0]
    assert [round(float(v)) for v in page["/MediaBox"]] == [0, 0, 595, 842]
    font = page["/Resources"]["/XObject"]["/Text"]["/Resources"]["/Font"]["/F1"]
    assert font["/Subtype"] == "/Type0"
    assert str(font["/BaseFont"]).endswith("IPAGothic-Identity-H")
    descriptor = font["/DescendantFonts"][0]["/FontDescriptor"]
    assert len(descriptor["/FontFile2"].data) > 1000  # the glyph subset is embedded


def _pdftotext(pdf: bytes, tmp_path) -> list[str]:
    """Each page's text as poppler's pdftotext reads it, all white space removed, so
    that where a line wraps is not part of what is compared."""
    path = tmp_path / "document.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True, timeout=60
    ).stdout.decode()
    return [re.sub(r"\s+", "", page) for page in out.split("\f") if page.strip()]


# The fixture's facts as a reader must find them, written by hand (times in 日本時間:
# 2026-03-31 15:00Z is 4月1日 0時, 2026-11-21 01:00Z is 10時, issued 00:30Z is 9時30分).
READER_SEES = (
    "電子委任状",
    "委任状番号:m-0002",
    "委任者（法人）:株式会社大理建設",
    "法人番号:1234567890123",
    "委任者:佐藤次郎（部長）",
    "受任者:山田花子（課長）",
    "委任事項:入札、見積、電子申請（建設業許可申請）",
    "調達機関:国土交通省関東地方整備局",
    "案件:令和8年度第42号庁舎清掃業務委託",
    "金額上限:金100,000,000円",
    "2026年04月01日00:00",
    "2026年11月21日10:00",
    "再委任:不可",
    "状態:有効",
    "【委任の連鎖】",
    "大理一郎（代表取締役）→佐藤次郎（部長）",
    "m-0001",
    "佐藤次郎（部長）→山田花子（課長）",
    "属性証明書シリアル番号:7f3a09c2e4b1",
    "指図書SHA-256:" + "ab" * 32,
    "本書はdairiが発行し、電子署名を付しています。",
    "2026年04月01日09:30",
)


def test_pdf_text_read_by_poppler_is_the_fixtures_facts_in_order(tmp_path):
    [text] = _pdftotext(mandate_pdf(_document()), tmp_path)
    position = 0
    for needle in READER_SEES:
        found = text.find(needle, position)
        assert found >= 0, f"{needle!r} not after position {position} in {text!r}"
        position = found + len(needle)


def test_pdf_shows_exactly_the_document_lines(tmp_path):
    document = _document()
    shown = _pdf_pages(mandate_pdf(document))
    # Our reader of the PDF agrees with poppler's, page by page.
    assert ["".join(re.sub(r"\s+", "", line) for line in page) for page in shown] == _pdftotext(
        mandate_pdf(document), tmp_path
    )
    text = "\n".join(shown[0])
    for needle in (
        "電子委任状",
        "委任状番号: m-0002",
        "委任者（法人）: 株式会社大理建設",
        "受任者: 山田 花子（課長）",
        "金額上限: 金 100,000,000 円",
        "再委任: 不可",
        "【委任の連鎖】",
        "指図書 SHA-256: " + "ab" * 32,
        "本書は dairi が発行し、電子署名を付しています。",
    ):
        assert needle in text


def test_pdf_text_follows_the_fields():
    shown = "\n".join(_pdf_pages(mandate_pdf(_document(grantee="鈴木 三郎（主任）")))[0])
    assert "受任者: 鈴木 三郎（主任）" in shown
    assert "山田 花子（課長）" not in shown.split("【委任の連鎖】")[0]


def test_many_procuring_entities_flow_onto_further_pages(tmp_path):
    entities = tuple(f"国土交通省関東地方整備局第{i}事務所" for i in range(60))
    one = mandate_pdf(_document(procuring_entities=entities[:1]))
    many_document = _document(procuring_entities=entities)
    many_pdf = mandate_pdf(many_document)
    many = _pdf_pages(many_pdf)
    assert len(_pdf_pages(one)) == 1
    assert len(many) > 1
    # poppler finds as many pages, and every entity, in order, once.
    read = _pdftotext(many_pdf, tmp_path)
    assert len(read) == len(many)
    joined = "".join(read)
    assert "、".join(entities) in re.sub(r"電子委任状（続き）.*?ページ）", "", joined)
    assert all(joined.count(f"第{i}事務所") == 1 for i in range(60))
    assert many[0][0] == f"電子委任状　（1 / {len(many)} ページ）"
    for number, page in enumerate(many[1:], start=2):
        assert (
            page[0] == f"電子委任状（続き） 委任状番号: m-0002　（{number} / {len(many)} ページ）"
        )
        assert len(page) <= LINES_PER_PAGE
    # nothing lost: the wrapped pieces join back into the full list, in order
    flat = many[0] + [line for page in many[1:] for line in page[1:]]  # without headings
    start = next(i for i, line in enumerate(flat) if line.startswith("調達機関: "))
    listed = flat[start]
    for line in flat[start + 1 :]:
        if not line.startswith(CONTINUATION_INDENT):
            break
        listed += line.removeprefix(CONTINUATION_INDENT)
    assert listed == "調達機関: " + "、".join(entities)
    assert flat[-1].startswith("本書は dairi が発行し")


# --- the lines -------------------------------------------------------------------------------


def test_lines_show_times_in_jst():
    lines = document_lines(_document())
    assert (
        _line(lines, "有効期間")
        == "有効期間: 2026年04月01日 00:00 から 2026年11月21日 10:00 まで（日本時間）"
    )
    assert lines[-1].endswith("発行日時: 2026年04月01日 09:30（日本時間）")


def test_jst_text_converts_any_offset_and_shows_seconds_only_when_set():
    pacific = timezone(timedelta(hours=-8))
    assert jst_text(datetime(2026, 1, 1, 7, 5, tzinfo=pacific)) == "2026年01月02日 00:05"
    assert jst_text(datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)) == "2026年01月01日 09:00:30"
    with pytest.raises(ValueError):
        jst_text(datetime(2026, 1, 1))  # naive: refused


def test_lines_for_limited_scope():
    lines = document_lines(_document(max_depth=2))
    assert lines[0] == "電子委任状"
    assert _line(lines, "委任状番号") == "委任状番号: m-0002"
    assert _line(lines, "法人番号") == "法人番号: 1234567890123"
    assert _line(lines, "委任者") == "委任者: 佐藤 次郎（部長）"
    assert _line(lines, "受任者") == "受任者: 山田 花子（課長）"
    assert _line(lines, "委任事項") == "委任事項: 入札、見積、電子申請（建設業許可申請）"
    assert _line(lines, "調達機関") == "調達機関: 国土交通省関東地方整備局"
    assert _line(lines, "案件") == "案件: 令和8年度第42号庁舎清掃業務委託"
    assert _line(lines, "金額上限") == "金額上限: 金 100,000,000 円"
    assert _line(lines, "再委任") == "再委任: 可（あと 2 段まで）"
    assert _line(lines, "状態") == "状態: 有効"
    assert _line(lines, "属性証明書シリアル番号") == "属性証明書シリアル番号: 7f3a09c2e4b1"


def test_lines_for_unlimited_scope():
    lines = document_lines(
        _document(
            procuring_entities=None,
            cases=None,
            amount_limit_jpy=None,
            max_depth=0,
            status="失効（2026-11-21 10:00 JST）",
        )
    )
    assert _line(lines, "調達機関") == "調達機関: 制限なし"
    assert _line(lines, "案件") == "案件: 制限なし"
    assert _line(lines, "金額上限") == "金額上限: 制限なし"
    assert _line(lines, "再委任") == "再委任: 不可"
    assert _line(lines, "状態") == "状態: 失効（2026-11-21 10:00 JST）"


def test_chain_lines_in_order_with_this_mandate_marked():
    lines = document_lines(_document())
    start = lines.index("【委任の連鎖】")
    assert lines[start + 1 : start + 3] == [
        "第0段 大理 一郎（代表取締役） → 佐藤 次郎（部長） [有効]（委任状番号 m-0001）",
        "第1段 佐藤 次郎（部長） → 山田 花子（課長） [有効]（委任状番号 m-0002）　← 本書",
    ]
    assert lines[start + 3] == ""


def test_long_chain_spans_pages_in_order():
    chain = tuple(
        ChainLine(i, f"m-{i:04d}", f"委任者{i}", f"受任者{i}", "失効" if i % 7 == 3 else "有効")
        for i in range(70)
    )
    pages = document_pages(_document(mandate_id="m-0069", chain=chain))
    assert len(pages) >= 3
    assert all(len(page) <= LINES_PER_PAGE for page in pages)
    shown = [line for page in pages for line in page if line.startswith("第")]
    assert [int(line[1 : line.index("段")]) for line in shown] == list(range(70))
    assert shown[3] == "第3段 委任者3 → 受任者3 [失効]（委任状番号 m-0003）"
    assert shown[-1].endswith("← 本書")
    assert sum(line.endswith("← 本書") for line in shown) == 1


# --- wrapping -------------------------------------------------------------------------------


def test_short_line_is_not_wrapped():
    assert wrap_line("状態: 有効") == ["状態: 有効"]


def test_wrap_prefers_the_list_separator_and_loses_nothing():
    line = "調達機関: " + "、".join(f"防衛省北関東防衛局第{i}課" for i in range(30))
    pieces = wrap_line(line)
    assert len(pieces) > 1
    assert all(text_width(piece) <= LINE_WIDTH for piece in pieces)
    assert all(piece.endswith("、") for piece in pieces[:-1])
    assert all(piece.startswith(CONTINUATION_INDENT) for piece in pieces[1:])
    assert "".join(p.removeprefix(CONTINUATION_INDENT) for p in pieces) == line


def test_wrap_breaks_a_long_word_anywhere():
    word = "0123456789abcdef" * 10
    pieces = wrap_line(word, width=40)
    assert pieces[0] == word[:40]
    assert all(text_width(piece) <= 40 for piece in pieces)
    assert "".join(p.removeprefix(CONTINUATION_INDENT) for p in pieces) == word


def test_full_width_characters_count_double():
    assert text_width("委任 ab（→）") == 2 + 2 + 1 + 2 + 2 + 2 + 2
    pieces = wrap_line("あ" * 50, width=20)
    assert pieces[0] == "あ" * 10
    assert pieces[1] == CONTINUATION_INDENT + "あ" * 8
