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
    prop: str  # feature property it reads
    many: bool  # the property is a list: the value must be one of its members
    values: tuple[str, ...] | None  # the valid values when few enough to list, else None


def layer_metadata(atlas: store.Atlas, layer_id: str) -> dict:
    """Title, description, licence and credit lines (and the caveat for claimed units) of a layer."""
    entry = catalogue.layer(layer_id)
    used = [d for k, d in atlas.manifest["datasets"].items() if k in entry.datasets]
    meta = {"title": entry.title, "description": entry.description,
            "licence": "; ".join(d["licence"] for d in used),
            "attribution": "; ".join(d["attribution"] for d in used),
            "licences": [{"title": d["title"], "licence": d["licence"], "url": d["licence_url"]} for d in used]}
    if entry.claimed:
        meta["caveat"] = catalogue.CAVEAT
    return meta


def _queryables(features: list[dict]) -> dict[str, Queryable]:
    """Scalar string properties and lists of strings (matched by member), prose fields excepted."""
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
        name = next((single for single, plural in PLURALS.items() if plural == key and single not in keys), key)
        found[name] = Queryable(name, key, many, tuple(distinct) if len(distinct) <= ENUM_MAX else None)
    return found


class LayerFeatures:
    """One layer's features ready to answer queries: ids, JSON bytes, a spatial index, queryables."""

    def __init__(self, atlas: store.Atlas, layer_id: str):
        self.layer = catalogue.layer(layer_id)
        self.features = atlas.features(layer_id)
        self.geometries = atlas.geometries[layer_id]
        self.ids = [str(f["id"]) for f in self.features]
        self.position = {fid: i for i, fid in enumerate(self.ids)}
        self.blobs = [geojson.dumps(f) for f in self.features]
        self.queryables = _queryables(self.features)
        self.bbox = atlas.manifest["layers"][layer_id]["bbox"]

    @cached_property
    def tree(self) -> shapely.STRtree:
        return shapely.STRtree(self.geometries)

    @property
    def interval(self) -> list[str | None] | None:
        """The temporal extent [first valid_from, last valid_to or None while current], if timed."""
        if not self.layer.temporal:
            return None
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
            chosen = np.intersect1d(chosen, wilayahs.valid_indices(self.features, *period)).astype(int)
        for name, value in (filters or {}).items():
            chosen = np.array([i for i in chosen if self._matches(self.queryables[name], i, value)], dtype=int)
        return chosen

    def _matches(self, queryable: Queryable, index: int, value: str) -> bool:
        found = self.features[index]["properties"].get(queryable.prop)
        return value in found if queryable.many else found == value

    def check_filters(self, filters: dict[str, str]) -> None:
        """Refuse values outside a listed queryable's values (a typo would silently match nothing)."""
        for name, value in filters.items():
            values = self.queryables[name].values
            if values is not None and value not in values:
                raise QueryError(name, value, "one of " + ", ".join(values))

    def page(self, chosen: np.ndarray, offset: int, limit: int) -> bytes:
        """The JSON array text of one page of the chosen features, joined from pre-serialised bytes."""
        return b"[" + b",".join(self.blobs[i] for i in chosen[offset:offset + limit]) + b"]"


# --- datetime (RFC 3339 instant or interval) -------------------------------------------------

INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2}))?")
# The same as a JSON Schema pattern (for the OpenAPI document): an instant, or an interval of two.
DATETIME_PATTERN = rf"^{INSTANT.pattern}$|^({INSTANT.pattern}|\.\.)?/({INSTANT.pattern}|\.\.)?$"
DATETIME_VALID = ("an RFC 3339 date-time or date (2023-07-01T00:00:00Z, 2023-07-01), or an interval "
                  "start/end where either end may be '..' (2023-01-01/2023-06-30, ../2023-06-30)")


INSTANT_PATTERN = rf"^{INSTANT.pattern}$"  # one instant, no interval (maps and exports show one date)
INSTANT_VALID = "an ISO date or RFC 3339 date-time, e.g. 2023-07-01 or 2023-07-01T00:00:00Z"


def _day(text: str, raw: str, valid: str = DATETIME_VALID) -> str | None:
    """The UTC calendar day of an instant (validity is kept in days), None for an open end."""
    if text in (OPEN, ""):
        return None
    if not INSTANT.fullmatch(text):
        raise QueryError("datetime", raw, valid)
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text).isoformat()
        moment = dt.datetime.fromisoformat(text.upper().replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise QueryError("datetime", raw, valid) from None
    return moment.astimezone(dt.timezone.utc).date().isoformat()


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
    if start is not None and end is not None and start > end:
        raise QueryError("datetime", raw, "the interval's start must not be after its end")
    return start, end


def rfc3339(day: str | None, end: bool = False) -> str | None:
    """A day as an RFC 3339 instant: its first second, or its last when it ends an interval."""
    return None if day is None else f"{day}T23:59:59Z" if end else f"{day}T00:00:00Z"
