"""The human-readable electronic power of attorney (電子委任状) as a Japanese PDF.

``document_lines`` gives the text, ``document_pages`` wraps it and splits it into pages,
``mandate_pdf`` renders those pages in IPA Gothic with pyHanko (a text box per page).
All times are shown in Japan Standard Time.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from io import BytesIO

from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
from pyhanko.pdf_utils.text import TextBox, TextBoxStyle
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

from app.sample_documents import A4, JAPANESE_FONT

JST = timezone(timedelta(hours=9), "JST")
TITLE = "電子委任状"
NO_LIMIT = "制限なし"

# Layout: 10 pt IPA Gothic (fixed pitch: full-width glyphs 1 em, the others 1/2 em).
FONT_SIZE = 10
LEADING = 19
LINE_WIDTH = 92            # in half-width units (a full-width character counts 2)
LINES_PER_PAGE = 32
CONTINUATION_INDENT = "　　"
_MARGIN_X, _MARGIN_BOTTOM, _MARGIN_TOP = 56, 60, 60
_BREAK_AFTER = ("、，。", " 　・/")   # list separators first, then spaces


@dataclass(frozen=True)
class ChainLine:
    """One mandate of the delegation chain, as shown in the document."""

    depth: int                 # 0 = the representative's grant
    mandate_id: str
    grantor: str               # e.g. "大理 一郎（代表取締役）"
    grantee: str
    status: str                # Japanese label e.g. "有効", "失効"


@dataclass(frozen=True)
class MandateDocument:
    """What the document states; labels are already in Japanese, times are aware."""

    mandate_id: str
    principal_name: str
    principal_corporate_number: str
    grantor: str
    grantee: str
    actions: tuple[str, ...]
    procuring_entities: tuple[str, ...] | None     # None = 制限なし
    cases: tuple[str, ...] | None                  # None = 制限なし
    amount_limit_jpy: int | None                   # None = 制限なし
    not_before: datetime
    not_after: datetime
    max_depth: int                                 # 0 = 再委任不可
    status: str
    attribute_certificate_serial: str
    instruction_sha256: str
    chain: tuple[ChainLine, ...]                   # root first, this mandate last
    issued_at: datetime


def jst_text(moment: datetime) -> str:
    """``2026年04月01日 00:00`` in JST (seconds shown only when not zero)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("document times must be timezone-aware")
    t = moment.astimezone(JST)
    text = f"{t.year:04d}年{t.month:02d}月{t.day:02d}日 {t.hour:02d}:{t.minute:02d}"
    return text + (f":{t.second:02d}" if t.second else "")


def _names(names: tuple[str, ...] | None) -> str:
    if names is None:
        return NO_LIMIT
    return "、".join(names) if names else "なし"


def _amount(amount_jpy: int | None) -> str:
    return NO_LIMIT if amount_jpy is None else f"金 {amount_jpy:,} 円"


def _sub_delegation(max_depth: int) -> str:
    return "不可" if max_depth == 0 else f"可（あと {max_depth} 段まで）"


def chain_line_text(line: ChainLine, *, current_id: str | None = None) -> str:
    """``第0段 委任者 → 受任者 [有効]（委任状番号 …）``, marked 本書 for ``current_id``."""
    text = (f"第{line.depth}段 {line.grantor} → {line.grantee} [{line.status}]"
            f"（委任状番号 {line.mandate_id}）")
    return text + ("　← 本書" if line.mandate_id == current_id else "")


def document_lines(document: MandateDocument) -> list[str]:
    """The document's text (title first), one entry per logical line, before wrapping."""
    d = document
    chain = [chain_line_text(c, current_id=d.mandate_id) for c in d.chain] or ["（記録なし）"]
    return [
        TITLE,
        "",
        f"委任状番号: {d.mandate_id}",
        f"委任者（法人）: {d.principal_name}",
        f"法人番号: {d.principal_corporate_number}",
        f"委任者: {d.grantor}",
        f"受任者: {d.grantee}",
        "",
        "上記の受任者に、次の事項を委任します。",
        "",
        f"委任事項: {'、'.join(d.actions) or 'なし'}",
        f"調達機関: {_names(d.procuring_entities)}",
        f"案件: {_names(d.cases)}",
        f"金額上限: {_amount(d.amount_limit_jpy)}",
        f"有効期間: {jst_text(d.not_before)} から {jst_text(d.not_after)} まで（日本時間）",
        f"再委任: {_sub_delegation(d.max_depth)}",
        f"状態: {d.status}",
        "",
        "【委任の連鎖】",
        *chain,
        "",
        f"属性証明書シリアル番号: {d.attribute_certificate_serial}",
        f"指図書 SHA-256: {d.instruction_sha256}",
        "",
        "本書は dairi が発行し、電子署名を付しています。"
        f"発行日時: {jst_text(d.issued_at)}（日本時間）",
    ]


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("F", "W", "A") else 1


def text_width(text: str) -> int:
    """Width in half-width units (full-width and East Asian ambiguous characters: 2)."""
    return sum(_char_width(c) for c in text)


def wrap_line(line: str, width: int = LINE_WIDTH) -> list[str]:
    """Split ``line`` into pieces of at most ``width`` units; continuations are indented.

    A piece preferably ends after a 、 in its second half, else after a space there;
    otherwise the line is broken between any two characters.
    """
    pieces: list[str] = []
    rest, prefix = line, ""
    while text_width(prefix + rest) > width:
        room = width - text_width(prefix)
        cut, used = 0, 0
        while used + _char_width(rest[cut]) <= room:
            used += _char_width(rest[cut])
            cut += 1
        cut = max(cut, 1)
        for separators in _BREAK_AFTER:
            soft = max((i + 1 for i in range(cut) if rest[i] in separators), default=0)
            if soft > cut // 2:
                cut = soft
                break
        pieces.append((prefix + rest[:cut]).rstrip())
        rest, prefix = rest[cut:].lstrip(" 　"), CONTINUATION_INDENT
    pieces.append(prefix + rest)
    return pieces


def document_pages(document: MandateDocument) -> list[list[str]]:
    """The wrapped lines of the document, at most ``LINES_PER_PAGE`` per page.

    When there is more than one page, the title line of page 1 carries the page number and
    every further page starts with a heading (title, 委任状番号, page number) and a blank
    line. No page body starts with a blank line.
    """
    lines = [piece for line in document_lines(document) for piece in wrap_line(line)]
    pages: list[list[str]] = []
    for line in lines:
        if not pages or len(pages[-1]) == LINES_PER_PAGE:
            if not line:
                continue
            pages.append(["", ""] if pages else [])   # the heading is filled in below
        pages[-1].append(line)
    count = len(pages)
    if count > 1:
        pages[0][0] += f"　（1 / {count} ページ）"
        for number, page in enumerate(pages[1:], start=2):
            page[0] = f"{TITLE}（続き） 委任状番号: {document.mandate_id}"
            page[0] += f"　（{number} / {count} ページ）"
    return pages


def mandate_pdf(document: MandateDocument) -> bytes:
    """The document as A4 PDF bytes, text in IPA Gothic, as many pages as needed."""
    writer = PdfFileWriter()
    style = TextBoxStyle(
        font=GlyphAccumulatorFactory(str(JAPANESE_FONT), font_size=FONT_SIZE),
        font_size=FONT_SIZE,
        leading=LEADING,
        box_layout_rule=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MIN,
            y_align=layout.AxisAlignment.ALIGN_MAX,
            margins=layout.Margins.uniform(0),
        ),
    )
    _, _, page_width, page_height = A4
    box_width = int(page_width - 2 * _MARGIN_X)
    box_height = int(page_height - _MARGIN_BOTTOM - _MARGIN_TOP)
    pages = document_pages(document)
    for lines in pages:
        box = TextBox(style, writer,
                      box=layout.BoxConstraints(width=box_width, height=box_height))
        box.content = "\n".join(lines)
        form = writer.add_object(box.as_form_xobject())
        resources = generic.DictionaryObject({
            generic.pdf_name("/XObject"): generic.DictionaryObject(
                {generic.pdf_name("/Text"): form}),
        })
        contents = generic.StreamObject(
            stream_data=b"q 1 0 0 1 %d %d cm /Text Do Q" % (_MARGIN_X, _MARGIN_BOTTOM))
        writer.insert_page(PageObject(contents=writer.add_object(contents), media_box=A4,
                                      resources=resources))
    out = BytesIO()
    writer.write(out)
    return out.getvalue()
