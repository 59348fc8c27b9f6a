"""Tilesets of the atlas: each layer alone and the combined ``atlas``, as MVT and styled PNG tiles,
their TileJSON, and the whole pyramid written to (and read back from) PMTiles or MBTiles archives.

What a tile carries is decided here (layers per zoom, properties, the wilayah period, the label points);
how a tile is cut, encoded and drawn is ``geo.tiles``. Knows nothing of HTTP.

Labels are points, placed once for the web (``layers.labels.web_labels``: unit labels, then place names,
collisions resolved per zoom): the ``labels`` and ``places`` MVT layers carry each point in the one tile
that holds it, from the zoom it shows at, so a client draws every name once; PNG tiles draw each name in
every tile its box reaches, at the same world position, so tiles stitch.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import multiprocessing
import os
import sqlite3
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import shapely
from pmtiles.reader import MmapSource, Reader
from pmtiles.tile import Compression, TileType, tileid_to_zxy, zxy_to_tileid
from pmtiles.writer import Writer

from geo import tiles as geotiles
from geo.atomic import staged_file
from geo.cache import ByteCache, budget_from_env
from layers import catalogue, disputed, features, gisstyles, glyphs, labels, places, style
from layers import overlay as overlays

MIN_ZOOM, MAX_ZOOM = 0, 14
ATLAS = "atlas"
TILESETS: tuple[str, ...] = (ATLAS, *catalogue.LAYER_IDS)
ARCHIVE_SUFFIXES = (".pmtiles", ".mbtiles")
MVT_MIMETYPE = geotiles.MVT_MIMETYPE
TILE_CACHE_ENV = "TTP_ATLAS_TILE_CACHE_MB"  # rendered tiles kept per process, by bytes (default 64 MiB)

# Point layers of the tiles (not in the catalogue; named where the styles draw them): unit labels and place
# names, in the tilesets that draw them
LABELS, PLACES, LABELLED = gisstyles.LABELS, gisstyles.PLACES, gisstyles.LABELLED
POINT_LAYER_IDS = gisstyles.POINT_LAYER_IDS
POINT_LAYERS: dict[str, tuple[str, ...]] = {ATLAS: (LABELS, PLACES), LABELLED: (LABELS,)}

# The properties each layer's tiles carry: what a style or a popup needs, scalars only (MVT has
# no lists); the full records are in the features API.
TILE_FIELDS: dict[str, dict[str, str]] = {
    "countries": {"id": "ISO 3166 numeric code", "name": "Country name"},
    "provinces": {"id": "Feature id", "name": "Province or territory", "pcode": "COD-AB P-code"},
    "divisions": {"id": "Feature id", "name": "Division", "province": "Province"},
    "districts": {"id": "Feature id", "name": "District", "pcode": "COD-AB P-code", "province": "Province",
                  "division": "Division", "notified": "Date notified, for districts made after 2022-09"},
    "tehsils": {"id": "Feature id", "name": "Tehsil", "pcode": "COD-AB P-code", "district": "District",
                "province": "Province"},
    "tribal-districts": {"id": "Feature id", "name": "District", "former_agency": "FATA agency until 2018",
                         "merged": "Date merged into Khyber Pakhtunkhwa", "province": "Province"},
    "wilayahs": {"id": "Feature id (unit-valid_from-part)", "unit": "Unit id", "name": "Claimed unit",
                 "label": "The text maps show, e.g. 'Zhob (possible extension)'",
                 "zone": "north, south or absent (not reported)", "part": "core or extension",
                 "valid_from": "First day of the period (ISO date)",
                 "valid_to": "Last day of the period (absent while current)",
                 "status": "'claimed', or 'unknown since <ISO date>' for a continuation a later report leaves unnamed",
                 "confidence": "high, medium or low", "basis": "How the districts were chosen",
                 "caveat": "Claimed units, not areas of control"},
    "zones": {"id": "Feature id", "name": "Zone", "zone": "north or south", "valid_from": "First day (ISO date)",
              "valid_to": "Last day (absent while current)", "status": "Always 'claimed'",
              "confidence": "Lowest confidence of its units", "caveat": "Claimed units, not areas of control"},
    LABELS: {"feature_id": "Id of the wilayahs feature labelled", "label": "Label text", "unit": "Unit id",
             "name": "Claimed unit", "part": "core or extension", "zone": "north, south or absent (not reported)",
             "status": "'claimed', or 'unknown since <ISO date>'",
             "rank": "Placement priority, 0 first", "min_zoom": "Zoom from which the label is clear of those "
                                                                 "ranked before it (tiles carry it from there)"},
    PLACES: {"id": "geonames:<GeoNames id>", "name": "Place name (GeoNames)",
             "kind": "national-capital, provincial-capital or city", "population": "GeoNames population",
             "rank": "Placement priority among places, 0 first",
             "side": "Where the name goes beside the marker: " + ", ".join(labels.PLACE_SIDES),
             "min_zoom": "Zoom from which the name is clear of the labels ranked before it (tiles carry it "
                         "from there)"},
}
POINT_TITLES = {LABELS: "Unit labels (one point per claimed unit feature)", PLACES: "Place names"}

# PNG: the atlas tileset is a basemap drawn in the style's order (sea background, land, every fill, then
# every outline, so unit outlines lie over civil borders); a single layer's PNG is a transparent overlay.
RASTER_ORDER = tuple(lid for lid in style.DRAW_ORDER if lid not in style.HIDDEN_IN_ATLAS)
# PNG tilesets that draw the disputed lines dashed (over the borders they mark, under the units' outlines)
DISPUTED_TILESETS = (ATLAS, "countries", "provinces")


class TileError(ValueError):
    """A tile request or export that cannot be served; the message names the value and what is valid."""


class TileOutside(TileError):
    """A tile outside the tileset's zoom range or bounds (a 404, not a bad request)."""


def parse_datetime(raw: str | None, today: dt.date | None = None) -> tuple[str | None, str | None]:
    """``datetime`` read as the features API reads it (QueryError when malformed) as ISO dates
    (start, end); no value means today, so that a map shows one period."""
    if raw is None:
        day = (today or dt.date.today()).isoformat()
        return day, day
    return features.parse_datetime(raw)


def check_tileset(tileset: str) -> str:
    if tileset not in TILESETS:
        raise TileOutside(f"tileset {tileset!r} does not exist; valid tilesets: {', '.join(TILESETS)}")
    return tileset


def check_tile(z: int, x: int, y: int) -> None:
    if not MIN_ZOOM <= z <= MAX_ZOOM:
        raise TileOutside(f"zoom {z} is outside the tileset's range {MIN_ZOOM}-{MAX_ZOOM}")
    if not geotiles.valid_tile(z, x, y):
        raise TileOutside(f"tile {z}/{x}/{y} is outside the tile grid (x and y from 0 to {2 ** z - 1})")


def layers_of(tileset: str, zoom: int) -> tuple[str, ...]:
    """The layers a tileset's tile carries at ``zoom`` (the atlas adds each layer from its min_zoom)."""
    if tileset != ATLAS:
        return (tileset,)
    return tuple(lid for lid in catalogue.LAYER_IDS if zoom >= catalogue.layer(lid).min_zoom)


def point_layers_of(tileset: str) -> tuple[str, ...]:
    """The point layers (labels, place names) a tileset's tiles carry after its polygon layers."""
    return POINT_LAYERS.get(tileset, ())


def tile_layers(tileset: str) -> tuple[str, ...]:
    """Every MVT layer of a tileset: its catalogue layers, then its point layers."""
    return (*layers_of(tileset, MAX_ZOOM), *point_layers_of(tileset))


def tile_properties(layer_id: str, properties: dict) -> dict:
    return {k: properties[k] for k in TILE_FIELDS[layer_id] if properties.get(k) is not None}


@dataclass(frozen=True)
class PointLayer:
    """One point layer of a period: where each point is, from which zoom it shows, its tile properties
    and how raster tiles draw it."""

    world: np.ndarray  # (n, 2) world fractions (x east, y south)
    min_zoom: np.ndarray  # (n,)
    properties: list[dict]
    marks: list[geotiles.Mark]
    boxes: np.ndarray  # (n, 4) CSS px each mark covers around its point (geotiles.mark_box)
    index: geotiles.PointIndex  # finds a tile's points

    @classmethod
    def of(cls, placed: list[tuple[labels.Label, int]], properties: list[dict], marks: list[geotiles.Mark]):
        index = geotiles.PointIndex(geotiles.world([(label.lon, label.lat) for label, _ in placed]))
        index.warm(range(MIN_ZOOM, MAX_ZOOM + 1))
        return cls(index.world, np.array([zoom for _, zoom in placed], dtype=int), properties, marks,
                   np.array([geotiles.mark_box(m) for m in marks], dtype=float).reshape(-1, 4), index)

    def shown(self, z: int) -> np.ndarray:
        return np.flatnonzero(self.min_zoom <= z)

    def within(self, z: int, x: int, y: int) -> np.ndarray:
        """Indices of the points in the tile that show at its zoom."""
        near = self.index.within(z, x, y)
        return near[self.min_zoom[near] <= z]


def _unit_mark(label: labels.Label) -> geotiles.Mark:
    font = style.LABEL_STYLES[LABELLED]
    return geotiles.Mark(label.text, glyphs.font_file(font.fontstack), font.size, font.colour, font.halo,
                         font.halo_width)


def _place_mark(place: places.Place, side: str) -> geotiles.Mark:
    look = style.PLACE_STYLES[place.kind]
    align, baseline, dx, dy = gisstyles.place_text(look)[side]
    font = look.font
    return geotiles.Mark(place.name, glyphs.font_file(font.fontstack), font.size, font.colour, font.halo,
                         font.halo_width, dx, dy, align, baseline, look.marker, look.size, look.fill, look.stroke,
                         look.stroke_width)


CONTEXT_MARGIN = 10.0  # degrees of neighbouring land around Pakistan in a countries tile archive
WORLD = (-180.0, -90.0, 180.0, 90.0)


def _clamp(bounds) -> tuple[float, float, float, float]:
    """Bounds inside the tile matrix (web mercator stops at 85.05°)."""
    west, south, east, north = bounds
    limit = geotiles.MAX_LAT
    return (max(float(west), -180.0), max(float(south), -limit), min(float(east), 180.0), min(float(north), limit))


def tileset_bounds(atlas, tileset: str) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a tileset's data, its TileJSON bounds: the world for the countries
    and the atlas (land everywhere), a layer's own extent otherwise. Tiles are served across the whole
    tile matrix; outside these bounds they are empty."""
    boxes = np.array([atlas.manifest["layers"][lid]["bbox"] for lid in layers_of(tileset, MAX_ZOOM)])
    return _clamp((*boxes[:, :2].min(axis=0), *boxes[:, 2:].max(axis=0)))


def pyramid_bounds(atlas, tileset: str) -> tuple[float, float, float, float]:
    """What ``ttp-atlas tiles`` writes (the world to zoom 14 is billions of tiles): the tileset's data
    over Pakistan, with a margin of neighbouring land for the countries."""
    west, south, east, north = atlas.pakistan_bounds
    margin = CONTEXT_MARGIN if tileset == "countries" else 0.0
    data = tileset_bounds(atlas, tileset)
    return _clamp((max(west - margin, data[0]), max(south - margin, data[1]), min(east + margin, data[2]),
                   min(north + margin, data[3])))


class TileSource:
    """Tiles of one loaded atlas: spatial indexes built once per layer and zoom, rendered tiles in an LRU.

    The cache is keyed by the tile and the *features selected* by the datetime, so every date inside
    the same wilayah period shares one cached tile.
    """

    def __init__(self, atlas, cache_bytes: int | None = None):
        self.atlas = atlas
        self.bounds = {tileset: tileset_bounds(atlas, tileset) for tileset in TILESETS}
        self.pyramid_bounds = {tileset: pyramid_bounds(atlas, tileset) for tileset in TILESETS}
        self._indexes: dict[int, tuple[np.ndarray, geotiles.Index]] = {}
        self._properties = {lid: [tile_properties(lid, f["properties"]) for f in atlas.features(lid)]
                            for lid in catalogue.LAYER_IDS}
        lines = [geom for _, geom in disputed.disputed_lines(atlas)]
        self._disputed = geotiles.index(np.array(lines, dtype=object)) if lines else None
        self._unit_labels = self._every_unit_label()
        self.selection = lru_cache(maxsize=256)(self._select)
        self.points = lru_cache(maxsize=64)(self._points)
        self._tiles = ByteCache(budget_from_env(TILE_CACHE_ENV, 64) if cache_bytes is None else cache_bytes)

    # --- selection -------------------------------------------------------------------------------

    def index(self, layer_id: str, zoom: int) -> geotiles.Index:
        """The layer's index at ``zoom``, shared between zooms that use the same generalised level."""
        geoms = self.atlas.generalised(layer_id, zoom)
        if id(geoms) not in self._indexes:
            self._indexes[id(geoms)] = (geoms, geotiles.index(geoms))
        return self._indexes[id(geoms)][1]

    def warm(self) -> None:
        """Build every layer's index at every zoom now (before gunicorn forks, so workers share them)."""
        for layer_id in catalogue.LAYER_IDS:
            for zoom in range(MIN_ZOOM, MAX_ZOOM + 1):
                self.index(layer_id, zoom)

    def _select(self, tileset: str, period: tuple[str | None, str | None]) -> tuple:
        """Per temporal layer of the tileset, the indices of the features valid in ``period``."""
        temporal = [lid for lid in layers_of(tileset, MAX_ZOOM) if catalogue.layer(lid).temporal]
        return tuple((lid, tuple(self.atlas.valid_indices(lid, *period))) for lid in temporal)

    # --- label points ----------------------------------------------------------------------------

    def _every_unit_label(self) -> dict[str, tuple[tuple, labels.Label]]:
        """Feature id -> (sort key, label) of every feature of the labelled layer, each labelled as on its
        first day; the key is ``labels.unit_labels``' order (part, then larger first), valid across periods."""
        geoms, found = self.atlas.geometries[LABELLED], {}
        index = {f["id"]: i for i, f in enumerate(self.atlas.features(LABELLED))}
        for day in sorted({f["properties"]["valid_from"] for f in self.atlas.features(LABELLED)}):
            for label in labels.unit_labels(self.atlas, LABELLED, day):
                area = float(shapely.area(labels.largest_polygon(geoms[index[label.feature_id]])))
                found.setdefault(label.feature_id, ((label.priority, -area, index[label.feature_id]), label))
        return found

    def _points(self, selection: tuple) -> dict[str, PointLayer]:
        """The ``labels`` and ``places`` layers of a period: the labels of the units ``selection`` keeps and
        every place, placed together as on the web map (``labels.web_labels``); a label that never fits is
        left out."""
        features = self.atlas.features(LABELLED)
        ids = [features[i]["id"] for i in dict(selection).get(LABELLED, ())]
        units = [label for _, label in sorted(self._unit_labels[fid] for fid in ids if fid in self._unit_labels)]
        shown = places.places_in(WORLD, MAX_ZOOM)
        placed = labels.web_labels(units, shown, zooms=range(MIN_ZOOM, MAX_ZOOM + 1))
        by_id = {f["id"]: f["properties"] for f in features}
        by_place = {p.id: p for p in shown}
        unit_rows = [(label, zoom) for label, zoom, _ in placed if label.part != "place" and zoom != labels.NEVER]
        place_rows = [(label, zoom, side) for label, zoom, side in placed
                      if label.part == "place" and zoom != labels.NEVER]
        unit_props = [tile_properties(LABELS, {**by_id[label.feature_id], "feature_id": label.feature_id,
                                               "label": label.text, "rank": label.priority, "min_zoom": zoom})
                      for label, zoom in unit_rows]
        place_props = [tile_properties(PLACES, {
            "id": label.feature_id, "name": label.text, "kind": by_place[label.feature_id].kind,
            "population": by_place[label.feature_id].population, "rank": by_place[label.feature_id].priority,
            "side": side, "min_zoom": zoom}) for label, zoom, side in place_rows]
        return {LABELS: PointLayer.of(unit_rows, unit_props, [_unit_mark(label) for label, _ in unit_rows]),
                PLACES: PointLayer.of([(label, zoom) for label, zoom, _ in place_rows], place_props,
                                      [_place_mark(by_place[label.feature_id], side)
                                       for label, _, side in place_rows])}

    def points_reach(self, tileset: str, selection: tuple, z: int, x: int, y: int, maxzoom: int,
                     fmt: str) -> bool:
        """Whether a point of the tileset shows in the tile or below it down to ``maxzoom``: lies in it (MVT),
        or its mark reaches into it (PNG; a mark is largest against the tiles at the first zoom it shows)."""
        for name in point_layers_of(tileset):
            layer = self.points(selection)[name]
            shown = layer.shown(maxzoom)
            if fmt == "mvt":
                hits, _ = geotiles.points_in(layer.world[shown], z, x, y)
            else:
                shrink = 2.0 ** (z - np.maximum(layer.min_zoom[shown], z))
                hits, _ = geotiles.marks_in(layer.world[shown], layer.boxes[shown] * shrink[:, None], z, x, y)
            if hits.size:
                return True
        return False

    def _point_layers(self, tileset, z, x, y, selection) -> list[tuple[str, np.ndarray, list[dict]]]:
        """(layer, tile-grid points, properties) of the tileset's point layers in the tile."""
        out = []
        for name in point_layers_of(tileset):
            layer = self.points(selection)[name]
            near = layer.within(z, x, y)
            if near.size:
                hits, grid = geotiles.points_in(layer.world[near], z, x, y)
                out.append((name, shapely.points(grid), [layer.properties[i] for i in near[hits]]))
        return out

    def _marks(self, tileset, z, x, y, selection) -> list[tuple[float, float, geotiles.Mark]]:
        """(x, y tile px, mark) of every label and place name whose box reaches into the tile: units first."""
        out = []
        for name in point_layers_of(tileset):
            layer = self.points(selection)[name]
            shown = layer.shown(z)
            hits, px = geotiles.marks_in(layer.world[shown], layer.boxes[shown], z, x, y)
            out += [(float(px_x), float(px_y), layer.marks[i]) for (px_x, px_y), i in zip(px, shown[hits], strict=True)]
        return out

    def check(self, tileset: str, z: int, x: int, y: int) -> None:
        """Refuse a tile outside the zoom range or the tile grid (TileOutside); inside, every tile is served
        (an empty one where the tileset has no data)."""
        check_tileset(tileset)
        check_tile(z, x, y)

    def windows(self, tileset: str, z: int, x: int, y: int, selection: tuple, parent: dict | None = None) -> dict:
        """Per layer of the tile: (its index, indices of the features ``selection`` keeps, their mercator
        parts in the tile's buffered box), cut from the ``parent`` tile's windows where it used the same
        geometry (a pyramid descends clipping ever smaller pieces)."""
        chosen = dict(selection)
        out = {}
        for lid in layers_of(tileset, z):
            index = self.index(lid, z)
            above = (parent or {}).get(lid)
            hits, parts = geotiles.window(index, z, x, y, parent=above[1:] if above and above[0] is index else None)
            if lid in chosen and not (above and above[0] is index):
                keep = np.isin(hits, chosen[lid])
                hits, parts = hits[keep], parts[keep]
            out[lid] = (index, hits, parts)
        return out

    def _cut(self, tileset: str, z: int, x: int, y: int, selection: tuple,
             windows: dict | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(layer id, feature indices, tile-grid geometries) of every layer of the tile."""
        windows = self.windows(tileset, z, x, y, selection) if windows is None else windows
        return [(lid, *geotiles.clip(index, z, x, y, cut=(hits, parts)))
                for lid, (index, hits, parts) in windows.items()]

    # --- tiles -----------------------------------------------------------------------------------

    def mvt(self, tileset: str, z: int, x: int, y: int, period=None) -> bytes:
        """The MVT tile (b"" when no feature touches it); raises TileOutside for tiles not served."""
        self.check(tileset, z, x, y)
        selection = self.selection(tileset, period or parse_datetime(None))
        return self._tiles.get_or_make(("mvt", tileset, z, x, y, selection),
                                       lambda: self._render_mvt(tileset, z, x, y, selection))

    def png(self, tileset: str, z: int, x: int, y: int, period=None, scale: int = 1) -> bytes:
        self.check(tileset, z, x, y)
        selection = self.selection(tileset, period or parse_datetime(None))
        return self._tiles.get_or_make(("png", tileset, z, x, y, selection, scale),
                                       lambda: self._render_png(tileset, z, x, y, selection, scale))

    def _render_mvt(self, tileset, z, x, y, selection, windows=None) -> bytes:
        layers = [(lid, geoms, [self._properties[lid][i] for i in hits])
                  for lid, hits, geoms in self._cut(tileset, z, x, y, selection, windows)]
        return geotiles.encode(layers + self._point_layers(tileset, z, x, y, selection))

    def _render_png(self, tileset, z, x, y, selection, scale, windows=None) -> bytes:
        cut = {lid: (hits, geoms) for lid, hits, geoms in self._cut(tileset, z, x, y, selection, windows)}
        order = [lid for lid in RASTER_ORDER if lid in cut] if tileset == ATLAS else list(cut)
        features = self.atlas.features
        layers = [(cut[lid][1], [style.feature_style(lid, features(lid)[i]["properties"]) for i in cut[lid][0]])
                  for lid in order]
        if tileset in DISPUTED_TILESETS and self._disputed is not None:
            hits, lines = geotiles.clip_lines(self._disputed, z, x, y)
            after = order.index("provinces") + 1 if "provinces" in order else len(order)
            layers.insert(after, (lines, [disputed.disputed_style()] * len(hits)))
        return geotiles.render(layers, background=style.BACKGROUND if tileset == ATLAS else None, scale=scale,
                               origin=(x * geotiles.TILE_SIZE, y * geotiles.TILE_SIZE),
                               marks=self._marks(tileset, z, x, y, selection))

    # --- metadata --------------------------------------------------------------------------------

    def tilejson(self, tileset: str, tiles_url: str, minzoom: int = MIN_ZOOM, maxzoom: int = MAX_ZOOM) -> dict:
        """TileJSON 3.0.0 of a vector tileset served at ``tiles_url`` (with {z}/{x}/{y})."""
        check_tileset(tileset)
        layer_ids = layers_of(tileset, MAX_ZOOM)
        claimed = any(catalogue.layer(lid).claimed for lid in layer_ids)
        west, south, east, north = self.bounds[tileset]
        pw, ps, pe, pn = self.atlas.pakistan_bounds
        return {
            "tilejson": "3.0.0",
            "name": "TTP atlas" if tileset == ATLAS else catalogue.layer(tileset).title,
            "description": ("Pakistan's civil geography and the TTP's claimed wilayahs, one MVT layer each, "
                            "with a point per unit label and per place name. "
                            if tileset == ATLAS else catalogue.layer(tileset).description + " ")
                           + (catalogue.CAVEAT if claimed else ""),
            "version": "1.0.0",
            "attribution": "; ".join(self.atlas.attribution(layer_ids)
                                     + ([places.GEONAMES_CREDIT] if PLACES in point_layers_of(tileset) else [])),
            "scheme": "xyz",
            "tiles": [tiles_url],
            "minzoom": minzoom,
            "maxzoom": maxzoom,
            "bounds": [round(v, 6) for v in (west, south, east, north)],
            "center": [round((pw + pe) / 2, 6), round((ps + pn) / 2, 6), 5],
            "vector_layers": [{"id": lid, "description": catalogue.layer(lid).title, "fields": TILE_FIELDS[lid],
                               "minzoom": max(minzoom, catalogue.layer(lid).min_zoom) if tileset == ATLAS else minzoom,
                               "maxzoom": maxzoom} for lid in layer_ids]
                             + [{"id": name, "description": POINT_TITLES[name], "fields": TILE_FIELDS[name],
                                 "minzoom": minzoom, "maxzoom": maxzoom} for name in point_layers_of(tileset)],
            "build_id": self.atlas.build_id,
        }


# --- the user's events ---------------------------------------------------------------------------

EVENTS_TILESET = "events"  # served only with an event file loaded (``layers.overlay``), cut live
EVENT_LAYER_IDS = tuple(layer.id for layer in catalogue.EVENT_LAYERS)
EVENT_FIELDS = {
    "events": {"id": "line-<n>", "line": "Line of the event file", "date": "Day (ISO date; absent for a range)",
               "month": "Month it counts in (YYYY-MM)", "fatalities": "Fatalities", "actor": "Actor",
               **{key: f"Join column {column}" for key, column in overlays.JOIN_KEYS.items()},
               "flag": "Why the row counts nowhere (absent when placed)"},
    **{overlays.COUNTS_PREFIX + lid: {
        "id": "<unit feature id>/<YYYY-MM>", "unit_id": f"The {lid} feature", "name": "Unit name",
        **({"label": "Unit label", "part": "core or extension", "zone": "north, south or absent"}
           if lid == LABELLED else {}),
        "month": "YYYY-MM", "events": "Events placed in the unit that month", "fatalities": "Their fatalities"}
       for lid in overlays.COUNT_LAYERS},
}


class EventTiles:
    """MVT tiles of an events overlay (``layers.overlay``): ``events``, a point per event, and per unit
    layer ``event-counts-<layer>``, a polygon per unit feature and month with events (the unit's geometry,
    generalised for the zoom as in the other tilesets). Every month, or one (``month``)."""

    def __init__(self, source: TileSource, overlay: overlays.Overlay):
        self.source, self.overlay = source, overlay
        self.points = geotiles.PointIndex(geotiles.world([f["geometry"]["coordinates"] for f in overlay.events]))
        self.points.warm(range(MIN_ZOOM, MAX_ZOOM + 1))  # before the workers fork: shared
        self.months = np.array([f["properties"]["month"] or "" for f in overlay.events], dtype=object)
        # per unit layer, feature position -> its count features' properties
        self.counts: dict[str, dict[int, list[dict]]] = {}
        for lid in overlays.COUNT_LAYERS:
            position = {f["id"]: i for i, f in enumerate(source.atlas.features(lid))}
            found: dict[int, list[dict]] = {}
            for feature in overlay.counts[lid]:
                found.setdefault(position[feature["properties"]["unit_id"]], []).append(feature["properties"])
            self.counts[lid] = found

    def check_month(self, month: str | None) -> str | None:
        """None (every month) or one of the overlay's months; ValueError saying which are valid."""
        return None if month is None else overlays.check_month(self.overlay, month)

    def mvt(self, z: int, x: int, y: int, month: str | None = None) -> bytes:
        """The tile (b"" when empty); TileOutside beyond the tile matrix, ValueError for a month not served."""
        check_tile(z, x, y)
        month = self.check_month(month)
        return self.source._tiles.get_or_make(("events", id(self), z, x, y, month),
                                              lambda: self._render(z, x, y, month))

    def _render(self, z: int, x: int, y: int, month: str | None) -> bytes:
        near = self.points.within(z, x, y)
        if month is not None:
            near = near[self.months[near] == month]
        hits, grid = geotiles.points_in(self.points.world[near], z, x, y)
        layers = [("events", shapely.points(grid), [self.overlay.events[i]["properties"] for i in near[hits]])]
        for lid in overlays.COUNT_LAYERS:
            index, counts = self.source.index(lid, z), self.counts[lid]
            hits, parts = geotiles.window(index, z, x, y)
            keep = np.array([any(month in (None, p["month"]) for p in counts.get(int(h), ())) for h in hits], dtype=bool)
            hits, geoms = geotiles.clip(index, z, x, y, cut=(hits[keep], parts[keep]))
            rows = [(geom, p) for h, geom in zip(hits, geoms, strict=True) for p in counts[int(h)]
                    if month in (None, p["month"])]
            layers.append((overlays.COUNTS_PREFIX + lid, np.array([g for g, _ in rows], dtype=object),
                           [p for _, p in rows]))
        return geotiles.encode(layers)

    def tilejson(self, tiles_url: str) -> dict:
        """TileJSON 3.0.0 of the event tiles served at ``tiles_url``."""
        pw, ps, pe, pn = self.source.atlas.pakistan_bounds
        return {
            "tilejson": "3.0.0", "name": f"Events: {self.overlay.source}",
            "description": "The loaded event file's events and their counts per claimed unit and district and month "
                           "(month= picks one). " + catalogue.CAVEAT,
            "version": "1.0.0",
            "attribution": "; ".join([*self.overlay.credits,
                                      *self.source.atlas.attribution(overlays.COUNT_LAYERS)]),
            "scheme": "xyz", "tiles": [tiles_url], "minzoom": MIN_ZOOM, "maxzoom": MAX_ZOOM,
            "bounds": [round(v, 6) for v in (pw, ps, pe, pn)],
            "center": [round((pw + pe) / 2, 6), round((ps + pn) / 2, 6), 5],
            "vector_layers": [{"id": layer.id, "description": layer.title, "fields": EVENT_FIELDS[layer.id],
                               "minzoom": MIN_ZOOM, "maxzoom": MAX_ZOOM} for layer in catalogue.EVENT_LAYERS],
            "build_id": self.source.atlas.build_id,
        }


# --- archives ----------------------------------------------------------------------------------

def check_range(minzoom: int, maxzoom: int) -> None:
    if not MIN_ZOOM <= minzoom <= maxzoom <= MAX_ZOOM:
        raise TileError(f"zoom range {minzoom}-{maxzoom} is invalid: need {MIN_ZOOM} <= minzoom <= maxzoom <= {MAX_ZOOM}")


FORMATS = ("mvt", "png")
PARALLEL_ZOOM = 7  # pyramids below this zoom are cut by worker processes, one subtree each


class _Cutter:
    """Cuts a pyramid by descending the tile tree from z0.

    Where every feature touching a tile contains it wholly (or none touches it), every tile below is cut
    the same: such a subtree is written as one tile per zoom with a run length (PMTiles deduplicates the
    bytes) instead of being cut tile by tile. PNG tiles of hatched layers are not shared (hatches run on
    across tile edges, so a filled tile differs from its neighbour).
    """

    def __init__(self, source: TileSource, tileset: str, minzoom: int, maxzoom: int, period, fmt: str,
                 bounds=None):
        self.source, self.tileset, self.minzoom, self.maxzoom, self.fmt = source, tileset, minzoom, maxzoom, fmt
        self.selection = source.selection(tileset, period)
        self.chosen = {lid: np.asarray(indices) for lid, indices in self.selection}
        self.bounds = bounds or source.pyramid_bounds[tileset]
        self.hatched = {lid for lid in catalogue.LAYER_IDS if fmt == "png" and any(
            cls.symbol.hatch for cls in style.LAYER_STYLES[lid].classes)}
        # per zoom, each layer's distinct generalised indexes from that zoom down (a tile shares its
        # cut with its subtree only if that holds at every level the subtree is cut from)
        self.levels = {z: [(lid, list({id(ix): ix for ix in (source.index(lid, d)
                                                                 for d in range(z, maxzoom + 1))}.values()))
                           for lid in layers_of(tileset, maxzoom)] for z in range(maxzoom + 1)}
        self.disputed = source._disputed if fmt == "png" and tileset in DISPUTED_TILESETS else None

    def render(self, z: int, x: int, y: int, windows: dict | None = None) -> bytes:
        """The tile as stored: gzip-compressed MVT or PNG; b"" when there is nothing to store."""
        if self.fmt == "png":
            return self.source._render_png(self.tileset, z, x, y, self.selection, 1, windows)
        data = self.source._render_mvt(self.tileset, z, x, y, self.selection, windows)
        return gzip.compress(data, compresslevel=6, mtime=0) if data else b""

    def uniform(self, z: int, x: int, y: int) -> str | None:
        """"empty" where no feature touches the tile at any level below, "full" where every one that
        does contains it, None where the subtree must be cut tile by tile."""
        touched = False
        for lid, indexes in self.levels[z]:
            for index in indexes:
                hits, contains = geotiles.cover(index, z, x, y)
                if lid in self.chosen:
                    contains = contains[np.isin(hits, self.chosen[lid])]
                if not contains.all() or (contains.size and lid in self.hatched):
                    return None
                touched = touched or contains.size > 0
        if self.disputed is not None and geotiles.cover(self.disputed, z, x, y)[0].size:
            return None
        if self.source.points_reach(self.tileset, self.selection, z, x, y, self.maxzoom, self.fmt):
            return None
        return "full" if touched else "empty"

    def walk(self, z: int, x: int, y: int, shared: bool = False, roots: list | None = None,
             parent: dict | None = None):
        """(tile id, run length, bytes) of the tile's subtree; with ``roots``, subtrees at PARALLEL_ZOOM
        that must be cut tile by tile are appended there instead. ``parent``: the parent tile's windows."""
        if not shared:
            uniform = self.uniform(z, x, y)
            if uniform == "empty" and (self.fmt == "mvt" or self.tileset != ATLAS):
                return  # nothing below (the atlas's PNG draws the sea: one shared tile)
            shared = uniform is not None
        if not shared and roots is not None and z == PARALLEL_ZOOM:
            roots.append((z, x, y))
            return
        if shared and geotiles.inside(self.bounds, z, x, y):
            for zoom in range(max(z, self.minzoom), self.maxzoom + 1):
                first, count = geotiles.subtree(z, x, y, zoom)
                data = self.render(*tileid_to_zxy(first))
                if data:
                    yield first, count, data
            return
        windows = None if shared else self.source.windows(self.tileset, z, x, y, self.selection, parent)
        if z >= self.minzoom:
            data = self.render(z, x, y, windows)
            if data:
                yield zxy_to_tileid(z, x, y), 1, data
        if z < self.maxzoom:
            for cx, cy in ((2 * x, 2 * y), (2 * x + 1, 2 * y), (2 * x, 2 * y + 1), (2 * x + 1, 2 * y + 1)):
                if geotiles.touches(self.bounds, z + 1, cx, cy):
                    yield from self.walk(z + 1, cx, cy, shared, roots, windows)


_CUTTER: _Cutter | None = None  # set before the worker processes fork: they share the loaded atlas


def _cut_subtree(root: tuple[int, int, int]) -> list[tuple[int, int, bytes]]:
    return list(_CUTTER.walk(*root))


def workers_available() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def pyramid(source: TileSource, tileset: str, minzoom: int, maxzoom: int, period, fmt: str = "mvt",
            workers: int | None = None, bounds=None) -> list[tuple[int, int, bytes]]:
    """(tile id, run length, stored bytes) of every non-empty tile of the range over ``bounds`` (default:
    the tileset's ``pyramid_bounds``), in PMTiles tile-id order: a run is that many consecutive tile ids
    with the same bytes. Subtrees from PARALLEL_ZOOM are cut by ``workers`` forked processes (default: every core)."""
    global _CUTTER
    check_tileset(tileset)
    check_range(minzoom, maxzoom)
    if fmt not in FORMATS:
        raise TileError(f"format {fmt!r} is invalid; valid: {', '.join(FORMATS)}")
    cutter = _Cutter(source, tileset, minzoom, maxzoom, period, fmt, bounds)
    roots: list[tuple[int, int, int]] = []
    runs = list(cutter.walk(0, 0, 0, roots=roots))
    workers = workers or workers_available()
    if workers > 1 and len(roots) > 1:
        _CUTTER = cutter
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                for part in pool.map(_cut_subtree, roots):
                    runs += part
        finally:
            _CUTTER = None
    else:
        for root in roots:
            runs += cutter.walk(*root)
    runs.sort(key=lambda run: run[0])
    return runs


def write_archive(source: TileSource, path: Path, tileset: str = ATLAS, minzoom: int = MIN_ZOOM,
                  maxzoom: int = MAX_ZOOM, period=None, fmt: str = "mvt", workers: int | None = None,
                  bounds=None) -> dict:
    """Write the pyramid to ``path`` (.pmtiles or .mbtiles; gzip-compressed MVT or PNG), atomically.

    Empty tiles are left out, as tippecanoe does; readers treat a missing tile as empty. Identical
    tiles are stored once (PMTiles: one offset, run-length entries; MBTiles: tippecanoe's map/images
    tables under a ``tiles`` view).
    """
    path = Path(path)
    if path.suffix not in ARCHIVE_SUFFIXES:
        raise TileError(f"archive {path} must end in {' or '.join(ARCHIVE_SUFFIXES)}")
    period = period or parse_datetime(None)
    bounds = bounds or source.pyramid_bounds[tileset]
    runs = pyramid(source, tileset, minzoom, maxzoom, period, fmt, workers, bounds)
    if not runs:
        raise TileError("no tile in the range has any feature: nothing to write")
    meta = source.tilejson(tileset, "", minzoom, maxzoom)
    meta.pop("tiles")
    meta["bounds"] = [round(v, 6) for v in bounds]
    meta["ttp_atlas"] = {"tileset": tileset, "datetime": list(period), "build_id": source.atlas.build_id,
                         "format": fmt}
    with staged_file(path) as tmp:
        (_write_pmtiles if path.suffix == ".pmtiles" else _write_mbtiles)(tmp, runs, meta, fmt)
    return {"path": str(path), "tileset": tileset, "minzoom": minzoom, "maxzoom": maxzoom, "format": fmt,
            "tiles": sum(count for _, count, _ in runs), "contents": len({data for _, _, data in runs}),
            "bytes": path.stat().st_size}


def _write_pmtiles(path: Path, runs, meta: dict, fmt: str) -> None:
    with open(path, "wb") as handle:
        writer = Writer(handle)
        for tileid, count, data in runs:
            for offset in range(count):  # the writer merges consecutive equal tiles into one run entry
                writer.write_tile(tileid + offset, data)
        west, south, east, north = meta["bounds"]
        e7 = lambda v: round(v * 1e7)
        writer.finalize({
            "tile_type": TileType.PNG if fmt == "png" else TileType.MVT,
            "tile_compression": Compression.NONE if fmt == "png" else Compression.GZIP,
            "min_lon_e7": e7(west), "min_lat_e7": e7(south), "max_lon_e7": e7(east), "max_lat_e7": e7(north),
            "center_zoom": meta["center"][2], "center_lon_e7": e7(meta["center"][0]),
            "center_lat_e7": e7(meta["center"][1])}, meta)


def _write_mbtiles(path: Path, runs, meta: dict, fmt: str) -> None:
    with sqlite3.connect(path) as db:
        db.executescript("CREATE TABLE metadata (name TEXT, value TEXT);"
                         "CREATE TABLE images (tile_id INTEGER PRIMARY KEY, tile_data BLOB);"
                         "CREATE TABLE map (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, "
                         "tile_id INTEGER);"
                         "CREATE UNIQUE INDEX map_index ON map (zoom_level, tile_column, tile_row);"
                         "CREATE VIEW tiles AS SELECT zoom_level, tile_column, tile_row, tile_data "
                         "FROM map JOIN images ON images.tile_id = map.tile_id;")
        images: dict[bytes, int] = {}  # each distinct tile once
        for _, _, data in runs:
            images.setdefault(data, len(images))
        db.executemany("INSERT INTO images VALUES (?, ?)", ((number, data) for data, number in images.items()))
        db.executemany("INSERT INTO map VALUES (?, ?, ?, ?)", (
            (z, x, (1 << z) - 1 - y, images[data])
            for tileid, count, data in runs for z, x, y in map(tileid_to_zxy, range(tileid, tileid + count))))
        rows = {"name": meta["name"], "format": "png" if fmt == "png" else "pbf", "type": "overlay",
                "version": meta["version"], "description": meta["description"], "attribution": meta["attribution"],
                "minzoom": str(meta["minzoom"]), "maxzoom": str(meta["maxzoom"]),
                "bounds": ",".join(map(str, meta["bounds"])), "center": ",".join(map(str, meta["center"])),
                "json": json.dumps({"vector_layers": meta["vector_layers"], "ttp_atlas": meta["ttp_atlas"]})}
        db.executemany("INSERT INTO metadata VALUES (?, ?)", rows.items())
    db.close()


class Archive:
    """A PMTiles or MBTiles archive written by ``write_archive``, read tile by tile (raw MVT or PNG bytes)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file() or self.path.suffix not in ARCHIVE_SUFFIXES:
            raise TileError(f"tile archive {self.path} is not a .pmtiles or .mbtiles file")
        if self.path.suffix == ".pmtiles":
            self._handle = open(self.path, "rb")  # noqa: SIM115 - held open for the mmap while serving
            self._reader = Reader(MmapSource(self._handle))
            self.metadata = self._reader.metadata()
        else:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            rows = dict(self._db.execute("SELECT name, value FROM metadata"))
            self.metadata = {**json.loads(rows["json"]), "minzoom": int(rows["minzoom"]),
                             "maxzoom": int(rows["maxzoom"]), "bounds": [float(v) for v in rows["bounds"].split(",")]}
        self.tileset = self.metadata["ttp_atlas"]["tileset"]
        self.format = self.metadata["ttp_atlas"].get("format", "mvt")
        self.minzoom, self.maxzoom = self.metadata["minzoom"], self.metadata["maxzoom"]
        self.bounds = tuple(self.metadata["bounds"])

    def covers(self, z: int, x: int, y: int) -> bool:
        """Whether the archive holds the tile's MVT pyramid (its zooms and bounds): elsewhere, cut it live."""
        return self.format == "mvt" and self.minzoom <= z <= self.maxzoom and geotiles.touches(self.bounds, z, x, y)

    def get(self, z: int, x: int, y: int) -> bytes:
        """The tile's MVT (or PNG) bytes, b"" when the archive has none (an empty tile)."""
        if self.path.suffix == ".pmtiles":
            data = self._reader.get(z, x, y)
        else:
            row = self._db.execute("SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
                                   (z, x, (1 << z) - 1 - y)).fetchone()
            data = row[0] if row else None
        if not data:
            return b""
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data  # MVT is stored gzipped, PNG as is
