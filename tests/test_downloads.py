"""Whole-layer downloads: every format re-reads with GDAL, with its licence, credits and caveat."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pyogrio
import pytest
import requests

from layers import catalogue, formats

CAVEAT_START = catalogue.CAVEAT[:40]
KEYS = list(formats.FORMATS)


def fetch(server, layer_id, key, tmp_path):
    response = requests.get(f"{server}/collections/{layer_id}/download.{key}", timeout=120)
    assert response.status_code == 200, response.text[:300]
    assert response.headers["Content-Type"].split(";")[0] == formats.FORMATS[key].mimetype
    assert f"filename={layer_id}.{key}" in response.headers["Content-Disposition"]
    path = tmp_path / f"{layer_id}.{key}"
    path.write_bytes(response.content)
    return path, response


def gdal_path(path, key):
    return f"/vsizip/{path}" if key == "shp.zip" else str(path)


def notices(path, key) -> str:
    """All the text a user of the file sees as its metadata."""
    if key == "shp.zip":
        with zipfile.ZipFile(path) as archive:
            return "".join(archive.read(n).decode() for n in archive.namelist() if n.endswith(".txt"))
    if key in ("gpkg", "fgb"):
        return json.dumps(pyogrio.read_info(str(path))["layer_metadata"])
    if key in ("geojson", "topojson"):
        doc = json.loads(path.read_bytes())
        return json.dumps({k: v for k, v in doc.items() if k not in ("features", "objects", "arcs")})
    text = path.read_text(encoding="utf-8")
    return text.split("<Placemark")[0] if key == "kml" else text.splitlines()[1]  # csv: a row


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("layer_id", ["wilayahs", "districts"])
def test_download_rereads_with_gdal(server, atlas, tmp_path, layer_id, key):
    path, _ = fetch(server, layer_id, key, tmp_path)
    info = pyogrio.read_info(gdal_path(path, key))
    assert info["features"] == len(atlas.features(layer_id))
    frame = pyogrio.read_dataframe(gdal_path(path, key))
    assert sorted(frame["id"]) == sorted(f["id"] for f in atlas.features(layer_id))
    if key == "csv":  # CSV carries no CRS: its WKT is CRS84 longitude/latitude, as the header column says
        assert info["crs"] is None and "WKT" in path.read_text(encoding="utf-8").split("\n")[0]
        minx, miny, maxx, maxy = frame.total_bounds
        lo = atlas.manifest["layers"][layer_id]["bbox"]
        assert lo[0] - 1e-6 <= minx and maxx <= lo[2] + 1e-6 and lo[1] - 1e-6 <= miny and maxy <= lo[3] + 1e-6
    else:
        assert info["crs"] == "EPSG:4326"
    text = notices(path, key)
    assert "CC BY-IGO" in text and "OCHA" in text
    assert (CAVEAT_START in text) == (layer_id == "wilayahs")


def test_download_is_produced_once_and_revalidates(server, atlas, tmp_path):
    first = requests.get(f"{server}/collections/zones/download.gpkg", timeout=120)
    cached = formats.cache_dir(atlas) / "zones.gpkg"
    stamp = cached.stat().st_mtime_ns
    again = requests.get(f"{server}/collections/zones/download.gpkg", timeout=120,
                         headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and cached.stat().st_mtime_ns == stamp
    assert not list(cached.parent.glob(".*"))  # no temporary files left behind


def test_download_refuses_query_parameters(server):
    response = requests.get(f"{server}/collections/zones/download.csv?zone=north", timeout=30)
    assert response.status_code == 400 and response.headers["Content-Type"] == "application/problem+json"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "server", *args], capture_output=True, text=True, timeout=300)


def test_cli_download(built, data_root, tmp_path):
    target = tmp_path / "zones.fgb"
    done = cli("download", "zones", "fgb", "--build", str(built), "--data", str(data_root), "--out", str(target))
    assert done.returncode == 0, done.stderr
    assert pyogrio.read_info(str(target))["features"] == 8
    bad = cli("download", "zones", "docx", "--build", str(built), "--data", str(data_root))
    assert bad.returncode == 2 and "docx" in bad.stderr and "gpkg" in bad.stderr and "Traceback" not in bad.stderr
