"""The layer build: counts, geometry rules, the wilayah contract, determinism and atomicity."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pyogrio
import pytest
import shapely

from geo import datasets, geometry, readers
from layers import build, catalogue, store, wilayahs

KM2 = 0.01  # tolerance for gaps and overlaps, in km²


def geoms(atlas, layer_id):
    return atlas.geometries[layer_id]


def test_layer_counts(atlas):
    counts = {lid: entry["features"] for lid, entry in atlas.manifest["layers"].items()}
    assert counts["provinces"] == 7
    assert counts["divisions"] >= 37
    assert counts["districts"] >= 161
    assert counts["tehsils"] == 577
    assert counts["tribal-districts"] == 8
    assert set(counts) == set(catalogue.LAYER_IDS)
    for layer_id, count in counts.items():
        assert len(atlas.collections[layer_id]["features"]) == count


def test_every_layer_file_is_in_the_geopackage_with_the_same_count(built, atlas):
    tables = dict(pyogrio.list_layers(built / build.GEOPACKAGE))
    assert set(tables) == {*catalogue.LAYER_IDS, "layer_styles"}
    styles = pyogrio.read_dataframe(built / build.GEOPACKAGE, layer="layer_styles", read_geometry=False)
    assert sorted(styles.f_table_name) == sorted(catalogue.LAYER_IDS)  # each layer opens styled in QGIS
    assert styles.styleQML.str.startswith("<").all() and styles.useAsDefault.all()
    for layer_id in catalogue.LAYER_IDS:
        info = pyogrio.read_info(built / build.GEOPACKAGE, layer=layer_id)
        assert info["features"] == atlas.manifest["layers"][layer_id]["features"]
        assert info["crs"] == "EPSG:4326"


def test_manifest_describes_files_inputs_and_licences(built, atlas):
    manifest = atlas.manifest
    for layer_id, entry in manifest["layers"].items():
        assert entry["sha256"] == datasets.sha256_file(built / entry["file"])
        minx, miny, maxx, maxy = entry["bbox"]
        if layer_id == "countries":  # neighbours reach from Oman to China
            assert minx < 61 and maxx > 77.8 and miny < 23.7 and maxy > 37, entry["bbox"]
        else:
            assert 60 < minx < maxx < 78 and 23 < miny < maxy < 38, (layer_id, entry["bbox"])
    assert manifest["datasets"]["cod-ab"]["licence"] == "CC BY-IGO 3.0"
    assert manifest["datasets"]["osm"]["licence"] == "ODbL 1.0"
    assert manifest["version"]


def test_geojson_is_rfc7946_six_decimals_ccw(built):
    text = (built / "wilayahs.geojson").read_text()
    assert not re.search(r"\d\.\d{7,}", text), "coordinates must be rounded to 6 decimals"
    collection = json.loads(text)
    for feature in collection["features"]:
        for polygon in shapely.get_parts(shapely.geometry.shape(feature["geometry"])):
            assert polygon.exterior.is_ccw, feature["id"]
            assert all(not ring.is_ccw for ring in polygon.interiors), feature["id"]


def test_all_geometries_valid_and_non_empty(atlas):
    for layer_id in catalogue.LAYER_IDS:
        shapes = geoms(atlas, layer_id)
        assert shapely.is_valid(shapes).all(), layer_id
        assert not shapely.is_empty(shapes).any(), layer_id


def test_every_feature_carries_caption_fields(atlas):
    for layer_id in catalogue.LAYER_IDS:
        for feature in atlas.collections[layer_id]["features"]:
            props = feature["properties"]
            assert props["name"], (layer_id, feature["id"])
            assert feature["id"] == props["id"]
            assert props["licence"] and props["source"] and props["attribution"], (layer_id, feature["id"])
            if not catalogue.layer(layer_id).claimed:
                assert "pcode" in props, (layer_id, feature["id"])
    district = next(f for f in atlas.features("districts") if f["properties"]["pcode"] == "PK528")
    assert district["properties"] | {"name": "Peshawar", "province": "Khyber Pakhtunkhwa",
                                     "division": "Peshawar"} == district["properties"]


def test_countries_are_every_country_with_one_outline_of_pakistan(atlas, data_root):
    countries = atlas.features("countries")
    shapes = geoms(atlas, "countries")
    assert len(countries) == len(readers.countries(data_root)) == 241
    assert len({f["id"] for f in countries}) == len(countries)
    names = {f["properties"]["name"] for f in countries}
    assert {"Nepal", "Kazakhstan", "Uzbekistan", "Oman", "Bangladesh", "Brazil", "Siachen Glacier"} <= names
    pakistan = shapes[[f["id"] for f in countries].index(build.PAKISTAN)]
    provinces = shapely.union_all(geoms(atlas, "provinces"))
    assert geometry.area_km2([shapely.symmetric_difference(pakistan, provinces)])[0] < KM2
    others = np.array([s for f, s in zip(countries, shapes, strict=True) if f["id"] != build.PAKISTAN])
    overlaps = geometry.area_km2(shapely.intersection(others, pakistan))
    assert overlaps.max() < KM2, overlaps.max()
    # no sliver between Natural Earth's neighbours and COD-AB's Pakistan: holes along the border
    touching = others[shapely.STRtree(others).query(pakistan, predicate="intersects")]
    assert len(touching) == 5  # Afghanistan, China, India, Iran and the rest of NE's Siachen Glacier
    union = shapely.union_all([*touching, pakistan])
    holes = [shapely.Polygon(ring) for part in shapely.get_parts(union) for ring in part.interiors]
    gaps = geometry.area_km2([h for h in holes if shapely.intersects(h, pakistan)]).sum()
    assert gaps < 0.5, gaps  # about 0.16 km² along 6,800 km of border, from rounding to 6 decimals


def test_countries_are_cut_at_the_antimeridian_without_strips(atlas):
    """Natural Earth's rings step over ±180° (world-atlas stitches them): read planar they would be strips
    across the world, overlapping every country on their latitude."""
    shapes = geoms(atlas, "countries")
    names = [f["properties"]["name"] for f in atlas.features("countries")]
    area = dict(zip(names, geometry.area_km2(shapes), strict=True))
    assert 16.5e6 < area["Russia"] < 17.5e6 and 17_000 < area["Fiji"] < 20_000
    left, right = shapely.STRtree(shapes).query(shapes, predicate="intersects")
    pairs = left < right
    overlaps = geometry.area_km2(shapely.intersection(shapes[left[pairs]], shapes[right[pairs]]))
    assert overlaps.max() < KM2, [(names[left[pairs][i]], names[right[pairs][i]]) for i in np.argsort(overlaps)[-3:]]


def test_disputed_lines_follow_pakistans_outline_with_the_note(built, atlas):
    collection = json.loads((built / build.DISPUTED).read_text())
    assert atlas.manifest["disputed"] == {"file": build.DISPUTED, "features": 4, "note": catalogue.BOUNDARY_NOTE}
    assert atlas.manifest["files_sha256"][build.DISPUTED] == datasets.sha256_file(built / build.DISPUTED)
    lines = {f["id"]: (f["properties"], shapely.geometry.shape(f["geometry"])) for f in collection["features"]}
    assert set(lines) == {"line-of-control", "working-boundary", "siachen-claim", "siachen-area"}
    assert all(p["note"] == catalogue.BOUNDARY_NOTE and p["attribution"] for p, _ in lines.values())
    outline = shapely.boundary(shapely.union_all(geoms(atlas, "provinces")))
    for fid in ("line-of-control", "working-boundary", "siachen-claim"):  # on the one outline of Pakistan
        assert shapely.hausdorff_distance(lines[fid][1], shapely.intersection(
            outline, shapely.buffer(lines[fid][1], 0.001))) < 0.001, fid
    loc, working, claim = (lines[k][1] for k in ("line-of-control", "working-boundary", "siachen-claim"))
    ends = lambda line: {tuple(round(v, 2) for v in line.coords[i]) for i in (0, -1)}
    assert ends(loc) == {(74.46, 32.79), (77.12, 35.04)}  # the Chenab to NJ9842
    assert ends(working) == {(74.46, 32.79), (75.33, 32.33)} and 140 < working.length * 100 < 170  # ~ km
    assert ends(claim) == {(77.12, 35.04), (77.83, 35.5)}  # NJ9842 to the Karakoram Pass


def test_districts_tile_their_province(atlas):
    districts = atlas.features("districts")
    shapes = geoms(atlas, "districts")
    for province, province_shape in zip(atlas.features("provinces"), geoms(atlas, "provinces"), strict=True):
        members = [s for d, s in zip(districts, shapes, strict=True)
                   if d["properties"]["province_pcode"] == province["id"]]
        union = shapely.union_all(members)
        gap_or_excess = geometry.area_km2([shapely.symmetric_difference(union, province_shape)])[0]
        assert gap_or_excess < KM2, (province["properties"]["name"], gap_or_excess)
    tree = shapely.STRtree(shapes)
    left, right = tree.query(shapes, predicate="intersects")
    pairs = left < right
    overlaps = geometry.area_km2(shapely.intersection(shapes[left[pairs]], shapes[right[pairs]]))
    assert overlaps.max() < KM2


def test_south_waziristan_split_adds_up(atlas, data_root):
    cod = readers.cod_admin(data_root, 2)
    south = cod.geometry[cod.admin2Pcode == "PK530"].iloc[0]
    by_name = {f["properties"]["name"]: s for f, s in zip(atlas.features("districts"), geoms(atlas, "districts"),
                                                          strict=True)}
    upper, lower = by_name["Upper South Waziristan"], by_name["Lower South Waziristan"]
    assert "South Waziristan" not in by_name
    total = geometry.area_km2([upper, lower]).sum()
    assert total == pytest.approx(geometry.area_km2([south])[0], rel=1e-4)
    assert 2400 < geometry.area_km2([upper])[0] < 2800  # the COD tehsil recipe gives 2,600 km²


def test_tribal_districts_carry_agency_and_dates(atlas):
    tribal = {f["properties"]["name"]: f["properties"] for f in atlas.features("tribal-districts")}
    assert set(tribal) == {"Bajaur", "Mohmand", "Khyber", "Kurram", "Orakzai", "North Waziristan",
                           "Upper South Waziristan", "Lower South Waziristan"}
    assert tribal["Khyber"]["former_agency"] == "Khyber Agency"
    assert tribal["Khyber"]["merged"] == "2018-05-31"
    assert tribal["Upper South Waziristan"]["split"] == "2022-10-13"


def test_wilayah_contract_properties(atlas):
    required = {"id", "unit", "name", "label", "zone", "part", "valid_from", "valid_to", "status", "confidence",
                "basis", "member_districts", "sources", "notes"}
    for feature in atlas.features("wilayahs"):
        props = feature["properties"]
        assert required <= set(props)
        assert props["status"] == "claimed" or props["status"] == f"unknown since {props['valid_from']}"
        assert props["label"] == props["name"] + {
            ("core", "claimed"): "", ("extension", "claimed"): " (possible extension)"}.get(
            (props["part"], props["status"]), f" (status {props['status']})")
        assert props["zone"] in ("north", "south", None)
        assert props["part"] in ("core", "extension")
        assert props["confidence"] in ("high", "medium", "low")
        assert props["sources"] and all(s["url"].startswith("https://") and s["publisher"] for s in props["sources"])
        assert all(m["name"] and m["id"] for m in props["member_districts"])
        if props["part"] == "extension":
            assert props["confidence"] == "low"


def test_units_by_date(atlas):
    early = atlas.features("wilayahs", "2023-03-01")
    assert len(early) == 9
    assert {f["properties"]["zone"] for f in early} == {"north", "south"}
    later = atlas.features("wilayahs", "2023-07-01")
    assert len({f["properties"]["unit"] for f in later}) == 12
    assert len([f for f in later if f["properties"]["part"] == "core"]) == 12
    reported_2025 = [f for f in atlas.features("wilayahs", "2026-01-01")
                     if f["properties"]["valid_from"] == "2025-12-25"]
    assert {f["properties"]["unit"] for f in reported_2025} == {"kashmir", "diamer", "darel", "gilgit-baltistan"}
    assert all(f["properties"]["confidence"] == "low" for f in reported_2025)


def test_superseded_unit_remainder_continues_with_unknown_status(atlas):
    """December 2025 splits Gilgit-Baltistan into Diamer and Darel and names nothing for the rest: the Gilgit
    and Baltistan divisions stay covered, by a low-confidence continuation, not left blank."""
    valid = atlas.features("wilayahs", "2026-01-01")
    covered = shapely.union_all(geoms(atlas, "wilayahs")[atlas.valid_indices("wilayahs", "2026-01-01", "2026-01-01")])
    divisions = {f["properties"]["name"]: s for f, s in zip(atlas.features("divisions"), geoms(atlas, "divisions"),
                                                            strict=True)}
    for name in ("Gilgit", "Baltistan", "Diamer-Astore"):
        assert geometry.area_km2([shapely.difference(divisions[name], covered)])[0] < KM2, name
    rest = next(f["properties"] for f in valid if f["properties"]["unit"] == "gilgit-baltistan")
    assert (rest["part"], rest["confidence"], rest["basis"], rest["valid_from"]) == (
        "extension", "low", "inferred", "2025-12-25")
    assert rest["notes"].startswith("Status unknown since 2025-12-25")
    assert {s["date"] for s in rest["sources"]} == {"2025-12-26"}
    before = next(f["properties"] for f in atlas.features("wilayahs", "2025-12-24")
                  if f["properties"]["unit"] == "gilgit-baltistan")
    assert before["valid_to"] == "2025-12-24"


def test_wilayah_equals_union_of_members(atlas):
    districts = {f["id"]: s for f, s in zip(atlas.features("districts"), geoms(atlas, "districts"), strict=True)}
    for feature, shape in zip(atlas.features("wilayahs"), geoms(atlas, "wilayahs"), strict=True):
        members = shapely.union_all([districts[m["id"]] for m in feature["properties"]["member_districts"]])
        assert geometry.area_km2([shape])[0] == pytest.approx(geometry.area_km2([members])[0], rel=1e-4)
        assert geometry.area_km2([shapely.symmetric_difference(shape, members)])[0] < KM2


def test_zones_equal_union_of_their_wilayahs(atlas):
    wilayah_shapes = dict(zip((f["id"] for f in atlas.features("wilayahs")), geoms(atlas, "wilayahs"), strict=True))
    zones = atlas.features("zones")
    assert {f["properties"]["zone"] for f in zones} == {"north", "south"}
    for zone, shape in zip(zones, geoms(atlas, "zones"), strict=True):
        union = shapely.union_all([wilayah_shapes[w] for w in zone["properties"]["wilayahs"]])
        assert geometry.area_km2([shape])[0] == pytest.approx(geometry.area_km2([union])[0], rel=1e-4)
        for wid in zone["properties"]["wilayahs"]:
            member = next(f for f in atlas.features("wilayahs") if f["id"] == wid)
            assert member["properties"]["zone"] == zone["properties"]["zone"]


def test_no_wilayah_overlaps_another_units_core_in_any_period(atlas):
    features = atlas.features("wilayahs")
    shapes = dict(zip((f["id"] for f in features), geoms(atlas, "wilayahs"), strict=True))
    for start, _ in build.period_bounds(features):
        valid = wilayahs.select(features, start)
        for a, b in itertools.combinations(valid, 2):
            pa, pb = a["properties"], b["properties"]
            if pa["unit"] == pb["unit"] or "core" not in (pa["part"], pb["part"]):
                continue
            shared = geometry.area_km2([shapely.intersection(shapes[a["id"]], shapes[b["id"]])])[0]
            assert shared < KM2, (start, a["id"], b["id"], shared)


def test_build_is_deterministic(built, data_root, tmp_path):
    again = tmp_path / "again"
    build.build(data_root, again)
    names = sorted(p.name for p in built.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (built / name).read_bytes() == (again / name).read_bytes(), name


@pytest.fixture()
def previous_build(built, tmp_path):
    target = tmp_path / "out"
    shutil.copytree(built, target)
    return target


def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_unknown_member_name_fails_naming_file_line_and_closest(data_root, previous_build, tmp_path):
    text = wilayahs.WILAYAHS_FILE.read_text().replace("[Mardan, Swabi]", "[Mardan, Swaabi]")
    bad = tmp_path / "wilayahs.yaml"
    bad.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "Swaabi" in row)
    before = snapshot(previous_build)
    with pytest.raises(build.BuildError) as failure:
        build.build(data_root, previous_build, wilayah_file=bad)
    message = str(failure.value)
    assert f"{bad}:{line}" in message and "'Swaabi'" in message and "Swabi" in message
    assert snapshot(previous_build) == before  # the previous build is untouched
    assert sorted(p.name for p in previous_build.parent.iterdir()) == ["out", "wilayahs.yaml"]  # no partial folder


def test_ambiguous_member_name_fails(data_root, tmp_path):
    civil = build.CIVIL_FILE.read_text().replace("Tor Ghar: [Torghar]", "Tor Ghar: [Torghar, Swabi]")
    bad = tmp_path / "civil.yaml"
    bad.write_text(civil)
    with pytest.raises(build.BuildError, match=r"ambiguous name 'Swabi'"):
        build.build(data_root, tmp_path / "out", civil_file=bad)
    assert not (tmp_path / "out").exists()


def test_bad_field_value_names_file_and_line(tmp_path):
    text = wilayahs.WILAYAHS_FILE.read_text().replace("confidence: medium", "confidence: certain", 1)
    bad = tmp_path / "wilayahs.yaml"
    bad.write_text(text)
    with pytest.raises(wilayahs.WilayahDataError, match=rf"{bad}:\d+: confidence 'certain' is not one of"):
        wilayahs.load(bad)


def test_status_continuation_is_labelled_with_its_status(atlas):
    """The Gilgit-Baltistan remainder after December 2025 is a continuation of unknown status, and says so;
    every other unit, extensions included, is simply claimed."""
    unknown = {f["id"]: f["properties"]["label"] for f in atlas.features("wilayahs")
               if f["properties"]["status"] != "claimed"}
    assert unknown == {"gilgit-baltistan-2025-12-25-extension":
                       "Gilgit-Baltistan (status unknown since 2025-12-25)"}


@pytest.mark.parametrize("status", ["unknown", "dropped since 2025-12-25", "unknown since 25 Dec 2025"])
def test_bad_status_names_file_line_and_form(tmp_path, status):
    text = wilayahs.WILAYAHS_FILE.read_text().replace("status: unknown since 2025-12-25", f"status: {status}")
    bad = tmp_path / "wilayahs.yaml"
    bad.write_text(text)
    with pytest.raises(wilayahs.WilayahDataError, match=rf"{bad}:\d+: (status .* is not|.*is not an ISO date)"):
        wilayahs.load(bad)


def test_corrupt_input_is_refused_with_file_and_remedy(data_root, tmp_path):
    copy = tmp_path / "data"
    for relative in datasets.expected_checksums():
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        (copy / relative).symlink_to(data_root / relative)
    victim = copy / datasets.OSM_GEOGRAPHY
    victim.unlink()
    victim.write_text("{}")
    with pytest.raises(datasets.DataError, match=r"corrupt input file .*geography\.topojson\.json.*ttp-atlas data"):
        build.build(copy, tmp_path / "out")
    victim.unlink()
    with pytest.raises(datasets.DataError, match=r"missing input file .*geography\.topojson\.json"):
        build.build(copy, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_reports_bad_data_folder_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "server", "build", "--data", str(tmp_path / "nowhere"),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "nowhere" in result.stderr and "ttp-atlas data" in result.stderr
    assert "Traceback" not in result.stderr


def test_store_refuses_a_tampered_build(previous_build):
    (previous_build / "districts.geojson").write_text('{"type":"FeatureCollection","features":[]}')
    with pytest.raises(store.BuildUnusable, match="districts.geojson"):
        store.open_build(previous_build)
