"""The events web map (``/map/events``) and the events export on the real server with an event file:
circles per claimed unit with the month's counts at the units' label anchors, the month control, legend,
popups and credits, at phone, laptop and desktop sizes; refusals."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image

from layers import eventsymbols, labels, overlay, style
from tests import eventfiles
from tests.browser import LEAFLET_MAP, open_page
from tests.conftest import start_server, stop_server

MONTH = "2023-07"
SIZES = {"phone": (390, 844), "laptop": (1024, 768), "desktop": (1920, 1080)}
# [lat, lon, radius] of every circle on the map
CIRCLES = (f"Object.values({LEAFLET_MAP}._layers).filter(l => l instanceof L.CircleMarker)"
           ".map(l => [l.getLatLng().lat, l.getLatLng().lng, l.getRadius()])")
# The boxes of the map's controls and the header's month control that a reader sees
CONTROLS = """[...document.querySelectorAll('.leaflet-control, .atlas-months')]
  .filter(e => e.offsetWidth && e.offsetHeight)
  .map(e => { const r = e.getBoundingClientRect(); return [e.className, r.left, r.top, r.right, r.bottom]; })"""
# A point of the largest circle that nothing covers, and the circle's radius
LARGEST_POINT = f"""(() => {{
  const c = Object.values({LEAFLET_MAP}._layers).filter(l => l instanceof L.CircleMarker)
    .sort((a, b) => b.getRadius() - a.getRadius())[0];
  const box = c._path.getBoundingClientRect();
  for (let i = 1; i < 12; i++) for (let j = 1; j < 12; j++) {{
    const x = box.left + box.width * i / 12, y = box.top + box.height * j / 12;
    if (document.elementFromPoint(x, y) === c._path) return [x, y];
  }}
  return null;
}})()"""


@pytest.fixture(scope="module")
def events_server(built, data_root, tmp_path_factory):
    path = eventfiles.write_acled(tmp_path_factory.mktemp("events") / "events-acled.csv")
    process, url = start_server(built, data_root, workers=1, env={overlay.EVENTS_ENV: str(path)})
    yield url
    stop_server(process)


def expected_circles(atlas, month: str) -> list[tuple[float, float, float]]:
    """(lat, lon, radius) from the file's counts: at the units' label anchors on the month's last day."""
    last = overlay.month_days(month)[1]
    anchors = {lb.feature_id: (lb.lat, lb.lon) for lb in labels.unit_labels(atlas, "wilayahs", last)}
    return sorted((*anchors[unit], eventsymbols.radius_px(events, eventfiles.LARGEST))
                  for (unit, m), (events, _) in eventfiles.COUNTS.items() if m == month)


def assert_circles(page, atlas, month: str) -> None:
    found = sorted(page.evaluate(CIRCLES))
    wanted = expected_circles(atlas, month)
    assert len(found) == len(wanted) == page.evaluate("document.querySelectorAll('path.atlas-event').length")
    for (lat, lon, radius), (want_lat, want_lon, want_radius) in zip(found, wanted, strict=True):
        assert (lat, lon) == pytest.approx((want_lat, want_lon), abs=1e-4)
        assert radius == pytest.approx(want_radius, abs=0.01)


def overlaps(a, b) -> bool:
    return a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5 and a[2] < b[4] - 0.5 and b[2] < a[4] - 0.5


@pytest.mark.parametrize("size", SIZES)
def test_circles_legend_and_credits_at_every_size_with_no_overlap(events_server, atlas, artifacts, size):
    with open_page(f"{events_server}/map/events?month={MONTH}", SIZES[size]) as page:
        assert_circles(page, atlas, MONTH)
        assert page.failed == [] and page.console_errors == [] and page.external_requests() == []
        boxes = page.evaluate(CONTROLS)
        assert {"atlas-months"} <= {b[0] for b in boxes} and any("leaflet-control-zoom" in b[0] for b in boxes)
        assert [(a[0], b[0]) for i, a in enumerate(boxes) for b in boxes[i + 1:] if overlaps(a, b)] == []
        frame = page.evaluate(f"(() => {{ const r = {LEAFLET_MAP}.getContainer().getBoundingClientRect(); "
                              "return [r.left, r.top, r.right, r.bottom]; })()")
        for box in page.evaluate("[...document.querySelectorAll('path.atlas-event')].map(p => { "
                                 "const r = p.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })"):
            assert frame[0] <= box[0] and frame[1] <= box[1] and box[2] <= frame[2] and box[3] <= frame[3], box
        header = page.evaluate("document.querySelector('.atlas-header').innerText")
        assert "July 2023" in header and "Counts per claimed unit are not areas of control." in header
        assert "10 events placed (10 in a claimed unit), 19 fatalities" in header
        assert page.evaluate("document.querySelector('output[for=atlas-month]').textContent") == "July 2023"
        legend = page.evaluate("document.querySelector('.atlas-legend').textContent")
        assert "6 events" in legend and "2 events" in legend and eventsymbols.CAVEAT in legend
        attribution = page.evaluate("document.querySelector('.leaflet-control-attribution').textContent")
        assert "Event data: events-acled.csv, from ACLED" in attribution
        page.screenshot(artifacts / f"events-map-{size}.png")


def test_popup_then_the_month_control_switches_circles_and_units(events_server, atlas):
    with open_page(f"{events_server}/map/events?month={MONTH}", SIZES["laptop"]) as page:
        page.click(*page.evaluate(LARGEST_POINT))
        page.wait_until("document.querySelector('.leaflet-popup-content')")
        popup = page.evaluate("document.querySelector('.leaflet-popup-content').innerText")
        assert "Peshawar" in popup and "Events\t6" in popup and "Fatalities\t12" in popup and "July 2023" in popup
        assert page.evaluate("document.querySelector('a[rel=prev]').getAttribute('href')") == "?month=2023-06"
        # the slider writes the month out as it moves, and loads the month it is let go on
        page.evaluate("(() => { const s = document.getElementById('atlas-month'); s.value = 4; "
                      "s.dispatchEvent(new Event('input')); })()")
        assert page.evaluate("document.querySelector('output[for=atlas-month]').textContent") == "September 2023"
        page.evaluate("document.getElementById('atlas-month').dispatchEvent(new Event('change'))")
        page.wait_for_event("Page.loadEventFired")
        page.wait_until("document.readyState === 'complete' && location.search === '?month=2023-09'")
        assert_circles(page, atlas, "2023-09")
        assert page.evaluate("document.querySelector('a[rel=next]')") is None  # the last month
        assert page.failed == [] and page.console_errors == []


def test_refusals_name_the_parameter(events_server, server):
    bad = requests.get(f"{events_server}/map/events", params={"month": "2023-13"}, timeout=60)
    assert bad.status_code == 400 and bad.json()["parameter"] == "month"
    assert "2023-05 to 2023-09" in bad.json()["detail"]
    assert requests.get(f"{server}/map/events", timeout=60).status_code == 404  # no events loaded
    refused = requests.get(f"{server}/export.png", params={"events": "1"}, timeout=60)
    assert refused.status_code == 400 and refused.json()["parameter"] == "events"
    for params in ({"month": MONTH}, {"events": "1", "month": "2030-01"}, {"events": "1", "month": "July"}):
        answer = requests.get(f"{events_server}/export.png", params=params, timeout=60)
        assert answer.status_code == 400 and answer.json()["parameter"] == "month", params


def test_http_export_draws_the_servers_events(events_server):
    answer = requests.get(f"{events_server}/export.png", params={"events": "1", "month": MONTH, "dpi": "50",
                                                                  "size": "A5"}, timeout=120)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(answer.content))
    assert image.info["Title"] == "Events per TTP claimed unit, July 2023"
    pixels = np.asarray(image.convert("RGB"), dtype=float)
    on_paper = np.array(style.hex_to_rgb(eventsymbols.FILL)) * eventsymbols.FILL_OPACITY + 255 * (
        1 - eventsymbols.FILL_OPACITY)  # the legend's circles
    assert (np.linalg.norm(pixels - on_paper, axis=-1) < 12).sum() > 30
