"""The user's event file as layers of the atlas: its events as points, and their counts per unit and month.

``load`` runs the event-file join (``layers.events``: the same layouts, placement and flags as
``ttp-atlas join``) once, keeping the rows in memory instead of writing them: each row with coordinates
becomes a point feature, and each placed row counts, in the month of its day, in the district it fell in
and in every claimed unit (wilayah feature) valid on that day. Count features borrow the unit's geometry
from the atlas (the same object: no copy). The server loads the file named by ``EVENTS_ENV`` at start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from layers import events, lookup, store, style

EVENTS_ENV = "TTP_ATLAS_EVENTS"  # path of the user's event file (ACLED, UCDP GED, GTD or plain CSV)
COUNT_LAYERS = ("wilayahs", "districts")
JOIN_KEYS = {"province": "province", "division": "division", "district": "district", "tehsil": "tehsil",
             "tribal_district": "tribal_district", "wilayah": "wilayah", "wilayah_part": "wilayah_part",
             "zone": "zone", "confidence": "wilayah_confidence"}  # event property -> join column


@dataclass(frozen=True)
class Overlay:
    source: str  # the file's name (not its path)
    credits: tuple[str, ...]  # attribution lines for the event data (events.Summary.credits)
    months: tuple[str, ...]  # every "YYYY-MM" from the first to the last placed event, gaps included
    events: list[dict]  # GeoJSON Point features, one per row with coordinates (placed or flagged)
    counts: dict[str, list[dict]]  # "wilayahs" and "districts" -> one feature per (unit feature, month)


def event_feature(stream: events.Stream, joined: events.Joined) -> dict:
    """A row with coordinates (its own, or its place name's) as a GeoJSON point; ``flag`` says why a row
    counts nowhere (None when placed). ``date`` is its day (None for a range of days); ``month`` the month
    it counts in (None when its days span months)."""
    row, values = joined.row, dict(zip(events.COLUMNS, joined.values, strict=True))
    layout = stream.layout
    properties = {"id": f"line-{row.line}", "line": row.line,
                  "date": row.start if row.start and row.start == row.end else None,
                  "month": events.month_of(row.start, row.end),
                  "fatalities": events.number(stream.cell(joined, layout.fatalities)),
                  "actor": stream.cell(joined, layout.actor) or None,
                  **{key: values[column] or None for key, column in JOIN_KEYS.items()},
                  "flag": None if joined.placed else values["placement"]}
    return {"type": "Feature", "id": properties["id"],
            "geometry": {"type": "Point", "coordinates": [round(row.point[0], 6), round(row.point[1], 6)]},
            "properties": properties}


def count_feature(layer_id: str, unit: dict, month: str, tally: list[int]) -> dict:
    """One unit feature's events and fatalities in one month, drawn with the unit's own geometry."""
    props = unit["properties"]
    properties = {"id": f"{unit['id']}/{month}", "unit_id": unit["id"], "name": props["name"]}
    if layer_id == "wilayahs":
        properties.update(part=props["part"], zone=props["zone"], label=style.label_text(props))
    properties.update(month=month, events=tally[0], fatalities=tally[1])
    return {"type": "Feature", "id": properties["id"], "geometry": unit["geometry"], "properties": properties}


def build(atlas: store.Atlas, stream: events.Stream) -> Overlay:
    """Consume the joined rows of ``stream`` into an Overlay."""
    points: list[dict] = []
    tallies: dict[str, dict[tuple[int, str], list[int]]] = {layer_id: {} for layer_id in COUNT_LAYERS}
    for joined in stream.rows:
        if joined.row.point is None:
            continue
        feature = event_feature(stream, joined)
        points.append(feature)
        month = feature["properties"]["month"]
        if not joined.placed or month is None:
            continue
        for layer_id, positions in (("districts", [joined.district] if joined.district >= 0 else []),
                                    ("wilayahs", joined.units)):
            for position in positions:
                tally = tallies[layer_id].setdefault((position, month), [0, 0])
                tally[0] += 1
                tally[1] += feature["properties"]["fatalities"]
    counts = {layer_id: [count_feature(layer_id, atlas.collections[layer_id]["features"][position], month, tally)
                         for (position, month), tally in sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
              for layer_id, found in tallies.items()}
    seen = sorted({key[1] for found in tallies.values() for key in found})
    months = tuple(events.months_between(seen[0], seen[-1])) if seen else ()
    return Overlay(stream.summary.source, tuple(stream.summary.credits), months, points, counts)


def load(atlas: store.Atlas, path: str | Path, locator: lookup.Locator | None = None) -> Overlay:
    """The overlay of the event file at ``path`` (UTF-8, else Latin-1 as GTD's CSV exports are); raises
    events.EventFileError (a ValueError naming the file and what is valid) when it is no event file."""
    path, locator = Path(path), locator or lookup.Locator(atlas)

    def read(encoding: str) -> Overlay:
        with events.reading(path, encoding) as reader:
            return build(atlas, events.stream(locator, reader, path))

    try:
        return read("utf-8-sig")
    except events.EncodingError:
        return read("latin-1")  # decodes any bytes


def from_environment(atlas: store.Atlas, environ: Mapping[str, str] | None = None,
                     locator: lookup.Locator | None = None) -> Overlay | None:
    """The overlay of the file named by ``EVENTS_ENV``; None when it is unset or empty."""
    path = (os.environ if environ is None else environ).get(EVENTS_ENV, "")
    return load(atlas, path, locator) if path else None
