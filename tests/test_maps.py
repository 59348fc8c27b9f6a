"""Web map pages: offline (no request leaves loopback), drawn right, sized right; and the saved file."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

from layers import catalogue, style, webmap
from tests.browser import open_page

CLI = str(Path(sys.executable).with_name("ttp-atlas"))  # the console script, as users run it
MARCH_2023 = "2023-03-01"  # the 9-unit structure
JULY_2023 = "2023-07-01"  # 12 units, 3 of them with a low-confidence extension
ALL_TITLES = [catalogue.layer(lid).title for lid in
              ("countries", "tehsils", "districts", "divisions", "tribal-districts", "provinces", "wilayahs", "zones")]
SERVED_TITLES = ALL_TITLES[1:]  # served pages draw the countries (the land) from the basemap tiles
TILE_URL = re.compile(r"^http://127\.0\.0\.1:\d+/tiles/(countries|provinces|districts)/\d+/\d+/\d+(@2x)?\.png$")

# A point inside a wilayah that nothing covers, found the way a user would aim: by what is under it.
FIND_CLICKABLE = """(() => {
  for (const path of document.querySelectorAll('path.wilayah')) {
    const box = path.getBoundingClientRect();
    for (let i = 1; i < 20; i++) for (let j = 1; j < 20; j++) {
      const x = box.left + box.width * i / 20, y = box.top + box.height * j / 20;
      if (document.elementFromPoint(x, y) === path) return [x, y];
    }
  }
  return null;
})()"""


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def attribute_urls(html: str) -> list[str]:
    parser = Links()
    parser.feed(html)
    return parser.urls


def source_urls(atlas) -> set[str]:
    return {s["url"] for f in atlas.features("wilayahs") for s in f["properties"]["sources"]}


def close_to(pixel, colour, tolerance=12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], style.hex_to_rgb(colour), strict=True))


def names_at(atlas, day: str) -> set[str]:
    return {f["properties"]["name"] for f in atlas.features("wilayahs", day)}


# --- HTML served -------------------------------------------------------------------------------

def test_page_links_nothing_outside_the_service(server, atlas):
    response = requests.get(f"{server}/map", params={"datetime": JULY_2023}, timeout=60)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    urls = attribute_urls(response.text)
    assert any(url.endswith("/static/vendor/leaflet/leaflet.js") for url in urls)
    assert [u for u in urls if urlsplit(u).scheme in ("http", "https") and urlsplit(u).hostname != "127.0.0.1"] == []
    # Anything else that looks like a URL is a source link of a popup.
    mentioned = set(re.findall(r"https?://[^\"'\\<>\s)]+", response.text)) - {u for u in urls}
    assert {u for u in mentioned if "127.0.0.1" not in u} <= source_urls(atlas)
    for text in ("CC BY-IGO", "OpenStreetMap", "Natural Earth", catalogue.CAVEAT[:60], "As of"):
        assert text in response.text


def test_vendor_assets_are_served_cached_and_compressed(server):
    url = f"{server}/static/vendor/leaflet/leaflet.js"
    first = requests.get(url, headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert first.status_code == 200 and first.headers["Content-Encoding"] == "gzip"
    assert "Leaflet 1.9" in first.text[:400]
    again = requests.get(url, headers={"If-None-Match": first.headers["ETag"]}, timeout=10)
    assert again.status_code == 304
    assert requests.get(f"{server}/static/vendor/leaflet/images/layers.png", timeout=10).content[:4] == b"\x89PNG"
    for bad in ("leaflet/../../../__init__.py", "leaflet/nope.js", "bootstrap/bootstrap.css"):
        missing = requests.get(f"{server}/static/vendor/{bad}", timeout=10)
        assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/problem+json"


def wire_bytes(url: str) -> int:
    """What a GET of ``url`` sends, as sent (gzip when the server compresses it)."""
    return len(requests.get(url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=60).raw.read())


def test_map_transfers_under_3_mb(server):
    """The page, every asset it links and every basemap tile the browser loads stay under the 3 MB budget."""
    page = requests.get(f"{server}/map", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=60)
    assert page.headers["Content-Encoding"] == "gzip"
    sent = len(page.raw.read())  # the bytes on the wire, still compressed
    body = requests.get(f"{server}/map", timeout=60).text
    sent += sum(wire_bytes(url) for url in attribute_urls(body) if url.startswith(server))
    with open_page(f"{server}/map") as browser:
        browser.wait_until("document.querySelectorAll('.leaflet-tile-loaded').length > 0")
        tiles = [url for url in browser.requests if "/tiles/" in url]
    assert tiles and all(TILE_URL.match(url) for url in tiles)
    sent += sum(wire_bytes(url) for url in tiles)
    assert 100_000 < sent < 3_000_000


@pytest.mark.parametrize(("query", "problem", "status"), [
    ("/map?datetime=2023-02-30", "datetime", 400),
    ("/map?datetime=2023-01-01/2023-12-31", "datetime", 400),
    ("/map?embed=yes", "embed", 400),
    ("/map?zoom=5", "zoom", 400),
    ("/map/wilayat", None, 404),
])
def test_bad_requests_get_problem_documents(server, query, problem, status):
    response = requests.get(server + query, timeout=10)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    document = response.json()
    if problem:
        assert document["parameter"] == problem
    else:
        assert "wilayahs" in document["valid"]


def test_embed_has_no_page_chrome_but_keeps_caveat_and_credits(server):
    full = requests.get(f"{server}/map", params={"datetime": JULY_2023}, timeout=60).text
    embed = requests.get(f"{server}/map", params={"datetime": JULY_2023, "embed": "1"}, timeout=60).text
    assert 'class="atlas-dates"' in full and 'class="atlas-dates"' not in embed
    for text in (catalogue.CAVEAT[:60], "CC BY-IGO", "As of"):
        assert text in embed


def test_pages_are_cached_with_etags(server):
    url = f"{server}/map/wilayahs?datetime={JULY_2023}"
    first = requests.get(url, timeout=60)
    second = requests.get(url, headers={"If-None-Match": first.headers["ETag"]}, timeout=10)
    assert second.status_code == 304
    other = requests.get(f"{server}/map/wilayahs?datetime={MARCH_2023}", timeout=60)
    assert other.headers["ETag"] != first.headers["ETag"]


# --- in the browser ----------------------------------------------------------------------------

def test_map_draws_offline_with_popups_and_every_layer(server, atlas, artifacts):
    with open_page(f"{server}/map?datetime={MARCH_2023}") as page:
        assert page.external_requests() == []
        assert page.console_errors == []
        assert page.evaluate("document.querySelectorAll('path.wilayah').length") == \
            len(atlas.features("wilayahs", MARCH_2023)) == 9
        labels = page.evaluate("[...document.querySelectorAll('.leaflet-control-layers-overlays label')]"
                               ".map(l => l.textContent.trim())")
        assert labels == SERVED_TITLES
        shot = page.screenshot(artifacts / "map-2023-03-01.png")
        point = page.evaluate(FIND_CLICKABLE)
        assert point is not None
        page.click(*point)
        page.wait_until("document.querySelector('.leaflet-popup-content') !== null")
        popup = page.evaluate("document.querySelector('.leaflet-popup-content').innerHTML")
        name = page.evaluate("document.querySelector('.leaflet-popup-content h3').textContent")
        links = page.evaluate("[...document.querySelectorAll('.leaflet-popup-content a')].map(a => a.href)")
        assert page.external_requests() == [] and page.console_errors == []
    feature = next(f for f in atlas.features("wilayahs", MARCH_2023) if f["properties"]["name"] == name)
    assert links == [s["url"] for s in feature["properties"]["sources"]]
    for text in ("Confidence", "Member districts", feature["properties"]["member_districts"][0]["name"],
                 feature["properties"]["sources"][0]["publisher"].replace("&", "&amp;"), "not areas of control"):
        assert text in popup
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert len(colours) > 50  # not blank
    for zone in ("north", "south"):
        assert sum(n for n, c in colours if close_to(c, style.ZONE_COLOURS[zone])) > 300, zone
    assert sum(n for n, c in colours if close_to(c, style.BACKGROUND, 2)) > 1000  # the sea shows


def test_basemap_is_the_services_own_tiles(server, artifacts):
    """Context tiles come from 127.0.0.1 and load; claimed units and their zone colours draw over them."""
    with open_page(f"{server}/map/wilayahs?datetime={JULY_2023}") as page:
        page.wait_until("document.querySelectorAll('img.leaflet-tile').length > 0 && "
                        "[...document.querySelectorAll('img.leaflet-tile')].every(t => t.complete)")
        images = page.evaluate("[...document.querySelectorAll('img.leaflet-tile')].map(t => [t.src, t.naturalWidth])")
        base = page.evaluate("[...document.querySelectorAll('.leaflet-control-layers-base label')]"
                             ".map(l => l.textContent.trim())")
        shot = page.screenshot(artifacts / "map-basemap-2023-07-01.png")
        assert page.external_requests() == [] and page.console_errors == []
        requested = [url for url in page.requests if "/tiles/" in url]
    assert base == ["Atlas basemap (Countries, Provinces and territories, Districts (2023))"]
    assert {url.split("/tiles/")[1].split("/")[0] for url, _ in images} == {"countries", "provinces", "districts"}
    assert all(width in (256, 512) for _, width in images)  # decoded: every tile loaded
    assert requested and all(TILE_URL.match(url) for url in requested)
    assert {requests.get(url, timeout=30).status_code for url in requested[:6]} == {200}
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert sum(n for n, c in colours if close_to(c, style.LAND, 3)) > 5000  # land from the tiles
    for zone in ("north", "south"):
        assert sum(n for n, c in colours if close_to(c, style.ZONE_COLOURS[zone])) > 300, zone


def test_online_basemap_only_when_configured(atlas):
    offline = webmap.page_html(atlas, webmap.View(JULY_2023, ("wilayahs",), tiles_base="http://127.0.0.1:1/tiles"),
                               "http://127.0.0.1:1/static/vendor")
    assert "Online basemap" not in offline and "tile.openstreetmap.org" not in offline
    online = webmap.page_html(atlas, webmap.View(JULY_2023, ("wilayahs",), tiles_base="http://127.0.0.1:1/tiles",
                                                 basemap_url="https://tile.openstreetmap.org/{z}/{x}/{y}.png"),
                              "http://127.0.0.1:1/static/vendor")
    assert "Online basemap" in online and "https://tile.openstreetmap.org/{z}/{x}/{y}.png" in online
    assert "http://127.0.0.1:1/tiles/districts/{z}/{x}/{y}{r}.png" in online  # still offered, not shown first


@pytest.mark.parametrize(("path", "day", "titles"), [
    ("/map", JULY_2023, SERVED_TITLES),
    ("/map/wilayahs", "2025-12-26", [catalogue.layer("wilayahs").title]),
])
def test_wilayah_paths_match_the_date(server, atlas, path, day, titles):
    features = atlas.features("wilayahs", day)
    low = [f for f in features if f["properties"]["confidence"] == "low"]
    with open_page(f"{server}{path}?datetime={day}&embed=1") as page:
        assert page.evaluate("document.querySelectorAll('path.wilayah').length") == len(features)
        hatched = page.evaluate("[...document.querySelectorAll('path.wilayah')]"
                                ".filter(p => (p.getAttribute('fill') || '').startsWith('url(#hatch-')"
                                " && p.getAttribute('stroke-dasharray')).length")
        assert hatched == len(low) > 0
        assert page.evaluate("[...document.querySelectorAll('.leaflet-control-layers-overlays label')]"
                             ".map(l => l.textContent.trim())") == titles
        assert page.external_requests() == [] and page.console_errors == []
    assert names_at(atlas, day) >= ({"Kashmir", "Darel"} if day > "2025" else {"Punjab North"})


def test_tehsils_appear_only_from_a_legible_zoom(server):
    with open_page(f"{server}/map/tehsils?embed=1") as page:
        visible = "[...document.querySelectorAll('path.atlas-tehsils')].filter(p => getComputedStyle(p).display !== 'none').length"
        assert page.evaluate(visible) == 0
        page.evaluate("new Promise(r => { const m = Object.values(window).find(v => v instanceof L.Map);"
                      " m.once('zoomend', () => r(true)); m.setZoom(8, {animate: false}); })")
        assert page.evaluate(visible) > 0


# --- the saved file ------------------------------------------------------------------------------

def test_cli_writes_a_map_that_opens_offline(built, data_root, atlas, tmp_path):
    out = tmp_path / "atlas-map.html"
    run = subprocess.run([CLI, "map", "--out", str(out), "--build", str(built),
                          "--data", str(data_root), "--datetime", MARCH_2023], check=False, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    html = out.read_text(encoding="utf-8")
    assert [u for u in attribute_urls(html) if urlsplit(u).scheme in ("http", "https")] == []
    assert "L.tileLayer" not in html  # no server, no tiles: the plain background
    assert 'class="atlas-dates"' not in html  # no server to switch dates
    with open_page(out.as_uri()) as page:
        assert page.external_requests(allowed_hosts=()) == []
        assert page.console_errors == []
        assert page.evaluate("document.querySelectorAll('path.wilayah').length") == 9
    assert not list(tmp_path.glob(".*.part"))


def test_cli_refuses_a_bad_date_in_one_line(built, tmp_path):
    run = subprocess.run([CLI, "map", "--out", str(tmp_path / "x.html"),
                          "--build", str(built), "--datetime", "July 2023"], check=False, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "July 2023" in run.stderr and "ISO date" in run.stderr
    assert not (tmp_path / "x.html").exists()
