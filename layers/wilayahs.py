"""Read and check the human-edited wilayah file, and select its features by date.

The file is data, not code (``layers/wilayahs.yaml``); this module turns it into plain dicts and
fails with the file and line of any bad entry, so that an editor can fix it without reading Python.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

WILAYAHS_FILE = Path(__file__).with_name("wilayahs.yaml")
ZONES = ("north", "south", None)
PARTS = ("core", "extension")
CONFIDENCES = ("high", "medium", "low")
BASES = ("civil-division", "named-districts", "inferred")
CLAIMED = "claimed"  # the status of every unit as reported
UNKNOWN_SINCE = "unknown since "  # + ISO date: a continuation that a later report leaves unnamed
REQUIRED = ("unit", "name", "zone", "part", "valid_from", "valid_to", "confidence", "basis",
            "districts", "sources", "notes")


class WilayahDataError(ValueError):
    """A bad entry in the wilayah file; the message starts with ``file:line``."""


@dataclass(frozen=True)
class Located:
    """A value from the file with the line it was written on (for error messages)."""

    value: str
    line: int


def _line_of(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _district_lines(root: yaml.MappingNode) -> list[list[Located]]:
    """For each unit, its district names with their line numbers."""
    units = next(value for key, value in root.value if key.value == "units")
    located = []
    for unit in units.value:
        districts = next((value for key, value in unit.value if key.value == "districts"), None)
        names = [] if districts is None or not isinstance(districts, yaml.SequenceNode) else [
            Located(str(item.value), _line_of(item)) for item in districts.value]
        located.append(names)
    return located


def _iso(value, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise WilayahDataError(f"{where}: {value!r} is not an ISO date (YYYY-MM-DD)") from None


def _check_choice(value, valid: tuple, field: str, where: str) -> None:
    if value not in valid:
        shown = ", ".join("null" if v is None else v for v in valid)
        raise WilayahDataError(f"{where}: {field} {value!r} is not one of {shown}")


def _status(value, where: str) -> str:
    """``claimed`` when omitted; otherwise "unknown since <ISO date>", the date checked."""
    if value is None:
        return CLAIMED
    text = str(value)
    if not text.startswith(UNKNOWN_SINCE):
        raise WilayahDataError(f"{where}: status {text!r} is not \"{UNKNOWN_SINCE}<YYYY-MM-DD>\" (or omitted)")
    return UNKNOWN_SINCE + _iso(text.removeprefix(UNKNOWN_SINCE), f"{where}: status")


def load(path: Path = WILAYAHS_FILE) -> dict:
    """The checked wilayah file: ``units`` (with ``district_refs``), ``sources``, ``periods``, rules."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as error:
        raise WilayahDataError(f"{path}: not valid YAML: {error}") from None
    for key in ("units", "sources", "periods", "confidence_rules"):
        if key not in (data or {}):
            raise WilayahDataError(f"{path}: missing top-level key {key!r}")
    units_node = next(value for key, value in root.value if key.value == "units")
    district_lines = _district_lines(root)
    sources = {key: {**entry, "date": _iso(entry.get("date"), f"{path}: source {key}")}
               for key, entry in data["sources"].items()}
    units, seen_ids = [], set()
    for index, (unit, node) in enumerate(zip(data["units"], units_node.value, strict=True)):
        where = f"{path}:{_line_of(node)}"
        missing = [field for field in REQUIRED if field not in unit]
        if missing:
            raise WilayahDataError(f"{where}: unit is missing {', '.join(missing)}")
        _check_choice(unit["zone"], ZONES, "zone", where)
        _check_choice(unit["part"], PARTS, "part", where)
        _check_choice(unit["confidence"], CONFIDENCES, "confidence", where)
        _check_choice(unit["basis"], BASES, "basis", where)
        valid_from = _iso(unit["valid_from"], where)
        valid_to = _iso(unit["valid_to"], where)
        if valid_to is not None and valid_to < valid_from:
            raise WilayahDataError(f"{where}: valid_to {valid_to} is before valid_from {valid_from}")
        unknown = [key for key in unit["sources"] if key not in sources]
        if unknown:
            raise WilayahDataError(f"{where}: unknown source {unknown[0]!r}; known: {', '.join(sources)}")
        feature_id = f"{unit['unit']}-{valid_from}-{unit['part']}"
        if feature_id in seen_ids:
            raise WilayahDataError(f"{where}: a second {unit['part']} of {unit['unit']} from {valid_from}")
        seen_ids.add(feature_id)
        units.append({**unit, "id": feature_id, "valid_from": valid_from, "valid_to": valid_to,
                      "status": _status(unit.get("status"), where),
                      "district_refs": district_lines[index], "sources": [sources[k] for k in unit["sources"]]})
    periods = [{"from": _iso(p["from"], f"{path}: periods"), "label": p["label"],
                "confirmed": p.get("confirmed", True) is not False} for p in data["periods"]]
    return {"units": units, "sources": sources, "periods": periods,
            "confidence_rules": data["confidence_rules"], "path": str(path)}


@lru_cache(maxsize=1)
def periods() -> tuple[dict, ...]:
    """The reported structures of the wilayah file, oldest first: ``{"from", "label", "confirmed"}``."""
    return tuple(load()["periods"])


def period_at(day: str) -> dict | None:
    """The reported structure in force on ``day`` (the last one starting on or before it); None before the first."""
    started = [p for p in periods() if p["from"] <= day]
    return started[-1] if started else None


def valid_during(properties: dict, start: str | None, end: str | None) -> bool:
    """Whether a feature's validity overlaps the closed interval [start, end] (ISO dates, None = open).

    Features with no dates (civil layers) are always valid, as in OGC API - Features.
    """
    valid_from, valid_to = properties.get("valid_from"), properties.get("valid_to")
    if valid_from is None and valid_to is None:
        return True
    if end is not None and valid_from is not None and valid_from > end:
        return False
    return not (start is not None and valid_to is not None and valid_to < start)


def valid_indices(features: list[dict], start: str | None, end: str | None) -> list[int]:
    """Positions of the features valid during [start, end] (None: open), to index aligned geometry."""
    return [i for i, f in enumerate(features) if valid_during(f["properties"], start, end)]


def select(features: list[dict], start: str | None, end: str | None = None) -> list[dict]:
    """The features valid at a date (``end`` omitted) or during an interval; ``None`` leaves it open.

    ``select(wilayahs, "2023-03-01")`` is the 9-unit structure; ``"2023-07-01"`` the 12-unit one.
    """
    end = start if end is None and start is not None else end
    return [features[i] for i in valid_indices(features, start, end)]
