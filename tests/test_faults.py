"""Faults: a killed build, a broken build folder, a killed worker, a dead front end — the service keeps its promises."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import requests

from bench.common import descendants, gunicorn_master, memory_kib
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
        arbiter = gunicorn_master(process.pid)
        assert arbiter != process.pid, "serve runs gunicorn as its child, next to nginx"
        workers = wait_for_workers(arbiter, 2)
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
        replacement = wait_for_workers(arbiter, 2)
        assert replacement != workers
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
    finally:
        stop_server(process)


def test_workers_share_the_preloaded_build(built, data_root):
    """Each worker's private memory (USS) stays a small part of what the loaded build takes (the
    master's RSS): the workers share it copy-on-write (preloaded, its objects frozen out of the
    garbage collector), idle and after serving pages and tiles. A worker loading the app itself, or
    one whose collector visits the shared objects, would hold a copy of its own, hundreds of MB."""
    process, url = start_server(built, data_root, workers=2)
    try:
        arbiter = gunicorn_master(process.pid)
        workers = wait_for_workers(arbiter, 2)
        master_rss = memory_kib(arbiter)["rss"]
        assert master_rss > 200 * 1024, master_rss  # the whole build is loaded before the fork
        idle = [memory_kib(pid)["uss"] for pid in workers]
        with requests.Session() as session:
            for path in ["/collections/tehsils/items?limit=200", "/collections/wilayahs/items?datetime=2023-07-01",
                         "/tiles/atlas/5/22/13.mvt", "/tiles/atlas/7/89/52.mvt"] * 4:
                assert session.get(url + path, timeout=30).status_code == 200, path
        served = [memory_kib(pid)["uss"] for pid in workers]
        assert max(idle) < master_rss * 0.05, (idle, master_rss)
        assert max(served) < master_rss * 0.15, (served, master_rss)
    finally:
        stop_server(process)


MANIFEST_DAMAGE = {  # damage -> what the one-line error must name
    "no datasets": (lambda m: m.pop("datasets"), "'datasets' is a required property"),
    "no files_sha256": (lambda m: m.pop("files_sha256"), "'files_sha256' is a required property"),
    "no bbox": (lambda m: m["layers"]["districts"].pop("bbox"), "$.layers.districts: 'bbox' is a required"),
    "no gpkg sha256": (lambda m: m["files_sha256"].pop("atlas.gpkg"), "'atlas.gpkg' is a required property"),
    "bad sha256": (lambda m: m["layers"]["zones"].update(sha256="abc"), "$.layers.zones.sha256"),
}


@pytest.mark.parametrize("damage", sorted(MANIFEST_DAMAGE))
def test_server_refuses_a_manifest_its_schema_refuses(built, data_root, tmp_path, damage):
    target = tmp_path / "damaged"
    shutil.copytree(built, target)
    manifest = json.loads((target / "manifest.json").read_text())
    change, named = MANIFEST_DAMAGE[damage]
    change(manifest)
    (target / "manifest.json").write_text(json.dumps(manifest))
    result = subprocess.run(serve_command(target, data_root, free_port()), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr[-500:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(target / "manifest.json") in lines[0] and named in lines[0], lines


def test_missing_nginx_is_one_line_naming_the_fix(built, data_root):
    result = subprocess.run(serve_command(built, data_root, free_port()), capture_output=True, text=True,
                            timeout=120, env={**os.environ, "TTP_ATLAS_NGINX": "/nonexistent/nginx"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "apt-get install nginx" in lines[0] and "--no-proxy" in lines[0], lines


def process_alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("victim", ["nginx", "gunicorn"])
def test_when_one_half_dies_serve_stops_the_other_and_fails(built, data_root, victim):
    process, url = start_server(built, data_root, workers=1)
    try:
        tree = descendants(process.pid)
        arbiter = gunicorn_master(process.pid)
        nginx = next(pid for pid in tree - {arbiter} if open(f"/proc/{pid}/comm").read().strip() == "nginx"
                     and int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]) == process.pid)
        os.kill(nginx if victim == "nginx" else arbiter, signal.SIGKILL)
        assert process.wait(timeout=40) != 0
        assert f"{victim} exited unexpectedly" in process.stderr.read().decode()
        deadline = time.monotonic() + 10
        while any(map(process_alive, tree)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in tree if process_alive(pid)]
    finally:
        if process.poll() is None:
            stop_server(process)


def test_sigterm_stops_every_process_of_the_service(built, data_root):
    process, url = start_server(built, data_root, workers=2)
    tree = descendants(process.pid)
    assert len(tree) >= 4  # nginx master + worker, gunicorn arbiter + 2 workers
    stop_server(process)
    assert process.returncode == 0
    deadline = time.monotonic() + 10
    while any(map(process_alive, tree)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in tree if process_alive(pid)]
