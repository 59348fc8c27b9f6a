"""``ttp-atlas join``: event files in each documented layout, generated here, joined to the units of their day.

No event data is downloaded or committed: every row below is made up at a known place and day.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from layers import events, lookup

PESHAWAR = ("34.008", "71.57849")  # lat, lon
QUETTA = ("30.18414", "67.00141")
PISHIN = ("30.58176", "66.99406")
KABUL = ("34.53", "69.17")

ACLED_HEADER = ("event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,"
                "assoc_actor_1,inter1,actor2,assoc_actor_2,inter2,interaction,civilian_targeting,iso,region,"
                "country,admin1,admin2,admin3,location,latitude,longitude,geo_precision,source,source_scale,notes,"
                "fatalities,tags,timestamp").split(",")
UCDP_HEADER = ("id,relid,year,active_year,code_status,type_of_violence,conflict_dset_id,conflict_new_id,"
               "conflict_name,dyad_dset_id,dyad_new_id,dyad_name,side_a_dset_id,side_a_new_id,side_a,"
               "side_b_dset_id,side_b_new_id,side_b,number_of_sources,source_article,source_office,source_date,"
               "source_headline,source_original,where_prec,where_coordinates,where_description,adm_1,adm_2,"
               "latitude,longitude,geom_wkt,priogrid_gid,country,country_id,region,event_clarity,date_prec,"
               "date_start,date_end,deaths_a,deaths_b,deaths_civilians,deaths_unknown,best,high,low").split(",")
GTD_HEADER = ("eventid,iyear,imonth,iday,approxdate,extended,resolution,country,country_txt,region,region_txt,"
              "provstate,city,latitude,longitude,specificity,vicinity,location,summary,attacktype1_txt,"
              "targtype1_txt,gname,nkill,nwound").split(",")


@pytest.fixture(scope="module")
def locator(atlas) -> lookup.Locator:
    return lookup.Locator(atlas)


def write(path: Path, header: list[str], rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, header, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def joined(locator, path: Path, tmp_path: Path, **kwargs) -> tuple[list[dict], events.Summary]:
    out = tmp_path / f"{path.stem}.joined.csv"
    summary = events.join(locator, path, out, **kwargs)
    with out.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle)), summary


def units(row: dict) -> tuple:
    return row["wilayah"], row["wilayah_part"], row["wilayah_confidence"], row["zone"], row["placement"]


def acled(event_id, day, lat="", lon="", location="", admin2="", admin1="", fatalities="0") -> dict:
    return {"event_id_cnty": event_id, "event_date": day, "year": day[-4:] if " " in day else day[:4],
            "actor1": "Tehrik-i-Taliban Pakistan (TTP)", "country": "Pakistan", "admin1": admin1, "admin2": admin2,
            "location": location, "latitude": lat, "longitude": lon, "fatalities": fatalities,
            "notes": f"made-up event {event_id}"}


def test_acled(locator, tmp_path):
    rows = [acled("P1", "2023-07-01", *PESHAWAR, location="Peshawar", fatalities="3"),
            acled("P2", "2023-05-15", *QUETTA, location="Quetta"),
            acled("P3", "15 July 2023", *QUETTA, location="Quetta"),
            acled("P4", "2023-07-15", location="Miran Shah", admin2="North Waziristan"),
            acled("P5", "2023-07-15", location="Nowhereabad"),
            acled("P6", "", *PESHAWAR),
            acled("P7", "2023-07-01", *KABUL, location="Kabul"),
            acled("P8", "2023-07-01", "abc", "69.17"),
            acled("P9", "2023-07-01", location="Alipur", admin2="Muzaffargarh", admin1="Punjab"),
            acled("P10", "2023-07-01"),
            acled("P11", "2023-07-15", location="Pishin bazaar", admin2="Pishin")]
    out, summary = joined(locator, write(tmp_path / "acled.csv", ACLED_HEADER, rows), tmp_path)
    assert [r["event_id_cnty"] for r in out] == [r["event_id_cnty"] for r in rows]  # none dropped, in order
    assert list(out[0])[-len(events.COLUMNS):] == list(events.COLUMNS)
    assert (out[0]["province"], out[0]["district"], out[0]["tribal_district"]) == \
        ("Khyber Pakhtunkhwa", "Peshawar", "")
    assert units(out[0]) == ("Peshawar", "core", "medium", "north", "coordinates")
    assert out[1]["district"] == "Quetta" and units(out[1]) == ("", "", "", "", "coordinates")
    assert units(out[2]) == ("Zhob", "extension", "low", "", "coordinates")
    assert (out[3]["tribal_district"], out[3]["tehsil"]) == ("North Waziristan", "Miran Shah")
    assert units(out[3]) == ("Bannu", "core", "medium", "south", "place-name")
    assert out[4]["placement"] == "unknown-place" and out[4]["province"] == ""
    assert out[5]["placement"] == "no-date" and out[5]["district"] == "Peshawar" and out[5]["wilayah"] == ""
    assert out[6]["placement"] == "outside-pakistan" and out[7]["placement"] == "bad-coordinates"
    assert (out[8]["district"], out[8]["wilayah"], out[8]["placement"]) == ("Muzaffargarh", "Punjab South", "place-name")
    assert out[9]["placement"] == "no-location"
    assert (out[10]["district"], out[10]["tehsil"], out[10]["wilayah"]) == ("Pishin", "", "Zhob")  # by its district
    assert summary.rows == 11 and summary.layout == "acled"
    assert summary.placements == {"coordinates": 3, "place-name": 3, "unknown-place": 1, "no-date": 1,
                                  "outside-pakistan": 1, "bad-coordinates": 1, "no-location": 1}
    report = summary.report(tmp_path / "acled.csv")
    assert any(line.endswith("acled.csv:6: unknown-place (no coordinates, and a place name the gazetteer does not "
                             "know): Nowhereabad") for line in report)
    assert report[-1] == lookup.GEONAMES_CREDIT  # Alipur and Miran Shah are GeoNames towns
    assert report[-2] == "Event data: acled.csv, from ACLED (Armed Conflict Location & Event Data), acleddata.com"
    assert [line.split(": ")[0].rsplit(":", 1)[1] for line in report[:-3]] == ["6", "7", "8", "9", "11"]
    assert report[-3].endswith("11 rows (acled): 3 coordinates, 3 place-name, 1 no-location, 1 bad-coordinates, "
                               "1 unknown-place, 1 outside-pakistan, 1 no-date")


def test_ucdp_ranges(locator, tmp_path):
    def ged(i, start, end, lat="", lon="", where="") -> dict:
        return {"id": str(i), "year": start[:4], "side_a": "Government of Pakistan", "side_b": "TTP",
                "where_coordinates": where, "adm_1": "", "latitude": lat, "longitude": lon, "country": "Pakistan",
                "date_start": f"{start} 00:00:00.000", "date_end": f"{end} 00:00:00.000", "best": "2"}
    rows = [ged(1, "2023-06-10", "2023-06-20", *PESHAWAR), ged(2, "2023-06-10", "2023-06-20", *QUETTA),
            ged(3, "2023-07-01", "2023-07-03", where="Wana town"), ged(4, "2023-07-03", "2023-07-01", *PESHAWAR)]
    out, summary = joined(locator, write(tmp_path / "ged.csv", UCDP_HEADER, rows), tmp_path)
    assert summary.layout == "ucdp"
    assert units(out[0]) == ("Peshawar", "core", "medium", "north", "coordinates")  # valid throughout
    assert (out[1]["district"], units(out[1])) == ("Quetta", ("", "", "", "", "date-uncertain"))  # from 06-14
    assert out[2]["district"] in ("Lower South Waziristan", "Upper South Waziristan")
    assert units(out[2]) == ("Dera Ismail Khan", "core", "medium", "south", "place-name")
    assert out[3]["placement"] == "bad-date"  # ends before it starts


def test_gtd_unknown_day_and_month(locator, tmp_path):
    def gtd(i, year, month, day, lat, lon, city="") -> dict:
        return {"eventid": str(i), "iyear": year, "imonth": month, "iday": day, "country_txt": "Pakistan",
                "provstate": "Balochistan", "city": city, "latitude": lat, "longitude": lon,
                "gname": "Tehrik-i-Taliban Pakistan (TTP)", "nkill": "1"}
    rows = [gtd(1, "2023", "7", "0", *PISHIN), gtd(2, "2023", "6", "0", *PISHIN), gtd(3, "2023", "0", "0", *PISHIN),
            gtd(4, "2023", "2", "31", *PISHIN), gtd(5, "2023", "7", "20", "", "", city="Zhob"),
            gtd(6, "2022", "6", "0", *PISHIN)]
    out, _ = joined(locator, write(tmp_path / "gtd.csv", GTD_HEADER, rows), tmp_path)
    assert units(out[0]) == ("Zhob", "extension", "low", "", "coordinates")  # all of July 2023
    assert [r["placement"] for r in out[1:4]] == ["date-uncertain", "date-uncertain", "bad-date"]
    assert (out[4]["district"], out[4]["wilayah"], out[4]["wilayah_part"]) == ("Zhob", "Zhob", "core")
    assert units(out[5]) == ("", "", "", "", "coordinates")  # June 2022: before the first period, certainly


def test_plain_file_across_chunks(locator, tmp_path):
    path = tmp_path / "plain.csv"
    lines = ["Date,Lon,Lat,note"]
    lines += [f"2023-06-13T22:00:00-05:00,{QUETTA[1]},{QUETTA[0]},\"row {i}\nspans two lines\"" for i in range(12)]
    lines += [f"2023-06-13,{QUETTA[1]},{QUETTA[0]},last"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out, summary = joined(locator, path, tmp_path, chunk=5)
    assert len(out) == 13 and out[0]["note"] == "row 0\nspans two lines"
    assert units(out[0]) == ("Zhob", "extension", "low", "", "coordinates")  # 22:00 at -05:00 is the 14th in UTC
    assert units(out[-1])[0] == "" and summary.rows == 13
    assert list(out[0])[:4] == ["Date", "Lon", "Lat", "note"]  # the header is written back as given


def test_rows_carry_the_units_labels_and_the_report_counts_by_them(locator, tmp_path):
    """The label is the unit's own (its status included): after December 2025 an event in Gilgit falls in
    the continuation of unknown status, not in a "possible extension"."""
    path = tmp_path / "gilgit.csv"
    path.write_text("date,lon,lat,fatalities\n2026-01-05,74.31,35.92,2\n2023-07-15,67.00141,30.18414,1\n",
                    encoding="utf-8")
    out, _ = joined(locator, path, tmp_path)
    assert [row["wilayah_label"] for row in out] == ["Gilgit-Baltistan (status unknown since 2025-12-25)",
                                                     "Zhob (possible extension)"]
    table = events.aggregate(out, events.detect(list(out[0])))
    assert table["wilayah"] == {("Gilgit-Baltistan (status unknown since 2025-12-25)", "2026-01"): [1, 2],
                                ("Zhob (possible extension)", "2023-07"): [1, 1]}


def test_files_it_refuses(locator, tmp_path):
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("when,x,y\n2023-07-01,71,34\n", encoding="utf-8")
    with pytest.raises(events.EventFileError) as error:
        events.join(locator, unknown, tmp_path / "out.csv")
    assert "unknown header (when,x,y)" in str(error.value) and "ACLED" in str(error.value)
    assert not (tmp_path / "out.csv").exists()
    rejoin = tmp_path / "rejoin.csv"
    rejoin.write_text("date,lon,lat,zone\n", encoding="utf-8")
    with pytest.raises(events.EventFileError, match="already has the column"):
        events.join(locator, rejoin, tmp_path / "out.csv")
    with pytest.raises(events.EventFileError, match="cannot read"):
        events.join(locator, tmp_path / "missing.csv", tmp_path / "out.csv")
    huge = tmp_path / "huge.csv"
    huge.write_text("date,lon,lat,notes\n2023-07-01,71,34,\n2023-07-01,71,34," + "x" * 200_000 + "\n")
    with pytest.raises(events.EventFileError, match="huge.csv:3: not readable as CSV: field larger than"):
        events.join(locator, huge, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_encodings(locator, tmp_path):
    latin = tmp_path / "gtd.csv"
    latin.write_bytes("iyear,imonth,iday,latitude,longitude,city,gname,summary\n"
                      f"2023,7,1,{PESHAWAR[0]},{PESHAWAR[1]},Peshawar,TTP,caf\u00e9 bombing\n".encode("latin-1"))
    with pytest.raises(events.EventFileError, match="is not utf-8-sig text: give its encoding with --encoding"):
        events.join(locator, latin, tmp_path / "out.csv")
    out, _ = joined(locator, latin, tmp_path, encoding="latin-1")
    assert out[0]["summary"] == "caf\u00e9 bombing" and out[0]["wilayah"] == "Peshawar"
    with pytest.raises(events.EventFileError, match="unknown encoding 'klingon'"):
        events.join(locator, latin, tmp_path / "out.csv", encoding="klingon")


def test_cli(built, data_root, tmp_path):
    rows = [acled("P1", "2023-07-01", *PESHAWAR), acled("P2", "2023-07-01", *KABUL)]
    source = write(tmp_path / "acled.csv", ACLED_HEADER, rows)
    command = [sys.executable, "-m", "server", "join", "--build", str(built), "--data", str(data_root)]
    done = subprocess.run([*command, str(source), "--out", str(tmp_path / "out.csv")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "acled.csv:3: outside-pakistan" in done.stderr and "2 rows (acled): 1 coordinates" in done.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("when,x,y\n", encoding="utf-8")
    refused = subprocess.run([*command, str(bad), "--out", str(tmp_path / "o.csv")], capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "accepted layouts are ACLED" in refused.stderr
