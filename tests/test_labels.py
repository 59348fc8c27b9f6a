"""The label-placement model: anchors inside each feature's own part, and web zooms without overlaps."""

from __future__ import annotations

import itertools

import pytest
import shapely

from layers import labels

DATE = "2023-07-01"  # 12 units; Zhob, Qalat-Makran and Punjab North have extensions


def geometry(atlas, layer_id: str, fid: str) -> shapely.Geometry:
    ids = [f["id"] for f in atlas.collections[layer_id]["features"]]
    return atlas.geometries[layer_id][ids.index(fid)]


def named(atlas, layer_id: str, name: str) -> shapely.Geometry:
    found = [g for f, g in zip(atlas.collections[layer_id]["features"], atlas.geometries[layer_id], strict=True)
             if f["properties"]["name"] == name]
    assert len(found) == 1, name
    return found[0]


@pytest.fixture(scope="module")
def placed(atlas):
    return labels.unit_labels(atlas, "wilayahs", DATE)


def by_id(placed, fid: str) -> labels.Label:
    return next(label for label in placed if label.feature_id == fid)


def test_every_valid_feature_is_labelled_once(atlas, placed):
    valid = [f["id"] for f in atlas.features("wilayahs", DATE)]
    assert len(valid) == 15
    assert sorted(label.feature_id for label in placed) == sorted(valid)


def test_anchor_is_inside_the_features_own_part(atlas, placed):
    for label in placed:
        own = geometry(atlas, "wilayahs", label.feature_id)
        point = shapely.Point(label.lon, label.lat)
        assert own.contains(point), label
        # and well inside: at least 0.05 degrees (~5 km) from the edge
        assert own.boundary.distance(point) > 0.05, label


def test_core_label_sits_in_the_core_not_the_extension(atlas, placed):
    north = by_id(placed, "punjab-north-2023-06-30-core")
    assert north.text == "Punjab North" and north.part == "core"
    point = shapely.Point(north.lon, north.lat)
    assert named(atlas, "divisions", "Rawalpindi").contains(point)
    for district in ("Mianwali", "Bhakkar"):
        assert not named(atlas, "districts", district).contains(point)
    zhob = by_id(placed, "zhob-2023-06-14-core")
    point = shapely.Point(zhob.lon, zhob.lat)
    assert geometry(atlas, "wilayahs", "zhob-2023-06-14-core").contains(point)
    assert not geometry(atlas, "wilayahs", "zhob-2023-06-14-extension").contains(point)
    for district in ("Pishin", "Quetta"):
        assert not named(atlas, "districts", district).contains(point)


def test_extensions_are_labelled_as_possible_extensions_after_the_cores(placed):
    extensions = [label for label in placed if label.part == "extension"]
    assert sorted(label.text for label in extensions) == [
        "Punjab North (possible extension)", "Qalat-Makran (possible extension)", "Zhob (possible extension)"]
    assert all(label.priority > 0 for label in extensions)
    assert [label.part for label in placed] == ["core"] * 12 + ["extension"] * 3


def test_continuation_of_unknown_status_is_labelled_with_its_status(atlas):
    """After December 2025 the rest of Gilgit-Baltistan is labelled for what it is, inside its own area, and
    every label reads as its feature's ``label`` property (the text GIS clients show)."""
    placed = labels.unit_labels(atlas, "wilayahs", "2026-01-01")
    texts = {f["id"]: f["properties"]["label"] for f in atlas.features("wilayahs", "2026-01-01")}
    assert {label.feature_id: label.text for label in placed} == texts
    remainder = by_id(placed, "gilgit-baltistan-2025-12-25-extension")
    assert remainder.text == "Gilgit-Baltistan (status unknown since 2025-12-25)"
    assert geometry(atlas, "wilayahs", remainder.feature_id).contains(shapely.Point(remainder.lon, remainder.lat))


def test_largest_part_of_a_multipolygon_is_labelled(atlas, placed):
    core = geometry(atlas, "wilayahs", "qalat-makran-2023-06-14-core")
    assert core.geom_type == "MultiPolygon"
    label = by_id(placed, "qalat-makran-2023-06-14-core")
    assert labels.largest_polygon(core).contains(shapely.Point(label.lon, label.lat))


def boxes_at(placed, zooms: dict[str, int], zoom: int, font_px: int = 12):
    shown = [label for label in placed if zooms[label.feature_id] <= zoom]
    centres = labels.world_pixels(shown) * labels.TILE_PX * 2 ** zoom
    sizes = labels.box_sizes(shown, font_px)
    return {label.feature_id: shapely.box(*(c - s / 2), *(c + s / 2))
            for label, c, s in zip(shown, centres, sizes, strict=True)}


def test_web_labels_never_overlap_at_any_zoom(placed):
    zooms = labels.web_min_zooms(placed)
    assert set(zooms) == {label.feature_id for label in placed}
    for zoom in range(3, 15):
        boxes = boxes_at(placed, zooms, zoom)
        for (a, box_a), (b, box_b) in itertools.combinations(boxes.items(), 2):
            assert box_a.intersection(box_b).area == 0, (zoom, a, b)
    # Peshawar and Mardan collide at small zooms: one waits until they are apart
    peshawar, mardan = zooms["peshawar-2022-12-31-core"], zooms["mardan-2022-12-31-core"]
    assert peshawar < mardan < labels.NEVER
    assert "mardan-2022-12-31-core" not in boxes_at(placed, zooms, peshawar)
    # every core unit shows by zoom 8 (a city-region view)
    assert max(z for fid, z in zooms.items() if fid.endswith("-core")) <= 8


def test_web_zooms_follow_priority_and_give_up_on_hopeless_collisions():
    first = labels.Label("a", "Alpha", 70.0, 30.0, 0, "core")
    same_place = labels.Label("b", "Bravo", 70.0, 30.0, 1, "extension")
    near = labels.Label("c", "Charlie", 70.05, 30.0, 1, "extension")
    zooms = labels.web_min_zooms([same_place, near, first])
    assert zooms == {"a": 3, "b": labels.NEVER, "c": zooms["c"]}
    assert 3 < zooms["c"] < labels.NEVER
    # larger type needs a higher zoom to clear the same neighbour
    assert labels.web_min_zooms([first, near], font_px=24)["c"] > zooms["c"]
