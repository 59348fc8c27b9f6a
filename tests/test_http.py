"""App-wide HTTP behaviour: health, readiness, CORS, preflight and HEAD, on the real server."""

from __future__ import annotations

import gc

import requests

from server.app import create_app
from geo.cache import ByteCache, SharedBudget


def test_health_and_readiness(server, atlas):
    assert requests.get(f"{server}/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{server}/readyz", timeout=10).json()
    assert ready["status"] == "ready" and ready["build_id"] == atlas.build_id
    assert ready["layers"]["wilayahs"] == len(atlas.features("wilayahs"))


def test_any_origin_may_read_by_default(server):
    response = requests.get(f"{server}/collections", headers={"Origin": "https://newsroom.example"}, timeout=10)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "ETag" in response.headers["Access-Control-Expose-Headers"]


def test_preflight_and_head(server):
    preflight = requests.options(f"{server}/collections/wilayahs/items", timeout=10,
                                 headers={"Origin": "https://a.example", "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    head = requests.head(f"{server}/collections/wilayahs/items", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Type"].startswith("application/geo+json")


def test_configured_origins_only(atlas):
    client = create_app(atlas, CORS_ORIGINS="https://a.example,https://b.example").test_client()
    allowed = client.get("/healthz", headers={"Origin": "https://b.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://b.example"
    assert "Origin" in allowed.headers["Vary"]
    refused = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_byte_cache_keeps_within_its_budget_and_evicts_least_recent():
    cache = ByteCache(budget=1000)
    for key in range(50):
        cache.get_or_make(key, lambda: b"x" * 300)
    assert cache.used <= 1000 and len(cache) == 3
    made = []
    cache.get_or_make(48, lambda: made.append(1) or b"y")
    assert not made  # a hit
    cache.get_or_make("new", lambda: b"z" * 300)
    assert cache.get_or_make(48, lambda: b"again") == b"x" * 300  # recently used: kept
    assert cache.get_or_make(47, lambda: b"gone") == b"gone"  # least recent: evicted
    huge = cache.get_or_make("huge", lambda: b"h" * 5000)
    assert huge == b"h" * 5000 and cache.used <= 1000  # larger than the budget: answered, not kept


def test_caches_sharing_a_budget_evict_the_least_recent_entry_of_any():
    shared = SharedBudget(1000)
    pages, tiles = ByteCache(800, shared=shared), ByteCache(800, shared=shared)
    pages.get_or_make("a", lambda: b"a" * 300)
    tiles.get_or_make("b", lambda: b"b" * 300)
    pages.get_or_make("c", lambda: b"c" * 300)
    pages.get_or_make("a", lambda: b"again")  # a hit: "a" is now the most recent
    tiles.get_or_make("d", lambda: b"d" * 300)  # 1200 bytes: the oldest of either cache ("b") goes
    assert shared.used == 900 and (len(pages), len(tiles)) == (2, 1)
    assert tiles.get_or_make("b", lambda: b"made") == b"made"  # evicted from tiles, by pages' use
    assert pages.get_or_make("a", lambda: b"made") == b"a" * 300  # kept
    held = pages.used
    del pages
    gc.collect()
    assert shared.used == tiles.used and held > 0  # a dropped cache's bytes are freed for the others


def test_nul_in_a_path_is_a_404_in_the_app_too(atlas):
    client = create_app(atlas).test_client()  # nginx refuses it first; gunicorn alone (--no-proxy) must too
    response = client.get("/static/vendor/leaflet/leaflet%00.js")
    assert response.status_code == 404 and response.json["status"] == 404
