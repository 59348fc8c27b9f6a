"""Place names: which places the maps draw, in which order, from which zoom, and beside which unit labels."""

from __future__ import annotations

import itertools

import yaml

from layers import labels, places, style

PAKISTAN = (60.0, 23.0, 78.0, 37.5)


def test_capitals_come_first_then_cities_by_population():
    found = places.places()
    assert [(p.name, p.kind) for p in found[:7]] == [
        ("Islamabad", "national-capital"), ("Lahore", "provincial-capital"), ("Karachi", "provincial-capital"),
        ("Peshawar", "provincial-capital"), ("Quetta", "provincial-capital"), ("Gilgit", "provincial-capital"),
        ("Muzaffarabad", "provincial-capital")]
    assert [p.priority for p in found] == list(range(len(found)))
    cities = found[7:]
    assert cities[0].name == "Faisalabad" and all(p.kind == "city" for p in cities)
    major = [p for p in cities if p.min_zoom == style.PLACE_STYLES["city"].font.min_zoom]
    assert [p.population for p in major] == sorted((p.population for p in major), reverse=True)
    assert all(p.population >= 500_000 for p in major) and all(p.population >= 100_000 for p in cities)
    assert 100 < len(found) < 200
    islamabad = found[0]
    assert abs(islamabad.lon - 73.04) < 0.05 and abs(islamabad.lat - 33.72) < 0.05
    assert islamabad.id == "geonames:1176615"


def test_records_that_are_not_cities_are_left_out_or_demoted():
    spec = yaml.safe_load(places.PLACES_FILE.read_text(encoding="utf-8"))
    ids = {p.geonameid: p for p in places.places()}
    assert not set(spec["not_cities"]) & set(ids)
    assert [p.name for p in ids.values()].count("Sahiwal") == 1
    bannu = ids[1183460]  # GeoNames gives it Bannu district's population
    assert bannu.population > 1_000_000 and bannu.min_zoom == style.MINOR_CITY_MIN_ZOOM
    assert bannu.priority > max(p.priority for p in ids.values() if p.min_zoom < style.MINOR_CITY_MIN_ZOOM)


def test_places_in_filters_by_zoom_and_bounds():
    first = places.places_in(PAKISTAN, 3)
    assert [p.kind for p in first].count("city") == 0 and len(first) == 7
    assert len(places.places_in(PAKISTAN, 6)) < len(places.places_in(PAKISTAN, 8)) == len(places.places())
    sindh = places.places_in((66.5, 23.5, 71.5, 28.5), 6)
    assert [p.name for p in sindh][:2] == ["Karachi", "Hyderabad"] and "Lahore" not in {p.name for p in sindh}


def test_place_names_never_overlap_units_or_each_other_and_units_come_first():
    unit = labels.Label("unit", "Punjab North", 73.05, 33.70, 0, "core")
    named = labels.place_labels(list(places.places()))
    found = labels.web_placements([*named, unit], font_px=14)
    assert found["unit"] == (3, 0)  # the unit is placed first, whatever the order given
    assert found["geonames:1176615"][0] > 3  # Islamabad waits until it clears the unit's label
    everything = [unit, *named]
    for zoom in (5, 6, 7, 8, 9):
        boxes = []
        for label in everything:
            min_zoom, side = found[label.feature_id]
            if min_zoom <= zoom:
                x, y = labels.world_pixels([label])[0] * labels.TILE_PX * 2 ** zoom
                left, top, right, bottom = labels.box_extents([label], 14)[0][side]
                boxes.append((label.text, (x + left, y + top, x + right, y + bottom)))
        for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
            assert not (box_a[0] < box_b[2] and box_b[0] < box_a[2] and box_a[1] < box_b[3] and box_b[1] < box_a[3]), \
                (zoom, a, b)


def test_web_labels_give_each_place_a_zoom_and_a_side():
    unit = labels.Label("unit", "Punjab North", 73.05, 33.70, 0, "core")
    found = {label.feature_id: (zoom, side) for label, zoom, side in
             labels.web_labels([unit], list(places.places()), range(3, 15), 14, 4)}
    assert found["unit"] == (4, "right")  # from its own floor, first
    assert all(side in labels.PLACE_SIDES for _, side in found.values())
    assert all(zoom >= p.min_zoom for p in places.places() for zoom in [found[p.id][0]])
    assert found["geonames:1174872"][0] == 3  # Karachi: nothing in its way
