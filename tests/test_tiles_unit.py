"""Tiles without HTTP: MVT content and geometry quality, PNG colours, TileJSON, archives (geo.tiles, layers.tiles)."""

from __future__ import annotations

import io
import json
import sqlite3

import mapbox_vector_tile
import mercantile
import numpy as np
import pytest
import shapely
import shapely.ops
from PIL import Image
from pmtiles.reader import MmapSource, Reader

from geo import tiles as geotiles
from layers import catalogue, disputed, places, style
from layers import labels as labels_model
from layers.features import QueryError
from layers import tiles as layer_tiles
from layers.wilayahs import valid_during

PESHAWAR = (71.55, 34.0)  # Peshawar city
OFF_KARACHI = (66.6, 24.4)  # Arabian Sea, west of Karachi
NEPAL = (84.0, 28.0)  # east of Pakistan's bounding box (78.75°E at z5)
CENTRAL_ASIA = (66.0, 40.0)  # Uzbekistan, north of it
LORALAI = (68.6, 30.4)  # inside Loralai, in Zhob's possible extension from June 2023
PIXEL = geotiles.EXTENT / geotiles.TILE_SIZE  # grid units per tile pixel


@pytest.fixture(scope="module")
def source(atlas):
    return layer_tiles.TileSource(atlas)


def decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})


def shapes(layer: dict) -> list:
    return [shapely.geometry.shape(f["geometry"]) for f in layer["features"]]


def at(lon: float, lat: float, z: int, scale: int = 1) -> tuple[mercantile.Tile, tuple[int, int]]:
    """The tile holding a point and the point's pixel in it."""
    tile = mercantile.tile(lon, lat, z)
    west, south, east, north = geotiles.tile_bounds(tile.z, tile.x, tile.y)
    px, py = mercantile.xy(lon, lat)
    size = geotiles.TILE_SIZE * scale
    return tile, (int((px - west) / (east - west) * size), int((north - py) / (north - south) * size))


def pixel(png: bytes, xy: tuple[int, int]) -> tuple[int, int, int, int]:
    with Image.open(io.BytesIO(png)) as image:
        return image.convert("RGBA").getpixel(xy)


def peshawar_unit(atlas) -> dict:
    return next(f["properties"] for f in atlas.features("wilayahs", "2023-07-01")
                if any(m["name"] == "Peshawar" for m in f["properties"]["member_districts"]))


# --- MVT content -----------------------------------------------------------------------------

def test_atlas_tile_layers_follow_min_zoom(source):
    tile, _ = at(*PESHAWAR, 7)
    assert set(decode(source.mvt("atlas", 7, tile.x, tile.y))) == {
        "countries", "provinces", "divisions", "districts", "tribal-districts", "wilayahs", "zones", "labels", "places"}
    tile8, _ = at(*PESHAWAR, 8)
    assert "tehsils" in decode(source.mvt("atlas", 8, tile8.x, tile8.y))


def test_wilayah_properties_in_tile(source, atlas):
    tile, _ = at(*PESHAWAR, 6)
    layer = decode(source.mvt("wilayahs", 6, tile.x, tile.y, ("2023-07-01", "2023-07-01")))["wilayahs"]
    by_id = {f["properties"]["id"]: f["properties"] for f in layer["features"]}
    unit = peshawar_unit(atlas)
    assert by_id[unit["id"]] == {"id": unit["id"], "unit": "peshawar", "name": "Peshawar", "label": "Peshawar",
                                  "zone": "north", "part": "core", "valid_from": unit["valid_from"], "status": "claimed",
                                  "confidence": unit["confidence"], "basis": unit["basis"],
                                  "caveat": catalogue.CAVEAT}
    assert layer["extent"] == geotiles.EXTENT


@pytest.mark.parametrize("when, count", [("2023-03-01", 9), ("2023-07-01", 15)])
def test_datetime_selects_the_period(source, when, count):
    layer = decode(source.mvt("atlas", 0, 0, 0, layer_tiles.parse_datetime(when)))["wilayahs"]
    assert len(layer["features"]) == count


@pytest.mark.parametrize("layer_id, z", [("districts", 6), ("tehsils", 9), ("provinces", 4), ("wilayahs", 7)])
def test_features_in_tile_are_those_intersecting_it(source, atlas, layer_id, z):
    tile, _ = at(71.0, 31.5, z)
    decoded = {f["properties"]["id"] for f in decode(source.mvt(layer_id, z, tile.x, tile.y))[layer_id]["features"]}
    geoms = atlas.generalised(layer_id, z)
    ids = np.array([f["id"] for f in atlas.features(layer_id)])
    current = np.array([valid_during(f["properties"], *layer_tiles.parse_datetime(None))
                        for f in atlas.features(layer_id)])
    west, south, east, north = mercantile.bounds(tile)
    pad = (east - west) * 2 * geotiles.BUFFER / geotiles.EXTENT
    inner = shapely.box(west + pad, south + pad, east - pad, north - pad)
    outer = shapely.box(west - pad, south - pad, east + pad, north + pad)
    assert set(ids[shapely.intersects(geoms, inner) & current]) <= decoded
    assert decoded <= set(ids[shapely.intersects(geoms, outer) & current])
    assert len(decoded) >= 1


def _richest_tile(atlas, z: int):
    """The tile near central Punjab/KP with most districts (covered by them if any such tile exists)."""
    districts = atlas.generalised("districts", z)
    coverage = shapely.union_all(districts)
    candidates = list(mercantile.tiles(70.5, 30.0, 73.0, 32.0, z))[:400]
    scored = []
    for tile in candidates:
        box = shapely.box(*mercantile.bounds(tile))
        scored.append((coverage.covers(box), int(shapely.intersects(districts, box).sum()), tile))
    return max(scored, key=lambda s: (s[0], s[1]))


@pytest.mark.parametrize("z", range(0, 15))
def test_district_tiles_have_no_gaps_or_overlaps_and_stay_valid(source, atlas, z):
    covered, count, tile = _richest_tile(atlas, z)
    polygons = shapes(decode(source.mvt("districts", z, tile.x, tile.y))["districts"])
    pixel_degrees = 360 / 2**z / geotiles.EXTENT
    sub_pixel = int((shapely.area(atlas.generalised("districts", z)) < pixel_degrees**2).sum())
    assert len(polygons) >= count - sub_pixel and count >= 2  # districts under a pixel may vanish
    assert all(p.is_valid and p.area > 0 for p in polygons)
    tree = shapely.STRtree(polygons)
    left, right = tree.query(polygons, predicate="intersects")
    pairs = left < right
    overlaps = shapely.union_all(shapely.intersection(np.take(polygons, left[pairs]), np.take(polygons, right[pairs])))
    union = shapely.union_all(polygons)
    holes = [shapely.Polygon(r) for p in shapely.get_parts(union) for r in p.interiors]
    gaps = shapely.union_all(holes + (
        [shapely.box(0, 0, geotiles.EXTENT, geotiles.EXTENT).difference(union)] if covered else []))
    # nothing wider than one tile pixel survives shrinking by half a pixel on each side
    assert shapely.buffer(overlaps, -PIXEL / 2).is_empty
    assert shapely.buffer(gaps, -PIXEL / 2).is_empty


def test_polygon_commands_round_trip():
    square = shapely.Polygon([(0, 0), (0, 10), (10, 10), (10, 0)], [[(2, 2), (4, 2), (4, 4), (2, 4)]])
    data = geotiles.encode([("x", np.array([shapely.orient_polygons(square)]), [{"n": 1, "skip": None}])])
    feature = decode(data)["x"]["features"][0]
    assert feature["properties"] == {"n": 1}
    assert shapely.geometry.shape(feature["geometry"]).equals(square)


# --- label points ----------------------------------------------------------------------------

JULY = ("2023-07-01", "2023-07-01")


def place(name: str) -> places.Place:
    return next(p for p in places.places() if p.name == name)


def lonlat(z: int, x: int, y: int, grid) -> tuple[float, float]:
    """A tile-grid point (y down) in lon/lat."""
    west, south, east, north = geotiles.tile_bounds(z, x, y)
    point = mercantile.lnglat(west + grid[0] / geotiles.EXTENT * (east - west),
                              north - grid[1] / geotiles.EXTENT * (north - south))
    return point.lng, point.lat


def points_of(source, layer: str, z: int, x: int, y: int, period=JULY) -> list[dict]:
    return decode(source.mvt("atlas", z, x, y, period)).get(layer, {"features": []})["features"]


@pytest.mark.parametrize("name, by_zoom", [("Islamabad", 6), ("Peshawar", 8)])
def test_a_place_is_one_point_in_one_tile_from_its_zoom(source, name, by_zoom):
    """Each place is a point of the ``places`` layer in the one tile holding it (not its neighbours, whose
    buffers reach it), at every zoom from the one where its name is clear of the unit labels."""
    where, found = place(name), {}
    for z in range(3, 12):
        tile = mercantile.tile(where.lon, where.lat, z)
        seen = [(dx, dy, f) for dx in (-1, 0, 1) for dy in (-1, 0, 1)
                for f in points_of(source, "places", z, tile.x + dx, tile.y + dy) if f["properties"]["name"] == name]
        assert len(seen) <= 1 and all((dx, dy) == (0, 0) for dx, dy, _ in seen), (z, seen)
        if seen:
            feature = seen[0][2]
            lon, lat = lonlat(z, tile.x, tile.y, feature["geometry"]["coordinates"])
            unit = 360 / 2 ** z / geotiles.EXTENT  # one grid unit in degrees of longitude
            assert abs(lon - where.lon) <= 2 * unit and abs(lat - where.lat) <= 2 * unit, (z, lon, lat)
            found[z] = feature["properties"]
    first = min(found)
    assert sorted(found) == list(range(first, 12)) and first <= by_zoom, sorted(found)
    assert {p["min_zoom"] for p in found.values()} == {first}
    assert found[first]["kind"] == where.kind and found[first]["rank"] == where.priority
    assert found[first]["id"] == where.id and found[first]["side"] in ("right", "above-right", "below-right",
                                                                        "left", "above", "below")


def test_each_unit_is_labelled_once_inside_it_across_a_z6_tile_set(source, atlas):
    """Over every z6 tile of Pakistan, each unit label point appears once, inside its own unit, with the
    unit's label text, part and zone: a client draws each name once, not once per tile."""
    features = {f["id"]: (f["properties"], g) for f, g in zip(atlas.features("wilayahs"),
                                                             atlas.geometries["wilayahs"], strict=True)}
    counts: dict[str, int] = {}
    for z, x, y in geotiles.tiles_over(atlas.pakistan_bounds, 6):
        for feature in points_of(source, "labels", z, x, y):
            props = feature["properties"]
            counts[props["feature_id"]] = counts.get(props["feature_id"], 0) + 1
            unit, geom = features[props["feature_id"]]
            point = shapely.Point(lonlat(z, x, y, feature["geometry"]["coordinates"]))
            assert geom.contains(point), props
            assert (props["label"], props["part"], props.get("zone")) == (unit["label"], unit["part"], unit.get("zone"))
            assert props["min_zoom"] <= 6
    valid = {f["id"] for f in atlas.features("wilayahs", *JULY)}
    assert set(counts) <= valid and set(counts.values()) == {1}, counts
    assert len(counts) >= 10, counts  # all but the units that wait for room (Mardan by Peshawar, ...)
    assert "zhob-2023-06-14-extension" in counts


def test_every_unit_is_labelled_by_zoom_9_and_the_continuation_says_its_status(source, atlas):
    day = ("2026-01-01", "2026-01-01")
    wanted = {label.feature_id: label for label in labels_model.unit_labels(atlas, "wilayahs", day[0])}
    seen = {}
    for fid, label in wanted.items():
        tile = mercantile.tile(label.lon, label.lat, 9)
        seen |= {f["properties"]["feature_id"]: f["properties"] for f in points_of(source, "labels", 9, tile.x, tile.y, day)}
    assert set(wanted) <= set(seen)
    continuation = [p for p in seen.values() if p.get("status") not in (None, "claimed")]
    assert [p["label"] for p in continuation] == ["Gilgit-Baltistan (status unknown since 2025-12-25)"]
    assert continuation[0]["part"] == "extension"


def test_pyramid_keeps_every_point(source, tmp_path):
    """Where the pyramid shares a tile down a subtree, no label or place inside it is lost: each point is in
    the archive's tile at every zoom from its own."""
    path = tmp_path / "atlas.pmtiles"
    layer_tiles.write_archive(source, path, "atlas", 0, 8, JULY)
    archive, selection = layer_tiles.Archive(path), source.selection("atlas", JULY)
    checked = 0
    for name, key in (("labels", "feature_id"), ("places", "id")):
        layer = source.points(selection)[name]
        for i in layer.shown(8):
            for z in range(int(layer.min_zoom[i]), 9):
                x, y = (np.floor(layer.world[i] * 2 ** z)).astype(int)
                stored = decode(archive.get(z, x, y)).get(name, {"features": []})["features"]
                assert layer.properties[i][key] in {f["properties"][key] for f in stored}, (name, z, layer.properties[i])
                checked += 1
    assert checked > 100


# --- PNG -------------------------------------------------------------------------------------

def test_png_over_peshawar_shows_its_zone_colour(source, atlas):
    unit = peshawar_unit(atlas)
    look = style.wilayah_style(unit["zone"], unit["confidence"])
    zone, land = np.array(style.hex_to_rgb(look["fill"])), np.array(style.hex_to_rgb(style.LAND))
    tile, xy = at(*PESHAWAR, 7)
    overlay = pixel(source.png("wilayahs", 7, tile.x, tile.y), xy)
    assert np.abs(np.array(overlay[:3]) - zone).max() <= 3
    assert abs(overlay[3] - look["fill_opacity"] * 255) <= 2
    basemap = np.array(pixel(source.png("atlas", 7, tile.x, tile.y), xy)[:3])
    expected = land * (1 - look["fill_opacity"]) + zone * look["fill_opacity"]
    assert np.abs(basemap - expected).max() <= 4, (basemap, expected)
    assert np.abs(basemap - land).max() >= 30  # visibly tinted, not bare land


def test_png_over_the_sea_off_karachi_has_no_wilayah_colour(source):
    tile, xy = at(*OFF_KARACHI, 9)
    overlay = np.asarray(Image.open(io.BytesIO(source.png("wilayahs", 9, tile.x, tile.y))).convert("RGBA"))
    assert overlay[..., 3].max() == 0
    assert pixel(source.png("atlas", 9, tile.x, tile.y), xy)[:3] == style.hex_to_rgb(style.BACKGROUND)


def test_png_at_2x_is_512_pixels(source):
    tile, _ = at(*PESHAWAR, 6)
    with Image.open(io.BytesIO(source.png("atlas", 6, tile.x, tile.y, scale=2))) as image:
        assert image.size == (512, 512)


def rgba_of(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGBA")).astype(int)


def inked(pixels: np.ndarray, colour: str, tolerance: int = 60) -> np.ndarray:
    """Which pixels are (nearly) a text colour: the glyphs' cores, not their halo or the map under them."""
    return np.abs(pixels[..., :3] - np.array(style.hex_to_rgb(colour))).max(axis=-1) <= tolerance


def test_png_names_islamabad_beside_its_star(source):
    """From the zoom the tiles carry it, Islamabad's star is at the city and its name in ink on the side
    the label model chose."""
    where, look = place("Islamabad"), style.PLACE_STYLES["national-capital"]
    deep = mercantile.tile(where.lon, where.lat, 8)
    z = next(f["properties"]["min_zoom"] for f in points_of(source, "places", 8, deep.x, deep.y)
             if f["properties"]["name"] == "Islamabad")
    tile, (px, py) = at(where.lon, where.lat, z)
    (feature,) = [f for f in points_of(source, "places", z, tile.x, tile.y) if f["properties"]["name"] == "Islamabad"]
    assert feature["properties"]["side"] == "right"

    # the tile and its east neighbour, where the name runs on
    rgba = np.hstack([rgba_of(source.png("atlas", z, tile.x + dx, tile.y, JULY)) for dx in (0, 1)])
    start = round(px + look.size / 2 + style.PLACE_GAP)
    name = inked(rgba[py - 6:py + 7, start:start + round(0.6 * look.font.size * len("Islamabad"))], look.font.colour)
    assert name.sum() >= 60, name.sum()  # letters: ink over many rows and columns, not a border line
    assert name.any(axis=1).sum() >= 7 and name.any(axis=0).sum() >= 30, name.astype(int)
    assert inked(rgba[py - 1:py + 2, px - 1:px + 2], look.fill, 30).any()  # the star


def test_a_label_cut_by_a_tile_edge_continues_in_the_next_tile(source):
    """A unit label whose box crosses a vertical tile edge is drawn in both tiles at the same world position:
    its letters reach the left tile's last columns and go on in the right tile's first ones."""
    selection = source.selection("atlas", JULY)
    layer = source.points(selection)["labels"]
    font = style.LABEL_STYLES["wilayahs"]
    for z in (6, 7, 8):
        for i in layer.shown(z):
            anchor = layer.world[i] * geotiles.TILE_SIZE * 2 ** z
            left, top, right, bottom = layer.boxes[i] + np.tile(anchor, 2)
            edge = (np.floor(left / geotiles.TILE_SIZE) + 1) * geotiles.TILE_SIZE
            if left + 15 < edge < right - 15:  # at least two letters on each side
                break
        else:
            continue
        break
    else:
        pytest.fail("no unit label crosses a tile edge at z6-8")
    x, y = int(edge // geotiles.TILE_SIZE) - 1, int(anchor[1] // geotiles.TILE_SIZE)
    rows = slice(max(int(top - y * geotiles.TILE_SIZE), 0), min(int(bottom - y * geotiles.TILE_SIZE) + 1, 256))
    west = inked(rgba_of(source.png("atlas", z, x, y, JULY))[rows, -6:], font.colour)
    east = inked(rgba_of(source.png("atlas", z, x + 1, y, JULY))[rows, :6], font.colour)
    assert west.sum() >= 4 and east.sum() >= 4, (z, layer.properties[i]["label"], west.sum(), east.sum())
    assert np.flatnonzero(west.any(axis=1)).min() <= np.flatnonzero(east.any(axis=1)).max()  # the same line


def window(png: bytes, xy: tuple[int, int], radius: int) -> np.ndarray:
    """The RGBA pixels around ``xy``, as an (n, 4) array."""
    with Image.open(io.BytesIO(png)) as image:
        rgba = np.asarray(image.convert("RGBA")).astype(int)
    x, y = xy
    return rgba[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1].reshape(-1, 4)


def shape_of(atlas, layer_id: str, feature_id: str):
    ids = [f["id"] for f in atlas.features(layer_id)]
    return atlas.geometries[layer_id][ids.index(feature_id)]


def test_unit_outlines_lie_over_province_lines(source, atlas):
    """Hazara (north zone) ends on the Khyber Pakhtunkhwa-Punjab border, where Punjab had no unit in March
    2023: the border is drawn in the unit's colour, the province line under it."""
    border = shapely.intersection(shape_of(atlas, "wilayahs", "hazara-2022-12-31-core").boundary,
                                  shape_of(atlas, "provinces", "PK6").boundary)
    zone = np.array(style.hex_to_rgb(style.ZONE_COLOURS["north"]))
    province = np.array(style.hex_to_rgb(style.CIVIL_STYLES["provinces"]["stroke"]))
    for share in (0.2, 0.4, 0.6, 0.8):
        point = shapely.line_interpolate_point(shapely.line_merge(border), share, normalized=True)
        tile, xy = at(point.x, point.y, 9)
        pixels = window(source.png("atlas", 9, tile.x, tile.y, ("2023-03-01", "2023-03-01")), xy, 1)[:, :3]
        to_zone, to_province = (np.abs(pixels - colour).max(axis=1) for colour in (zone, province))
        assert to_zone.min() <= 12, (share, pixels)  # the unit's outline is on top ...
        assert to_province.min() > 40, (share, pixels)  # ... and the grey province line never shows


def test_tribal_districts_are_an_outline_only(source, atlas):
    kurram = next(s for f, s in zip(atlas.features("tribal-districts"), atlas.geometries["tribal-districts"],
                                    strict=True) if f["properties"]["name"] == "Kurram")
    inside = shapely.ops.polylabel(kurram, 0.01)  # Kurram is in the Kohat unit
    tile, xy = at(inside.x, inside.y, 8)
    assert window(source.png("tribal-districts", 8, tile.x, tile.y), xy, 3)[:, 3].max() == 0  # no fill
    unit = next(f["properties"] for f in atlas.features("wilayahs", "2023-07-01") if f["properties"]["unit"] == "kohat")
    look = style.feature_style("wilayahs", unit)
    land, zone = np.array(style.hex_to_rgb(style.LAND)), np.array(style.hex_to_rgb(look["fill"]))
    expected = land * (1 - look["fill_opacity"]) + zone * look["fill_opacity"]  # only the unit's fill: no mixing
    basemap = window(source.png("atlas", 8, tile.x, tile.y, ("2023-07-01", "2023-07-01")), xy, 3)[:, :3]
    assert np.abs(basemap - expected).max() <= 4


def test_extensions_are_hatched_in_their_units_colour(source, atlas):
    extension = next(f["properties"] for f in atlas.features("wilayahs", "2023-07-01")
                     if f["properties"]["unit"] == "zhob" and f["properties"]["part"] == "extension")
    look = style.feature_style("wilayahs", extension)
    assert look["hatch"] and look["fill_opacity"] == 0
    tile, xy = at(*LORALAI, 8)
    pixels = window(source.png("wilayahs", 8, tile.x, tile.y, ("2023-07-01", "2023-07-01")), xy, 12)
    hatch = np.abs(pixels[:, :3] - np.array(style.hex_to_rgb(look["hatch_colour"]))).max(axis=1) <= 8
    inked = hatch & (pixels[:, 3] >= 0.8 * look["hatch_opacity"] * 255)
    bare = pixels[:, 3] == 0
    assert 0.1 < inked.mean() < 0.6 and bare.mean() > 0.3, (inked.mean(), bare.mean())  # lines, and no fill


def test_disputed_lines_are_dashed_over_the_border(source, atlas):
    lines = {p["kind"]: g for p, g in disputed.disputed_lines(atlas)}
    assert set(lines) == {"line-of-control", "working-boundary", "siachen-claim", "siachen-area"}
    look = disputed.disputed_style()
    ink, casing = (np.array(style.hex_to_rgb(look[k])) for k in ("stroke", "casing"))
    for kind in ("line-of-control", "working-boundary"):
        seen = []
        for share in np.linspace(0.05, 0.95, 40):
            point = shapely.line_interpolate_point(lines[kind], share, normalized=True)
            tile, xy = at(point.x, point.y, 10)
            centre = window(source.png("provinces", 10, tile.x, tile.y), xy, 0)[0, :3]
            seen.append("dash" if np.abs(centre - ink).max() <= 40 else
                        "gap" if np.abs(centre - casing).max() <= 12 else "other")
        # the solid province border is hidden: only dashes and gaps of the casing along the line
        assert seen.count("dash") >= 8 and seen.count("gap") >= 4 and seen.count("other") <= 10, (kind, seen)


# --- requests that are refused ----------------------------------------------------------------

@pytest.mark.parametrize("tileset, z, x, y", [("atlas", 15, 0, 0), ("nope", 0, 0, 0), ("atlas", 1, 2, 0)])
def test_tiles_outside_the_matrix_are_refused(source, tileset, z, x, y):
    with pytest.raises(layer_tiles.TileOutside):
        source.mvt(tileset, z, x, y)


def test_empty_tile_is_empty_anywhere_in_the_matrix(source):
    tile, _ = at(*OFF_KARACHI, 10)
    assert source.mvt("wilayahs", 10, tile.x, tile.y) == b""
    assert source.mvt("provinces", 2, 0, 0) == b""  # the Arctic: outside the layer, still a tile
    overlay = np.asarray(Image.open(io.BytesIO(source.png("provinces", 2, 0, 0))).convert("RGBA"))
    assert overlay[..., 3].max() == 0


@pytest.mark.parametrize("lonlat", [NEPAL, CENTRAL_ASIA])
def test_land_beyond_pakistan_in_every_context_tile(source, lonlat):
    for zoom in (3, 5, 7):
        tile, xy = at(*lonlat, zoom)
        names = {f["properties"]["name"] for f in decode(source.mvt("countries", zoom, tile.x, tile.y))["countries"]["features"]}
        assert names & {"Nepal", "Uzbekistan"}, (zoom, names)
        for tileset in ("atlas", "countries"):
            assert pixel(source.png(tileset, zoom, tile.x, tile.y), xy)[:3] == style.hex_to_rgb(style.LAND), (tileset, zoom)


def test_atlas_tile_over_the_americas_has_land(source):
    assert "countries" in decode(source.mvt("atlas", 2, 0, 1))


@pytest.mark.parametrize("raw, period", [(None, None), ("2023-07-01", ("2023-07-01", "2023-07-01")),
                                         ("2023-07-01T12:00:00Z", ("2023-07-01", "2023-07-01")),
                                         ("2023-01-01/..", ("2023-01-01", None)), ("../2023-01-01", (None, "2023-01-01"))])
def test_parse_datetime(raw, period):
    import datetime as dt
    today = dt.date(2024, 5, 1)
    assert layer_tiles.parse_datetime(raw, today) == (period or ("2024-05-01", "2024-05-01"))


@pytest.mark.parametrize("raw", ["yesterday", "2023-13-01", "2023-05-01/2023-01-01", "a/b/c", ".."])
def test_parse_datetime_refuses(raw):
    with pytest.raises(QueryError, match="datetime"):
        layer_tiles.parse_datetime(raw)


# --- TileJSON and archives ---------------------------------------------------------------------

def test_tilejson(source, atlas):
    doc = source.tilejson("atlas", "http://x/tiles/atlas/{z}/{x}/{y}.mvt")
    assert doc["tilejson"] == "3.0.0" and doc["tiles"] == ["http://x/tiles/atlas/{z}/{x}/{y}.mvt"]
    assert (doc["minzoom"], doc["maxzoom"]) == (0, 14)
    west, south, east, north = doc["bounds"]
    assert (west, east) == (-180, 180) and south <= -85 and north > 83  # land everywhere
    west, south, east, north = source.tilejson("provinces", "")["bounds"]  # a layer of Pakistan: its extent
    assert 60 < west < 62 and 23 < south < 24.5 and 77 < east < 78.5 and 36.5 < north < 37.5
    assert source.tilejson("wilayahs", "")["bounds"] == atlas.manifest["layers"]["wilayahs"]["bbox"]
    assert 69 < doc["center"][0] < 70 and 30 < doc["center"][1] < 31  # Pakistan
    layers = {v["id"]: v for v in doc["vector_layers"]}
    assert list(layers) == [*catalogue.LAYER_IDS, "labels", "places"]
    assert {"label", "feature_id", "part", "zone", "min_zoom"} <= set(layers["labels"]["fields"])
    assert places.GEONAMES_CREDIT in doc["attribution"]
    assert [v["id"] for v in source.tilejson("wilayahs", "")["vector_layers"]] == ["wilayahs", "labels"]
    assert layers["tehsils"]["minzoom"] == 8 and "zone" in layers["wilayahs"]["fields"]
    assert catalogue.CAVEAT in doc["description"]
    assert all(line in doc["attribution"] for line in atlas.attribution())


@pytest.mark.parametrize("suffix", [".pmtiles", ".mbtiles"])
def test_archive_round_trip(source, atlas, tmp_path, suffix):
    path = tmp_path / f"atlas{suffix}"
    info = layer_tiles.write_archive(source, path, "atlas", 0, 4)
    assert info["tiles"] >= 5 and path.is_file()
    assert not list(tmp_path.glob(".*"))  # the staging file is gone
    archive = layer_tiles.Archive(path)
    assert (archive.tileset, archive.minzoom, archive.maxzoom) == ("atlas", 0, 4)
    tile, _ = at(*PESHAWAR, 4)
    assert archive.get(4, tile.x, tile.y) == source.mvt("atlas", 4, tile.x, tile.y)
    assert archive.get(4, 0, 0) == b""
    assert archive.covers(4, tile.x, tile.y) and not archive.covers(4, 0, 0) and not archive.covers(5, tile.x, tile.y)
    assert archive.bounds == pytest.approx(atlas.pakistan_bounds, abs=1e-6)  # the pyramid's, not the world
    if suffix == ".pmtiles":
        with open(path, "rb") as handle:
            reader = Reader(MmapSource(handle))
            assert reader.header()["max_zoom"] == 4
            assert [v["id"] for v in reader.metadata()["vector_layers"]] == list(layer_tiles.tile_layers("atlas"))
    else:
        with sqlite3.connect(path) as db:
            meta = dict(db.execute("SELECT name, value FROM metadata"))
        assert meta["format"] == "pbf" and json.loads(meta["json"])["vector_layers"]


def test_archive_refuses_bad_range_and_leaves_nothing(source, tmp_path):
    with pytest.raises(layer_tiles.TileError, match="zoom range"):
        layer_tiles.write_archive(source, tmp_path / "x.pmtiles", "atlas", 5, 3)
    with pytest.raises(layer_tiles.TileError, match=".pmtiles or .mbtiles"):
        layer_tiles.write_archive(source, tmp_path / "x.zip", "atlas", 0, 1)
    assert list(tmp_path.iterdir()) == []


# --- full-depth pyramids -----------------------------------------------------------------------

def assert_same_tile(stored: bytes, live: bytes) -> None:
    stored, live = decode(stored), decode(live)
    assert list(stored) == list(live)
    for name, layer in live.items():
        assert [f["properties"] for f in stored[name]["features"]] == [f["properties"] for f in layer["features"]]
        for a, b in zip(shapes(stored[name]), shapes(layer), strict=True):
            assert a.equals(b)


def test_subtree_is_a_run_of_tile_ids():
    from pmtiles.tile import zxy_to_tileid
    for z, x, y, depth in ((0, 0, 0, 3), (5, 22, 13, 2), (9, 361, 204, 3), (3, 7, 0, 1)):
        ids = sorted(zxy_to_tileid(z + depth, (x << depth) + i, (y << depth) + j)
                     for i in range(1 << depth) for j in range(1 << depth))
        assert geotiles.subtree(z, x, y, z + depth) == (ids[0], len(ids)) and ids == list(range(ids[0], ids[-1] + 1))


@pytest.mark.parametrize("suffix", [".pmtiles", ".mbtiles"])
def test_shared_tiles_match_the_live_cut(source, atlas, tmp_path, suffix):
    """Deep in a district every tile is the same square, stored once; every tile is what the server cuts
    (the same shapes: clipped from the parent's cut, a ring may start at another vertex)."""
    path = tmp_path / f"districts{suffix}"
    period = layer_tiles.parse_datetime(None)
    info = layer_tiles.write_archive(source, path, "districts", 0, 10, period, workers=2)
    assert info["contents"] < info["tiles"]  # the tiles inside one district share their bytes
    archive = layer_tiles.Archive(path)
    rng = np.random.default_rng(3)
    for zoom in (3, 7, 9, 10):
        tiles = geotiles.tiles_over(source.pyramid_bounds["districts"], zoom)
        for i in rng.choice(len(tiles), min(25, len(tiles)), replace=False):
            assert_same_tile(archive.get(*tiles[i]), source.mvt("districts", *tiles[i], period))
    tile, _ = at(*PESHAWAR, 10)
    assert decode(archive.get(10, tile.x, tile.y))["districts"]["features"]
    if suffix == ".mbtiles":
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT count(*) FROM images").fetchone()[0] == info["contents"]
            assert db.execute("SELECT count(*) FROM tiles").fetchone()[0] == info["tiles"]


def test_single_process_pyramid_is_the_same(source):
    period = layer_tiles.parse_datetime(None)
    assert layer_tiles.pyramid(source, "provinces", 0, 8, period, workers=1) == \
        layer_tiles.pyramid(source, "provinces", 0, 8, period, workers=2)


def test_png_archive(source, atlas, tmp_path):
    path = tmp_path / "atlas.pmtiles"
    info = layer_tiles.write_archive(source, path, "atlas", 0, 5, layer_tiles.parse_datetime("2023-07-01"), "png")
    archive = layer_tiles.Archive(path)
    with open(path, "rb") as handle:
        assert Reader(MmapSource(handle)).header()["tile_type"] == layer_tiles.TileType.PNG
    tile, xy = at(*PESHAWAR, 5)
    png = archive.get(5, tile.x, tile.y)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and not archive.covers(5, tile.x, tile.y)  # never served as MVT
    assert png == source.png("atlas", 5, tile.x, tile.y, layer_tiles.parse_datetime("2023-07-01"))
    sea, sea_xy = at(*OFF_KARACHI, 5)
    assert pixel(archive.get(5, sea.x, sea.y), sea_xy)[:3] == style.hex_to_rgb(style.BACKGROUND)
    every = sum(len(geotiles.tiles_over(source.pyramid_bounds["atlas"], z)) for z in range(6))
    assert info["format"] == "png" and info["tiles"] == every  # the atlas draws the sea: no tile is empty
    for layer in source.points(source.selection("atlas", layer_tiles.parse_datetime("2023-07-01"))).values():
        for i in layer.shown(5):  # a tile holding a label's anchor is cut with its label, not shared
            x, y = (np.floor(layer.world[i] * 2 ** 5)).astype(int)
            assert archive.get(5, x, y) == source.png("atlas", 5, x, y, layer_tiles.parse_datetime("2023-07-01"))
    with pytest.raises(layer_tiles.TileError, match="format 'jpeg'"):
        layer_tiles.write_archive(source, tmp_path / "x.pmtiles", "atlas", 0, 1, None, "jpeg")
