"""Print-ready static maps: ``/export.{png,svg,pdf}`` and ``ttp-atlas export`` (one map, or a series).

Both faces take the same options with the same defaults and hand them to ``layers.export``; a bad
value is a 400 problem document (HTTP) or a one-line error with exit 2 (CLI), naming the value. Events
are drawn from the server's overlay (``events=1&month=``) or, on the command line, from ``--events FILE``,
which also writes the events report (monthly table per unit and chart, ``layers.events.report``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from flask import Blueprint, current_app

from geo.cache import ByteCache, budget_from_env, number_from_env
from layers import catalogue, eventsymbols, export, lookup, store
from layers import events as event_files
from layers import overlay as overlays
from server import openapi as oas
from server.app import overlay
from server.http import (
    RETRY_AFTER_SECONDS,
    Problem,
    bad_parameter,
    not_found,
    params,
    release_free_memory,
    respond,
)

blueprint = Blueprint("exports", __name__)

OPTIONS = ("layers", "datetime", "bbox", "focus", "size", "orientation", "dpi", "title", "subtitle")
FLAGS = {"1": True, "true": True, "0": False, "false": False}
EACH = {"wilayah": "wilayahs", "province": "provinces", "division": "divisions", "district": "districts"}


def filename(options: export.Options, fmt: str) -> str:
    return f"ttp-atlas-{options.date}.{fmt}"


EXPORT_CACHE_ENV = "TTP_ATLAS_EXPORT_CACHE_MB"
RENDERS_ENV, WAIT_ENV = "TTP_ATLAS_EXPORT_RENDERS", "TTP_ATLAS_EXPORT_WAIT"
# Rendered maps by (build, options, format): a report that embeds the same URL twice is drawn once.
_EXPORTS = ByteCache(budget_from_env(EXPORT_CACHE_ENV, 128))
# A render holds its whole raster (A3 at 600 dpi: about 300 MB) until it is encoded: per worker, at most
# this many at once; a request that cannot start one within the wait gets a 503 with Retry-After.
_RENDERS = threading.BoundedSemaphore(max(1, number_from_env(RENDERS_ENV, 1, "a whole number of renders, 1 or more")))
RENDER_WAIT_SECONDS = number_from_env(WAIT_ENV, 30, "a whole number of seconds")


def event_strings(events: overlays.Overlay | None, strings: dict) -> dict:
    """The option strings of a map with its ``month`` of the ``events`` checked: default the month of
    ``datetime``, else their last; ``datetime`` defaults to the month's last day and must fall in it. A
    month without events is refused."""
    strings = dict(strings)
    month = strings.pop("month", None) or None
    if events is None:
        if month is not None:
            raise export.ExportOptionError("month", month, "a month of the events: ask for them too (events=1, "
                                                           "--events FILE)")
        return strings
    day = export.parse_date(strings.get("datetime"), None)
    try:
        found = overlays.check_month(events, month or (day[:7] if day else None))
    except ValueError as error:
        raise export.ExportOptionError("month" if month or not day else "datetime", month or strings["datetime"],
                                       str(error)) from None
    if day and day[:7] != found:
        raise export.ExportOptionError("datetime", strings["datetime"],
                                       f"a day of the events month {found}, or none (its last day)")
    return {**strings, "month": found, "datetime": strings.get("datetime") or overlays.month_days(found)[1]}


def _render(atlas: store.Atlas, options: export.Options, fmt: str) -> bytes:
    """One map, drawn when a renderer is free within the wait (with the server's events of ``options.month``)."""
    if not _RENDERS.acquire(timeout=RENDER_WAIT_SECONDS):
        raise Problem(503, "Busy", f"every map renderer is busy; retry in {RETRY_AFTER_SECONDS} s",
                      headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    try:
        return export.export(atlas, options, fmt, overlay() if options.month else None)
    finally:
        _RENDERS.release()
        release_free_memory()


@blueprint.get("/export.<fmt>")
def export_map(fmt: str):
    if fmt not in export.FORMATS:
        raise not_found(f"/export.{fmt}", [f"/export.{f}" for f in export.FORMATS])
    args = params((*OPTIONS, "events", "month"))
    atlas = current_app.extensions["atlas"]
    wanted = args.pop("events", "0")
    if wanted not in FLAGS:
        raise bad_parameter("events", wanted, "1 or 0 (true or false)")
    if FLAGS[wanted] and overlay() is None:
        raise bad_parameter("events", wanted, "no events are loaded on this server (ttp-atlas serve --events FILE)")
    try:
        options = export.parse_options(atlas, **event_strings(overlay() if FLAGS[wanted] else None, args))
    except export.ExportOptionError as error:
        raise bad_parameter(error.option, error.value, error.valid) from None
    body = _EXPORTS.get_or_make((atlas.build_id, options, fmt), lambda: _render(atlas, options, fmt))
    return respond(body, export.FORMATS[fmt],
                   headers={"Content-Disposition": f'inline; filename="{filename(options, fmt)}"'})


# --- OpenAPI -------------------------------------------------------------------------------------

def _parameters() -> list[dict]:
    text = {"type": "string", "maxLength": export.MAX_TEXT}
    return [
        oas.query("layers", {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(catalogue.LAYER_IDS)}},
                  f"Layers to draw, comma-separated (default: {','.join(export.DEFAULT_LAYERS)}); countries are "
                  "always drawn underneath.", style="form", explode=False),
        oas.query("datetime", {"type": "string"}, "As-of date of the claimed structure: an ISO date or date-time "
                  "(its date is used); default: the newest structure.", example="2023-07-01"),
        oas.query("bbox", {"type": "array", "minItems": 4, "maxItems": 4,
                           "items": {"type": "number", "minimum": -180, "maximum": 180}},
                  f"minx,miny,maxx,maxy in lon/lat (min < max, latitudes within -90..90), at most "
                  f"{export.MAX_BBOX_DEGREES:g} degrees across and overlapping Pakistan; not with focus.",
                  style="form", explode=False),
        oas.query("focus", {"type": "string"}, "A wilayah, province, division or district name to frame; not with "
                  "bbox.", example="Peshawar"),
        oas.query("size", {"type": "string"}, f"Paper size (default {export.DEFAULT_SIZE}): "
                  f"{export.paper.valid_sizes()}; the PNG may have at most {export.MAX_PIXELS:,} pixels.",
                  example="A4"),
        oas.query("orientation", {"type": "string", "enum": list(export.paper.ORIENTATIONS)},
                  "Default: landscape for named sizes, the sides as written for WxHmm."),
        oas.query("dpi", {"type": "integer", "minimum": export.MIN_DPI, "maximum": export.MAX_DPI,
                          "default": export.DEFAULT_DPI}, "Resolution."),
        oas.query("title", text, "Map title, one line of printable characters (default: the main layer's title)."),
        oas.query("subtitle", text, "Subtitle, one line of printable characters (default: place and as-of date)."),
        oas.query("events", {"type": "string", "enum": list(FLAGS), "default": "0"},
                  "1 or true: draw the server's events (ttp-atlas serve --events FILE) as circles per claimed unit "
                  "for one month, with legend and credits; 400 when the server has none. " + eventsymbols.CAVEAT),
        oas.query("month", {"type": "string", "pattern": overlays.MONTH_PATTERN},
                  "With events=1: the month shown (default: the month of datetime, else the events' last); the "
                  "units are those of datetime, default the month's last day.", example="2023-07")]


def openapi(ctx: oas.ApiContext) -> dict:
    """``/export.png``, ``/export.svg`` and ``/export.pdf``: the same options, one path each."""
    paths = {}
    for fmt, mimetype in export.FORMATS.items():
        path = oas.operation(
            f"A print-ready map as {fmt.upper()}: legend, scale bar, north arrow, locator, credits, caveat",
            "Export", _parameters(), oas.content({"type": "string", "format": "binary"}, mimetype),
            "The same options and defaults as `ttp-atlas export`. " + catalogue.CAVEAT, op_id=f"export-{fmt}")
        path["get"]["responses"]["200"]["headers"] = {"Content-Disposition": {
            "description": "inline, with a file name ttp-atlas-DATE.FORMAT", "schema": {"type": "string"}}}
        paths[f"/export.{fmt}"] = path
    return {"paths": paths}


# --- CLI -------------------------------------------------------------------------------------------

def dates(values: list[str] | None) -> list[str | None]:
    """``--datetime`` given any number of times, each possibly a comma list; [None] means the default."""
    found = [part.strip() for value in values or [] for part in value.split(",") if part.strip()]
    return found or [None]


def common_options(args) -> dict:
    """The option strings every map of one command shares (all but the date)."""
    return {name: getattr(args, name) for name in OPTIONS if name != "datetime"}


def report_folder(args) -> Path:
    """Where ``--events`` writes its report (joined rows, monthly table per unit, chart): beside the map,
    named after it, or inside the output folder."""
    out = Path(args.out)
    return out.parent / f"{out.stem}-events" if out.suffix else out / "events"


def load_events(atlas, args) -> tuple[overlays.Overlay | None, lookup.Locator | None]:
    """The overlay of ``--events`` (None without it), and the locator that placed its rows."""
    if args.events is None:
        return None, None
    locator = lookup.Locator(atlas)
    try:
        events = overlays.load(atlas, args.events, locator)
    except event_files.EventFileError as error:
        raise export.ExportOptionError("events", str(args.events), str(error)) from None
    if not events.months:  # nothing to draw: say so of the file, not of a month never asked for
        raise export.ExportOptionError("events", str(args.events), "a file with at least one event placed by its "
                                                                    "date and place (this one has none)")
    return events, locator


def name_pattern(args, series: list) -> str:
    """Output path with ``{key}`` (the unit) and ``{date}`` slots, or the single file as given.

    A batch writes into ``--out`` when it is a folder, or beside it, named after it, when it is a file.
    """
    out = Path(args.out)
    if args.each is None and len(series) == 1:
        export.output_format(out)
        return str(out)
    if args.each is not None and (args.bbox or args.focus):
        raise export.ExportOptionError("each", args.each, "one map per unit sets the view: drop --bbox/--focus")
    folder, fmt, prefix = (out.parent, export.output_format(out), out.stem + "-") if out.suffix \
        else (out, args.format, "" if args.each else "ttp-atlas-")
    slots = "-".join(slot for slot, wanted in (("{key}", args.each), ("{date}", len(series) > 1)) if wanted)
    return str(folder / f"{prefix}{slots}.{fmt}")


def jobs(atlas, args, series: list, pattern: str) -> list[tuple[dict, Path]]:
    """(option strings, output path) of every map the command asks for: per date, and per unit with --each."""
    found = []
    for date in series:
        options = {**common_options(args), "datetime": date, "month": args.month}
        if args.each is None:
            found.append((options, Path(pattern.format(date=date))))
            continue
        layer_id = EACH[args.each]
        for key in export.units(atlas, layer_id, export.parse_date(date, export.latest_date(atlas))):
            found.append(({**options, "focus": key, "focus_layers": (layer_id,)},
                          Path(pattern.format(key=key, date=date))))
    return found


def writable(path: Path) -> bool:
    """Whether ``path`` could be created: its nearest existing ancestor is a folder we may write in."""
    folder = Path(path).absolute().parent
    while not folder.exists():
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK)


def cmd_export(args) -> None:
    from server.cli import UsageError

    series = dates(args.datetime)
    try:  # everything that needs no build is checked before loading one
        export.check_plain(**common_options(args))
        for date in series:
            export.parse_date(date, None)
        pattern = name_pattern(args, series)
        if not writable(Path(pattern)):
            raise UsageError(f"--out {str(args.out)!r} cannot be written: no folder we may write in")
        atlas = store.ensure_build(args.build, args.data)
        events, locator = load_events(atlas, args)
        planned = [(export.parse_options(atlas, **event_strings(events, options)), path)
                   for options, path in jobs(atlas, args, series, pattern)]
    except export.ExportOptionError as error:
        raise UsageError(f"--{error}") from None
    for options, path in planned:
        try:
            size = export.write(atlas, options, path, events)
        except OSError as error:
            raise UsageError(f"--out {str(path)!r} cannot be written: {error.strerror or error}") from None
        width, height = options.size_mm
        month = f", events of {options.month}" if options.month else ""
        print(f"wrote {path} ({width:g}x{height:g} mm, {options.dpi} dpi{month}, {size / 1024:.0f} KiB)")
    if events is not None:
        folder = report_folder(args)
        try:
            try:
                event_files.report(locator, Path(args.events), folder)
            except event_files.EncodingError:  # read as the overlay was: UTF-8, else Latin-1 (GTD's exports)
                event_files.report(locator, Path(args.events), folder, encoding="latin-1")
        except event_files.EventFileError as error:
            raise UsageError(str(error)) from None
        print(f"wrote {folder}: joined.csv, monthly.csv (events and fatalities per zone, wilayah and district "
              f"per month), chart.png, chart.svg")


def add_commands(subparsers, common) -> None:
    """``ttp-atlas export``: here ``--out`` is the map file (or folder); the build folder is ``--build``."""
    command = subparsers.add_parser(
        "export", parents=[common], help="write print-ready maps (PNG, SVG, PDF)",
        description="Write a finished map (title, legend, scale bar, north arrow, locator, credits) as PNG, "
                    "SVG or PDF; the format comes from the --out extension.")
    command.add_argument("--out", required=True, type=Path,
                         help="map file (.png, .svg, .pdf); with --each or several dates, a folder (or a "
                              "file name that each map's name is derived from)")
    command.add_argument("--layers", help=f"comma-separated layer ids (default: {','.join(export.DEFAULT_LAYERS)})")
    command.add_argument("--datetime", action="append",
                         help="as-of date (default: the newest claimed structure); repeat or comma-separate "
                              "for one map per date")
    command.add_argument("--bbox", help="minx,miny,maxx,maxy in lon/lat (default: all of Pakistan)")
    command.add_argument("--focus", help="a wilayah, province, division or district name to frame")
    command.add_argument("--size", help=f"paper size (default {export.DEFAULT_SIZE}): "
                                        f"{', '.join(export.paper.PAPER_SIZES_MM)} or WxHmm")
    command.add_argument("--orientation", help="landscape (default for named sizes) or portrait")
    command.add_argument("--dpi", help=f"resolution (default {export.DEFAULT_DPI}, "
                                       f"{export.MIN_DPI}..{export.MAX_DPI})")
    command.add_argument("--title", help="map title (default: the main layer's title)")
    command.add_argument("--subtitle", help="subtitle (default: place and as-of date)")
    command.add_argument("--each", choices=sorted(EACH), help="one map per unit of this kind, framed on it")
    command.add_argument("--events", type=Path, help="an event file (ACLED, UCDP GED, GTD or plain CSV): draw its "
                         "events per claimed unit for one month, and write its report beside the map "
                         "(monthly table per unit, chart)")
    command.add_argument("--month", help="with --events: the month to draw, YYYY-MM (default: the month of "
                                         "--datetime, else the events' last)")
    command.add_argument("--format", choices=sorted(export.FORMATS), default="pdf",
                         help="format when --out is a folder (default: pdf)")
    command.set_defaults(run=cmd_export)

