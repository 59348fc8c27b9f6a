"""Web map pages (``/map``, ``/map/{layer}``, ``/map/events``), the Leaflet files they load, and ``ttp-atlas map``.

Pages are built by ``layers.webmap`` and kept per (date, layers, embed, basemap, base URL) in the
process; the Leaflet files are served from their registry package and the base layer is the service's
own raster tiles, so a page needs no internet.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import Blueprint, current_app

from geo import atomic
from geo.cache import ByteCache, budget_from_env
from layers import catalogue, eventsymbols, store, webmap
from layers import overlay as overlays
from server import openapi as oas
from server.app import overlay
from server.http import bad_parameter, base_url, etag_of, not_found, params, respond

blueprint = Blueprint("maps", __name__)

VENDOR_PATH = "/static/vendor"
TILES_PATH = "/tiles"  # server.tiles: the base layer is the service's own raster tiles
PAGE_CACHE_ENV = "TTP_ATLAS_MAP_CACHE_MB"
FLAGS = {"1": True, "true": True, "0": False, "false": False}


def _page_cache():
    """The app's page cache: (body, ETag) per view and base URL, rendered on first request."""
    cache = current_app.extensions.get("maps.pages")
    if cache is None:
        atlas = current_app.extensions["atlas"]
        pages = ByteCache(budget_from_env(PAGE_CACHE_ENV, 32), size=lambda page: len(page[0]))

        def render(view: webmap.View, asset_base: str) -> tuple[bytes, str]:
            body = webmap.page_html(atlas, view, asset_base, overlay() if view.month else None).encode()
            return body, etag_of(body)

        def cache(view: webmap.View, asset_base: str) -> tuple[bytes, str]:
            return pages.get_or_make((view, asset_base), lambda: render(view, asset_base))

        current_app.extensions["maps.pages"] = cache
    return cache


def embed_flag(args: dict) -> bool:
    embed = args.get("embed", "0")
    if embed not in FLAGS:
        raise bad_parameter("embed", embed, "1 or 0 (true or false)")
    return FLAGS[embed]


def view_from_request(layer_ids: tuple[str, ...]) -> webmap.View:
    """The view a request asks for; 400 naming ``datetime``, ``embed`` or ``ids`` when their value is bad."""
    args = params(("datetime", "embed", "ids"))
    raw_date = args.get("datetime", dt.date.today().isoformat())
    try:
        as_of = webmap.check_date(raw_date)
    except webmap.MapError:
        raise bad_parameter("datetime", raw_date, "one ISO date (YYYY-MM-DD) or RFC 3339 date-time") from None
    ids = tuple(dict.fromkeys(i for i in args.get("ids", "").split(",") if i))
    view = webmap.View(as_of, layer_ids, embed=embed_flag(args), basemap_url=current_app.config.get("BASEMAP_URL", ""),
                       tiles_base=base_url() + TILES_PATH, ids=ids)
    if "ids" in args:
        try:
            if not ids:
                raise webmap.MapError("no id given")
            webmap.check_view(current_app.extensions["atlas"], view)
        except webmap.MapError as error:
            raise bad_parameter("ids", args["ids"], f"comma-separated feature ids of the layer of /map/{{layer}} "
                                                    f"({error})") from None
    return view


def _map_page(layer_ids: tuple[str, ...]):
    body, etag = _page_cache()(view_from_request(layer_ids), base_url() + VENDOR_PATH)
    return respond(body, "text/html", etag=etag)


@blueprint.get("/map")
def map_page():
    return _map_page(catalogue.LAYER_IDS)


@blueprint.get("/map/events")
def events_map_page():
    """Every layer and the events overlay's circles of one month (default: its last), with a month control."""
    events = overlay()
    if events is None:
        raise not_found("/map/events (no events are loaded: start the server with `ttp-atlas serve --events FILE`)")
    args = params(("month", "embed"))
    try:
        month = overlays.check_month(events, args.get("month"))
    except ValueError as error:
        raise bad_parameter("month", args.get("month", ""), str(error)) from None
    view = webmap.View(overlays.month_days(month)[1], embed=embed_flag(args), month=month,
                       basemap_url=current_app.config.get("BASEMAP_URL", ""), tiles_base=base_url() + TILES_PATH)
    body, etag = _page_cache()(view, base_url() + VENDOR_PATH)
    return respond(body, "text/html", etag=etag)


@blueprint.get("/map/<layer_id>")
def layer_map_page(layer_id: str):
    if layer_id not in catalogue.LAYER_IDS:
        raise not_found(f"layer {layer_id!r}", catalogue.LAYER_IDS)
    return _map_page((layer_id,))


@blueprint.get(f"{VENDOR_PATH}/<path:asset>")
def vendor_asset(asset: str):
    params(())
    try:
        path = webmap.vendor_file(asset)
    except webmap.MapError:
        raise not_found(f"asset {asset!r}") from None
    return respond(path.read_bytes(), webmap.asset_mimetype(path.name))


# --- OpenAPI -----------------------------------------------------------------------------------

def _vendor_paths() -> dict:
    """One path per folder of assets (a path parameter holds no slash), its files listed."""
    folders: dict[str, list[str]] = {}
    for asset in webmap.vendor_files():
        folder, _, name = asset.rpartition("/")
        folders.setdefault(folder, []).append(name)
    return {f"{VENDOR_PATH}/{folder}/{{file}}": oas.operation(
        f"A file of {folder} (the map pages load Leaflet from here, not from a CDN)", "Map",
        [oas.param("file", "path", {"type": "string", "enum": names}, "A file of the folder.")],
        oas.content({"type": "string", "format": "binary"}, *sorted({webmap.asset_mimetype(n) for n in names})),
        op_id=f"getVendor-{folder.replace('/', '-')}") for folder, names in folders.items()}


def openapi(ctx: oas.ApiContext) -> dict:
    parameters = [
        oas.query("datetime", {"type": "string", "pattern": webmap.DATE_PATTERN},
                  "The day whose claimed structure is shown: an ISO date or RFC 3339 date-time (its date is "
                  "used); default: today.", example="2023-07-01"),
        oas.query("embed", {"type": "string", "enum": list(FLAGS), "default": "0"},
                  "1 or true: for an iframe: a one-line title, date and caveat, a compact legend, no date links.")]
    ids = oas.query("ids", {"type": "string", "pattern": "^[^,]+(,[^,]+)*$"},
                    f"Comma-separated feature ids (at most {webmap.MAX_IDS}): a preview of just these features, "
                    "whatever their dates, fitted to them.", example="zhob-2023-06-14-core")
    page = oas.content({"type": "string"}, oas.HTML)
    layer_id = oas.param("layerId", "path", {"type": "string", "enum": list(catalogue.LAYER_IDS)},
                         "A layer of the catalogue.")
    note = "An HTML page (Leaflet, served here: no request leaves the service). " + catalogue.CAVEAT
    return {"paths": {
        "/map": oas.operation("Web map of every layer", "Map", parameters, page, note, op_id="getMap"),
        "/map/{layerId}": oas.operation("Web map of one layer", "Map", [layer_id, *parameters, ids], page, note,
                                        op_id="getLayerMap"),
        "/map/events": oas.operation(
            "Web map of the events overlay: circles per claimed unit for one month", "Map",
            [oas.query("month", {"type": "string", "pattern": overlays.MONTH_PATTERN},
                       "A month of the events (YYYY-MM); default: their last month.", example="2023-07"),
             parameters[1]], page,
            "Every layer with the units valid on the month's last day, and one circle per claimed unit (area "
            "proportional to its events that month), a month control, legend, popups and credits. 404 when the "
            "server runs without events (`ttp-atlas serve --events FILE`). " + eventsymbols.CAVEAT,
            op_id="getEventsMap"),
        **_vendor_paths()}}


# --- command line ------------------------------------------------------------------------------

def cmd_map(args) -> None:
    from server.cli import UsageError

    try:
        as_of = webmap.check_date(args.datetime)
    except webmap.MapError as error:
        raise UsageError(f"--datetime: {error}") from None
    if args.out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--out {args.out}: give an .html file name")
    atlas = store.ensure_build(args.build, args.data)
    view = webmap.View(as_of, tuple(args.layer or catalogue.LAYER_IDS), date_links=False)
    atomic.write_bytes(args.out, webmap.page_html(atlas, view, None).encode())
    print(f"wrote {args.out}: map as of {as_of}, layers {', '.join(view.layer_ids)} (opens offline)")


def add_commands(subparsers, common) -> None:
    """``ttp-atlas map --out FILE.html``: one self-contained HTML file."""
    cmd = subparsers.add_parser("map", parents=[common], help="write the web map as one self-contained HTML file",
                                description="Write the web map as one HTML file that opens from disk "
                                            "with no network (Leaflet inlined).")
    cmd.add_argument("--out", type=Path, required=True, help="HTML file to write (atomically)")
    cmd.add_argument("--datetime", default=dt.date.today().isoformat(),
                     help="date of the claimed structure to show (ISO date; default: today)")
    cmd.add_argument("--layer", action="append", choices=catalogue.LAYER_IDS,
                     help="a layer to show (repeat for several; default: every layer)")
    cmd.set_defaults(run=cmd_map)
