"""A small Japanese bid document (入札書) for the demo, the tests and the benchmarks."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
from pyhanko.pdf_utils.text import TextBox, TextBoxStyle
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

# IPA Gothic from Debian's fonts-ipafont-gothic (installed by `make`).
JAPANESE_FONT = Path("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf")
A4 = (0, 0, 595.28, 841.89)


def bid_pdf(
    *,
    case: str = "令和8年度 第42号 庁舎清掃業務委託",
    procuring_entity: str = "国土交通省 関東地方整備局",
    bidder: str = "株式会社サンプル商事",
    amount_jpy: int = 12_345_000,
) -> bytes:
    """A one-page 入札書 (bid form) as PDF bytes, text in IPA Gothic."""
    writer = PdfFileWriter()
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
    style = TextBoxStyle(font=GlyphAccumulatorFactory(str(JAPANESE_FONT), font_size=12),
                         font_size=12,
                         leading=22)
    box = TextBox(style, writer, box=layout.BoxConstraints(width=500, height=400))
    box.content = "\n".join(lines)
    text_stream = box.as_form_xobject()
    resources = generic.DictionaryObject(
        {generic.pdf_name("/XObject"): generic.DictionaryObject(
            {generic.pdf_name("/Bid"): writer.add_object(text_stream)})}
    )
    contents = generic.StreamObject(stream_data=b"q 1 0 0 1 60 380 cm /Bid Do Q")
    writer.insert_page(PageObject(contents=writer.add_object(contents), media_box=A4,
                                  resources=resources))
    out = BytesIO()
    writer.write(out)
    return out.getvalue()
