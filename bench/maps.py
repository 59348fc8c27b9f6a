"""Web map: bytes a browser transfers for /map (page + Leaflet), and the time to build a page cold and warm;
the events map's page build for a generated event file."""

from __future__ import annotations

import csv
import random
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import requests

from bench.common import atlas_server, row, wrk
from geo import datasets
from layers import overlay, store, webmap

BENCH = "maps"
DAY = "2023-07-01"


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        self.urls += [v for k, v in attrs if k in ("src", "href") and v and v.startswith("http://127.0.0.1")]


def _wire_bytes(url: str, gzip: bool) -> int:
    """Bytes as sent (compressed when gzip is asked for)."""
    response = requests.get(url, headers={"Accept-Encoding": "gzip" if gzip else "identity"}, stream=True, timeout=60)
    response.raise_for_status()
    return len(response.raw.read())


def transfer_rows(base: str) -> list[dict]:
    page = f"{base}/map?datetime={DAY}"
    parser = _Assets()
    parser.feed(requests.get(page, timeout=60).text)
    rows = []
    for gzip, label in ((True, "gzip"), (False, "raw")):
        html = _wire_bytes(page, gzip)
        assets = sum(_wire_bytes(url, gzip) for url in parser.urls)
        rows += [row(BENCH, f"/map HTML bytes ({label})", html, "B"),
                 row(BENCH, f"/map HTML + assets bytes ({label})", html + assets, "B",
                     "< 3,000,000" if gzip else "")]
    return rows


def build_rows() -> list[dict]:
    """Page build in-process: cold (fresh atlas: generalised geometry read), another date, a repeat, and
    an events map."""
    root = store.build_dir()
    store.ensure_build(root, datasets.data_dir())
    atlas = store.open_build(root)
    timings = []
    for view in (webmap.View(DAY, tiles_base="/tiles"), webmap.View("2023-03-01", tiles_base="/tiles"),
                 webmap.View(DAY, tiles_base="/tiles")):
        start = time.perf_counter()
        webmap.page_html(atlas, view, "/static/vendor")
        timings.append(time.perf_counter() - start)
    return [row(BENCH, "page build, cold (fresh atlas)", round(timings[0] * 1000), "ms"),
            row(BENCH, "page build, other date (geometry loaded)", round(timings[1] * 1000), "ms"),
            row(BENCH, "page build, same view again (no page cache)", round(timings[2] * 1000), "ms"),
            *events_rows(atlas)]


def event_file(path: Path, rows: int = 20_000) -> Path:
    """A plain ``date,lon,lat`` event file: ``rows`` events over 2023-2024, spread over north-west Pakistan."""
    generator = random.Random(14)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "lon", "lat"])
        for _ in range(rows):
            writer.writerow([f"{generator.choice((2023, 2024))}-{generator.randint(1, 12):02d}-"
                             f"{generator.randint(1, 28):02d}", round(generator.uniform(66.0, 74.0), 4),
                             round(generator.uniform(29.0, 35.5), 4)])
    return path


def events_rows(atlas) -> list[dict]:
    """The events map of one month (of 20,000 events over 24 months), built in-process."""
    with tempfile.TemporaryDirectory() as folder:
        events = overlay.load(atlas, event_file(Path(folder) / "events.csv"))
    view = webmap.View(overlay.month_days("2023-07")[1], tiles_base="/tiles", month="2023-07")
    start = time.perf_counter()
    webmap.page_html(atlas, view, "/static/vendor", events)
    return [row(BENCH, "/map/events page build (20,000 events, 24 months)", round((time.perf_counter() - start) * 1000),
                "ms", "< 3000")]


def served_rows(base: str) -> list[dict]:
    """Through gunicorn: the first request for a view (builds it) and the cached page after."""
    page = f"{base}/map?datetime=2024-01-01"
    start = time.perf_counter()
    requests.get(page, timeout=60).raise_for_status()
    first = time.perf_counter() - start
    for _ in range(4):  # every worker gets the page into its cache
        requests.get(page, timeout=60)
    load = wrk(page, seconds=5, connections=8, headers={"Accept-Encoding": "gzip"})
    return [row(BENCH, "/map first request (page built)", round(first * 1000), "ms"),
            row(BENCH, "/map cached, gzip: p50 latency", load["p50_ms"], "ms"),
            row(BENCH, "/map cached, gzip: throughput", load["rps"], "req/s"),
            row(BENCH, "/map cached, gzip: errors", load["socket_errors"] + load["non_2xx"], "", "0")]


def run() -> list[dict]:
    rows = build_rows()
    with atlas_server() as server:
        rows += transfer_rows(server.url) + served_rows(server.url)
    return rows


if __name__ == "__main__":
    for entry in run():
        print(entry)
