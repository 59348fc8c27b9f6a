"""A catalogue of hostile and malformed requests: each gets the right 4xx and a problem document.

Nothing may answer 5xx, leak a traceback, a file path or a version, or serve a file outside the catalogue.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from server.app import content_security_policy
from tests.conftest import start_server, stop_server

LONG = "x" * 5000
# A path that decodes to one climbing above the root, or holding a NUL: nginx in front refuses it (400)
# before the app would answer 404; either way a problem document.
FRONT_REFUSES = (400, 404)

# (method, path with query, expected status)
CASES = [
    # features: bbox
    ("GET", "/collections/districts/items?bbox=1,2,3", 400),
    ("GET", "/collections/districts/items?bbox=73,35,70,33", 400),  # inverted
    ("GET", "/collections/districts/items?bbox=NaN,30,72,35", 400),
    ("GET", "/collections/districts/items?bbox=70,30,Infinity,35", 400),
    ("GET", "/collections/districts/items?bbox=a,b,c,d", 400),
    ("GET", "/collections/districts/items?bbox=-200,30,72,35", 400),
    ("GET", "/collections/districts/items?bbox=70,30,72,95", 400),
    ("GET", "/collections/districts/items?bbox=70,30,72,35&bbox=70,30,72,35", 400),
    # features: paging
    ("GET", "/collections/districts/items?limit=100000000", 400),
    ("GET", "/collections/districts/items?limit=-1", 400),
    ("GET", "/collections/districts/items?limit=0", 400),
    ("GET", "/collections/districts/items?limit=ten", 400),
    ("GET", "/collections/districts/items?offset=-5", 400),
    ("GET", "/collections/districts/items?offset=1e3", 400),
    # features: datetime
    ("GET", "/collections/wilayahs/items?datetime=yesterday", 400),
    ("GET", "/collections/wilayahs/items?datetime=2023-13-45", 400),
    ("GET", "/collections/wilayahs/items?datetime=2023-01-01/2023-02-01/2023-03-01", 400),
    ("GET", "/collections/wilayahs/items?datetime=2024-01-01/2023-01-01", 400),
    # features: parameters, names, formats
    ("GET", "/collections/wilayahs/items?colour=red", 400),
    ("GET", "/collections/wilayahs/items?zone=east", 400),
    ("GET", "/collections/wilayahs/items?confidence=certain", 400),
    ("GET", "/collections/wilayahs/items?f=xml", 400),
    ("GET", "/collections/roads/items", 404),
    ("GET", "/collections/..%2F..%2Fetc%2Fpasswd/items", FRONT_REFUSES),
    ("GET", "/collections/districts/items/PK9999", 404),
    ("GET", "/collections/districts/items/..%2Fmanifest.json", 404),
    ("GET", "/collections/districts/download.exe", 404),
    ("GET", "/collections/..%2Fmanifest/download.geojson", FRONT_REFUSES),
    # tiles
    ("GET", "/tiles/atlas/15/0/0.mvt", 404),
    ("GET", "/tiles/atlas/-1/0/0.mvt", 400),
    ("GET", "/tiles/atlas/a/b/c.mvt", 400),
    ("GET", "/tiles/atlas/3/8/0.mvt", 400),  # x beyond 2^z - 1
    ("GET", "/tiles/atlas/5/22/13.jpg", 404),
    ("GET", "/tiles/nope/5/22/13.mvt", 404),
    ("GET", "/tiles/..%2F..%2Fetc/5/22/13.mvt", FRONT_REFUSES),
    ("GET", "/tiles/atlas/5/22/13.mvt?datetime=soon", 400),
    ("GET", "/tiles/atlas/5/22/13.mvt?extra=1", 400),
    ("GET", "/tiles/nope.json", 404),
    # maps
    ("GET", "/map?datetime=not-a-date", 400),
    ("GET", "/map?embed=maybe", 400),
    ("GET", "/map/roads", 404),
    ("GET", "/static/vendor/leaflet/../../../../etc/passwd", 404),
    # exports
    ("GET", "/export.png?dpi=100000", 400),
    ("GET", "/export.png?size=A99", 400),
    ("GET", "/export.png?size=100000x100000mm", 400),
    ("GET", "/export.png?layers=wilayahs,roads", 400),
    ("GET", "/export.png?bbox=75,35,70,30", 400),
    ("GET", "/export.pdf?datetime=never", 400),
    ("GET", "/export.exe", 404),
    # one spelling per value (issue 12): numbers, tile paths, paper sizes; NUL in a path
    ("GET", "/collections/districts/items?limit=1_0", 400),
    ("GET", "/collections/districts/items?limit=%D9%A5", 400),
    ("GET", "/collections/districts/items?limit=05", 400),
    ("GET", "/collections/districts/items?bbox=7_0,30,72,35", 400),
    ("GET", "/tiles/atlas/05/022/013.mvt", 404),
    ("GET", "/static/vendor/leaflet/leaflet%00.js", FRONT_REFUSES),
    ("GET", "/export.png?size=50x50mm", 400),
    ("GET", "/export.png?size=1189x50mm", 400),
    ("GET", "/export.png?dpi=%D9%A5%D9%A0", 400),
    # methods, sizes, unknown paths
    ("POST", "/collections", 405),
    ("PUT", "/collections/districts/items", 405),
    ("DELETE", "/collections/districts/items/PK528", 405),
    ("PATCH", "/map", 405),
    ("GET", f"/collections/districts/items?q={LONG}", 414),
    ("GET", "/no/such/path", 404),
]


def leaks(text: str) -> list[str]:
    patterns = [r"Traceback", r"File \"/", r"/work/", r"site-packages", r"Werkzeug/\d", r"gunicorn/\d",
                r"Python/\d"]
    return [p for p in patterns if re.search(p, text)]


def test_catalogue_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize(("method", "path", "status"), CASES, ids=[f"{m} {p[:60]}" for m, p, _ in CASES])
def test_hostile_request_gets_a_problem_document(server, method, path, status):
    response = requests.request(method, server + path, timeout=60, allow_redirects=False)
    allowed = status if isinstance(status, tuple) else (status,)
    assert response.status_code in allowed, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == response.status_code and problem["title"] and problem["detail"]
    assert not leaks(response.text), leaks(response.text)
    assert not leaks(str(response.headers.get("Server", ""))), response.headers.get("Server")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_bad_parameter_problem_names_the_parameter(server):
    problem = requests.get(f"{server}/collections/districts/items?limit=ten", timeout=30).json()
    assert problem["parameter"] == "limit" and "limit" in problem["detail"]


def raw_exchange(server: str, request: bytes) -> http.client.HTTPResponse:
    """Send REQUEST byte for byte (no client library tidies it up) and read the one response."""
    host, port = urlsplit(server).netloc.split(":")
    conn = socket.create_connection((host, int(port)), timeout=30)
    conn.sendall(request)
    response = http.client.HTTPResponse(conn)
    response.begin()
    response.body = response.read()
    conn.close()
    return response


def request_with(line: str = "GET /healthz HTTP/1.1", *headers: str) -> bytes:
    return "\r\n".join([line, "Host: 127.0.0.1", *headers, "Connection: close", "", ""]).encode("latin-1")


# Requests refused before the app sees them, by the front end or the app server (status, request).
REFUSED_UPSTREAM = [
    (414, request_with(f"GET /lookup?q={'a' * 9000} HTTP/1.1")),
    (414, request_with(f"GET /lookup?q={'a' * 20000} HTTP/1.1")),
    (431, request_with("GET /healthz HTTP/1.1", f"X-Foo: {'y' * 10000}")),
    (431, request_with("GET /healthz HTTP/1.1", f"Cookie: session={'c' * 10000}")),
    (431, request_with("GET /healthz HTTP/1.1", *[f"X-Padding-{i}: {'p' * 7000}" for i in range(6)])),
    (405, request_with("TRACE /healthz HTTP/1.1")),
    (405, request_with("CONNECT /healthz HTTP/1.1")),
    (400, request_with("CONNECT 127.0.0.1:443 HTTP/1.1")),
    (505, request_with("GET /healthz HTTP/2.0")),
    (505, request_with("GET /healthz HTTP/3.7")),
    (400, request_with("GET /healthz HTTP/1.1", "Content-Length: x")),
    (413, request_with("GET /healthz HTTP/1.1", "Content-Length: 5000")),
    (501, request_with("GET /healthz HTTP/1.1", "Transfer-Encoding: gzip")),
    (400, request_with("GET /\xff HTTP/1.1")),  # raw bytes outside ASCII in the request line
    (400, request_with("GET /map?x=\xc3\xa9 HTTP/1.1")),
    (400, request_with("GET /collections/events/items?month=2023-07\xff HTTP/1.1")),
]


@pytest.mark.parametrize(("status", "request_bytes"), REFUSED_UPSTREAM,
                         ids=[f"{status} {r[:40].decode('latin-1')}" for status, r in REFUSED_UPSTREAM])
def test_front_end_refusals_are_problem_documents(server, status, request_bytes):
    response = raw_exchange(server, request_bytes)
    assert response.status == status, (response.status, response.body[:200])
    assert response.getheader("Content-Type") == "application/problem+json", response.body[:200]
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Access-Control-Allow-Origin") == "*"
    problem = json.loads(response.body)
    assert problem["status"] == status and problem["title"] and problem["detail"]


@pytest.mark.parametrize("length", [4200, 8100, 8150, 8180, 8190, 8200])
def test_request_lines_near_the_limits_get_problem_documents(server, length):
    """Every length near gunicorn's old 8190-byte limit: refused by one side only, always as JSON."""
    response = raw_exchange(server, request_with(f"GET /healthz?{'a' * (length - 22)} HTTP/1.1"))
    assert response.status in (400, 414), (length, response.status)
    assert response.getheader("Content-Type") == "application/problem+json", (length, response.body[:200])


@pytest.mark.parametrize(("size", "count"), [(8150, 1), (8170, 1), (1, 150), (100, 200)])
def test_headers_the_front_end_takes_reach_the_app(server, size, count):
    """Headers within nginx's limits (8 kB a line, 32 kB in all) are served, not refused by gunicorn."""
    headers = [f"X-Padding-{i}: {'p' * size}" for i in range(count)]
    response = raw_exchange(server, request_with("GET /healthz HTTP/1.1", *headers))
    assert response.status == 200, (size, count, response.status, response.body[:200])


def test_html_pages_allow_only_their_own_origin(server):
    response = requests.get(f"{server}/map", timeout=60)
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "http" not in policy


def test_configured_online_basemap_is_the_only_other_image_origin():
    policy = content_security_policy("https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png")
    assert "img-src 'self' data: blob: https://*.tile.openstreetmap.org;" in policy
    assert policy.count("http") == 1


def test_percent_encoded_tile_suffix_is_not_a_second_spelling(server):
    connection = http.client.HTTPConnection(urlsplit(server).netloc, timeout=30)  # requests would decode %2e
    connection.request("GET", "/tiles/atlas/5/22/13%2emvt")
    response = connection.getresponse()
    assert response.status == 404 and json.loads(response.read())["status"] == 404


def test_forged_host_never_reaches_a_link(server):
    for path in ("/collections?f=json", "/collections/districts/items?limit=2&f=json", "/map", "/tiles/atlas.json"):
        response = requests.get(server + path, headers={"Host": "evil.example"}, timeout=60)
        assert response.status_code == 200 and "evil.example" not in response.text, path


def test_slowloris_connection_is_cut_by_the_front_end(server):
    """A client that never finishes its headers is dropped after the header timeout, by nginx."""
    host, port = urlsplit(server).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        began, received = time.monotonic(), b""
        with contextlib.suppress(ConnectionResetError):  # nginx resets timed-out connections
            while chunk := conn.recv(1024):
                received += chunk
        waited = time.monotonic() - began
    assert b"200 OK" not in received and 5 < waited < 20, (waited, received[:100])


def test_front_end_refusals_follow_the_configured_cors_origins(built, data_root):
    process, url = start_server(built, data_root, workers=1,
                                env={"TTP_ATLAS_CORS_ORIGINS": "https://a.example,https://b.example"})
    try:
        for origin, allowed in [("https://b.example", "https://b.example"), ("https://evil.example", None)]:
            response = raw_exchange(url, request_with("TRACE /healthz HTTP/1.1", f"Origin: {origin}"))
            assert response.status == 405 and response.getheader("Allow") == "GET, HEAD, OPTIONS"
            assert response.getheader("Access-Control-Allow-Origin") == allowed, origin
    finally:
        stop_server(process)
