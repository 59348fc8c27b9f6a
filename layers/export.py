"""Print-ready static maps (PNG, SVG, PDF): a GIS-style layout drawn with matplotlib from the build.

Options come in as plain strings (from the CLI or a query string) and are checked by pure functions
that raise ``ExportOptionError`` naming the bad value and what is valid. ``render`` draws one map on
a matplotlib ``Figure`` (no pyplot: safe in server workers); ``to_bytes``/``write`` turn it into a
file, atomically. Colours come from ``layers.style`` so a printed map matches the web map.

The map is drawn in a transverse Mercator projection centred on the view, in metres, so that the
scale bar is true (scale error under 1% across all of Pakistan) and north is up.
"""

from __future__ import annotations

import functools
import io
import itertools
import logging
import math
import re
import textwrap
import threading
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Circle, PathPatch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.patheffects import Stroke
from matplotlib.transforms import Bbox
from matplotlib_scalebar.scalebar import ScaleBar
from pyproj import Transformer

from geo import atomic, gazetteer, paper
from geo.geometry import polygonal, reproject
from layers import catalogue, disputed, eventsymbols, features, labels, places, style, wilayahs

log = logging.getLogger(__name__)

FORMATS = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}
CONTEXT_LAYER = "countries"  # always drawn underneath (land and neighbours) and in the locator map
PAKISTAN_ID = "586"  # ISO 3166 numeric, the id of Pakistan in the countries layer
DEFAULT_LAYERS = ("provinces", "districts", "wilayahs")
DEFAULT_SIZE = "A4"
DEFAULT_DPI = 300
MIN_DPI, MAX_DPI = 50, 600
MAX_PIXELS = 75_000_000  # A3 at 600 dpi; beyond that a PNG needs gigabytes to draw
MAX_BBOX_DEGREES = 40.0  # wider views leave the projection's useful range
MAX_TEXT = 200  # characters of a title or subtitle
FOCUS_LAYERS = ("wilayahs", "provinces", "divisions", "districts", "tribal-districts")
DISTRICT_LABELS_BELOW_KM = 900  # district names only fit when the view is at most this wide
INK, HALO = style.INK, style.HALO
SCALEBAR_FRACTION = 0.22  # of the map width
PX_TO_PT = 72 / 96  # style widths are CSS px at 96 dpi
WEB_MERCATOR_M_PER_PX = 156543.03392  # ground metres per pixel at zoom 0 on the equator
REGION = (44.0, 5.0, 98.0, 48.0)  # South and Central Asia: the locator of a national map
NATIONAL_SHARE = 0.9  # a view showing this share of Pakistan's extent is national (regional locator)
LABEL_SHRINK = (1.0, 0.85, 0.72)  # unit label sizes tried in place before a callout; the last is the minimum
CALLOUT_RADII = (2.0, 3.0, 4.5, 6.0, 8.0, 10.0)  # leader lengths tried, in label heights
CALLOUT_DIRECTIONS = 16
DISPUTED_LABEL = "Disputed boundary (status not agreed; see note)"
KEYWORDS = "Pakistan; Tehreek-i-Taliban Pakistan; TTP; wilayahs; claimed units; administrative boundaries"
# Text stays text: TrueType in PDF, <text> in SVG; TeX is never used, so "$" is an ordinary character.
RC = {"svg.fonttype": "none", "pdf.fonttype": 42, "svg.hashsalt": "ttp-atlas", "font.family": "DejaVu Sans",
      "text.usetex": False, "path.simplify": True}


class ExportOptionError(paper.InvalidValue):
    """A bad export option; the message names the option, the value and what would be valid."""


@dataclass(frozen=True)
class Options:
    """One map, fully resolved: hashable, so that it can key a cache."""

    layers: tuple[str, ...]
    date: str  # the "as of" date of the claimed structure shown
    bounds: tuple[float, float, float, float]  # lon/lat area that must be in view
    place: str  # what the view shows, for the subtitle
    size_mm: tuple[float, float]
    dpi: int
    title: str
    subtitle: str
    month: str = ""  # "YYYY-MM": the events overlay's circles of that month are drawn


# --- options -----------------------------------------------------------------------------------

def parse_layers(text: str | None) -> tuple[str, ...]:
    """Comma-separated layer ids in drawing order; the context layer is implied."""
    if text is None or not str(text).strip():
        return DEFAULT_LAYERS
    ids = tuple(dict.fromkeys(part.strip() for part in str(text).split(",") if part.strip()))
    unknown = [lid for lid in ids if lid not in catalogue.LAYER_IDS]
    if unknown or not ids:
        raise ExportOptionError("layers", text, f"comma-separated layer ids from {', '.join(catalogue.LAYER_IDS)}")
    return tuple(lid for lid in catalogue.LAYER_IDS if lid in ids)


def parse_date(text: str | None, default: str) -> str:
    """One RFC 3339 instant as its UTC day, read as every endpoint reads ``datetime``."""
    if text is None or not str(text).strip():
        return default
    try:
        return features.parse_instant(str(text).strip())
    except features.QueryError as error:
        raise ExportOptionError("datetime", text, error.valid) from None


def parse_dpi(text) -> int:
    """dpi in ASCII digits with no sign or leading zero (``int()`` would also take "٥٠", "5_0" and " 50")."""
    if text is None or str(text) == "":
        return DEFAULT_DPI
    if not re.fullmatch(r"[1-9][0-9]{0,3}", str(text), re.ASCII) or not MIN_DPI <= int(text) <= MAX_DPI:
        raise ExportOptionError("dpi", text, f"an integer from {MIN_DPI} to {MAX_DPI} in ASCII digits")
    return int(text)


def parse_paper(size: str | None, orientation: str | None, dpi: int) -> tuple[float, float]:
    """Paper size in mm; refuses sizes whose PNG would exceed the pixel cap at ``dpi``."""
    size = DEFAULT_SIZE if size is None or not str(size).strip() else str(size)
    orientation = None if orientation is None or not str(orientation).strip() else str(orientation).strip()
    try:
        size_mm = paper.paper_size(size, orientation)
    except paper.InvalidValue as error:
        raise ExportOptionError(error.option, error.value, error.valid) from None
    width, height = paper.pixels(size_mm, dpi)
    if width * height > MAX_PIXELS:
        raise ExportOptionError("size", size, f"at {dpi} dpi {width}x{height} px is over the {MAX_PIXELS:,} px "
                                              "limit: choose a smaller size or dpi")
    return size_mm


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """A lon/lat bbox at most ``MAX_BBOX_DEGREES`` across (whether it meets the atlas is checked later)."""
    try:
        bounds = paper.parse_bbox(text)
    except paper.InvalidValue as error:
        raise ExportOptionError("bbox", text, error.valid) from None
    if max(bounds[2] - bounds[0], bounds[3] - bounds[1]) > MAX_BBOX_DEGREES:
        raise ExportOptionError("bbox", text, f"at most {MAX_BBOX_DEGREES:g} degrees across")
    return bounds


def check_overlap(text: str, bounds, coverage) -> tuple[float, float, float, float]:
    """``bounds`` if it overlaps the atlas coverage; a map of empty sea is a mistake."""
    minx, miny, maxx, maxy = bounds
    cminx, cminy, cmaxx, cmaxy = coverage
    if maxx < cminx or minx > cmaxx or maxy < cminy or miny > cmaxy:
        raise ExportOptionError("bbox", text, f"must overlap the atlas coverage, lon {cminx:.1f}..{cmaxx:.1f}, "
                                              f"lat {cminy:.1f}..{cmaxy:.1f}")
    return bounds


def parse_text(option: str, value) -> str | None:
    if value is None:
        return None
    text = str(value)
    if len(text) > MAX_TEXT or any(not c.isprintable() for c in text):
        raise ExportOptionError(option, value, f"at most {MAX_TEXT} printable characters on one line")
    return text


def latest_date(atlas) -> str:
    """The start of the newest claimed structure: the default "as of" date (stable, unlike today)."""
    return max(f["properties"]["valid_from"] for f in atlas.features("wilayahs"))


def place_names(atlas, layer_id: str) -> dict[str, list[str]]:
    """Key -> names of the places of a layer that a view can focus on (wilayahs by unit)."""
    names: dict[str, list[str]] = {}
    for feature in atlas.features(layer_id):
        props = feature["properties"]
        key = props["unit"] if layer_id == "wilayahs" else feature["id"]
        names.setdefault(key, [props["name"], key])
    return names


def focus_place(atlas, name: str, layer_ids=FOCUS_LAYERS) -> tuple[str, str]:
    """(layer id, key) of a place name: the first layer in ``layer_ids`` that knows it wins."""
    display = []
    for layer_id in layer_ids:
        names = place_names(atlas, layer_id)
        display += [ns[0] for ns in names.values()]
        try:
            return layer_id, gazetteer.resolve(name, gazetteer.index(names), [])
        except gazetteer.PlaceNameError as error:
            if error.reason == "ambiguous":
                raise ExportOptionError("focus", name, f"ambiguous among {', '.join(error.suggestions)}") from None
    try:
        gazetteer.resolve(name, {}, display)
    except gazetteer.PlaceNameError as error:
        hint = f"; closest: {', '.join(error.suggestions)}" if error.suggestions else ""
    raise ExportOptionError("focus", name, f"a wilayah, province, division or district name{hint}")


def place_bounds(atlas, layer_id: str, key: str, date: str) -> tuple[tuple[float, float, float, float], str]:
    """Lon/lat bounds and display name of a place; a wilayah's extent is the one valid at ``date``."""
    features = atlas.collections[layer_id]["features"]
    if layer_id == "wilayahs":
        mine = [i for i, f in enumerate(features) if f["properties"]["unit"] == key]
        valid = set(atlas.valid_indices(layer_id, date, date))
        current = [i for i in mine if i in valid]
        picked = current or mine
    else:
        picked = [i for i, f in enumerate(features) if f["id"] == key]
    bounds = tuple(float(v) for v in shapely.total_bounds(atlas.geometries[layer_id][picked]))
    return bounds, features[picked[0]]["properties"]["name"]


def default_title(layer_ids: tuple[str, ...]) -> str:
    claimed = [lid for lid in layer_ids if catalogue.layer(lid).claimed]
    return catalogue.layer(claimed[-1]).title if claimed else "Pakistan: " + catalogue.layer(layer_ids[-1]).title


@functools.cache
def default_subtitle(place: str, date: str, temporal: bool) -> str:
    """"Pakistan: <period label>, as of <date>" for dated layers, else the place."""
    if not temporal:
        return place
    period = wilayahs.period_at(date)  # e.g. "12 units: Punjab North and South added (late June 2023)"
    return f"{place}: {period['label']}, as of {date}" if period else f"{place}, as of {date}"


def check_plain(layers=None, datetime=None, bbox=None, focus=None, size=None, orientation=None, dpi=None,
                title=None, subtitle=None) -> dict:
    """The checks that need no build (so the CLI fails before loading one); None means the default."""
    if bbox is not None and focus is not None:
        raise ExportOptionError("focus", focus, "give either bbox or focus, not both")
    dpi_value = parse_dpi(dpi)
    return {"layers": parse_layers(layers), "date": parse_date(datetime, None), "dpi": dpi_value,
            "size_mm": parse_paper(size, orientation, dpi_value), "bbox": None if bbox is None else parse_bbox(bbox),
            "focus": None if focus is None else str(focus),
            "title": parse_text("title", title), "subtitle": parse_text("subtitle", subtitle)}


def parse_options(atlas, focus_layers=FOCUS_LAYERS, month: str = "", **strings) -> Options:
    """Check and resolve the user's options (strings, None for the defaults) into one ``Options``; ``month``
    (a month of the events, checked by the caller against them): an events map of that month."""
    plain = check_plain(**strings)
    date = plain["date"] or latest_date(atlas)
    if plain["bbox"] is not None:
        bounds, place = check_overlap(strings["bbox"], plain["bbox"], atlas.pakistan_bounds), "Selected area"
    elif plain["focus"] is not None:
        bounds, place = place_bounds(atlas, *focus_place(atlas, plain["focus"], focus_layers), date)
        bounds = paper.padded(bounds, 0.06)
    else:
        bounds, place = paper.padded(atlas.pakistan_bounds, 0.02), "Pakistan"
    layer_ids = plain["layers"]
    temporal = any(catalogue.layer(lid).temporal for lid in layer_ids)
    title = f"Events per TTP claimed unit, {eventsymbols.month_title(month)}" if month else default_title(layer_ids)
    subtitle = default_subtitle(place, date, temporal)
    return Options(layer_ids, date, tuple(bounds), place, plain["size_mm"], plain["dpi"],
                   title if plain["title"] is None else plain["title"],
                   subtitle if plain["subtitle"] is None else plain["subtitle"], month)


def output_format(path: Path) -> str:
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ExportOptionError("out", str(path), "a file name ending in " + ", ".join(f".{f}" for f in FORMATS))
    return fmt


# --- geometry to matplotlib --------------------------------------------------------------------

def local_projection(bounds: tuple[float, float, float, float], proj: str = "tmerc") -> Transformer:
    """Lon/lat -> metres centred on ``bounds``: transverse Mercator (true scale at the centre) for maps,
    Lambert azimuthal equal-area ("laea") for a region too wide for it."""
    lon0, lat0 = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
    crs = f"+proj={proj} +lat_0={lat0:.6f} +lon_0={lon0:.6f} +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
    return Transformer.from_crs("EPSG:4326", crs, always_xy=True)


def to_paths(geoms) -> list[MplPath]:
    """One compound matplotlib path per (multi)polygon, holes included, built without a Python loop per ring."""
    geoms = np.asarray(geoms, dtype=object)
    if not len(geoms):
        return []
    multi = np.array([g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g]) for g in geoms],
                     dtype=object)
    _, coords, (ring_offsets, polygon_offsets, geom_offsets) = shapely.to_ragged_array(multi)
    codes = np.full(len(coords), MplPath.LINETO, dtype=MplPath.code_type)
    codes[ring_offsets[:-1]] = MplPath.MOVETO
    codes[ring_offsets[1:] - 1] = MplPath.CLOSEPOLY
    vertex_bounds = ring_offsets[polygon_offsets[geom_offsets]]
    return [MplPath(coords[a:b], codes[a:b]) for a, b in itertools.pairwise(vertex_bounds)]


def web_zoom(metres_per_pixel: float, latitude: float) -> int:
    """The web-map zoom whose pixels are this fine at ``latitude``: picks the generalised geometry."""
    zoom = math.log2(WEB_MERCATOR_M_PER_PX * math.cos(math.radians(latitude)) / metres_per_pixel)
    return max(0, min(22, math.floor(zoom)))


@dataclass
class View:
    """The map frame: projection, extent in metres and the lon/lat box that covers it."""

    transformer: Transformer
    extent: tuple[float, float, float, float]  # projected minx, miny, maxx, maxy
    lonlat: tuple[float, float, float, float]
    zoom: int
    frame_mm: tuple[float, float]  # the map panel on paper

    @property
    def width_km(self) -> float:
        return (self.extent[2] - self.extent[0]) / 1000

    @property
    def metres_per_pt(self) -> float:
        """Ground metres per typographic point on paper: sizes from the style become map units."""
        return (self.extent[2] - self.extent[0]) / (self.frame_mm[0] / paper.MM_PER_INCH * 72)

    @property
    def frame(self) -> shapely.Geometry:
        return shapely.box(*self.extent)

    @property
    def anchor_tolerance(self) -> float:
        """Precision of label anchors in metres: far below what a reader can see."""
        return (self.extent[2] - self.extent[0]) / 2000


def make_view(bounds, frame_mm: tuple[float, float], dpi: int) -> View:
    transformer = local_projection(bounds)
    box = shapely.segmentize(shapely.box(*bounds), max(bounds[2] - bounds[0], bounds[3] - bounds[1]) / 32)
    extent = paper.fit_aspect(tuple(reproject([box], transformer)[0].bounds), frame_mm[0] / frame_mm[1])
    frame = shapely.segmentize(shapely.box(*extent), (extent[2] - extent[0]) / 32)
    lonlat = paper.padded(reproject([frame], transformer, inverse=True)[0].bounds, 0.03)
    metres_per_pixel = (extent[2] - extent[0]) / (frame_mm[0] / paper.MM_PER_INCH * dpi)
    return View(transformer, extent, lonlat, web_zoom(metres_per_pixel, (bounds[1] + bounds[3]) / 2), frame_mm)


@dataclass
class Shown:
    """What one layer contributes to the map: its features in view and their projected geometry."""

    layer_id: str
    features: list[dict]
    geoms: np.ndarray  # projected, aligned with features
    paths: list[MplPath] = field(default_factory=list)


def layer_in_view(atlas, layer_id: str, view: View, date: str) -> Shown:
    """Features of a layer valid at ``date`` and inside the view, clipped and projected."""
    features = atlas.collections[layer_id]["features"]
    geoms = atlas.generalised(layer_id, view.zoom)
    keep = atlas.valid_indices(layer_id, date, date)
    clipped = shapely.clip_by_rect(geoms[keep], *view.lonlat)
    clipped = np.array([polygonal(g) for g in clipped], dtype=object)
    present = ~shapely.is_empty(clipped)
    projected = reproject(clipped[present], view.transformer)
    return Shown(layer_id, [features[i] for i, p in zip(keep, present, strict=True) if p], projected,
                 to_paths(projected))


# --- layout --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """Panel rectangles in figure fractions (left, bottom, width, height) and the font scale."""

    map: tuple[float, float, float, float]
    inset: tuple[float, float, float, float]
    legend: tuple[float, float, float, float]
    header_top: float  # figure fraction of the title's top
    footer_top: float
    scale: float
    margin: float  # mm


def font_scale(size_mm: tuple[float, float]) -> float:
    """Type grows with the paper (A4 = 1), within limits that keep it legible and in proportion."""
    return min(2.0, max(0.75, math.sqrt(size_mm[0] * size_mm[1] / (297 * 210))))


def layout(size_mm: tuple[float, float], footer_count: int) -> Layout:
    """Header, map, side panel (right in landscape, below in portrait) and footer, in mm then fractions."""
    width, height = size_mm
    scale = font_scale(size_mm)
    margin = 8 * scale
    header = 18 * scale
    footer = footer_count * 6.5 * scale * 1.35 * 25.4 / 72 + 2 * scale
    gap = 4 * scale
    top, bottom = height - margin - header, margin + footer
    if width >= height:
        panel = max(55 * scale, 0.26 * width)
        map_mm = (margin, bottom, width - 2 * margin - panel - gap, top - bottom)
        inset_side = min(panel, (top - bottom) * 0.45)
        inset_mm = (width - margin - panel, top - inset_side, panel, inset_side)
        legend_mm = (width - margin - panel, bottom, panel, top - bottom - inset_side - gap)
    else:
        panel = max(55 * scale, 0.27 * height)
        map_mm = (margin, bottom + panel + gap, width - 2 * margin, top - bottom - panel - gap)
        inset_mm = (margin, bottom, min(panel, (width - 2 * margin) * 0.45), panel)
        legend_mm = (margin + inset_mm[2] + gap, bottom, width - 2 * margin - inset_mm[2] - gap, panel)

    def frac(rect):
        return (rect[0] / width, rect[1] / height, rect[2] / width, rect[3] / height)
    return Layout(frac(map_mm), frac(inset_mm), frac(legend_mm), 1 - margin / height, bottom / height, scale, margin)


def wrap(text: str, width_mm: float, font_pt: float) -> list[str]:
    """Lines of ``text`` that fit ``width_mm`` at ``font_pt`` (DejaVu Sans averages ~0.55 em a character)."""
    chars = max(20, int(width_mm / 25.4 * 72 / (0.55 * font_pt)))
    return textwrap.wrap(text, chars)


# --- legend and credits (plain data) --------------------------------------------------------------

def legend_entries(shown: list[Shown], disputed_shown: bool = False, place_kinds=()) -> list[dict]:
    """Legend rows for what is drawn, in sections: zones, confidence, boundaries, place names (the kinds
    of place named). Only what is shown."""
    claimed = [f["properties"] for s in shown if catalogue.layer(s.layer_id).claimed for f in s.features]
    rows: list[dict] = []
    zones = [z for z in style.ZONE_COLOURS if any(p.get("zone") == z for p in claimed)]
    if zones:
        rows.append({"kind": "header", "label": "Claimed units by zone"})
        rows += [{"kind": "swatch", "label": style.ZONE_LABELS[z], "style": style.wilayah_style(z, "high"),
                  "gid": f"legend-zone-{z or 'none'}"} for z in zones]
    levels = [c for c in style.CONFIDENCE_STYLES if any(p.get("confidence") == c for p in claimed)]
    if levels:
        rows.append({"kind": "header", "label": "Confidence of the extent"})
        rows += [{"kind": "swatch", "label": style.CONFIDENCE_STYLES[c]["label"],
                  "style": {**style.wilayah_style(None, c), "stroke": INK, "fill": INK},
                  "gid": f"legend-confidence-{c}"} for c in levels]
    extensions = [p for p in claimed if p.get("part") == "extension"]
    if extensions:
        hatched = {**style.wilayah_style(None, "low", "extension"), "stroke": INK, "hatch_colour": INK}
        rows += [{"kind": "swatch", "label": text, "gid": f"legend-extension{'-status' * i}", "style": hatched}
                 for i, text in enumerate([style.PART_LABELS["extension"], *style.status_notes(extensions)])]
    civil = [s.layer_id for s in shown if not catalogue.layer(s.layer_id).claimed and s.features]
    if civil:
        rows.append({"kind": "header", "label": "Boundaries"})
        if disputed_shown:
            rows.append({"kind": "line", "label": DISPUTED_LABEL, "style": style.DISPUTED_STYLE,
                         "gid": "legend-disputed"})
        rows += [{"kind": "swatch", "label": catalogue.layer(lid).title, "style": style.feature_style(lid, {}),
                  "gid": f"legend-{lid}"} for lid in reversed(civil)]
    kinds = [kind for kind in style.PLACE_STYLES if kind in place_kinds]
    if kinds:
        rows.append({"kind": "header", "label": "Place names"})
        rows += [{"kind": "marker", "label": style.PLACE_STYLES[k].title, "marker": k, "gid": f"legend-place-{k}"}
                 for k in kinds]
    return rows


def event_legend_rows(overlay) -> list[dict]:
    """The legend's event circles: the largest count of any month and round fractions of it."""
    largest = eventsymbols.largest_count(overlay)
    sizes = [(eventsymbols.counted(n, "event", "events"), eventsymbols.radius_px(n, largest))
             for n in eventsymbols.legend_counts(largest)]
    return [{"kind": "header", "label": "Events per claimed unit in the month"},
            {"kind": "circles", "sizes": sizes, "gid": "legend-events"}]


def publications(shown: list[Shown]) -> list[str]:
    """The publications behind the claimed units shown, each once: "Publisher (date)"."""
    seen = {}
    for s in shown:
        for feature in s.features:
            for source in feature["properties"].get("sources") or []:
                label = source["publisher"] + (f" ({source['date']})" if source.get("date") else "")
                seen.setdefault(label, None)
    return list(seen)


def credit_lines(atlas, shown: list[Shown], claimed: bool, disputed_shown: bool = False,
                 places_shown: bool = False, overlay=None, month: str = "") -> list[str]:
    """Caveat, boundary note, wilayah sources and data licences (GeoNames' when places are named; when the
    events of ``month`` are drawn, their totals, the counts caveat and the event data's credits): the footer,
    before wrapping."""
    lines = ([catalogue.CAVEAT] if claimed else []) + ([disputed.NOTE] if disputed_shown else [])
    if overlay is not None:
        totals = f"{eventsymbols.month_title(month)}: {eventsymbols.totals_text(overlay, month)}."
        lines.append(f"{totals} {eventsymbols.CAVEAT} {' '.join(overlay.credits)}".strip())
    sources = publications(shown)
    if sources:
        lines.append("Claimed units as reported by: " + "; ".join(sources) + ".")
    credits = atlas.attribution([s.layer_id for s in shown]) + ([places.GEONAMES_CREDIT] if places_shown else [])
    lines.append("Data: " + "; ".join(credits) + f". Transverse Mercator projection. ttp-atlas build {atlas.build_id}.")
    return lines


# --- drawing ---------------------------------------------------------------------------------

def patch_kwargs(look: dict) -> dict:
    """matplotlib patch properties for a style dict from ``layers.style`` (widths px -> pt). Hatches are
    drawn as lines by ``draw_hatch``: pattern hatches vanish in Poppler-based PDF viewers."""
    width = look["width"] * PX_TO_PT
    kwargs = {"facecolor": matplotlib.colors.to_rgba(look["fill"], look["fill_opacity"]),
              "edgecolor": look["stroke"], "linewidth": width, "joinstyle": "round"}
    if look.get("dash"):
        kwargs["linestyle"] = (0, tuple(d * PX_TO_PT / width for d in look["dash"]))
    return kwargs


def hatch_lines(geom: shapely.Geometry, spacing: float, angle: float) -> shapely.Geometry:
    """Parallel lines ``spacing`` apart at ``angle`` degrees (anticlockwise from east), clipped to ``geom``.

    The lines lie on a grid through the origin, so neighbouring areas hatched alike line up.
    """
    theta = math.radians(angle)
    along, across = np.array([math.cos(theta), math.sin(theta)]), np.array([-math.sin(theta), math.cos(theta)])
    minx, miny, maxx, maxy = geom.bounds
    corners = np.array([[minx, miny], [minx, maxy], [maxx, miny], [maxx, maxy]])
    offsets = np.arange(math.floor((corners @ across).min() / spacing),
                        math.ceil((corners @ across).max() / spacing) + 1)[:, None] * spacing * across
    reach = corners @ along
    ends = np.stack([offsets + reach.min() * along, offsets + reach.max() * along], axis=1)
    return shapely.intersection(shapely.multilinestrings(shapely.linestrings(ends)), geom)


def draw_hatch(ax, geom: shapely.Geometry, look: dict, units_per_pt: float, gid: str) -> None:
    """The style's hatch inside ``geom`` as real line segments (``units_per_pt``: axes units per point)."""
    lines = hatch_lines(geom, look["hatch_spacing"] * PX_TO_PT * units_per_pt, look["hatch_angle"])
    segments = [shapely.get_coordinates(part) for part in shapely.get_parts(lines)
                if part.geom_type == "LineString"]
    ax.add_collection(LineCollection(segments, colors=[matplotlib.colors.to_rgba(look["hatch_colour"],
                                                                                 look["hatch_opacity"])],
                                     linewidths=look["hatch_width"] * PX_TO_PT, capstyle="butt", gid=gid))


def disputed_in_view(atlas, view: View) -> np.ndarray:
    """The disputed lines (Line of Control, Working Boundary, Siachen) in view, projected."""
    lines = np.array([geom for _, geom in disputed.disputed_lines(atlas)], dtype=object)
    clipped = shapely.clip_by_rect(lines, *view.lonlat)
    return reproject(clipped[~shapely.is_empty(clipped)], view.transformer)


def draw_disputed(ax, lines: np.ndarray) -> None:
    """Disputed lines dashed over a land-coloured casing that hides the solid border beneath."""
    if not len(lines):
        return
    look = style.DISPUTED_STYLE
    segments = [shapely.get_coordinates(part) for part in shapely.get_parts(lines)
                if part.geom_type == "LineString"]
    ax.add_collection(LineCollection(segments, colors=[look["casing"]], linewidths=look["casing_width"] * PX_TO_PT,
                                     capstyle="butt", gid="disputed-casing"))
    kwargs = patch_kwargs(look)
    ax.add_collection(LineCollection(segments, colors=[look["stroke"]], linewidths=kwargs["linewidth"],
                                     linestyles=[kwargs["linestyle"]], capstyle="butt", gid="disputed"))


def draw_layer(ax, shown: Shown, metres_per_pt: float) -> None:
    """Claimed units one patch each (SVG id ``wilayah-<id>``), hatched ones with their lines (``hatch-<id>``);
    a civil layer as one collection."""
    if catalogue.layer(shown.layer_id).claimed:
        singular = "wilayah" if shown.layer_id == "wilayahs" else "zone"
        for feature, path, geom in zip(shown.features, shown.paths, shown.geoms, strict=True):
            look = style.feature_style(shown.layer_id, feature["properties"])
            patch = PathPatch(path, **patch_kwargs(look))
            patch.set_gid(f"{singular}-{feature['id']}")
            ax.add_artist(patch)  # not add_patch: the view sets the limits, so skip its costly autoscaling
            if look["hatch"]:
                draw_hatch(ax, geom, look, metres_per_pt, f"hatch-{feature['id']}")
        return
    ax.add_collection(collection(shown.paths, style.feature_style(shown.layer_id, {}), f"layer-{shown.layer_id}"))


def event_circle(xy, radius: float, gid: str) -> Circle:
    """An event circle from ``layers.eventsymbols``, ``radius`` in axes units."""
    return Circle(xy, radius, facecolor=matplotlib.colors.to_rgba(eventsymbols.FILL, eventsymbols.FILL_OPACITY),
                  edgecolor=eventsymbols.STROKE, linewidth=eventsymbols.STROKE_WIDTH * PX_TO_PT, zorder=4, gid=gid)


def draw_events(ax, atlas, overlay, month: str, view: View, scale: float) -> list[eventsymbols.EventSymbol]:
    """The month's circles at their units' label anchors, over the units and under the labels (largest
    first); returns those in view."""
    drawn = []
    for symbol in eventsymbols.symbols(atlas, overlay, month):
        x, y = view.transformer.transform(symbol.lon, symbol.lat)
        if shapely.contains_xy(view.frame, x, y):
            radius = symbol.radius_px * PX_TO_PT * scale * view.metres_per_pt
            ax.add_artist(event_circle((x, y), radius, f"event-{symbol.unit_id}"))
            drawn.append(symbol)
    return drawn


def collection(paths: list[MplPath], look: dict, gid: str, width_factor: float = 1.0) -> PatchCollection:
    """Many paths in one style as one artist: drawn in one pass, one group in SVG."""
    kwargs = patch_kwargs(look)
    return PatchCollection([PathPatch(p) for p in paths], facecolors=[kwargs["facecolor"]],
                           edgecolors=[kwargs["edgecolor"]], linewidths=[kwargs["linewidth"] * width_factor],
                           linestyles=[kwargs.get("linestyle", "solid")], gid=gid)


# --- labels ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Placed:
    """A unit label as drawn: the model's label, the point it names (lon/lat, inside the labelled part),
    its size, and whether a leader line joins it to that point."""

    label: labels.Label
    anchor: tuple[float, float]
    size: float  # pt
    callout: bool


def anchored_labels(atlas, shown: list[Shown], view: View, date: str) -> list[tuple]:
    """(label, anchor in map metres, part in view) for the claimed features shown, in placing order.

    The anchor is the label model's (the pole of inaccessibility of the feature's own part); when the
    view cuts it off, the pole of the part in view. Cores come first, small before large: a large unit
    has room to move its label, a small one has not.
    """
    claimed = [s for s in shown if catalogue.layer(s.layer_id).claimed and s.features]
    if not claimed:
        return []
    layer = next((s for s in claimed if s.layer_id == "wilayahs"), claimed[0])
    in_view = {f["id"]: g for f, g in zip(layer.features, shapely.intersection(layer.geoms, view.frame), strict=True)}
    found = []
    for label in labels.unit_labels(atlas, layer.layer_id, date):
        part = in_view.get(label.feature_id)
        if part is None or part.is_empty:
            continue
        x, y = view.transformer.transform(label.lon, label.lat)
        if not shapely.contains_xy(part, x, y):
            x, y = labels.anchor(polygonal(part), view.anchor_tolerance)
        found.append((label, (x, y), part))
    return sorted(found, key=lambda row: (row[0].priority, row[2].area))


def label_look(layer_id: str, part: str, scale: float) -> dict:
    """Text properties of a label from the layer's font in ``layers.style``; extensions in italics, smaller."""
    font = style.LABEL_STYLES[layer_id]
    size = font.size * PX_TO_PT * scale * (0.85 if part == "extension" else 1.0)
    return {"fontsize": size, "fontweight": "bold" if font.bold else "normal",
            "fontstyle": "italic" if font.italic or part == "extension" else "normal", "color": font.colour}


TRAILING_PHRASE = re.compile(r" (\([^()]*\))$")  # "Zhob (possible extension)", "... (status unknown since ...)"


def display_text(label: labels.Label) -> str:
    """A label ending in a parenthesised phrase on two lines, "<name>" over "(<phrase>)": a shorter box."""
    return TRAILING_PHRASE.sub(r"\n\1", label.text)


def text_size(ax, text: str, look: dict, renderer) -> tuple[float, float]:
    """Width and height in display pixels of ``text`` set in ``look``."""
    artist = ax.text(0, 0, text, parse_math=False, **look)
    box = artist.get_window_extent(renderer)
    artist.remove()
    return box.width, box.height


# Moves of a label around its anchor (box widths, box heights), each kept only while the box centre stays
# inside the unit.
LABEL_MOVES = ((0, 0), (0, 0.8), (0, -0.8), (0.3, 0), (-0.3, 0), (0.3, 0.8), (-0.3, 0.8), (0.3, -0.8),
               (-0.3, -0.8), (0, 1.6), (0, -1.6))


def in_place_spots(px: float, py: float, width: float, height: float, inside):
    """Boxes for a label at display point (px, py), best first: centred, moved (its centre kept inside the
    unit), then the same smaller down to the minimum size. Yields (box, shrink)."""
    for shrink in LABEL_SHRINK:
        w, h = width * shrink, height * shrink
        for dx, dy in LABEL_MOVES:
            cx, cy = px + dx * w, py + dy * h
            if (dx, dy) == (0, 0) or inside(cx, cy):
                yield Bbox.from_bounds(cx - w / 2, cy - h / 2, w, h), shrink


def callout_spots(px: float, py: float, width: float, height: float):
    """Boxes at the end of a leader line from (px, py), every direction, nearest first. Yields (box, shrink)."""
    shrink = LABEL_SHRINK[1]
    w, h = width * shrink, height * shrink
    for radius in CALLOUT_RADII:
        for k in range(CALLOUT_DIRECTIONS):
            angle = 2 * math.pi * k / CALLOUT_DIRECTIONS
            dx, dy = math.cos(angle), math.sin(angle)
            cx, cy = px + dx * (radius * h + w / 2 * abs(dx)), py + dy * (radius * h + h / 2 * abs(dy))
            yield Bbox.from_bounds(cx - w / 2, cy - h / 2, w, h), shrink


def uncovered_anchor(part: shapely.Geometry, taken: list[Bbox], to_data, tolerance: float):
    """The pole of inaccessibility of what the boxes already taken leave of ``part`` (map units), or None."""
    covered = shapely.union_all([shapely.box(*to_data.transform([(b.x0, b.y0), (b.x1, b.y1)]).ravel())
                                 for b in taken])
    free = polygonal(shapely.difference(part, covered))
    return None if free.is_empty else labels.anchor(free, tolerance)


def padded(box: Bbox) -> Bbox:
    """A label box with the clearance kept around it."""
    return box.expanded(1.06, 1.15)


def candidate_spots(ax, anchor, part: shapely.Geometry, size, taken: list[Bbox], tolerance: float):
    """Where one label may go, best first, as (box, shrink, anchor, callout): around its anchor, around
    the pole of the part of its unit that no label covers yet, then called out from that point."""
    to_data = ax.transData.inverted()

    def inside(cx, cy):
        return bool(shapely.contains_xy(part, *to_data.transform((cx, cy))))
    px, py = ax.transData.transform(anchor)
    yield from ((box, shrink, anchor, False) for box, shrink in in_place_spots(px, py, *size, inside))
    free = uncovered_anchor(part, taken, to_data, tolerance) or anchor
    fx, fy = ax.transData.transform(free)
    yield from ((box, shrink, free, False) for box, shrink in in_place_spots(fx, fy, *size, inside))
    yield from ((box, shrink, free, True) for box, shrink in callout_spots(fx, fy, *size))


def is_free(box: Bbox, frame: Bbox, taken: list[Bbox], leader_from=None) -> bool:
    """Whether ``box`` (padded) lies in the frame clear of every box taken, and so does the leader line
    from ``leader_from`` (a display point) to it."""
    padded_box = padded(box)
    if not (frame.contains(padded_box.x0, padded_box.y0) and frame.contains(padded_box.x1, padded_box.y1)) \
            or any(padded_box.overlaps(other) for other in taken):
        return False
    if leader_from is None:
        return True
    leader = shapely.LineString([leader_from, ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)]).difference(
        shapely.box(*padded_box.extents))
    # a box over the anchor itself cannot be avoided: the leader may leave through it
    return not any(leader.intersects(shapely.box(*other.extents)) for other in taken
                   if not other.contains(*leader_from))


def draw_text(ax, xy, text: str, look: dict, gid: str, scale: float, anchor=None) -> None:
    """``text`` centred on ``xy`` (data units) over a halo; with ``anchor``, a leader line and dot to it.

    The halo is a separate, outlined copy underneath: path effects turn text into outlines in PDF and SVG,
    so the text itself carries none and stays searchable text.
    """
    halo = style.LABEL_STYLES["wilayahs"]
    common = {"ha": "center", "va": "center", "parse_math": False, "clip_on": True, **look}
    ax.text(*xy, text, zorder=5, gid=f"halo-{gid}", **{**common, "color": halo.halo},
            path_effects=[Stroke(linewidth=2 * halo.halo_width * PX_TO_PT * scale, foreground=halo.halo)])
    if anchor is None:
        ax.text(*xy, text, zorder=6, gid=f"label-{gid}", **common)
        return
    ax.annotate(text, xy=anchor, xytext=xy, zorder=6, gid=f"label-{gid}", annotation_clip=False,
                arrowprops={"arrowstyle": "-", "color": look["color"], "linewidth": 0.7 * scale, "shrinkA": 0,
                            "shrinkB": 0}, **common)
    ax.plot(*anchor, marker="o", markersize=2.2 * scale, color=look["color"], zorder=6, gid=f"anchor-{gid}")


def place_unit_labels(ax, anchored: list[tuple], view: View, scale: float,
                      taken: list[Bbox]) -> tuple[list[Placed], list[str]]:
    """Label every unit: at its anchor, moved, shrunk, moved to a part of the unit no other label covers,
    or called out with a leader line; a unit that finds no room at all is returned as a warning."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    to_data = ax.transData.inverted()
    placed, warnings = [], []
    for label, anchor, part in anchored:
        text, look = display_text(label), label_look("wilayahs", label.part, scale)
        spots = candidate_spots(ax, anchor, part, text_size(ax, text, look, renderer), taken, view.anchor_tolerance)
        spot = next((s for s in spots if is_free(s[0], frame, taken, ax.transData.transform(s[2]) if s[3] else None)),
                    None)
        if spot is None:
            warnings.append(f"{label.text} ({label.feature_id}) is not labelled: no room at this paper size "
                            "(a larger size or a focused view has room)")
            continue
        box, shrink, (x, y), callout = spot
        taken.append(padded(box))
        look = {**look, "fontsize": look["fontsize"] * shrink}
        draw_text(ax, to_data.transform(((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)), text, look, "wilayah",
                  scale, anchor=(x, y) if callout else None)
        lon, lat = view.transformer.transform(x, y, direction="INVERSE")
        placed.append(Placed(label, (float(lon), float(lat)), look["fontsize"], callout))
    return placed, warnings


def place_district_labels(ax, shown: list[Shown], view: View, scale: float, taken: list[Bbox]) -> None:
    """District names, largest first, only centred and only where they fit (context, not a claim)."""
    if view.width_km > DISTRICT_LABELS_BELOW_KM:
        return
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    look = {"fontsize": 5.5 * scale, "fontstyle": "italic", "color": style.CIVIL_STYLES["districts"]["stroke"]}
    for s in shown:
        if s.layer_id != "districts":
            continue
        for i in np.argsort(-shapely.area(s.geoms)):
            x, y = labels.anchor(s.geoms[i], view.anchor_tolerance)
            if not view.frame.contains(shapely.Point(x, y)):
                continue
            text = s.features[i]["properties"]["name"]
            width, height = text_size(ax, text, look, renderer)
            px, py = ax.transData.transform((x, y))
            box = Bbox.from_bounds(px - width / 2, py - height / 2, width, height)
            if is_free(box, frame, taken):
                taken.append(padded(box))
                draw_text(ax, (x, y), text, look, "district", scale)


def scale_zoom(view: View) -> int:
    """The web zoom whose CSS pixel covers as much ground as the paper's: places show as on the web map."""
    return web_zoom(view.metres_per_pt * PX_TO_PT, (view.lonlat[1] + view.lonlat[3]) / 2)


def named_places(view: View) -> list[places.Place]:
    """The places a map may name at its scale (``layers.places``), most important first."""
    return places.places_in(view.lonlat, scale_zoom(view))


# Where a place's name goes around its marker, best first: (x, y) in marker widths and text sizes,
# as on the web map (``labels.PLACE_SIDES``): right, above right, below right, left, above, below.
PLACE_SPOTS = ((1, 0), (1, 1), (1, -1), (-1, 0), (0, 1), (0, -1))


def draw_marker(ax, xy, kind: str, scale: float, gid: str) -> None:
    """A place's marker from ``layers.style``: a star, a dot in a ring, or a dot."""
    look = style.PLACE_STYLES[kind]
    size = look.size * PX_TO_PT * scale
    marker = {"star": "*", "ring": "o", "dot": "o"}[look.marker]
    ax.plot(*xy, marker=marker, markersize=size * (1.35 if marker == "*" else 1.0), markerfacecolor=look.fill,
            markeredgecolor=look.stroke, markeredgewidth=look.stroke_width * PX_TO_PT * scale, zorder=6, gid=gid)
    if look.marker == "ring":
        ax.plot(*xy, marker="o", markersize=size * 0.4, color=look.stroke, markeredgewidth=0, zorder=6, gid=gid)


def marker_box(ax, view: View, place: places.Place, scale: float) -> Bbox:
    """The display box of a place's marker."""
    px, py = ax.transData.transform(view.transformer.transform(place.lon, place.lat))
    half = style.PLACE_STYLES[place.kind].size / 2 * PX_TO_PT * scale * ax.figure.dpi / 72
    return Bbox.from_bounds(px - half, py - half, 2 * half, 2 * half)


def kept_clear(ax, view: View, scale: float) -> list[Bbox]:
    """The marker of the national capital, which unit labels keep clear of on a map that shows it: a map
    of the country always shows where its capital is (its name may then need a leader line)."""
    found = named_places(view)
    return [padded(marker_box(ax, view, p, scale)) for p in found[:1] if p.kind == "national-capital"
            and view.frame.contains(shapely.Point(view.transformer.transform(p.lon, p.lat)))]


def name_places(ax, view: View, scale: float, taken: list[Bbox]) -> list[places.Place]:
    """Name the places of the map's scale, after the units: each with its marker and its name on the
    first side of it clear of every label placed so far; a capital with no such side is called out
    with a leader line, as a unit is; a city with none is left out (places are context). Returns the
    places named."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    to_data = ax.transData.inverted()
    points = ax.figure.dpi / 72
    named = []
    for place in named_places(view):
        look = style.PLACE_STYLES[place.kind]
        text_look = {"fontsize": look.font.size * PX_TO_PT * scale, "color": look.font.colour}
        marker = marker_box(ax, view, place, scale)
        (px, py), half = marker.get_points().mean(axis=0), marker.width / 2
        gap = style.PLACE_GAP * PX_TO_PT * scale * points
        width, height = text_size(ax, place.name, text_look, renderer)
        if not is_free(marker, frame, taken):
            continue
        beside = ((Bbox.from_bounds(px + dx * (half + gap + width / 2) - width / 2,
                                    py + dy * (half + gap + height / 2) - height / 2, width, height), False)
                  for dx, dy in PLACE_SPOTS)
        called = ((box, True) for box, _ in callout_spots(px, py, width, height)) if place.kind != "city" else ()
        spot = next(((box, leader) for box, leader in itertools.chain(beside, called)
                     if is_free(box if leader else Bbox.union([marker, box]), frame, taken,
                                (px, py) if leader else None)), None)
        if spot is None:
            continue
        box, leader = spot
        taken += [padded(marker), padded(box if leader else Bbox.union([marker, box]))]
        at = to_data.transform((px, py))
        draw_text(ax, to_data.transform(((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)), place.name,
                  {**text_look, "fontsize": text_look["fontsize"] * (LABEL_SHRINK[1] if leader else 1.0)}, "place",
                  scale, anchor=at if leader else None)
        draw_marker(ax, at, place.kind, scale, f"place-{place.geonameid}")
        named.append(place)
    return named


def furniture_boxes(ax, scale: float) -> list[Bbox]:
    """Display boxes of the scale bar (lower left) and north arrow (upper right), which labels must avoid."""
    frame = ax.get_window_extent()
    points = ax.figure.dpi / 72
    return [Bbox.from_bounds(frame.x0, frame.y0, frame.width * (SCALEBAR_FRACTION + 0.04), 30 * scale * points),
            Bbox.from_bounds(frame.x1 - 28 * scale * points, frame.y1 - 48 * scale * points,
                             28 * scale * points, 48 * scale * points)]


# --- furniture ---------------------------------------------------------------------------------------

def scale_text(value: float, unit: str) -> str:
    """The scale bar's label in km from 1,000 km up (matplotlib-scalebar would say "1 Mm")."""
    return f"{value * 1000:g} km" if unit == "Mm" else f"{value:g} {unit}"


def draw_north_arrow(ax, scale: float) -> None:
    ax.annotate("N", xy=(0.955, 0.965), xytext=(0.955, 0.875), xycoords="axes fraction", ha="center", va="center",
                fontsize=10 * scale, fontweight="bold", color=INK, gid="north-arrow", parse_math=False,
                arrowprops={"facecolor": INK, "edgecolor": INK, "width": 2.5 * scale, "headwidth": 9 * scale,
                            "headlength": 9 * scale, "shrink": 0.0})


def is_national(atlas, view: View) -> bool:
    """Whether the view shows (nearly) the whole country: such a map gets the regional locator."""
    home = shapely.box(*atlas.pakistan_bounds)
    return shapely.intersection(home, shapely.box(*view.lonlat)).area >= NATIONAL_SHARE * home.area


def draw_inset(fig: Figure, rect, atlas, view: View, national: bool) -> None:
    """Locator map: a national map is placed in South and Central Asia, Pakistan highlighted among its
    neighbours; a focused map shows Pakistan with the view's extent as a box."""
    ax = fig.add_axes(rect, gid="inset")
    aspect = rect[2] * fig.get_figwidth() / (rect[3] * fig.get_figheight())
    home = atlas.pakistan_bounds
    area = REGION if national else paper.padded(home, 0.5)
    transformer = local_projection(area, "laea") if national else local_projection(home)
    countries = shapely.clip_by_rect(atlas.generalised(CONTEXT_LAYER, 3 if national else 4), *paper.padded(area, 0.4))
    projected = reproject(countries, transformer)
    present = ~shapely.is_empty(projected)
    ax.add_collection(collection(to_paths(projected[present]), style.feature_style(CONTEXT_LAYER, {}),
                                 "inset-countries", width_factor=0.6))
    ids = [f["id"] for f in atlas.collections[CONTEXT_LAYER]["features"]]
    ax.add_patch(PathPatch(to_paths([projected[ids.index(PAKISTAN_ID)]])[0], edgecolor=INK, linewidth=0.8,
                           facecolor=matplotlib.colors.to_rgba(INK, 0.35 if national else 0.0), gid="inset-pakistan"))
    frame = shapely.segmentize(view.frame, (view.extent[2] - view.extent[0]) / 16)
    box = reproject(reproject([frame], view.transformer, inverse=True), transformer)[0]
    ax.add_patch(PathPatch(to_paths([box])[0], facecolor=matplotlib.colors.to_rgba(INK, 0.0 if national else 0.12),
                           edgecolor=INK, linewidth=1.0 if national else 1.4, gid="inset-extent"))
    if national:
        region = shapely.segmentize(shapely.box(*REGION), 1.0)
        extent = paper.fit_aspect(tuple(reproject([region], transformer)[0].bounds), aspect)
    else:
        home_box = reproject([shapely.segmentize(shapely.box(*home), 1.0)], transformer)[0]
        extent = union_extent(paper.fit_aspect(paper.padded(home_box.bounds, 0.12), aspect), box.bounds, aspect)
    ax.set_xlim(extent[0], extent[2])
    ax.set_ylim(extent[1], extent[3])
    ax.set_facecolor(style.BACKGROUND)
    ax.set_xticks([])
    ax.set_yticks([])


def union_extent(extent, other, aspect: float):
    """``extent`` grown to include ``other`` (kept at ``aspect``), so the extent box is always visible."""
    merged = (min(extent[0], other[0]), min(extent[1], other[1]), max(extent[2], other[2]), max(extent[3], other[3]))
    return paper.fit_aspect(merged, aspect)


def draw_legend(fig: Figure, rect, rows: list[dict], date: str | None, scale: float) -> None:
    """Rows drawn by hand (swatch + text) so hatches and dashes look exactly as on the map."""
    ax = fig.add_axes(rect, gid="legend")
    ax.set_axis_off()
    height_pt = rect[3] * fig.get_figheight() * 72
    width_pt = rect[2] * fig.get_figwidth() * 72
    font = 7.5 * scale
    # nested event circles, bottom-aligned, as large as on the map: a block of their height, not a line
    block = max((2 * r * PX_TO_PT * scale + 4 for row in rows if row["kind"] == "circles" for _, r in row["sizes"]),
                default=0.0)
    lines = len(rows) + (2 if date else 0) - (1 if block else 0)
    step = min(font * 1.9, (height_pt - block) / max(lines, 1))
    font = min(font, step / 1.6)
    y = height_pt
    ax.set_xlim(0, width_pt)
    ax.set_ylim(0, height_pt)
    if date:
        y -= step
        ax.text(0, y, f"As of {date}", fontsize=font * 1.15, fontweight="bold", va="center", color=INK, gid="as-of",
                parse_math=False)
        y -= step * 0.4
    for row in rows:
        y -= step
        if row["kind"] == "header":
            ax.text(0, y, row["label"], fontsize=font, fontweight="bold", va="center", color=INK, parse_math=False)
            continue
        sw, sh = font * 2.6, font * 1.3
        if row["kind"] == "marker":
            draw_marker(ax, (2 + sw / 2, y), row["marker"], scale, row["gid"])
            ax.text(sw + 8, y, row["label"], fontsize=font, va="center", color=INK, parse_math=False)
            continue
        if row["kind"] == "circles":
            bottom, widest = y + step / 2 - block, block / 2 - 2
            for k, (label, radius) in enumerate(row["sizes"]):
                radius_pt = radius * PX_TO_PT * scale
                top = bottom + 2 * radius_pt
                ax.add_patch(event_circle((2 + widest, bottom + radius_pt), radius_pt, f"{row['gid']}-{k}"))
                ax.plot([2 + widest, 2 * widest + 8], [top, top], color=INK, linewidth=0.5, gid=f"{row['gid']}-tick")
                ax.text(2 * widest + 10, top, label, fontsize=font, va="center", color=INK, parse_math=False)
            y = bottom + step / 2 - 2
            continue
        if row["kind"] == "line":
            draw_disputed(ax, np.array([shapely.LineString([(2, y), (2 + sw, y)])], dtype=object))
            ax.text(sw + 8, y, row["label"], fontsize=font, va="center", color=INK, parse_math=False)
            continue
        ax.add_patch(Rectangle((2, y - sh / 2), sw, sh, gid=row["gid"], **patch_kwargs(row["style"])))
        if row["style"]["hatch"]:
            draw_hatch(ax, shapely.box(2, y - sh / 2, 2 + sw, y + sh / 2), row["style"], 1.0, f"{row['gid']}-hatch")
        ax.text(sw + 8, y, row["label"], fontsize=font, va="center", color=INK, parse_math=False)


def fit_width(artist, width: float) -> None:
    """Shrink a one-line text to ``width`` display pixels, so a long title stays on the page."""
    extent = artist.get_window_extent(artist.figure.canvas.get_renderer()).width
    if extent > width:
        artist.set_fontsize(artist.get_fontsize() * width / extent)


def framing(options: Options, footer_count: int) -> tuple[Layout, View]:
    """The panels for this paper and footer, and the map view that fills the map panel."""
    box = layout(options.size_mm, footer_count)
    frame_mm = (box.map[2] * options.size_mm[0], box.map[3] * options.size_mm[1])
    return box, make_view(options.bounds, frame_mm, options.dpi)


def footer_lines(atlas, shown: list[Shown], disputed_shown: bool, width_mm: float, scale: float,
                 places_shown: bool = False, overlay=None, month: str = "") -> list[str]:
    claimed = any(catalogue.layer(s.layer_id).claimed and s.features for s in shown)
    return [line for text in credit_lines(atlas, shown, claimed, disputed_shown, places_shown, overlay, month)
            for line in wrap(text, width_mm, 6.5 * scale)]


def render(atlas, options: Options, overlay=None) -> Rendered:
    """Draw the whole layout for ``options`` on a new Figure (pixel-exact for PNG at ``options.dpi``); an
    events map (``options.month``) draws the ``overlay``'s circles of that month, with legend and credits.

    A unit valid at the date and in view that finds no room for its label is logged as a warning and
    listed in ``Rendered.warnings``.
    """
    overlay = overlay if options.month else None
    size_px = paper.pixels(options.size_mm, options.dpi)
    fig = Figure(figsize=paper.figure_inches(size_px, options.dpi), dpi=options.dpi)
    FigureCanvasAgg(fig)  # text extents for label placement need a renderer
    scale = font_scale(options.size_mm)
    layer_ids = tuple(lid for lid in style.DRAW_ORDER if lid == CONTEXT_LAYER or lid in options.layers)
    guess = 5  # footer lines; the real count depends on the sources of what the view shows
    box, view = framing(options, guess)
    shown = [layer_in_view(atlas, lid, view, options.date) for lid in layer_ids]
    lines = disputed_in_view(atlas, view)
    footer = footer_lines(atlas, shown, len(lines) > 0, options.size_mm[0] - 2 * box.margin, scale,
                          bool(named_places(view)), overlay, options.month)
    if len(footer) != guess:
        box, view = framing(options, len(footer))
        shown = [layer_in_view(atlas, lid, view, options.date) for lid in layer_ids]
        lines = disputed_in_view(atlas, view)

    left = box.margin / options.size_mm[0]
    line_px = (options.size_mm[0] - 2 * box.margin) / paper.MM_PER_INCH * options.dpi
    fit_width(fig.text(left, box.header_top, options.title, fontsize=16 * scale, fontweight="bold", va="top",
                       color=INK, gid="title", parse_math=False), line_px)
    fit_width(fig.text(left, box.header_top - 8.5 * scale / options.size_mm[1], options.subtitle, fontsize=10 * scale,
                       va="top", color=INK, gid="subtitle", parse_math=False), line_px)
    ax = fig.add_axes(box.map, gid="map")
    ax.set_facecolor(style.BACKGROUND)
    for s in shown:  # civil layers, the disputed lines over them, then the claimed units
        if not catalogue.layer(s.layer_id).claimed:
            draw_layer(ax, s, view.metres_per_pt)
    draw_disputed(ax, lines)
    for s in shown:
        if catalogue.layer(s.layer_id).claimed:
            draw_layer(ax, s, view.metres_per_pt)
    events = draw_events(ax, atlas, overlay, options.month, view, scale) if overlay is not None else []
    ax.set_xlim(view.extent[0], view.extent[2])
    ax.set_ylim(view.extent[1], view.extent[3])
    ax.set_aspect("equal", adjustable="box")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.add_artist(ScaleBar(1, "m", location="lower left", length_fraction=SCALEBAR_FRACTION, box_alpha=0.8, color=INK,
                           font_properties={"size": 7 * scale}, scale_loc="top", scale_formatter=scale_text))
    draw_north_arrow(ax, scale)
    clear = kept_clear(ax, view, scale)
    taken = furniture_boxes(ax, scale) + clear
    placed, warnings = place_unit_labels(ax, anchored_labels(atlas, shown, view, options.date), view, scale, taken)
    taken = [box for box in taken if not any(box is c for c in clear)]  # the capital's own marker goes there
    for warning in warnings:
        log.warning("export: %s", warning)
    named = name_places(ax, view, scale, taken)
    place_district_labels(ax, shown, view, scale, taken)
    draw_inset(fig, box.inset, atlas, view, is_national(atlas, view))
    temporal = any(catalogue.layer(s.layer_id).temporal for s in shown)
    rows = (event_legend_rows(overlay) if overlay is not None else []) + legend_entries(
        shown, len(lines) > 0, {p.kind for p in named})
    draw_legend(fig, box.legend, rows, options.date if temporal else None, scale)
    fig.text(left, box.footer_top - 1.5 * scale / options.size_mm[1], "\n".join(footer), fontsize=6.5 * scale,
             va="top", linespacing=1.35, color=INK, gid="credits", parse_math=False)
    metadata = {"Title": options.title, "Subject": options.subtitle, "Keywords": KEYWORDS,
                "Creator": f"ttp-atlas build {atlas.build_id}"}
    return Rendered(fig, ax, view, shown, placed, warnings, metadata, events)


@dataclass
class Rendered:
    figure: Figure
    map_axes: object
    view: View
    shown: list[Shown]
    labels: list[Placed]
    warnings: list[str]
    metadata: dict[str, str]  # Title, Subject, Keywords, Creator
    events: list[eventsymbols.EventSymbol] = field(default_factory=list)  # the event circles drawn

    def pixel(self, lon: float, lat: float) -> tuple[int, int]:
        """(column, row) in the PNG of a lon/lat point on the map."""
        x, y = self.view.transformer.transform(lon, lat)
        px, py = self.map_axes.transData.transform((x, y))
        return int(px), int(self.figure.bbox.height - py)


def file_metadata(metadata: dict[str, str], fmt: str) -> dict:
    """Title, subject, keywords and creator in each format's own keys; no dates, so a map's bytes are stable."""
    if fmt == "png":
        return {"Software": "ttp-atlas", "Title": metadata["Title"], "Description": metadata["Subject"],
                "Author": metadata["Creator"]}
    if fmt == "svg":
        return {"Date": None, "Title": metadata["Title"], "Description": metadata["Subject"],
                "Keywords": metadata["Keywords"].split("; "), "Creator": metadata["Creator"]}
    return {"CreationDate": None, **metadata}


def to_bytes(rendered: Rendered, fmt: str, dpi: int) -> bytes:
    """Encode a rendered map (text as text: TrueType in PDF, ``<text>`` in SVG)."""
    with io.BytesIO() as buffer, matplotlib.rc_context(RC):
        rendered.figure.savefig(buffer, format=fmt, dpi=dpi, metadata=file_metadata(rendered.metadata, fmt))
        return buffer.getvalue()


def release(figure: Figure) -> None:
    """Free a figure's memory now: its raster (tens to hundreds of MB) and artists would otherwise live
    until a full garbage collection finds the Figure<->canvas reference cycle."""
    canvas = figure.canvas
    for artist in figure.findobj():
        artist.__dict__.pop("_renderer", None)  # text keeps the renderer that measured it
    figure.clear()
    canvas.__dict__.pop("renderer", None)
    canvas.__dict__.pop("_lastKey", None)
    canvas.figure = None
    figure.canvas = None


# rcParams are process-global: threads of one server worker must not render with each other's settings.
_RC_LOCK = threading.Lock()


def export(atlas, options: Options, fmt: str, overlay=None) -> bytes:
    """One map as PNG, SVG or PDF bytes (with the ``overlay``'s events of ``options.month``); the figure is
    freed before returning."""
    with _RC_LOCK, matplotlib.rc_context(RC):
        rendered = render(atlas, options, overlay)
        try:
            return to_bytes(rendered, fmt, options.dpi)
        finally:
            release(rendered.figure)


def write(atlas, options: Options, path: Path, overlay=None) -> int:
    """Render to ``path`` (format from its extension) atomically; returns the file size."""
    payload = export(atlas, options, output_format(path), overlay)
    atomic.write_bytes(Path(path), payload)
    return len(payload)


def units(atlas, layer_id: str, date: str) -> list[str]:
    """Keys of the places a batch draws one map each for: wilayah units valid at ``date``, or civil units."""
    features = atlas.features(layer_id, date) if catalogue.layer(layer_id).temporal else atlas.features(layer_id)
    return list(dict.fromkeys(f["properties"]["unit"] if layer_id == "wilayahs" else f["id"] for f in features))
