"""Shared benchmark plumbing: the real server, wrk on loopback, nginx as the static-file ceiling."""

from __future__ import annotations

import contextlib
import re
import resource
import shutil
import subprocess
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from geo import datasets
from layers import store
from tests.conftest import free_port, start_server, stop_server, worker_pids


def timed(command: list[str], timeout: int = 1800) -> tuple[str | None, str]:
    """"wall / CPU" seconds of a command (CPU: every process and thread of it, the fairer figure on a
    machine others share), or None and the error."""
    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    began, cpu_before = time.perf_counter(), cpu()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"over {timeout} s"
    if done.returncode:
        return None, done.stderr.strip()[-200:]
    return f"{time.perf_counter() - began:.1f} / {cpu() - cpu_before:.1f}", ""


def row(benchmark: str, metric: str, value, unit: str = "", goal: str = "") -> dict:
    return {"benchmark": benchmark, "metric": metric, "value": value, "unit": unit, "goal": goal}


@dataclass(frozen=True)
class Running:
    url: str
    pid: int  # ``ttp-atlas serve``: nginx and the gunicorn arbiter are its children

    @property
    def gunicorn(self) -> int:
        return gunicorn_master(self.pid)


@contextlib.contextmanager
def atlas_server(workers: int = 2, env: dict | None = None):
    """The production server (nginx in front of gunicorn, preloaded) on a free loopback port."""
    build_dir = store.build_dir()
    store.ensure_build(build_dir, datasets.data_dir())
    process, url = start_server(build_dir, datasets.data_dir(), workers=workers, env=env)
    try:
        yield Running(url, process.pid)
    finally:
        stop_server(process)


@contextlib.contextmanager
def nginx(root: Path, types: dict[str, str] | None = None):
    """nginx serving ``root`` on a free loopback port (the ceiling for static responses)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        extra = "\n".join(f"{mime} {ext};" for ext, mime in (types or {}).items())
        config = Path(work) / "nginx.conf"
        config.write_text(textwrap.dedent(f"""
            worker_processes 2;
            daemon off;
            pid {work}/nginx.pid;
            error_log {work}/error.log;
            events {{ worker_connections 1024; }}
            http {{
                include /etc/nginx/mime.types;
                types {{ {extra} }}
                access_log off;
                sendfile on;
                client_body_temp_path {work}/body;
                proxy_temp_path {work}/proxy;
                fastcgi_temp_path {work}/fastcgi;
                uwsgi_temp_path {work}/uwsgi;
                scgi_temp_path {work}/scgi;
                server {{ listen 127.0.0.1:{port}; root {root}; }}
            }}
        """))
        url = f"http://127.0.0.1:{port}"
        with run_nginx(config, work, url):
            yield url


@contextlib.contextmanager
def run_nginx(config: Path, work, ready_url: str):
    """nginx as a child process (``config`` says ``daemon off``, ``work`` is its prefix) for the block,
    which starts once ``ready_url`` answers; benchmarks and tests that need an nginx of their own share it."""
    process = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-e", "stderr", "-p", str(work),
                                "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(requests.ConnectionError):
                requests.get(ready_url, timeout=1)
                break
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def _seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def wrk(url: str, seconds: int = 5, connections: int = 16, threads: int = 2, script: str | None = None,
        headers: dict | None = None) -> dict:
    """Run wrk against a loopback URL; requests/s, p50/p99 latency (ms), errors and non-2xx/3xx count."""
    assert url.startswith("http://127.0.0.1"), "load only ever goes to loopback"
    command = ["wrk", "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
    for key, value in (headers or {}).items():
        command += ["-H", f"{key}: {value}"]
    if script:
        command += ["-s", script]
    output = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": round(_seconds(latency["50"]) * 1000, 2),
        "p99_ms": round(_seconds(latency["99"]) * 1000, 2),
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
    }


def descendants(pid: int) -> set[int]:
    """Every process under ``pid`` (serve: nginx master and workers, gunicorn master and workers)."""
    found, todo = set(), [pid]
    while todo:
        below = worker_pids(todo.pop()) - found  # (the children of any process)
        found |= below
        todo += below
    return found


def gunicorn_master(serve_pid: int) -> int:
    """The gunicorn arbiter under ``ttp-atlas serve`` (its child that is not nginx); serve itself with --no-proxy."""
    for pid in worker_pids(serve_pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            if Path(f"/proc/{pid}/comm").read_text().strip() != "nginx":
                return pid
    return serve_pid


def memory_kib(pid: int) -> dict[str, int]:
    """One process's memory in KiB from /proc/<pid>/smaps_rollup: ``rss`` (every page it maps),
    ``pss`` (each shared page divided among its sharers) and ``uss`` (pages only it maps, Private_Clean +
    Private_Dirty: what the process costs on its own). Zeros for a process that has gone."""
    fields = {}
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, value = line.split(":", 1)
            fields[key] = int(value.split()[0])
    return {"rss": fields.get("Rss", 0), "pss": fields.get("Pss", 0),
            "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)}


def pss_kib(pids) -> int:
    """Proportional set size summed over processes: shared pages counted once in all, not once per process."""
    return sum(memory_kib(pid)["pss"] for pid in pids)
