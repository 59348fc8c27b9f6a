"""The events overlay (``layers.overlay``): event files in each documented layout, generated here, loaded as
points and counts per unit and month. No event data is downloaded or committed: every row is made up.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from urllib.parse import urlsplit

import pyogrio
import pytest
import requests

from layers import events, overlay
from server import openapi
from tests.conftest import start_server, stop_server
from tests.test_join import (ACLED_HEADER, GTD_HEADER, PESHAWAR, PISHIN, QUETTA, UCDP_HEADER, KABUL, acled,
                             write)

ZHOB = ("31.3412", "69.4486")  # Zhob town, in Zhob district


def counts(found: overlay.Overlay, layer_id: str) -> dict[str, tuple[int, int]]:
    return {f["id"]: (f["properties"]["events"], f["properties"]["fatalities"]) for f in found.counts[layer_id]}


def district_counts(found: overlay.Overlay) -> dict[tuple[str, str], tuple[int, int]]:
    return {(f["properties"]["name"], f["properties"]["month"]): (f["properties"]["events"],
                                                                   f["properties"]["fatalities"])
            for f in found.counts["districts"]}


def acled_file(folder):
    return write(folder / "acled.csv", ACLED_HEADER, [
        acled("A1", "2023-05-15", *QUETTA, fatalities="4"),  # line 2: in no claimed unit in May 2023
        acled("A2", "2023-07-02", *ZHOB, fatalities="2"),  # line 3: Zhob (core)
        acled("A3", "15 July 2023", *ZHOB, fatalities="1"),  # line 4: ACLED's older date spelling
        acled("A4", "2023-07-20", *PESHAWAR, fatalities="x"),  # line 5: unreadable fatalities count as 0
        acled("A5", "", *PESHAWAR, fatalities="9"),  # line 6: no date: a point, flagged, counted nowhere
        acled("A6", "2023-07-01", *KABUL, fatalities="9"),  # line 7: outside Pakistan: flagged
        acled("A7", "2023-07-04", location="Nowhereabad", fatalities="9"),  # line 8: no point at all
        acled("A8", "2023-07-04", location="Miran Shah", admin2="North Waziristan", fatalities="5")])  # by name


@pytest.fixture(scope="module")
def acled_overlay(atlas, tmp_path_factory) -> overlay.Overlay:
    return overlay.load(atlas, acled_file(tmp_path_factory.mktemp("acled")))


def test_acled_points(acled_overlay):
    found = acled_overlay
    assert found.source == "acled.csv" and found.months == ("2023-05", "2023-06", "2023-07")
    assert found.credits[0].startswith("Event data: acled.csv, from ACLED") and found.credits[-1].startswith(
        "Place names: GeoNames")  # Miran Shah is a GeoNames town
    by_line = {e["properties"]["line"]: e for e in found.events}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 9]  # line 8 has no coordinates and an unknown place
    quetta = by_line[2]
    assert quetta["geometry"] == {"type": "Point", "coordinates": [67.00141, 30.18414]}
    assert quetta["id"] == quetta["properties"]["id"] == "line-2"
    assert {k: quetta["properties"][k] for k in ("date", "month", "fatalities", "district", "wilayah", "flag")} == \
        {"date": "2023-05-15", "month": "2023-05", "fatalities": 4, "district": "Quetta", "wilayah": None, "flag": None}
    assert quetta["properties"]["actor"] == "Tehrik-i-Taliban Pakistan (TTP)"
    zhob = by_line[4]["properties"]
    assert (zhob["date"], zhob["district"], zhob["wilayah"], zhob["wilayah_part"], zhob["confidence"]) == \
        ("2023-07-15", "Zhob", "Zhob", "core", "medium")
    assert by_line[5]["properties"]["fatalities"] == 0
    assert (by_line[6]["properties"]["flag"], by_line[6]["properties"]["date"]) == ("no-date", None)
    assert (by_line[7]["properties"]["flag"], by_line[7]["properties"]["province"]) == ("outside-pakistan", None)
    miran_shah = by_line[9]["properties"]
    assert (miran_shah["tribal_district"], miran_shah["wilayah"], miran_shah["zone"]) == \
        ("North Waziristan", "Bannu", "south")


def test_acled_counts(acled_overlay, atlas):
    found = acled_overlay
    assert district_counts(found) == {("Quetta", "2023-05"): (1, 4), ("Zhob", "2023-07"): (2, 3),
                                      ("Peshawar", "2023-07"): (1, 0), ("North Waziristan", "2023-07"): (1, 5)}
    assert counts(found, "wilayahs") == {"zhob-2023-06-14-core/2023-07": (2, 3),
                                         "peshawar-2022-12-31-core/2023-07": (1, 0),
                                         "bannu-2022-12-31-core/2023-07": (1, 5)}
    zhob = next(f for f in found.counts["wilayahs"] if f["properties"]["unit_id"] == "zhob-2023-06-14-core")
    position = next(i for i, f in enumerate(atlas.features("wilayahs")) if f["id"] == "zhob-2023-06-14-core")
    assert zhob["geometry"] == atlas.geojson_geometry("wilayahs", position)  # the unit's own geometry
    assert {k: zhob["properties"][k] for k in ("name", "part", "zone", "label", "month")} == \
        {"name": "Zhob", "part": "core", "zone": None, "label": "Zhob", "month": "2023-07"}
    district = found.counts["districts"][0]
    assert set(district["properties"]) == {"id", "unit_id", "name", "month", "events", "fatalities"}
    assert district["geometry"]["type"] in ("Polygon", "MultiPolygon")


def test_ucdp_gtd_plain(atlas, tmp_path):
    def ged(i, start, end, lat, lon, best) -> dict:
        return {"id": str(i), "side_b": "TTP", "latitude": lat, "longitude": lon, "best": best,
                "date_start": f"{start} 00:00:00.000", "date_end": f"{end} 00:00:00.000"}
    ucdp = overlay.load(atlas, write(tmp_path / "ged.csv", UCDP_HEADER, [
        ged(1, "2023-06-10", "2023-06-20", *PESHAWAR, "2"),  # one month: counted in June
        ged(2, "2023-06-28", "2023-07-02", *PESHAWAR, "3")]))  # placed, but spans two months: in no month
    assert [(e["properties"]["date"], e["properties"]["month"], e["properties"]["flag"]) for e in ucdp.events] == \
        [(None, "2023-06", None), (None, None, None)]
    assert counts(ucdp, "wilayahs") == {"peshawar-2022-12-31-core/2023-06": (1, 2)}
    assert ucdp.months == ("2023-06",) and "UCDP" in ucdp.credits[0]

    def gtd(i, year, month, day, lat, lon, nkill) -> dict:
        return {"eventid": str(i), "iyear": year, "imonth": month, "iday": day, "latitude": lat, "longitude": lon,
                "gname": "TTP", "nkill": nkill, "city": "caf\u00e9"}
    latin = tmp_path / "gtd.csv"  # GTD's CSV exports are latin-1
    write(tmp_path / "gtd-utf8.csv", GTD_HEADER, [gtd(1, "2023", "7", "0", *PISHIN, "2"),
                                                  gtd(2, "2023", "0", "0", *PISHIN, "7")])
    latin.write_bytes((tmp_path / "gtd-utf8.csv").read_text(encoding="utf-8").encode("latin-1"))
    found = overlay.load(atlas, latin)
    assert [e["properties"]["flag"] for e in found.events] == [None, "date-uncertain"]
    assert counts(found, "wilayahs") == {"zhob-2023-06-14-extension/2023-07": (1, 2)}
    assert district_counts(found) == {("Pishin", "2023-07"): (1, 2)}

    plain = tmp_path / "plain.csv"
    plain.write_text(f"date,lon,lat,note\n2023-07-15,{QUETTA[1]},{QUETTA[0]},x\n2023-07-15,abc,30,y\n",
                     encoding="utf-8")
    found = overlay.load(atlas, plain)
    assert [e["properties"]["line"] for e in found.events] == [2]  # the bad coordinates make no point
    assert [(f["properties"]["label"], f["properties"]["events"]) for f in found.counts["wilayahs"]] == \
        [("Zhob (possible extension)", 1)]
    assert found.credits == ("Event data: plain.csv, the user's file",)

    with_counts = tmp_path / "plain-fatalities.csv"  # the optional actor and fatalities columns are read
    with_counts.write_text(f"date,lon,lat,actor,fatalities\n2023-07-15,{QUETTA[1]},{QUETTA[0]},TTP,4\n"
                           f"2023-07-20,{QUETTA[1]},{QUETTA[0]},,\n", encoding="utf-8")
    found = overlay.load(atlas, with_counts)
    assert [(e["properties"]["actor"], e["properties"]["fatalities"]) for e in found.events] == [("TTP", 4), (None, 0)]
    assert [(f["properties"]["events"], f["properties"]["fatalities"]) for f in found.counts["wilayahs"]] == [(2, 4)]


def test_environment_and_refusals(atlas, tmp_path):
    assert overlay.from_environment(atlas, {}) is None
    path = acled_file(tmp_path)
    assert len(overlay.from_environment(atlas, {overlay.EVENTS_ENV: str(path)}).events) == 7
    bad = tmp_path / "bad.csv"
    bad.write_text("when,x,y\n", encoding="utf-8")
    with pytest.raises(events.EventFileError, match=r"bad.csv: unknown header \(when,x,y\): accepted layouts"):
        overlay.load(atlas, bad)
    with pytest.raises(events.EventFileError, match="cannot read .*missing.csv"):
        overlay.load(atlas, tmp_path / "missing.csv")


# --- served: OGC API - Features, read by GDAL ------------------------------------------------------

@pytest.fixture(scope="module")
def events_server(built, data_root, tmp_path_factory):
    """A server started with $TTP_ATLAS_EVENTS naming a generated ACLED file."""
    path = acled_file(tmp_path_factory.mktemp("served"))
    process, url = start_server(built, data_root, workers=1, env={overlay.EVENTS_ENV: str(path)})
    yield url
    stop_server(process)


def get(url: str, status: int = 200, **params) -> requests.Response:
    response = requests.get(url, params=params, timeout=60)
    assert response.status_code == status, (url, response.text[:300])
    return response


def test_gdal_reads_the_events(events_server):
    frame = pyogrio.read_dataframe(f"OAPIF:{events_server}/collections/events")
    assert len(frame) == 7 and set(frame.geometry.geom_type) == {"Point"}
    quetta = frame[frame["line"] == 2].iloc[0]
    assert (str(quetta["date"].date()), quetta["district"], quetta["fatalities"]) == ("2023-05-15", "Quetta", 4)
    assert (quetta.geometry.x, quetta.geometry.y) == (67.00141, 30.18414)
    assert sorted(frame["flag"].dropna()) == ["no-date", "outside-pakistan"]
    counts = pyogrio.read_dataframe(f"OAPIF:{events_server}/collections/event-counts-districts")
    assert sorted(zip(counts["name"], counts["month"], counts["events"], counts["fatalities"], strict=True)) == [
        ("North Waziristan", "2023-07", 1, 5), ("Peshawar", "2023-07", 1, 0), ("Quetta", "2023-05", 1, 4),
        ("Zhob", "2023-07", 2, 3)]
    assert set(counts.geometry.geom_type) == {"MultiPolygon"}
    units = pyogrio.read_dataframe(f"OAPIF:{events_server}/collections/event-counts-wilayahs")
    assert sorted(units["label"]) == ["Bannu", "Peshawar", "Zhob"]
    # GDAL 3.6 sends the query string of the URL it opens with every request, the collection's included
    july = pyogrio.read_dataframe(f"OAPIF:{events_server}/collections/event-counts-districts?month=2023-07")
    assert sorted(july["name"]) == ["North Waziristan", "Peshawar", "Zhob"]


def test_month_paging_bbox_and_items(events_server):
    items = f"{events_server}/collections/event-counts-districts/items"
    july = get(items, month="2023-07").json()
    assert july["numberMatched"] == 3 and {f["properties"]["month"] for f in july["features"]} == {"2023-07"}
    assert get(items, month="2023-06").json()["numberMatched"] == 0  # a gap month: valid, no events
    for bad in ("2023-13", "2024-01", "July"):
        problem = get(items, 400, month=bad).json()
        assert problem["parameter"] == "month" and f"'{bad}'" in problem["detail"]
        assert "from 2023-05 to 2023-07" in problem["detail"]
    events_url = f"{events_server}/collections/events/items"
    assert [f["id"] for f in get(events_url, date="2023-07-15").json()["features"]] == ["line-4"]
    for bad in ("15 July 2023", "2023-02-30", "2023-13-01", "0000-00-00"):
        assert get(events_url, 400, date=bad).json()["parameter"] == "date"
    get(items, 400, month="")  # an empty month is no month, on the collections as on the tiles
    assert get(items, name="Kohat").json()["numberMatched"] == 0  # a district with no events: none, not a 400
    first = get(events_url, limit="3").json()
    assert first["numberReturned"] == 3 and first["numberMatched"] == 7
    following = next(link["href"] for link in first["links"] if link["rel"] == "next")
    assert [f["id"] for f in get(following).json()["features"]] == ["line-5", "line-6", "line-7"]
    peshawar = get(events_url, bbox="71.5,33.9,71.7,34.1").json()
    assert sorted(f["id"] for f in peshawar["features"]) == ["line-5", "line-6"]
    dated = get(events_url, datetime="2023-07-01/2023-07-10").json()
    assert sorted(f["id"] for f in dated["features"]) == ["line-3", "line-7", "line-9"]
    one = get(f"{events_server}/collections/event-counts-wilayahs/items/zhob-2023-06-14-core%2F2023-07").json()
    assert (one["properties"]["events"], one["properties"]["fatalities"]) == (2, 3)
    assert one["geometry"]["type"] == "MultiPolygon"
    html = get(f"{events_server}/collections/events/items", f="html").text
    assert "line-9" in html and "Event data: acled.csv, from ACLED" in html


@pytest.mark.parametrize(("path", "month"), [("/collections/events/items?month=2023-07", "?month=2023-07"),
                                             ("/collections/event-counts-districts/items", ""),
                                             ("/collections/event-counts-wilayahs/items/zhob-2023-06-14-core%2F2023-07",
                                              "?month=2023-07")])
def test_html_pages_link_and_embed_the_events_map(events_server, path, month):
    """The overlay's pages show the events map (there is no /map/<collection> for them), and it answers."""
    html = get(f"{events_server}{path}", f="html").text
    assert f'href="{events_server}/map/events{month}"' in html
    embed = re.search(r'<iframe class="map" src="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert embed == f"{events_server}/map/events{month}{'&' if month else '?'}embed=1"
    assert "/map/event" not in html.replace("/map/events", "")
    get(embed)


def test_collections_attribution_and_document(events_server):
    listed = {c["id"]: c for c in get(f"{events_server}/collections").json()["collections"]}
    counts = listed["event-counts-wilayahs"]
    assert {"events", "event-counts-districts"} <= set(listed)
    assert counts["months"] == ["2023-05", "2023-06", "2023-07"]
    assert counts["attribution"].startswith("Event data: acled.csv, from ACLED") and "COD-AB" in counts["attribution"]
    assert "Claimed units, not areas of control" in counts["caveat"]
    assert "caveat" not in listed["event-counts-districts"]
    assert counts["extent"]["temporal"]["interval"] == [["2023-07-01T00:00:00Z", "2023-07-31T23:59:59Z"]]
    assert listed["event-counts-districts"]["extent"]["temporal"]["interval"] == [["2023-05-01T00:00:00Z",
                                                                                 "2023-07-31T23:59:59Z"]]
    assert not any(link["rel"] == "enclosure" for link in counts["links"])  # no downloads of the user's data
    get(f"{events_server}/collections/events/download.gpkg", 404)
    spec = get(f"{events_server}/api").json()
    month = next(p for p in spec["paths"]["/collections/event-counts-districts/items"]["get"]["parameters"]
                 if p.get("name") == "month")
    assert month["schema"]["pattern"] == overlay.MONTH_PATTERN and "2023-05 to 2023-07" in month["description"]
    for url in ("/collections/events/items?month=2023-07", "/collections/event-counts-wilayahs",
                "/collections/events/queryables", "/collections/events/items?month=2023-13"):
        response = requests.get(events_server + url, timeout=60)
        assert openapi.response_errors(spec, "GET", urlsplit(url).path, response.status_code,
                                       response.headers["Content-Type"], response.content) == [], url


def test_no_overlay_no_collections(server):
    listed = {c["id"] for c in get(f"{server}/collections").json()["collections"]}
    assert not {"events", "event-counts-wilayahs", "event-counts-districts"} & listed
    for collection in ("events", "event-counts-wilayahs", "event-counts-districts"):
        response = get(f"{server}/collections/{collection}/items", 404)
        assert response.headers["Content-Type"] == "application/problem+json"
        assert "no event file is loaded" in response.json()["detail"]


def test_serve_refuses_a_missing_file(built, data_root, tmp_path):
    command = [sys.executable, "-m", "server", "serve", "--build", str(built), "--data", str(data_root), "--port", "9"]
    done = subprocess.run([*command, "--events", "/nonexistent"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "'/nonexistent' is not a readable file" in done.stderr
    done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                          env={**os.environ, overlay.EVENTS_ENV: str(tmp_path)})  # a folder, from the environment
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "is not a readable file" in done.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("when,x,y\n", encoding="utf-8")
    done = subprocess.run([*command, "--events", str(bad)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "accepted layouts are ACLED" in done.stderr
