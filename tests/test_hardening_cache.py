"""Cache-safe HTTP through a real shared cache: nginx ``proxy_cache`` in front of the real server.

A GDAL-like JSON client, a browser, a gzip and an identity client and an attacker with a forged Host
take turns on the same URLs, twice (the second round is served from the cache); no client may get
another's format, encoding or host.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
import textwrap
from pathlib import Path

import pytest
import requests

from bench.common import run_nginx
from tests.conftest import free_port

URLS = ["/", "/collections", "/collections/districts/items?limit=20", "/collections/wilayahs",
        "/map/wilayahs?datetime=2023-07-01", "/tiles/atlas.json", "/api"]
CLIENTS = {  # name -> request headers
    "attacker": {"Host": "evil.example", "Accept": "text/html", "Accept-Encoding": "gzip"},
    "gdal": {"Accept": "application/geo+json, application/json", "Accept-Encoding": "identity"},
    "browser": {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                "Accept-Encoding": "gzip, deflate"},
    "gzip json": {"Accept": "application/json", "Accept-Encoding": "gzip"},
    "refuses gzip": {"Accept": "application/json", "Accept-Encoding": "gzip;q=0, identity"},
}


@contextlib.contextmanager
def caching_proxy(upstream: str):
    """nginx with a proxy_cache on a free loopback port, passing the client's Host on (as a CDN would)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        config = Path(work) / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""  # else workers run as nobody: no access to work
        config.write_text(textwrap.dedent(f"""
            {user}
            daemon off;
            pid {work}/nginx.pid;
            worker_processes 1;
            events {{ worker_connections 256; }}
            http {{
                access_log off;
                client_body_temp_path {work}/body;
                proxy_temp_path {work}/proxy;
                fastcgi_temp_path {work}/fastcgi;
                uwsgi_temp_path {work}/uwsgi;
                scgi_temp_path {work}/scgi;
                proxy_cache_path {work}/cache keys_zone=shared:1m max_size=200m;
                server {{
                    listen 127.0.0.1:{port};
                    location / {{
                        proxy_pass {upstream};
                        proxy_set_header Host $http_host;
                        proxy_cache shared;
                        add_header X-Cache $upstream_cache_status always;
                    }}
                }}
            }}
        """))
        url = f"http://127.0.0.1:{port}"
        with run_nginx(config, work, f"{url}/healthz"):
            yield url


def fetch(url: str, headers: dict) -> tuple[requests.Response, bytes]:
    """The response and its body exactly as sent (no transparent decompression)."""
    response = requests.get(url, headers=headers, timeout=60, stream=True)
    return response, response.raw.read(decode_content=False)


def check(name: str, path: str, response: requests.Response, raw: bytes, cache_url: str) -> None:
    assert response.status_code == 200, (name, path, response.status_code)
    encoding = response.headers.get("Content-Encoding")
    if name in ("gdal", "refuses gzip"):
        assert encoding is None, (name, path, "got gzip without accepting it")
    body = gzip.decompress(raw) if encoding == "gzip" else raw
    text = body.decode()
    assert "evil.example" not in text, (name, path, "a forged Host reached a link")
    mimetype = response.headers["Content-Type"].split(";")[0]
    negotiated = not path.startswith(("/map", "/tiles"))
    if negotiated and name in ("gdal", "gzip json", "refuses gzip"):
        assert "json" in mimetype, (name, path, mimetype)
        json.loads(text)
    if negotiated and name in ("browser", "attacker"):
        assert mimetype == "text/html", (name, path, mimetype)
    if name == "attacker" and path != "/api":
        assert cache_url not in text  # relative links (or another client's absolute ones: never evil)


def test_no_client_gets_another_clients_response_through_a_shared_cache(server):
    hits = 0
    with caching_proxy(server) as cache_url:
        for _ in range(2):
            for path in URLS:
                for name, headers in CLIENTS.items():
                    response, raw = fetch(cache_url + path, headers)
                    hits += response.headers.get("X-Cache") == "HIT"
                    check(name, path, response, raw, cache_url)
    assert hits >= len(URLS) * 2, f"the cache served only {hits} responses: the test proved nothing"


def test_negotiated_responses_vary_on_accept(server):
    negotiated = requests.get(f"{server}/collections/districts/items?limit=1", timeout=30)
    assert {"Accept", "Accept-Encoding"} <= {v.strip() for v in negotiated.headers["Vary"].split(",")}
    chosen = requests.get(f"{server}/collections/districts/items?limit=1&f=json", timeout=30)
    assert chosen.headers["Vary"] == "Accept-Encoding"  # f= decides; Accept does not matter


def test_each_encoding_has_its_own_etag_and_weak_match_gives_304(server):
    url = f"{server}/collections/districts/items?limit=50&f=json"
    zipped = requests.get(url, headers={"Accept-Encoding": "gzip"}, timeout=30)
    plain = requests.get(url, headers={"Accept-Encoding": "identity"}, timeout=30)
    assert zipped.headers["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain.headers
    assert zipped.headers["ETag"] != plain.headers["ETag"]
    for tag in (plain.headers["ETag"], "W/" + plain.headers["ETag"], "*", f'"other", {plain.headers["ETag"]}'):
        again = requests.get(url, headers={"Accept-Encoding": "identity", "If-None-Match": tag}, timeout=30)
        assert again.status_code == 304, tag
        assert again.headers["ETag"] == plain.headers["ETag"]
    # the gzip ETag does not validate the identity representation
    other = requests.get(url, headers={"Accept-Encoding": "identity", "If-None-Match": zipped.headers["ETag"]},
                         timeout=30)
    assert other.status_code == 200 and other.json()["type"] == "FeatureCollection"


@pytest.mark.parametrize("header", ["gzip;q=0", "gzip;q=0.000", "identity", "br"])
def test_refused_gzip_is_not_sent(server, header):
    response = requests.get(f"{server}/collections/districts/items?limit=50&f=json",
                            headers={"Accept-Encoding": header}, timeout=30)
    assert response.status_code == 200 and "Content-Encoding" not in response.headers


def test_links_are_absolute_only_for_an_allowed_or_configured_host(server):
    loopback = requests.get(f"{server}/collections?f=json", timeout=30).json()["links"][0]["href"]
    assert loopback == f"{server}/collections"
    forged = requests.get(f"{server}/collections?f=json", headers={"Host": "evil.example"}, timeout=30)
    assert forged.json()["links"][0]["href"] == "/collections"
    page = requests.get(f"{server}/map?datetime=2023-07-01", headers={"Host": "evil.example"}, timeout=30)
    assert page.status_code == 200 and "evil.example" not in page.text


def test_configured_base_url_and_allowed_hosts(atlas):
    from server.app import create_app

    configured = create_app(atlas, BASE_URL="https://atlas.example.org/").test_client()
    links = configured.get("/collections?f=json", headers={"Host": "evil.example"}).json["links"]
    assert links[0]["href"] == "https://atlas.example.org/collections"
    allowed = create_app(atlas, ALLOWED_HOSTS="atlas.example.org,.example.net").test_client()
    assert allowed.get("/collections?f=json", headers={"Host": "maps.example.net"}).json["links"][0]["href"] \
        == "http://maps.example.net/collections"
    assert allowed.get("/collections?f=json", headers={"Host": "localhost"}).json["links"][0]["href"] \
        == "/collections"
