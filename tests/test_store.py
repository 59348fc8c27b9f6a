"""The opened build keeps no GeoJSON coordinate lists, and every byte served from it is still the build's own."""

from __future__ import annotations

import json

import pytest
import requests

from geo import geojson
from layers import catalogue
from layers.features import LayerFeatures, collections


@pytest.fixture(scope="module")
def written(atlas) -> dict[str, list[dict]]:
    """Each layer's features as the build wrote them (the whole file through json, coordinates included)."""
    return {lid: json.loads(atlas.file(lid).read_bytes())["features"] for lid in catalogue.LAYER_IDS}


def test_features_hold_no_geometry_but_the_same_properties(atlas, written):
    for lid, features in written.items():
        kept = atlas.features(lid)
        assert [list(f) for f in kept] == [["type", "id", "properties"]] * len(features), lid
        assert kept == [{k: v for k, v in f.items() if k != "geometry"} for f in features], lid
        # key order too (the properties are served as they are)
        assert [json.dumps(f["properties"]) for f in kept] == [json.dumps(f["properties"]) for f in features], lid


def test_each_geometry_written_again_is_the_builds_text(atlas, written):
    for lid, features in written.items():
        texts = atlas.geometry_texts(lid)
        assert len(texts) == len(features) == len(atlas.geometries[lid]), lid
        for i, feature in enumerate(features):
            as_built = geojson.dumps(feature)
            assert geojson.dumps(atlas.geojson_geometry(lid, i)) == texts[i] == geojson.dumps(feature["geometry"])
            again = geojson.feature(feature["id"], atlas.features(lid)[i]["properties"], atlas.geometries[lid][i])
            assert geojson.dumps(again) == as_built, (lid, feature["id"])


def test_feature_blobs_are_the_files_features(atlas, written):
    for cid, collection in collections().items():
        lf = LayerFeatures.of(atlas, collection)
        by_id = {f["id"]: f for f in written[collection.layer.id]}
        assert lf.blobs == [geojson.dumps(geojson.as_multi(by_id[fid])) for fid in lf.ids], cid
        assert b'"type":"Polygon"' not in b"".join(lf.blobs), cid  # one geometry type per collection


def test_served_items_and_download_are_the_files_features(server, written):
    for lid, features in written.items():
        body = requests.get(f"{server}/collections/{lid}/items?limit=5000", timeout=120).content
        assert body.endswith(b',"features":[' + b",".join(geojson.dumps(geojson.as_multi(f)) for f in features)
                             + b"]}"), lid
    one = written["districts"][5]
    item = requests.get(f"{server}/collections/districts/items/{one['id']}", timeout=60).json()
    assert {k: v for k, v in item.items() if k != "links"} == geojson.as_multi(one)
    download = requests.get(f"{server}/collections/wilayahs/download.geojson", timeout=120).json()
    assert [f["geometry"] for f in download["features"]] == [geojson.as_multi(f)["geometry"]
                                                            for f in written["wilayahs"]]
