"""Place lookup (``/lookup``, ``ttp-atlas lookup``) and the event-file join (``ttp-atlas join``).

The lookup says which civil units, and which claimed units on a given day, contain a point or a
named place; the join adds the same answer, per row and per row's own date, to an event file.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import sys
from pathlib import Path

from flask import Blueprint, current_app

from layers import events, lookup, store
from layers.features import INSTANT_PATTERN, QueryError
from server import openapi as oas
from server.cli import UsageError
from server.http import GEOJSON, Problem, bad_parameter, json_response, params

blueprint = Blueprint("lookup", __name__)
FORMATS = {"json": oas.JSON, "geojson": GEOJSON}
ENCODING_HELP = "the event file's text encoding (default: UTF-8; GTD's CSV exports: latin-1)"


@blueprint.record_once
def _warm(state) -> None:
    """The app's one locator, made ready before the workers fork (so they share it)."""
    state.app.extensions["lookup"].warm()


def place_problem(error: lookup.PlaceError) -> Problem:
    if error.reason == "ambiguous":
        return Problem(400, "Ambiguous place", str(error), parameter="q", candidates=error.candidates)
    return bad_parameter("q", error.name, f"{error.reason} place name; closest valid names: "
                                         f"{', '.join(error.suggestions) or 'none'}")


@blueprint.get("/lookup")
def lookup_endpoint():
    args = params(("lon", "lat", "q", "datetime", "f"))
    fmt = args.get("f", "json")
    if fmt not in FORMATS:
        raise bad_parameter("f", fmt, f"one of {', '.join(FORMATS)}")
    locator = current_app.extensions["lookup"]
    try:
        answer = lookup.answer(locator, dt.date.today().isoformat(), args.get("lon"), args.get("lat"),
                               args.get("q"), args.get("datetime"))
    except QueryError as error:
        if error.value is None:
            raise Problem(400, "Missing parameter", f"parameter {error.name} is missing: {error.valid}",
                          parameter=error.name, valid=error.valid) from None
        raise bad_parameter(error.name, error.value, error.valid) from None
    except lookup.PlaceError as error:
        raise place_problem(error) from None
    if fmt == "geojson":
        return json_response(lookup.lookup_geojson(locator, answer), GEOJSON)
    return json_response(answer)


# --- OpenAPI -------------------------------------------------------------------------------------

def openapi(ctx: oas.ApiContext) -> dict:
    unit = {"type": "object", "nullable": True, "required": ["id", "name", "layer"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string", "nullable": True}, "layer": {"type": "string"}}}
    wilayah = {"type": "object", "required": ["id", "unit", "name", "part", "confidence"], "properties": {
        "id": {"type": "string"}, "unit": {"type": "string"}, "name": {"type": "string"},
        "label": {"type": "string", "description": "What the maps show, e.g. 'Zhob (possible extension)'"},
        "zone": {"type": "string", "nullable": True}, "part": {"type": "string", "enum": ["core", "extension"]},
        "status": {"type": "string", "description": "'claimed', or 'unknown since <date>' for a continuation"},
        "confidence": {"type": "string", "enum": ["high", "medium", "low"]}, "basis": {"type": "string"},
        "valid_from": {"type": "string", "format": "date"},
        "valid_to": {"type": "string", "format": "date", "nullable": True},
        "sources": {"type": "array", "items": {"type": "object"}}}}
    answer = {"type": "object", "required": ["datetime", "lon", "lat", *lookup.CIVIL, "wilayahs", "zone", "caveat",
                                             "credits"], "properties": {
        "datetime": {"type": "string", "format": "date"}, "lon": {"type": "number"}, "lat": {"type": "number"},
        "place": {"type": "object"}, "country": {"type": "string", "nullable": True},
        **{key: unit for key in lookup.CIVIL}, "wilayahs": {"type": "array", "items": wilayah},
        "zone": {"type": "string", "nullable": True}, "note": {"type": "string"}, "caveat": {"type": "string"},
        "credits": {"type": "array", "items": {"type": "string"}}}}
    number = {"type": "string", "pattern": r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"}
    parameters = [
        oas.query("lon", number, "Longitude (WGS 84, -180 to 180), with lat; or give q.", example="71.5785"),
        oas.query("lat", number, "Latitude (WGS 84, -90 to 90), with lon; or give q.", example="34.008"),
        oas.query("q", {"type": "string", "minLength": 1},
                  "A district (any name the gazetteer knows) or a town (GeoNames); 'Alipur, Muzaffargarh' "
                  "picks among towns of one name by district, division or province.", example="Bannu"),
        oas.query("datetime", {"type": "string", "pattern": INSTANT_PATTERN},
                  "The day: an ISO date or RFC 3339 date-time (default: today).", example="2023-07-01"),
        oas.query("f", {"type": "string", "enum": list(FORMATS)},
                  "json (default), or geojson: the point and the outlines of its units."),
    ]
    collection = {"type": "object", "required": ["type", "features"], "properties": {
        "type": {"type": "string", "enum": ["FeatureCollection"]},
        "features": {"type": "array", "items": oas.ref("schemas", "Feature")}}}
    return {"paths": {"/lookup": oas.operation(
        "Which units contain a place on a day", "Lookup", parameters,
        {**oas.content(answer, oas.JSON), **oas.content(collection, GEOJSON)},
        description="The province, division, district, tehsil and tribal district containing a point or a "
                    "named place, and the claimed units (wilayahs, with part, confidence and sources) and "
                    "zone valid on that day. A point outside Pakistan or a day before the first period is "
                    "answered with no units and a note. An ambiguous name is a 400 listing its candidates. "
                    + lookup.GEONAMES_CREDIT + " when a town name was used.",
        op_id="lookup")}}


# --- CLI -----------------------------------------------------------------------------------------

def cmd_lookup(args) -> None:
    locator = lookup.Locator(store.ensure_build(args.build, args.data))
    try:
        answer = lookup.answer(locator, dt.date.today().isoformat(), args.lon, args.lat, args.place, args.datetime)
    except QueryError as error:
        if error.value is None:
            raise UsageError(f"--{error.name} is missing: {error.valid}") from None
        raise UsageError(f"--{error.name} {error.value!r} is invalid: {error.valid}") from None
    except lookup.PlaceError as error:
        raise UsageError(str(error)) from None
    document = lookup.lookup_geojson(locator, answer) if args.geojson else answer
    json.dump(document, sys.stdout, ensure_ascii=False, indent=1)
    print()


def _run_events(args, action, wrote: str) -> None:
    """Join ``args.events`` with ``action`` (events.join or events.report), the flagged rows on stderr."""
    locator = lookup.Locator(store.ensure_build(args.build, args.data))
    gc.freeze()  # the loaded atlas stays out of the collections that the join's many small objects set off
    try:
        summary = action(locator, args.events, args.out, encoding=args.encoding)
    except events.EventFileError as error:
        raise UsageError(str(error)) from None
    for line in summary.report(args.events):
        print(line, file=sys.stderr)
    print(wrote.format(rows=summary.rows, out=args.out))


def cmd_join(args) -> None:
    _run_events(args, events.join, "wrote {rows} rows to {out}")


def cmd_events_report(args) -> None:
    _run_events(args, events.report, "wrote joined.csv ({rows} rows), monthly.csv, chart.png and chart.svg to {out}")


def add_commands(subparsers, common) -> None:
    cmd = subparsers.add_parser("lookup", parents=[common], help="which units contain a place on a day (JSON)",
                                description="Print, as JSON, the civil units containing a place and the "
                                            "claimed units valid there on a day.")
    cmd.add_argument("place", nargs="?", help="a district or town name, e.g. Bannu or 'Alipur, Muzaffargarh'")
    cmd.add_argument("--lon", help="longitude (WGS 84), with --lat, instead of a name")
    cmd.add_argument("--lat", help="latitude (WGS 84), with --lon")
    cmd.add_argument("--datetime", help="the day: ISO date or RFC 3339 date-time (default: today)")
    cmd.add_argument("--geojson", action="store_true", help="a GeoJSON FeatureCollection: the point and its units")
    cmd.set_defaults(run=cmd_lookup)
    join = subparsers.add_parser(
        "join", parents=[common], help="add the units valid on each event's day to an event file (CSV)",
        description="Add " + ", ".join(events.COLUMNS) + " to every row of an ACLED, UCDP GED, GTD or plain "
                    "date,lon,lat CSV file (detected from its header). Rows that cannot be placed are kept, "
                    "flagged in placement and reported by line on stderr.")
    join.add_argument("events", type=Path, help="the event file (CSV)")
    join.add_argument("--out", type=Path, required=True, help="CSV file to write (atomically)")
    join.add_argument("--encoding", default="utf-8-sig", help=ENCODING_HELP)
    join.set_defaults(run=cmd_join)
    report = subparsers.add_parser(
        "events-report", parents=[common], help="join an event file and write monthly counts per unit and a chart",
        description="Join an event file (as ttp-atlas join) and write, into a folder, joined.csv, monthly.csv "
                    "(events and fatalities per zone, wilayah and district and month) and chart.png/chart.svg.")
    report.add_argument("events", type=Path, help="the event file (CSV)")
    report.add_argument("--out", type=Path, required=True, help="folder to write (replaced whole, atomically)")
    report.add_argument("--encoding", default="utf-8-sig", help=ENCODING_HELP)
    report.set_defaults(run=cmd_events_report)
