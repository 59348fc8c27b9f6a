"""The OpenAPI document: valid OpenAPI 3.0, complete, and honest about limits and parameters."""

from __future__ import annotations

import pytest
import requests
from openapi_spec_validator import validate

from layers import catalogue
from server import app as app_module
from server import openapi


@pytest.fixture(scope="module")
def spec(server) -> dict:
    response = requests.get(f"{server}/api", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return response.json()


def test_document_is_valid_openapi_3(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.0")


def test_every_layer_has_items_item_and_download_paths(spec):
    for lid in catalogue.LAYER_IDS:
        assert f"/collections/{lid}/items" in spec["paths"]
        assert f"/collections/{lid}/items/{{featureId}}" in spec["paths"]
    download = spec["paths"]["/collections/{collectionId}/download.{format}"]["get"]
    formats = next(p for p in download["parameters"] if p["name"] == "format")["schema"]["enum"]
    assert set(formats) == {"geojson", "gpkg", "shp.zip", "fgb", "kml", "csv.zip", "topojson"}


def parameters(spec: dict, path: str) -> dict[str, dict]:
    """The parameters of a GET operation by name, ``$ref``-erenced ones resolved."""
    found = {}
    for p in spec["paths"][path]["get"]["parameters"]:
        if "$ref" in p:
            p = spec["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]
        found[p["name"]] = p
    return found


def test_limit_default_and_maximum_are_advertised_and_enforced(spec, server):
    limit = parameters(spec, "/collections/tehsils/items")["limit"]["schema"]
    assert (limit["default"], limit["maximum"]) == (openapi.DEFAULT_LIMIT, openapi.MAX_LIMIT)
    default = requests.get(f"{server}/collections/tehsils/items", timeout=30).json()
    assert default["numberReturned"] == min(577, limit["default"])
    assert requests.get(f"{server}/collections/countries/items?limit={limit['maximum']}", timeout=30).status_code == 200
    too_many = requests.get(f"{server}/collections/countries/items?limit={limit['maximum'] + 1}", timeout=30)
    assert too_many.status_code == 400 and too_many.json()["parameter"] == "limit"


def test_property_filters_are_listed_with_their_values(spec):
    names = {name: p["schema"] for name, p in parameters(spec, "/collections/wilayahs/items").items()}
    assert names["zone"]["enum"] == ["north", "south"]
    assert names["confidence"]["enum"] == ["high", "low", "medium"]
    assert names["part"]["enum"] == ["core", "extension"]
    assert "province" in names and "unit" in names
    district_params = set(parameters(spec, "/collections/districts/items"))
    assert {"province", "division", "bbox", "datetime", "limit", "offset"} <= district_params


def test_endpoint_modules_add_paths_through_their_openapi_function(atlas, monkeypatch):
    """The extension point for tiles/maps/exports: ``openapi(ctx)`` in a FEATURE_MODULES module."""
    module = app_module.feature_modules()[1]
    zoom = openapi.param("z", "path", {"type": "integer"}, "Zoom")
    extra = {"paths": {"/tiles/{z}": openapi.operation("A tile", "Tiles", [zoom],
                                                       openapi.content({"type": "string"}, "image/png"))},
             "components": {"schemas": {"Tile": {"type": "string"}}}}
    monkeypatch.setattr(module, "openapi", lambda ctx: extra, raising=False)
    spec = openapi.document(openapi.ApiContext(atlas, {}), "http://example.org")
    assert "/tiles/{z}" in spec["paths"] and "Tile" in spec["components"]["schemas"]
    assert "Problem" in spec["components"]["schemas"]
    validate(spec)


def test_response_checker_catches_a_mismatch(spec):
    """The checker every features test uses must be able to fail."""
    good = b'{"conformsTo": ["x"]}'
    assert openapi.response_errors(spec, "GET", "/conformance", 200, "application/json", good) == []
    assert openapi.response_errors(spec, "GET", "/conformance", 200, "application/json", b'{"conformsTo": 3}')
    assert openapi.response_errors(spec, "GET", "/conformance", 200, "image/png", good)
    assert openapi.response_errors(spec, "GET", "/nowhere", 200, "application/json", good)
    assert openapi.response_errors(spec, "GET", "/nowhere", 404, "text/html", b"<p>gone</p>")
