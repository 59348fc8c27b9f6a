"""XYZ tiles: ``/tiles/{tileset}/{z}/{x}/{y}.mvt|.png|@2x.png``, ``/tiles/{tileset}.json`` (TileJSON 3.0.0),
``/tiles/events/{z}/{x}/{y}.mvt?month=`` while an event file is loaded, and ``ttp-atlas tiles`` to write the
pyramid to a PMTiles or MBTiles archive.

A tile outside the zoom range (0-14) or the tile grid is a 404; every tile inside is served, one
with no feature is a 204 for MVT (the client draws nothing) and a transparent or background-only
PNG. With ``TTP_ATLAS_TILES_ARCHIVE`` set to an archive written by ``ttp-atlas tiles``, MVT tiles of
that archive's tileset, zooms and bounds without ``datetime`` are read from it; others are cut live.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlencode

from flask import Blueprint, current_app, request

from layers import catalogue, store
from layers import features as layer_features
from layers import overlay as overlays
from layers import tiles as layer_tiles
from server import openapi as oas
from server.http import (
    Problem,
    bad_parameter,
    base_url,
    etag_of,
    json_response,
    not_found,
    params,
    respond,
)

ARCHIVE_ENV = "TTP_ATLAS_TILES_ARCHIVE"
TILE_NAME = re.compile(r"^(?P<y>[^/]+?)(?P<suffix>\.mvt|@2x\.png|\.png)$")  # a bad y is a 400, not a 404
FORMATS = {".mvt": ("mvt", 1), ".png": ("png", 1), "@2x.png": ("png", 2)}
MAX_COORDINATE = 2 ** layer_tiles.MAX_ZOOM - 1

blueprint = Blueprint("tiles", __name__)


_SOURCES: dict[int, tuple] = {}  # id(atlas) -> (atlas, TileSource): apps on one atlas share indexes and cache


@blueprint.record_once
def _attach(state) -> None:
    """The atlas's TileSource (indexes built now, before gunicorn forks the workers) and the archive."""
    atlas = state.app.extensions["atlas"]
    if id(atlas) not in _SOURCES:
        source = layer_tiles.TileSource(atlas)
        source.warm()
        _SOURCES[id(atlas)] = (atlas, source)
    archive = os.environ.get(ARCHIVE_ENV)
    source = _SOURCES[id(atlas)][1]
    state.app.extensions["tiles"] = (source, layer_tiles.Archive(Path(archive)) if archive else None)
    events = state.app.extensions.get("overlay")
    state.app.extensions["event_tiles"] = layer_tiles.EventTiles(source, events) if events else None


def _event_tiles() -> layer_tiles.EventTiles:
    """The event tiles of the loaded event file; a 404 problem when the server has none."""
    found = current_app.extensions["event_tiles"]
    if found is None:
        raise Problem(404, "Not found", f"tileset {layer_tiles.EVENTS_TILESET!r} needs an event file: start the "
                      "server with --events FILE (or TTP_ATLAS_EVENTS)")
    return found


def _coordinate(name: str, raw: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise bad_parameter(name, raw, "a non-negative integer tile coordinate (z from 0 to 14, x and y from 0 to 2^z-1)")
    return int(raw)


def _raw_path() -> str:
    """The path as the client sent it, before percent-decoding (gunicorn: RAW_URI, werkzeug: REQUEST_URI)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
    return raw.split("?", 1)[0]


def _period(args: dict) -> tuple[str | None, str | None]:
    """The RFC 3339 instant or interval, read as the features API reads it; today when absent."""
    try:
        return layer_tiles.parse_datetime(args.get("datetime"))
    except layer_features.QueryError as error:
        raise bad_parameter("datetime", error.value, error.valid) from None


@blueprint.get("/tiles/<tileset>/<z>/<x>/<name>")
def tile(tileset: str, z: str, x: str, name: str):
    events = tileset == layer_tiles.EVENTS_TILESET
    args = params(["month"] if events else ["datetime"])
    match = TILE_NAME.match(name)
    if not match:
        raise not_found(f"tile {name!r}: name tiles {{y}}.mvt, {{y}}.png or {{y}}@2x.png")
    zoom, col, row = _coordinate("z", z), _coordinate("x", x), _coordinate("y", match["y"])
    if zoom > layer_tiles.MAX_ZOOM:
        raise Problem(404, "Not found", f"zoom {zoom} is outside the served range "
                      f"{layer_tiles.MIN_ZOOM}-{layer_tiles.MAX_ZOOM}")
    for axis, value in (("x", col), ("y", row)):
        if value >= 2 ** zoom:
            raise bad_parameter(axis, value, f"at zoom {zoom}, {axis} is an integer from 0 to {2 ** zoom - 1}")
    canonical = f"/tiles/{tileset}/{zoom}/{col}/{row}{match['suffix']}"
    if _raw_path() != canonical:
        raise Problem(404, "Not found", f"tile paths are written one way only: {canonical}")
    kind, scale = FORMATS[match["suffix"]]
    if events:
        return _event_tile(zoom, col, row, kind, args.get("month"))
    source, archive = current_app.extensions["tiles"]
    period = _period(args)
    try:
        if kind == "png":
            body = source.png(tileset, zoom, col, row, period, scale)
            return respond(body, "image/png", etag=etag_of(body))
        if archive and "datetime" not in args and archive.tileset == tileset and archive.covers(zoom, col, row):
            source.check(tileset, zoom, col, row)
            body = archive.get(zoom, col, row)
        else:
            body = source.mvt(tileset, zoom, col, row, period)
    except layer_tiles.TileOutside as error:
        raise Problem(404, "Not found", str(error), valid=list(layer_tiles.TILESETS)) from None
    if not body:
        return respond(b"", layer_tiles.MVT_MIMETYPE, status=204)
    return respond(body, layer_tiles.MVT_MIMETYPE, etag=etag_of(body))


def _event_tile(z: int, x: int, y: int, kind: str, month: str | None):
    """An MVT tile of the events (a 404 for PNG: the events are drawn by the client, over the atlas)."""
    tiles = _event_tiles()
    if kind != "mvt":
        raise Problem(404, "Not found", f"tileset {layer_tiles.EVENTS_TILESET!r} is served as .mvt only")
    try:
        body = tiles.mvt(z, x, y, month)
    except layer_tiles.TileOutside as error:
        raise Problem(404, "Not found", str(error)) from None
    except ValueError as error:
        raise bad_parameter("month", month, str(error)) from None
    if not body:
        return respond(b"", layer_tiles.MVT_MIMETYPE, status=204)
    return respond(body, layer_tiles.MVT_MIMETYPE, etag=etag_of(body))


@blueprint.get("/tiles/<tileset>.json")
def tilejson(tileset: str):
    if tileset == layer_tiles.EVENTS_TILESET:
        args = params(["month"])
        tiles = _event_tiles()
        try:
            tiles.check_month(args.get("month"))
        except ValueError as error:
            raise bad_parameter("month", args.get("month"), str(error)) from None
        query = f"?{urlencode({'month': args['month']})}" if "month" in args else ""
        return json_response(tiles.tilejson(f"{base_url()}/tiles/{tileset}/{{z}}/{{x}}/{{y}}.mvt{query}"))
    args = params(["datetime"])
    period = _period(args)
    source, _ = current_app.extensions["tiles"]
    if tileset not in layer_tiles.TILESETS:
        raise not_found(f"tileset {tileset!r}", layer_tiles.TILESETS)
    query = f"?{urlencode({'datetime': args['datetime']})}" if "datetime" in args else ""
    url = f"{base_url()}/tiles/{tileset}/{{z}}/{{x}}/{{y}}.mvt{query}"
    document = source.tilejson(tileset, url)
    document["ttp_atlas"] = {"datetime": list(period), "png": url.replace(".mvt", ".png"),
                             "png@2x": url.replace(".mvt", "@2x.png")}
    return json_response(document)


# --- OpenAPI -------------------------------------------------------------------------------------

DATETIME_PARAM = oas.query(
    "datetime", {"type": "string", "pattern": layer_features.DATETIME_PATTERN},
    "Claimed units valid at this RFC 3339 instant, or during this interval start/end ('..' or nothing for an "
    "open end); default: today. Civil layers are undated.", example="2023-07-01")
TILE_SUFFIXES = {".mvt": (layer_tiles.MVT_MIMETYPE, "Mapbox Vector Tile: one layer per catalogue layer"),
                 ".png": ("image/png", "256 px PNG tile drawn with the atlas styles"),
                 "@2x.png": ("image/png", "512 px PNG tile for high-density screens")}
TILESET_PARAM = oas.param("tileset", "path", {"type": "string", "enum": list(layer_tiles.TILESETS)},
                          f"'{layer_tiles.ATLAS}' (every layer) or one layer of the catalogue.")


def _tile_parameters() -> list[dict]:
    coordinate = {"type": "integer", "minimum": 0, "maximum": MAX_COORDINATE}
    return [TILESET_PARAM,
            oas.param("z", "path", {"type": "integer", "minimum": layer_tiles.MIN_ZOOM,
                                    "maximum": layer_tiles.MAX_ZOOM},
                      f"Zoom level; another zoom is a 404 (served: {layer_tiles.MIN_ZOOM}-{layer_tiles.MAX_ZOOM})."),
            oas.param("x", "path", coordinate, "Tile column, from 0 to 2^z-1 (a 400 beyond it)."),
            oas.param("y", "path", coordinate, "Tile row from the north (XYZ), from 0 to 2^z-1 (a 400 beyond it)."),
            DATETIME_PARAM]


def _tile_operation(suffix: str) -> dict:
    mimetype, what = TILE_SUFFIXES[suffix]
    path = oas.operation(
        what, "Tiles", _tile_parameters(), oas.content({"type": "string", "format": "binary"}, mimetype),
        description="A tile outside zooms 0-14 or the tile grid is a 404; every other tile is served, empty "
                    "where the tileset has no data; a tileset other than the atlas is a transparent overlay. " + catalogue.CAVEAT,
        op_id=f"getTile{suffix.replace('@2x', '2x').replace('.', '-')}")
    if mimetype == layer_tiles.MVT_MIMETYPE:
        path["get"]["responses"]["204"] = {"description": "No feature touches the tile: draw nothing"}
    return path


def tilejson_schema() -> dict:
    text, number = {"type": "string"}, {"type": "number"}
    zoom = {"type": "integer", "minimum": layer_tiles.MIN_ZOOM, "maximum": layer_tiles.MAX_ZOOM}
    layer = {"type": "object", "required": ["id", "fields"], "properties": {
        "id": {"type": "string", "enum": [*catalogue.LAYER_IDS, *layer_tiles.POINT_LAYER_IDS,
                                          *layer_tiles.EVENT_LAYER_IDS]}, "description": text,
        "fields": {"type": "object", "additionalProperties": text}, "minzoom": zoom, "maxzoom": zoom}}
    return {"type": "object", "required": ["tilejson", "tiles", "vector_layers"], "properties": {
        "tilejson": {"type": "string", "enum": ["3.0.0"]}, "name": text, "description": text, "version": text,
        "attribution": text, "scheme": {"type": "string", "enum": ["xyz"]},
        "tiles": {"type": "array", "minItems": 1, "items": text}, "minzoom": zoom, "maxzoom": zoom,
        "bounds": {"type": "array", "minItems": 4, "maxItems": 4, "items": number},
        "center": {"type": "array", "minItems": 3, "maxItems": 3, "items": number},
        "vector_layers": {"type": "array", "minItems": 1, "items": layer}, "build_id": text,
        "ttp_atlas": {"type": "object", "properties": {
            "datetime": {"type": "array", "minItems": 2, "maxItems": 2, "items": {**text, "nullable": True}},
            "png": text, "png@2x": text}}}}


MONTH_PARAM = oas.query("month", {"type": "string", "pattern": overlays.MONTH_PATTERN},
                        "One month of the event file (YYYY-MM, from its first to its last placed event); default: "
                        "every month.", example="2023-07")


def _event_paths() -> dict:
    """The event tiles, in the document while an event file is loaded (as its collections are)."""
    tile = _tile_operation(".mvt")
    tile["get"].update(
        summary="Mapbox Vector Tile of the loaded event file: layers " + ", ".join(layer_tiles.EVENT_LAYER_IDS),
        parameters=[*_tile_parameters()[1:4], MONTH_PARAM], operationId="getEventTile",
        description="events: a point per event (month, fatalities, the units it fell in); event-counts-wilayahs "
                    "and event-counts-districts: a polygon per unit and month with events (month, events, "
                    "fatalities). " + catalogue.CAVEAT)
    return {f"/tiles/{layer_tiles.EVENTS_TILESET}/{{z}}/{{x}}/{{y}}.mvt": tile,
            f"/tiles/{layer_tiles.EVENTS_TILESET}.json": oas.operation(
                "TileJSON 3.0.0 of the event tiles", "Tiles", [MONTH_PARAM],
                oas.content(oas.ref("schemas", "TileJSON"), oas.JSON), op_id="getEventTileJSON")}


def openapi(ctx: oas.ApiContext) -> dict:
    """The tile URLs (one path per suffix: a path template cannot offer three suffixes) and TileJSON; the
    event tiles while an event file is loaded."""
    paths = {f"/tiles/{{tileset}}/{{z}}/{{x}}/{{y}}{suffix}": _tile_operation(suffix) for suffix in TILE_SUFFIXES}
    paths["/tiles/{tileset}.json"] = oas.operation(
        "TileJSON 3.0.0 of a vector tileset", "Tiles", [TILESET_PARAM, DATETIME_PARAM],
        oas.content(oas.ref("schemas", "TileJSON"), oas.JSON), op_id="getTileJSON")
    if any(layer.id in ctx.collection_ids for layer in catalogue.EVENT_LAYERS):
        paths |= _event_paths()
    return {"paths": paths, "components": {"schemas": {"TileJSON": tilejson_schema()}}}


# --- CLI -----------------------------------------------------------------------------------------

def cmd_tiles(args) -> None:
    from server.cli import UsageError

    try:
        period = layer_tiles.parse_datetime(args.datetime)
        if args.tileset not in layer_tiles.TILESETS:
            raise layer_tiles.TileError(f"--tileset {args.tileset!r} is invalid; valid: {', '.join(layer_tiles.TILESETS)}")
        if args.out.suffix not in layer_tiles.ARCHIVE_SUFFIXES:
            raise layer_tiles.TileError(f"--out {args.out} must end in .pmtiles or .mbtiles")
        layer_tiles.check_range(args.minzoom, args.maxzoom)
        atlas = store.ensure_build(args.build, args.data)
        info = layer_tiles.write_archive(layer_tiles.TileSource(atlas), args.out, args.tileset, args.minzoom,
                                         args.maxzoom, period, args.format)
    except (layer_tiles.TileError, layer_features.QueryError) as error:
        raise UsageError(str(error)) from None
    print(f"wrote {info['tiles']} tiles ({info['bytes']} bytes, zooms {info['minzoom']}-{info['maxzoom']}, "
          f"tileset {info['tileset']}) to {info['path']}")


def add_commands(subparsers, common) -> None:
    """``ttp-atlas tiles --out FILE.pmtiles|.mbtiles``: here ``--out`` is the archive, ``--build`` the build."""
    command = subparsers.add_parser("tiles", parents=[common],
                                    help="write the tile pyramid (MVT or PNG) to a PMTiles or MBTiles archive")
    command.add_argument("--out", type=Path, required=True, help="archive to write: FILE.pmtiles or FILE.mbtiles")
    command.add_argument("--tileset", default=layer_tiles.ATLAS, help=f"one of {', '.join(layer_tiles.TILESETS)}")
    from server.cli import whole_number

    zoom = whole_number(layer_tiles.MIN_ZOOM, layer_tiles.MAX_ZOOM)
    command.add_argument("--minzoom", type=zoom, default=layer_tiles.MIN_ZOOM)
    command.add_argument("--maxzoom", type=zoom, default=layer_tiles.MAX_ZOOM)
    command.add_argument("--datetime", default=None,
                         help="wilayah period: a date (2023-07-01) or interval (default: today)")
    command.add_argument("--format", choices=layer_tiles.FORMATS, default="mvt",
                         help="mvt (gzipped vector tiles) or png (drawn in the server's style)")
    command.set_defaults(run=cmd_tiles)
