"""The visible stamp of a signature made under a mandate, in Japanese, and the font
code it shares with :mod:`app.pdf_text` (moved here so the signing package, which
imports nothing from ``app``, draws with the same fixed font handling).

PDF places every glyph by the widths in the font's ``/W`` array, in thousandths of an
em whatever the font's own grid; pyHanko's ``GlyphAccumulator`` copies the font's
advance widths unscaled, which is right only for a 1000-unit em (IPA Gothic's is
2048: issue 10 item 9). So a document is drawn with a subset of the font holding just
its characters, rescaled to 1000 units per em with fontTools, handed to pyHanko's
public ``GlyphAccumulator``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont
from fontTools.ttLib.scaleUpem import scale_upem
from pyhanko.pdf_utils import layout
from pyhanko.pdf_utils.font.api import FontEngineFactory
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.pdf_utils.xref import ObjectStream
from pyhanko.sign.fields import SigFieldSpec
from pyhanko.stamp import TextStampStyle

from signing.mandate_evidence import MandateStamp

# IPA Gothic from Debian's fonts-ipafont-gothic (installed by `make`).
JAPANESE_FONT = Path("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf")
PDF_EM = 1000  # glyph space units per em in PDF (ISO 32000-1, 9.2.4)

# The stamp's box, in points: bottom right of the page, inside a 2 cm margin.
STAMP_WIDTH, STAMP_HEIGHT, STAMP_MARGIN = 260, 96, 56
STAMP_FONT_SIZE, STAMP_LEADING = 9, 12
_IDEOGRAPHIC_SPACE = "\u3000"  # pads the labels to one width


@functools.lru_cache(maxsize=32)
def font_subset(font_file: str, characters: str) -> bytes:
    """The font cut down to ``characters`` (with the glyphs its default shaping can reach)
    and rescaled to 1000 units per em. Hinting is dropped: its control values are on the
    old grid, and PDF viewers scale outlines freely."""
    options = subset.Options()
    options.layout_features = ["*"]
    options.notdef_outline = True
    options.hinting = False
    font = TTFont(font_file, lazy=True)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=characters)
    subsetter.subset(font)
    if font["head"].unitsPerEm != PDF_EM:
        scale_upem(font, PDF_EM)
    out = BytesIO()
    font.save(out)
    return out.getvalue()


@dataclass(frozen=True)
class ScaledFontFactory(FontEngineFactory):
    """pyHanko's glyph accumulator over an in-memory font (the rescaled subset)."""

    font_bytes: bytes
    font_size: int

    def create_font_engine(
        self, writer: BasePdfFileWriter, obj_stream: ObjectStream | None = None
    ) -> GlyphAccumulator:
        return GlyphAccumulator(
            writer=writer,
            font_handle=BytesIO(self.font_bytes),
            font_size=self.font_size,
            obj_stream=obj_stream,
        )


def _clip(text: str, limit: int = 40) -> str:
    """One line of at most ``limit`` characters (a stamp is a summary; the evidence
    embedded in the document holds the whole grant)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def stamp_lines(stamp: MandateStamp) -> list[str]:
    """The stamp's text: a heading, then 受任者, 委任者, 委任事項, 案件, 日時."""
    rows = (
        ("受任者", stamp.agent),
        ("委任者", stamp.principal),
        ("委任事項", stamp.actions),
        ("案件", stamp.case),
        ("日時", stamp.signed_at),
    )
    return ["電子委任状に基づく署名"] + [
        label.ljust(4, _IDEOGRAPHIC_SPACE) + "：" + _clip(value) for label, value in rows
    ]


def stamp_style(stamp: MandateStamp, font_file: Path = JAPANESE_FONT) -> TextStampStyle:
    """pyHanko's text stamp with the stamp's lines in the (rescaled, subset) font."""
    text = "\n".join(stamp_lines(stamp))
    characters = "".join(sorted(set(text)))
    factory = ScaledFontFactory(font_subset(str(font_file), characters), STAMP_FONT_SIZE)
    return TextStampStyle(
        # The template is %-interpolated by pyHanko: a literal % must be doubled.
        stamp_text=text.replace("%", "%%"),
        text_box_style=TextBoxStyle(font=factory, font_size=STAMP_FONT_SIZE, leading=STAMP_LEADING),
        inner_content_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MIN,
            y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins.uniform(6),
        ),
        border_width=1,
        background=None,
    )


def stamp_field(
    stamp: MandateStamp, field_name: str, media_box: tuple[float, float, float, float]
) -> SigFieldSpec:
    """A new signature field for the stamp, bottom right of page ``stamp.page``."""
    x1 = int(media_box[2] - STAMP_MARGIN)
    y0 = int(media_box[1] + STAMP_MARGIN)
    return SigFieldSpec(
        sig_field_name=field_name,
        on_page=stamp.page,
        box=(x1 - STAMP_WIDTH, y0, x1, y0 + STAMP_HEIGHT),
    )
