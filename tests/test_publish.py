"""``ttp-atlas publish``: the static site served by nginx (no Python), read by Chromium and by GDAL."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import requests
from PIL import Image
from pmtiles.tile import TileType, deserialize_header

from bench.common import run_nginx
from layers import catalogue, publish, style
from tests.browser import open_page
from tests.conftest import free_port

MAXZOOM, PNG_MAXZOOM = 6, 5  # shallow pyramids: the test is about the site, bench/pyramid.py about depth
TYPES = {ext: mime for ext, mime in publish.CONTENT_TYPES.items() if ext in (".pmtiles", ".fgb", ".geojson", ".qml", ".sld")}
VALIDATOR = Path(__file__).resolve().parent.parent / ".make/node/node_modules/.bin/gl-style-validate"


@contextlib.contextmanager
def nginx(root: Path, port: int, work: Path):
    """nginx (a child, ``daemon off``) serving ``root`` as static files on ``port``, logging every status."""
    types = "\n".join(f"{mime} {ext.lstrip('.')};" for ext, mime in TYPES.items())
    config = work / "nginx.conf"
    # as root, nginx's workers would run as nobody, who cannot enter pytest's private temporary folders
    user = "user root;" if os.geteuid() == 0 else ""
    config.write_text(textwrap.dedent(f"""
        {user}
        worker_processes 1;
        daemon off;
        pid {work}/nginx.pid;
        error_log {work}/error.log;
        events {{ worker_connections 256; }}
        http {{
            include /etc/nginx/mime.types;
            types {{ {types} }}
            log_format codes '$status $request_method $uri';
            access_log {work}/access.log codes;
            client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fastcgi;
            uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
            server {{ listen 127.0.0.1:{port}; root {root}; }}
        }}
    """))
    url = f"http://127.0.0.1:{port}"
    with run_nginx(config, work, url + "/manifest.json"):
        yield url


@pytest.fixture(scope="module")
def site(atlas, tmp_path_factory):
    """(folder, base URL, nginx access log) of a site published for the port nginx then serves it on."""
    work = tmp_path_factory.mktemp("publish")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    info = publish.publish(atlas, work / "site", url, MAXZOOM, PNG_MAXZOOM)
    with nginx(work / "site", port, work) as served:
        assert served == url
        yield work / "site", url, work / "access.log", info


def statuses(log: Path) -> list[tuple[int, str]]:
    return [(int(code), uri) for code, _, uri in (line.split() for line in log.read_text().splitlines())]


def test_manifest_lists_every_file_with_its_sha256(site):
    root, _, _, info = site
    manifest = json.loads((root / "manifest.json").read_text())
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == files
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == entry["sha256"], name
    for needed in ("index.html", "tiles/atlas.pmtiles", "tiles/basemap.pmtiles", "static/pmtiles/pmtiles.js",
                   "static/pmtiles/LICENSE", "static/leaflet/leaflet.js", "styles/atlas.json", "styles/sprite@2x.png",
                   "ogc/index.json", "ogc/conformance.json", "ogc/collections.json",
                   *(f"data/{lid}.{key}" for lid in catalogue.LAYER_IDS for key in ("geojson", "fgb")),
                   *(f"styles/{lid}.{key}" for lid in catalogue.LAYER_IDS for key in ("qml", "sld")),
                   *(f"ogc/collections/{lid}/items.json" for lid in catalogue.LAYER_IDS)):
        assert needed in files, needed
    assert [t["maxzoom"] for t in manifest["tiles"]] == [MAXZOOM, PNG_MAXZOOM]
    assert not list(root.parent.glob(".site.*"))  # the staging folder is gone


def test_archives_are_read_by_range_requests(site):
    _, url, _, _ = site
    for name, tile_type in (("atlas", TileType.MVT), ("basemap", TileType.PNG)):
        reply = requests.get(f"{url}/tiles/{name}.pmtiles", headers={"Range": "bytes=0-126"}, timeout=10)
        assert reply.status_code == 206 and len(reply.content) == 127
        assert reply.headers["Content-Type"] == "application/vnd.pmtiles"
        header = deserialize_header(reply.content)
        assert header["tile_type"] == tile_type and header["min_zoom"] == 0


def test_gdal_reads_the_static_ogc_api(site, atlas):
    root, url, _, _ = site
    for lid in ("wilayahs", "districts"):
        frame = pyogrio.read_dataframe(f"OAPIF:{url}/ogc/collections/{lid}.json")
        assert len(frame) == len(atlas.features(lid)) > 0
        assert set(frame["id"]) == {f["id"] for f in atlas.features(lid)}
    landing = requests.get(f"{url}/ogc/index.json", timeout=10).json()
    assert {link["rel"] for link in landing["links"]} >= {"self", "conformance", "data"}
    assert all(link["href"].startswith(url) for link in landing["links"])
    collections = requests.get(f"{url}/ogc/collections.json", timeout=10).json()["collections"]
    assert [c["id"] for c in collections] == list(catalogue.LAYER_IDS)
    items = requests.get(f"{url}/ogc/collections/zones/items.json", timeout=10)
    assert items.headers["Content-Type"] == "application/json"
    assert items.json()["numberMatched"] == len(atlas.features("zones"))
    fgb = pyogrio.read_dataframe(f"/vsicurl/{url}/data/tehsils.fgb")
    assert len(fgb) == len(atlas.features("tehsils"))


def test_maplibre_style_reads_the_archive(site):
    root, url, _, _ = site
    document = json.loads((root / "styles/atlas.json").read_text())
    assert document["sources"]["ttp-atlas"]["url"] == f"pmtiles://{url}/tiles/atlas.pmtiles"
    assert document["sprite"] == f"{url}/styles/sprite"
    assert requests.get(f"{url}/styles/sprite.json", timeout=10).json()
    if not VALIDATOR.is_file():
        pytest.skip("the MapLibre style validator is not installed (make node)")
    done = subprocess.run([str(VALIDATOR), str(root / "styles/atlas.json")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def choose(page, index: int) -> None:
    """Pick a period in the switcher, as a reader does."""
    page.evaluate(f"(() => {{ const s = document.getElementById('period'); s.value = '{index}'; "
                  f"s.dispatchEvent(new Event('change')); }})()")


def _unit_paths(page) -> int:
    return page.evaluate("document.querySelectorAll('path.wilayah').length")


def test_web_map_draws_tiles_and_units_at_two_dates(site, atlas, artifacts):
    root, url, log, _ = site
    periods = json.loads(re.search(r"const PERIODS = (\[.*?\]);", (root / "index.html").read_text()).group(1))
    first, last = periods[0], periods[-1]
    before = len(statuses(log))  # the page's requests only (GDAL probes for optional documents)
    with open_page(f"{url}/index.html") as page:
        page.wait_until("document.body.dataset.period !== undefined", 20)
        choose(page, 0)
        page.wait_until(f"document.body.dataset.period === '{first['from']}'", 20)
        drawn_first = _unit_paths(page)
        page.wait_until("[...document.querySelectorAll('.leaflet-tile')].length > 0 && [...document.querySelectorAll("
                        "'.leaflet-tile')].every(t => t.classList.contains('leaflet-tile-loaded') && "
                        "getComputedStyle(t).opacity === '1')", 20)  # loaded and faded in
        page.screenshot(artifacts / "publish-first.png")
        first_image = Image.open(artifacts / "publish-first.png").convert("RGB")
        choose(page, len(periods) - 1)
        page.wait_until(f"document.body.dataset.period === '{last['from']}'", 20)
        drawn_last = _unit_paths(page)
        page.screenshot(artifacts / "publish-last.png")
        assert page.console_errors == [] and page.external_requests() == []
    # one path per feature valid on each date (extensions and continuations included)
    assert drawn_first == len(atlas.valid_indices("wilayahs", first["from"], first["from"])) > 0
    assert drawn_last == len(atlas.valid_indices("wilayahs", last["from"], last["from"])) > 0
    assert drawn_first != drawn_last
    pixels = np.asarray(first_image).reshape(-1, 3)
    land = np.array(style.hex_to_rgb(style.LAND))
    assert (np.abs(pixels - land).sum(axis=1) < 12).mean() > 0.05  # the basemap's land, from the PNG archive
    codes = statuses(log)[before:]
    assert all(code in (200, 206, 304) for code, _ in codes), [c for c in codes if c[0] >= 400]
    assert (206, "/tiles/basemap.pmtiles") in codes  # tiles came by range requests
    assert "GeoNames" in (root / "index.html").read_text()  # the basemap names places: credited


def test_publish_refuses_bad_values_and_leaves_nothing(atlas, tmp_path):
    with pytest.raises(publish.PublishError, match="base URL"):
        publish.publish(atlas, tmp_path / "site", "ftp://x")
    with pytest.raises(publish.PublishError, match="png maxzoom 15"):
        publish.publish(atlas, tmp_path / "site", "", 4, 15)
    assert list(tmp_path.iterdir()) == []
    done = subprocess.run([sys.executable, "-m", "server", "publish", "--build", str(atlas.root), "--out",
                           str(tmp_path / "site"), "--maxzoom", "99"], capture_output=True, text=True)
    assert done.returncode == 2 and "'99' is not a whole number from 0 to 14" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "site").exists()


def test_without_base_url_every_link_is_relative_and_resolves(atlas, tmp_path):
    root = tmp_path / "site"
    publish.publish(atlas, root, "", 2, 2)
    documents = list((root / "ogc").rglob("*.json"))
    links = [(doc, link["href"]) for doc in documents for link in json.loads(doc.read_text()).get("links", [])]
    assert len(links) > 8 * len(catalogue.LAYER_IDS)
    for doc, href in links:
        assert not href.startswith("http") and (doc.parent / href).resolve().is_file(), (doc, href)
