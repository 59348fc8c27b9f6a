"""Slow clients and the front end's cost: nginx in front of gunicorn against gunicorn alone (--no-proxy).

Under 100 slowloris connections, 30 slow readers of the districts layer and 1,000 idle connections,
a normal client's latency (p50/p99 over up to 100 requests; a request that times out counts as its
timeout); and without the storm, warm MVT tile throughput with wrk (what nginx costs per request).
"""

from __future__ import annotations

import resource
import statistics
import time

import requests

from bench.common import atlas_server, row, wrk
from tests.test_hardening_slow import IDLE, SLOW_READERS, SLOWLORIS, Storm

TIMEOUT_S = 3.0
TILE = "/tiles/atlas/6/44/26.mvt"


def normal_client(url: str, requests_count: int) -> list[float]:
    latencies = []
    with requests.Session() as client:
        for index in range(requests_count):
            path = "/healthz" if index % 2 else "/collections/districts/items?limit=10"
            began = time.perf_counter()
            try:
                client.get(url + path, timeout=TIMEOUT_S)
                latencies.append((time.perf_counter() - began) * 1000)
            except requests.RequestException:
                latencies.append(TIMEOUT_S * 1000)
            if sum(v >= TIMEOUT_S * 1000 for v in latencies) >= 5:  # blocked: no need to wait out the rest
                break
    return latencies


def measure(name: str, env: dict) -> list[dict]:
    with atlas_server(workers=2, env=env) as server:
        requests.get(server.url + TILE, timeout=60)
        tiles = wrk(server.url + TILE, seconds=5, connections=16)
        requests.get(server.url + "/collections/districts/items?limit=10", timeout=60)
        storm = Storm(int(server.url.rsplit(":", 1)[1]))
        try:
            time.sleep(1)
            latencies = normal_client(server.url, 100)
        finally:
            storm.close()
    ordered = sorted(latencies)
    p99 = ordered[max(0, int(0.99 * len(ordered)) - 1)]
    return [
        row(name, "warm MVT tile throughput (wrk, 16 conns, 5 s)", tiles["rps"], "req/s"),
        row(name, "warm MVT tile p99 latency", tiles["p99_ms"], "ms"),
        row(name, f"normal client p50 under {SLOWLORIS} slowloris + {SLOW_READERS} slow readers + {IDLE} idle",
            round(statistics.median(latencies), 1), "ms"),
        row(name, "normal client p99 under the same storm", round(p99, 1), "ms", "< 250"),
        row(name, "normal client requests sent (stops after 5 time-outs)", len(latencies), ""),
    ]


def run() -> list[dict]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    return (measure("slow clients: nginx in front (serve)", {})
            + measure("slow clients: gunicorn alone (serve --no-proxy)", {"TTP_ATLAS_NO_PROXY": "1"}))
