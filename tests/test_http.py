"""App-wide HTTP behaviour: health, readiness, CORS, preflight and HEAD, on the real server."""

from __future__ import annotations

import requests

from server.app import create_app


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
