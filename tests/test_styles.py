"""The palette and the style model (``layers.style``): colour-blind safety computed from the style itself."""

from __future__ import annotations

import io
import itertools
import json
import shutil
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas
import numpy as np
import pyogrio
import pytest
import requests
from colorspacious import cspace_convert, deltaE
from PIL import Image

from layers import catalogue, gisstyles, style
from layers import tiles as layer_tiles

VISIONS = {"normal": None, "deuteranopia": "deuteranomaly", "protanopia": "protanomaly",
           "tritanopia": "tritanomaly"}


def seen(rgb: np.ndarray, cvd_type: str | None) -> np.ndarray:
    """sRGB1 colour as seen with full-severity colour-vision deficiency (Machado et al. 2009)."""
    if cvd_type is None:
        return rgb
    return np.clip(cspace_convert(rgb, {"name": "sRGB1+CVD", "cvd_type": cvd_type, "severity": 100}, "sRGB1"), 0, 1)


def over_land(colour: str, opacity: float) -> np.ndarray:
    return (opacity * np.array(style.hex_to_rgb(colour)) + (1 - opacity) * np.array(style.hex_to_rgb(style.LAND))) / 255


def shown_together() -> dict[tuple[str, str], np.ndarray]:
    """(zone key, what) -> drawn colour: each zone's core fill at its drawn opacity over land, each zone's
    extension hatch at its opacity, read from the wilayah style classes; land, and the tribal-district outline
    drawn over the units."""
    tribal = style.feature_style("tribal-districts", {})
    colours = {("land", "land"): over_land(style.LAND, 1.0),
               ("tribal", "tribal-districts outline"): over_land(tribal["stroke"], 1.0)}
    for cls in style.LAYER_STYLES["wilayahs"].classes:
        zone = cls.key.split("-")[0]
        if cls.symbol.fill:
            colours[(zone, f"fill {cls.symbol.fill}@{cls.symbol.fill_opacity}")] = over_land(cls.symbol.fill, cls.symbol.fill_opacity)
        if cls.symbol.hatch:
            hatch = cls.symbol.hatch
            colours[(zone, f"hatch {hatch.colour}@{hatch.opacity}")] = over_land(hatch.colour, hatch.opacity)
    return colours


def test_every_pair_of_zone_colours_differs_by_delta_e_20_under_every_vision():
    """ΔE is the Euclidean distance in CAM02-UCS (colorspacious ``deltaE``, Luo et al. 2006), where ~1 is a just
    noticeable difference; CVD simulated with ``sRGB1+CVD`` at severity 100. Pairs of the same zone (a unit's
    fill and its own hatch) are meant to look alike and are not compared."""
    colours = shown_together()
    assert len(colours) == 2 + 2 * len(style.ZONE_COLOURS)
    worst = []
    for ((zone_a, a), rgb_a), ((zone_b, b), rgb_b) in itertools.combinations(colours.items(), 2):
        if zone_a == zone_b:
            continue
        for vision, cvd in VISIONS.items():
            worst.append((float(deltaE(seen(rgb_a, cvd), seen(rgb_b, cvd), input_space="sRGB1")), a, b, vision))
    worst.sort()
    assert worst[0][0] >= 20, f"too close: {worst[:3]}"


def test_the_old_palette_would_fail():
    """The test can fail: blue north against purple not-reported at 22% (the old palette) is ~ΔE 3 for deuteranopes."""
    north, none = over_land("#1f6fb4", 0.22), over_land("#7a4fa3", 0.22)
    assert deltaE(seen(north, "deuteranomaly"), seen(none, "deuteranomaly"), input_space="sRGB1") < 20


@pytest.mark.parametrize("zone", list(style.ZONE_COLOURS))
def test_the_wilayah_rule(zone):
    core = style.wilayah_style(zone, "medium")
    low = style.wilayah_style(zone, "low")
    extension = style.wilayah_style(zone, "low", "extension")
    colour = style.ZONE_COLOURS[zone]
    assert core["fill"] == low["fill"] == colour and core["dash"] is None and low["dash"]
    assert core["hatch"] is None and low["hatch"] is None
    assert extension["fill_opacity"] == 0 and extension["hatch"] and extension["hatch_colour"] == colour
    assert style.feature_style("wilayahs", {"zone": zone, "part": "extension", "confidence": "medium"}) == extension


def test_every_feature_of_a_claimed_layer_has_a_class(atlas):
    for layer_id in style.CLAIMED_LAYERS:
        for feature in atlas.features(layer_id):
            hits = [c.key for c in style.LAYER_STYLES[layer_id].classes if style.matches(c, feature["properties"])]
            assert len(hits) == 1, (feature["id"], hits)


def test_tribal_districts_are_an_outline_and_every_layer_is_styled():
    assert style.feature_style("tribal-districts", {})["fill_opacity"] == 0
    assert set(style.LAYER_STYLES) == set(catalogue.LAYER_IDS) == set(style.DRAW_ORDER)


# --- the served documents ------------------------------------------------------------------------

VALIDATOR = Path(__file__).resolve().parents[1] / ".make/node/node_modules/.bin/gl-style-validate"


def get(url: str, status: int = 200) -> requests.Response:
    response = requests.get(url, timeout=60)
    assert response.status_code == status, (url, response.status_code, response.text[:300])
    return response


@pytest.mark.parametrize("tileset", layer_tiles.TILESETS)
def test_maplibre_style_validates_and_points_at_the_service(server, tileset, tmp_path):
    if not VALIDATOR.exists() or not shutil.which("node"):
        pytest.skip(f"node or the MapLibre style validator ({VALIDATOR}) is not installed (make installs them)")
    response = get(f"{server}/tiles/{tileset}/style.json?datetime=2023-07-01")
    assert response.headers["Content-Type"] == gisstyles.MAPLIBRE_MEDIA
    document = response.json()
    path = tmp_path / "style.json"
    path.write_text(json.dumps(document))
    checked = subprocess.run([str(VALIDATOR), "--json", str(path)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and json.loads(checked.stdout or "[]") == [], checked.stdout + checked.stderr
    source = document["sources"][gisstyles.SOURCE]["url"]
    assert source == f"{server}/tiles/{tileset}.json?datetime=2023-07-01"
    assert get(source).json()["tiles"] == [f"{server}/tiles/{tileset}/{{z}}/{{x}}/{{y}}.mvt?datetime=2023-07-01"]
    drawn = {layer["source-layer"] for layer in document["layers"] if "source-layer" in layer}
    assert drawn == set(layer_tiles.tile_layers(tileset)) - (
        set(style.HIDDEN_IN_ATLAS) if tileset == layer_tiles.ATLAS else set())
    tilejson = {layer["id"] for layer in get(source).json()["vector_layers"]}
    assert drawn <= tilejson  # every source layer drawn is in the tiles


def test_maplibre_style_draws_the_model(server):
    layers = {layer["id"]: layer for layer in get(f"{server}/tiles/atlas/style.json").json()["layers"]}
    north = layers["wilayahs-north-core-fill"]
    assert north["paint"] == {"fill-color": style.ZONE_COLOURS["north"], "fill-opacity": style.ZONE_FILL_OPACITY}
    assert north["filter"] == ["all", ["==", "zone", "north"], ["==", "part", "core"],
                               ["in", "confidence", "high", "medium"]]
    assert layers["wilayahs-none-extension-hatch"]["filter"][1] == ["!has", "zone"]
    assert layers["wilayahs-south-extension-hatch"]["paint"]["fill-pattern"] == "hatch-d55e00"
    assert layers["wilayahs-north-low-line"]["paint"]["line-dasharray"] == [3, 2]  # 6 and 4 px at width 2
    assert "wilayahs-north-extension-fill" not in layers and "tribal-districts-tribal-districts-fill" not in layers
    assert not any(layer.get("source-layer") == "zones" for layer in layers.values())  # units show the zones
    order = list(layers)
    assert order.index("wilayahs-north-core-fill") < order.index("provinces-provinces-line") \
        < order.index("wilayahs-north-core-line")  # unit outlines over civil borders
    # unit names come from the tiles' label points and their label field, once per unit
    units = layers["wilayahs-label-symbol"]
    assert (units["source-layer"], units["layout"]["text-field"]) == ("labels", "{label}")
    assert style.EXTENSION_LABEL not in json.dumps(layers)  # the text is the data's, not the style's
    assert [lid for lid in layers if layers[lid].get("source-layer") == "wilayahs" and layers[lid]["type"] == "symbol"] == []
    assert order.index("wilayahs-north-core-line") < order.index("places-city-marker-circle") < order.index(
        "wilayahs-label-symbol") < order.index("places-city-right-symbol")
    # one layer per kind of place and side, with constant values (QGIS 3.22 reads a match as its fallback)
    look = style.PLACE_STYLES["city"]
    right, above = layers["places-city-right-symbol"], layers["places-city-above-symbol"]
    assert right["filter"] == ["all", ["==", "kind", "city"], ["==", "side", "right"]]
    assert right["layout"]["text-size"] == look.font.size
    assert (right["layout"]["text-anchor"], above["layout"]["text-anchor"]) == ("left", "bottom")  # beside the marker
    gap = (look.size / 2 + style.PLACE_GAP) / look.font.size  # ems from the place to the text
    assert right["layout"]["text-offset"] == [pytest.approx(gap, abs=1e-3), 0]
    capital = style.PLACE_STYLES["national-capital"]
    assert layers["places-national-capital-marker-circle"]["paint"]["circle-radius"] == capital.size / 2 - capital.stroke_width
    assert "places-provincial-capital-ring-circle" in layers and "places-city-ring-circle" not in layers
    assert not any(isinstance(v, list) and v[:1] == ["match"] for layer in layers.values()
                   for v in [*layer.get("layout", {}).values(), *layer.get("paint", {}).values()])


@pytest.mark.parametrize("name, ratio", [("sprite", 1), ("sprite@2x", 2)])
def test_sprite_has_every_pattern_in_its_colour(server, name, ratio):
    index = get(f"{server}/styles/{name}.json").json()
    image = Image.open(io.BytesIO(get(f"{server}/styles/{name}.png").content)).convert("RGBA")
    patterns = {layer["paint"]["fill-pattern"] for layer in get(f"{server}/tiles/atlas/style.json").json()["layers"]
                if "fill-pattern" in layer.get("paint", {})}
    assert patterns == set(index) == {f"hatch-{c.lstrip('#')}" for c in style.ZONE_COLOURS.values()}
    for pattern, box in index.items():
        assert box["pixelRatio"] == ratio and box["width"] == box["height"] == 11 * ratio
        tile = np.asarray(image.crop((box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"])))
        solid = tile[tile[..., 3] > 200][:, :3]
        assert len(solid) > tile.shape[0] * tile.shape[1] * 0.15, pattern  # lines, not an empty square
        assert np.abs(solid.mean(axis=0) - style.hex_to_rgb("#" + pattern.split("-")[1])).max() < 30, pattern
        assert (tile[..., 3] == 0).mean() > 0.3  # and gaps between them


def test_qml_and_sld_of_every_layer(server):
    for layer_id in catalogue.LAYER_IDS:
        qml = get(f"{server}/styles/{layer_id}.qml")
        assert qml.headers["Content-Type"].startswith(gisstyles.QML_MEDIA)
        root = ET.fromstring(qml.content)
        renderer = root.find("renderer-v2")
        classes = style.LAYER_STYLES[layer_id].classes
        assert renderer.get("type") == ("RuleRenderer" if len(classes) > 1 else "singleSymbol")
        assert (root.find("temporal") is not None) == catalogue.layer(layer_id).temporal
        sld = get(f"{server}/styles/{layer_id}.sld")
        assert sld.headers["Content-Type"].startswith(gisstyles.SLD_MEDIA)
        rules = ET.fromstring(sld.content).findall(".//{http://www.opengis.net/se}Rule")
        assert len(rules) == len(classes) + bool(style.LAYER_STYLES[layer_id].label)
    wilayahs = ET.fromstring(get(f"{server}/styles/wilayahs.qml").content)
    text = wilayahs.find("labeling/settings/text-style")  # the unit label is the data's label field
    assert (text.get("fieldName"), text.get("isExpression")) == ("label", "0")
    names = ET.fromstring(get(f"{server}/styles/wilayahs.sld").content).findall(
        ".//{http://www.opengis.net/se}TextSymbolizer/{http://www.opengis.net/se}Label/{http://www.opengis.net/ogc}PropertyName")
    assert [name.text for name in names] == ["label"]
    temporal = ET.fromstring(get(f"{server}/styles/wilayahs.qml").content).find("temporal")
    assert (temporal.get("mode"), temporal.get("startField"), temporal.get("endField")) == ("2", "valid_from", "valid_to")


@pytest.mark.parametrize("path, status", [
    ("/styles/nowhere.qml", 404), ("/styles/wilayahs.txt", 404), ("/styles/wilayahs.qml?x=1", 400),
    ("/tiles/nowhere/style.json", 404), ("/tiles/atlas/style.json?datetime=yesterday", 400),
    ("/tiles/atlas/style.json?datetime=2023-07-01&datetime=2024-01-01", 400), ("/qgis/atlas.qgs?f=json", 400),
    ("/styles/sprite@3x.json", 404)])
def test_bad_requests_are_problems(server, path, status):
    response = get(server + path, status)
    assert response.headers["Content-Type"] == "application/problem+json" and response.json()["status"] == status


def test_every_style_endpoint_is_in_the_openapi_document(server):
    paths = get(f"{server}/api").json()["paths"]
    for path in ("/styles/{layerId}.qml", "/styles/{layerId}.sld", "/tiles/{tileset}/style.json", "/qgis/atlas.qgs",
                 "/styles/sprite.json", "/styles/sprite.png", "/styles/sprite@2x.json", "/styles/sprite@2x.png"):
        assert "get" in paths[path], path


# --- GeoPackage layer_styles -------------------------------------------------------------------------

def write_gpkg(atlas, path: Path, layer_ids) -> None:
    for layer_id in layer_ids:
        frame = geopandas.GeoDataFrame([f["properties"] for f in atlas.features(layer_id)],
                                       geometry=list(atlas.geometries[layer_id]), crs="EPSG:4326")
        pyogrio.write_dataframe(frame, path, layer=layer_id, driver="GPKG", promote_to_multi=True)


def test_write_layer_styles(atlas, tmp_path):
    path = tmp_path / "styled.gpkg"
    write_gpkg(atlas, path, ["wilayahs", "provinces"])
    assert gisstyles.write_layer_styles(path, ["wilayahs", "provinces"]) == 2
    assert gisstyles.write_layer_styles(path, ["wilayahs"]) == 1  # rewriting replaces, never duplicates
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT f_table_name, f_geometry_column, useAsDefault, styleQML, styleSLD "
                          "FROM layer_styles ORDER BY f_table_name").fetchall()
        contents = db.execute("SELECT data_type FROM gpkg_contents WHERE table_name = 'layer_styles'").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [("provinces", "geom", 1), ("wilayahs", "geom", 1)]
    assert rows[1][3] == gisstyles.qml("wilayahs") and rows[1][4] == gisstyles.sld("wilayahs")
    assert contents == [("attributes",)]
    assert len(pyogrio.read_dataframe(path, layer="wilayahs")) == len(atlas.features("wilayahs"))


def test_write_layer_styles_refuses_a_missing_table_and_leaves_the_file(atlas, tmp_path):
    path = tmp_path / "one.gpkg"
    write_gpkg(atlas, path, ["provinces"])
    before = path.read_bytes()
    with pytest.raises(KeyError, match="wilayahs"):
        gisstyles.write_layer_styles(path, ["provinces", "wilayahs"])
    with pytest.raises(KeyError, match="nowhere"):
        gisstyles.write_layer_styles(path, ["nowhere"])
    assert path.read_bytes() == before


# --- CLI ---------------------------------------------------------------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server", *args], capture_output=True, text=True, timeout=120)


def test_cli_writes_the_project_and_the_styles(built, data_root, tmp_path):
    common = ["--build", str(built), "--data", str(data_root)]
    done = run_cli("qgis", "--out", str(tmp_path / "atlas.qgs"), "--url", "https://atlas.example.org/", *common)
    assert done.returncode == 0, done.stderr
    project = ET.parse(tmp_path / "atlas.qgs").getroot()
    sources = [layer.findtext("datasource") for layer in project.iter("maplayer")]
    assert "url='https://atlas.example.org' typename='wilayahs' pagingEnabled='true' restrictToRequestBBOX='1'" \
        in sources
    done = run_cli("styles", "--out", str(tmp_path / "styles"), "--url", "https://atlas.example.org", *common)
    assert done.returncode == 0, done.stderr
    written = {p.name for p in (tmp_path / "styles").iterdir()}
    assert {"wilayahs.qml", "wilayahs.sld", "atlas.style.json", "sprite@2x.png"} <= written
    assert json.loads((tmp_path / "styles/atlas.style.json").read_text())["sprite"] == \
        "https://atlas.example.org/styles/sprite"


def test_cli_refuses_a_bad_url(built, data_root, tmp_path):
    done = run_cli("qgis", "--out", str(tmp_path / "a.qgs"), "--url", "atlas.example.org", "--build", str(built))
    assert done.returncode == 2 and "'atlas.example.org' is invalid" in done.stderr
    assert not (tmp_path / "a.qgs").exists()


# --- glyphs ------------------------------------------------------------------------------------------

def pbf_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, varint or bytes) of one protobuf message: a reader independent of the writer."""
    def varint(i):
        shift = value = 0
        while True:
            byte = data[i]
            value, shift, i = value | (byte & 0x7F) << shift, shift + 7, i + 1
            if not byte & 0x80:
                return value, i
    out, i = [], 0
    while i < len(data):
        key, i = varint(i)
        if key & 7 == 2:
            size, i = varint(i)
            out.append((key >> 3, data[i:i + size]))
            i += size
        else:
            value, i = varint(i)
            out.append((key >> 3, value))
    return out


def test_label_glyphs_are_sdf_pbf_ranges(server):
    document = get(f"{server}/tiles/atlas/style.json").json()
    fonts = {font for layer in document["layers"] for font in layer.get("layout", {}).get("text-font", [])}
    assert fonts == {f.fontstack for f in style.LABEL_STYLES.values()} | {
        look.font.fontstack for look in style.PLACE_STYLES.values()}
    for font in fonts:
        url = document["glyphs"].replace("{fontstack}", font).replace("{range}", "0-255")
        response = get(url)
        assert response.headers["Content-Type"] == "application/x-protobuf"
        stack = dict(pbf_fields(dict(pbf_fields(response.content))[1]))
        assert stack[1].decode() == font and stack[2] == b"0-255"
        glyphs = {g[1]: g for g in (dict(pbf_fields(raw)) for n, raw in pbf_fields(dict(pbf_fields(response.content))[1])
                                    if n == 3)}
        assert set(map(ord, "Peshawar (possible extension) Zhob Qalat-Makran")) <= set(glyphs)
        letter = glyphs[ord("H")]
        assert len(letter[2]) == (letter[3] + 6) * (letter[4] + 6) and 14 <= letter[4] <= 20  # 24 px cap ~17 px
        bitmap = np.frombuffer(letter[2], np.uint8).reshape(letter[4] + 6, letter[3] + 6)
        assert bitmap[0, 0] < 100 and bitmap[(letter[4] + 6) // 2, 5] > 192  # outside the stem, inside it
    assert get(document["glyphs"].replace("{fontstack}", "DejaVu Sans Bold").replace("{range}", "1024-1279")).content
    for bad in ("Comic Sans/0-255", "DejaVu Sans Bold/0-254", "DejaVu Sans Bold/65536-65791"):
        assert get(f"{server}/styles/glyphs/{bad}.pbf", 404).json()["status"] == 404


def test_place_names_go_on_every_side_the_label_model_offers():
    """The styles and the raster tiles place a name on each side ``layers.labels`` may choose, beside the
    marker: never over it."""
    from layers import labels

    for look in style.PLACE_STYLES.values():
        sides = gisstyles.place_text(look)
        assert set(sides) == set(labels.PLACE_SIDES)
        for align, baseline, dx, dy in sides.values():
            clear_x = {"left": dx >= look.size / 2, "right": dx <= -look.size / 2, "center": dx == 0}[align]
            clear_y = {"top": dy >= look.size / 2, "bottom": dy <= -look.size / 2, "middle": dy == 0}[baseline]
            assert clear_x or clear_y, (align, baseline, dx, dy)
