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


def test_oversized_request_headers_are_refused(server):
    response = requests.get(f"{server}/collections", headers={"X-Padding": "y" * 10000}, timeout=30)
    assert response.status_code in (400, 431)


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
