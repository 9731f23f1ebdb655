"""A small Japanese bid document (入札書) for the demo, the tests and the benchmarks."""

from __future__ import annotations

from xml.sax.saxutils import escape

from app.pdf_text import A4, JAPANESE_FONT, PageLayout, draw_pages, wrap

__all__ = ["A4", "JAPANESE_FONT", "application_xml", "bid_pdf"]

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


def application_xml(
    *,
    applicant: str = "株式会社サンプル商事",
    corporate_number: str = "1011001077777",
    submitted_to: str = "国土交通省 関東地方整備局",
    procedure: str = "建設業許可申請",
) -> bytes:
    """A small Japanese e-application (電子申請) as UTF-8 XML, for XAdES signing."""
    applicant, corporate_number, submitted_to, procedure = (
        escape(v, {'"': "&quot;"}) for v in (applicant, corporate_number, submitted_to, procedure)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<申請書 xmlns="urn:example:e-application" 様式="{procedure}">
  <申請者><商号>{applicant}</商号><法人番号>{corporate_number}</法人番号></申請者>
  <提出先>{submitted_to}</提出先>
  <内容>一般建設業の許可を申請します。</内容>
</申請書>
""".encode()
