"""Paper sizes, millimetres to inches and pixels, and lon/lat boxes: the arithmetic of print output.

Pure functions on plain values. Bad input raises ``InvalidValue`` (a ValueError) that names the
option and the value and says what would be valid, for callers to pass on to a user.
"""

from __future__ import annotations

import math
import re

MM_PER_INCH = 25.4
# ISO 216 and US sizes, portrait (width, height) in millimetres.
PAPER_SIZES_MM = {
    "A5": (148.0, 210.0),
    "A4": (210.0, 297.0),
    "A3": (297.0, 420.0),
    "A2": (420.0, 594.0),
    "Letter": (215.9, 279.4),
    "Legal": (215.9, 355.6),
    "Tabloid": (279.4, 431.8),
}
ORIENTATIONS = ("landscape", "portrait")
# A custom size's sides: from the smallest sheet whose margins still leave room for the map frame, title,
# legend and locator (the layout of layers.export) to A0's long side, and a strip at most 10 times as
# long as it is wide (a longer strip leaves the frame no height).
MIN_SIDE_MM, MAX_SIDE_MM, MAX_ASPECT = 100.0, 1189.0, 10.0


class InvalidValue(ValueError):
    """A value the arithmetic cannot use: ``option``, ``value`` and what would be ``valid``."""

    def __init__(self, option: str, value, valid: str):
        super().__init__(f"{option} {value!r} is invalid: {valid}")
        self.option, self.value, self.valid = option, value, valid


_CUSTOM = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*[x×]\s*([0-9]+(?:\.[0-9]+)?)\s*mm\s*$", re.IGNORECASE | re.ASCII)


def valid_sizes() -> str:
    return (f"one of {', '.join(PAPER_SIZES_MM)} or WxHmm (e.g. 300x200mm, sides {MIN_SIDE_MM:g}..{MAX_SIDE_MM:g} mm, "
            f"the long side at most {MAX_ASPECT:g} times the short one)")


def paper_size(name: str, orientation: str | None = None) -> tuple[float, float]:
    """(width, height) in mm of a named size or ``WxHmm``; named sizes default to landscape.

    A custom ``WxHmm`` keeps the sides as written unless an orientation is asked for explicitly.
    """
    if orientation is not None and orientation not in ORIENTATIONS:
        raise InvalidValue("orientation", orientation, f"one of {', '.join(ORIENTATIONS)}")
    named = {key.casefold(): value for key, value in PAPER_SIZES_MM.items()}.get(str(name).strip().casefold())
    custom = _CUSTOM.match(str(name))
    if named is not None:
        width, height = named
        orientation = orientation or "landscape"
    elif custom:
        width, height = float(custom[1]), float(custom[2])
    else:
        raise InvalidValue("size", name, valid_sizes())
    if not all(MIN_SIDE_MM <= side <= MAX_SIDE_MM for side in (width, height)) \
            or max(width, height) > MAX_ASPECT * min(width, height):
        raise InvalidValue("size", name, valid_sizes())
    if orientation is None:
        return width, height
    short, long = sorted((width, height))
    return (long, short) if orientation == "landscape" else (short, long)


def pixels(size_mm: tuple[float, float], dpi: float) -> tuple[int, int]:
    """The pixel size a paper size implies at ``dpi`` (rounded, as A4 at 300 dpi = 3508 x 2480)."""
    return tuple(round(side / MM_PER_INCH * dpi) for side in size_mm)


def figure_inches(size_px: tuple[int, int], dpi: float) -> tuple[float, float]:
    """Figure size in inches that a raster renderer truncating ``inches * dpi`` turns into exactly ``size_px``."""
    def side(px: int) -> float:
        inches = px / dpi
        while int(inches * dpi) < px:
            inches = math.nextafter(inches, math.inf)
        return inches
    return side(size_px[0]), side(size_px[1])


# A plain decimal number in ASCII: float() would also take "1_0", Arabic-Indic digits, "nan" and "inf".
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def parse_bbox(text: str, allow_point: bool = False) -> tuple[float, float, float, float]:
    """A lon/lat box ``minx,miny,maxx,maxy``: four finite numbers in range, min < max (min <= max with
    ``allow_point``, as OGC API bbox filters allow). InvalidValue otherwise."""
    order = "<=" if allow_point else "<"
    valid = f"four comma-separated numbers minx,miny,maxx,maxy (lon -180..180, lat -90..90, min {order} max)"
    parts = str(text).split(",")
    if len(parts) != 4 or not all(_NUMBER.fullmatch(part.strip()) for part in parts):
        raise InvalidValue("bbox", text, valid)
    values = tuple(float(part) for part in parts)
    minx, miny, maxx, maxy = values
    ordered = (minx <= maxx and miny <= maxy) if allow_point else (minx < maxx and miny < maxy)
    if not (ordered and -180 <= minx and maxx <= 180 and -90 <= miny and maxy <= 90):
        raise InvalidValue("bbox", text, valid)
    return values


def padded(bounds: tuple[float, float, float, float], fraction: float) -> tuple[float, float, float, float]:
    """``bounds`` grown by ``fraction`` of its larger side on every edge."""
    minx, miny, maxx, maxy = bounds
    pad = fraction * max(maxx - minx, maxy - miny)
    return minx - pad, miny - pad, maxx + pad, maxy + pad


def fit_aspect(bounds: tuple[float, float, float, float], aspect: float) -> tuple[float, float, float, float]:
    """The smallest box around ``bounds`` with width/height = ``aspect``, centred on it."""
    minx, miny, maxx, maxy = bounds
    width, height = maxx - minx, maxy - miny
    if width / height < aspect:
        grow = (height * aspect - width) / 2
        return minx - grow, miny, maxx + grow, maxy
    grow = (width / aspect - height) / 2
    return minx, miny - grow, maxx, maxy + grow
