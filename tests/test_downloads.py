"""Whole-layer downloads: every format re-reads with GDAL, with its licence, credits and caveat."""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
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
    """The file GDAL opens: the table inside a zip (``/vsizip/``), else the download itself."""
    layer_id = path.name.removesuffix(f".{key}")
    inside = {"shp.zip": f"{layer_id}.shp", "csv.zip": f"{layer_id}.csv"}
    return f"/vsizip/{path}/{inside[key]}" if key in inside else str(path)


OPEN_OPTIONS = {"csv.zip": {"EMPTY_STRING_AS_NULL": "YES"}}  # as the zip's README says


def notices(path, key) -> str:
    """All the text a user of the file sees as its metadata."""
    if key in ("shp.zip", "csv.zip"):
        with zipfile.ZipFile(path) as archive:
            return "".join(archive.read(n).decode() for n in archive.namelist() if n.endswith(".txt"))
    if key in ("gpkg", "fgb"):
        return json.dumps(pyogrio.read_info(str(path), layer=0)["layer_metadata"])
    if key in ("geojson", "topojson"):
        doc = json.loads(path.read_bytes())
        return json.dumps({k: v for k, v in doc.items() if k not in ("features", "objects", "arcs")})
    return path.read_text(encoding="utf-8").split("<Placemark")[0]  # kml


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("layer_id", ["wilayahs", "districts"])
def test_download_rereads_with_gdal(server, atlas, tmp_path, layer_id, key):
    path, _ = fetch(server, layer_id, key, tmp_path)
    info = pyogrio.read_info(gdal_path(path, key), layer=0)
    assert info["features"] == len(atlas.features(layer_id))
    assert info["crs"] == "EPSG:4326"
    if key not in ("kml", "shp.zip", "csv.zip"):  # none can declare MultiPolygon (a shp "Polygon" holds many
        # parts, a KML Placemark a MultiGeometry, a CSV WKT text): the features are multipolygons all the same
        assert info["geometry_type"] == "MultiPolygon"
    text = notices(path, key)
    assert "CC BY-IGO" in text and "OCHA" in text
    assert (CAVEAT_START in text) == (layer_id == "wilayahs")


# --- lossless: every property of every feature, as GDAL reads it back -------------------------

def plain(value):
    """A value as read back, in GeoJSON's terms: missing values as None, dates as ISO dates, arrays as lists."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, dt.date)):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def same(read, want) -> bool:
    """Lists and objects may come back as JSON text (formats without lists) or as lists (TopoJSON)."""
    if isinstance(want, (list, dict)) and isinstance(read, str):
        return json.loads(read) == want
    return read == want


def field_name(key: str, name: str) -> str:
    """The field GDAL gives a property in a format: Shapefile's documented renames, KML's Placemark <name>."""
    if key == "shp.zip":
        return formats.shapefile_name(name)
    return "Name" if key == "kml" and name == "name" else name


def read_pyogrio(source: str, layer: str, **open_options) -> dict[str, dict]:
    """Every feature's properties by id, read by pyogrio's GDAL (3.7 and later)."""
    frame = pyogrio.read_dataframe(source, layer=layer, **open_options)
    return {r["id"]: {k: plain(v) for k, v in r.items()}
            for r in frame.drop(columns="geometry", errors="ignore").to_dict("records")}


def read_gdal36(source: str, layer: str, **open_options) -> dict[str, dict]:
    """The same read by Debian's GDAL 3.6 (``ogr2ogr`` to GeoJSON), the GDAL of QGIS 3.22 on Debian 12."""
    options = [arg for k, v in open_options.items() for arg in ("-oo", f"{k}={v}")]
    done = subprocess.run(["ogr2ogr", "-f", "GeoJSON", "/vsistdout/", source, layer, *options],
                          capture_output=True, text=True, timeout=120, check=True)
    assert "Warning" not in done.stderr, done.stderr
    features = json.loads(done.stdout)["features"]
    return {f["properties"].get("id", f.get("id")): {"id": f.get("id"), **f["properties"]} for f in features}


def read_back(path, key: str, read=read_pyogrio) -> dict[str, dict]:
    """Every feature's properties by id, read with GDAL; a Shapefile's long texts from its sidecar table."""
    layer_id = path.name.removesuffix(f".{key}")
    found = read(gdal_path(path, key), layer_id, **OPEN_OPTIONS.get(key, {}))
    if key == "shp.zip":
        with zipfile.ZipFile(path) as archive:
            has_sidecar = f"{layer_id}.long.csv" in archive.namelist()
        if has_sidecar:
            marker = formats.long_marker(layer_id)
            long = read(f"/vsizip/{path}/{layer_id}.long.csv", f"{layer_id}.long", EMPTY_STRING_AS_NULL="YES")
            for fid, props in found.items():
                for name, value in long[fid].items():
                    short = formats.shapefile_name(name)
                    if props[short] == marker:
                        props[short] = value
    return found


def assert_lossless(found: dict[str, dict], features: list[dict], key: str) -> None:
    assert sorted(found) == sorted(f["id"] for f in features)
    for feature in features:
        got = found[feature["id"]]
        for name, want in feature["properties"].items():
            read = got.get(field_name(key, name))  # GDAL's GeoJSON writer leaves unset fields out
            assert same(read, want), (key, feature["id"], name, read, want)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("layer_id", catalogue.LAYER_IDS)
def test_every_property_round_trips(server, atlas, tmp_path, layer_id, key):
    path, _ = fetch(server, layer_id, key, tmp_path)
    assert_lossless(read_back(path, key), atlas.features(layer_id), key)


@pytest.mark.parametrize("key", KEYS)
def test_gdal_3_6_reads_every_property_without_warnings(server, atlas, tmp_path, key):
    """Debian's ogrinfo/ogr2ogr (GDAL 3.6): no warning, the CRS, and every value of the richest layer."""
    path, _ = fetch(server, "wilayahs", key, tmp_path)
    info = subprocess.run(["ogrinfo", "-al", "-so", gdal_path(path, key),
                           *(arg for k, v in OPEN_OPTIONS.get(key, {}).items() for arg in ("-oo", f"{k}={v}"))],
                          capture_output=True, text=True, timeout=60, check=True)
    assert "Warning" not in info.stdout + info.stderr, info.stderr
    assert f"Feature Count: {len(atlas.features('wilayahs'))}" in info.stdout
    if key != "topojson":  # GDAL 3.6's TopoJSON reader sets no CRS at all (3.7+ reads it as EPSG:4326)
        assert 'ID["EPSG",4326]' in info.stdout
    assert_lossless(read_back(path, key, read_gdal36), atlas.features("wilayahs"), key)


def test_geopackage_is_version_1_2_with_dates_and_styles(server, tmp_path):
    path, _ = fetch(server, "wilayahs", "gpkg", tmp_path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47  # "GPKG"
        assert db.execute("PRAGMA user_version").fetchone()[0] == 10200
        columns = {row[1]: row[2] for row in db.execute('PRAGMA table_info("wilayahs")')}
        assert columns["valid_from"] == columns["valid_to"] == "DATE"
        assert db.execute("SELECT geometry_type_name FROM gpkg_geometry_columns").fetchone()[0] == "MULTIPOLYGON"
        styles = db.execute("SELECT f_table_name, styleQML, styleSLD FROM layer_styles").fetchall()
    (table, qml, sld), = styles
    assert table == "wilayahs" and "<qgis" in qml and "StyledLayerDescriptor" in sld


def test_shapefile_names_and_long_texts_are_documented(server, tmp_path):
    path, _ = fetch(server, "wilayahs", "shp.zip", tmp_path)
    fields = pyogrio.read_info(gdal_path(path, "shp.zip"))["fields"].tolist()
    assert all(len(name) <= 10 for name in fields) and "members" in fields and "credit" in fields
    with zipfile.ZipFile(path) as archive:
        readme = archive.read("wilayahs.README.txt").decode()
    dbf_values = pyogrio.read_dataframe(gdal_path(path, "shp.zip"))["members"].tolist()
    assert "members = member_districts" in readme and "wilayahs.long.csv" in readme
    marker = formats.long_marker("wilayahs")
    for value in dbf_values:  # whole JSON documents, or the marker: never JSON cut in half
        assert value == marker or isinstance(json.loads(value), list)
    assert marker in dbf_values


def test_download_is_produced_once_and_revalidates(server, atlas, tmp_path):
    first = requests.get(f"{server}/collections/zones/download.gpkg", timeout=120)
    cached = formats.cache_dir(atlas) / "zones.gpkg"
    stamp = cached.stat().st_mtime_ns
    again = requests.get(f"{server}/collections/zones/download.gpkg", timeout=120,
                         headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and cached.stat().st_mtime_ns == stamp
    assert not list(cached.parent.glob(".*"))  # no temporary files left behind


def test_download_refuses_query_parameters(server):
    response = requests.get(f"{server}/collections/zones/download.gpkg?zone=north", timeout=30)
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
