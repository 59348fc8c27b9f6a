"""Soak: does the served stack's memory stay flat under heavy, cache-defeating traffic?

Mixed traffic of large distinct exports (A3 at 300 dpi, each title new) and distinct gzipped pages
(tehsil pages at new offsets), through nginx into gunicorn. Memory is PSS summed over every process
of the service (serve, nginx, gunicorn and its workers): shared pages counted once. A warm-up round
fills every cache to its budget; the soak round (40 exports, 300 pages) must end within 10% of it.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import time

import requests

from bench.common import atlas_server, descendants, gunicorn_master, pss_kib, row
from tests.conftest import worker_pids

BENCH = "soak (40 A3 300 dpi exports + 300 gzipped pages)"
WARM_EXPORTS, WARM_PAGES = 20, 150
SOAK_EXPORTS, SOAK_PAGES = 40, 300
CLIENTS = 6
_serial = itertools.count()


def export_path() -> str:
    return f"/export.png?size=A3&dpi=300&layers=wilayahs,districts,provinces&title=Soak+{next(_serial)}"


def page_path() -> str:
    return f"/collections/tehsils/items?f=json&limit=200&offset={next(_serial)}"


def traffic(url: str, exports: int, pages: int) -> dict:
    """Exports and pages interleaved over CLIENTS connections; status counts."""
    paths = [export_path() for _ in range(exports)] + [page_path() for _ in range(pages)]
    paths = [p for pair in itertools.zip_longest(paths[:exports], paths[exports:]) for p in pair if p]

    def get(path: str) -> int:
        response = requests.get(url + path, headers={"Accept-Encoding": "gzip"}, timeout=300)
        return response.status_code

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        statuses = list(pool.map(get, paths))
    return {status: statuses.count(status) for status in set(statuses)}


def service_pss(serve_pid: int) -> int:
    time.sleep(2)  # let the last responses leave and the workers go idle
    return pss_kib({serve_pid} | descendants(serve_pid))


def run() -> list[dict]:
    with atlas_server(workers=2) as server:
        idle = service_pss(server.pid)
        began = time.monotonic()
        warm = traffic(server.url, WARM_EXPORTS, WARM_PAGES)
        warmed = service_pss(server.pid)
        soaked_status = traffic(server.url, SOAK_EXPORTS, SOAK_PAGES)
        seconds = time.monotonic() - began
        soaked = service_pss(server.pid)
        arbiter = gunicorn_master(server.pid)
        workers = sorted(pss_kib([pid]) for pid in worker_pids(arbiter))
        nginx = pss_kib(descendants(server.pid) - {arbiter} - worker_pids(arbiter))
        supervisor = pss_kib([server.pid]) + pss_kib([arbiter])
    growth = (soaked - warmed) / warmed * 100
    failed = sum(n for status, n in {**warm, **soaked_status}.items() if status != 200)
    mib = 1024
    print(f"soak: PSS idle {idle / mib:.0f} MiB, after warm-up {warmed / mib:.0f} MiB, after the soak "
          f"{soaked / mib:.0f} MiB ({growth:+.1f}%), workers {[w // mib for w in workers]} MiB, nginx "
          f"{nginx / mib:.1f} MiB, statuses {warm} {soaked_status}, {seconds:.0f} s")
    return [
        row(BENCH, "service PSS, idle after start", round(idle / mib), "MiB"),
        row(BENCH, "service PSS after warm-up (20 exports, 150 pages)", round(warmed / mib), "MiB"),
        row(BENCH, "service PSS after the soak", round(soaked / mib), "MiB"),
        row(BENCH, "growth over the soak", round(growth, 1), "%", "< 10"),
        row(BENCH, "PSS per gunicorn worker after the soak", ", ".join(str(w // mib) for w in workers), "MiB"),
        row(BENCH, "PSS of serve + gunicorn arbiter", round(supervisor / mib), "MiB"),
        row(BENCH, "PSS of nginx (master + workers)", round(nginx / mib, 1), "MiB"),
        row(BENCH, "non-200 responses", failed, "", "0"),
        row(BENCH, "wall time", round(seconds), "s"),
    ]
