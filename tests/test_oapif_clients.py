"""OGC API - Features the way GIS clients read it: paging from the API document, queryables, every
RFC 3339 datetime a client sends, one structure per period, and links to the styles and the QGIS project."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time

import jsonschema
import pyogrio
import pytest
import requests
import shapely
from openapi_spec_validator import validate

from geo import geometry
from layers import catalogue, wilayahs
from layers.features import parse_datetime, parse_instant
from server import openapi
from tests.conftest import free_port, stop_server

QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
PERIODS = [p["from"] for p in wilayahs.load()["periods"]]


def get_json(server: str, path: str, **params) -> dict:
    response = requests.get(f"{server}{path}", params=params, timeout=60)
    assert response.status_code == 200, (path, response.text[:300])
    return response.json()


# --- paging: GDAL reads the page size from components/parameters/limit -----------------------

@pytest.fixture(scope="module")
def logged_server(built, data_root, tmp_path_factory):
    """A server of our own whose access log (gunicorn's, on stdout) the test can read."""
    log = tmp_path_factory.mktemp("access") / "access.log"
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--build", str(built), "--data", str(data_root),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.DEVNULL, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, "server exited early"
            time.sleep(0.2)
        yield url, log
    finally:
        stop_server(process)


def test_gdal_reads_tehsils_in_two_requests_at_the_default_page_size(logged_server):
    url, log = logged_server
    frame = pyogrio.read_dataframe(f"OAPIF:{url}/", layer="tehsils")
    assert len(frame) == 577
    requests_made = [line for line in log.read_text().splitlines() if "/collections/tehsils/items" in line]
    assert 1 <= len(requests_made) <= 2, requests_made
    limits = [int(m) for line in requests_made for m in re.findall(r"[?&]limit=(\d+)", line)]
    assert openapi.DEFAULT_LIMIT in limits, requests_made


def test_items_parameters_are_shared_components(server):
    spec = get_json(server, "/api")
    validate(spec)
    limit = spec["components"]["parameters"]["limit"]
    assert (limit["in"], limit["schema"]["default"], limit["schema"]["maximum"]) == (
        "query", openapi.DEFAULT_LIMIT, openapi.MAX_LIMIT)
    for name in ("bbox", "offset", "datetime"):
        assert spec["components"]["parameters"][name]["name"] == name
    for lid in (*catalogue.LAYER_IDS, "wilayahs-2023-06-30"):
        refs = [p.get("$ref") for p in spec["paths"][f"/collections/{lid}/items"]["get"]["parameters"]]
        for name in ("limit", "offset", "bbox", "datetime"):
            assert f"#/components/parameters/{name}" in refs, (lid, name)


# --- datetime: every form clients send, never a 500 ------------------------------------------

@pytest.mark.parametrize(("value", "interval"), [
    ("2023-07-01", ("2023-07-01", "2023-07-01")),
    ("2023-07-01T10:00:00Z", ("2023-07-01", "2023-07-01")),
    ("2023-07-01t10:00:00.123456z", ("2023-07-01", "2023-07-01")),
    ("2023-07-01T02:00:00+05:00", ("2023-06-30", "2023-06-30")),
    ("2023-06-30T22:00:00-05:00", ("2023-07-01", "2023-07-01")),
    ("0000-01-01T00:00:00Z/2023-07-01", (None, "2023-07-01")),
    ("2023-07-01/9999-12-31T23:59:59Z", ("2023-07-01", None)),
    ("0001-01-01T00:00:00+01:00/9999-12-31T23:59:59-01:00", (None, None)),
    ("../2023-07-01", (None, "2023-07-01")), ("/2023-07-01", (None, "2023-07-01")),
    ("2023-07-01/", ("2023-07-01", None)), ("../..", (None, None)),
    ("2023-08-01T/..", ("2023-08-01", None)), ("2023-08-01T/2023-08-31T", ("2023-08-01", "2023-08-31")),
])
def test_parse_datetime(value, interval):
    assert parse_datetime(value) == interval


def test_parse_instant_at_the_calendar_ends():
    assert parse_instant("9999-12-31T23:59:59-01:00") == "9999-12-31"
    assert parse_instant("0000-01-01T00:00:00Z") == "0001-01-01"
    assert parse_instant("0001-01-01T00:00:00+01:00") == "0001-01-01"


EDGES = ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "0000-01-01T00:00:00Z",
         "9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z/9999-12-31T23:59:59-01:00"]


@pytest.mark.parametrize("value", EDGES)
@pytest.mark.parametrize("path", ["/collections/wilayahs/items", "/tiles/wilayahs.json", "/tiles/wilayahs/5/22/12.mvt",
                                  "/map/wilayahs", "/export.png?dpi=50&size=A5&layers=wilayahs"])
def test_calendar_ends_are_never_a_server_error(server, path, value):
    response = requests.get(f"{server}{path}", params={"datetime": value}, timeout=120)
    assert response.status_code < 500, response.text[:300]
    if path.startswith("/collections") or (path.endswith(".json") and "/" in value):
        assert response.status_code == 200, response.text[:300]


def test_the_qgis_filter_valid_from_before_a_date_returns_the_features(server):
    """QGIS turns ``"valid_from" <= '2023-07-01'`` into exactly this request."""
    response = requests.get(f"{server}/collections/wilayahs/items?datetime=0000-01-01T00:00:00Z/2023-07-01",
                            timeout=60)
    assert response.status_code == 200, response.text[:300]
    doc = response.json()
    want = [f["id"] for f in wilayahs.select(get_json(server, "/collections/wilayahs/items")["features"],
                                             None, "2023-07-01")]
    assert [f["id"] for f in doc["features"]] == want and doc["numberMatched"] == len(want) > 15


def test_gdal_date_filters_reach_the_server_as_dates(server):
    """GDAL 3.6 sends a -where on the interval's start as ``datetime=<date>T/..`` (a bare "T"): the server
    takes it as a date and answers what that interval means in OGC API - Features, the features valid on or
    after the day (GDAL does not filter further)."""
    frame = pyogrio.read_dataframe(f"OAPIF:{server}/collections/wilayahs", where="valid_from >= '2023-06-30'")
    want = sorted(f["id"] for f in get_json(server, "/collections/wilayahs/items")["features"]
                  if wilayahs.valid_during(f["properties"], "2023-06-30", None))
    assert sorted(frame["id"]) == want and len(want) > 12


# --- queryables and temporal properties ------------------------------------------------------

@pytest.mark.parametrize("lid", [*catalogue.LAYER_IDS, "wilayahs-2023-06-30"])
def test_queryables_are_a_json_schema_linked_from_the_collection(server, lid):
    collection = get_json(server, f"/collections/{lid}")
    link = next(link for link in collection["links"] if link["rel"] == QUERYABLES_REL)
    assert link["href"] == f"{server}/collections/{lid}/queryables" and link["type"] == "application/schema+json"
    response = requests.get(link["href"], timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/schema+json"
    schema = response.json()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == link["href"] and schema["type"] == "object" and schema["title"]
    assert schema["additionalProperties"] is False
    for name, prop in schema["properties"].items():  # every queryable is a filter the items accept
        if name != "geometry":
            value = prop["enum"][0] if "enum" in prop else "x"
            assert requests.get(f"{server}/collections/{lid}/items", params={name: value, "limit": 1},
                                timeout=30).status_code == 200, name


def test_wilayah_queryables_declare_dates_periods_and_values(server):
    props = get_json(server, "/collections/wilayahs/queryables")["properties"]
    assert props["valid_from"]["x-ogc-role"] == "primary-interval-start" and props["valid_from"]["format"] == "date"
    assert props["valid_to"]["x-ogc-role"] == "primary-interval-end"
    assert props["period"]["enum"] == PERIODS
    assert props["zone"]["enum"] == ["north", "south"] and props["confidence"]["enum"] == ["high", "low", "medium"]
    assert props["geometry"]["x-ogc-role"] == "primary-geometry"
    assert "period" not in get_json(server, "/collections/districts/queryables")["properties"]


def test_collections_declare_their_temporal_properties(server):
    doc = get_json(server, "/collections/wilayahs")
    assert doc["temporalProperties"]["valid_from"]["x-ogc-role"] == "primary-interval-start"
    assert doc["temporalProperties"]["valid_to"]["x-ogc-role"] == "primary-interval-end"
    assert doc["extent"]["temporal"]["interval"][0][0] == f"{PERIODS[0]}T00:00:00Z"
    assert "temporalProperties" not in get_json(server, "/collections/districts")


def test_conformance_lists_queryables(server):
    classes = get_json(server, "/conformance")["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables" in classes
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters" in classes


# --- one structure at a time -----------------------------------------------------------------

def overlaps_km2(geoms) -> float:
    """The largest area shared by any two of the geometries."""
    return max((float(geometry.area_km2([shapely.intersection(a, b)])[0])
                for a, b in itertools.combinations(geoms, 2)), default=0.0)


@pytest.mark.parametrize("layer_id", ["wilayahs", "zones"])
@pytest.mark.parametrize("period", PERIODS)
def test_each_period_collection_is_one_structure_without_overlaps(server, atlas, layer_id, period):
    lid = f"{layer_id}-{period}"
    served = pyogrio.read_dataframe(f"OAPIF:{server}/", layer=lid)
    want = [f["id"] for f in wilayahs.select(atlas.features(layer_id), period)]
    assert sorted(served["id"]) == sorted(want) and len(want) > 0
    assert overlaps_km2(served.geometry.values) < 0.01
    by_period = get_json(server, f"/collections/{layer_id}/items", period=period)
    assert sorted(f["id"] for f in by_period["features"]) == sorted(want)


def test_period_counts_match_the_readme(server):
    first = get_json(server, "/collections/wilayahs-2022-12-31/items")
    assert first["numberMatched"] == 9 and len({f["properties"]["unit"] for f in first["features"]}) == 9
    twelve = get_json(server, "/collections/wilayahs-2023-06-30/items")
    assert twelve["numberMatched"] == 15 and len({f["properties"]["unit"] for f in twelve["features"]}) == 12
    doc = get_json(server, "/collections/wilayahs-2023-06-30")
    assert "12 units" in doc["title"] and "2023-06-30" in doc["title"] and doc["caveat"] == catalogue.CAVEAT
    assert doc["period"]["start"] == "2023-06-30"


def test_period_collections_span_their_own_period(server):
    starts = [p["from"] for p in wilayahs.load()["periods"]]
    for layer_id in ("wilayahs", "zones"):
        for start, following in zip(starts, [*starts[1:], None], strict=True):
            interval = get_json(server, f"/collections/{layer_id}-{start}")["extent"]["temporal"]["interval"][0]
            assert interval[0] == f"{start}T00:00:00Z"
            if following is None:
                assert interval[1] is None
            else:  # the day before the next structure, at its last second
                assert interval[1] < f"{following}T00:00:00Z" and interval[1].endswith("T23:59:59Z")


@pytest.mark.parametrize("collection_id", ["wilayahs", "zones", "districts", "countries", "wilayahs-2023-06-14"])
def test_items_are_one_geometry_type_as_in_the_downloads(server, collection_id):
    items = get_json(server, f"/collections/{collection_id}/items", limit="5000")["features"]
    assert items and {f["geometry"]["type"] for f in items} == {"MultiPolygon"}
    one = get_json(server, f"/collections/{collection_id}/items/{items[0]['id']}")
    assert one["geometry"]["type"] == "MultiPolygon"


def test_period_collection_downloads(server, tmp_path):
    response = requests.get(f"{server}/collections/wilayahs-2023-06-30/download.gpkg", timeout=120)
    assert response.status_code == 200
    path = tmp_path / "wilayahs-2023-06-30.gpkg"
    path.write_bytes(response.content)
    info = pyogrio.read_info(path, layer="wilayahs")
    assert info["features"] == 15 and "12 units" in info["layer_metadata"]["TITLE"]


def test_bad_period_names_the_valid_ones(server):
    response = requests.get(f"{server}/collections/wilayahs/items", params={"period": "2023-07-01"}, timeout=30)
    assert response.status_code == 400 and response.json()["parameter"] == "period"
    assert all(p in response.json()["valid"] for p in PERIODS)


# --- styles and the QGIS project -------------------------------------------------------------

@pytest.mark.parametrize("lid", ["wilayahs", "districts", "zones-2023-06-30"])
def test_collections_link_to_their_styles(server, lid):
    links = get_json(server, f"/collections/{lid}")["links"]
    styles = {link["type"]: link["href"] for link in links if link["rel"] == "stylesheet"}
    layer_id = lid.split("-20")[0]
    assert styles == {"application/vnd.qgis.qml+xml": f"{server}/styles/{layer_id}.qml",
                      "application/vnd.ogc.sld+xml": f"{server}/styles/{layer_id}.sld",
                      "application/vnd.mapbox.style+json": f"{server}/tiles/{layer_id}/style.json"}
    for href in styles.values():
        assert requests.get(href, timeout=60).status_code == 200, href


def test_landing_page_links_to_the_qgis_project(server):
    links = get_json(server, "/")["links"]
    project = next(link for link in links if link["href"].endswith("/qgis/atlas.qgs"))
    response = requests.get(project["href"], timeout=60)
    assert response.status_code == 200 and b"<qgis" in response.content[:2000]
