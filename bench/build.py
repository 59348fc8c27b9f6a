"""The layer build: wall time of ``ttp-atlas build`` on the staged data, and what it writes."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import row
from geo import datasets
from layers import build, store

BENCH = "build"


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "build"
        began = time.perf_counter()
        info = build.build(datasets.data_dir(), out)
        seconds = time.perf_counter() - began
        began = time.perf_counter()
        store.open_build(out).warm()
        opened = time.perf_counter() - began
        size = sum(p.stat().st_size for p in out.iterdir())
    return [row(BENCH, "ttp-atlas build (all layers, GeoPackage, zoom levels)", round(seconds, 1), "s", "< 15 s"),
            row(BENCH, "open the build and prepare every zoom level (server start)", round(opened, 1), "s"),
            row(BENCH, "build folder size", round(size / 2**20, 1), "MiB"),
            row(BENCH, "features written", sum(e["features"] for e in info["layers"].values()), "")]
