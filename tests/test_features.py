"""OGC API - Features against the real server: GDAL reads every layer, filters, paging, errors, HTML.

Every response fetched through the ``client`` fixture is checked against the served OpenAPI document.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import numpy as np
import pyogrio
import pytest
import requests
import shapely

from geo import geometry
from layers import catalogue
from server import openapi

CAVEAT_START = catalogue.CAVEAT[:40]
BBOX = (70.0, 32.0, 71.5, 33.5)  # around Bannu and the Waziristans


@pytest.fixture(scope="module")
def spec(server) -> dict:
    return requests.get(f"{server}/api", timeout=30).json()


@pytest.fixture(scope="module")
def client(server, spec):
    """A session whose every response must match the OpenAPI document."""
    session = requests.Session()

    def check(response, *args, **kwargs):
        path = urlsplit(response.url).path
        errors = openapi.response_errors(spec, response.request.method, path, response.status_code,
                                         response.headers.get("Content-Type", ""), response.content)
        assert errors == [], errors

    session.hooks["response"].append(check)
    yield session
    session.close()


def get(client, server, path, status=200, **kwargs):
    response = client.get(f"{server}{path}", timeout=60, **kwargs)
    assert response.status_code == status, response.text[:500]
    return response


def read_built(atlas, layer_id, bbox=None):
    return pyogrio.read_dataframe(atlas.file(layer_id), bbox=bbox)


def assert_same_features(served, built):
    assert len(served) == len(built) > 0
    served, built = served.sort_values("id"), built.sort_values("id")
    assert served["id"].tolist() == built["id"].tolist()
    got, want = geometry.area_km2(served.geometry.values), geometry.area_km2(built.geometry.values)
    np.testing.assert_allclose(got, want, rtol=1e-4)


# --- GDAL as the client ----------------------------------------------------------------------

@pytest.mark.parametrize("layer_id", catalogue.LAYER_IDS)
def test_gdal_reads_every_collection(server, atlas, layer_id):
    served = pyogrio.read_dataframe(f"OAPIF:{server}/", layer=layer_id)
    assert served.crs.to_epsg() == 4326 or "CRS84" in served.crs.to_wkt()
    assert_same_features(served, read_built(atlas, layer_id))


@pytest.mark.parametrize("layer_id", ["districts", "tehsils", "wilayahs"])
def test_gdal_bbox_filter(server, atlas, layer_id):
    served = pyogrio.read_dataframe(f"OAPIF:{server}/", layer=layer_id, bbox=BBOX)
    built = read_built(atlas, layer_id, bbox=BBOX)
    assert len(built) < len(atlas.features(layer_id))  # the filter really filters
    assert_same_features(served, built)


def test_gdal_pages_through_several_pages(server, atlas):
    served = pyogrio.read_dataframe(f"OAPIF:{server}/", layer="districts", PAGE_SIZE=40)  # 5 pages
    assert_same_features(served, read_built(atlas, "districts"))


# --- capabilities ----------------------------------------------------------------------------

def test_landing_page_links(client, server):
    doc = get(client, server, "/").json()
    rels = {link["rel"]: link for link in doc["links"]}
    assert rels["service-desc"]["href"] == f"{server}/api"
    assert rels["service-desc"]["type"] == openapi.OPENAPI_MEDIA
    assert rels["conformance"]["href"] == f"{server}/conformance"
    assert rels["data"]["href"] == f"{server}/collections"
    assert "service-doc" in rels and "self" in rels
    assert "OCHA" in doc["attribution"]


def test_conformance(client, server):
    classes = get(client, server, "/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in classes
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in classes


def test_collections_describe_every_layer(client, server, atlas):
    docs = {c["id"]: c for c in get(client, server, "/collections").json()["collections"]}
    assert list(docs)[:len(catalogue.LAYER_IDS)] == list(catalogue.LAYER_IDS)  # then the period collections
    for lid in catalogue.LAYER_IDS:
        doc = docs[lid]
        assert doc["extent"]["spatial"]["bbox"] == [atlas.manifest["layers"][lid]["bbox"]]
        rels = [(link["rel"], link["type"]) for link in doc["links"]]
        assert ("items", "application/geo+json") in rels and ("license", "text/html") in rels
        assert sum(rel == "enclosure" for rel, _ in rels) == 7
        assert doc["attribution"] and doc["licence"]
    wilayahs = docs["wilayahs"]
    assert CAVEAT_START in wilayahs["description"] and wilayahs["caveat"] == catalogue.CAVEAT
    assert wilayahs["extent"]["temporal"]["interval"][0][0] == "2022-12-31T00:00:00Z"
    assert "temporal" not in docs["districts"]["extent"]
    assert get(client, server, "/collections/zones").json()["caveat"] == catalogue.CAVEAT


# --- items: filters and paging ---------------------------------------------------------------

def items(client, server, layer_id, **params):
    response = get(client, server, f"/collections/{layer_id}/items", params=params)
    assert response.headers["Content-Type"] == "application/geo+json"
    return response.json()


@pytest.mark.parametrize(("moment", "features", "units", "cores"), [
    ("2023-03-01", 9, 9, 9), ("2023-07-01", 15, 12, 12), ("2023-07-01T12:00:00Z", 15, 12, 12)])
def test_datetime_gives_the_units_valid_then(client, server, moment, features, units, cores):
    doc = items(client, server, "wilayahs", datetime=moment)
    assert doc["numberMatched"] == doc["numberReturned"] == features
    assert len({f["properties"]["unit"] for f in doc["features"]}) == units
    assert items(client, server, "wilayahs", datetime=moment, part="core")["numberMatched"] == cores


def test_datetime_intervals(client, server, atlas):
    everything = len(atlas.features("wilayahs"))
    assert items(client, server, "wilayahs", datetime="../..")["numberMatched"] == everything
    assert items(client, server, "wilayahs", datetime="../2023-03-01")["numberMatched"] == 9
    before = items(client, server, "wilayahs", datetime="2022-01-01/2022-06-30")
    assert before["numberMatched"] == 0 and before["features"] == []
    assert items(client, server, "wilayahs", datetime="2023-01-01/..")["numberMatched"] == everything
    assert items(client, server, "districts", datetime="2023-03-01")["numberMatched"] == 167  # untimed: all


@pytest.mark.parametrize(("layer_id", "limit", "params"), [
    ("wilayahs", 4, {}), ("districts", 50, {}), ("wilayahs", 2, {"datetime": "2023-07-01", "zone": "south"})])
def test_next_links_return_every_feature_once(client, server, atlas, layer_id, limit, params):
    url, seen, pages = f"{server}/collections/{layer_id}/items", [], 0
    query = {"limit": limit, **params}
    matched = None
    while url:
        doc = client.get(url, params=query, timeout=60).json()
        query = None  # the next link carries the query
        matched = doc["numberMatched"] if matched is None else matched
        seen += [f["id"] for f in doc["features"]]
        pages += 1
        links = {link["rel"]: link["href"] for link in doc["links"]}
        assert links["self"].startswith(f"{server}/collections/{layer_id}/items")
        url = links.get("next")
        if pages > 1:
            assert "prev" in links
    assert len(seen) == len(set(seen)) == matched
    assert pages == -(-matched // limit)
    if not params:
        assert seen == [f["id"] for f in atlas.features(layer_id)]


@pytest.mark.parametrize(("layer_id", "prop", "param", "value"), [
    ("wilayahs", "zone", "zone", "north"), ("wilayahs", "confidence", "confidence", "low"),
    ("districts", "province", "province", "Balochistan"), ("tehsils", "district_id", "district_id", "PK528"),
    ("wilayahs", "provinces", "province", "Punjab"), ("wilayahs", "unit", "unit", "peshawar")])
def test_property_filters(client, server, atlas, layer_id, prop, param, value):
    want = [f["id"] for f in atlas.features(layer_id)
            if (value in f["properties"][prop] if isinstance(f["properties"][prop], list)
                else f["properties"][prop] == value)]
    doc = items(client, server, layer_id, **{param: value})
    assert [f["id"] for f in doc["features"]] == want and len(want) > 0


def test_bbox_filter_matches_shapely(client, server, atlas):
    doc = items(client, server, "districts", bbox=",".join(map(str, BBOX)))
    geoms = atlas.geometries["districts"]
    want = [f["id"] for f, g in zip(atlas.features("districts"), geoms, strict=True)
            if shapely.intersects(g, shapely.box(*BBOX))]
    assert [f["id"] for f in doc["features"]] == want and 0 < len(want) < 167
    assert doc["numberMatched"] == len(want)


def test_feature_and_its_links(client, server, atlas):
    fid = atlas.features("wilayahs")[0]["id"]
    response = get(client, server, f"/collections/wilayahs/items/{fid}")
    assert response.headers["Content-Type"] == "application/geo+json"
    feature = response.json()
    assert feature["id"] == fid and feature["properties"]["caveat"] == catalogue.CAVEAT
    assert {link["rel"] for link in feature["links"]} >= {"self", "collection", "alternate"}
    np.testing.assert_allclose(geometry.area_km2([shapely.geometry.shape(feature["geometry"])]),
                               geometry.area_km2([atlas.geometries["wilayahs"][0]]), rtol=1e-4)


def test_whole_layer_page_is_cached_with_etag_and_gzip(client, server):
    first = get(client, server, "/collections/districts/items?limit=1000")
    etag = first.headers["ETag"]
    again = get(client, server, "/collections/districts/items?limit=1000", status=304,
                headers={"If-None-Match": etag})
    assert again.content == b""
    zipped = client.get(f"{server}/collections/districts/items?limit=1000", timeout=60,
                        headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.json()["numberReturned"] == 167
    assert first.headers["Cache-Control"].startswith("public")


# --- bad requests ----------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "status", "parameter"), [
    ("/collections/nowhere", 404, None), ("/collections/nowhere/items", 404, None),
    ("/collections/districts/items/PK-nope", 404, None), ("/collections/districts/download.doc", 404, None),
    ("/collections/districts/items?colour=red", 400, "colour"),
    ("/collections/districts/items?limit=0", 400, "limit"), ("/collections/districts/items?limit=ten", 400, "limit"),
    ("/collections/districts/items?offset=-1", 400, "offset"),
    ("/collections/districts/items?bbox=1,2,3", 400, "bbox"), ("/collections/districts/items?bbox=5,0,1,1", 400, "bbox"),
    ("/collections/wilayahs/items?datetime=yesterday", 400, "datetime"),
    ("/collections/wilayahs/items?datetime=2023-07-01/2023-01-01", 400, "datetime"),
    ("/collections/wilayahs/items?datetime=2023-02-30", 400, "datetime"),
    ("/collections/wilayahs/items?zone=east", 400, "zone"),
    ("/collections/wilayahs/items?crs=EPSG:3857", 400, "crs"),
    ("/collections/wilayahs/items?limit=1&limit=2", 400, "limit"), ("/collections?f=xml", 400, "f")])
def test_bad_requests_are_problems(client, server, path, status, parameter):
    response = get(client, server, path, status=status)
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["detail"]
    if parameter:
        assert problem["parameter"] == parameter and problem["valid"]


def test_other_methods_are_refused(client, server):
    response = client.post(f"{server}/collections/districts/items", timeout=30)
    assert response.status_code == 405
    assert response.headers["Content-Type"] == "application/problem+json"


def test_unknown_collection_names_the_valid_ones(client, server):
    valid = get(client, server, "/collections/provinc", status=404).json()["valid"]
    assert set(catalogue.LAYER_IDS) <= set(valid) and "wilayahs-2023-06-30" in valid


# --- HTML and proxies ------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "expected"), [
    ("/", "/collections/wilayahs?f=html"), ("/collections", "/map/districts"),
    ("/collections/wilayahs", "Claimed units, not areas of control"), ("/collections/wilayahs", "/map/wilayahs"),
    ("/collections/zones/items?datetime=2023-07-01", "Claimed units, not areas of control"),
    ("/collections/wilayahs/items/peshawar-2022-12-31-core", "member_districts"),
    ("/api", "/collections/{collectionId}/download.{format}"),
    ("/collections/wilayahs", '<iframe class="map" src="http'),
    ("/collections/wilayahs/items/zhob-2023-06-14-core", "/map/wilayahs?datetime=2023-06-14")])
def test_html_for_browsers(client, server, path, expected):
    response = get(client, server, path, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert response.headers["Content-Type"].startswith("text/html")
    assert expected in response.text and "OCHA" in response.text


def test_configured_base_url_is_used_in_links(atlas):
    from server.app import create_app

    client = create_app(atlas, BASE_URL="https://atlas.example.org/ogc").test_client()
    doc = client.get("/collections/wilayahs/items?limit=5").get_json()
    hrefs = [link["href"] for link in doc["links"]]
    assert all(h.startswith("https://atlas.example.org/ogc/collections/wilayahs") for h in hrefs)
    assert any("offset=5" in h for h in hrefs)
