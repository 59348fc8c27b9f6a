"""MapLibre glyph ranges (signed-distance-field PBF) of the label fonts, generated offline from the DejaVu
Sans faces matplotlib ships, so the MapLibre styles can draw labels without a font server.

Format (as fontnik and the MapLibre font servers write it): ``glyphs { repeated fontstack stacks = 1 }``,
``fontstack { name = 1; range = 2; repeated glyph glyphs = 3 }``, ``glyph { uint32 id = 1; bytes bitmap = 2;
uint32 width = 3, height = 4; sint32 left = 5, top = 6; uint32 advance = 7 }``: glyphs drawn at 24 px, the
bitmap a one-byte SDF with a 3 px border, 192 on the outline, 8 px of distance either side.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache

import matplotlib
import numpy as np
import skia
from scipy import ndimage

SIZE, BORDER, RADIUS, CUTOFF = 24, 3, 8.0, 0.25
SUPERSAMPLE = 4
RANGE_SIZE = 256
MAX_CODEPOINT = 65535
DRAWN = range(32, 256)  # Latin-1: every label the atlas writes; other ranges are served empty
FACES = {"DejaVu Sans": "DejaVuSans.ttf", "DejaVu Sans Bold": "DejaVuSans-Bold.ttf",
         "DejaVu Sans Oblique": "DejaVuSans-Oblique.ttf", "DejaVu Sans Bold Oblique": "DejaVuSans-BoldOblique.ttf"}


class GlyphError(KeyError):
    """A font stack or range that is not served; the message names what is."""


def check(fontstack: str, glyph_range: str) -> tuple[str, int]:
    """(face, first codepoint) of a request ``{fontstack}/{start}-{end}``: the first served face of the
    comma-separated stack and a 256-codepoint range."""
    face = next((name.strip() for name in fontstack.split(",") if name.strip() in FACES), None)
    if face is None:
        raise GlyphError(f"font stack {fontstack!r} has no served font; served: {', '.join(FACES)}")
    start, _, end = glyph_range.partition("-")
    if not (start.isdigit() and end.isdigit() and int(start) % RANGE_SIZE == 0
            and int(end) == int(start) + RANGE_SIZE - 1 and int(end) <= MAX_CODEPOINT):
        raise GlyphError(f"glyph range {glyph_range!r} is invalid: ranges are N-(N+255) with N a multiple of 256 "
                         f"up to {MAX_CODEPOINT}")
    return face, int(start)


# --- protobuf ----------------------------------------------------------------------------------

def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value) -> bytes:
    if isinstance(value, (bytes, str)):
        data = value.encode() if isinstance(value, str) else value
        return _varint(number << 3 | 2) + _varint(len(data)) + data
    return _varint(number << 3) + _varint(value)


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 31)


# --- drawing -----------------------------------------------------------------------------------

def font_file(face: str) -> str:
    """The TrueType file of a served face: raster tiles draw their labels with the same fonts."""
    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf", FACES[face])


@lru_cache(maxsize=len(FACES))
def _font(face: str) -> skia.Font:
    return skia.Font(skia.Typeface.MakeFromFile(font_file(face)), SIZE * SUPERSAMPLE)


def sdf(outline: skia.Path, width: int, height: int, dx: float, dy: float) -> bytes:
    """The SDF bitmap ((width + 6) x (height + 6) bytes) of a glyph outline drawn at ``SUPERSAMPLE`` x,
    shifted by (dx, dy) supersampled pixels."""
    w, h = (width + 2 * BORDER) * SUPERSAMPLE, (height + 2 * BORDER) * SUPERSAMPLE
    surface = skia.Surface(w, h)
    canvas = surface.getCanvas()
    canvas.clear(skia.ColorTRANSPARENT)
    canvas.translate(dx, dy)
    canvas.drawPath(outline, skia.Paint(AntiAlias=False, Color=skia.ColorBLACK))
    inside = surface.makeImageSnapshot().toarray()[..., 3] > 127
    signed = (ndimage.distance_transform_edt(~inside) - ndimage.distance_transform_edt(inside)) / SUPERSAMPLE
    centres = signed[SUPERSAMPLE // 2::SUPERSAMPLE, SUPERSAMPLE // 2::SUPERSAMPLE]
    return np.clip(np.round(255 - 255 * (centres / RADIUS + CUTOFF)), 0, 255).astype(np.uint8).tobytes()


def glyph(font: skia.Font, codepoint: int) -> bytes | None:
    """One encoded glyph message, or None when the font has no glyph for ``codepoint``."""
    gid = font.unicharToGlyph(codepoint)
    if gid == 0:
        return None
    advance = round(font.getWidths([gid])[0] / SUPERSAMPLE)
    outline = font.getPath(gid)
    bounds = outline.getBounds() if outline else skia.Rect.MakeEmpty()
    if bounds.isEmpty():  # space and other blanks: metrics only
        return b"".join([_field(1, codepoint), _field(3, 0), _field(4, 0), _field(5, 0), _field(6, _zigzag(-SIZE)),
                         _field(7, advance)])
    left, top = math.floor(bounds.left() / SUPERSAMPLE), math.floor(bounds.top() / SUPERSAMPLE)
    width = math.ceil(bounds.right() / SUPERSAMPLE) - left
    height = math.ceil(bounds.bottom() / SUPERSAMPLE) - top
    bitmap = sdf(outline, width, height, (BORDER - left) * SUPERSAMPLE, (BORDER - top) * SUPERSAMPLE)
    return b"".join([_field(1, codepoint), _field(2, bitmap), _field(3, width), _field(4, height),
                     _field(5, _zigzag(left)), _field(6, _zigzag(-top - SIZE)), _field(7, advance)])


@lru_cache(maxsize=32)
def glyph_range(fontstack: str, glyph_range_name: str) -> bytes:
    """The PBF of one 256-codepoint range of a font stack (GlyphError if not served)."""
    face, start = check(fontstack, glyph_range_name)
    font = _font(face)
    glyphs = [g for c in range(start, start + RANGE_SIZE) if c in DRAWN and (g := glyph(font, c)) is not None]
    stack = _field(1, fontstack) + _field(2, glyph_range_name) + b"".join(_field(3, g) for g in glyphs)
    return _field(1, stack)
