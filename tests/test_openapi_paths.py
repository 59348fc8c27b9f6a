"""Tiles, map pages, Leaflet assets and static exports in the OpenAPI document, and real responses matching it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import mercantile
import pytest
import requests
from openapi_spec_validator import validate

from layers import catalogue, webmap
from layers import tiles as layer_tiles
from server import openapi

PESHAWAR = mercantile.tile(71.55, 34.0, 7)
SEA = mercantile.tile(66.6, 24.4, 10)  # off Karachi: inside the bounds, no wilayah
TILE = f"{PESHAWAR.z}/{PESHAWAR.x}/{PESHAWAR.y}"
TILE_PATHS = ("/tiles/{tileset}/{z}/{x}/{y}.mvt", "/tiles/{tileset}/{z}/{x}/{y}.png",
              "/tiles/{tileset}/{z}/{x}/{y}@2x.png")
PATHS = (*TILE_PATHS, "/tiles/{tileset}.json", "/map", "/map/{layerId}", "/static/vendor/leaflet/{file}",
         "/static/vendor/leaflet/images/{file}", "/export.png", "/export.svg", "/export.pdf")


@pytest.fixture(scope="module")
def spec(server) -> dict:
    response = requests.get(f"{server}/api", timeout=30)
    assert response.status_code == 200
    return response.json()


def parameters(spec: dict, path: str) -> dict[str, dict]:
    return {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}


def check(spec: dict, server: str, url: str, status: int, headers: dict | None = None) -> requests.Response:
    """GET ``url`` (a path and query), assert its status, and that the document describes the response."""
    response = requests.get(server + url, headers=headers or {}, timeout=60)
    assert response.status_code == status, (url, response.text[:300])
    errors = openapi.response_errors(spec, "GET", urlsplit(url).path, response.status_code,
                                     response.headers.get("Content-Type", ""), response.content)
    assert errors == [], url
    return response


def test_document_is_valid_and_lists_every_path(spec):
    validate(spec)
    assert set(PATHS) <= set(spec["paths"])
    responses = spec["paths"]["/tiles/{tileset}/{z}/{x}/{y}.mvt"]["get"]["responses"]
    assert {"200", "204", "304", "400", "404"} <= set(responses)
    assert list(responses["200"]["content"]) == [layer_tiles.MVT_MIMETYPE]
    assert "204" not in spec["paths"]["/tiles/{tileset}/{z}/{x}/{y}.png"]["get"]["responses"]
    for fmt, mimetype in (("png", "image/png"), ("svg", "image/svg+xml"), ("pdf", "application/pdf")):
        assert list(spec["paths"][f"/export.{fmt}"]["get"]["responses"]["200"]["content"]) == [mimetype]


def test_parameters_have_enums_ranges_and_patterns(spec):
    tile = parameters(spec, "/tiles/{tileset}/{z}/{x}/{y}.png")
    assert tile["tileset"]["schema"]["enum"] == ["atlas", *catalogue.LAYER_IDS]
    assert (tile["z"]["schema"]["minimum"], tile["z"]["schema"]["maximum"]) == (0, 14)
    assert tile["y"]["schema"]["maximum"] == 2 ** 14 - 1
    assert parameters(spec, "/map/{layerId}")["layerId"]["schema"]["enum"] == list(catalogue.LAYER_IDS)
    assert parameters(spec, "/map")["embed"]["schema"]["enum"] == ["1", "true", "0", "false"]
    export = parameters(spec, "/export.pdf")
    assert {"layers", "datetime", "bbox", "focus", "size", "orientation", "dpi", "title", "subtitle"} <= set(export)
    assert export["layers"]["schema"]["items"]["enum"] == list(catalogue.LAYER_IDS)
    assert (export["dpi"]["schema"]["minimum"], export["dpi"]["schema"]["maximum"]) == (50, 600)
    vendor = parameters(spec, "/static/vendor/leaflet/{file}")["file"]["schema"]["enum"]
    assert {"leaflet.js", "leaflet.css"} <= set(vendor)


def test_every_documented_value_is_served(spec, server):
    """Each tileset's TileJSON and each vendor file exists, with the documented media type."""
    for tileset in parameters(spec, "/tiles/{tileset}.json")["tileset"]["schema"]["enum"]:
        assert check(spec, server, f"/tiles/{tileset}.json", 200).json()["tiles"][0].endswith(".mvt")
    for folder in ("/static/vendor/leaflet/{file}", "/static/vendor/leaflet/images/{file}"):
        for name in parameters(spec, folder)["file"]["schema"]["enum"]:
            check(spec, server, folder.replace("{file}", name), 200)


@pytest.mark.parametrize(("url", "status"), [
    (f"/tiles/atlas/{TILE}.mvt", 200),
    (f"/tiles/atlas/{TILE}.png", 200),
    (f"/tiles/wilayahs/{TILE}@2x.png?datetime=2023-07-01", 200),
    (f"/tiles/wilayahs/{SEA.z}/{SEA.x}/{SEA.y}.mvt", 204),
    (f"/tiles/wilayahs/{SEA.z}/{SEA.x}/{SEA.y}.png", 200),  # transparent
    ("/tiles/atlas/15/0/0.mvt", 404),  # beyond the zooms served
    ("/tiles/atlas/15/0/0.png", 404),  # beyond the zooms served (tiles cover the world: no bounds)
    ("/tiles/roads/0/0/0.mvt", 404),
    ("/tiles/atlas/0/0/0.webp", 404),
    ("/tiles/atlas/a/0/0.mvt", 400),
    ("/tiles/atlas/3/0/1.5.mvt", 400),  # a malformed y is a bad value, not a missing file
    ("/tiles/atlas/3/0/-1@2x.png", 400),
    ("/tiles/atlas/2/4/0.mvt", 400),
    ("/tiles/atlas/0/0/0.mvt?zoom=3", 400),
    ("/tiles/atlas/0/0/0.png?datetime=2023-07-01T00:00", 400),
    ("/tiles/atlas.json?datetime=2023-01-01/2023-06-30", 200),
    ("/tiles/nowhere.json", 404),
    ("/tiles/atlas.json?datetime=2023-13-01", 400),
    ("/map/countries?datetime=2023-07-01T08:00:00Z&embed=1", 200),
    ("/map/wilayat", 404),
    ("/map?embed=TRUE", 400),
    ("/map?datetime=20230701", 400),
    ("/static/vendor/leaflet/nope.js", 404),
    ("/static/vendor/leaflet/leaflet.css?v=1", 400),
    ("/export.png?dpi=50&size=A5", 200),
    ("/export.svg?dpi=50&layers=provinces,wilayahs&bbox=70,32,72,35", 200),
    ("/export.pdf?dpi=50&focus=Peshawar&datetime=2023-07-01", 200),
    ("/export.pdf?dpi=601", 400),
    ("/export.png?colour=red", 400),
    ("/export.svg?layers=roads", 400),
    ("/export.jpg", 404),
])
def test_responses_match_the_document(spec, server, url, status):
    response = check(spec, server, url, status)
    if status >= 400:
        assert response.headers["Content-Type"] == "application/problem+json"


def test_not_modified_is_documented(spec, server):
    for url in (f"/tiles/atlas/{TILE}.png", "/tiles/atlas.json", "/map/countries?datetime=2023-07-01",
                "/static/vendor/leaflet/leaflet.js", "/export.png?dpi=50&size=A5"):
        etag = check(spec, server, url, 200).headers["ETag"]
        check(spec, server, url, 304, headers={"If-None-Match": etag})


@pytest.mark.parametrize("value", ["2023-07-01", "2023-07-01T00:00:00+05:00", "2023-01-01/..", "../2023-07-01",
                                   "/", "..", "2023-07-01T00:00", "20230701", "2023-07-01x", "2023-07-01/2023/2024"])
def test_tile_datetime_pattern_is_what_the_server_accepts(spec, server, value):
    pattern = parameters(spec, "/tiles/{tileset}.json")["datetime"]["schema"]["pattern"]
    response = requests.get(f"{server}/tiles/wilayahs.json", params={"datetime": value}, timeout=30)
    assert response.status_code == (200 if re.search(pattern, value) else 400)


@pytest.mark.parametrize("value", ["2023-07-01", "2023-07-01T10:00+05:00", "2023-7-1", "20230701", "2023-07-01/..",
                                   "2023-07-01T10"])
def test_map_datetime_pattern_is_what_the_server_accepts(spec, server, value):
    assert parameters(spec, "/map")["datetime"]["schema"]["pattern"] == webmap.DATE_PATTERN
    response = requests.get(f"{server}/map/countries", params={"datetime": value, "embed": "1"}, timeout=60)
    assert response.status_code == (200 if re.search(webmap.DATE_PATTERN, value) else 400)
