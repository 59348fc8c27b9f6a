"""Static map export: A4 landscape at 300 dpi as PNG, SVG and PDF, time and file size (goal < 5 s each),
and the PDF with a month of events drawn (20,000 generated events).

Timed in-process on a loaded build (the CLI and the HTTP endpoint add only the build load or the
request); each format is drawn from scratch, as a cold request would be.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import row
from bench.maps import event_file
from geo import datasets
from layers import export, overlay, store

BENCH = "export"
DATE = "2023-07-01"


def run() -> list[dict]:
    root = store.build_dir()
    atlas = store.ensure_build(root, datasets.data_dir())
    options = export.parse_options(atlas, datetime=DATE, size="A4", orientation="landscape", dpi="300")
    export.export(atlas, export.parse_options(atlas, dpi="50", size="A5"), "png")  # font cache, imports
    rows = []
    for fmt in export.FORMATS:
        start = time.perf_counter()
        payload = export.export(atlas, options, fmt)
        seconds = time.perf_counter() - start
        rows += [row(BENCH, f"A4 landscape 300 dpi {fmt.upper()}: time", round(seconds, 2), "s", "< 5"),
                 row(BENCH, f"A4 landscape 300 dpi {fmt.upper()}: file size", round(len(payload) / 1024), "KiB")]
    with tempfile.TemporaryDirectory() as folder:
        events = overlay.load(atlas, event_file(Path(folder) / "events.csv"))
    options = export.parse_options(atlas, datetime="2023-07-31", month="2023-07", size="A4", dpi="300")
    start = time.perf_counter()
    export.export(atlas, options, "pdf", events)
    rows.append(row(BENCH, "A4 landscape 300 dpi PDF with a month of events: time",
                    round(time.perf_counter() - start, 2), "s", "< 5"))
    return rows
