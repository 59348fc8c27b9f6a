"""XYZ tiles: ``/tiles/{tileset}/{z}/{x}/{y}.mvt|.png|@2x.png``, ``/tiles/{tileset}.json`` (TileJSON 3.0.0),
and ``ttp-atlas tiles`` to write the pyramid to a PMTiles or MBTiles archive.

A tile outside the zoom range (0-14), the tile grid or the tileset's bounds is a 404; a tile inside
with no feature is a 204 for MVT (the client draws nothing) and a transparent or background-only
PNG. With ``TTP_ATLAS_TILES_ARCHIVE`` set to an archive written by ``ttp-atlas tiles``, MVT tiles of
that archive's tileset and zooms without ``datetime`` are read from it instead of being cut.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, current_app

from layers import store
from layers import tiles as layer_tiles
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
TILE_NAME = re.compile(r"^(?P<y>[^.@]+)(?P<suffix>\.mvt|\.png|@2x\.png)$")
FORMATS = {".mvt": ("mvt", 1), ".png": ("png", 1), "@2x.png": ("png", 2)}

blueprint = Blueprint("tiles", __name__)
tile_etag = lru_cache(maxsize=layer_tiles.CACHE_SIZE)(etag_of)  # cached tiles are the same bytes objects


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
    state.app.extensions["tiles"] = (_SOURCES[id(atlas)][1], layer_tiles.Archive(Path(archive)) if archive else None)


def _coordinate(name: str, raw: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise bad_parameter(name, raw, "a non-negative integer tile coordinate (z from 0 to 14, x and y from 0 to 2^z-1)")
    return int(raw)


def _period(args: dict):
    try:
        return layer_tiles.parse_datetime(args.get("datetime"))
    except layer_tiles.TileError as error:
        raise bad_parameter("datetime", args.get("datetime"), str(error)) from None


@blueprint.get("/tiles/<tileset>/<z>/<x>/<name>")
def tile(tileset: str, z: str, x: str, name: str):
    args = params(["datetime"])
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
    kind, scale = FORMATS[match["suffix"]]
    source, archive = current_app.extensions["tiles"]
    period = _period(args)
    try:
        if kind == "png":
            body = source.png(tileset, zoom, col, row, period, scale)
            return respond(body, "image/png", etag=tile_etag(body))
        if archive and "datetime" not in args and archive.tileset == tileset \
                and archive.minzoom <= zoom <= archive.maxzoom:
            source.check(tileset, zoom, col, row)
            body = archive.get(zoom, col, row)
        else:
            body = source.mvt(tileset, zoom, col, row, period)
    except layer_tiles.TileOutside as error:
        raise Problem(404, "Not found", str(error), valid=list(layer_tiles.TILESETS)) from None
    if not body:
        return respond(b"", layer_tiles.MVT_MIMETYPE, status=204)
    return respond(body, layer_tiles.MVT_MIMETYPE, etag=tile_etag(body))


@blueprint.get("/tiles/<tileset>.json")
def tilejson(tileset: str):
    args = params(["datetime"])
    period = _period(args)
    source, _ = current_app.extensions["tiles"]
    if tileset not in layer_tiles.TILESETS:
        raise not_found(f"tileset {tileset!r}", layer_tiles.TILESETS)
    query = f"?datetime={args['datetime']}" if "datetime" in args else ""
    url = f"{base_url()}/tiles/{tileset}/{{z}}/{{x}}/{{y}}.mvt{query}"
    document = source.tilejson(tileset, url)
    document["ttp_atlas"] = {"datetime": list(period), "png": url.replace(".mvt", ".png"),
                             "png@2x": url.replace(".mvt", "@2x.png")}
    return json_response(document)


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
                                         args.maxzoom, period)
    except layer_tiles.TileError as error:
        raise UsageError(str(error)) from None
    print(f"wrote {info['tiles']} tiles ({info['bytes']} bytes, zooms {info['minzoom']}-{info['maxzoom']}, "
          f"tileset {info['tileset']}) to {info['path']}")


def add_commands(subparsers, common) -> None:
    """``ttp-atlas tiles --out FILE.pmtiles|.mbtiles``: here ``--out`` is the archive, ``--build`` the build."""
    command = subparsers.add_parser("tiles", parents=[common],
                                    help="write the MVT pyramid to a PMTiles or MBTiles archive")
    command.add_argument("--out", type=Path, required=True, help="archive to write: FILE.pmtiles or FILE.mbtiles")
    command.add_argument("--tileset", default=layer_tiles.ATLAS, help=f"one of {', '.join(layer_tiles.TILESETS)}")
    command.add_argument("--minzoom", type=int, default=layer_tiles.MIN_ZOOM)
    command.add_argument("--maxzoom", type=int, default=layer_tiles.MAX_ZOOM)
    command.add_argument("--datetime", default=None,
                         help="wilayah period: a date (2023-07-01) or interval (default: today)")
    command.set_defaults(run=cmd_tiles)
