"""The tile service on the real server (gunicorn) and ``ttp-atlas tiles`` archives read by pmtiles and GDAL."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys

import mapbox_vector_tile
import mercantile
import numpy as np
import pyogrio
import pytest
import requests
from PIL import Image
from pmtiles.reader import MmapSource, Reader
from pmtiles.tile import TileType

from layers import catalogue, style
from layers import tiles as layer_tiles
from tests.conftest import start_server, stop_server

MVT = "application/vnd.mapbox-vector-tile"
PESHAWAR = mercantile.tile(71.55, 34.0, 7)
SEA = mercantile.tile(66.6, 24.4, 10)  # off Karachi: inside the bounds, no wilayah


def url_of(server, tileset, tile, suffix=".mvt"):
    return f"{server}/tiles/{tileset}/{tile.z}/{tile.x}/{tile.y}{suffix}"


def test_mvt_tile_headers_gzip_and_304(server):
    response = requests.get(url_of(server, "atlas", PESHAWAR), headers={"Accept-Encoding": "gzip"}, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"] == MVT
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Cache-Control"].startswith("public, max-age=")
    decoded = mapbox_vector_tile.decode(response.content)  # requests has already gunzipped it
    assert "Peshawar" in {f["properties"]["name"] for f in decoded["wilayahs"]["features"]}
    again = requests.get(url_of(server, "atlas", PESHAWAR), headers={"If-None-Match": response.headers["ETag"]},
                         timeout=30)
    assert again.status_code == 304 and not again.content


def test_datetime_changes_the_tile(server):
    early = requests.get(url_of(server, "wilayahs", mercantile.Tile(0, 0, 0)), params={"datetime": "2023-03-01"}, timeout=30)
    later = requests.get(url_of(server, "wilayahs", mercantile.Tile(0, 0, 0)), params={"datetime": "2023-07-01"}, timeout=30)
    count = lambda r: len(mapbox_vector_tile.decode(r.content)["wilayahs"]["features"])
    assert (count(early), count(later)) == (9, 15)


@pytest.mark.parametrize("suffix, size", [(".png", 256), ("@2x.png", 512)])
def test_png_tiles(server, suffix, size):
    response = requests.get(url_of(server, "atlas", PESHAWAR, suffix), timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    assert "ETag" in response.headers
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (size, size)


def test_empty_tile_is_204(server):
    response = requests.get(url_of(server, "wilayahs", SEA), timeout=30)
    assert response.status_code == 204 and not response.content
    outside = requests.get(f"{server}/tiles/provinces/2/0/0.mvt", timeout=30)  # inside the matrix, no data
    assert outside.status_code == 204 and not outside.content


def test_tiles_east_of_pakistan_have_land(server):
    """z5 tiles east of 78.75°E (Pakistan's bounding box ends there) answer with land, as do those of the
    Americas."""
    nepal = mercantile.tile(84.0, 28.0, 5)
    assert mercantile.bounds(nepal).west >= 78.75
    countries = requests.get(url_of(server, "countries", nepal), timeout=30)
    assert countries.status_code == 200
    assert "Nepal" in {f["properties"]["name"] for f in mapbox_vector_tile.decode(countries.content)["countries"]["features"]}
    land = np.array([*style.hex_to_rgb(style.LAND), 255])
    for tileset in ("atlas", "countries"):
        response = requests.get(url_of(server, tileset, nepal, ".png"), timeout=30)
        assert response.status_code == 200
        with Image.open(io.BytesIO(response.content)) as image:
            pixels = np.asarray(image.convert("RGBA")).reshape(-1, 4)
        assert (pixels == land).all(axis=1).mean() > 0.5, tileset
    assert requests.get(f"{server}/tiles/atlas/2/0/1.mvt", timeout=30).status_code == 200


@pytest.mark.parametrize("path, status, parameter", [
    ("/tiles/atlas/a/0/0.mvt", 400, "z"),
    ("/tiles/atlas/3/x/0.mvt", 400, "x"),
    ("/tiles/atlas/3/0/-1.mvt", 400, "y"),
    ("/tiles/atlas/2/4/0.mvt", 400, "x"),
    ("/tiles/atlas/2/0/9.png", 400, "y"),
    ("/tiles/atlas/15/0/0.mvt", 404, None),
    ("/tiles/nowhere/0/0/0.mvt", 404, None),
    ("/tiles/atlas/0/0/0.jpg", 404, None),
    ("/tiles/nowhere.json", 404, None),
    ("/tiles/atlas/0/0/0.mvt?datetime=soon", 400, "datetime"),
    ("/tiles/atlas/0/0/0.mvt?zoom=3", 400, "zoom"),
])
def test_errors_are_problem_documents(server, path, status, parameter):
    response = requests.get(server + path, timeout=30)
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status and problem["detail"]
    if parameter:
        assert problem["parameter"] == parameter


def test_tilejson_document(server):
    doc = requests.get(f"{server}/tiles/atlas.json", params={"datetime": "2023-07-01"}, timeout=30).json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"] == [f"{server}/tiles/atlas/{{z}}/{{x}}/{{y}}.mvt?datetime=2023-07-01"]
    assert (doc["minzoom"], doc["maxzoom"]) == (0, 14) and len(doc["bounds"]) == 4 and len(doc["center"]) == 3
    assert [layer["id"] for layer in doc["vector_layers"]] == list(layer_tiles.tile_layers("atlas"))
    assert "OCHA" in doc["attribution"] and catalogue.CAVEAT in doc["description"]
    single = requests.get(f"{server}/tiles/districts.json", timeout=30).json()
    assert [layer["id"] for layer in single["vector_layers"]] == ["districts"]
    assert catalogue.CAVEAT not in single["description"]


# --- the CLI and archives ----------------------------------------------------------------------

def cli(*args) -> subprocess.CompletedProcess:
    # the console script's way in (``-m server.cli`` would load a second copy of server.cli)
    entry = "import sys; from server.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", entry, "tiles", *map(str, args)],
                          check=False, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def archives(built, data_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiles")
    for name in ("atlas.pmtiles", "atlas.mbtiles"):
        done = cli("--build", built, "--data", data_root, "--out", folder / name, "--maxzoom", 5,
                   "--datetime", "2023-07-01")
        assert done.returncode == 0, done.stderr
        assert f"to {folder / name}" in done.stdout
    return folder


def test_pmtiles_readable_by_pmtiles_library(archives):
    with open(archives / "atlas.pmtiles", "rb") as handle:
        reader = Reader(MmapSource(handle))
        header, meta = reader.header(), reader.metadata()
        tile = mercantile.tile(71.55, 34.0, 5)
        data = gzip.decompress(reader.get(5, tile.x, tile.y))
    assert (header["min_zoom"], header["max_zoom"]) == (0, 5)
    assert [v["id"] for v in meta["vector_layers"]] == list(layer_tiles.tile_layers("atlas"))
    wilayahs = mapbox_vector_tile.decode(data)["wilayahs"]["features"]
    assert "Peshawar" in {f["properties"]["name"] for f in wilayahs}


@pytest.mark.parametrize("name", ["atlas.pmtiles", "atlas.mbtiles"])
def test_archives_readable_by_gdal(archives, name):
    path = archives / name
    layers = {row[0] for row in pyogrio.list_layers(path)}
    assert {"provinces", "wilayahs", "districts"} <= layers
    frame = pyogrio.read_dataframe(path, layer="wilayahs", columns=["name", "zone", "confidence"])
    # GDAL reads the maxzoom tiles: every unit valid on 2023-07-01 appears (split at tile edges)
    assert {"Peshawar", "Bannu", "Zhob"} <= set(frame["name"])
    assert set(frame["zone"].dropna()) <= {"north", "south"}
    assert frame.geometry.is_valid.all()
    # the label points: each unit once (not once per tile), each place at its place
    labels = pyogrio.read_dataframe(path, layer="labels")
    assert set(labels.geom_type) == {"Point"} and labels["feature_id"].is_unique and len(labels) >= 5
    assert {"Zhob", "Punjab North"} <= set(labels["label"])
    places = pyogrio.read_dataframe(path, layer="places").to_crs("EPSG:4326").set_index("name")  # GDAL: mercator
    lahore = places.loc["Lahore"]
    assert lahore["kind"] == "provincial-capital"
    assert abs(lahore.geometry.x - 74.34) < 0.05 and abs(lahore.geometry.y - 31.55) < 0.05, lahore.geometry


def test_served_tiles_name_islamabad_from_zoom_6(server):
    """Over HTTP: the z6 atlas tile holding Islamabad carries its place point, the z5 tile does not."""
    for zoom, expected in ((5, False), (6, True)):
        tile = mercantile.tile(73.05, 33.7, zoom)
        decoded = mapbox_vector_tile.decode(requests.get(url_of(server, "atlas", tile), params={
            "datetime": "2023-07-01"}, timeout=30).content)
        names = {f["properties"]["name"] for f in decoded.get("places", {"features": []})["features"]}
        assert ("Islamabad" in names) == expected, (zoom, names)


def test_cli_writes_a_png_archive(built, data_root, tmp_path):
    path = tmp_path / "basemap.pmtiles"
    done = cli("--build", built, "--data", data_root, "--out", path, "--maxzoom", 3, "--format", "png")
    assert done.returncode == 0, done.stderr
    with open(path, "rb") as handle:
        reader = Reader(MmapSource(handle))
        assert reader.header()["tile_type"] == TileType.PNG and reader.header()["max_zoom"] == 3
        image = Image.open(io.BytesIO(reader.get(3, 5, 3)))  # z3 over Pakistan and its neighbours
    assert image.size == (256, 256) and len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)) > 3


@pytest.mark.parametrize("args, message", [
    (["--out", "x.pmtiles", "--format", "jpeg"], "--format"),
    (["--out", "x.zip"], ".pmtiles or .mbtiles"),
    (["--out", "x.pmtiles", "--tileset", "roads"], "--tileset 'roads'"),
    (["--out", "x.pmtiles", "--minzoom", "6", "--maxzoom", "2"], "zoom range 6-2"),
    (["--out", "x.pmtiles", "--datetime", "later"], "datetime 'later'"),
])
def test_cli_refuses_bad_values_in_one_line(built, tmp_path, args, message):
    args = [a if not a.startswith("x.") else tmp_path / a for a in args]
    done = cli("--build", built, *args)
    assert done.returncode == 2 and message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_server_serves_tiles_from_the_archive(archives, built, data_root):
    process, url = start_server(built, data_root, workers=1,
                                env={"TTP_ATLAS_TILES_ARCHIVE": str(archives / "atlas.pmtiles")})
    try:
        tile = mercantile.tile(71.55, 34.0, 5)
        with open(archives / "atlas.pmtiles", "rb") as handle:
            stored = gzip.decompress(Reader(MmapSource(handle)).get(5, tile.x, tile.y))
        served = requests.get(url_of(url, "atlas", tile), timeout=30)
        assert served.status_code == 200 and served.content == stored
        assert requests.get(url_of(url, "atlas", mercantile.tile(66.6, 24.4, 5)), timeout=30).status_code in (200, 204)
        assert requests.get(f"{url}/tiles/atlas/15/0/0.mvt", timeout=30).status_code == 404
        # beyond the archive's pyramid (over Nepal) the tile is cut live, not taken for an empty one
        outside = requests.get(url_of(url, "atlas", mercantile.tile(84.0, 28.0, 5)), timeout=30)
        assert outside.status_code == 200
        assert "countries" in mapbox_vector_tile.decode(outside.content)
    finally:
        stop_server(process)


# --- the user's events ---------------------------------------------------------------------------

PESHAWAR_CITY, QUETTA = (71.55, 34.0), (66.99, 30.18)


def test_event_tiles_need_an_event_file(server):
    for path in ("/tiles/events/0/0/0.mvt", "/tiles/events.json", "/tiles/events/5/22/13.mvt?month=2023-07"):
        response = requests.get(server + path, timeout=30)
        assert response.status_code == 404, path
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert "event file" in response.json()["detail"]
    assert not any(path.startswith("/tiles/events") for path in requests.get(f"{server}/api", timeout=30).json()["paths"])


@pytest.fixture(scope="module")
def events_server(built, data_root, tmp_path_factory):
    """A server with a generated plain event file: 4 events in Peshawar in July 2023, 2 in August, 1 in
    Quetta in July (in Zhob's possible extension then)."""
    path = tmp_path_factory.mktemp("events") / "events.csv"
    rows = [f"2023-07-0{day},{PESHAWAR_CITY[0] + day / 1000},{PESHAWAR_CITY[1]},{day}" for day in range(1, 5)]
    rows += [f"2023-08-1{day},{PESHAWAR_CITY[0]},{PESHAWAR_CITY[1] + day / 1000},0" for day in range(2)]
    rows += [f"2023-07-20,{QUETTA[0]},{QUETTA[1]},1"]
    path.write_text("date,lon,lat,fatalities\n" + "\n".join(rows) + "\n")
    process, url = start_server(built, data_root, workers=1, env={"TTP_ATLAS_EVENTS": str(path)})
    yield url
    stop_server(process)


def event_tile(url: str, tile, **query) -> dict:
    response = requests.get(f"{url}/tiles/events/{tile.z}/{tile.x}/{tile.y}.mvt", params=query, timeout=30)
    assert response.status_code in (200, 204) and response.headers["Content-Type"] == MVT, response.text[:300]
    return mapbox_vector_tile.decode(response.content, default_options={"y_coord_down": True})


def grid_lonlat(tile, xy) -> tuple[float, float]:
    west, south, east, north = mercantile.xy_bounds(tile)
    point = mercantile.lnglat(west + xy[0] / 4096 * (east - west), north - xy[1] / 4096 * (north - south))
    return point.lng, point.lat


def test_event_tiles_carry_points_and_monthly_counts(events_server):
    tile = mercantile.tile(*PESHAWAR_CITY, 9)
    july = event_tile(events_server, tile, month="2023-07")
    points = july["events"]["features"]
    assert len(points) == 4 and {f["properties"]["month"] for f in points} == {"2023-07"}
    for feature in points:
        lon, lat = grid_lonlat(tile, feature["geometry"]["coordinates"])
        assert abs(lat - PESHAWAR_CITY[1]) < 0.01 and PESHAWAR_CITY[0] < lon < PESHAWAR_CITY[0] + 0.01, (lon, lat)
        assert feature["properties"]["wilayah"] == "Peshawar" and isinstance(feature["properties"]["fatalities"], int)
    (unit,) = july["event-counts-wilayahs"]["features"]
    assert unit["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert (unit["properties"]["name"], unit["properties"]["month"], unit["properties"]["events"]) == (
        "Peshawar", "2023-07", 4)
    assert unit["properties"]["fatalities"] == sum(f["properties"]["fatalities"] for f in points)
    district = [f["properties"] for f in july["event-counts-districts"]["features"] if f["properties"]["events"]]
    assert [(d["name"], d["events"]) for d in district] == [("Peshawar", 4)]
    every = event_tile(events_server, tile)  # no month: all of them
    assert len(every["events"]["features"]) == 6
    assert sorted((f["properties"]["month"], f["properties"]["events"]) for f in every["event-counts-wilayahs"]["features"]) \
        == [("2023-07", 4), ("2023-08", 2)]
    quetta = event_tile(events_server, mercantile.tile(*QUETTA, 9), month="2023-07")
    assert [f["properties"]["wilayah_part"] for f in quetta["events"]["features"]] == ["extension"]
    assert [f["properties"]["label"] for f in quetta["event-counts-wilayahs"]["features"]] == ["Zhob (possible extension)"]
    assert requests.get(f"{events_server}/tiles/events/9/0/0.mvt", timeout=30).status_code == 204


@pytest.mark.parametrize("path, status, parameter", [
    ("/tiles/events/5/22/13.mvt?month=2023-13", 400, "month"),
    ("/tiles/events/5/22/13.mvt?month=2020-01", 400, "month"),
    ("/tiles/events/5/22/13.mvt?datetime=2023-07-01", 400, "datetime"),
    ("/tiles/events/5/22/13.png", 404, None),
    ("/tiles/events/15/0/0.mvt", 404, None),
    ("/tiles/events.json?month=july", 400, "month"),
])
def test_event_tiles_refuse_bad_requests(events_server, path, status, parameter):
    response = requests.get(events_server + path, timeout=30)
    assert response.status_code == status and response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json().get("parameter") == parameter


def test_event_tilejson_and_openapi(events_server):
    doc = requests.get(f"{events_server}/tiles/events.json", params={"month": "2023-07"}, timeout=30).json()
    assert doc["tiles"] == [f"{events_server}/tiles/events/{{z}}/{{x}}/{{y}}.mvt?month=2023-07"]
    assert [layer["id"] for layer in doc["vector_layers"]] == list(layer_tiles.EVENT_LAYER_IDS)
    assert {"month", "fatalities"} <= set(doc["vector_layers"][0]["fields"])
    assert "events.csv" in doc["attribution"] and catalogue.CAVEAT in doc["description"]
    paths = requests.get(f"{events_server}/api", timeout=30).json()["paths"]
    assert "month" in [p["name"] for p in paths["/tiles/events/{z}/{x}/{y}.mvt"]["get"]["parameters"]]
    assert "/tiles/events.json" in paths
