"""Shared fixtures: one real build per test session, and the real server (gunicorn) on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from geo import datasets
from layers import build, store

ARTIFACTS = Path(os.environ.get("TTP_ATLAS_TEST_ARTIFACTS", "test-artifacts"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = datasets.data_dir()
    datasets.verify(root)  # fail loudly: the suite needs the boundary data (make data / TTP_ATLAS_DATA)
    return root


@pytest.fixture(scope="session")
def built(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build") / "atlas"
    build.build(data_root, out)
    return out


@pytest.fixture(scope="session")
def atlas(built) -> store.Atlas:
    return store.open_build(built)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(build_dir: Path, data_root: Path, workers: int = 2, env: dict | None = None):
    """Start ``ttp-atlas serve`` (gunicorn) on a free loopback port; return (process, base URL)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--build", str(build_dir), "--data", str(data_root),
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early: {process.stderr.read().decode()[-2000:]}")
        try:
            if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except requests.ConnectionError:
            time.sleep(0.2)
    stop_server(process)
    raise RuntimeError("server did not become ready within 60 s")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def server(built, data_root):
    """Base URL of the real server, run by gunicorn on 127.0.0.1 for the whole session."""
    process, url = start_server(built, data_root)
    yield url
    stop_server(process)


def worker_pids(master_pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == master_pid:
                        found.add(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return found
