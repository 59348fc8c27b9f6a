"""``ttp-atlas publish --out DIR``: the atlas as a static site (layers.publish); it serves no endpoint."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint

from layers import features as layer_features
from layers import publish, store
from layers import tiles as layer_tiles

blueprint = Blueprint("publish", __name__)  # no endpoint: the site is served by any static host


def openapi(ctx) -> dict:
    return {"paths": {}}


def cmd_publish(args) -> None:
    from server.cli import UsageError

    try:
        as_of = layer_tiles.parse_datetime(args.datetime)[0] if args.datetime else None
        atlas = store.ensure_build(args.build, args.data)
        info = publish.publish(atlas, args.out, args.base_url, args.maxzoom, args.png_maxzoom, as_of)
    except (publish.PublishError, layer_tiles.TileError, layer_features.QueryError) as error:
        raise UsageError(str(error)) from None
    tiles = ", ".join(f"{t['path']} {t['tiles']} tiles z{t['minzoom']}-{t['maxzoom']}" for t in info["tiles"])
    print(f"published {len(info['files'])} files ({info['bytes'] / 2 ** 20:.1f} MiB; {tiles}) to {args.out} "
          f"in {info['seconds']} s")


def add_commands(subparsers, common) -> None:
    from server.cli import whole_number

    zoom = whole_number(layer_tiles.MIN_ZOOM, layer_tiles.MAX_ZOOM)
    command = subparsers.add_parser("publish", parents=[common],
                                    help="write the atlas as a static site (map, PMTiles, data, OGC API JSON)")
    command.add_argument("--out", type=Path, required=True, help="folder to write (replaced atomically)")
    command.add_argument("--base-url", default="",
                         help="URL the folder will be served at (OGC API clients need absolute links)")
    command.add_argument("--maxzoom", type=zoom, default=layer_tiles.MAX_ZOOM, help="deepest vector tile zoom")
    command.add_argument("--png-maxzoom", type=zoom, default=publish.PNG_MAXZOOM,
                         help="deepest zoom of the PNG basemap (deeper zooms scale it up)")
    command.add_argument("--datetime", default=None, help="the date of the vector tiles' units (default: today)")
    command.set_defaults(run=cmd_publish)
