"""Web-mercator tile math, clipping, MVT encoding and PNG rendering of styled polygons, lines and points.

Generic: geometries come in as shapely arrays in lon/lat, styles as plain dicts
(``stroke``, ``width``, ``fill``, ``fill_opacity``, ``dash``, ``hatch``, ``casing``); points as world fractions
with a ``Mark`` (a marker and a text) for raster tiles. Heavy work is done once per layer (projection and a
spatial index); a tile only queries, clips, rounds and encodes its share.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import mercantile
import numpy as np
import shapely
import skia
from mapbox_vector_tile.encoder import VectorTile
from pmtiles.tile import zxy_to_tileid

from geo.geometry import polygonal
from geo.simplify import TILE_SIZE  # PNG pixels per tile side at scale 1

EXTENT = 4096  # MVT integer grid per tile side
BUFFER = 64  # grid units drawn past each tile edge so that neighbours join without seams
MVT_MIMETYPE = "application/vnd.mapbox-vector-tile"
_EARTH_RADIUS = 6378137.0
MAX_LAT = 85.0511287798066
_MOVE_TO, _LINE_TO, _CLOSE_PATH = 1, 2, 7


def mercator(geoms: np.ndarray) -> np.ndarray:
    """Lon/lat geometries to EPSG:3857 metres (vectorised; latitudes clamped to the mercator limit)."""
    def project(xy: np.ndarray) -> np.ndarray:
        lat = np.radians(np.clip(xy[:, 1], -MAX_LAT, MAX_LAT))
        return np.column_stack([np.radians(xy[:, 0]) * _EARTH_RADIUS,
                                np.log(np.tan(np.pi / 4 + lat / 2)) * _EARTH_RADIUS])
    return shapely.transform(np.asarray(geoms, dtype=object), project)


@dataclass(frozen=True)
class Index:
    """One layer's geometries in mercator with an STRtree: built once, queried per tile."""

    geoms: np.ndarray
    tree: shapely.STRtree


def index(geoms_lonlat: np.ndarray) -> Index:
    """Project and index once. Parts beyond web mercator's latitude limit (Antarctica's) are cut off
    first: clamped instead, they would collapse into broken rings."""
    inside = shapely.clip_by_rect(np.asarray(geoms_lonlat, dtype=object), -180.0, -MAX_LAT, 180.0, MAX_LAT)
    projected = mercator(inside)
    shapely.prepare(projected)  # ``cover`` asks whether a polygon contains a tile: fast on prepared ones
    return Index(projected, shapely.STRtree(projected))


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """Mercator (minx, miny, maxx, maxy) of a tile."""
    b = mercantile.xy_bounds(x, y, z)
    return b.left, b.bottom, b.right, b.top


def valid_tile(z: int, x: int, y: int) -> bool:
    return z >= 0 and 0 <= x < 2 ** z and 0 <= y < 2 ** z


def touches(bounds: tuple[float, float, float, float], z: int, x: int, y: int) -> bool:
    """Whether a tile overlaps lon/lat ``bounds`` (west, south, east, north)."""
    west, south, east, north = bounds
    tile = mercantile.bounds(x, y, z)
    return tile.west < east and tile.east > west and tile.south < north and tile.north > south


def inside(bounds: tuple[float, float, float, float], z: int, x: int, y: int) -> bool:
    """Whether a tile lies wholly inside lon/lat ``bounds`` (west, south, east, north)."""
    west, south, east, north = bounds
    tile = mercantile.bounds(x, y, z)
    return tile.west >= west and tile.east <= east and tile.south >= south and tile.north <= north


def tiles_over(bounds: tuple[float, float, float, float], zoom: int) -> list[tuple[int, int, int]]:
    """The (z, x, y) of every tile at ``zoom`` touching lon/lat ``bounds``."""
    return [(t.z, t.x, t.y) for t in mercantile.tiles(*bounds, zooms=zoom)]


def _buffered(z: int, x: int, y: int, buffer: int) -> shapely.Geometry:
    """A tile's box grown by ``buffer`` grid units, in mercator."""
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    pad = buffer * (maxx - minx) / EXTENT
    return shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)


def cover(layer: Index, z: int, x: int, y: int, buffer: int = BUFFER) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the features touching a tile (with ``buffer``) and whether each contains it wholly.

    A tile every touching feature contains is cut the same at every zoom below it (each feature is the
    whole buffered square), so a pyramid can stop descending there and share one tile.
    """
    box = _buffered(z, x, y, buffer)
    hits = layer.tree.query(box, predicate="intersects")
    return hits, shapely.contains_properly(layer.geoms[hits], box)


def subtree(z: int, x: int, y: int, zoom: int) -> tuple[int, int]:
    """(first PMTiles tile id, count) of a tile's descendants at ``zoom``: on the Hilbert curve they are
    consecutive, the tile's position on its own zoom's curve scaled by 4 per zoom."""
    first_of = lambda level: ((1 << (2 * level)) - 1) // 3  # tiles on every zoom above ``level``
    k = zoom - z
    return first_of(zoom) + ((zxy_to_tileid(z, x, y) - first_of(z)) << (2 * k)), 1 << (2 * k)


def window(layer: Index, z: int, x: int, y: int, buffer: int = BUFFER, parent=None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices of the features in a tile (with ``buffer``) and their parts there, in mercator.

    ``parent``, the window of the parent tile on the same geometry, is clipped instead of the whole
    features: a fraction of the vertices. The result is the same: the child's buffered box lies inside
    the parent's, so every vertex the parent's clip added falls outside it.
    """
    box = _buffered(z, x, y, buffer)
    if parent is None:
        hits = np.sort(layer.tree.query(box, predicate="intersects"))
        geoms = layer.geoms[hits]
    else:
        hits, geoms = parent
        keep = shapely.intersects(geoms, box)
        hits, geoms = hits[keep], geoms[keep]
    return hits, shapely.clip_by_rect(geoms, *shapely.bounds(box))


def _grid(geoms: np.ndarray, z: int, x: int, y: int) -> np.ndarray:
    """Mercator geometries in a tile's grid units (y down)."""
    minx, _, maxx, maxy = tile_bounds(z, x, y)
    unit = (maxx - minx) / EXTENT
    return shapely.transform(geoms, lambda xy: np.column_stack([(xy[:, 0] - minx) / unit, (maxy - xy[:, 1]) / unit]))


def clip(layer: Index, z: int, x: int, y: int, buffer: int = BUFFER, cut=None) -> tuple[np.ndarray, np.ndarray]:
    """Indices and tile-grid geometries (integer, y down, valid, MVT-oriented) of features in a tile;
    ``cut``: the tile's ``window`` when already made.

    Rounding moves a vertex shared by two neighbours to the same grid point in both, so shared
    borders stay shared; the few polygons that rounding makes invalid are snap-rounded by GEOS.
    """
    hits, clipped = window(layer, z, x, y, buffer) if cut is None else cut
    if hits.size == 0:
        return hits, clipped
    scaled = _grid(clipped, z, x, y)
    grid = shapely.transform(scaled, np.rint)
    broken = ~shapely.is_valid(grid)  # rings that rounding pinched or collapsed: GEOS snap-rounds those
    grid[broken] = shapely.set_precision(shapely.make_valid(scaled[broken]), 1.0)
    grid = np.array([polygonal(g) for g in grid], dtype=object)
    keep = ~shapely.is_empty(grid)
    # y points down in the tile, so shapely's counter-clockwise is the MVT's clockwise exterior
    return hits[keep], shapely.orient_polygons(grid[keep])


def clip_lines(layer: Index, z: int, x: int, y: int, buffer: int = BUFFER) -> tuple[np.ndarray, np.ndarray]:
    """Indices and tile-grid parts of the lines in a tile, for drawing (``render`` takes lines too)."""
    hits, clipped = window(layer, z, x, y, buffer)
    keep = ~shapely.is_empty(clipped)
    return hits[keep], _grid(clipped[keep], z, x, y)


def world(lonlat) -> np.ndarray:
    """Lon/lat points ((n, 2)) as world fractions: x east from 180°W, y south from the top of web mercator
    (latitudes clamped to it), both 0-1; a tile at zoom z spans 2**-z of each."""
    xy = np.asarray(lonlat, dtype=float).reshape(-1, 2)
    lat = np.radians(np.clip(xy[:, 1], -MAX_LAT, MAX_LAT))
    return np.column_stack([(xy[:, 0] + 180.0) / 360.0, (1 - np.log(np.tan(np.pi / 4 + lat / 2)) / np.pi) / 2])


class PointIndex:
    """Points (world fractions) sorted by their tile at each zoom (on first use of that zoom, or all at once by
    ``warm``): a tile finds its points by binary search, however many there are."""

    def __init__(self, world_xy: np.ndarray):
        self.world = np.asarray(world_xy, dtype=float).reshape(-1, 2)
        self._zooms: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _sorted(self, z: int) -> tuple[np.ndarray, np.ndarray]:
        if z not in self._zooms:
            cells = np.clip(np.floor(self.world * 2 ** z).astype(np.int64), 0, 2 ** z - 1)
            keys = cells[:, 0] * (1 << z) + cells[:, 1]
            order = np.argsort(keys, kind="stable")
            self._zooms[z] = (keys[order], order)
        return self._zooms[z]

    def warm(self, zooms) -> None:
        for z in zooms:
            self._sorted(z)

    def within(self, z: int, x: int, y: int) -> np.ndarray:
        """Indices (ascending) of the points in the tile (as ``points_in`` counts them, up to rounding at
        its edges: pass them to ``points_in`` for their grid positions)."""
        keys, order = self._sorted(z)
        key = x * (1 << z) + y
        first, last = np.searchsorted(keys, [key, key + 1])
        return order[first:last]


def points_in(world: np.ndarray, z: int, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the points (world fractions: x east, y south, 0-1) inside a tile and their integer grid
    coordinates there. No buffer, and a point on an edge belongs to the tile east or south of it: each point
    is in exactly one tile per zoom, so a client draws a point's symbol once, not once per tile."""
    grid = (np.asarray(world, dtype=float).reshape(-1, 2) * 2.0 ** z - (x, y)) * EXTENT
    hits = np.flatnonzero(np.all((grid >= 0) & (grid < EXTENT), axis=1))
    return hits, np.floor(grid[hits]).astype(np.int64)


def _zigzag(values: np.ndarray) -> np.ndarray:
    return (values << 1) ^ (values >> 63)


def _ring_commands(ring: np.ndarray, cursor: np.ndarray) -> list[int]:
    """MVT commands of one closed ring (closing vertex dropped) starting from the pen ``cursor``."""
    deltas = np.diff(np.vstack([cursor, ring]), axis=0)
    encoded = _zigzag(deltas).ravel().tolist()
    return [(1 << 3) | _MOVE_TO, *encoded[:2], ((len(ring) - 1) << 3) | _LINE_TO, *encoded[2:],
            (1 << 3) | _CLOSE_PATH]


def polygon_commands(geom: shapely.Geometry) -> list[int]:
    """MVT geometry commands of a (multi)polygon on the integer grid (numpy, not per-vertex Python)."""
    commands: list[int] = []
    cursor = np.zeros((1, 2), dtype=np.int64)
    for polygon in shapely.get_parts(geom):
        for ring in (shapely.get_exterior_ring(polygon), *shapely.get_interior_ring(polygon, range(
                shapely.get_num_interior_rings(polygon)))):
            coords = shapely.get_coordinates(ring).astype(np.int64)[:-1]
            coords = coords[np.r_[True, np.any(coords[1:] != coords[:-1], axis=1)]]  # no zero-length steps
            if len(coords) < 3:
                continue
            commands += _ring_commands(coords, cursor)
            cursor = coords[-1:]
    return commands


def point_commands(geom: shapely.Geometry) -> list[int]:
    """MVT geometry commands of a (multi)point on the integer grid: one MoveTo of every point."""
    coords = shapely.get_coordinates(geom).astype(np.int64)
    deltas = np.diff(np.vstack([np.zeros((1, 2), dtype=np.int64), coords]), axis=0)
    return [(len(coords) << 3) | _MOVE_TO, *_zigzag(deltas).ravel().tolist()] if len(coords) else []


class _Tile(VectorTile):
    """mapbox-vector-tile's layer, key and value tables, with geometry encoded by ``polygon_commands``
    (or ``point_commands``).

    The library's own encoder walks every vertex in Python (about a second for a busy tile); ours is
    vectorised and takes geometries already rounded, valid and oriented by ``clip``.
    """

    def add_feature(self, feature, shape):
        point = shapely.get_type_id(shape) in (0, 4)  # Point, MultiPoint
        geometry = point_commands(shape) if point else polygon_commands(shape)
        if not geometry:
            return
        encoded = self.layer.features.add()
        if isinstance(feature.get("id"), int):
            encoded.id = feature["id"]
        self._handle_attr(self.layer, encoded, feature.get("properties") or {})
        encoded.type = self.tile.Point if point else self.tile.Polygon
        encoded.geometry.extend(geometry)


def encode(layers: list[tuple[str, np.ndarray, list[dict]]]) -> bytes:
    """An MVT 2.1 tile from (layer name, tile-grid polygons from ``clip`` or points from ``points_in``,
    properties) triples.

    Properties whose value is None or not a scalar are left out (MVT has no null or list values).
    """
    tile = _Tile({"extents": EXTENT, "check_winding_order": False, "quantize_bounds": None})
    for name, geoms, properties in layers:
        features = [{"geometry": g, "properties": _scalars(p)} for g, p in zip(geoms, properties, strict=True)]
        if features:
            tile.add_layer(name, features)
    return tile.tile.SerializeToString()


def _scalars(properties: dict) -> dict:
    return {k: v for k, v in properties.items() if isinstance(v, (str, bool, int, float))}


# --- raster --------------------------------------------------------------------------------------

def _colour(hex_colour: str, opacity: float = 1.0) -> int:
    value = hex_colour.lstrip("#")
    return skia.Color(int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16), round(opacity * 255))


def _path(geom: shapely.Geometry) -> skia.Path:
    """A Skia path of a polygon's rings (closed, even-odd) or of a line's parts (open)."""
    path = skia.Path()
    if shapely.get_dimensions(geom) == 1:
        for part in shapely.get_parts(geom):
            path.addPoly([skia.Point(float(px), float(py)) for px, py in shapely.get_coordinates(part)], False)
        return path
    for ring in shapely.get_rings(shapely.get_parts(geom)):
        coords = shapely.get_coordinates(ring)
        path.addPoly([skia.Point(float(px), float(py)) for px, py in coords], True)
    path.setFillType(skia.PathFillType.kEvenOdd)
    return path


def _hatch(canvas: skia.Canvas, path: skia.Path, style: dict, unit: float, origin: tuple[float, float]) -> None:
    """Parallel lines clipped to the polygon, in ``hatch_colour`` at ``hatch_angle`` (anticlockwise from
    east) every ``hatch_spacing`` CSS pixels. The lines are laid on the world's pixel grid (``origin`` is
    the tile's top-left there), so they run on across tile edges."""
    angle = np.radians(style.get("hatch_angle", 45.0))
    spacing = style.get("hatch_spacing", 8.0)
    along, normal = np.array([np.cos(angle), -np.sin(angle)]), np.array([np.sin(angle), np.cos(angle)])
    corners = np.array([[0, 0], [TILE_SIZE, 0], [0, TILE_SIZE], [TILE_SIZE, TILE_SIZE]]) @ normal
    shift = float(np.dot(origin, normal))  # lines are normal . (origin + p) = k * spacing
    first = np.floor((corners.min() + shift) / spacing) * spacing - shift
    paint = skia.Paint(AntiAlias=True, Style=skia.Paint.kStroke_Style,
                       StrokeWidth=style.get("hatch_width", 1.0) * unit,
                       Color=_colour(style.get("hatch_colour", style["stroke"]), style.get("hatch_opacity", 0.6)))
    reach = 2 * TILE_SIZE
    canvas.save()
    canvas.clipPath(path, doAntiAlias=True)
    for offset in np.arange(first, corners.max() + spacing, spacing):
        start, end = (offset * normal - reach * along) * unit, (offset * normal + reach * along) * unit
        canvas.drawLine(float(start[0]), float(start[1]), float(end[0]), float(end[1]), paint)
    canvas.restore()


@dataclass(frozen=True)
class Mark:
    """A point's symbol on raster tiles: an optional marker centred on the point, and a haloed text whose
    ``align`` side (left, center, right) and ``baseline`` edge (top, middle, bottom) lie ``dx``, ``dy`` CSS
    px from the point. Sizes in CSS px."""

    text: str
    font: str  # a TrueType file
    size: float
    colour: str
    halo: str
    halo_width: float
    dx: float = 0.0
    dy: float = 0.0
    align: str = "center"
    baseline: str = "middle"
    marker: str | None = None  # "dot", "ring" (a dot in a circle) or "star"
    marker_size: float = 0.0
    marker_fill: str = "#000000"
    marker_stroke: str = "#ffffff"
    marker_stroke_width: float = 0.0


MARK_BUFFER = 2.0  # CSS px around a mark's box (antialiasing) when asking which tiles it reaches


@lru_cache(maxsize=32)
def _font(path: str, size: float) -> skia.Font:
    font = skia.Font(skia.Typeface.MakeFromFile(path), size)
    font.setEdging(skia.Font.Edging.kAntiAlias)
    return font


def _text_layout(mark: Mark, scale: float) -> tuple[float, float, float, float, float]:
    """(x, baseline y, width, ascent, descent) of the mark's text in device px from the point."""
    font = _font(mark.font, mark.size * scale)
    width, metrics = font.measureText(mark.text), font.getMetrics()
    ascent, descent = metrics.fAscent, metrics.fDescent  # ascent < 0: above the baseline
    x = mark.dx * scale - {"left": 0.0, "center": width / 2, "right": width}[mark.align]
    y = mark.dy * scale - {"top": ascent, "middle": (ascent + descent) / 2, "bottom": descent}[mark.baseline]
    return x, y, width, ascent, descent


def mark_box(mark: Mark) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) CSS px around the point that the mark covers: its text with the halo
    (measured in its font) and its marker."""
    x, y, width, ascent, descent = _text_layout(mark, 1)
    halo, reach = mark.halo_width, mark.marker_size / 2 + mark.marker_stroke_width
    return (min(x - halo, -reach), min(y + ascent - halo, -reach), max(x + width + halo, reach),
            max(y + descent + halo, reach))


def marks_in(world: np.ndarray, boxes: np.ndarray, z: int, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the points (world fractions) whose mark box (rows of ``mark_box``, grown by ``MARK_BUFFER``)
    reaches into a tile, and their positions in the tile's CSS px. A mark crossing a tile edge is drawn in
    every tile it reaches at the same world position, so neighbouring tiles stitch without a seam."""
    px = np.asarray(world, dtype=float).reshape(-1, 2) * TILE_SIZE * 2.0 ** z - (x * TILE_SIZE, y * TILE_SIZE)
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4) + (-MARK_BUFFER, -MARK_BUFFER, MARK_BUFFER, MARK_BUFFER)
    reach = ((px[:, 0] + boxes[:, 0] < TILE_SIZE) & (px[:, 0] + boxes[:, 2] > 0)
             & (px[:, 1] + boxes[:, 1] < TILE_SIZE) & (px[:, 1] + boxes[:, 3] > 0))
    hits = np.flatnonzero(reach)
    return hits, px[hits]


def _marker(canvas: skia.Canvas, cx: float, cy: float, mark: Mark, scale: float) -> None:
    half, width = mark.marker_size / 2 * scale, mark.marker_stroke_width * scale
    fill = skia.Paint(AntiAlias=True, Color=_colour(mark.marker_fill))
    stroke = skia.Paint(AntiAlias=True, Style=skia.Paint.kStroke_Style, StrokeWidth=width,
                        StrokeJoin=skia.Paint.kRound_Join, Color=_colour(mark.marker_stroke))
    if mark.marker == "star":  # five points: radius half, inner radius 0.45 half
        angles = np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, half, half * 0.45)
        shape = skia.Path()
        shape.addPoly([skia.Point(float(cx + r * np.sin(a)), float(cy - r * np.cos(a)))
                       for a, r in zip(angles, radii, strict=True)], True)
    else:
        shape = skia.Path.Circle(cx, cy, max(half - width / 2, 0.5))
    canvas.drawPath(shape, fill)
    if width:
        canvas.drawPath(shape, stroke)
    if mark.marker == "ring":  # the dot inside the circle, in the stroke's colour
        canvas.drawCircle(cx, cy, mark.marker_size / 5 * scale, skia.Paint(AntiAlias=True,
                                                                          Color=_colour(mark.marker_stroke)))


def _draw_marks(canvas: skia.Canvas, marks, scale: float) -> None:
    """Markers and haloed texts at (x, y) tile CSS px: every halo of a mark under its own text."""
    for px, py, mark in marks:
        cx, cy = float(px) * scale, float(py) * scale
        if mark.marker:
            _marker(canvas, cx, cy, mark, scale)
        x, y, *_ = _text_layout(mark, scale)
        font = _font(mark.font, mark.size * scale)
        halo = skia.Paint(AntiAlias=True, Style=skia.Paint.kStroke_Style, StrokeWidth=2 * mark.halo_width * scale,
                          StrokeJoin=skia.Paint.kRound_Join, Color=_colour(mark.halo))
        canvas.drawString(mark.text, cx + x, cy + y, font, halo)
        canvas.drawString(mark.text, cx + x, cy + y, font, skia.Paint(AntiAlias=True, Color=_colour(mark.colour)))


def render(layers: list[tuple[np.ndarray, list[dict]]], background: str | None = None, scale: int = 1,
           origin: tuple[float, float] = (0.0, 0.0), marks=()) -> bytes:
    """An antialiased PNG tile (Skia) of (tile-grid polygons from ``clip``, per-feature styles) layers.

    Fills and hatches of every layer are drawn first in layer order, then outlines in layer order, so
    borders are never covered and a later layer's outlines lie over an earlier one's. A fill is drawn
    only where ``fill_opacity`` is above 0; lines are outlines only, over a ``casing`` (colour and
    ``casing_width``) when the style has one. Stroke widths, dashes and hatch spacing are in CSS pixels and
    grow with ``scale`` (2 for @2x tiles); ``origin`` is the tile's top-left in world CSS pixels.
    ``marks``, (x, y, ``Mark``) at tile CSS px (``marks_in``), are drawn over everything, in order.
    """
    size = TILE_SIZE * scale
    surface = skia.Surface(size, size)
    canvas = surface.getCanvas()
    canvas.clear(_colour(background) if background else skia.ColorTRANSPARENT)
    canvas.scale(size / EXTENT, size / EXTENT)
    unit = EXTENT / TILE_SIZE  # grid units per CSS pixel
    paths = [[(_path(g), s) for g, s in zip(geoms, styles, strict=True)] for geoms, styles in layers]
    for layer in paths:
        for path, style in layer:
            if style["fill_opacity"] > 0:
                canvas.drawPath(path, skia.Paint(AntiAlias=True, Color=_colour(style["fill"], style["fill_opacity"])))
            if style.get("hatch"):
                _hatch(canvas, path, style, unit, origin)
    for layer in paths:
        for path, style in layer:
            if style.get("casing"):
                canvas.drawPath(path, skia.Paint(AntiAlias=True, Style=skia.Paint.kStroke_Style,
                                                 StrokeWidth=style["casing_width"] * unit, Color=_colour(style["casing"])))
            stroke = skia.Paint(AntiAlias=True, Style=skia.Paint.kStroke_Style, StrokeWidth=style["width"] * unit,
                                Color=_colour(style["stroke"]))
            if style.get("dash"):
                stroke.setPathEffect(skia.DashPathEffect.Make([d * unit for d in style["dash"]], 0))
            canvas.drawPath(path, stroke)
    if marks:
        canvas.resetMatrix()
        _draw_marks(canvas, marks, scale)
    image = surface.makeImageSnapshot()
    return bytes(image.encodeToData(skia.EncodedImageFormat.kPNG, 100))
