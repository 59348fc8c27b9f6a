"""The events overlay (``layers.overlay``): event files in each documented layout, generated here, loaded as
points and counts per unit and month. No event data is downloaded or committed: every row is made up.
"""

from __future__ import annotations

import pytest

from layers import events, overlay
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
    unit = next(f for f in atlas.features("wilayahs") if f["id"] == "zhob-2023-06-14-core")
    assert zhob["geometry"] is unit["geometry"]  # the unit's own geometry, not a copy
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
