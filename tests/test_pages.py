"""The OGC API HTML pages as a reader sees them: readable tables (no raw JSON, no "None"), clickable
sources, the caveat once, and preview maps fitted to the features the page lists."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import shapely

from layers import catalogue
from tests.browser import open_page

FEATURE = "zhob-2023-06-14-extension"


class Page(HTMLParser):
    """Table cells (as text, by row header) and links of an HTML page."""

    def __init__(self):
        super().__init__()
        self.links, self.iframes, self.rows, self._row, self._cell, self._depth = [], [], {}, None, None, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            self.links.append(attrs.get("href"))
        elif tag == "iframe":
            self.iframes.append(attrs["src"])
        elif tag == "table":
            self._depth += 1
        elif tag in ("th", "td") and self._depth == 1:
            self._cell = []
        elif tag == "tr" and self._depth == 1:
            self._row = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._depth -= 1
        elif tag in ("th", "td") and self._depth == 1 and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._depth == 1 and self._row:
            self.rows[self._row[0]] = self._row[1:]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def fetch(url: str) -> tuple[str, Page]:
    response = requests.get(url, timeout=60)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    parsed = Page()
    parsed.feed(response.text)
    return response.text, parsed


def assert_readable(html: str) -> None:
    """No Python or JSON leaking into the page."""
    for leak in ("None", "\\u0027", "[{", "{&#34;", "&#34;:", "True", "False"):
        assert leak not in html, leak


def test_feature_page_is_a_readable_table(server, atlas):
    feature = next(f for f in atlas.features("wilayahs") if f["id"] == FEATURE)
    props = feature["properties"]
    html, page = fetch(f"{server}/collections/wilayahs/items/{FEATURE}?f=html")
    assert_readable(html)
    assert html.count(catalogue.CAVEAT) == 1
    assert page.rows["valid_to"] == ["—"] and props["valid_to"] is None
    assert page.rows["confidence"] == ["low"] and page.rows["part"] == ["extension"]
    members = page.rows["member_districts"][0]
    assert all(m["name"] in members and m["pcode"] in members for m in props["member_districts"])
    for source in props["sources"]:
        assert source["url"] in page.links and source["title"] in page.rows["sources"][0]
    assert "caveat" not in page.rows  # said once, above the table
    assert page.rows["notes"] == [" ".join(props["notes"].split())]
    (src,) = page.iframes
    assert urlsplit(src).path == "/map/wilayahs"  # at the feature's own first day, fitted to it
    assert parse_qs(urlsplit(src).query) == {"datetime": [props["valid_from"]], "embed": ["1"], "ids": [FEATURE]}


def test_items_page_lists_properties_in_columns_and_maps_the_same_features(server, atlas):
    html, page = fetch(f"{server}/collections/wilayahs/items?f=html")
    assert_readable(html)
    assert html.count(catalogue.CAVEAT) == 1
    header = page.rows["id"]
    assert header[:5] == ["name", "unit", "label", "zone", "part"] and "valid_to" in header and "sources" not in header
    everything = atlas.features("wilayahs")
    row = page.rows["zhob-2023-06-14-extension"]
    assert row[header.index("zone")] == "—" and row[header.index("confidence")] == "low"
    (src,) = page.iframes
    assert parse_qs(urlsplit(src).query)["ids"] == [",".join(f["id"] for f in everything)]
    filtered_html, filtered = fetch(f"{server}/collections/wilayahs/items?f=html&datetime=2023-03-01")
    shown = [f["id"] for f in atlas.features("wilayahs", "2023-03-01")]
    assert [k for k in filtered.rows if k != "id"] == shown
    assert parse_qs(urlsplit(filtered.iframes[0]).query)["ids"] == [",".join(shown)]


@pytest.mark.parametrize("path", ["/?f=html", "/collections?f=html", "/collections/wilayahs?f=html",
                                  "/collections/zones?f=html", "/collections/zones/items?f=html"])
def test_caveat_once_per_page(server, path):
    html, _ = fetch(server + path)
    assert html.count(catalogue.CAVEAT) == 1
    assert_readable(html)


def test_collection_pages_embed_their_layers_map(server):
    for collection in requests.get(f"{server}/collections", timeout=60).json()["collections"]:
        _, page = fetch(f"{server}/collections/{collection['id']}?f=html")
        (src,) = page.iframes
        related = next(link["href"] for link in collection["links"] if link["rel"] == "related")
        assert urlsplit(src).path == urlsplit(related).path
        assert parse_qs(urlsplit(src).query) == {**parse_qs(urlsplit(related).query), "embed": ["1"]}
        assert requests.get(src, timeout=60).status_code == 200


def test_civil_pages_have_no_caveat_and_show_nulls_as_dashes(server, atlas):
    html, page = fetch(f"{server}/collections/districts/items/PK101?f=html")
    assert catalogue.CAVEAT not in html
    assert_readable(html)
    district = next(f for f in atlas.features("districts") if f["id"] == "PK101")["properties"]
    assert all(page.rows[k] == ["—"] for k, v in district.items() if v is None)


def map_in_frame(page) -> str:
    """The Leaflet map of the page's preview iframe (same origin), as a JavaScript expression."""
    return ("((w) => Object.values(w).find(v => w.L && v instanceof w.L.Map))"
            "(document.querySelector('iframe.map').contentWindow)")


def test_preview_maps_are_fitted_to_the_features_listed(server, atlas, artifacts):
    with open_page(f"{server}/collections/wilayahs/items/{FEATURE}?f=html", (1024, 768)) as page:
        page.wait_until(f"(() => {{ try {{ return !!{map_in_frame(page)}; }} catch (e) {{ return false; }} }})()", 20)
        page.wait_until("document.querySelector('iframe.map').contentDocument.querySelectorAll('path.wilayah')"
                        ".length > 0", 20)
        zoom = page.evaluate(f"{map_in_frame(page)}.getZoom()")
        bbox = page.evaluate(f"{map_in_frame(page)}.getBounds().toBBoxString()")
        drawn = page.evaluate("document.querySelector('iframe.map').contentDocument"
                              ".querySelectorAll('path.wilayah').length")
        page.screenshot(artifacts / "page-feature.png")
        assert page.console_errors == []
    geometry = next(g for f, g in zip(atlas.features("wilayahs"), atlas.geometries["wilayahs"], strict=True)
                    if f["id"] == FEATURE)
    view = shapely.box(*(float(v) for v in bbox.split(",")))
    assert drawn == 1 and zoom >= 6  # not zoom 1, not all of Pakistan
    assert view.contains(geometry.envelope) and view.area < 8 * geometry.envelope.area
    with open_page(f"{server}/collections/wilayahs/items?f=html&datetime=2023-03-01", (1024, 768)) as page:
        page.wait_until("(() => { try { return document.querySelector('iframe.map').contentDocument"
                        ".querySelectorAll('path.wilayah').length > 0; } catch (e) { return false; } })()", 20)
        drawn = page.evaluate("document.querySelector('iframe.map').contentDocument"
                              ".querySelectorAll('path.wilayah').length")
        page.screenshot(artifacts / "page-items.png")
    assert drawn == len(atlas.features("wilayahs", "2023-03-01")) == 9
