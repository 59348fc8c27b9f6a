"""Faults: a killed build, a broken build folder, a killed worker — the service keeps its promises."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import requests

from layers import store
from tests.conftest import free_port, start_server, stop_server, worker_pids


def serve_command(build_dir, data_root, port):
    return [sys.executable, "-m", "server", "serve", "--build", str(build_dir), "--data", str(data_root),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]


def test_killed_build_leaves_previous_build_serving(built, data_root, tmp_path):
    target = tmp_path / "live"
    shutil.copytree(built, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    process, url = start_server(target, data_root, workers=1)
    try:
        build_id = requests.get(f"{url}/readyz", timeout=5).json()["build_id"]
        builder = subprocess.Popen([sys.executable, "-m", "server", "build", "--data", str(data_root),
                                    "--out", str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(4)  # well into the geometry work, before the swap
        assert builder.poll() is None, "the build finished before it could be interrupted"
        builder.kill()
        builder.wait()
        assert {p.name: p.read_bytes() for p in target.iterdir()} == before
        assert requests.get(f"{url}/readyz", timeout=5).json()["build_id"] == build_id
        assert store.open_build(target).build_id == build_id
    finally:
        stop_server(process)


@pytest.mark.parametrize("damage", ["tamper", "partial"])
def test_server_refuses_to_start_on_a_broken_build(built, data_root, tmp_path, damage):
    target = tmp_path / "broken"
    shutil.copytree(built, target)
    if damage == "tamper":
        (target / "wilayahs.geojson").write_text('{"type":"FeatureCollection","features":[]}')
    else:
        (target / "manifest.json").unlink()
    result = subprocess.run(serve_command(target, data_root, free_port()), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert str(target) in result.stderr
    assert ("wilayahs.geojson" in result.stderr) if damage == "tamper" else ("no manifest.json" in result.stderr)
    assert "Traceback" not in result.stderr


def wait_for_workers(arbiter: int, count: int, seconds: float = 30) -> set[int]:
    deadline = time.monotonic() + seconds
    while len(found := worker_pids(arbiter)) != count and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(found) == count, found
    return found


def test_killed_worker_is_replaced_without_failing_other_requests(built, data_root):
    process, url = start_server(built, data_root, workers=2)
    try:
        workers = wait_for_workers(process.pid, 2)
        concurrency, per_client = 4, 60
        session_errors = []

        def client(_):
            failures = 0
            with requests.Session() as session:
                for _ in range(per_client):
                    try:
                        response = session.get(f"{url}/collections/provinces/items", timeout=10)
                        failures += response.status_code != 200
                    except requests.RequestException:
                        failures += 1
            return failures

        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            futures = [pool.submit(client, i) for i in range(concurrency)]
            time.sleep(0.5)
            os.kill(sorted(workers)[0], signal.SIGKILL)
            session_errors = [f.result() for f in futures]
        assert sum(session_errors) <= concurrency  # at most the requests in flight on the killed worker
        replacement = wait_for_workers(process.pid, 2)
        assert replacement != workers
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
    finally:
        stop_server(process)
