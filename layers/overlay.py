"""The user's event file as layers of the atlas: its events as points, and their counts per unit and month.

``load`` runs the event-file join (``layers.events``: the same layouts, placement and flags as
``ttp-atlas join``) once, keeping the rows in memory instead of writing them: each row with coordinates
becomes a point feature, and each placed row counts, in the month of its day, in the district it fell in
and in every claimed unit (wilayah feature) valid on that day. Count features borrow the unit's geometry
from the atlas (the same object: no copy). The server loads the file named by ``EVENTS_ENV`` at start.
"""

from __future__ import annotations

import calendar
import datetime as dt
import gc
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import shapely

from geo import geojson
from layers import catalogue, events, lookup, store
from layers.features import DOMAINS, Collection, LayerFeatures, QueryError, Queryable

EVENTS_ENV = "TTP_ATLAS_EVENTS"  # path of the user's event file (ACLED, UCDP GED, GTD or plain CSV)
COUNT_LAYERS = ("wilayahs", "districts")
COUNTS_PREFIX = "event-counts-"  # + the unit layer: the collection of counts per unit and month
MONTH = "month"  # the month filter of the overlay's collections, YYYY-MM
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
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


def month_days(month: str) -> tuple[str, str]:
    """The first and last day of ``YYYY-MM`` as ISO dates."""
    year, number = int(month[:4]), int(month[5:7])
    return f"{month}-01", f"{month}-{calendar.monthrange(year, number)[1]:02d}"


def check_month(overlay, text: str | None) -> str:
    """``text`` if it is one of ``overlay.months`` (None: the last); ValueError saying which are (an empty
    month is none of them)."""
    months = overlay.months
    if text is None and months:
        return months[-1]
    if not (text and re.fullmatch(MONTH_PATTERN, text, re.ASCII) and text in months):
        raise ValueError(f"a month YYYY-MM of the event file's placed events, from {months[0]} to {months[-1]}"
                         if months else "none: no event of the file could be placed")
    return text


def collections(overlay: Overlay) -> dict[str, list[dict]]:
    """The overlay's features by collection id (``catalogue.EVENT_LAYERS``)."""
    return {"events": overlay.events, **{COUNTS_PREFIX + layer_id: overlay.counts[layer_id]
                                         for layer_id in COUNT_LAYERS}}


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


def count_feature(layer_id: str, unit: dict, geometry: dict, month: str, tally: list[int]) -> dict:
    """One unit feature's events and fatalities in one month, drawn with the unit's own geometry (one
    dict per unit, shared by its months)."""
    props = unit["properties"]
    properties = {"id": f"{unit['id']}/{month}", "unit_id": unit["id"], "name": props["name"]}
    if layer_id == "wilayahs":
        properties.update(part=props["part"], zone=props["zone"], label=props["label"])
    properties.update(month=month, events=tally[0], fatalities=tally[1])
    return {"type": "Feature", "id": properties["id"], "geometry": geometry, "properties": properties}


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
    shapes = {(layer_id, position): atlas.geojson_geometry(layer_id, position)
              for layer_id, found in tallies.items() for position, _ in found}
    counts = {layer_id: [count_feature(layer_id, atlas.collections[layer_id]["features"][position],
                                       shapes[layer_id, position], month, tally)
                         for (position, month), tally in sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
              for layer_id, found in tallies.items()}
    seen = sorted({key[1] for found in tallies.values() for key in found})
    months = tuple(events.months_between(seen[0], seen[-1])) if seen else ()
    return Overlay(stream.summary.source, tuple(stream.summary.credits), months, points, counts)


class OverlayFeatures(LayerFeatures):
    """A collection of the events overlay (``layers.overlay``). Serialised on demand, not at start (the
    counts share their units' geometry: each unit's is serialised once); ``month`` is checked against the
    overlay's months, and ``datetime`` matches an event's day, or a count's month."""

    def __init__(self, collection: Collection, features: list[dict], geometries: np.ndarray, bbox: list[float],
                 months: tuple[str, ...]):
        self.months = months
        shared = {id(f["geometry"]): f["geometry"] for f in features if f["geometry"]["type"] != "Point"}
        self.shapes = {key: geojson.dumps(geojson.as_multi({"geometry": shape})["geometry"])
                       for key, shape in shared.items()}
        super().__init__(collection, features, geometries, bbox)
        # The file's values are not the valid ones (a unit or district with no events is still one: 0
        # features, not a 400): only the data contract's domains stay listed.
        self.queryables = {name: q if q.prop in DOMAINS else replace(q, values=None)
                           for name, q in self.queryables.items()}
        span = f"from {months[0]} to {months[-1]}" if months else "none: no event of the file could be placed"
        self.queryables.pop("date", None)  # any day may be asked for, not only those with events
        if features and "date" in features[0]["properties"]:
            self.queryables["date"] = Queryable("date", "date", False, None, DATE_PATTERN,
                                                "The events of this day (YYYY-MM-DD; datetime takes intervals).")
        self.queryables[MONTH] = Queryable(MONTH, MONTH, False, None, MONTH_PATTERN,
                                           f"The features of this month (YYYY-MM): the months of the file's "
                                           f"placed events, {span}.")
        days = [self._days(f["properties"]) for f in features]
        self.days = (np.array([d[0] for d in days], dtype="U10"), np.array([d[1] for d in days], dtype="U10"))

    @staticmethod
    def _days(properties: dict) -> tuple[str, str]:
        """The first and last day a feature stands for: an event's day, a count's month ("" when none)."""
        if "date" in properties:
            return (properties["date"] or "",) * 2
        return month_days(properties[MONTH])

    def serialised(self, geometry_texts: list[bytes]) -> list[bytes]:
        return []  # on demand: see blob

    def blob(self, index: int) -> bytes:
        feature = self.features[index]
        shape = self.shapes.get(id(feature["geometry"]))
        if shape is None:
            return geojson.dumps(feature)
        return (b'{"type":"Feature","id":' + geojson.dumps(feature["id"]) + b',"geometry":' + shape
                + b',"properties":' + geojson.dumps(feature["properties"]) + b"}")

    @property
    def interval(self) -> list[str | None] | None:
        first, last = ([str(day) for day in days if day] for days in self.days)
        return [min(first), max(last)] if first else None

    def valid(self, start: str | None, end: str | None) -> list[int]:
        first, last = self.days
        dated = first != ""
        if end is not None:
            dated &= first <= end
        if start is not None:
            dated &= last >= start
        return np.flatnonzero(dated).tolist()

    def check_filters(self, filters: dict[str, str]) -> None:
        month, day = filters.get(MONTH), filters.get("date")
        if month is not None:
            try:
                check_month(self, month)
            except ValueError as error:
                raise QueryError(MONTH, month, str(error)) from None
        if day is not None and not _calendar_day(day):
            raise QueryError("date", day, "a day YYYY-MM-DD of the calendar (datetime takes intervals)")
        super().check_filters({k: v for k, v in filters.items() if k not in (MONTH, "date")})


def _calendar_day(text: str) -> bool:
    """Whether ``text`` is YYYY-MM-DD and such a day exists (not 2023-02-30)."""
    if not re.fullmatch(DATE_PATTERN, text, re.ASCII):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def overlay_features(atlas: store.Atlas, overlay: Overlay) -> dict[str, OverlayFeatures]:
    """The overlay's collections (``catalogue.EVENT_LAYERS``) by id, with the event data's credits."""
    found = {}
    parts = collections(overlay)
    for layer in catalogue.EVENT_LAYERS:
        features = parts[layer.id]
        unit_layer = layer.id.removeprefix(COUNTS_PREFIX)
        if unit_layer == layer.id:  # the events: points
            geometries = shapely.points(np.array([f["geometry"]["coordinates"] for f in features],
                                                 dtype=float).reshape(-1, 2))
        else:
            position = {f["id"]: i for i, f in enumerate(atlas.features(unit_layer))}
            geometries = np.asarray(atlas.geometries[unit_layer], dtype=object)[
                [position[f["properties"]["unit_id"]] for f in features]]
        bbox = geojson.bbox(geometries) if len(features) else list(atlas.pakistan_bounds())
        found[layer.id] = OverlayFeatures(Collection(layer.id, layer, credits=overlay.credits), features,
                                          geometries, bbox, overlay.months)
    return found


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cycle collector off while the overlay's many objects are made: they are long-lived and hold no
    cycles, so each collection would only walk them again (half the load time of a large file)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load(atlas: store.Atlas, path: str | Path, locator: lookup.Locator | None = None) -> Overlay:
    """The overlay of the event file at ``path`` (UTF-8, else Latin-1 as GTD's CSV exports are); raises
    events.EventFileError (a ValueError naming the file and what is valid) when it is no event file."""
    path, locator = Path(path), locator or lookup.Locator(atlas)

    def read(encoding: str) -> Overlay:
        with events.reading(path, encoding) as reader, _collector_paused():
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
