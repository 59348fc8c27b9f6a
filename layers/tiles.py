"""Tilesets of the atlas: each layer alone and the combined ``atlas``, as MVT and styled PNG tiles,
their TileJSON, and the whole pyramid written to (and read back from) PMTiles or MBTiles archives.

What a tile carries is decided here (layers per zoom, properties, the wilayah period); how a tile is
cut, encoded and drawn is ``geo.tiles``. Knows nothing of HTTP.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import sqlite3
from functools import lru_cache
from pathlib import Path

import numpy as np
from pmtiles.reader import MmapSource, Reader
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

from geo import tiles as geotiles
from geo.atomic import staged_file
from layers import catalogue, disputed, features, style

MIN_ZOOM, MAX_ZOOM = 0, 14
ATLAS = "atlas"
TILESETS: tuple[str, ...] = (ATLAS, *catalogue.LAYER_IDS)
ARCHIVE_SUFFIXES = (".pmtiles", ".mbtiles")
MVT_MIMETYPE = geotiles.MVT_MIMETYPE
CACHE_SIZE = 4096  # rendered tiles kept per process (a few hundred KB at most each)

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
                 "zone": "north, south or absent (not reported)", "part": "core or extension",
                 "valid_from": "First day of the period (ISO date)",
                 "valid_to": "Last day of the period (absent while current)", "status": "Always 'claimed'",
                 "confidence": "high, medium or low", "basis": "How the districts were chosen",
                 "caveat": "Claimed units, not areas of control"},
    "zones": {"id": "Feature id", "name": "Zone", "zone": "north or south", "valid_from": "First day (ISO date)",
              "valid_to": "Last day (absent while current)", "status": "Always 'claimed'",
              "confidence": "Lowest confidence of its units", "caveat": "Claimed units, not areas of control"},
}

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


def layers_of(tileset: str, zoom: int) -> tuple[str, ...]:
    """The layers a tileset's tile carries at ``zoom`` (the atlas adds each layer from its min_zoom)."""
    if tileset != ATLAS:
        return (tileset,)
    return tuple(lid for lid in catalogue.LAYER_IDS if zoom >= catalogue.layer(lid).min_zoom)


def tile_properties(layer_id: str, properties: dict) -> dict:
    return {k: properties[k] for k in TILE_FIELDS[layer_id] if properties.get(k) is not None}


CONTEXT_MARGIN = 10.0  # degrees of neighbouring land around Pakistan in a countries tile archive


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

    def __init__(self, atlas, cache_size: int = CACHE_SIZE):
        self.atlas = atlas
        self.bounds = {tileset: tileset_bounds(atlas, tileset) for tileset in TILESETS}
        self.pyramid_bounds = {tileset: pyramid_bounds(atlas, tileset) for tileset in TILESETS}
        self._indexes: dict[int, tuple[np.ndarray, geotiles.Index]] = {}
        self._properties = {lid: [tile_properties(lid, f["properties"]) for f in atlas.features(lid)]
                            for lid in catalogue.LAYER_IDS}
        lines = [geom for _, geom in disputed.disputed_lines(atlas)]
        self._disputed = geotiles.index(np.array(lines, dtype=object)) if lines else None
        self.selection = lru_cache(maxsize=256)(self._select)
        self._mvt = lru_cache(maxsize=cache_size)(self._render_mvt)
        self._png = lru_cache(maxsize=cache_size)(self._render_png)

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

    def check(self, tileset: str, z: int, x: int, y: int) -> None:
        """Refuse a tile outside the zoom range or the tile grid (TileOutside); inside, every tile is served
        (an empty one where the tileset has no data)."""
        check_tileset(tileset)
        if not MIN_ZOOM <= z <= MAX_ZOOM:
            raise TileOutside(f"zoom {z} is outside the tileset's range {MIN_ZOOM}-{MAX_ZOOM}")
        if not geotiles.valid_tile(z, x, y):
            raise TileOutside(f"tile {z}/{x}/{y} is outside the tile grid (x and y from 0 to {2 ** z - 1})")

    def _cut(self, tileset: str, z: int, x: int, y: int, selection: tuple) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(layer id, feature indices, tile-grid geometries) of every layer of the tile."""
        chosen = dict(selection)
        cut = []
        for lid in layers_of(tileset, z):
            hits, geoms = geotiles.clip(self.index(lid, z), z, x, y)
            if lid in chosen:
                keep = np.isin(hits, chosen[lid])
                hits, geoms = hits[keep], geoms[keep]
            cut.append((lid, hits, geoms))
        return cut

    # --- tiles -----------------------------------------------------------------------------------

    def mvt(self, tileset: str, z: int, x: int, y: int, period=None) -> bytes:
        """The MVT tile (b"" when no feature touches it); raises TileOutside for tiles not served."""
        self.check(tileset, z, x, y)
        return self._mvt(tileset, z, x, y, self.selection(tileset, period or parse_datetime(None)))

    def png(self, tileset: str, z: int, x: int, y: int, period=None, scale: int = 1) -> bytes:
        self.check(tileset, z, x, y)
        return self._png(tileset, z, x, y, self.selection(tileset, period or parse_datetime(None)), scale)

    def _render_mvt(self, tileset, z, x, y, selection) -> bytes:
        layers = [(lid, geoms, [self._properties[lid][i] for i in hits])
                  for lid, hits, geoms in self._cut(tileset, z, x, y, selection)]
        return geotiles.encode(layers)

    def _render_png(self, tileset, z, x, y, selection, scale) -> bytes:
        cut = {lid: (hits, geoms) for lid, hits, geoms in self._cut(tileset, z, x, y, selection)}
        order = [lid for lid in RASTER_ORDER if lid in cut] if tileset == ATLAS else list(cut)
        features = self.atlas.features
        layers = [(cut[lid][1], [style.feature_style(lid, features(lid)[i]["properties"]) for i in cut[lid][0]])
                  for lid in order]
        if tileset in DISPUTED_TILESETS and self._disputed is not None:
            hits, lines = geotiles.clip_lines(self._disputed, z, x, y)
            after = order.index("provinces") + 1 if "provinces" in order else len(order)
            layers.insert(after, (lines, [disputed.disputed_style()] * len(hits)))
        return geotiles.render(layers, background=style.BACKGROUND if tileset == ATLAS else None, scale=scale,
                               origin=(x * geotiles.TILE_SIZE, y * geotiles.TILE_SIZE))

    def cache_clear(self) -> None:
        self._mvt.cache_clear()
        self._png.cache_clear()

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
            "description": ("Pakistan's civil geography and the TTP's claimed wilayahs, one MVT layer each. "
                            if tileset == ATLAS else catalogue.layer(tileset).description + " ")
                           + (catalogue.CAVEAT if claimed else ""),
            "version": "1.0.0",
            "attribution": "; ".join(self.atlas.attribution(layer_ids)),
            "scheme": "xyz",
            "tiles": [tiles_url],
            "minzoom": minzoom,
            "maxzoom": maxzoom,
            "bounds": [round(v, 6) for v in (west, south, east, north)],
            "center": [round((pw + pe) / 2, 6), round((ps + pn) / 2, 6), 5],
            "vector_layers": [{"id": lid, "description": catalogue.layer(lid).title, "fields": TILE_FIELDS[lid],
                               "minzoom": max(minzoom, catalogue.layer(lid).min_zoom) if tileset == ATLAS else minzoom,
                               "maxzoom": maxzoom} for lid in layer_ids],
            "build_id": self.atlas.build_id,
        }


# --- archives ----------------------------------------------------------------------------------

def check_range(minzoom: int, maxzoom: int) -> None:
    if not MIN_ZOOM <= minzoom <= maxzoom <= MAX_ZOOM:
        raise TileError(f"zoom range {minzoom}-{maxzoom} is invalid: need {MIN_ZOOM} <= minzoom <= maxzoom <= {MAX_ZOOM}")


def pyramid(source: TileSource, tileset: str, minzoom: int, maxzoom: int, period):
    """(z, x, y, MVT bytes) of every non-empty tile of the range over the tileset's ``pyramid_bounds``, in
    PMTiles tile-id order, uncached."""
    check_tileset(tileset)
    check_range(minzoom, maxzoom)
    selection = source.selection(tileset, period)
    for zoom in range(minzoom, maxzoom + 1):
        for z, x, y in sorted(geotiles.tiles_over(source.pyramid_bounds[tileset], zoom),
                              key=lambda t: zxy_to_tileid(*t)):
            data = source._render_mvt(tileset, z, x, y, selection)
            if data:
                yield z, x, y, data


def write_archive(source: TileSource, path: Path, tileset: str = ATLAS, minzoom: int = MIN_ZOOM,
                  maxzoom: int = MAX_ZOOM, period=None) -> dict:
    """Write the pyramid to ``path`` (.pmtiles or .mbtiles, gzip-compressed MVT), atomically.

    Empty tiles are left out, as tippecanoe does; readers treat a missing tile as empty.
    """
    path = Path(path)
    if path.suffix not in ARCHIVE_SUFFIXES:
        raise TileError(f"archive {path} must end in {' or '.join(ARCHIVE_SUFFIXES)}")
    period = period or parse_datetime(None)
    tiles = pyramid(source, tileset, minzoom, maxzoom, period)
    meta = source.tilejson(tileset, "", minzoom, maxzoom)
    meta.pop("tiles")
    meta["bounds"] = [round(v, 6) for v in source.pyramid_bounds[tileset]]
    meta["ttp_atlas"] = {"tileset": tileset, "datetime": list(period), "build_id": source.atlas.build_id}
    stats = {"tiles": 0, "bytes": 0}
    with staged_file(path) as tmp:
        (_write_pmtiles if path.suffix == ".pmtiles" else _write_mbtiles)(tmp, _compressed(tiles, stats), meta)
    return {"path": str(path), "tileset": tileset, "minzoom": minzoom, "maxzoom": maxzoom, **stats}


def _compressed(tiles, stats: dict):
    """Gzip each tile, as archives store MVT, counting into ``stats``; an empty pyramid is refused."""
    for z, x, y, data in tiles:
        payload = gzip.compress(data, compresslevel=6, mtime=0)
        stats["tiles"] += 1
        stats["bytes"] += len(payload)
        yield z, x, y, payload
    if not stats["tiles"]:
        raise TileError("no tile in the range has any feature: nothing to write")


def _write_pmtiles(path: Path, tiles, meta: dict) -> None:
    with open(path, "wb") as handle:
        writer = Writer(handle)
        for z, x, y, payload in tiles:
            writer.write_tile(zxy_to_tileid(z, x, y), payload)
        west, south, east, north = meta["bounds"]
        e7 = lambda v: round(v * 1e7)
        writer.finalize({
            "tile_type": TileType.MVT, "tile_compression": Compression.GZIP,
            "min_lon_e7": e7(west), "min_lat_e7": e7(south), "max_lon_e7": e7(east), "max_lat_e7": e7(north),
            "center_zoom": meta["center"][2], "center_lon_e7": e7(meta["center"][0]),
            "center_lat_e7": e7(meta["center"][1])}, meta)


def _write_mbtiles(path: Path, tiles, meta: dict) -> None:
    with sqlite3.connect(path) as db:
        db.executescript("CREATE TABLE metadata (name TEXT, value TEXT);"
                         "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);"
                         "CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);")
        db.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)",
                       ((z, x, (1 << z) - 1 - y, payload) for z, x, y, payload in tiles))
        rows = {"name": meta["name"], "format": "pbf", "type": "overlay", "version": meta["version"],
                "description": meta["description"], "attribution": meta["attribution"],
                "minzoom": str(meta["minzoom"]), "maxzoom": str(meta["maxzoom"]),
                "bounds": ",".join(map(str, meta["bounds"])), "center": ",".join(map(str, meta["center"])),
                "json": json.dumps({"vector_layers": meta["vector_layers"], "ttp_atlas": meta["ttp_atlas"]})}
        db.executemany("INSERT INTO metadata VALUES (?, ?)", rows.items())
    db.close()


class Archive:
    """A PMTiles or MBTiles archive written by ``write_archive``, read tile by tile (raw MVT bytes)."""

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
        self.minzoom, self.maxzoom = self.metadata["minzoom"], self.metadata["maxzoom"]
        self.bounds = tuple(self.metadata["bounds"])

    def covers(self, z: int, x: int, y: int) -> bool:
        """Whether the archive holds the tile's pyramid (its zooms and bounds): elsewhere, cut it live."""
        return self.minzoom <= z <= self.maxzoom and geotiles.touches(self.bounds, z, x, y)

    def get(self, z: int, x: int, y: int) -> bytes:
        """The tile's MVT bytes, b"" when the archive has none (an empty tile)."""
        if self.path.suffix == ".pmtiles":
            data = self._reader.get(z, x, y)
        else:
            row = self._db.execute("SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
                                   (z, x, (1 << z) - 1 - y)).fetchone()
            data = row[0] if row else None
        return gzip.decompress(data) if data else b""
