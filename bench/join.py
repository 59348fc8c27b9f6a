"""``ttp-atlas join`` on a generated million-row ACLED-style file: rows per second and peak memory; and the
events overlay (``serve --events``) of a 100,000-row file: its load time and the memory it adds.

The file is synthetic, written to /tmp: points scattered within about 20 km of Pakistan's towns (nine in
ten rows) or anywhere in its bounding box, random days 2022-2025, and one row in fifty with a place name
instead of coordinates. No event data is read or kept.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
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
OVERLAY_ROWS = 100_000
# Run in a fresh process: the overlay as the server loads it at start (the join, then its collections),
# timed, with the resident memory it adds to the loaded atlas.
OVERLAY_CHILD = """
import json, sys, time
from pathlib import Path
from layers import overlay, store

def rss_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024

atlas = store.open_build(Path(sys.argv[1]))
before = rss_mib()
started = time.perf_counter()
loaded = overlay.load(atlas, sys.argv[2])
joined = time.perf_counter()
served = overlay.overlay_features(atlas, loaded)
done = time.perf_counter()
print(json.dumps({"events": len(loaded.events), "counts": {k: len(v) for k, v in loaded.counts.items()},
                  "load_s": joined - started, "serve_s": done - joined, "added_mib": rss_mib() - before}))
"""
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


def overlay_rows(root: Path, work: Path) -> list[dict]:
    from bench.common import row

    events = work / "overlay.csv"
    write_events(events, OVERLAY_ROWS)
    done = subprocess.run([sys.executable, "-c", OVERLAY_CHILD, str(root), str(events)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    found = json.loads(done.stdout)
    counts = ", ".join(f"{n} {layer_id}" for layer_id, n in found["counts"].items())
    return [row("join", f"overlay: events of a {OVERLAY_ROWS:,}-row file (count features: {counts})",
                found["events"], "features"),
            row("join", "overlay: load time (the join into memory)", round(found["load_s"], 1), "s"),
            row("join", "overlay: collections ready to serve", round(found["serve_s"], 1), "s"),
            row("join", "overlay: memory added to the loaded atlas (RSS)", round(found["added_mib"]), "MiB",
                "shared by the workers (loaded before they fork)")]


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
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # before the overlay's child
        overlay = overlay_rows(root, Path(work))
    return [row("join", "rows joined (ACLED layout, 1 in 50 by place name)", written, "rows", f"= {ROWS}"),
            row("join", "throughput, incl. loading the build", round(written / seconds), "rows/s"),
            row("join", "peak memory (RSS) of ttp-atlas join", round(peak_mib), "MiB", "bounded: < 1 GiB"),
            *overlay]


if __name__ == "__main__":
    for result in run():
        print(f"{result['metric']}: {result['value']} {result['unit']}")
