"""QGIS 3.22 (Debian's python3-qgis, headless) as the client of the features API and of the GeoPackage
downloads: every collection loads with its count, the valid_from filter returns features, downloads open styled."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import requests

from layers import wilayahs
from tests.test_qgis import SYSTEM_PYTHON, qgis
from tests.test_qgis import pytestmark  # noqa: F401  (skipped where QGIS is not installed)

# Loads each collection over OAPIF, with an optional subset string (QGIS's filter), and counts its features.
LOAD = """
import json, sys
from qgis.core import QgsApplication, QgsVectorLayer
app = QgsApplication([], False)
app.initQgis()
base, layers = sys.argv[1], json.loads(sys.argv[2])
found = {}
for name, subset in layers.items():
    layer = QgsVectorLayer(f"url='{base}' typename='{name}'", name, "OAPIF")
    if subset:
        layer.setSubsetString(subset)
    fields = {f.name(): f.typeName() for f in layer.fields()}
    found[name] = {"valid": layer.isValid(), "features": sum(1 for _ in layer.getFeatures()), "fields": fields}
print(json.dumps(found))
"""


def load_in_qgis(server: str, layers: dict[str, str]) -> dict:
    done = subprocess.run([SYSTEM_PYTHON, "-c", LOAD, server, json.dumps(layers)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": ""},
                          cwd="/tmp")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_qgis_loads_every_collection_and_filters_on_valid_from(server, atlas):
    collections = [c["id"] for c in requests.get(f"{server}/collections", timeout=30).json()["collections"]]
    found = load_in_qgis(server, {**{cid: "" for cid in collections}, "wilayahs": "\"valid_from\" <= '2023-07-01'"})
    for cid in collections:
        want = requests.get(f"{server}/collections/{cid}/items", params={"limit": 5000}, timeout=60).json()
        if cid != "wilayahs":
            assert found[cid]["valid"] and found[cid]["features"] == want["numberMatched"] > 0, cid
    before = [f for f in atlas.features("wilayahs") if f["properties"]["valid_from"] <= "2023-07-01"]
    assert found["wilayahs"]["features"] == len(before) > 0
    assert found["wilayahs"]["fields"]["valid_from"] == "Date"


@pytest.mark.parametrize("collection", ["wilayahs", "wilayahs-2023-06-30", "tribal-districts"])
def test_geopackage_downloads_open_styled_in_qgis(server, atlas, tmp_path, collection):
    path = tmp_path / f"{collection}.gpkg"
    path.write_bytes(requests.get(f"{server}/collections/{collection}/download.gpkg", timeout=120).content)
    layer_id = collection.split("-20")[0]
    result = qgis("gpkg", path, layer_id)[layer_id]
    assert result["valid"] and result["features"] == len(wilayahs.select(atlas.features(layer_id), "2023-06-30")
                                                         if collection != layer_id else atlas.features(layer_id))
    assert result["renderer"]["type"] == ("RuleRenderer" if layer_id == "wilayahs" else "singleSymbol")
