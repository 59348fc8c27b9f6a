"""Unit tests of the generic geo helpers and of date selection and generalisation in layers."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading

import numpy as np
import pytest
import shapely

from geo import atomic, datasets, gazetteer, geometry
from geo.simplify import degrees_per_pixel
from layers import generalise, wilayahs

NAMES = {"PK509": ["D. I. Khan", "Dera Ismail Khan"], "PK516": ["Kohistan Upper"],
         "PK517": ["Kolai Palas Kohistan", "Kolai-Palas"], "PK528": ["Peshawar"]}


def test_gazetteer_resolves_variants_through_one_index():
    lookup = gazetteer.index(NAMES)
    display = [n for names in NAMES.values() for n in names]
    assert gazetteer.resolve("Dera Ismail Khan", lookup, display) == "PK509"
    assert gazetteer.resolve("d.i. khan", lookup, display) == "PK509"
    assert gazetteer.resolve("Upper Kohistan", lookup, display) == "PK516"
    assert gazetteer.resolve("Kolai-Palas", lookup, display) == "PK517"
    assert gazetteer.resolve("Kolai Palas Kohistan", lookup, display) == "PK517"


def test_gazetteer_unknown_and_ambiguous_names():
    lookup = gazetteer.index({**NAMES, "PK999": ["Peshawar"]})
    with pytest.raises(gazetteer.PlaceNameError, match=r"ambiguous name 'Peshawar'.*PK528, PK999"):
        gazetteer.resolve("Peshawar", lookup, ["Peshawar"])
    with pytest.raises(gazetteer.PlaceNameError, match=r"unknown name 'Peshawer'.*closest valid names: Peshawar"):
        gazetteer.resolve("Peshawer", lookup, ["Peshawar", "Dera Ismail Khan"])


def test_split_pieces_tile_the_parent_exactly():
    parent = shapely.box(0, 0, 10, 10)
    part = shapely.box(-1, -1, 4.0000001, 11)  # overshoots the parent, as tehsils do
    piece, remainder = geometry.split(parent, [part])
    assert piece.area + remainder.area == pytest.approx(100)
    assert piece.intersection(remainder).area == 0


def test_refit_removes_overlaps_and_gives_slivers_to_the_neighbour():
    old = shapely.box(0, 0, 1, 1)
    new = shapely.Polygon([(0, 0), (1.1, 0), (0.9, 1), (0, 1)])  # another source's border: overlap and sliver
    east, far = shapely.box(1, 0, 2, 1), shapely.box(5, 5, 6, 6)
    fitted = geometry.refit([east, far], old, new)
    assert fitted[1] is far
    assert shapely.intersection(fitted[0], new).area < 1e-12
    assert shapely.union_all([fitted[0], new]).equals(shapely.box(0, 0, 2, 1))  # no sliver left
    coastal = geometry.refit([far], old, new)  # a sliver touching no neighbour is dropped (sea)
    assert coastal[0] is far


def test_cut_antimeridian_splits_crossing_rings_and_closes_polar_ones():
    island = shapely.Polygon([(179, 0), (-179, 0), (-179, 1), (179, 1)])  # 2° wide, read planar 358°
    cut = geometry.cut_antimeridian(island)
    assert sorted(round(p.area, 9) for p in shapely.get_parts(cut)) == [1.0, 1.0]
    assert cut.bounds == (-180.0, 0.0, 180.0, 1.0)
    cap = geometry.cut_antimeridian(shapely.Polygon([(-180, -80), (0, -70), (179.9, -80), (-180, -80.01)]))
    assert cap.is_valid and cap.bounds[1] == -90.0  # closed along the South Pole
    plain = shapely.box(10, 10, 11, 11)
    assert geometry.cut_antimeridian(plain).equals(plain)


def test_for_output_snaps_and_orients():
    clockwise = shapely.Polygon([(0, 0), (0, 1.1234567), (1, 1), (1, 0)])
    (out,) = geometry.for_output([clockwise])
    assert out.exterior.is_ccw
    assert all(round(v, 6) == v for v in shapely.get_coordinates(out).ravel())


def test_select_by_instant_and_interval():
    features = [{"properties": {"valid_from": "2022-12-31", "valid_to": "2023-06-13"}},
                {"properties": {"valid_from": "2023-06-14", "valid_to": None}},
                {"properties": {}}]
    assert len(wilayahs.select(features, "2023-03-01")) == 2
    assert len(wilayahs.select(features, "2023-06-14")) == 2
    assert len(wilayahs.select(features, "2023-01-01", "2023-12-31")) == 3
    assert len(wilayahs.select(features, None, "2022-12-30")) == 1
    assert len(wilayahs.select(features, "2030-01-01", None)) == 2


def test_staged_file_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "map.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic.staged_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("renderer failed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]


def test_staged_dir_replaces_whole(tmp_path):
    target = tmp_path / "build"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic.staged_dir(target) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["build"]


@pytest.fixture()
def mirror(data_root, tmp_path):
    """A loopback HTTP server laid out like the COD and OSM upstreams, from the staged files."""
    root = tmp_path / "mirror"
    for key in ("cod-ab", "osm"):
        prefix = datasets.DATASETS[key].prefix
        for relative in datasets.expected_checksums():
            if relative.startswith(prefix):
                (root / key / relative[len(prefix):]).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(data_root / relative, root / key / relative[len(prefix):])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield root, {"cod-ab": f"{base}/cod-ab/", "osm": f"{base}/osm/"}
    httpd.shutdown()


def seed_natural_earth(data_root, target):
    for relative in datasets.expected_checksums():
        if relative.startswith(datasets.DATASETS["natural-earth"].prefix):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(data_root / relative, target / relative)


def test_download_fetches_and_checks_every_file(mirror, data_root, tmp_path):
    _, bases = mirror
    target = tmp_path / "cache"
    seed_natural_earth(data_root, target)
    fetched = datasets.download(target, bases)
    assert len(fetched) == len(datasets.expected_checksums()) - 1
    datasets.verify(target)
    assert datasets.download(target, bases) == []  # nothing stale any more


def test_download_refuses_a_file_with_the_wrong_checksum(mirror, data_root, tmp_path):
    root, bases = mirror
    (root / "osm" / "geography.topojson.json").write_text('{"tampered": true}')
    target = tmp_path / "cache"
    seed_natural_earth(data_root, target)
    with pytest.raises(datasets.DataError, match=r"geography\.topojson\.json has sha256 .* expected"):
        datasets.download(target, bases)
    assert not (target / datasets.OSM_GEOGRAPHY).exists()


def test_generalised_levels_keep_borders_shared(atlas):
    for zoom in (3, 6, 9):
        districts = atlas.generalised("districts", zoom)
        assert shapely.is_valid(districts).all()
        assert shapely.get_num_coordinates(districts).sum() < shapely.get_num_coordinates(
            atlas.geometries["districts"]).sum()
        tree = shapely.STRtree(districts)
        left, right = tree.query(districts, predicate="intersects")
        pairs = left < right
        overlaps = geometry.area_km2(shapely.intersection(districts[left[pairs]], districts[right[pairs]]))
        pixel_km2 = (degrees_per_pixel(zoom) * 111) ** 2
        assert overlaps.max() < pixel_km2, zoom
        provinces = atlas.generalised("provinces", zoom)
        union = shapely.union_all(districts)
        assert geometry.area_km2([shapely.symmetric_difference(union, shapely.union_all(provinces))])[0] < 0.01


def test_generalised_wilayah_is_union_of_generalised_districts(atlas):
    zoom = 5
    districts = atlas.generalised("districts", zoom)
    index = {f["id"]: i for i, f in enumerate(atlas.features("districts"))}
    for feature, shape in zip(atlas.features("wilayahs"), atlas.generalised("wilayahs", zoom), strict=True):
        members = shapely.union_all(districts[[index[m["id"]] for m in feature["properties"]["member_districts"]]])
        assert shape.symmetric_difference(members).area < 1e-9


def test_level_for_zoom():
    assert generalise.level_for(0) == 0
    assert generalise.level_for(5) == 4
    assert generalise.level_for(13) == 12
    assert generalise.level_for(14) is None
    assert np.isclose(generalise.tolerance(4), 0.5 * degrees_per_pixel(5))


def test_gazetteer_names_in_any_script_or_with_accents_never_match_everything():
    lookup = gazetteer.index({"peshawar": ["Peshawar", "پشاور"], "bannu": ["Bannu", "---"]})
    assert gazetteer.normalise("Peşawar") == "pesawar"
    assert gazetteer.candidates("پشاور", lookup) == {"peshawar"}
    assert gazetteer.candidates("Kōhāt", gazetteer.index({"kohat": ["Kohat"]})) == {"kohat"}
    for symbols in ("---", "%", "", "ক্ষ"):  # no word in common with any name: unknown, not ambiguous
        assert gazetteer.candidates(symbols, lookup) == set()
    with pytest.raises(gazetteer.PlaceNameError) as error:
        gazetteer.resolve("%", lookup, ["Peshawar", "Bannu"])
    assert error.value.reason == "unknown"
