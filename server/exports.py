"""Print-ready static maps: ``/export.{png,svg,pdf}`` and ``ttp-atlas export`` (one map, or a series).

Both faces take the same options with the same defaults and hand them to ``layers.export``; a bad
value is a 400 problem document (HTTP) or a one-line error with exit 2 (CLI), naming the value.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from flask import Blueprint, current_app

from geo.cache import ByteCache, budget_from_env, number_from_env
from layers import catalogue, export, store
from server import openapi as oas
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


def _render(atlas: store.Atlas, options: export.Options, fmt: str) -> bytes:
    if not _RENDERS.acquire(timeout=RENDER_WAIT_SECONDS):
        raise Problem(503, "Busy", f"every map renderer is busy; retry in {RETRY_AFTER_SECONDS} s",
                      headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    try:
        return export.export(atlas, options, fmt)
    finally:
        _RENDERS.release()
        release_free_memory()


@blueprint.get("/export.<fmt>")
def export_map(fmt: str):
    if fmt not in export.FORMATS:
        raise not_found(f"/export.{fmt}", [f"/export.{f}" for f in export.FORMATS])
    args = params(OPTIONS)
    atlas = current_app.extensions["atlas"]
    try:
        options = export.parse_options(atlas, **args)
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
        oas.query("subtitle", text, "Subtitle, one line of printable characters (default: place and as-of date).")]


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
        options = {**common_options(args), "datetime": date}
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
        planned = [(export.parse_options(atlas, **options), path) for options, path in jobs(atlas, args, series, pattern)]
    except export.ExportOptionError as error:
        raise UsageError(f"--{error}") from None
    for options, path in planned:
        try:
            size = export.write(atlas, options, path)
        except OSError as error:
            raise UsageError(f"--out {str(path)!r} cannot be written: {error.strerror or error}") from None
        width, height = options.size_mm
        print(f"wrote {path} ({width:g}x{height:g} mm, {options.dpi} dpi, {size / 1024:.0f} KiB)")


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
    command.add_argument("--format", choices=sorted(export.FORMATS), default="pdf",
                         help="format when --out is a folder (default: pdf)")
    command.set_defaults(run=cmd_export)

