"""Styles for GIS clients, generated from ``layers.style``: ``/styles/{layerId}.qml|.sld``, the MapLibre style
``/tiles/{tileset}/style.json`` (same ``datetime`` as the tiles), its sprite ``/styles/sprite[@2x].json|.png``
and label glyphs ``/styles/glyphs/{fontstack}/{range}.pbf``, the QGIS project ``/qgis/atlas.qgs``; and
``ttp-atlas qgis`` / ``ttp-atlas styles`` to write them to files.

Every URL inside a document is absolute, built from the request's base URL (or ``TTP_ATLAS_BASE_URL``).
"""

from __future__ import annotations

import argparse
import json
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode

from flask import Blueprint, current_app

from geo.atomic import staged_dir, write_bytes
from layers import catalogue, gisstyles, glyphs, qgisproject, store
from layers import tiles as layer_tiles
from server import openapi as oas
from server.http import Problem, base_url, json_response, not_found, params, respond
from server.tiles import DATETIME_PARAM, TILESET_PARAM, _period

blueprint = Blueprint("styles", __name__)
KINDS = {"qml": (gisstyles.QML_MEDIA, gisstyles.qml), "sld": (gisstyles.SLD_MEDIA, gisstyles.sld)}
SPRITES = {"sprite": 1, "sprite@2x": 2}
QGS_MEDIA = "application/x-qgis-project"
PBF_MEDIA = "application/x-protobuf"
GLYPHS = "/styles/glyphs/{fontstack}/{range}.pbf"
sprite = lru_cache(maxsize=2)(gisstyles.sprite)


def _layer_id(layer_id: str) -> str:
    if layer_id not in catalogue.LAYER_IDS:
        raise not_found(f"layer {layer_id!r}", catalogue.LAYER_IDS)
    return layer_id


@blueprint.get("/styles/<layer_id>.<kind>")
def layer_style(layer_id: str, kind: str):
    params([])
    if layer_id in SPRITES and kind in ("json", "png"):
        index, png = sprite(SPRITES[layer_id])
        return json_response(index) if kind == "json" else respond(png, "image/png")
    if kind not in KINDS:
        raise not_found(f"style format {kind!r}", list(KINDS))
    mimetype, make = KINDS[kind]
    return respond(make(_layer_id(layer_id)).encode(), mimetype)


def style_document(tileset: str, base: str, datetime: str | None) -> dict:
    """The MapLibre style of ``tileset`` served at ``base``, for the period ``datetime`` (None: today)."""
    query = f"?{urlencode({'datetime': datetime})}" if datetime is not None else ""
    title = "TTP atlas" if tileset == layer_tiles.ATLAS else catalogue.layer(tileset).title
    return gisstyles.maplibre_style(tileset, layer_tiles.tile_layers(tileset),
                                    f"{base}/tiles/{tileset}.json{query}", f"{base}/styles/sprite", base + GLYPHS,
                                    title)


@blueprint.get("/styles/glyphs/<fontstack>/<glyph_range>.pbf")
def glyph_range(fontstack: str, glyph_range: str):
    params([])
    try:
        body = glyphs.glyph_range(fontstack, glyph_range)
    except glyphs.GlyphError as error:
        raise Problem(404, "Not found", error.args[0], valid=list(glyphs.FACES)) from None
    return respond(body, PBF_MEDIA)


@blueprint.get("/tiles/<tileset>/style.json")
def maplibre(tileset: str):
    args = params(["datetime"])
    _period(args)
    if tileset not in layer_tiles.TILESETS:
        raise not_found(f"tileset {tileset!r}", layer_tiles.TILESETS)
    return json_response(style_document(tileset, base_url(), args.get("datetime")), gisstyles.MAPLIBRE_MEDIA)


@blueprint.get("/qgis/atlas.qgs")
def qgis_project():
    params([])
    body = qgisproject.project(current_app.extensions["atlas"], base_url()).encode()
    return respond(body, QGS_MEDIA, headers={"Content-Disposition": 'attachment; filename="atlas.qgs"'})


# --- OpenAPI -------------------------------------------------------------------------------------

def openapi(ctx: oas.ApiContext) -> dict:
    text = {"type": "string"}
    layer = oas.param("layerId", "path", {"type": "string", "enum": list(catalogue.LAYER_IDS)},
                      "A layer of the catalogue.")
    paths = {
        "/styles/{layerId}.qml": oas.operation(
            "QGIS layer style (QML) of a layer", "Styles", [layer], oas.content(text, gisstyles.QML_MEDIA),
            description="Rule-based renderer (zone, confidence, part), labels and, for claimed layers, temporal "
                        "properties on valid_from/valid_to.", op_id="getStyleQML"),
        "/styles/{layerId}.sld": oas.operation(
            "OGC SLD 1.1 / SE style of a layer", "Styles", [layer], oas.content(text, gisstyles.SLD_MEDIA),
            description="The same rules as the QML, for GeoServer, ArcGIS and other SLD readers.",
            op_id="getStyleSLD"),
        "/tiles/{tileset}/style.json": oas.operation(
            "MapLibre GL style (spec v8) of a vector tileset", "Styles", [TILESET_PARAM, DATETIME_PARAM],
            oas.content({"type": "object", "required": ["version", "sources", "layers"]}, gisstyles.MAPLIBRE_MEDIA),
            description="Its source is the tileset's TileJSON with the same datetime; hatches are fill "
                        "patterns from /styles/sprite.", op_id="getMapLibreStyle"),
        "/qgis/atlas.qgs": oas.operation(
            "QGIS project of the atlas", "Styles", [], oas.content(text, QGS_MEDIA),
            description="OGC API - Features layers and vector tiles of this service with their styles, the "
                        "temporal controller over the wilayah periods, and the caveat, credits and licences.",
            op_id="getQgisProject"),
    }
    paths[GLYPHS] = oas.operation(
        "MapLibre label glyphs (SDF protobuf) of a font stack", "Styles",
        [oas.param("fontstack", "path", {"type": "string", "enum": list(glyphs.FACES)}, "A served font."),
         oas.param("range", "path", {"type": "string", "pattern": "^[0-9]+-[0-9]+$"},
                   "256 codepoints N-(N+255), N a multiple of 256; Latin-1 (0-255) has the glyphs.", example="0-255")],
        oas.content({"type": "string", "format": "binary"}, PBF_MEDIA), op_id="getGlyphs")
    for name, ratio in SPRITES.items():
        paths[f"/styles/{name}.json"] = oas.operation(
            f"MapLibre sprite index (pixel ratio {ratio})", "Styles", [], oas.content({"type": "object"}, oas.JSON),
            op_id=f"getSpriteIndex{ratio}x")
        paths[f"/styles/{name}.png"] = oas.operation(
            f"MapLibre sprite image (pixel ratio {ratio})", "Styles", [],
            oas.content({"type": "string", "format": "binary"}, "image/png"), op_id=f"getSpriteImage{ratio}x")
    return {"paths": paths}


# --- CLI -----------------------------------------------------------------------------------------

def cmd_qgis(args) -> None:
    atlas = store.ensure_build(args.build, args.data)
    write_bytes(args.out, qgisproject.project(atlas, args.url.rstrip("/")).encode())
    print(f"wrote the QGIS project for {args.url} to {args.out}")


def cmd_styles(args) -> None:
    """Every layer's QML and SLD, the sprites, and each tileset's MapLibre style (for ``--url``)."""
    with staged_dir(args.out) as tmp:
        for layer_id in catalogue.LAYER_IDS:
            for kind, (_, make) in KINDS.items():
                (tmp / f"{layer_id}.{kind}").write_text(make(layer_id), encoding="utf-8")
        for name, ratio in SPRITES.items():
            index, png = gisstyles.sprite(ratio)
            (tmp / f"{name}.json").write_text(json.dumps(index), encoding="utf-8")
            (tmp / f"{name}.png").write_bytes(png)
        for face in glyphs.FACES:
            (tmp / "glyphs" / face).mkdir(parents=True)
            (tmp / "glyphs" / face / "0-255.pbf").write_bytes(glyphs.glyph_range(face, "0-255"))
        for tileset in layer_tiles.TILESETS:
            document = style_document(tileset, args.url.rstrip("/"), None)
            (tmp / f"{tileset}.style.json").write_text(json.dumps(document, indent=1), encoding="utf-8")
    print(f"wrote {len(catalogue.LAYER_IDS) * 2} layer styles, sprites and {len(layer_tiles.TILESETS)} MapLibre "
          f"styles to {args.out}")


def _url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{raw!r} is invalid: give the service's base URL, e.g. http://127.0.0.1:8000")
    return raw


def add_commands(subparsers, common) -> None:
    url_help = "the service's base URL the documents point at (default: http://127.0.0.1:8000)"
    qgis = subparsers.add_parser("qgis", parents=[common], help="write the QGIS project (.qgs) of a running service")
    qgis.add_argument("--out", type=Path, required=True, help="project file to write, e.g. atlas.qgs")
    qgis.add_argument("--url", type=_url, default="http://127.0.0.1:8000", help=url_help)
    qgis.set_defaults(run=cmd_qgis)
    styles = subparsers.add_parser("styles", parents=[common], help="write QML, SLD and MapLibre styles to a folder")
    styles.add_argument("--out", type=Path, required=True, help="folder to write (replaced whole)")
    styles.add_argument("--url", type=_url, default="http://127.0.0.1:8000", help=url_help)
    styles.set_defaults(run=cmd_styles)
