"""Mixed load: features, tiles, maps and exports at 64 connections for 30 s against the served stack."""

from __future__ import annotations

import tempfile
from pathlib import Path

import requests

from bench.common import atlas_server, row, wrk
from tests.conftest import worker_pids

# Paths in the mix, repeated by weight: mostly cheap reads, with the occasional heavy export.
MIX = (
    ["/collections/wilayahs/items?datetime=2023-07-01"] * 4
    + ["/collections/districts/items?limit=50&bbox=70,33,72,35"] * 4
    + ["/collections/provinces/items"] * 2
    + [f"/tiles/atlas/{z}/{x}/{y}.mvt" for z, x, y in ((5, 22, 13), (6, 44, 26), (7, 89, 52), (4, 11, 6))]
    + [f"/tiles/atlas/{z}/{x}/{y}.png" for z, x, y in ((5, 22, 13), (6, 44, 26))]
    + ["/map?datetime=2023-07-01", "/collections", "/"]
    + ["/export.png?dpi=50&size=A5&layers=wilayahs,provinces"]
)
SECONDS, CONNECTIONS = 30, 64


def lua_script(paths: list[str]) -> str:
    quoted = ",".join(f'"{p}"' for p in paths)
    return f"""
paths = {{{quoted}}}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1])
end
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    return 0


def worker_rss(arbiter: int) -> list[int]:
    return sorted(rss_kib(pid) for pid in worker_pids(arbiter))


def run() -> list[dict]:
    with atlas_server(workers=0) as server:
        url = server.url
        statuses = {path: requests.get(url + path, timeout=60).status_code for path in sorted(set(MIX))}
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(lua_script(MIX))
        wrk(url + "/", seconds=10, connections=CONNECTIONS, script=script.name)  # warm every worker's caches
        before = worker_rss(server.gunicorn)
        result = wrk(url + "/", seconds=SECONDS, connections=CONNECTIONS, script=script.name)
        after = worker_rss(server.gunicorn)
    Path(script.name).unlink()
    broken = [p for p, s in statuses.items() if s >= 400]
    name = f"load (mixed, {CONNECTIONS} conns, {SECONDS} s)"
    return [
        row(name, "requests/s", result["rps"], "req/s"),
        row(name, "p50 latency", result["p50_ms"], "ms"),
        row(name, "p99 latency", result["p99_ms"], "ms"),
        row(name, "requests", result["requests"], ""),
        row(name, "socket errors + non-2xx/3xx", result["socket_errors"] + result["non_2xx"], "", "0"),
        row(name, "paths in the mix answering >= 400 before the run", len(broken), ", ".join(broken), "0"),
        row(name, "worker RSS after a 10 s warm-up -> after the run",
            f"{sum(before) // 1024} -> {sum(after) // 1024}", f"MiB over {len(after)} workers", "flat"),
    ]
