"""Production serving: nginx in front, gunicorn behind it, both children of ``ttp-atlas serve``.

gunicorn loads the app once and forks its workers, which share it copy-on-write: a worker's own
(private) memory is about 5 MiB idle and about 75 MiB after serving tiles, pages, a map and an
export, instead of a full load (over 500 MB) each (``python -m bench --only soak`` measures it).
A gthread worker gives a thread to every open connection, so slow clients (slowloris, slow
readers, idle keep-alives) could take every thread; nginx is event-driven and buffers whole
requests and responses, so a Python thread only ever talks to nginx over a private unix socket,
for milliseconds. ``--no-proxy`` (or ``TTP_ATLAS_NO_PROXY=1``) serves gunicorn
directly, for debugging.

Process tree: ``serve`` (supervisor) -> nginx master -> nginx workers, and ``serve`` -> gunicorn
master -> gunicorn workers. SIGTERM/SIGINT to ``serve`` stops both gracefully; if either dies,
the other is stopped and ``serve`` exits non-zero.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gunicorn.app.base import BaseApplication

from layers import store
from server.app import create_app

NO_PROXY_ENV = "TTP_ATLAS_NO_PROXY"
NGINX_ENV = "TTP_ATLAS_NGINX"  # path of the nginx binary, when not on PATH
# The largest response nginx may spool to its temp folder for a slow reader (the biggest download
# is the tehsils layer, about 10 MB; a PDF export of A0 can reach a few hundred MB).
MAX_SPOOL = "2048m"
MAX_WORKERS = 64  # each adds its private memory and caches: more would only trade memory for contention

# Worker memory (see share_with_workers and _release_after_render): glibc's mallopt parameter and the
# size from which a block gets its own mapping; the duration from which a request counts as a render.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 1024
SLOW_REQUEST = 0.05  # seconds
LIBC = ctypes.CDLL(None, use_errno=True)  # the C library of this process (prctl, mallopt, malloc_trim)

# nginx's limits, below gunicorn's: a request line or one header line up to 8 kB, 32 kB of headers in all
HEADER_BUFFERS = "4 8k"
LIMITS_BEHIND_PROXY = {"limit_request_line": 0, "limit_request_field_size": 32768, "limit_request_fields": 32768}
LIMITS_DIRECT = {"limit_request_line": 8190, "limit_request_field_size": 8190, "limit_request_fields": 100}
# Every error nginx itself can answer (not the app's: those are problem documents already, passed through).
PROBLEMS = {
    400: ("Bad request", "the request is not valid HTTP/1.1"),
    405: ("Method not allowed", "use GET, HEAD or OPTIONS"),
    408: ("Request timeout", "the request did not arrive in time"),
    411: ("Length required", "a request body needs a Content-Length"),
    413: ("Content too large", "the service takes no request bodies"),
    414: ("URI too long", "the request line is longer than 8 kB"),
    431: ("Request header fields too large",
          "a request header line is longer than 8 kB, or all of them are longer than 32 kB"),
    500: ("Internal server error", "the front end failed; try again"),
    501: ("Not implemented", "the transfer encoding is not supported"),
    502: ("Bad gateway", "the application server is not answering; try again"),
    503: ("Service unavailable", "the service is overloaded; try again"),
    504: ("Gateway timeout", "the application server did not answer in time"),
    505: ("HTTP version not supported", "use HTTP/1.0 or HTTP/1.1"),
}
SENT_AS = {494: 431}  # nginx's internal code for a header too large (sent as a plain 400 otherwise)


class ServeError(RuntimeError):
    """nginx is missing, or a part of the service died; the message says which and what to do."""


def options(bind: str, workers: int, behind_proxy: bool) -> dict:
    return {
        "bind": bind,
        "workers": workers or min(multiprocessing.cpu_count() * 2 + 1, MAX_WORKERS),
        "preload_app": True,  # load the layers once; workers share them copy-on-write
        "worker_class": "gthread",  # threads overlap socket I/O: about 2.3x the warm-tile throughput of sync
        "threads": 4,
        "timeout": 60,
        "graceful_timeout": 20,
        "keepalive": 5,
        "accesslog": None if behind_proxy else "-",  # behind nginx, nginx logs each request with the client
        "errorlog": "-",
        # behind nginx, nginx alone refuses oversize requests, as problem documents (gunicorn's are HTML)
        **(LIMITS_BEHIND_PROXY if behind_proxy else LIMITS_DIRECT),
        "max_requests": 0,
        "control_socket_disable": True,  # one shared path per user: parallel servers would take each other's
        # Only X-Forwarded-Proto, and only from a trusted peer: the unix socket (nginx alone can reach
        # it) or, with --no-proxy, gunicorn's default forwarded_allow_ips (loopback).
        "secure_scheme_headers": {"X-FORWARDED-PROTO": "https"},
        "pre_request": _note_start,
        "post_request": _release_after_render,
    }


class AtlasServer(BaseApplication):
    def __init__(self, application, settings: dict):
        self.application, self.settings = application, settings
        super().__init__()

    def load_config(self):
        for key, value in self.settings.items():
            self.cfg.set(key, value)

    def load(self):
        return self.application


def nginx_config(work: Path, listen: str, upstream: Path, cors_origins: str = "*") -> str:
    """nginx as a buffering front end: it holds slow and idle clients, gunicorn sees whole requests."""
    user = "user root;" if os.geteuid() == 0 else ""  # as root, workers would otherwise be 'nobody'
    error_pages = "\n".join(f"        error_page {code} ={sent} /_problem/{sent};"
                             for code, sent in [*zip(PROBLEMS, PROBLEMS), *SENT_AS.items()])
    problem_locations = "\n".join(_problem_location(status, title, detail)
                                   for status, (title, detail) in PROBLEMS.items())
    return f"""
{user}
worker_processes auto;
worker_rlimit_nofile 16384;
pid {work}/nginx.pid;
error_log stderr error;  # (warn would log every response spooled to disk)
events {{ worker_connections 8192; }}
http {{
    log_format atlas '$remote_addr [$time_local] "$request" $status $body_bytes_sent $request_time "$http_user_agent"';
    access_log /dev/stdout atlas;
    server_tokens off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    # slow clients: nginx, not a Python thread, waits for them, and only so long
    client_header_timeout 10s;
    client_body_timeout 10s;
    send_timeout 30s;
    keepalive_timeout 15s;
    keepalive_requests 1000;
    reset_timedout_connection on;
    client_max_body_size 1k;  # the service takes no request bodies
    large_client_header_buffers {HEADER_BUFFERS};  # the longest request line or header line, and all
    # whole requests in, whole responses out: gunicorn is done with a request in milliseconds
    proxy_request_buffering on;
    proxy_buffering on;
    proxy_buffer_size 16k;
    proxy_buffers 64 16k;
    proxy_busy_buffers_size 64k;
    proxy_max_temp_file_size {MAX_SPOOL};
    proxy_temp_file_write_size 256k;
    proxy_connect_timeout 5s;
    proxy_read_timeout 120s;
    upstream atlas {{ server unix:{upstream}; }}
{_cors_map(cors_origins)}
    server {{
        listen {listen} backlog=4096;
        location / {{
            # a request line is ASCII (RFC 9112; other characters are percent-encoded): refuse raw bytes here,
            # as a problem document, before gunicorn answers them with an HTML page
            if ($request_uri ~ "[^\\x21-\\x7e]") {{ return 400; }}
            proxy_pass http://atlas;
            proxy_redirect off;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host "";
            proxy_set_header X-Forwarded-Protocol "";
            proxy_set_header X-Forwarded-Ssl "";
            proxy_set_header Forwarded "";
        }}
{error_pages}
{problem_locations}
    }}
}}
"""


def _problem_location(status: int, title: str, detail: str) -> str:
    """An internal location answering nginx's own error ``status`` with an RFC 9457 problem document."""
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    assert "'" not in body and "$" not in body, body  # inside nginx's single quotes, with no variables
    allow = 'add_header Allow "GET, HEAD, OPTIONS" always; ' if status == 405 else ""
    return (f"        location = /_problem/{status} {{ internal; default_type application/problem+json; "
            f"add_header X-Content-Type-Options nosniff always; "
            f"add_header Access-Control-Allow-Origin $atlas_cors_origin always; {allow}"
            f"return {status} '{body}'; }}")


def _cors_map(cors_origins: str) -> str:
    """``$atlas_cors_origin``: the app's CORS rule (``*`` or a list of origins) for nginx's own answers."""
    if cors_origins == "*":
        return "    map $http_origin $atlas_cors_origin { default *; }"
    allowed = " ".join(f'"{origin}" "{origin}";' for origin in cors_origins.split(",") if origin)
    return f'    map $http_origin $atlas_cors_origin {{ default ""; {allowed} }}'


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def nginx_binary() -> str:
    """The nginx to run: $TTP_ATLAS_NGINX, else nginx on PATH or in /usr/sbin."""
    candidates = [os.environ[NGINX_ENV]] if os.environ.get(NGINX_ENV) else \
        [shutil.which("nginx") or "", "/usr/sbin/nginx", "/usr/local/sbin/nginx"]
    found = next((path for path in candidates if path and os.access(path, os.X_OK)), None)
    if not found:
        raise ServeError(f"nginx not found ({', '.join(filter(None, candidates))}): install it (apt-get install "
                         f"nginx), set {NGINX_ENV}, or serve without the front end (--no-proxy, debugging only)")
    return found


def _die_with_parent() -> None:
    """In a child: SIGTERM when the supervisor dies (even by SIGKILL), so nothing is orphaned."""
    if hasattr(LIBC, "prctl"):
        LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _fork_gunicorn(app, settings: dict) -> int:
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        _die_with_parent()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        AtlasServer(app, settings).run()
        status = 0
    except SystemExit as done:  # gunicorn's master and its workers all leave through sys.exit
        status = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _wait_for_socket(path: Path, pid: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            raise ServeError("gunicorn exited during start (see its message above)")
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(path))
                return
            except OSError:
                time.sleep(0.05)
    raise ServeError(f"gunicorn did not listen on {path} within {seconds:g} s")


def _supervise(children: dict[int, str]) -> None:
    """Wait for the children; on SIGTERM/SIGINT stop both gracefully; if one dies, stop the other."""
    stopping = []
    graceful = {"gunicorn": signal.SIGTERM, "nginx": signal.SIGQUIT}

    def stop(*_):
        stopping.append(True)
        for pid, name in list(children.items()):
            try:
                os.kill(pid, graceful[name])
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    died = None
    while children:
        pid, status = os.wait()
        name = children.pop(pid, None)
        if name == "nginx":  # its own process group: workers left by a killed master go with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        if name and not stopping:
            died = f"{name} exited unexpectedly (status {os.waitstatus_to_exitcode(status)})"
            stop()
    if died:
        raise ServeError(f"{died}: the service was stopped (see the messages above)")


def share_with_workers() -> None:
    """Prepare the loaded app for forked workers: call once, after loading, before gunicorn forks.

    The loaded build is over a million container objects. A full collection in a worker would write
    to the header of each one and so copy every page of the shared atlas into that worker (hundreds
    of MB each); frozen, they are never visited, and the pages stay shared. And blocks of
    MMAP_THRESHOLD or more (page bodies, images) get a mapping of their own from glibc, unmapped when
    freed, instead of a place in its heap that stays the worker's after they are gone.
    """
    gc.freeze()
    if hasattr(LIBC, "mallopt"):  # glibc (musl and others keep their own policy)
        LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def _note_start(worker, req) -> None:
    req.atlas_started = time.monotonic()


def _release_after_render(worker, req, environ, resp) -> None:
    """After a slow request (a render: a map page, an export, a large page), collect its garbage and
    hand the freed memory back to the system at once, so each worker's memory stays near what it
    keeps (its caches) instead of the peak of its largest render. With the caches' shared budget
    (geo.cache), a worker's private memory after the soak benchmark is 140 MiB instead of 330."""
    if time.monotonic() - getattr(req, "atlas_started", time.monotonic()) >= SLOW_REQUEST:
        gc.collect()
        if hasattr(LIBC, "malloc_trim"):
            LIBC.malloc_trim(0)


def run(build_root: Path, data_root: Path, host: str, port: int, workers: int, proxy: bool = True) -> None:
    atlas = store.ensure_build(build_root, data_root)
    atlas.warm()
    app = create_app(atlas)
    share_with_workers()
    if not proxy:
        AtlasServer(app, options(listen_address(host, port), workers, behind_proxy=False)).run()
        return
    nginx = nginx_binary()
    with tempfile.TemporaryDirectory(prefix="ttp-atlas-serve-") as folder:
        work = Path(folder)
        upstream = work / "gunicorn.sock"
        config = work / "nginx.conf"
        config.write_text(nginx_config(work, listen_address(host, port), upstream, app.config["CORS_ORIGINS"]))
        gunicorn = _fork_gunicorn(app, options(f"unix:{upstream}", workers, behind_proxy=True))
        children = {gunicorn: "gunicorn"}
        try:
            _wait_for_socket(upstream, gunicorn)
            front = subprocess.Popen([nginx, "-e", "stderr", "-p", str(work), "-c", str(config),
                                      "-g", "daemon off;"], preexec_fn=_die_with_parent, process_group=0)
            children[front.pid] = "nginx"
        except BaseException:
            os.kill(gunicorn, signal.SIGTERM)
            os.waitpid(gunicorn, 0)
            raise
        _supervise(children)
