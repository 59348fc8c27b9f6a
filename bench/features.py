"""Features API throughput: ttp-atlas vs nginx (static file, the ceiling) vs pygeoapi (GeoJSON provider).

Same districts layer, same loopback, same wrk settings; gunicorn gets the same workers for both Python
servers. Goals: whole layer at >= half nginx's requests/s and >= 50x pygeoapi's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.common import atlas_server, nginx, row, wrk
from layers import store
from tests.conftest import free_port

WHOLE = "/collections/districts/items?limit=1000"
BBOX = "/collections/districts/items?bbox=71.4,33.9,71.7,34.1"  # Peshawar: a few districts
SECONDS, SLOW_SECONDS, CONNECTIONS = 4, 15, 8
WORKERS = 2 * (os.cpu_count() or 1) + 1  # the production default, for both Python servers


@contextlib.contextmanager
def pygeoapi(geojson: Path, workers: int):
    """pygeoapi (the installed release) serving ``geojson`` as collection ``districts`` under gunicorn."""
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        config, api = Path(work) / "config.yml", Path(work) / "openapi.yml"
        config.write_text(textwrap.dedent(f"""
            server:
              bind: {{host: 127.0.0.1, port: {port}}}
              url: http://127.0.0.1:{port}
              mimetype: application/json; charset=UTF-8
              encoding: utf-8
              language: en-US
              limits: {{default_items: 10, max_items: 10000}}
              map: {{url: "https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png", attribution: OSM}}
            logging: {{level: ERROR}}
            metadata:
              identification: {{title: bench, description: bench, keywords: [bench], keywords_type: theme,
                                terms_of_service: none, url: "http://example.org"}}
              license: {{name: CC-BY 4.0, url: "https://creativecommons.org/licenses/by/4.0/"}}
              provider: {{name: bench, url: "http://example.org"}}
              contact: {{name: bench, position: bench, address: x, city: x, stateorprovince: x, postalcode: x,
                         country: x, phone: x, fax: x, email: x@example.org, url: "http://example.org",
                         hours: x, instructions: x, role: pointOfContact}}
            resources:
              districts:
                type: collection
                title: Districts
                description: Districts
                keywords: [districts]
                extents: {{spatial: {{bbox: [60, 23, 78, 38], crs: "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}}}}
                providers:
                  - {{type: feature, name: GeoJSON, data: "{geojson}", id_field: id}}
        """))
        env = {**os.environ, "PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(api)}
        generate = subprocess.run([shutil.which("pygeoapi") or "pygeoapi", "openapi", "generate", str(config),
                                   "--output-file", str(api)], env=env, capture_output=True, text=True, timeout=120)
        if generate.returncode:
            raise RuntimeError(f"pygeoapi openapi generate failed: {generate.stderr.strip()[-300:]}")
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
                                    "--timeout", "120", "pygeoapi.flask_app:APP"], cwd=work, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                with contextlib.suppress(requests.ConnectionError):
                    if requests.get(f"{url}/collections/districts", timeout=60).ok:
                        break
                if process.poll() is not None:
                    raise RuntimeError(f"pygeoapi exited with status {process.returncode}")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def clients(url: str, seconds: float, connections: int) -> dict:
    """Requests/s and latency from ``connections`` looping clients: for servers too slow for wrk's 2 s timeout."""
    def loop(deadline: float) -> list[tuple[float, bool]]:
        done = []
        with requests.Session() as session:
            while time.monotonic() < deadline:
                began = time.monotonic()
                ok = session.get(url, timeout=300).ok
                done.append((time.monotonic() - began, ok))
        return done

    began = time.monotonic()
    with ThreadPoolExecutor(connections) as pool:
        results = [r for part in pool.map(loop, [began + seconds] * connections) for r in part]
    latencies = sorted(t for t, _ in results)
    return {"rps": round(len(results) / (time.monotonic() - began), 2), "socket_errors": 0,
            "non_2xx": sum(not ok for _, ok in results),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1)}


def measured(benchmark: str, url: str, check, slow: bool = False) -> list[dict]:
    """Load figures for one URL (wrk, or looping clients when slow), after a request checking the answer."""
    check(requests.get(url, timeout=300))
    result = (clients(url, SLOW_SECONDS, CONNECTIONS) if slow
              else wrk(url, seconds=SECONDS, connections=CONNECTIONS))
    failed = result["socket_errors"] + result["non_2xx"]
    return [row(benchmark, "requests/s", result["rps"], "req/s"),
            row(benchmark, "p50", result["p50_ms"], "ms"), row(benchmark, "p99", result["p99_ms"], "ms"),
            *([row(benchmark, "errors", failed, "responses")] if failed else [])]


def counts(expected: int):
    def check(response):
        assert response.status_code == 200, response.status_code
        body = response.json()
        assert len(body["features"]) == expected, (len(body["features"]), expected)
    return check


def ratio(rows: list[dict], a: str, b: str) -> float | None:
    value = {r["benchmark"]: r["value"] for r in rows if r["metric"] == "requests/s"}
    return round(value[a] / value[b], 1) if value.get(a) and value.get(b) else None


def run() -> list[dict]:
    layer = store.build_dir() / "districts.geojson"
    rows: list[dict] = []
    with atlas_server(workers=WORKERS) as server:
        atlas = requests.get(f"{server.url}{BBOX}", timeout=60).json()["numberMatched"]
        rows += measured("features: districts whole layer (ttp-atlas)", server.url + WHOLE, counts(167))
        rows += measured("features: districts small bbox (ttp-atlas)", server.url + BBOX, counts(atlas))
    with tempfile.TemporaryDirectory() as www:
        shutil.copy(layer, Path(www) / "districts.geojson")
        Path(www).chmod(0o755)  # nginx workers run as an unprivileged user
        (Path(www) / "districts.geojson").chmod(0o644)
        with nginx(Path(www), {"geojson": "application/geo+json"}) as static:
            rows += measured("features: districts whole layer (nginx static file)", f"{static}/districts.geojson",
                             counts(167))
    try:
        with pygeoapi(layer.resolve(), WORKERS) as other:
            rows += measured("features: districts whole layer (pygeoapi)", f"{other}{WHOLE}&f=json", counts(167),
                              slow=True)
            rows += measured("features: districts small bbox (pygeoapi)", f"{other}{BBOX}&f=json", counts(atlas),
                              slow=True)
    except Exception as error:  # not installed or broken: say so in the table
        rows.append(row("features: pygeoapi", "FAILED", repr(error)[:200]))
    whole = "features: districts whole layer (ttp-atlas)"
    rows.append(row("features: whole layer vs nginx", "ratio", ratio(rows, whole, "features: districts whole layer "
                                                                                  "(nginx static file)"), "x", ">= 0.5"))
    rows.append(row("features: whole layer vs pygeoapi", "ratio",
                    ratio(rows, whole, "features: districts whole layer (pygeoapi)"), "x", ">= 50"))
    rows.append(row("features: small bbox vs pygeoapi", "ratio",
                    ratio(rows, "features: districts small bbox (ttp-atlas)", "features: districts small bbox (pygeoapi)"),
                    "x", ">= 50"))
    return rows
