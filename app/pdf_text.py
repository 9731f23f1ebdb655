"""Japanese text on A4 pages: measured by the font, wrapped to the margins, drawn with pyHanko.

PDF places every glyph by the widths in the font's ``/W`` array, which the PDF format
states in thousandths of an em whatever the font's own grid. pyHanko's
``GlyphAccumulator`` copies the font's advance widths (and the descriptor's ascent,
descent and bounding box) unscaled, which is right only for a font drawn on a 1000-unit
em; IPA Gothic's em is 2048 units, so every glyph advanced about twice its width and
lines ran off the page (issue 10 item 9). Rather than patch pyHanko's internals, each
document is drawn with a subset of the font holding just its characters, rescaled to
1000 units per em with fontTools, and handed to pyHanko's public ``GlyphAccumulator``:
then the font's units and the PDF's agree everywhere (widths, kerning adjustments,
ascent, descent, bounding box).

Lines are wrapped by the advances HarfBuzz gives for the same font, so a line fits
however wide its characters are in the font (``¥`` and ``✓`` are full width in IPA
Gothic although Unicode calls them narrow) and an unbroken run such as a digest wraps
inside the margins.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import uharfbuzz as hb
from fontTools.ttLib import TTFont
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.text import TextBox, TextBoxStyle
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

from dairi import DairiError
from signing.stamp import JAPANESE_FONT, PDF_EM
from signing.stamp import ScaledFontFactory as _ScaledFontFactory
from signing.stamp import font_subset as _font_for

# JAPANESE_FONT: IPA Gothic from Debian's fonts-ipafont-gothic (installed by `make`);
# the font subsetting and pyHanko font factory live in signing.stamp, shared with the
# signature stamp.
A4 = (0, 0, 595.28, 841.89)
MARGIN = 56.7  # 2 cm on every side, in points
_PDF_EM = PDF_EM  # glyph space units per em in PDF (ISO 32000-1, 9.2.4)


# Where Debian's packages put a Japanese Gothic font, best first (issue 10 item 2).
DEBIAN_JAPANESE_FONTS = (
    JAPANESE_FONT,  # fonts-ipafont-gothic
    Path("/usr/share/fonts/truetype/fonts-japanese-gothic.ttf"),  # its alternatives link
    Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"),  # fonts-ipaexfont-gothic
)
_PROBE = "電子委任状"  # a font that cannot draw these is no use for dairi's documents


class FontNotFound(DairiError):
    code = "PDF_FONT_NOT_FOUND"


def _draws_japanese(path: Path) -> bool:
    try:
        font = TTFont(str(path), lazy=True, fontNumber=0)
        cmap = font.getBestCmap() or {}
    except Exception:  # not a font fontTools reads
        return False
    return all(ord(c) in cmap for c in _PROBE)


@functools.lru_cache(maxsize=8)
def find_japanese_font(configured: str = "") -> Path:
    """The font file to draw with: ``configured`` (the ``pdf_font_file`` setting) if
    given; else IPA Gothic where Debian installs it; else the file fontconfig picks
    for Japanese (``fc-match :lang=ja``). A font must carry Japanese glyphs, or it is
    refused (``PDF_FONT_NOT_FOUND``): a Latin fallback would draw empty boxes."""
    if configured:
        path = Path(configured)
        if not path.is_file() or not _draws_japanese(path):
            raise FontNotFound(f"pdf_font_file {configured!r} is not a font with Japanese glyphs")
        return path
    for path in DEBIAN_JAPANESE_FONTS:
        if path.is_file() and _draws_japanese(path):
            return path
    fc_match = shutil.which("fc-match")
    candidate = None
    if fc_match is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run(  # noqa: S603 - fontconfig, fixed arguments
                [fc_match, "--format=%{file}", "Gothic:lang=ja"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            candidate = Path(found.stdout.strip()) if found.stdout.strip() else None
    if candidate is not None and candidate.is_file() and _draws_japanese(candidate):
        return candidate
    raise FontNotFound("no Japanese font found: install fonts-ipafont-gothic or set pdf_font_file")


@functools.lru_cache(maxsize=4)
def _shaper(font_file: str) -> hb.Font:
    """A HarfBuzz font whose advances are in thousandths of an em (read once per process)."""
    font = hb.Font(hb.Face(Path(font_file).read_bytes()))
    font.scale = (_PDF_EM, _PDF_EM)
    return font


def advances(text: str, font_file: Path = JAPANESE_FONT) -> list[float]:
    """Each character's advance in ems, as HarfBuzz shapes ``text`` in the font (a
    cluster of several characters is charged to its first one, the rest advance 0)."""
    per_char = [0.0] * len(text)
    if not text:
        return per_char
    buffer = hb.Buffer()
    buffer.add_str(text)
    buffer.guess_segment_properties()
    hb.shape(_shaper(str(font_file)), buffer, None)
    # uharfbuzz numbers clusters by character index (pyHanko's ToUnicode relies on it too).
    for info, position in zip(buffer.glyph_infos, buffer.glyph_positions, strict=True):
        per_char[min(info.cluster, len(text) - 1)] += position.x_advance / _PDF_EM
    return per_char


def measure(text: str, font_file: Path = JAPANESE_FONT) -> float:
    """The advance of ``text`` in ems (multiply by the font size for points)."""
    return sum(advances(text, font_file))


def wrap(
    line: str,
    width_em: float,
    *,
    indent: str = "",
    break_after: Sequence[str] = ("、，。", " 　・/"),
    font_file: Path = JAPANESE_FONT,
) -> list[str]:
    """Split ``line`` into pieces no wider than ``width_em``; continuations start with
    ``indent``. A piece preferably ends after a character of ``break_after[0]`` in its
    second half, else of ``break_after[1]``, and so on; otherwise the line is broken
    between any two characters (at least one character per piece, so nothing is lost).
    """
    pieces: list[str] = []
    rest, prefix = line, ""
    while measure(prefix + rest, font_file) > width_em:
        room = width_em - measure(prefix, font_file)
        cut, used = 0, 0.0
        for advance in advances(rest, font_file):
            if used + advance > room:
                break
            used += advance
            cut += 1
        cut = max(cut, 1)
        for separators in break_after:
            soft = max((i + 1 for i in range(cut) if rest[i] in separators), default=0)
            if soft > cut // 2:
                cut = soft
                break
        pieces.append((prefix + rest[:cut]).rstrip())
        rest, prefix = rest[cut:].lstrip(" 　"), indent
    pieces.append(prefix + rest)
    return pieces


@dataclass(frozen=True)
class PageLayout:
    """How text sits on an A4 page: font, size (points), leading and margins."""

    font_size: int
    leading: int  # points, as pyHanko's TextBoxStyle takes it
    margin: float = MARGIN
    font_file: Path = JAPANESE_FONT
    page: tuple[float, float, float, float] = A4  # the media box (settings.pdf_page)

    @property
    def line_width_em(self) -> float:
        """The width between the side margins, in ems of this layout's font size."""
        return (self.page[2] - 2 * self.margin) / self.font_size

    @property
    def lines_per_page(self) -> int:
        """How many lines fit between the top and bottom margins."""
        usable = self.page[3] - 2 * self.margin - self.font_size  # the last line's body
        return int(usable // self.leading) + 1


def draw_pages(pages: Sequence[Sequence[str]], page_layout: PageLayout) -> bytes:
    """A4 PDF bytes with one page per entry, its lines (already wrapped) from the top-left
    margin down, in the layout's font, embedded as a subset."""
    characters = "".join(sorted({c for page in pages for line in page for c in line}))
    factory = _ScaledFontFactory(
        _font_for(str(page_layout.font_file), characters), page_layout.font_size
    )
    writer = PdfFileWriter()
    style = TextBoxStyle(
        font=factory,
        font_size=page_layout.font_size,
        leading=page_layout.leading,
        box_layout_rule=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MIN,
            y_align=layout.AxisAlignment.ALIGN_MAX,
            margins=layout.Margins.uniform(0),
        ),
    )
    _, _, page_width, page_height = page_layout.page
    margin = page_layout.margin
    box = layout.BoxConstraints(width=page_width - 2 * margin, height=page_height - 2 * margin)
    for lines in pages:
        text = TextBox(style, writer, box=box)
        text.content = "\n".join(lines)
        form = writer.add_object(text.as_form_xobject())
        resources = generic.DictionaryObject(
            {
                generic.pdf_name("/XObject"): generic.DictionaryObject(
                    {generic.pdf_name("/Text"): form}
                ),
            }
        )
        contents = generic.StreamObject(
            stream_data=b"q 1 0 0 1 %g %g cm /Text Do Q" % (margin, margin)
        )
        writer.insert_page(
            PageObject(
                contents=writer.add_object(contents),
                media_box=page_layout.page,
                resources=resources,
            )
        )
    out = BytesIO()
    writer.write(out)
    return out.getvalue()
