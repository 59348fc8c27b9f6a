"""Web map: bytes a browser transfers for /map (page + Leaflet), and the time to build a page cold and warm."""

from __future__ import annotations

import time
from html.parser import HTMLParser

import requests

from bench.common import atlas_server, row, wrk
from geo import datasets
from layers import store, webmap

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
    """Page build in-process: cold (fresh atlas: generalised geometry read), another date, and a repeat."""
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
            row(BENCH, "page build, same view again (no page cache)", round(timings[2] * 1000), "ms")]


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
