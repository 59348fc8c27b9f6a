"""Events on maps: one proportional circle per claimed unit and month, for the web map and the exports.

An events overlay (``layers.overlay``) counts the user's events per wilayah feature and month. Each count
is drawn as a circle at its unit's label anchor (``layers.labels.unit_labels``), its area proportional to
the events, scaled to the largest count of any month so that circles compare across months. The look is
here, next to the model (``layers.style`` holds the atlas's own layers): Okabe & Ito's yellow, the palette's
lightest colour, in an ink rim, reads over every zone fill (blue, vermillion, grey) and over land, under
every colour-vision deficiency, and is no place marker (white or ink). Plain data in and out.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass

from layers import labels, style

FILL = "#f0e442"  # Okabe-Ito yellow (layers.style.PALETTE)
FILL_OPACITY = 0.8
STROKE = style.INK
STROKE_WIDTH = 1.2  # px
MAX_RADIUS_PX = 24.0  # the circle of the largest count over every month
MIN_RADIUS_PX = 2.5  # a single event among hundreds stays visible
CAVEAT = ("Counts per claimed unit are not areas of control: an event is counted in the claimed unit whose "
          "drawn extent (a union of districts, made by the map-maker) held its place on the event's day; "
          "it implies no TTP presence or responsibility.")


@dataclass(frozen=True)
class EventSymbol:
    """One circle: the unit feature counted, where it is drawn, and what it counts."""

    unit_id: str  # the wilayahs feature id
    text: str  # the unit's label, e.g. "Zhob (possible extension)"
    zone: str | None
    lon: float
    lat: float
    events: int
    fatalities: int
    radius_px: float


def radius_px(events: int, largest: int) -> float:
    """A circle's radius in CSS px: area proportional to ``events``, ``MAX_RADIUS_PX`` for ``largest``."""
    return max(MIN_RADIUS_PX, MAX_RADIUS_PX * math.sqrt(events / max(largest, 1)))


def largest_count(overlay) -> int:
    """The most events of one unit in one month: the scale every month's circles share."""
    return max((f["properties"]["events"] for f in overlay.counts["wilayahs"]), default=0)


def month_title(month: str) -> str:
    """"July 2023" for "2023-07"."""
    return f"{calendar.month_name[int(month[5:7])]} {month[:4]}"


def symbols(atlas, overlay, month: str) -> list[EventSymbol]:
    """The circles of ``month``, largest first (drawn first, so smaller ones stay on top). A unit that
    ended within the month is drawn at its own anchor, as on a day it was valid."""
    largest = largest_count(overlay)
    counts = [f["properties"] for f in overlay.counts["wilayahs"] if f["properties"]["month"] == month]
    first = f"{month}-01"
    units = {f["id"]: f["properties"] for f in atlas.collections["wilayahs"]["features"]}
    days = {uid: max(first, units[uid]["valid_from"]) for uid in {c["unit_id"] for c in counts}}
    anchors = {label.feature_id: label for day in sorted(set(days.values()))
               for label in labels.unit_labels(atlas, "wilayahs", day) if days.get(label.feature_id) == day}
    found = [EventSymbol(c["unit_id"], anchors[c["unit_id"]].text, units[c["unit_id"]].get("zone"),
                         anchors[c["unit_id"]].lon, anchors[c["unit_id"]].lat, c["events"], c["fatalities"],
                         radius_px(c["events"], largest)) for c in counts]
    return sorted(found, key=lambda s: (-s.events, s.unit_id))


def month_totals(overlay, month: str) -> tuple[int, int, int]:
    """(events placed in the month, of them in a claimed unit, their fatalities)."""
    placed = [e["properties"] for e in overlay.events
              if e["properties"]["month"] == month and e["properties"]["flag"] is None]
    return (len(placed), sum(1 for p in placed if p.get("wilayah")),
            sum(p.get("fatalities") or 0 for p in placed))


def counted(n: int, one: str, many: str) -> str:
    """"1 event", "2 events"."""
    return f"{n} {one if n == 1 else many}"


def totals_text(overlay, month: str) -> str:
    """The month's totals as maps state them: "10 events placed (9 in a claimed unit), 19 fatalities"."""
    placed, in_units, fatalities = month_totals(overlay, month)
    return (f"{counted(placed, 'event', 'events')} placed ({in_units} in a claimed unit), "
            f"{counted(fatalities, 'fatality', 'fatalities')}")


def legend_counts(largest: int) -> list[int]:
    """Event counts for the legend's circles: the largest, then round numbers near a quarter and a
    sixteenth of it (areas 1, 1/4, 1/16), each shown once."""
    found = [largest]
    for share in (4, 16):
        value = largest / share
        if value >= 1:
            step = 10 ** math.floor(math.log10(value))
            found.append(max(1, round(value / step) * step))
    return sorted(set(found), reverse=True)
