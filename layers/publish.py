"""The atlas as a static site: files any web server, object store or CDN serves with no Python running.

    index.html                       the web map: a PNG basemap read from its PMTiles archive by HTTP range
                                     requests (the vendored ``pmtiles`` library), the wilayahs of each period
                                     as a GeoJSON overlay with a period switcher, in the server's style
    static/leaflet/, static/pmtiles/ the map's libraries (offline)
    tiles/atlas.pmtiles              MVT, every layer (the period of ``as_of``)
    tiles/basemap.pmtiles            PNG, the civil layers and place names (the units come from the overlays)
    periods/{from}.geojson           the map's units of each reported structure, simplified, styled
    styles/atlas.json                MapLibre style reading ``pmtiles://.../tiles/atlas.pmtiles``
    styles/{layer}.qml|.sld, styles/sprite[@2x].json|.png
    data/{layer}.geojson|.fgb        each layer whole and lossless (as the server's downloads)
    ogc/index.json, ogc/conformance.json, ogc/collections.json, ogc/collections/{id}.json,
    ogc/collections/{id}/items.json  OGC API - Features, static: every feature in one page
    manifest.json                    sha256 and size of every other file

A static host cannot answer ``datetime`` or ``bbox`` queries: the OGC items are whole layers, and GDAL
or QGIS open a collection by its URL (``OAPIF:{base}/ogc/collections/{id}.json``), following its
``items`` link. Those clients need absolute links, hence ``base_url``; without it links are relative.
"""

from __future__ import annotations

import hashlib
import html
import json
import shutil
import time
from pathlib import Path

from geo import atomic
from layers import catalogue, formats, gisstyles, places, style, webmap
from layers import tiles as layer_tiles

PNG_MAXZOOM = 10  # basemap depth: z0-10 (Pakistan and 10° around) is 16k tiles, 2.7k distinct, 14 MiB, ~10 s
BEFORE_CLAIMS = ("0001-01-01", "0001-01-01")  # a period no unit is valid in: the atlas minus the claims
PMTILES_JS = Path(__file__).parent / "vendor" / "pmtiles"
DATA_FORMATS = ("geojson", "fgb")
OGC_CONFORMANCE = ["http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
                   "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson"]
JSON, GEOJSON = "application/json", "application/geo+json"
# Content types a host must send (the README's deployment example sets them per suffix)
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css",
                 ".png": "image/png", ".json": JSON, ".geojson": GEOJSON, ".fgb": "application/flatgeobuf",
                 ".pmtiles": "application/vnd.pmtiles", ".qml": "application/xml",
                 ".sld": "application/vnd.ogc.sld+xml"}


class PublishError(ValueError):
    """A publication that cannot be written; the message names the value and what is valid."""


def _write_json(path: Path, document) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")


def _link(base: str, path: str, rel: str, media: str, title: str = "") -> dict:
    """A link to ``path`` (from the site's root): absolute under ``base``, else relative to ``ogc/``'s
    documents one level down (the site root is ``../``); ``_relink`` fixes deeper documents."""
    link = {"href": f"{base}/{path}" if base else f"../{path}", "rel": rel, "type": media}
    return {**link, "title": title} if title else link


def _relink(document: dict, depth: int, base: str) -> dict:
    """Relative links of a document ``depth`` folders below ``ogc/`` climb that much further."""
    if not base:
        for link in document.get("links", []):
            link["href"] = "../" * depth + link["href"]
    return document


# --- OGC API - Features ----------------------------------------------------------------------------

def ogc_collection(atlas, layer_id: str, base: str) -> dict:
    entry = catalogue.layer(layer_id)
    west, south, east, north = atlas.manifest["layers"][layer_id]["bbox"]
    links = [_link(base, f"ogc/collections/{layer_id}.json", "self", JSON),
             _link(base, f"ogc/collections/{layer_id}/items.json", "items", GEOJSON, "Every feature, one page"),
             *(_link(base, f"data/{layer_id}.{key}", "enclosure", formats.FORMATS[key].mimetype,
                     f"{entry.title} ({key})") for key in DATA_FORMATS),
             _link(base, f"styles/{layer_id}.qml", "describedby", CONTENT_TYPES[".qml"], "QGIS style"),
             _link(base, f"styles/{layer_id}.sld", "stylesheet", CONTENT_TYPES[".sld"], "SLD style")]
    return {"id": layer_id, "title": entry.title, "description": entry.description, "itemType": "feature",
            "crs": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"],
            "extent": {"spatial": {"bbox": [[west, south, east, north]],
                                   "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
            "links": links}


def write_ogc(atlas, root: Path, base: str) -> None:
    """Landing page, conformance, collections, and each collection with all its items."""
    ogc = root / "ogc"
    _write_json(ogc / "index.json", {
        "title": "TTP atlas (static)", "description": catalogue.CAVEAT,
        "links": [_link(base, "ogc/index.json", "self", JSON),
                  _link(base, "ogc/conformance.json", "conformance", JSON),
                  _link(base, "ogc/collections.json", "data", JSON),
                  _link(base, "index.html", "alternate", "text/html", "The web map")]})
    _write_json(ogc / "conformance.json", {"conformsTo": OGC_CONFORMANCE})
    collections = [ogc_collection(atlas, lid, base) for lid in catalogue.LAYER_IDS]
    _write_json(ogc / "collections.json", {"collections": collections,
                                           "links": [_link(base, "ogc/collections.json", "self", JSON)]})
    for collection in collections:
        lid = collection["id"]
        _write_json(ogc / "collections" / f"{lid}.json", _relink(json.loads(json.dumps(collection)), 1, base))
        whole = json.loads((root / "data" / f"{lid}.geojson").read_text(encoding="utf-8"))
        count = len(whole["features"])
        _write_json(ogc / "collections" / lid / "items.json", _relink({
            "type": "FeatureCollection", "features": whole["features"], "numberMatched": count,
            "numberReturned": count,
            "links": [_link(base, f"ogc/collections/{lid}/items.json", "self", GEOJSON),
                      _link(base, f"ogc/collections/{lid}.json", "collection", JSON)]}, 2, base))


# --- the web map -----------------------------------------------------------------------------------

def period_features(atlas, period: dict) -> list[dict]:
    """The units of one reported structure for the map: simplified, with tooltip, popup and Leaflet style."""
    day = period["from"]
    found = webmap.layer_features(atlas, "wilayahs", atlas.valid_indices("wilayahs", day, day))
    for feature in found:
        feature["properties"]["style"] = webmap.leaflet_style("wilayahs", feature["properties"])
    return found


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>TTP atlas: claimed wilayahs</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="static/leaflet/leaflet.css">
<script src="static/leaflet/leaflet.js"></script><script src="static/pmtiles/pmtiles.js"></script>
<style>html, body, #map {{ height: 100%; margin: 0; }} #map {{ background: {background}; }}
body {{ font: 14px/1.35 system-ui, sans-serif; }}
#bar {{ position: absolute; z-index: 1000; bottom: 24px; right: 10px; max-width: 22rem; background: #fff;
  padding: 8px 10px; border-radius: 4px; box-shadow: 0 1px 4px rgba(0,0,0,.3); color: {ink}; }}
#bar select {{ max-width: 100%; }} #bar p {{ margin: 4px 0 0; }} .caveat {{ font-size: 12px; }}</style>
</head><body>
{patterns}
<div id="bar"><label for="period"><strong>Reported structure</strong></label><br>
<select id="period">{options}</select><p id="units" aria-live="polite"></p>
<p class="caveat">{caveat}</p></div>
<div id="map"></div>
<script>
const PERIODS = {periods};
const map = L.map("map", {{zoomSnap: 0.25, maxZoom: {maxzoom}, maxBounds: {outer}, maxBoundsViscosity: 1,
  minZoom: 4}}).fitBounds({bounds});
map.attributionControl.addAttribution({attribution});
pmtiles.leafletRasterLayer(new pmtiles.PMTiles("tiles/basemap.pmtiles"),
  {{maxNativeZoom: {png_maxzoom}, maxZoom: {maxzoom}}}).addTo(map);
const units = L.geoJSON(null, {{
  style: f => f.properties.style,
  onEachFeature: (f, layer) => layer.bindTooltip(f.properties.tip, {{sticky: true}}).bindPopup(f.properties.popup)
}}).addTo(map);
async function show(index) {{
  const period = PERIODS[index];
  const data = await (await fetch(period.file)).json();
  units.clearLayers();
  units.addData(data);
  document.getElementById("units").textContent = period.label + ": " + period.units + " units";
  document.body.dataset.period = period.from;
}}
const select = document.getElementById("period");
select.value = String({current});
select.addEventListener("change", () => show(Number(select.value)));
show({current});
</script></body></html>
"""


def basemap_bounds(atlas) -> tuple[float, float, float, float]:
    """Pakistan with a margin of its neighbours (the countries' archive bounds): the map never shows an edge."""
    return layer_tiles.pyramid_bounds(atlas, "countries")


def write_map(atlas, root: Path, as_of: str, png_maxzoom: int) -> list[dict]:
    """index.html, its libraries and one GeoJSON per reported structure; the periods written."""
    for asset in webmap.vendor_files():
        target = root / "static" / asset
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(webmap.vendor_file(asset), target)
    shutil.copytree(PMTILES_JS, root / "static" / "pmtiles")
    periods, looks = [], []
    for period in webmap.wilayah_file()["periods"]:
        features = period_features(atlas, period)
        file = f"periods/{period['from']}.geojson"
        _write_json(root / file, {"type": "FeatureCollection", "features": features})
        looks += [style.feature_style("wilayahs", f["properties"]) for f in features]
        periods.append({"from": period["from"], "label": period["label"], "file": file,
                        "units": webmap.unit_count(atlas, period["from"])})
    current = max((i for i, p in enumerate(periods) if p["from"] <= as_of), default=0)
    west, south, east, north = atlas.pakistan_bounds
    outer_west, outer_south, outer_east, outer_north = basemap_bounds(atlas)
    page = PAGE.format(
        ink=style.INK, patterns=webmap.hatch_patterns(looks), caveat=html.escape(catalogue.CAVEAT),
        options="".join(f'<option value="{i}">{html.escape(p["label"])}</option>' for i, p in enumerate(periods)),
        periods=json.dumps(periods, ensure_ascii=False), bounds=json.dumps([[south, west], [north, east]]),
        outer=json.dumps([[outer_south, outer_west], [outer_north, outer_east]]), background=style.BACKGROUND,
        attribution=json.dumps(html.escape("; ".join([*atlas.attribution(), places.GEONAMES_CREDIT]))),
        current=current,
        png_maxzoom=png_maxzoom, maxzoom=layer_tiles.MAX_ZOOM)
    (root / "index.html").write_text(page, encoding="utf-8")
    return periods


# --- styles, data, manifest ------------------------------------------------------------------------

def write_styles(root: Path, base: str) -> None:
    styles = root / "styles"
    styles.mkdir(parents=True, exist_ok=True)
    for lid in catalogue.LAYER_IDS:
        (styles / f"{lid}.qml").write_text(gisstyles.qml(lid), encoding="utf-8")
        (styles / f"{lid}.sld").write_text(gisstyles.sld(lid), encoding="utf-8")
    for ratio in gisstyles.SPRITE_RATIOS:
        index, sheet = gisstyles.sprite(ratio)
        suffix = "" if ratio == 1 else f"@{ratio}x"
        _write_json(styles / f"sprite{suffix}.json", index)
        (styles / f"sprite{suffix}.png").write_bytes(sheet)
    # MapLibre resolves neither a relative archive nor a relative sprite: absolute with a base URL
    prefix = base or ".."
    _write_json(styles / "atlas.json", gisstyles.maplibre_style(
        layer_tiles.ATLAS, layer_tiles.tile_layers(layer_tiles.ATLAS), f"pmtiles://{prefix}/tiles/atlas.pmtiles",
        f"{base}/styles/sprite" if base else "sprite", None, "TTP atlas"))


def manifest(root: Path, info: dict) -> dict:
    """sha256 and size of every file under ``root`` (written as ``manifest.json``, not listed in it)."""
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "manifest.json"):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        files[path.relative_to(root).as_posix()] = {"sha256": digest.hexdigest(), "bytes": path.stat().st_size}
    return {**info, "files": files}


def publish(atlas, out: Path, base_url: str = "", maxzoom: int = layer_tiles.MAX_ZOOM,
            png_maxzoom: int = PNG_MAXZOOM, as_of: str | None = None, workers: int | None = None) -> dict:
    """Write the static site to ``out`` atomically (a half-written site never replaces a whole one)."""
    base = base_url.rstrip("/")
    if base and not base.startswith(("http://", "https://")):
        raise PublishError(f"base URL {base_url!r} must start with http:// or https://")
    for name, zoom in (("maxzoom", maxzoom), ("png maxzoom", png_maxzoom)):
        if not layer_tiles.MIN_ZOOM <= zoom <= layer_tiles.MAX_ZOOM:
            raise PublishError(f"{name} {zoom} is invalid: need {layer_tiles.MIN_ZOOM}-{layer_tiles.MAX_ZOOM}")
    as_of = as_of or layer_tiles.parse_datetime(None)[0]
    began = time.perf_counter()
    source = layer_tiles.TileSource(atlas)
    with atomic.staged_dir(Path(out)) as root:
        vector = layer_tiles.write_archive(source, root / "tiles" / "atlas.pmtiles", layer_tiles.ATLAS, 0, maxzoom,
                                           (as_of, as_of), workers=workers)
        basemap = layer_tiles.write_archive(source, root / "tiles" / "basemap.pmtiles", layer_tiles.ATLAS, 0,
                                            png_maxzoom, BEFORE_CLAIMS, "png", workers, basemap_bounds(atlas))
        for lid in catalogue.LAYER_IDS:
            for key in DATA_FORMATS:
                formats.produce(atlas, lid, key, root / "data" / f"{lid}.{key}")
        write_ogc(atlas, root, base)
        periods = write_map(atlas, root, as_of, png_maxzoom)
        write_styles(root, base)
        for archive in (vector, basemap):
            archive["path"] = Path(archive["path"]).relative_to(root).as_posix()
        info = manifest(root, {"build_id": atlas.build_id, "base_url": base, "as_of": as_of,
                               "tiles": [vector, basemap], "periods": [p["from"] for p in periods]})
        (root / "manifest.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    info["seconds"] = round(time.perf_counter() - began, 1)
    info["bytes"] = sum(f["bytes"] for f in info["files"].values())
    return info
