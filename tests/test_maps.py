"""Web map pages: offline (no request leaves loopback), drawn right, sized right, at phone, laptop and desktop
sizes; labels, popups, legend and date bar as a reader sees them; and the saved file."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import shapely
from PIL import Image

from layers import catalogue, disputed, places, style, webmap
from tests.browser import LEAFLET_MAP, open_page

CLI = str(Path(sys.executable).with_name("ttp-atlas"))  # the console script, as users run it
MARCH_2023 = "2023-03-01"  # the 9-unit structure
JULY_2023 = "2023-07-01"  # 12 units, 3 of them with a low-confidence extension
ALL_TITLES = [catalogue.layer(lid).title for lid in style.DRAW_ORDER]
SERVED_TITLES = [t for t in ALL_TITLES if t != catalogue.layer("countries").title]  # land: from basemap tiles
SIZES = {"phone": (390, 844), "laptop": (1024, 768), "desktop": (1920, 1080)}
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
    for text in ("CC BY-IGO", "OpenStreetMap", "Natural Earth", catalogue.CAVEAT[:60], "as of"):
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


def test_embed_has_no_date_links_but_keeps_title_date_caveat_and_credits(server):
    full = requests.get(f"{server}/map", params={"datetime": JULY_2023}, timeout=60).text
    embed = requests.get(f"{server}/map", params={"datetime": JULY_2023, "embed": "1"}, timeout=60).text
    assert 'class="atlas-dates"' in full and 'class="atlas-dates"' not in embed
    for text in (webmap.caveat_line(), "CC BY-IGO", f'as of <time datetime="{JULY_2023}">{JULY_2023}</time>',
                 "<h1>TTP claimed units (not areas of control)", "atlas-legend compact"):
        assert text in embed


@pytest.mark.parametrize("size", [(600, 400), SIZES["laptop"]])
def test_embed_shows_title_date_caveat_and_legend(server, atlas, size):
    with open_page(f"{server}/map?datetime={JULY_2023}&embed=1", size) as page:
        header = page.evaluate("(h => [h.innerText, h.getBoundingClientRect().bottom])"
                               "(document.querySelector('.atlas-header'))")
        legend = page.evaluate("(l => [l.open, l.getBoundingClientRect().height, l.textContent])"
                               "(document.getElementById('atlas-legend'))")
        assert bounds_contain(page, atlas.pakistan_bounds) and page.console_errors == []
    text, bottom = header
    for part in ("TTP claimed units (not areas of control)", f"as of {JULY_2023}", webmap.caveat_line(), "12 units"):
        assert part in " ".join(text.split())
    assert bottom < size[1] / 4  # one or two lines, the map keeps the rest
    assert legend[0] == (size[0] >= webmap.WIDE_PX) and legend[1] < size[1] * 0.75 and "North zone" in legend[2]


# [zoom, legend open, every zoom button clear of other controls, legend box inside the map]
EMBED_VIEW = f"""(() => {{ const m = {LEAFLET_MAP}, frame = m.getContainer().getBoundingClientRect();
  const legend = document.getElementById('atlas-legend'), box = legend.getBoundingClientRect();
  const clear = [...document.querySelectorAll('.leaflet-control-zoom a')].every(b => {{
    const r = b.getBoundingClientRect(); return b.contains(document.elementFromPoint((r.left + r.right) / 2,
                                                                                     (r.top + r.bottom) / 2)); }});
  return [m.getZoom(), legend.open, clear, box.top >= frame.top && box.bottom <= frame.bottom]; }})()"""


@pytest.mark.parametrize(("size", "day", "least_zoom"), [((400, 300), JULY_2023, 3.5), ((600, 400), "2026-03-01", 4.5)])
def test_small_embeds_open_with_the_legend_folded_and_pakistan_large(server, atlas, artifacts, size, day, least_zoom):
    with open_page(f"{server}/map?embed=1&datetime={day}", size) as page:
        zoom, legend_open, buttons_clear, legend_inside = page.evaluate(EMBED_VIEW)
        assert bounds_contain(page, atlas.pakistan_bounds) and page.console_errors == []
        page.screenshot(artifacts / f"embed-{size[0]}x{size[1]}-{day}.png")
    assert not legend_open and buttons_clear and legend_inside
    assert zoom >= least_zoom  # was 3 and 4.25, the open legend and the attribution taking the room


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
        # loaded, and done fading in: Leaflet raises each tile's opacity over 200 ms after it loads
        page.wait_until("document.querySelectorAll('img.leaflet-tile').length > 0 && "
                        "[...document.querySelectorAll('img.leaflet-tile')].every(t => t.complete && "
                        "t.classList.contains('leaflet-tile-loaded') && getComputedStyle(t).opacity === '1')")
        images = page.evaluate("[...document.querySelectorAll('img.leaflet-tile')].map(t => [t.src, t.naturalWidth])")
        base = page.evaluate("[...document.querySelectorAll('.leaflet-control-layers-base label')]"
                             ".map(l => l.textContent.trim())")
        shot = page.screenshot(artifacts / "map-basemap-2023-07-01.png")
        assert page.external_requests() == [] and page.console_errors == []
        requested = [url for url in page.requests if "/tiles/" in url]
    assert base == [webmap.BASEMAP_NAME]
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
    ("/map/wilayahs", "2023-03-01", [catalogue.layer("wilayahs").title]),
])
def test_wilayah_paths_match_the_date(server, atlas, path, day, titles):
    features = atlas.features("wilayahs", day)
    low = [f for f in features if f["properties"]["confidence"] == "low"]
    extensions = [f for f in features if f["properties"]["part"] == "extension"]
    with open_page(f"{server}{path}?datetime={day}&embed=1") as page:
        assert page.evaluate("document.querySelectorAll('path.wilayah').length") == len(features)
        hatched = page.evaluate("[...document.querySelectorAll('path.wilayah')]"
                                ".filter(p => (p.getAttribute('fill') || '').startsWith('url(#hatch-')).length")
        dashed = page.evaluate("[...document.querySelectorAll('path.wilayah')]"
                               ".filter(p => p.getAttribute('stroke-dasharray')).length")
        assert hatched == len(extensions) and dashed == len(low) and (day < "2023-06" or len(low) > 0)
        assert page.evaluate("[...document.querySelectorAll('.leaflet-control-layers-overlays label')]"
                             ".map(l => l.textContent.trim())") == titles
        assert page.external_requests() == [] and page.console_errors == []
    assert names_at(atlas, day) >= ({"Kashmir", "Darel"} if day > "2025" else {"Zhob"})


@pytest.mark.parametrize("layer_id", ["zones", "divisions"])
def test_a_layer_hidden_in_the_atlas_shows_on_its_own_map(server, layer_id):
    with open_page(f"{server}/map/{layer_id}?datetime={JULY_2023}&embed=1") as page:
        ticked = page.evaluate("[...document.querySelectorAll('.leaflet-control-layers-overlays input')]"
                               ".map(i => i.checked)")
        drawn = page.evaluate(f"[...document.querySelectorAll('path.{'zone' if layer_id == 'zones' else 'atlas-divisions'}')]"
                              ".filter(p => getComputedStyle(p).display !== 'none').length")
    assert ticked == [True] and drawn > 0


def test_tehsils_map_opens_where_tehsils_show_and_hides_them_further_out(server, artifacts):
    """Tehsils are drawn from zoom 8: their own map opens there, on the capital, with their legend entry."""
    capital = next(p for p in places.places() if p.kind == "national-capital")
    with open_page(f"{server}/map/tehsils", (1366, 768)) as page:
        visible = ("[...document.querySelectorAll('path.atlas-tehsils')]"
                   ".filter(p => getComputedStyle(p).display !== 'none').length")
        zoom, centre = page.evaluate(f"(m => [m.getZoom(), m.getCenter()])({LEAFLET_MAP})")
        drawn = page.evaluate(visible)
        page.screenshot(artifacts / "map-tehsils-1366x768.png")
        assert "Tehsils" in legend_rows(page)
        page.zoom_map(7)
        assert page.evaluate(visible) == 0 and "Tehsils" not in legend_rows(page)
    assert zoom == catalogue.layer("tehsils").min_zoom and drawn > 100
    assert abs(centre["lat"] - capital.lat) < 0.01 and abs(centre["lng"] - capital.lon) < 0.01


# --- what a reader sees, at phone, laptop and desktop sizes ------------------------------------------

# Visible label boxes: [text, left, top, right, bottom] of every wilayah label the map shows.
LABEL_BOXES = """[...document.querySelectorAll('.atlas-label span')]
  .filter(s => getComputedStyle(s).visibility !== 'hidden').map(s => [s.textContent, s.getBoundingClientRect()])
  .filter(([t, r]) => r.width > 0 && r.height > 0).map(([t, r]) => [t, r.left, r.top, r.right, r.bottom])"""


def overlapping(boxes) -> list[tuple[str, str]]:
    return [(a[0], b[0]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]]


def bounds_contain(page, bounds) -> bool:
    west, south, east, north = bounds
    return page.evaluate(f"{LEAFLET_MAP}.getBounds().contains(L.latLngBounds([[{south}, {west}], [{north}, {east}]]))")


@pytest.mark.parametrize("size", SIZES)
def test_pakistan_fits_controls_fold_and_labels_never_overlap(server, atlas, artifacts, size):
    width, height = SIZES[size]
    with open_page(f"{server}/map?datetime={JULY_2023}", SIZES[size]) as page:
        assert page.console_errors == []
        assert bounds_contain(page, atlas.pakistan_bounds)
        start = page.evaluate(f"{LEAFLET_MAP}.getZoom()")
        expanded = page.evaluate("document.querySelector('.leaflet-control-layers')"
                                 ".classList.contains('leaflet-control-layers-expanded')")
        legend_open = page.evaluate("document.getElementById('atlas-legend').open")
        assert expanded == legend_open == (width >= webmap.WIDE_PX)
        page.screenshot(artifacts / f"map-{size}-{JULY_2023}.png")
        seen = set()
        for zoom in (start, 6, 7, 8, 9):
            page.zoom_map(zoom)
            boxes = page.evaluate(LABEL_BOXES)
            assert overlapping(boxes) == [], (zoom, boxes)
            seen |= {b[0] for b in boxes}
        page.evaluate(f"new Promise(r => {{ const m = {LEAFLET_MAP}; m.once('moveend', () => r(true)); "
                      f"m.setView([34.1, 71.9], 8, {{animate: false}}); }})")  # Peshawar valley
        boxes = page.evaluate(LABEL_BOXES)
        assert overlapping(boxes) == [], boxes
        seen |= {b[0] for b in boxes}
    assert {"Peshawar", "Mardan", "Punjab North", "Zhob (possible extension)"} <= seen


# Labels shown (not hidden) whose box crosses the map's edge: [text, left, top, right, bottom].
LABELS_OUTSIDE = """(() => { const f = document.querySelector('.folium-map').getBoundingClientRect();
  return [...document.querySelectorAll('.atlas-label span')].filter(s => getComputedStyle(s).visibility !== 'hidden')
    .map(s => [s.textContent, s.getBoundingClientRect()]).filter(([t, r]) => r.width > 0)
    .filter(([t, r]) => r.left < f.left || r.right > f.right || r.top < f.top || r.bottom > f.bottom)
    .map(([t, r]) => [t, r.left, r.top, r.right, r.bottom]); })()"""


@pytest.mark.parametrize("day", [JULY_2023, "2026-03-01"])
def test_labels_stay_inside_the_map_on_a_phone(server, day):
    """"Qalat-Makran (possible extension)" ran from x = -11 px on a 390 px phone: labels slide inside, or hide."""
    with open_page(f"{server}/map?datetime={day}", SIZES["phone"]) as page:
        assert page.evaluate(LABELS_OUTSIDE) == []
        assert "Qalat-Makran (possible extension)" in [b[0] for b in page.evaluate(LABEL_BOXES)]
        page.evaluate(f"new Promise(r => {{ const m = {LEAFLET_MAP}; m.once('moveend', () => r(true)); "
                      f"m.panBy([150, 0], {{animate: false}}); }})")
        assert page.evaluate(LABELS_OUTSIDE) == []
        assert overlapping(page.evaluate(LABEL_BOXES)) == []


@pytest.mark.parametrize("size", SIZES)
def test_popup_heading_shows_below_the_header(server, atlas, size):
    with open_page(f"{server}/map?datetime={JULY_2023}", SIZES[size]) as page:
        point = page.evaluate(FIND_CLICKABLE)
        page.click(*point)
        page.wait_until("document.querySelector('.leaflet-popup-content h3') !== null")
        page.evaluate("new Promise(r => setTimeout(r, 600))")  # autopan
        heading = page.evaluate("JSON.parse(JSON.stringify(document.querySelector('.leaflet-popup-content h3')"
                                ".getBoundingClientRect()))")
        header = page.evaluate("document.querySelector('.atlas-header').getBoundingClientRect().bottom")
        on_top = page.evaluate(f"document.querySelector('.leaflet-popup-content h3').contains("
                               f"document.elementFromPoint({heading['left'] + 5}, {heading['top'] + heading['height'] / 2}))")
        box = page.evaluate("JSON.parse(JSON.stringify(document.querySelector('.leaflet-popup-content')"
                            ".getBoundingClientRect()))")
        content = box["height"]
        folded = page.evaluate("[...document.querySelectorAll('.leaflet-popup-content details')].every(d => !d.open)")
        page.evaluate("document.querySelectorAll('.leaflet-popup-content details').forEach(d => d.open = true)")
        unfolded = page.evaluate("(c => [c.clientHeight, c.scrollHeight])(document.querySelector('.leaflet-popup-content'))")
    width, height = SIZES[size]
    assert header <= heading["top"] and heading["bottom"] <= height and 0 <= heading["left"] < heading["right"] <= width
    assert on_top  # nothing (controls, header) lies over the name
    assert heading["top"] - box["top"] < 12  # the name comes first, at the top of the caption
    assert content <= 420 and folded
    assert unfolded[0] <= 420 and unfolded[1] > unfolded[0]  # unfolded sources scroll inside the caption


def legend_rows(page) -> list[str]:
    return page.evaluate("[...document.querySelectorAll('#atlas-legend li li')].filter(l => l.offsetParent)"
                         ".map(l => l.textContent.trim())")


def test_legend_lists_what_is_shown_with_its_swatches(server, atlas):
    with open_page(f"{server}/map?datetime={JULY_2023}", SIZES["laptop"]) as page:
        rows = legend_rows(page)
        hatch = page.evaluate("(() => { const fill = [...document.querySelectorAll('#atlas-legend li li')]"
                              ".find(l => l.textContent.includes('possible extension')).querySelector('rect')"
                              ".getAttribute('fill'); const id = fill.slice(5, -1);"
                              " return document.getElementById(id).querySelector('line').getAttribute('stroke'); })()")
        page.evaluate("[...document.querySelectorAll('.leaflet-control-layers-overlays label')]"
                      f".find(l => l.textContent.trim() === {catalogue.layer('wilayahs').title!r})"
                      ".querySelector('input').click()")
        without = legend_rows(page)
        page.evaluate("[...document.querySelectorAll('.leaflet-control-layers-overlays label')]"
                      f".find(l => l.textContent.trim() === {catalogue.layer('zones').title!r})"
                      ".querySelector('input').click()")
        with_zones = legend_rows(page)
    props = [f["properties"] for f in atlas.features("wilayahs", JULY_2023)]
    assert {"Zone not reported, possible extension", "Zone not reported, low confidence", "North zone",
            "South zone"} <= set(rows)
    assert not [r for r in rows if "High" in r or "Tehsils" in r or "Divisions" in r]  # none has it / off / too fine
    assert hatch == style.ZONE_COLOURS[None] and any(p["part"] == "extension" and p["zone"] is None for p in props)
    assert not [r for r in without if "zone" in r.lower()] and "Provinces and territories" in without
    assert "North zone" in with_zones and "Zone not reported, possible extension" not in with_zones


def test_disputed_lines_are_dashed_with_the_note(server, atlas):
    lines = disputed.disputed_lines(atlas)
    with open_page(f"{server}/map?datetime={JULY_2023}", SIZES["laptop"]) as page:
        dashed = page.evaluate("[...document.querySelectorAll('path.atlas-disputed')].map(p => p.getAttribute('stroke-dasharray'))")
        cased = page.evaluate("document.querySelectorAll('path.atlas-disputed-casing').length")
        legend = page.evaluate("document.getElementById('atlas-legend').textContent")
    assert len(dashed) == cased == len(lines) > 0 and all(dashed)
    assert webmap.DISPUTED_KEY in legend and disputed.NOTE in legend
    assert legend.count(webmap.DISPUTED_KEY) == 1


def test_legend_follows_the_zoom(server):
    districts = catalogue.layer("districts")
    with open_page(f"{server}/map?datetime={JULY_2023}", SIZES["phone"]) as page:
        page.zoom_map(districts.min_zoom - 1)
        below = page.evaluate("[...document.querySelectorAll('#atlas-legend [data-layer]')].filter(l => !l.hidden)"
                              ".map(l => l.textContent)")
        page.zoom_map(districts.min_zoom)
        at = page.evaluate("[...document.querySelectorAll('#atlas-legend [data-layer]')].filter(l => !l.hidden)"
                           ".map(l => l.textContent)")
    assert not [t for t in below if districts.title in t] and [t for t in at if districts.title in t]


def test_legend_has_no_extension_before_any(server):
    with open_page(f"{server}/map?datetime={MARCH_2023}", SIZES["desktop"]) as page:
        rows = legend_rows(page)
    assert "North zone" in rows and "South zone" in rows
    assert not [r for r in rows if "extension" in r or "low confidence" in r or "not reported" in r]


def header_text(server, path: str, **query) -> str:
    page = requests.get(f"{server}{path}", params=query, timeout=60).text
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.split('<header class="atlas-header', 1)[1]
                                      .split("</header>", 1)[0].split(">", 1)[1])).strip()


def test_date_bar_states_the_period_and_flags_the_unconfirmed(server, atlas):
    july = requests.get(f"{server}/map", params={"datetime": JULY_2023}, timeout=60).text
    assert re.search(r'<a href="\?datetime=2023-06-30" aria-current="true"', july)
    assert july.count('aria-current="true"') == 1
    assert "12 units: Punjab North and South added (late June 2023)" in header_text(server, "/map", datetime=JULY_2023)
    assert "2 units: " not in header_text(server, "/map", datetime=MARCH_2023)
    assert "9 units in two zones" in header_text(server, "/map", datetime=MARCH_2023)
    assert "Unconfirmed" not in july
    empty = header_text(server, "/map", datetime="2020-01-01")
    assert "No claimed units reported on this date (the first reported structure dates from 2022-12-31)" in empty
    latest = header_text(server, "/map", datetime="2026-01-10")
    assert "Unconfirmed:" in latest and "Show the last confirmed structure (2023-06-30)" in latest
    assert header_text(server, "/map") == header_text(server, "/map", datetime=dt.date.today().isoformat())  # default: today
    districts = requests.get(f"{server}/map/districts", timeout=60).text
    assert 'class="atlas-dates"' not in districts and "as of" not in header_text(server, "/map/districts")


def test_popup_of_a_continuation_says_its_status_is_unknown(atlas):
    """A remainder kept after a later report (status "unknown since ...") says so first, sources folded."""
    props = next(f["properties"] for f in atlas.features("wilayahs", "2026-01-01") if f["properties"]["status"] != "claimed")
    popup = webmap.popup_html("wilayahs", props, {})
    assert "<h3>Gilgit-Baltistan (status unknown since 2025-12-25)</h3>" in popup
    assert "<tr><th>Status</th><td>unknown since 2025-12-25</td></tr><tr><th>Zone</th>" in popup
    assert f"<summary>Sources ({len(props['sources'])})</summary>" in popup
    claimed = next(f for f in atlas.features("wilayahs", JULY_2023) if f["properties"]["part"] == "extension")
    assert "Status" not in webmap.popup_html("wilayahs", claimed["properties"], {})
    later = [text for _, text in webmap.legend_keys("wilayahs", [f["properties"] for f in atlas.features("wilayahs", "2026-01-01")])]
    assert later[later.index("North zone, possible extension") + 1] == "Status unknown since 2025-12-25"
    earlier = [text for _, text in webmap.legend_keys("wilayahs", [f["properties"] for f in atlas.features("wilayahs", JULY_2023)])]
    assert not any(text.startswith("Status") for text in earlier)


def test_preview_by_ids_fits_its_features(server, atlas):
    ids = ["zhob-2023-06-14-core", "zhob-2023-06-14-extension"]
    with open_page(f"{server}/map/wilayahs?embed=1&ids={','.join(ids)}", SIZES["laptop"]) as page:
        assert page.evaluate("document.querySelectorAll('path.wilayah').length") == 2
        zoom = page.evaluate(f"{LEAFLET_MAP}.getZoom()")
        west, south, east, north = (float(v) for v in
                                    page.evaluate(f"{LEAFLET_MAP}.getBounds().toBBoxString()").split(","))
        assert page.console_errors == []
    shown = shapely.union_all([g for f, g in zip(atlas.features("wilayahs"), atlas.geometries["wilayahs"], strict=True)
                               if f["id"] in ids])
    assert shapely.box(west, south, east, north).contains(shown.envelope)  # all of Zhob in view
    assert zoom >= 6  # fitted to Zhob, not to Pakistan
    for query, valid in (("ids=nope", "ids"), ("ids=", "ids")):
        response = requests.get(f"{server}/map/wilayahs?{query}", timeout=10)
        assert response.status_code == 400 and response.json()["parameter"] == valid
    assert requests.get(f"{server}/map?ids=zhob-2023-06-14-core", timeout=10).status_code == 400


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


PLACE_BOXES = """[...document.querySelectorAll('.atlas-place span')].map(s => [s.textContent, s.getBoundingClientRect()])
  .filter(([t, r]) => r.width > 0 && r.height > 0).map(([t, r]) => t)"""


def test_capitals_show_from_the_first_view_and_cities_closer_in(server):
    with open_page(f"{server}/map?datetime={JULY_2023}", SIZES["laptop"]) as page:
        first = page.evaluate(PLACE_BOXES)
        shown = [b[0] for b in page.evaluate(LABEL_BOXES)]  # place names and unit labels
        legend = page.evaluate("document.getElementById('atlas-legend').textContent")
        attribution = page.evaluate("document.querySelector('.leaflet-control-attribution').textContent")
        page.zoom_map(8)
        closer = page.evaluate(PLACE_BOXES)
        boxes = page.evaluate(LABEL_BOXES)
    assert {"Islamabad", "Peshawar", "Quetta", "Karachi", "Lahore"} <= set(shown)
    assert {"Islamabad", "Quetta", "Karachi", "Lahore"} <= set(first) and "Faisalabad" not in first
    assert {"Faisalabad", "Rawalpindi", "Multan"} <= set(closer) and overlapping(boxes) == []
    assert places.GEONAMES_CREDIT in legend and places.GEONAMES_CREDIT in attribution
