"""A small Japanese bid document (入札書) for the demo, the tests and the benchmarks."""

from __future__ import annotations

from app.pdf_text import A4, JAPANESE_FONT, PageLayout, draw_pages, wrap

__all__ = ["A4", "JAPANESE_FONT", "bid_pdf"]

# 12 pt IPA Gothic, 2 cm margins; a long 件名 wraps under its label.
_LAYOUT = PageLayout(font_size=12, leading=22)
_INDENT = "　　"


def bid_pdf(
    *,
    case: str = "令和8年度 第42号 庁舎清掃業務委託",
    procuring_entity: str = "国土交通省 関東地方整備局",
    bidder: str = "株式会社サンプル商事",
    amount_jpy: int = 12_345_000,
) -> bytes:
    """A one-page 入札書 (bid form) as PDF bytes, text in IPA Gothic."""
    lines = [
        "入 札 書",
        "",
        f"件名: {case}",
        f"発注機関: {procuring_entity}",
        f"入札金額: 金 {amount_jpy:,} 円（税抜）",
        "",
        "上記のとおり、入札説明書及び契約条項を承諾のうえ入札します。",
        "",
        f"入札者: {bidder}",
    ]
    wrapped = [
        piece for line in lines for piece in wrap(line, _LAYOUT.line_width_em, indent=_INDENT)
    ]
    return draw_pages([wrapped], _LAYOUT)
