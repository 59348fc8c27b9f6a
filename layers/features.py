"""Feature queries on a loaded build, with no HTTP: filters, paging and pre-serialised feature bytes.

Every feature is serialised to JSON once (``LayerFeatures.blobs``); a page is assembled by joining
those bytes, so answering a query never re-serialises geometry. Bad query values raise
``QueryError`` (a ValueError naming the parameter and what is valid) for the caller to report.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import shapely

from geo import geojson
from layers import catalogue, store, wilayahs

ENUM_MAX = 40  # a queryable with at most this many distinct values is checked against them
PROSE = frozenset({"id", "source", "licence", "attribution", "caveat", "notes"})
DOMAINS = {"zone": tuple(z for z in wilayahs.ZONES if z), "part": wilayahs.PARTS,  # the data contract's
           "confidence": wilayahs.CONFIDENCES, "basis": wilayahs.BASES}  # values, present or not
PLURALS = {"province": "provinces", "division": "divisions", "wilayah": "wilayahs"}  # list members
OPEN = ".."


class QueryError(ValueError):
    """A query value that cannot be answered: names the parameter and what would be valid."""

    def __init__(self, name: str, value, valid: str):
        super().__init__(f"{name} {value!r} is invalid: {valid}")
        self.name, self.value, self.valid = name, value, valid


@dataclass(frozen=True)
class Queryable:
    """A simple property a client may filter on with ``name=value`` (exact match)."""

    name: str  # query parameter
    prop: str | None  # feature property it reads; None for ``period`` (matched by validity, not a property)
    many: bool  # the property is a list: the value must be one of its members
    values: tuple[str, ...] | None  # the valid values when few enough to list, else None
    pattern: str | None = None  # what a value must look like (JSON Schema), when not listed
    note: str = ""  # added to the description

    @property
    def description(self) -> str:
        if self.note:
            return self.note
        if self.prop is None:
            return ("The features valid on the first day of this period (the period start dates of the "
                    "wilayah file): one structure, no overlapping units. A feature valid across several "
                    "periods matches each.")
        return f"Features whose {self.prop} {'includes' if self.many else 'is'} this value (exact match)."


@dataclass(frozen=True)
class Collection:
    """A collection the features API serves: a catalogue layer whole, or one period of a temporal layer
    (the features valid on the period's first day: one structure with no overlapping units, for
    clients that cannot send ``datetime``)."""

    id: str
    layer: catalogue.Layer
    day: str | None = None  # period start, for a period collection
    label: str = ""  # the period's label in the wilayah file
    until: str | None = None  # a period collection's last day (the day before the next period), None while current
    credits: tuple[str, ...] = ()  # attribution lines of data beyond the layer's datasets (the user's events)

    @property
    def title(self) -> str:
        return self.layer.title if self.day is None else f"{self.layer.title}: {self.label}, from {self.day}"

    @property
    def description(self) -> str:
        if self.day is None:
            return self.layer.description
        return (f"The features of {self.layer.id} valid on {self.day}, the first day of the period "
                f"'{self.label}': one structure, no overlapping units. {self.layer.description}")


PERIOD = "period"  # the queryable and collection suffix of one period of a temporal layer


def collections() -> dict[str, Collection]:
    """Every collection by id: the catalogue's layers in order, then one per period of each temporal layer."""
    whole = [Collection(layer.id, layer) for layer in catalogue.LAYERS]
    starts = [p["from"] for p in wilayahs.periods()]
    ends = [(dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat() for day in starts[1:]] + [None]
    timed = [Collection(f"{layer.id}-{p['from']}", layer, p["from"], p["label"], end)
             for layer in catalogue.LAYERS if layer.temporal for p, end in zip(wilayahs.periods(), ends, strict=True)]
    return {c.id: c for c in (*whole, *timed)}


def collection_indices(atlas: store.Atlas, collection: Collection) -> list[int]:
    """Positions in its layer of a collection's features (a period's: those valid on its first day)."""
    features = atlas.features(collection.layer.id)
    if collection.day is None:
        return list(range(len(features)))
    return wilayahs.valid_indices(features, collection.day, collection.day)


def collection_features(atlas: store.Atlas, collection: Collection) -> tuple[list[dict], np.ndarray]:
    """A collection's features (without geometry, see store.Atlas) and their aligned geometries."""
    features, geometries = atlas.features(collection.layer.id), atlas.geometries[collection.layer.id]
    if collection.day is None:
        return features, geometries
    chosen = collection_indices(atlas, collection)
    return [features[i] for i in chosen], np.asarray(geometries, dtype=object)[chosen]


MULTI = (b'{"type":"Polygon","coordinates":', b'{"type":"MultiPolygon","coordinates":[')


def feature_text(feature: dict, geometry: bytes) -> bytes:
    """A feature as GeoJSON bytes from its dict without geometry and its geometry's text, a Polygon
    written as a one-part MultiPolygon (one geometry type per collection; as geojson.as_multi)."""
    if geometry.startswith(MULTI[0]):
        geometry = MULTI[1] + geometry[len(MULTI[0]):-1] + b"]}"
    return geojson.dumps(feature)[:-1] + b',"geometry":' + geometry + b"}"


def layer_metadata(atlas: store.Atlas, layer_id: str, collection: Collection | None = None) -> dict:
    """Title, description, licence and credit lines (and the caveat for claimed units) of a layer,
    or of one of its period collections."""
    collection = collection or Collection(layer_id, catalogue.layer(layer_id))
    entry = collection.layer
    used = [d for k, d in atlas.manifest["datasets"].items() if k in entry.datasets]
    licences = [*(["event data: the terms of its source"] if collection.credits else []), *(d["licence"] for d in used)]
    meta = {"title": collection.title, "description": collection.description,
            "licence": "; ".join(licences),
            "attribution": "; ".join([*collection.credits, *(d["attribution"] for d in used)]),
            "licences": [{"title": d["title"], "licence": d["licence"], "url": d["licence_url"]} for d in used]}
    if entry.claimed:
        meta["caveat"] = catalogue.CAVEAT
    return meta


def _queryables(features: list[dict], temporal: bool) -> dict[str, Queryable]:
    """Scalar string properties and lists of strings (matched by member), prose fields and properties
    null everywhere excepted; ``period`` on temporal layers."""
    found: dict[str, Queryable] = {}
    keys = dict.fromkeys(k for f in features for k in f["properties"])
    for key in keys:
        values = [f["properties"].get(key) for f in features]
        if key in PROSE:
            continue
        many = all(isinstance(v, list) for v in values)
        members = [m for v in values for m in (v if many else [v])]
        if not all(m is None or isinstance(m, str) for m in members):
            continue
        distinct = sorted({m for m in members if m is not None} | set(DOMAINS.get(key, ())))
        if not distinct:  # null everywhere: nothing to filter on
            continue
        name = next((single for single, plural in PLURALS.items() if plural == key and single not in keys), key)
        found[name] = Queryable(name, key, many, tuple(distinct) if len(distinct) <= ENUM_MAX else None)
    if temporal:
        found[PERIOD] = Queryable(PERIOD, None, False, tuple(p["from"] for p in wilayahs.periods()))
    return found


TEMPORAL_ROLES = {"valid_from": "primary-interval-start", "valid_to": "primary-interval-end",
                  "date": "primary-instant"}
JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"


def queryables_schema(lf: LayerFeatures, url: str) -> dict:
    """OGC API - Features Part 3 queryables: a JSON Schema (2020-12) of the properties a client may
    filter on with ``name=value``, dates marked with their OGC temporal roles, and the geometry."""
    kind = "point" if len(lf.geometries) and lf.geometries[0].geom_type == "Point" else "multipolygon"
    properties = {"geometry": {"x-ogc-role": "primary-geometry", "format": f"geometry-{kind}",
                               "description": "Filtered with bbox (CRS84)."}}
    for q in lf.queryables.values():
        schema = {"title": q.name, "description": q.description, "type": "string"}
        if q.values is not None:
            schema["enum"] = list(q.values)
        if q.pattern is not None:
            schema["pattern"] = q.pattern
        if q.prop in TEMPORAL_ROLES:
            schema.update(format="date", **{"x-ogc-role": TEMPORAL_ROLES[q.prop]})
        elif q.prop is None:  # the period: its first day
            schema["format"] = "date"
        properties[q.name] = schema
    return {"$schema": JSON_SCHEMA, "$id": url, "type": "object", "title": lf.title,
            "description": f"The properties of {lf.title} a client may filter on: ?name=value (exact match).",
            "properties": properties, "additionalProperties": False}


def temporal_properties(lf: LayerFeatures) -> dict:
    """The dates that bound each feature's validity, with their OGC roles (empty for untimed layers)."""
    if not lf.layer.temporal:
        return {}
    return {prop: {"type": "string", "format": "date", "x-ogc-role": role}
            for prop, role in TEMPORAL_ROLES.items()}


class LayerFeatures:
    """One collection's features ready to answer queries: ids, JSON bytes, a spatial index, queryables."""

    def __init__(self, collection: Collection, features: list[dict], geometries: np.ndarray, bbox: list[float],
                 geometry_texts: list[bytes] = ()):
        self.collection, self.id, self.title = collection, collection.id, collection.title
        self.layer = collection.layer
        self.features, self.geometries = features, geometries
        self.ids = [str(f["id"]) for f in self.features]
        self.position = {fid: i for i, fid in enumerate(self.ids)}
        self.queryables = _queryables(self.features, self.layer.temporal and collection.day is None)
        self.bbox = bbox
        self.blobs = self.serialised(geometry_texts)

    def serialised(self, geometry_texts: list[bytes]) -> list[bytes]:
        """Every feature as GeoJSON bytes, once at start (shared by forked workers), its geometry the text
        the build wrote (store.Atlas.geometry_texts): no coordinate list is made."""
        return [feature_text(f, g) for f, g in zip(self.features, geometry_texts, strict=True)]

    @classmethod
    def of(cls, atlas: store.Atlas, collection: Collection, geometry_texts: list[bytes] | None = None) -> LayerFeatures:
        """A collection of the catalogue (a layer, or one period of a timed layer); ``geometry_texts``: its
        layer's (read from the build when not given)."""
        features, geometries = collection_features(atlas, collection)
        bbox = atlas.manifest["layers"][collection.layer.id]["bbox"] if collection.day is None \
            else geojson.bbox(geometries)
        texts = atlas.geometry_texts(collection.layer.id) if geometry_texts is None else geometry_texts
        return cls(collection, features, geometries, bbox, [texts[i] for i in collection_indices(atlas, collection)])

    def blob(self, index: int) -> bytes:
        """One feature as GeoJSON bytes."""
        return self.blobs[index]

    @cached_property
    def tree(self) -> shapely.STRtree:
        return shapely.STRtree(self.geometries)

    @property
    def interval(self) -> list[str | None] | None:
        """The temporal extent [first valid_from, last valid_to or None while current], if timed; a period
        collection's is its period's (its features may be valid longer)."""
        if not self.layer.temporal:
            return None
        if self.collection.day is not None:
            return [self.collection.day, self.collection.until]
        starts = [f["properties"]["valid_from"] for f in self.features]
        ends = [f["properties"].get("valid_to") for f in self.features]
        return [min(starts), None if None in ends else max(ends)]

    def select(self, bbox=None, period: tuple[str | None, str | None] | None = None,
               filters: dict[str, str] | None = None) -> np.ndarray:
        """Indices (in layer order) of the features matching every given filter."""
        chosen = np.arange(len(self.features))
        if bbox is not None:
            chosen = np.unique(self.tree.query(shapely.box(*bbox), predicate="intersects"))
        if period is not None:
            chosen = np.intersect1d(chosen, self.valid(*period)).astype(int)
        for name, value in (filters or {}).items():
            chosen = np.array([i for i in chosen if self._matches(self.queryables[name], i, value)], dtype=int)
        return chosen

    def valid(self, start: str | None, end: str | None) -> list[int]:
        """Positions of the features valid at some day of [start, end] (None: open)."""
        return wilayahs.valid_indices(self.features, start, end)

    def _matches(self, queryable: Queryable, index: int, value: str) -> bool:
        props = self.features[index]["properties"]
        if queryable.prop is None:
            return wilayahs.valid_during(props, value, value)
        found = props.get(queryable.prop)
        return value in found if queryable.many else found == value

    def check_filters(self, filters: dict[str, str]) -> None:
        """Refuse values outside a listed queryable's values (a typo would silently match nothing)."""
        for name, value in filters.items():
            values = self.queryables[name].values
            if values is not None and value not in values:
                raise QueryError(name, value, "one of " + ", ".join(values))

    def page(self, chosen: np.ndarray, offset: int, limit: int) -> bytes:
        """The JSON array text of one page of the chosen features, joined from pre-serialised bytes."""
        return b"[" + b",".join(self.blob(i) for i in chosen[offset:offset + limit]) + b"]"


# --- datetime (RFC 3339 instant or interval) -------------------------------------------------

# A date, optionally with a full time; a bare trailing "T" is a date too (GDAL 3.6's OAPIF driver sends
# "2023-08-01T" for a -where on a date field).
INSTANT = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))|[Tt])?")
# The same as a JSON Schema pattern (for the OpenAPI document): an instant, or an interval of two.
DATETIME_PATTERN = rf"^{INSTANT.pattern}$|^({INSTANT.pattern}|\.\.)?/({INSTANT.pattern}|\.\.)?$"
DATETIME_VALID = ("an RFC 3339 date-time or date (2023-07-01T00:00:00Z, 2023-07-01), or an interval "
                  "start/end where either end may be '..' or empty (2023-01-01/2023-06-30, ../2023-06-30)")


INSTANT_PATTERN = rf"^{INSTANT.pattern}$"  # one instant, no interval (maps and exports show one date)
INSTANT_VALID = "an ISO date or RFC 3339 date-time, e.g. 2023-07-01 or 2023-07-01T00:00:00Z"
FIRST_DAY, LAST_DAY = dt.date.min.isoformat(), dt.date.max.isoformat()  # instants beyond clamp to these
_CYCLE = 146097  # days in 400 Gregorian years: shifts year 0 into the range Python's date can hold


def _utc_day(year: int, month: int, day: int, seconds: int) -> str:
    """The UTC calendar day ``seconds`` after midnight local time of a date, clamped to years 1-9999.

    Counted in day numbers rather than ``datetime``: RFC 3339 allows year 0000 and offsets that
    carry 9999-12-31 past the year 9999, neither of which ``datetime`` can hold."""
    shift = 1 if year == 0 else 0
    ordinal = dt.date(year + 400 * shift, month, day).toordinal() - _CYCLE * shift + seconds // 86400
    return dt.date.fromordinal(min(max(ordinal, 1), dt.date.max.toordinal())).isoformat()


def _day(text: str, raw: str, valid: str = DATETIME_VALID) -> str | None:
    """The UTC calendar day of an instant (validity is kept in days), None for an open end."""
    if text in (OPEN, ""):
        return None
    found = INSTANT.fullmatch(text)
    if not found:
        raise QueryError("datetime", raw, valid)
    year, month, day, hour, minute, second, zone, sign, zone_h, zone_m = found.groups()
    clock = [int(v) for v in (hour or 0, minute or 0, second or 0, zone_h or 0, zone_m or 0)]
    if clock[0] > 23 or clock[1] > 59 or clock[2] > 60 or clock[3] > 23 or clock[4] > 59:
        raise QueryError("datetime", raw, valid)
    offset = (clock[3] * 3600 + clock[4] * 60) * (-1 if sign == "-" else 1)
    try:
        return _utc_day(int(year), int(month), int(day), clock[0] * 3600 + clock[1] * 60 + clock[2] - offset)
    except ValueError:  # no such day in the calendar (2023-02-30)
        raise QueryError("datetime", raw, valid) from None


def parse_instant(raw: str) -> str:
    """One RFC 3339 instant as its UTC day, for views of a single date (maps, exports); QueryError otherwise."""
    day = _day(raw, raw, INSTANT_VALID) if "/" not in raw else None
    if day is None:
        raise QueryError("datetime", raw, INSTANT_VALID)
    return day


def parse_datetime(raw: str | None) -> tuple[str | None, str | None] | None:
    """``datetime`` as a closed day interval (start, end), either end None when open."""
    if raw is None:
        return None
    parts = raw.split("/")
    if len(parts) > 2 or (len(parts) == 1 and parts[0] in (OPEN, "")):
        raise QueryError("datetime", raw, DATETIME_VALID)
    start, end = _day(parts[0], raw), _day(parts[-1], raw)
    start, end = (None if start == FIRST_DAY else start), (None if end == LAST_DAY else end)  # 0000, 9999: open
    if start is not None and end is not None and start > end:
        raise QueryError("datetime", raw, "the interval's start must not be after its end")
    return start, end


def rfc3339(day: str | None, end: bool = False) -> str | None:
    """A day as an RFC 3339 instant: its first second, or its last when it ends an interval."""
    return None if day is None else f"{day}T23:59:59Z" if end else f"{day}T00:00:00Z"
