"""``ttp-atlas join`` on a generated million-row ACLED-style file: rows per second and peak memory.

The file is synthetic, written to /tmp: points scattered within about 20 km of Pakistan's towns (nine in
ten rows) or anywhere in its bounding box, random days 2022-2025, and one row in fifty with a place name
instead of coordinates. No event data is read or kept.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from geo import datasets
from layers import store
from layers.lookup import geonames_cities

ROWS = 1_000_000
PLACES = ("Peshawar", "Bannu", "Miran Shah", "Wana", "Quetta", "Pishin", "Zhob", "Lahore", "Nowhereabad")
HEADER = ("event_id_cnty", "event_date", "event_type", "actor1", "admin1", "admin2", "location", "latitude",
          "longitude", "fatalities")


def write_events(path: Path, rows: int = ROWS, seed: int = 14) -> None:
    rng = random.Random(seed)
    towns = [(c["longitude"], c["latitude"]) for c in geonames_cities("PK", 15000)]
    first = dt.date(2022, 6, 1).toordinal()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(rows):
            day = dt.date.fromordinal(first + rng.randrange(1300)).isoformat()
            if i % 50 == 0:
                lat, lon, location = "", "", rng.choice(PLACES)
            elif i % 10 == 1:
                lat, lon, location = f"{rng.uniform(24, 37):.5f}", f"{rng.uniform(61, 77.8):.5f}", ""
            else:
                x, y = rng.choice(towns)
                lat, lon, location = f"{y + rng.gauss(0, 0.1):.5f}", f"{x + rng.gauss(0, 0.1):.5f}", ""
            writer.writerow((f"PAK{i}", day, "Battles", "TTP", "", "", location, lat, lon, rng.randrange(5)))


def run() -> list[dict]:
    from bench.common import row

    root = store.build_dir()
    store.ensure_build(root, datasets.data_dir())
    with tempfile.TemporaryDirectory(prefix="ttp-atlas-join-", dir="/tmp") as work:
        events, out = Path(work) / "events.csv", Path(work) / "joined.csv"
        write_events(events)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "server", "join", str(events), "--out", str(out),
                               "--build", str(root)], capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        with out.open(newline="", encoding="utf-8") as handle:
            written = sum(1 for _ in handle) - 1
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return [row("join", "rows joined (ACLED layout, 1 in 50 by place name)", written, "rows", f"= {ROWS}"),
            row("join", "throughput, incl. loading the build", round(written / seconds), "rows/s"),
            row("join", "peak memory (RSS) of ttp-atlas join", round(peak_mib), "MiB", "bounded: < 1 GiB")]


if __name__ == "__main__":
    for result in run():
        print(f"{result['metric']}: {result['value']} {result['unit']}")
