"""The human-readable electronic power of attorney (電子委任状) as a Japanese PDF.

``document_lines`` gives the text, ``document_pages`` wraps it by the width the font
gives each character and splits it into pages, ``mandate_pdf`` draws those pages in
IPA Gothic (``app.pdf_text``). All times are shown in Japan Standard Time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from app.pdf_text import PageLayout, draw_pages, measure, wrap

JST = timezone(timedelta(hours=9), "JST")
TITLE = "電子委任状"
NO_LIMIT = "制限なし"
# The drawing's version, part of a stored signed document's state: change it whenever the
# same lines would be drawn differently, and documents drawn before are drawn again.
# 2: font widths in thousandths of an em, lines wrapped by measured width (issue 10.9).
RENDERING = "2"

# Layout: 10 pt IPA Gothic, 2 cm margins.
LAYOUT = PageLayout(font_size=10, leading=19)
FONT_SIZE = LAYOUT.font_size
LEADING = LAYOUT.leading
# Widths are counted in half-ems: a half-width character of IPA Gothic is 1, a full-width 2.
LINE_WIDTH = int(2 * LAYOUT.line_width_em)
LINES_PER_PAGE = 32  # fewer than fit (LAYOUT.lines_per_page): room below the text
CONTINUATION_INDENT = "　　"
_BREAK_AFTER = ("、，。", " 　・/")  # list separators first, then spaces


@dataclass(frozen=True)
class ChainLine:
    """One mandate of the delegation chain, as shown in the document."""

    depth: int  # 0 = the representative's grant
    mandate_id: str
    grantor: str  # e.g. "大理 一郎（代表取締役）"
    grantee: str
    status: str  # Japanese label e.g. "有効", "失効"


@dataclass(frozen=True)
class MandateDocument:
    """What the document states; labels are already in Japanese, times are aware."""

    mandate_id: str
    principal_name: str
    principal_corporate_number: str
    grantor: str
    grantee: str
    actions: tuple[str, ...]
    procuring_entities: tuple[str, ...] | None  # None = 制限なし
    cases: tuple[str, ...] | None  # None = 制限なし
    amount_limit_jpy: int | None  # None = 制限なし
    not_before: datetime
    not_after: datetime
    max_depth: int  # 0 = 再委任不可
    status: str
    attribute_certificate_serial: str
    instruction_sha256: str
    chain: tuple[ChainLine, ...]  # root first, this mandate last
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
    text = (
        f"第{line.depth}段 {line.grantor} → {line.grantee} [{line.status}]"
        f"（委任状番号 {line.mandate_id}）"
    )
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


def text_width(text: str) -> float:
    """Width of ``text`` in half-ems of the document's font, as drawn (measured by the font,
    not guessed from Unicode: ``¥`` is full width in IPA Gothic)."""
    return 2 * measure(text, LAYOUT.font_file)


def wrap_line(line: str, width: float = LINE_WIDTH, layout: PageLayout = LAYOUT) -> list[str]:
    """Split ``line`` into pieces of at most ``width`` half-ems; continuations are indented.

    A piece preferably ends after a 、 in its second half, else after a space there;
    otherwise the line is broken between any two characters.
    """
    return wrap(
        line,
        width / 2,
        indent=CONTINUATION_INDENT,
        break_after=_BREAK_AFTER,
        font_file=layout.font_file,
    )


def layout_for(font_file: Path, page: tuple[float, float, float, float]) -> PageLayout:
    """The document's layout in the configured font and page size (``settings.pdf_font``,
    ``settings.pdf_page``); :data:`LAYOUT` is the default one."""
    return dataclasses.replace(LAYOUT, font_file=font_file, page=page)


def document_pages(document: MandateDocument, layout: PageLayout = LAYOUT) -> list[list[str]]:
    """The wrapped lines of the document, at most ``LINES_PER_PAGE`` per page.

    When there is more than one page, the title line of page 1 carries the page number and
    every further page starts with a heading (title, 委任状番号, page number) and a blank
    line. No page body starts with a blank line.
    """
    width = int(2 * layout.line_width_em)
    per_page = min(LINES_PER_PAGE, layout.lines_per_page)
    lines = [piece for line in document_lines(document) for piece in wrap_line(line, width, layout)]
    pages: list[list[str]] = []
    for line in lines:
        if not pages or len(pages[-1]) == per_page:
            if not line:
                continue
            pages.append(["", ""] if pages else [])  # the heading is filled in below
        pages[-1].append(line)
    count = len(pages)
    if count > 1:
        pages[0][0] += f"　（1 / {count} ページ）"
        for number, page in enumerate(pages[1:], start=2):
            page[0] = f"{TITLE}（続き） 委任状番号: {document.mandate_id}"
            page[0] += f"　（{number} / {count} ページ）"
    return pages


def mandate_pdf(document: MandateDocument, layout: PageLayout = LAYOUT) -> bytes:
    """The document as PDF bytes (A4 and IPA Gothic unless ``layout`` says otherwise), as
    many pages as needed."""
    return draw_pages(document_pages(document, layout), layout)
