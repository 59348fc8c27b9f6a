"""``ttp-atlas events-report``: monthly events and fatalities per zone, wilayah and district, and the chart."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from layers import events, lookup, style
from tests.test_join import ACLED_HEADER, PESHAWAR, QUETTA, acled, write

BANNU = ("32.98527", "70.60403")


@pytest.fixture(scope="module")
def locator(atlas) -> lookup.Locator:
    return lookup.Locator(atlas)


@pytest.fixture(scope="module")
def report(locator, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    rows = [acled("A1", "2023-07-01", *PESHAWAR, fatalities="3"), acled("A2", "2023-07-20", *PESHAWAR, fatalities="2"),
            acled("A3", "2023-07-15", *QUETTA, fatalities="1"), acled("A4", "2023-05-15", *QUETTA, fatalities="4"),
            acled("A5", "2023-03-02", *BANNU, fatalities="7"), acled("A6", "2023-07-04", location="Wana"),
            acled("A7", "2023-07-04", location="Nowhereabad", fatalities="9"),
            acled("A8", "2023-07-01", "24.86", "67.01", fatalities="x")]  # Karachi: in no claimed unit
    source = write(folder / "acled.csv", ACLED_HEADER, rows)
    summary = events.report(locator, source, folder / "out")
    return folder / "out", summary


def monthly(folder) -> dict[tuple[str, str, str], tuple[int, int]]:
    with (folder / "monthly.csv").open(newline="", encoding="utf-8") as handle:
        return {(r["level"], r["unit"], r["month"]): (int(r["events"]), int(r["fatalities"]))
                for r in csv.DictReader(handle)}


def test_monthly_table(report):
    folder, summary = report
    table = monthly(folder)
    assert table[("wilayah", "Peshawar", "2023-07")] == (2, 5)
    assert table[("wilayah", "Zhob (possible extension)", "2023-07")] == (1, 1)
    assert table[("wilayah", "Bannu", "2023-03")] == (1, 7)
    assert table[("wilayah", "Dera Ismail Khan", "2023-07")] == (1, 0)  # Wana, by its GeoNames name
    assert (table[("district", "Quetta", "2023-05")], table[("district", "Quetta", "2023-07")]) == ((1, 4), (1, 1))
    assert table[("zone", "North zone", "2023-07")] == (2, 5)
    assert table[("zone", "South zone", "2023-07")] == (1, 0)
    assert table[("zone", style.ZONE_LABELS[None], "2023-07")] == (1, 1)
    assert table[("zone", events.NO_UNIT, "2023-05")] == (1, 4)
    assert table[("zone", events.NO_UNIT, "2023-07")] == (1, 0)  # Karachi; "x" fatalities count as none
    placed = Counter()
    for (level, _, month), (count, _) in table.items():
        if level == "zone":
            placed[month] += count
    assert placed == {"2023-03": 1, "2023-05": 1, "2023-07": 5}  # each placed row once; the unknown place in none
    assert summary.rows == 8 and summary.placements["unknown-place"] == 1 and lookup.GEONAMES_CREDIT in summary.credits
    assert sum(1 for _ in (folder / "joined.csv").open(encoding="utf-8")) == 9


def test_chart(report):
    folder, _ = report
    image = np.asarray(Image.open(io.BytesIO((folder / "chart.png").read_bytes())).convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(image, axis=0)}
    for zone in ("north", "south", None):
        assert style.hex_to_rgb(style.ZONE_COLOURS[zone]) in colours, zone
    assert style.hex_to_rgb(events.NO_UNIT_COLOUR) in colours
    svg = (folder / "chart.svg").read_text(encoding="utf-8")
    assert "Events per month: acled.csv" in svg and "Claimed units, not areas of control" in svg
    assert "GeoNames" in svg and "<text" in svg  # text stays text


def test_cli(built, data_root, tmp_path):
    source = write(tmp_path / "acled.csv", ACLED_HEADER, [acled("A1", "2023-07-01", *PESHAWAR)])
    done = subprocess.run([sys.executable, "-m", "server", "events-report", str(source), "--out", str(tmp_path / "r"),
                           "--build", str(built), "--data", str(data_root)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["chart.png", "chart.svg", "joined.csv", "monthly.csv"]
