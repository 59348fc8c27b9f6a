"""QGIS 3.22 (Debian's python3-qgis, headless) reads the generated styles, the GeoPackage layer_styles and the
QGIS project from the real server: tests/qgis_check.py runs in /usr/bin/python3 and prints JSON."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from layers import catalogue, gisstyles, style, wilayahs
from tests.test_styles import write_gpkg

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("qgis_check.py")


def qgis_available() -> bool:
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = pytest.mark.skipif(not qgis_available(), reason=f"QGIS (python3-qgis for {SYSTEM_PYTHON}) is not installed")


def qgis(*args) -> dict:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": ""}
    args = [str(a.resolve()) if isinstance(a, Path) else str(a) for a in args]  # it runs in /tmp
    done = subprocess.run([SYSTEM_PYTHON, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd="/tmp")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def share_of(png: Path, colour: str, opacity: float, tolerance: int = 10) -> float:
    """Share of the image's pixels within ``tolerance`` of ``colour`` drawn at ``opacity`` over land."""
    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    target = opacity * np.array(style.hex_to_rgb(colour)) + (1 - opacity) * np.array(style.hex_to_rgb(style.LAND))
    return float((np.abs(pixels - target).max(axis=2) <= tolerance).mean())


def assert_zone_colours(png: Path) -> None:
    """North and south fills of the style both cover part of Pakistan: not one flat colour."""
    for zone in ("north", "south"):
        assert share_of(png, style.ZONE_COLOURS[zone], style.ZONE_FILL_OPACITY) > 0.003, zone  # >= 600 px
    assert share_of(png, style.LAND, 1.0) > 0.1


def test_vector_tiles_render_with_their_maplibre_style(server, artifacts):
    png = artifacts / "qgis-vector-tiles-2023-07-01.png"
    result = qgis("tiles", server, png, "2023-07-01")
    assert result["valid"] and result["style_loaded"], result
    assert result["layers"] == sorted({"background", *catalogue.LAYER_IDS, "places"} - set(style.HIDDEN_IN_ATLAS))
    assert result["label_layers"] == ["labels", "places", "provinces"]  # unit names from the label points
    assert_names_drawn_once(server, result["labels_drawn"], "2023-07-01")
    assert_zone_colours(png)


def assert_names_drawn_once(server: str, drawn: dict, day: str) -> None:
    """Each unit's name is drawn once over Pakistan (a label point per unit, not a label per tile of its
    polygon), and several units are named."""
    names = {f["properties"]["label"] for f in requests.get(
        f"{server}/collections/wilayahs/items?datetime={day}", timeout=60).json()["features"]}
    units = {text: count for text, count in drawn.items() if text in names}
    assert len(units) >= 4 and set(units.values()) == {1}, drawn
    assert set(drawn.values()) == {1}, drawn  # place names too


def test_every_qml_and_sld_applies_in_qgis(server, built):
    result = qgis("qml", server, built, *catalogue.LAYER_IDS)
    assert set(result) == set(catalogue.LAYER_IDS)
    for layer_id, info in result.items():
        assert info["valid"] and info["loaded"], (layer_id, info["message"])
        assert info["labels"] == bool(style.LAYER_STYLES[layer_id].label), layer_id
        temporal = catalogue.layer(layer_id).temporal
        assert info["temporal"] == ({"active": True, "mode": 2, "start": "valid_from", "end": "valid_to"} if temporal
                                    else {"active": False, "mode": 0, "start": "", "end": ""}), layer_id
    rules = result["wilayahs"]["renderer"]["rules"]
    north = rules["North zone"]
    assert north["layers"] == ["SimpleFill", "SimpleLine"]
    assert north["colours"][0] == "#%02x0072b2" % round(255 * style.ZONE_FILL_OPACITY)
    extension = rules["Zone not reported, possible extension"]
    assert extension["layers"] == ["LinePatternFill", "SimpleLine"] and extension["filter"].startswith('"zone" IS NULL')
    tribal = result["tribal-districts"]["renderer"]
    outline = "#ff" + style.CIVIL_STYLES["tribal-districts"]["stroke"].lstrip("#")
    assert tribal == {"type": "singleSymbol", "layers": ["SimpleLine"], "colours": [outline]}
    for layer_id, info in result.items():  # the SLD reads back to the same rules, colours and hatches
        assert info["sld"]["loaded"], (layer_id, info["sld"]["message"])
        assert info["sld"]["renderer"]["type"] == info["renderer"]["type"], layer_id
    sld_rules = result["wilayahs"]["sld"]["renderer"]["rules"]
    assert set(sld_rules) == {c.title for c in style.LAYER_STYLES["wilayahs"].classes}
    assert sld_rules["Zone not reported, possible extension"]["layers"] == ["LinePatternFill", "SimpleLine"]
    assert sld_rules["South zone"]["colours"][1] == "#ffd55e00"


def test_geopackage_opens_styled(atlas, tmp_path):
    path = tmp_path / "styled.gpkg"
    write_gpkg(atlas, path, ["wilayahs", "tribal-districts", "districts"])
    gisstyles.write_layer_styles(path, ["wilayahs", "tribal-districts"])
    result = qgis("gpkg", path, "wilayahs", "tribal-districts", "districts")
    assert result["wilayahs"]["renderer"]["type"] == "RuleRenderer"
    assert result["wilayahs"]["features"] == len(atlas.features("wilayahs"))
    # QGIS 3.22 applies the renderer on open but resets the temporal properties after it; "Load style > From
    # database" (loadDefaultStyle) brings them back from the same stored QML
    assert result["wilayahs"]["temporal_reloaded"]["active"] and result["wilayahs"]["temporal_reloaded"]["start"] == "valid_from"
    assert result["tribal-districts"]["renderer"]["colours"] == ["#ff" + style.CIVIL_STYLES["tribal-districts"]["stroke"][1:]]
    assert result["districts"]["renderer"]["layers"] == ["SimpleFill"]  # no stored style: QGIS's default


def test_qgis_project_loads_every_layer(server, tmp_path, artifacts):
    path = tmp_path / "atlas.qgs"
    path.write_bytes(requests.get(f"{server}/qgis/atlas.qgs", timeout=60).content)
    png, tiles_png = artifacts / "qgis-project-2023-07-01.png", artifacts / "qgis-project-vector-tiles.png"
    result = qgis("project", path, png, "2023-07-01", tiles_png)
    assert result["read"] and result["crs"] == "EPSG:3857"
    titles = {catalogue.layer(lid).title: lid for lid in catalogue.LAYER_IDS}
    oapif = {name: info for name, info in result["layers"].items() if info["provider"] == "oapif"}
    assert set(oapif) == set(titles)
    for name, info in oapif.items():
        assert info["valid"] and info["crs"] == "EPSG:4326", name
        assert info["features"] == len(requests.get(f"{server}/collections/{titles[name]}/items?limit=5000",
                                                    timeout=60).json()["features"]), name
        assert info["rights"] and info["licenses"], name
    assert oapif["TTP wilayahs (claimed units)"]["temporal"]["active"]
    # at national scale (500 px) every unit of the day is named, none dropped for want of room
    units = {f["properties"]["label"] for f in wilayahs.select(
        requests.get(f"{server}/collections/wilayahs/items", timeout=60).json()["features"], "2023-07-01")}
    assert len(units) == 15 and units <= set(result["labels"]), units - set(result["labels"])
    tiles = [info for info in result["layers"].values() if info["provider"] == "vectortile"]
    assert len(tiles) == 1 and tiles[0]["valid"] and not tiles[0]["visible"]
    assert tiles[0]["styles"]["wilayahs: North zone"] == "#%02x0072b2" % round(255 * style.ZONE_FILL_OPACITY)
    assert tiles[0]["labels"] == len(style.LABEL_STYLES) + len(style.PLACE_STYLES)
    assert_zone_colours(tiles_png)  # the tile layer is styled in the project itself (today's units)
    assert_names_drawn_once(server, result["tile_labels"], dt.date.today().isoformat())
    assert result["time"][0] == wilayahs.load()["periods"][0]["from"]
    assert catalogue.CAVEAT in result["abstract"] and "CC BY-IGO 3.0" in result["abstract"]
    assert_zone_colours(png)
