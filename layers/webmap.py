"""The web map: the atlas's layers drawn with folium (Leaflet), working with no internet.

folium loads Leaflet, jQuery, Bootstrap and marker fonts from public CDNs; this map needs only Leaflet,
taken from the ``xstatic-leaflet`` package (the version folium expects) and either linked from the
service (``asset_base``) or inlined (a self-contained file). Colours, hatches and legend classes come
from ``layers.style``, label positions and the zoom each label shows from ``layers.labels``, across
unit labels and place names (``layers.places``: capitals from the first view, cities closer in);
geometry is simplified for a Pakistan-wide view (``atlas.generalised``). The page fits its bounds in
the browser, to the screen it finds, and its legend follows the layers switched on and the zoom.
"""

from __future__ import annotations

import base64
import html
import math
import mimetypes
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import folium
import numpy as np
import shapely
import xstatic.pkg.leaflet
from branca.element import Element, MacroElement
from jinja2 import Template

from geo.geojson import geometry_dict
from geo.simplify import degrees_per_pixel
from layers import catalogue, disputed, eventsymbols, features, labels, places, style, tiles, wilayahs

# Registry packages whose files the map may use, by the name used in asset paths.
VENDOR = {"leaflet": xstatic.pkg.leaflet}
SCRIPTS = ("leaflet/leaflet.js",)
STYLESHEETS = ("leaflet/leaflet.css",)

VIEW_ZOOM = 6  # geometry is simplified for this zoom: a Pakistan-wide view on the largest screens
MIN_ZOOM, MAX_ZOOM = 3, 14
ZOOM_STEP = 0.25  # the map zooms in quarter steps (zoomSnap); labels and layers show from such a step
HIDDEN_AT_START = frozenset({"divisions", *style.HIDDEN_IN_ATLAS})  # unticked, unless the map's only layer
WIDE_PX = 700  # narrower maps (embedded ones too) start with the legend and the layer list folded
FOLD_COST = 0.75  # zoom levels an open legend may cost a wide map's first view before it starts folded
MAX_IDS = 500  # features a preview map may be asked to show by id
DISPUTED_HOSTS = frozenset({"countries", "provinces"})  # layers whose borders the disputed lines mark
DISPUTED_KEY = "Disputed boundary: status not agreed (see the note)"
PLACES_TITLE = "Place names"
# Context drawn from the service's own raster tiles (one transparent PNG tileset each) on served pages.
BASEMAP_LAYERS = ("countries", "provinces", "districts")
BASEMAP_NAME = "Atlas basemap"
# One day, as an ISO date or an RFC 3339 date-time (whose date is the day shown).
DATE_PATTERN = features.INSTANT_PATTERN  # a map shows one date


class MapError(ValueError):
    """A map cannot be drawn as asked (unknown layer, bad date, unknown asset)."""


@dataclass(frozen=True)
class View:
    """What one map page shows: the date, the layers, and whether it is embedded (no page chrome)."""

    as_of: str
    layer_ids: tuple[str, ...] = catalogue.LAYER_IDS
    embed: bool = False
    basemap_url: str = ""  # an online XYZ basemap, only when the operator configures one
    date_links: bool = True  # off in a saved file, which has no server to switch dates
    tiles_base: str = ""  # URL prefix of the service's raster tiles; "" (a saved file): a plain background
    ids: tuple[str, ...] = ()  # a preview of these features of a one-layer map, whatever their dates
    month: str = ""  # "YYYY-MM": an events map of that month (``as_of`` its last day), with a month control

    @property
    def dated(self) -> bool:
        """Whether the map shows layers that change with the date (then it has the date bar)."""
        return not self.ids and (bool(self.month) or any(catalogue.layer(lid).temporal for lid in self.layer_ids))

    @property
    def claimed(self) -> bool:
        return any(catalogue.layer(lid).claimed for lid in self.layer_ids)


# --- assets ------------------------------------------------------------------------------------

def vendor_file(path: str) -> Path:
    """The file behind an asset path ``package/file`` inside its registry package; MapError if none."""
    package, _, rest = path.partition("/")
    if package not in VENDOR or not rest:
        raise MapError(f"unknown asset {path!r}; assets come from: {', '.join(VENDOR)}")
    root = Path(VENDOR[package].BASE_DIR).resolve()
    found = (root / rest).resolve()
    if not found.is_relative_to(root) or not found.is_file():
        raise MapError(f"asset {path!r} is not in the {package} package")
    return found


def vendor_files() -> list[str]:
    """Every asset path ``package/file`` the service can serve, sorted."""
    found = []
    for package, module in VENDOR.items():
        root = Path(module.BASE_DIR)
        found += [f"{package}/{path.relative_to(root).as_posix()}" for path in root.rglob("*") if path.is_file()]
    return sorted(found)


def asset_mimetype(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def _data_uri(path: Path) -> str:
    return f"data:{asset_mimetype(path.name)};base64,{base64.b64encode(path.read_bytes()).decode()}"


def inline_css(path: str) -> str:
    """A stylesheet with its relative ``url(...)`` references turned into data URIs."""
    source = vendor_file(path)

    def embed(match: re.Match) -> str:
        ref = match.group(2)
        if ref.startswith(("data:", "#")) or "://" in ref:
            return match.group(0)
        return f"url({_data_uri((source.parent / ref).resolve())})"

    return re.sub(r"url\((['\"]?)([^'\")]+)\1\)", embed, source.read_text(encoding="utf-8"))


# --- the reported structures -------------------------------------------------------------------

@lru_cache(maxsize=1)
def wilayah_file() -> dict:
    return wilayahs.load()



def is_confirmed(period: dict) -> bool:
    """A structure is confirmed unless the wilayah file says ``confirmed: false``."""
    return period["confirmed"]


def last_confirmed() -> dict:
    return [p for p in wilayahs.periods() if is_confirmed(p)][-1]


def unit_count(atlas, day: str) -> int:
    """Units reported at ``day``: those with a core (an extension, or a continuation, is not a unit)."""
    return len({f["properties"]["unit"] for f in atlas.features("wilayahs", day, day)
                if f["properties"]["part"] == "core"})


# --- data sent to the browser ------------------------------------------------------------------

def decimals_for(zoom: int) -> int:
    """Coordinate decimals that keep rounding under 1/8 px at the deepest zoom a level serves."""
    return max(0, math.ceil(-math.log10(degrees_per_pixel(zoom + 1) / 8)))


def _period(props: dict) -> str:
    return f"{props['valid_from']} to {props['valid_to'] or 'present (no later report)'}"


def _source_item(source: dict) -> str:
    link = (f'<a href="{html.escape(source["url"])}" target="_blank" rel="noopener noreferrer">'
            f'{html.escape(source["title"])}</a>')
    return f"<li>{link}, {html.escape(source['publisher'])}, {html.escape(source['date'] or 'undated')}</li>"


def popup_html(layer_id: str, props: dict, names: dict[str, str]) -> str:
    """What a caption needs about a claimed feature: name, zone, period, confidence, members; the notes
    and sources folded (``<details>``) so that the caption stays short. A unit whose ``status`` is not
    simply claimed (a continuation that a later report leaves unnamed: "unknown since ...") says it first."""
    esc = html.escape
    confidence = props.get("confidence") or "medium"
    status = props.get("status")
    rows = [("Status", status)] if status not in (None, wilayahs.CLAIMED) else []
    rows += [("Zone", style.ZONE_LABELS.get(props.get("zone"), style.ZONE_LABELS[None])),
            ("Period", _period(props)),
            ("Confidence", f"{confidence}: {wilayah_file()['confidence_rules'][confidence]}")]
    if layer_id == "wilayahs":
        rows += [("Part", props["part"]), ("Basis", props["basis"]),
                 ("Member districts", ", ".join(m["name"] for m in props["member_districts"]))]
        sources = "".join(_source_item(s) for s in props["sources"])
        extra = (f'<details class="notes"><summary>Notes</summary><p>{esc(props["notes"])}</p></details>'
                 f'<details class="sources"><summary>Sources ({len(props["sources"])})</summary>'
                 f'<ul>{sources}</ul></details>')
    else:
        rows.append(("Units", ", ".join(names.get(w, w) for w in props["wilayahs"])))
        extra = ""
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    heading = props.get("label") or style.label_text(props)  # zones have no label property
    return (f'<div class="atlas-popup"><h3>{esc(heading)}</h3><table>{table}</table>{extra}'
            f'<p class="caveat">{esc(props.get("caveat") or catalogue.CAVEAT)}</p></div>')


def shown_indices(atlas, layer_id: str, view: View) -> list[int]:
    """Positions of the layer's features the view shows: its ``ids``, or those valid at its date."""
    if view.ids:
        wanted = set(view.ids)
        return [i for i, f in enumerate(atlas.collections[layer_id]["features"]) if f["id"] in wanted]
    return atlas.valid_indices(layer_id, view.as_of, view.as_of)


def unknown_ids(atlas, layer_id: str, ids) -> list[str]:
    known = {f["id"] for f in atlas.collections[layer_id]["features"]}
    return [i for i in ids if i not in known]


def layer_features(atlas, layer_id: str, indices: list[int]) -> list[dict]:
    """The features at ``indices``, simplified for a Pakistan-wide view, with slim properties.

    Every layer uses that zoom, tehsils too (drawn from zoom 8, where that is 1 px off at most):
    their zoom-8 geometry alone would weigh more than 2 MB.
    """
    entry = catalogue.layer(layer_id)
    everything = atlas.collections[layer_id]["features"]
    geoms = atlas.generalised(layer_id, VIEW_ZOOM)
    names = {f["id"]: f["properties"]["name"] for f in atlas.collections["wilayahs"]["features"]}
    found = []
    for i in indices:
        props = everything[i]["properties"]
        slim = {"tip": html.escape(props.get("label") or style.label_text(props))}
        if entry.claimed:
            slim |= {"zone": props.get("zone"), "confidence": props.get("confidence"), "part": props.get("part"),
                     "popup": popup_html(layer_id, props, names)}
        found.append({"type": "Feature", "id": everything[i]["id"], "properties": slim,
                      "geometry": geometry_dict(geoms[i], decimals_for(VIEW_ZOOM))})
    return [f for f in found if f["geometry"] is not None]


def unit_labels(atlas, layer_id: str, view: View, indices: list[int]) -> list[labels.Label]:
    """The label of every shown feature, most important first. A preview of features from several
    periods labels each feature as at its own first day."""
    features = atlas.collections[layer_id]["features"]
    wanted = {features[i]["id"] for i in indices}
    days = sorted({features[i]["properties"]["valid_from"] for i in indices}) if view.ids else [view.as_of]
    found: dict[str, labels.Label] = {}
    for day in days:
        for label in labels.unit_labels(atlas, layer_id, day):
            if label.feature_id in wanted:
                found.setdefault(label.feature_id, label)
    return sorted(found.values(), key=lambda label: label.priority)


def shown_places(view: View) -> list[places.Place]:
    """The places a map names: all of them, except on a preview of a few features."""
    return [] if view.ids else list(places.places())


def view_labels(units: list[labels.Label], shown: list[places.Place]) -> list[tuple[labels.Label, float, str]]:
    """(label, web min zoom, side) of the units' labels and the places' names (``labels.web_labels``), in
    the map's quarter zoom steps."""
    steps = [MIN_ZOOM + i * ZOOM_STEP for i in range(round((MAX_ZOOM - MIN_ZOOM) / ZOOM_STEP) + 1)]
    return labels.web_labels(units, shown, steps)


def fit_bounds(atlas, view: View, shown: dict[str, list[int]]) -> list[list[float]]:
    """What the page fits to the screen: a preview's features, else all of Pakistan."""
    if view.ids:
        boxes = [shapely.bounds(atlas.geometries[lid][idx]) for lid, idx in shown.items() if idx]
        if boxes:
            stacked = np.vstack(boxes)
            return _leaflet_bounds((*stacked[:, :2].min(axis=0), *stacked[:, 2:].max(axis=0)))
    return _leaflet_bounds(atlas.pakistan_bounds)


def start_view(atlas, view: View, shown: list[str], indices: dict[str, list[int]]) -> dict | None:
    """Where a map of one layer drawn only from a finer zoom than its fitted view (tehsils, from 8) opens,
    so that it shows its layer: that zoom, centred on the previewed features or on the national capital
    (the reader zooms out for the country). None for other maps: they open fitted to their bounds."""
    if len(shown) != 1 or (zoom := layer_min_zoom(shown[0], shown)) <= MIN_ZOOM:
        return None
    if view.ids:
        (south, west), (north, east) = fit_bounds(atlas, view, indices)
        return {"zoom": zoom, "centre": [(south + north) / 2, (west + east) / 2]}
    capital = next(p for p in places.places() if p.kind == "national-capital")
    return {"zoom": zoom, "centre": [capital.lat, capital.lon]}


# --- styles ------------------------------------------------------------------------------------

def place_marker(kind: str) -> str:
    """A place's marker as inline SVG, ``size`` px across, from its style: on the map and in the legend."""
    look = style.PLACE_STYLES[kind]
    half = look.size / 2
    attrs = f'fill="{look.fill}" stroke="{look.stroke}" stroke-width="{look.stroke_width:g}"'
    if look.marker == "star":
        points = " ".join(f"{half + (half if k % 2 == 0 else half * 0.45) * math.sin(k * math.pi / 5):.2f},"
                          f"{half - (half if k % 2 == 0 else half * 0.45) * math.cos(k * math.pi / 5):.2f}"
                          for k in range(10))
        shape = f'<polygon points="{points}" {attrs} stroke-linejoin="round"/>'
    else:
        shape = f'<circle cx="{half:g}" cy="{half:g}" r="{half - look.stroke_width / 2:g}" {attrs}/>'
        if look.marker == "ring":
            shape += f'<circle cx="{half:g}" cy="{half:g}" r="{look.size / 5:g}" fill="{look.stroke}"/>'
    return (f'<svg class="atlas-marker" width="{look.size:g}" height="{look.size:g}" '
            f'viewBox="0 0 {look.size:g} {look.size:g}" aria-hidden="true">{shape}</svg>')


def place_entries(shown: list[places.Place]) -> list[tuple[str, str, int, list[tuple[dict, str]]]]:
    """Legend entries of the places named, each shown from the zoom its places show from: capitals, cities."""
    entries = []
    for kinds in (("national-capital", "provincial-capital"), ("city",)):
        if found := [p for p in shown if p.kind in kinds]:
            keys = [({"marker": k}, style.PLACE_STYLES[k].title) for k in kinds if any(p.kind == k for p in found)]
            entries.append(("places", PLACES_TITLE, min(p.min_zoom for p in found), keys))
    return entries


def hatch_id(look: dict) -> str:
    """The SVG pattern id of a hatched style: one pattern per colour and line geometry."""
    return "hatch-" + "-".join(str(look[k]).lstrip("#").replace(".", "_") for k in
                               ("hatch_colour", "hatch_opacity", "hatch_spacing", "hatch_angle", "hatch_width"))


def leaflet_style(layer_id: str, props: dict, css_class: str = "") -> dict:
    """Leaflet path options from ``layers.style``: a hatch is an SVG pattern in the style's own colour.

    Paths get a CSS class per layer (``wilayah``, ``zone``, ``atlas-districts`` ...) plus ``css_class``.
    """
    look = style.feature_style(layer_id, props)
    name = {"wilayahs": "wilayah", "zones": "zone"}.get(layer_id, f"atlas-{layer_id}")
    out = {"color": look["stroke"], "weight": look["width"], "fillColor": look["fill"],
           "fillOpacity": look["fill_opacity"], "opacity": 1.0, "className": f"{name} {css_class}".strip()}
    if look["dash"]:
        out["dashArray"] = " ".join(f"{d:g}" for d in look["dash"])
    if look["hatch"]:
        out |= {"fillColor": f"url(#{hatch_id(look)})", "fillOpacity": 1.0}
    if layer_id == "zones":  # the union of the units: an outline above them, no second fill
        out |= {"weight": look["width"] * 2, "fillOpacity": 0.0}
    return out


def disputed_features(atlas) -> list[dict]:
    """The build's disputed lines as GeoJSON features (name and description as the tooltip), simplified
    like the layers."""
    tolerance = degrees_per_pixel(VIEW_ZOOM) / 2
    return [{"type": "Feature", "id": props["id"],
             "properties": {"tip": html.escape(f"{props['name']}: {props['description']}")},
             "geometry": geometry_dict(shapely.simplify(geom, tolerance), decimals_for(VIEW_ZOOM))}
            for props, geom in disputed.disputed_lines(atlas)]


def disputed_paths() -> tuple[dict, dict]:
    """Leaflet options of a disputed line: a land-coloured casing hiding the border beneath, then dashes."""
    look = disputed.disputed_style()
    line = {"fill": False, "opacity": 1.0}
    return ({**line, "color": look["casing"], "weight": look["casing_width"], "className": "atlas-disputed-casing",
             "interactive": False},
            {**line, "color": look["stroke"], "weight": look["width"], "className": "atlas-disputed",
             "dashArray": " ".join(f"{d:g}" for d in look["dash"])})


def hatch_patterns(looks: list[dict]) -> str:
    """SVG patterns for the hatched styles among ``looks``, referenced as ``url(#<hatch_id>)``."""
    patterns = {}
    for look in looks:
        if look["hatch"]:
            size = look["hatch_spacing"]
            patterns[hatch_id(look)] = (
                f'<pattern id="{hatch_id(look)}" width="{size:g}" height="{size:g}" patternUnits="userSpaceOnUse" '
                f'patternTransform="rotate({-look["hatch_angle"] + 90:g})">'
                f'<rect width="{size:g}" height="{size:g}" fill="{look["fill"]}" '
                f'fill-opacity="{look["fill_opacity"]:g}"/>'
                f'<line x1="0" y1="0" x2="0" y2="{size:g}" stroke="{look["hatch_colour"]}" '
                f'stroke-width="{look["hatch_width"]:g}" stroke-opacity="{look["hatch_opacity"]:g}"/></pattern>')
    return (f'<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>'
            f'{"".join(patterns[k] for k in sorted(patterns))}</defs></svg>')


def _swatch(path: dict) -> str:
    """A legend swatch drawn with the very path options of the map (``leaflet_style``): an area, or a line;
    or a place's marker."""
    if "marker" in path:
        return place_marker(path["marker"])
    if "radius" in path:
        side = math.ceil(2 * (path["radius"] + path["weight"]))
        return (f'<svg class="atlas-circle-key" width="{side}" height="{side}" aria-hidden="true"><circle '
                f'cx="{side / 2:g}" cy="{side / 2:g}" r="{path["radius"]:.2f}" fill="{path["fillColor"]}" '
                f'fill-opacity="{path["fillOpacity"]:g}" stroke="{path["color"]}" stroke-width="{path["weight"]:g}"/>'
                f'</svg>')
    dash = f' stroke-dasharray="{path["dashArray"]}"' if path.get("dashArray") else ""
    if path.get("fill") is False:
        casing = disputed_paths()[0] if path.get("className") == "atlas-disputed" else None
        under = (f'<line x1="2" y1="8" x2="26" y2="8" stroke="{casing["color"]}" stroke-width="{casing["weight"]:g}"/>'
                 if casing else "")
        return (f'<svg width="28" height="16" aria-hidden="true">{under}<line x1="2" y1="8" x2="26" y2="8" '
                f'stroke="{path["color"]}" stroke-width="{path["weight"]:g}"{dash}/></svg>')
    return (f'<svg width="28" height="16" aria-hidden="true"><rect x="2" y="2" width="24" height="12" '
            f'fill="{path["fillColor"]}" fill-opacity="{path["fillOpacity"]:g}" stroke="{path["color"]}" '
            f'stroke-width="{min(path["weight"], 3):g}"{dash}/></svg>')


def legend_keys(layer_id: str, props_list: list[dict]) -> list[tuple[dict, str]]:
    """(swatch path options, text) of the layer's style classes that some shown feature falls in."""
    if not catalogue.layer(layer_id).claimed:
        return [(leaflet_style(layer_id, {}), catalogue.layer(layer_id).title)]
    keys = []
    for style_class in style.LAYER_STYLES[layer_id].classes:
        members = [p for p in props_list if style.matches(style_class, p)]
        if members:
            keys += [(leaflet_style(layer_id, members[0]), text)
                     for text in [style_class.title, *style.status_notes(members)]]
    return keys


def legend_html(view: View, entries: list[tuple[str, str, int, list[tuple[dict, str]]]],
                notes: tuple[str, ...] = ()) -> str:
    """The legend: per layer (group key, title, min zoom, keys), each shown by the page's script only while
    its layer is on and legible at the zoom; then the ``notes`` (the boundary disclaimer, credits)."""
    esc = html.escape
    items = []
    for group, title, min_zoom, keys in entries:
        rows = "".join(f"<li>{_swatch(path)} <span>{esc(text)}</span></li>" for path, text in keys)
        heading = f'<span class="legend-layer">{esc(title)}</span>' if len(keys) > 1 else ""
        items.append(f'<li data-layer="{esc(group)}" data-min-zoom="{min_zoom}">{heading}<ul>{rows}</ul></li>')
    return (f'<details class="atlas-legend{" compact" if view.embed else ""}" id="atlas-legend" open>'
            f'<summary>Legend</summary><ul class="keys">{"".join(items)}</ul>'
            f'{"".join(f"<p class=note>{esc(note)}</p>" for note in notes)}</details>')


# --- events: circles per claimed unit and month, and the month control ----------------------------

def event_path(radius: float) -> dict:
    """Leaflet options of an event circle (``layers.eventsymbols``): the map's and the legend's."""
    return {"radius": round(radius, 2), "color": eventsymbols.STROKE, "weight": eventsymbols.STROKE_WIDTH,
            "fillColor": eventsymbols.FILL, "fillOpacity": eventsymbols.FILL_OPACITY, "opacity": 1.0,
            "className": "atlas-event"}


def event_rows(symbols: list[eventsymbols.EventSymbol], month: str, source: str) -> list[list]:
    """[lat, lon, radius, tooltip, popup] of each circle, for the page's script."""
    esc, when = html.escape, eventsymbols.month_title(month)
    rows = []
    for s in symbols:
        table = "".join(f"<tr><th>{k}</th><td>{esc(str(v))}</td></tr>" for k, v in
                        (("Month", when), ("Events", s.events), ("Fatalities", s.fatalities), ("Events file", source)))
        popup = (f'<div class="atlas-popup"><h3>{esc(s.text)}</h3><table>{table}</table>'
                 f'<p class="caveat">{esc(eventsymbols.CAVEAT)}</p></div>')
        tip = esc(f"{s.text}: {eventsymbols.counted(s.events, 'event', 'events')}, "
                  f"{eventsymbols.counted(s.fatalities, 'fatality', 'fatalities')} ({when})")
        rows.append([round(s.lat, 5), round(s.lon, 5), round(s.radius_px, 2), tip, popup])
    return rows


def event_keys(overlay) -> list[tuple[dict, str]]:
    """The legend's circles: the largest count of any month and round fractions of it."""
    largest = eventsymbols.largest_count(overlay)
    return [(event_path(eventsymbols.radius_px(n, largest)), eventsymbols.counted(n, "event", "events"))
            for n in eventsymbols.legend_counts(largest)]


def events_html(view: View, overlay) -> str:
    """The month's totals, the counts caveat and, on served pages, the month control: previous and next
    links, a slider over every month of the events, and the month written out."""
    esc, months = html.escape, overlay.months
    out = (f'<p class="atlas-events">{eventsymbols.totals_text(overlay, view.month)}; units as of {view.as_of}; '
           f'events: {esc(overlay.source)}</p>'
           f'<p class="atlas-caveat">{esc(eventsymbols.CAVEAT.split(": ")[0])}.</p>')
    if not view.date_links or view.embed:
        return out
    i = months.index(view.month)

    def step(k: int, text: str, rel: str) -> str:
        if 0 <= k < len(months):
            title = esc(eventsymbols.month_title(months[k]))
            return f'<a href="?month={months[k]}" rel="{rel}" title="{title}">{text}</a>'
        return f'<span class="atlas-step-off" aria-hidden="true">{text}</span>'
    return out + (f'<nav class="atlas-months" aria-label="Month">{step(i - 1, "&#8249; Previous", "prev")}'
                  f'<input type="range" id="atlas-month" min="0" max="{len(months) - 1}" value="{i}" '
                  f'aria-label="Month" aria-valuetext="{esc(eventsymbols.month_title(view.month))}">'
                  f'<output for="atlas-month">{esc(eventsymbols.month_title(view.month))}</output>'
                  f'{step(i + 1, "Next &#8250;", "next")}</nav>')


# --- the header: title, date, period, caveat, date links -----------------------------------------

def page_title(view: View) -> str:
    if view.month:
        return "Events per TTP claimed unit (not areas of control)"
    if view.layer_ids == catalogue.LAYER_IDS:
        return "TTP claimed units (not areas of control)"
    return ", ".join(catalogue.layer(lid).title for lid in view.layer_ids)


def caveat_line() -> str:
    """The caveat's first sentence: what a reader must not miss, on one or two lines."""
    return catalogue.CAVEAT.split(". ")[0] + "."


def period_html(view: View, units: int) -> str:
    """The view in words: the period's label (with its unit count), or that no units are reported at the
    date; a banner when the structure is unconfirmed, pointing to the last confirmed one."""
    esc = html.escape
    period = wilayahs.period_at(view.as_of)
    if units == 0 or period is None:
        first = wilayahs.periods()[0]["from"]
        before = f" (the first reported structure dates from {first})" if view.as_of < first else ""
        return f'<p class="atlas-period atlas-empty">No claimed units reported on this date{before}.</p>'
    label = period["label"]
    text = label if label[:1].isdigit() else f"{units} units: {label}"
    out = f'<p class="atlas-period">{esc(text)}</p>'
    if not is_confirmed(period):
        last = last_confirmed()
        linked = view.date_links and not view.embed
        pointer = (f'<a href="?datetime={last["from"]}">Show the last confirmed structure ({last["from"]})</a>'
                   if linked else f"The last confirmed structure dates from {last['from']}.")
        out += (f'<p class="atlas-unconfirmed" role="note"><strong>Unconfirmed:</strong> reported by few '
                f'outlets from {period["from"]}; its new units are low confidence. {pointer}</p>')
    return out


def date_nav_html(view: View) -> str:
    """Links to the reported structures (the one in force highlighted) and a date box; the URL carries
    ``datetime`` so that views can be linked."""
    current = wilayahs.period_at(view.as_of)
    marks = {True: ' aria-current="true"', False: ""}
    links = "".join(
        f'<a href="?datetime={p["from"]}"{marks[p is current]} '
        f'title="{html.escape(p["label"])}">{p["from"]}{"" if is_confirmed(p) else " (unconfirmed)"}</a>'
        for p in wilayahs.periods())
    return (f'<nav class="atlas-dates"><span>Reported structures:</span> {links}'
            f'<form method="get"><input type="date" name="datetime" value="{view.as_of}" aria-label="date">'
            f'<button type="submit">Show</button></form></nav>')


def header_html(view: View, when: str, units: int, events: str = "") -> str:
    """Above the map, never over it: the title, the date (or a preview's dates), for claimed layers the
    period and the caveat line, and on served pages of dated layers the date links; an events map has its
    ``events`` lines (totals, caveat, month control) instead of the date links."""
    esc = html.escape
    date = f' <span class="atlas-asof">{when}</span>' if when else ""
    parts = [f'<h1>{esc(page_title(view))}{date}</h1>']
    if view.dated and view.claimed:
        parts.append(period_html(view, units))
    if view.claimed:
        parts.append(f'<p class="atlas-caveat">{esc(caveat_line())}</p>')
    if events:
        parts.append(events)
    elif view.dated and view.date_links and not view.embed:
        parts.append(date_nav_html(view))
    return f'<header class="atlas-header{" embed" if view.embed else ""}">{"".join(parts)}</header>'


def when_html(atlas, view: View, shown: dict[str, list[int]]) -> str:
    """"as of <date>" for dated views (an events map: its month), the span of a preview's features, nothing
    for undated layers."""
    if view.month:
        return f'<time datetime="{view.month}">{eventsymbols.month_title(view.month)}</time>'
    if view.dated:
        return f'as of <time datetime="{view.as_of}">{view.as_of}</time>'
    props = [atlas.collections[lid]["features"][i]["properties"] for lid, idx in shown.items() for i in idx]
    starts = [p["valid_from"] for p in props if p.get("valid_from")]
    if not starts:
        return ""
    ends = [p.get("valid_to") for p in props if p.get("valid_from")]
    return f"{min(starts)} to {'present' if None in ends else max(ends)}"


CSS = Template("""<style>
html, body { display: flex; flex-direction: column; }
.folium-map { flex: 1 1 auto; min-height: 0; }
.folium-map.leaflet-container { background: {{ background }}; }
.folium-map.leaflet-container { font: 12px/1.4 "DejaVu Sans", Arial, sans-serif; }
.folium-map .leaflet-control-attribution { max-width: 55%; font-size: 11px; line-height: 1.3; }
{% if embed %}.folium-map .leaflet-control-attribution { font-size: 9px; }{% endif %}
.atlas-label span { position: absolute; transform: translate(-50%, -50%); white-space: nowrap;
  font: {{ "bold " if font.bold else "" }}{{ font.size }}px "{{ font.family }}", Arial, sans-serif;
  color: {{ font.colour }}; text-shadow: 0 0 {{ font.halo_width }}px {{ font.halo }},
  0 0 {{ font.halo_width * 2 }}px {{ font.halo }}, 0 0 3px {{ font.halo }};
  pointer-events: none; }
.atlas-place span { display: flex; align-items: center; gap: {{ place_gap }}px; }
.atlas-place b { font-weight: normal; }
.atlas-side-left span { flex-direction: row-reverse; }
.atlas-side-above span { flex-direction: column-reverse; }
.atlas-side-below span { flex-direction: column; }
.atlas-side-above-right span { align-items: flex-end; }
.atlas-side-below-right span { align-items: flex-start; }
{% for kind, look in places.items() %}{% set half = look.size / 2 %}.atlas-place-{{ kind }} span {
  font: {{ look.font.size }}px/{{ line_em }} "{{ look.font.family }}", Arial, sans-serif;
  color: {{ look.font.colour }}; }
.atlas-place-{{ kind }}.atlas-side-right span { transform: translate(-{{ half }}px, -50%); }
.atlas-place-{{ kind }}.atlas-side-above-right span { transform: translate(-{{ half }}px, calc({{ half }}px - 100%)); }
.atlas-place-{{ kind }}.atlas-side-above-right b { margin-bottom: {{ look.size }}px; }
.atlas-place-{{ kind }}.atlas-side-below-right span { transform: translate(-{{ half }}px, -{{ half }}px); }
.atlas-place-{{ kind }}.atlas-side-below-right b { margin-top: {{ look.size }}px; }
.atlas-place-{{ kind }}.atlas-side-left span { transform: translate(calc({{ half }}px - 100%), -50%); }
.atlas-place-{{ kind }}.atlas-side-above span { transform: translate(-50%, calc({{ half }}px - 100%)); }
.atlas-place-{{ kind }}.atlas-side-below span { transform: translate(-50%, -{{ half }}px); }
{% endfor %}{% for q in min_zooms %}.below-q{{ q }} .min-q{{ q }} { display: none; }
{% endfor %}
.atlas-header { order: -1; flex: none; padding: 6px 10px; background: #fff; border-bottom: 1px solid #bbb;
  font: 13px/1.35 "DejaVu Sans", Arial, sans-serif; color: {{ ink }}; }
.atlas-header h1 { font-size: 16px; margin: 0; }
.atlas-header .atlas-asof { font-weight: normal; font-size: 14px; margin-left: 6px; }
.atlas-header p { margin: 2px 0; }
.atlas-period { font-weight: bold; }
.atlas-empty { color: #8a3b00; }
.atlas-caveat { font-size: 11px; color: #555; }
.atlas-unconfirmed { background: #fff4e0; border-left: 4px solid #e08a00; padding: 2px 6px; }
.atlas-dates { display: flex; gap: 4px 10px; align-items: center; flex-wrap: wrap; }
.atlas-dates a[aria-current] { font-weight: bold; color: #000; background: #ffe9a8; padding: 0 4px;
  border-radius: 3px; }
.atlas-dates form { display: inline; margin: 0; }
.atlas-events { font-weight: bold; }
.atlas-months { display: flex; gap: 4px 10px; align-items: center; flex-wrap: wrap; }
.atlas-months input { flex: 1 1 120px; max-width: 420px; margin: 0; }
.atlas-months output { font-weight: bold; min-width: 8.5em; }
.atlas-months .atlas-step-off { color: #999; }
.atlas-header.embed { padding: 3px 8px; font-size: 11px; }
.atlas-header.embed h1 { font-size: 13px; }
.atlas-header.embed .atlas-asof { font-size: 12px; }
.atlas-legend { background: rgba(255,255,255,0.92); border-radius: 4px; box-shadow: 0 1px 4px rgba(0,0,0,0.3);
  padding: 4px 8px; max-width: 240px; max-height: 50vh; overflow: auto; font-size: 11px; }
.atlas-legend summary { font-weight: bold; cursor: pointer; }
.atlas-legend ul { list-style: none; margin: 0; padding: 0; }
.atlas-legend li li { display: flex; align-items: center; gap: 6px; margin: 1px 0; }
.atlas-legend li[hidden] { display: none; }
.atlas-legend .legend-layer { display: block; font-weight: bold; margin-top: 3px; }
.atlas-legend.compact { font-size: 10px; max-width: 200px; }
.atlas-legend .note { font-size: 10px; color: #555; margin: 4px 0 0; }
.atlas-legend.compact svg:not(.atlas-circle-key) { width: 20px; height: 12px; }
@media (max-width: {{ wide - 1 }}px) {
  .folium-map .leaflet-control-attribution { font-size: 9px; line-height: 1.25; max-width: calc(100% - 120px); }
  .atlas-header { padding: 4px 8px; font-size: 12px; }
  .atlas-header h1 { font-size: 14px; }
  .atlas-header .atlas-asof { font-size: 12px; }
  .atlas-caveat { font-size: 10px; }
  .atlas-dates > span { display: none; }
{% if embed %}  .folium-map .leaflet-control-attribution { max-width: calc(100vw - 120px); }
  .folium-map .leaflet-control-attribution:not(:hover):not(:focus-within) { white-space: nowrap;
    overflow: hidden; text-overflow: ellipsis; }{% endif %}
}
.atlas-popup, .atlas-popup table { font-size: 12px; line-height: 1.35; }
.leaflet-popup-content { max-height: max(140px, min(420px, 50vh)); overflow-y: auto; }
.atlas-popup h3 { margin: 0 0 4px; font-size: 14px; }
.atlas-popup th { text-align: left; vertical-align: top; padding-right: 6px; }
.atlas-popup .caveat { font-size: 10px; color: #555; }
.atlas-popup details { margin: 3px 0; }
.atlas-popup summary { font-weight: bold; cursor: pointer; }
.atlas-popup details ul { padding-left: 16px; margin: 2px 0; }
</style>""")

# Bound from Python so that texts stay escaped: tooltip (name) on hover, popup (caption) on click. A popup
# keeps below the zoom buttons and the layer list, and scrolls past a height that fits the screen (the same
# height in the CSS, so that it still scrolls once its sources are unfolded).
ON_EACH_FEATURE = folium.JsCode("""function(feature, layer) {
    layer.bindTooltip(feature.properties.tip, {sticky: true});
    if (feature.properties.popup) {
        layer.bindPopup(feature.properties.popup, {
            maxWidth: Math.min(360, window.innerWidth - 80),
            maxHeight: Math.max(140, Math.min(420, Math.round(window.innerHeight * 0.5))),
            autoPanPaddingTopLeft: L.point(12, 64), autoPanPaddingBottomRight: L.point(12, 24)});
    }
}""")


class MapScript(MacroElement):
    """Attribution, legend control, labels, zoom classes hiding what is too fine to read, a legend that
    follows the layers shown, and the first view fitted to the screen the page finds."""

    _template = Template("""{% macro script(this, kwargs) %}
    (function(map, groups, control, opts) {
        map.attributionControl.setPrefix("Leaflet");
        opts.attribution.forEach(function(line) { map.attributionControl.addAttribution(line); });
        opts.labels.forEach(function(l) {
            L.marker([l[1], l[2]], {interactive: false, keyboard: false, icon: L.divIcon({
                className: "atlas-label min-q" + l[3], html: "<span>" + l[0] + "</span>", iconSize: [0, 0]})
            }).addTo(groups[opts.labelled]);
        });
        opts.places.forEach(function(p) {
            L.marker([p[1], p[2]], {interactive: false, keyboard: false, icon: L.divIcon({
                className: "atlas-label atlas-place atlas-place-" + p[4] + " atlas-side-" + p[5] + " min-q" + p[3],
                html: "<span>" + opts.markers[p[4]] + "<b>" + p[0] + "</b></span>", iconSize: [0, 0]})
            }).addTo(groups.places);
        });
        // Event circles (largest first, so smaller ones stay on top), each with its tooltip and popup.
        opts.events.forEach(function(e) {
            L.circleMarker([e[0], e[1]], Object.assign({}, opts.event_path, {radius: e[2]}))
                .bindTooltip(e[3], {sticky: true})
                .bindPopup(e[4], {maxWidth: Math.min(320, window.innerWidth - 80),
                                  autoPanPaddingTopLeft: L.point(12, 64), autoPanPaddingBottomRight: L.point(12, 24)})
                .addTo(groups.events);
        });
        // The month control: the slider writes the month out as it moves, and shows the month let go on.
        var slider = document.getElementById("atlas-month");
        if (slider) {
            var output = document.querySelector("output[for=atlas-month]");
            var titles = opts.months.map(function(m) { return m[1]; });
            slider.addEventListener("input", function() {
                output.textContent = titles[slider.value];
                slider.setAttribute("aria-valuetext", titles[slider.value]);
            });
            slider.addEventListener("change", function() {
                var query = new URLSearchParams(location.search);
                query.set("month", opts.months[slider.value][0]);
                location.search = query.toString();
            });
        }
        var legend = L.control({position: "bottomleft"});
        var box;
        legend.onAdd = function() {
            box = L.DomUtil.create("div");
            box.innerHTML = opts.legend;
            L.DomEvent.disableClickPropagation(box);
            L.DomEvent.disableScrollPropagation(box);
            return box;
        };
        legend.addTo(map);
        var wide = map.getSize().x >= opts.wide;
        box.querySelector("details").open = wide;
        if (wide && !opts.embed) { control.expand(); }
        function update() {
            var container = map.getContainer(), zoom = map.getZoom();
            opts.thresholds.forEach(function(q) { container.classList.toggle("below-q" + q, zoom < q * opts.step); });
            box.querySelectorAll("[data-layer]").forEach(function(item) {
                var group = groups[item.dataset.layer];
                item.hidden = !(group && map.hasLayer(group) && zoom >= Number(item.dataset.minZoom));
            });
        }
        // Labels stay inside the map: a unit's label centred in the map but crossing its edge slides in;
        // one centred outside it, or a place's name (which must stay by its marker), hides instead.
        function keepLabelsInside() {
            var frame = container.getBoundingClientRect(), inset = 2;
            container.querySelectorAll(".atlas-label span").forEach(function(span) {
                span.style.marginLeft = span.style.marginTop = span.style.visibility = "";
                var r = span.getBoundingClientRect();
                if (!r.width) { return; }
                var dx = Math.max(0, frame.left + inset - r.left) - Math.max(0, r.right - frame.right + inset),
                    dy = Math.max(0, frame.top + inset - r.top) - Math.max(0, r.bottom - frame.bottom + inset);
                if (!dx && !dy) { return; }
                var x = (r.left + r.right) / 2, y = (r.top + r.bottom) / 2;
                var centred = x > frame.left && x < frame.right && y > frame.top && y < frame.bottom;
                if (!centred || span.parentNode.classList.contains("atlas-place")) {
                    span.style.visibility = "hidden";
                } else {
                    span.style.marginLeft = dx + "px";
                    span.style.marginTop = dy + "px";
                }
            });
        }
        map.on("zoomend overlayadd overlayremove baselayerchange", update);
        map.on("moveend overlayadd", keepLabelsInside);
        // The first view: the bounds as large as the controls allow, keeping clear of each corner's
        // controls either beside or above and below them, whichever combination zooms in most; on a wide
        // map the legend folds when it would cost more than FOLD_COST zoom levels.
        function corner(name) {
            var el = container.querySelector(".leaflet-" + name);
            return el ? [el.offsetWidth, el.offsetHeight] : [0, 0];
        }
        function bestFit() {
            var size = map.getSize(), best = [-Infinity, {paddingTopLeft: [4, 4], paddingBottomRight: [4, 4]}];
            var corners = [["top.leaflet-left", "l", "t"], ["top.leaflet-right", "r", "t"],
                           ["bottom.leaflet-left", "l", "b"], ["bottom.leaflet-right", "r", "b"]].map(function(c) {
                return c.concat([corner(c[0])]);
            });
            for (var beside = 0; beside < 16; beside++) {
                var pad = {l: 8, r: 8, t: 8, b: 8};
                corners.forEach(function(c, i) {
                    if (beside & (1 << i)) { pad[c[1]] = Math.max(pad[c[1]], c[3][0] + 8); }
                    else { pad[c[2]] = Math.max(pad[c[2]], c[3][1] + 4); }
                });
                var room = L.point(pad.l + pad.r, pad.t + pad.b);
                if (room.x < size.x - 40 && room.y < size.y - 40) {  // else Leaflet answers its max zoom
                    var zoom = map.getBoundsZoom(opts.bounds, false, room);
                    if (zoom > best[0]) {
                        best = [zoom, {paddingTopLeft: [pad.l, pad.t], paddingBottomRight: [pad.r, pad.b]}];
                    }
                }
            }
            return best;
        }
        var container = map.getContainer(), details = box.querySelector("details"), fit = bestFit();
        if (details.open) {
            details.open = false;
            var folded = bestFit();
            if (folded[0] - fit[0] < opts.fold_cost) { details.open = true; } else { fit = folded; }
        }
        map.fitBounds(opts.bounds, Object.assign({animate: false}, fit[1]));
        // A one-layer map drawn only from a finer zoom (tehsils) opens where its layer shows.
        if (opts.start && map.getZoom() < opts.start.zoom) {
            map.setView(opts.start.centre, opts.start.zoom, {animate: false});
        }
        update();
        keepLabelsInside();
    })({{ this._parent.get_name() }},
       { {%- for key, group in this.groups.items() %}{{ key|tojson }}: {{ group.get_name() }}, {% endfor -%} },
       {{ this.control.get_name() }}, {{ this.options|tojson }});
    {% endmacro %}""")

    def __init__(self, groups: dict, control: folium.LayerControl, options: dict):
        super().__init__()
        self.groups, self.control, self.options = groups, control, options


def _leaflet_bounds(bounds) -> list[list[float]]:
    """Leaflet's [[south, west], [north, east]] from (west, south, east, north)."""
    west, south, east, north = (float(v) for v in bounds)
    return [[south, west], [north, east]]


def layers_drawn(view: View) -> tuple[list[str], list[str]]:
    """(vector layers, basemap tile layers) of a view, in drawing order.

    With the service's tiles, the land (countries) comes from them on a page of several layers, and
    provinces and districts too unless the page draws them as vectors (no context drawn twice). A
    page of countries alone draws them as vectors, whose opaque land would hide any tile under it.
    A saved file has no tiles: every layer is a vector on the plain background.
    """
    shown = [lid for lid in style.DRAW_ORDER if lid in view.layer_ids]
    if not view.tiles_base:
        return shown, []
    if len(shown) > 1:
        shown = [lid for lid in shown if lid != "countries"]
    if "countries" in shown:
        return shown, []
    return shown, [lid for lid in BASEMAP_LAYERS if lid not in shown]


def quarters(zoom: float) -> int:
    """A zoom in steps of ``ZOOM_STEP``: the number in the CSS classes ``min-q<n>``/``below-q<n>``."""
    return round(zoom / ZOOM_STEP)


def layer_min_zoom(layer_id: str, shown: list[str]) -> int:
    """The zoom from which a layer is drawn: its catalogue min zoom, except on a map of that layer alone,
    which shows it from the start unless it is too fine for a Pakistan-wide view (tehsils)."""
    min_zoom = catalogue.layer(layer_id).min_zoom
    return min_zoom if len(shown) > 1 or min_zoom >= VIEW_ZOOM else MIN_ZOOM


def add_basemaps(fmap: folium.Map, atlas, view: View, tiled: list[str]) -> folium.FeatureGroup | None:
    """The base layers: the service's raster tiles of ``tiled`` (returned, as one group) and, when
    configured, the online basemap (shown first then). Tiles are asked for inside the tiles' bounds only
    (outside them is a 404)."""
    group = None
    if tiled:
        group = folium.FeatureGroup(name=BASEMAP_NAME, overlay=False, show=not view.basemap_url)
        for lid in tiled:
            folium.TileLayer(f"{view.tiles_base}/{lid}/{{z}}/{{x}}/{{y}}{{r}}.png", attr="Basemap: ttp-atlas tiles",
                             min_zoom=0, max_zoom=14, max_native_zoom=14, control=False,
                             bounds=_leaflet_bounds(tiles.tileset_bounds(atlas, lid)),
                             className=f"atlas-basemap-{lid}").add_to(group)
        group.add_to(fmap)
    if view.basemap_url:
        host = re.sub(r"^[a-z]+://([^/]+).*$", r"\1", view.basemap_url)
        folium.TileLayer(view.basemap_url, attr=f"Basemap: {html.escape(host)}", name="Online basemap",
                         overlay=False).add_to(fmap)
    return group


def _assets(fmap: folium.Map, asset_base: str | None) -> None:
    """Leaflet linked under ``asset_base``, or inlined when None."""
    fmap.default_js = [] if asset_base is None else [(p, f"{asset_base}/{p}") for p in SCRIPTS]
    fmap.default_css = [] if asset_base is None else [(p, f"{asset_base}/{p}") for p in STYLESHEETS]
    root = fmap.get_root()
    if asset_base is None:
        for path in STYLESHEETS:
            root.header.add_child(Element(f"<style>{inline_css(path)}</style>"), name=path)
        for path in SCRIPTS:
            root.header.add_child(Element(f"<script>{vendor_file(path).read_text(encoding='utf-8')}</script>"),
                                  name=path)
    root.header.add_child(Element('<link rel="icon" href="data:,">'), name="no_favicon")


def check_view(atlas, view: View) -> None:
    """MapError naming what cannot be drawn: a bad date, an unknown layer, ids on a map of several layers
    or ids the layer does not have."""
    check_date(view.as_of)
    for lid in view.layer_ids:
        try:
            catalogue.layer(lid)
        except KeyError as error:
            raise MapError(str(error.args[0])) from None
    if view.ids:
        if len(view.layer_ids) != 1:
            raise MapError("ids are for a map of one layer (/map/{layer})")
        if len(view.ids) > MAX_IDS:
            raise MapError(f"at most {MAX_IDS} ids")
        if missing := unknown_ids(atlas, view.layer_ids[0], view.ids):
            raise MapError(f"no feature {missing[0]!r} in layer {view.layer_ids[0]!r}")


def add_layer(fmap: folium.Map, lid: str, features: list[dict], min_zoom: float, lines: list[dict], show: bool):
    """One vector layer as a group of the layer control (with the disputed ``lines`` over its borders, under
    the units drawn after it); returns the group."""
    min_class = f"min-q{quarters(min_zoom)}" if min_zoom > MIN_ZOOM else ""
    group = folium.FeatureGroup(name=catalogue.layer(lid).title, show=show)
    folium.GeoJson({"type": "FeatureCollection", "features": features}, control=False,
                   style_function=lambda f: leaflet_style(lid, f["properties"], min_class),
                   on_each_feature=ON_EACH_FEATURE).add_to(group)
    for path in disputed_paths() if lines else ():
        folium.GeoJson({"type": "FeatureCollection", "features": lines}, control=False,
                       style_function=lambda f, path=path: path, on_each_feature=ON_EACH_FEATURE).add_to(group)
    group.add_to(fmap)
    return group


def build_map(atlas, view: View, asset_base: str | None, overlay=None) -> folium.Map:
    """The folium map of a view; assets linked under ``asset_base`` (a URL prefix), or inlined when None.
    An events view (``view.month``) draws the ``overlay``'s circles of that month over every layer."""
    check_view(atlas, view)
    shown, tiled = layers_drawn(view)
    fmap = folium.Map(location=None, tiles=None, control_scale=True, min_zoom=MIN_ZOOM, max_zoom=MAX_ZOOM,
                      zoom_start=VIEW_ZOOM, zoomSnap=ZOOM_STEP)
    _assets(fmap, asset_base)
    basemap = add_basemaps(fmap, atlas, view, tiled)
    groups = {"basemap": basemap} if basemap else {}
    entries, looks, units = [], [], []
    indices = {lid: shown_indices(atlas, lid, view) for lid in shown}
    lines = disputed_features(atlas) if DISPUTED_HOSTS & {*shown, *tiled} else []
    # The layer whose group draws the disputed lines (the tiles draw them when no such layer is a vector).
    host = next((lid for lid in [*reversed(shown), *tiled] if lid in DISPUTED_HOSTS), None)
    line_key = [(disputed_paths()[1], DISPUTED_KEY)] if lines else []
    for lid in tiled:
        keys = [(leaflet_style(lid, {}), catalogue.layer(lid).title), *(line_key if lid == host else [])]
        entries.append(("basemap", catalogue.layer(lid).title, catalogue.layer(lid).min_zoom, keys))
    for lid in shown:
        props = [atlas.collections[lid]["features"][i]["properties"] for i in indices[lid]]
        min_zoom = layer_min_zoom(lid, shown)
        groups[lid] = add_layer(fmap, lid, layer_features(atlas, lid, indices[lid]), min_zoom,
                                lines if lid == host else [], show=len(shown) == 1 or lid not in HIDDEN_AT_START)
        looks += [style.feature_style(lid, p) for p in props]
        if keys := [*legend_keys(lid, props), *(line_key if lid == host else [])]:
            entries.append((lid, catalogue.layer(lid).title, min_zoom, keys))
        if lid in style.LABEL_STYLES and catalogue.layer(lid).claimed:
            units += unit_labels(atlas, lid, view, indices[lid])
    named = shown_places(view)
    if named:  # over every layer, in no layer of the control: names are context for all of them
        groups["places"] = folium.FeatureGroup(name=PLACES_TITLE, control=False).add_to(fmap)
        entries += place_entries(named)
    event_data, event_credits, events_lines = [], [], ""
    if view.month:
        groups["events"] = folium.FeatureGroup(name=f"Events ({html.escape(overlay.source)})").add_to(fmap)
        entries.insert(0, ("events", "Events per claimed unit, per month", MIN_ZOOM, event_keys(overlay)))
        event_data = event_rows(eventsymbols.symbols(atlas, overlay, view.month), view.month, overlay.source)
        event_credits = [html.escape(line) for line in overlay.credits]
        events_lines = events_html(view, overlay)
    kinds = {p.id: p.kind for p in named}
    label_rows, place_rows = [], []
    for label, zoom, side in view_labels(units, named):
        row = [html.escape(label.text), round(label.lat, 5), round(label.lon, 5), quarters(zoom)]
        if label.part == "place":
            place_rows.append(row + [kinds[label.feature_id], side])
        else:
            label_rows.append(row)
    control = folium.LayerControl(collapsed=True)
    control.add_to(fmap)
    thresholds = sorted({quarters(layer_min_zoom(lid, shown)) for lid in [*shown, *tiled]}
                        | {row[3] for row in label_rows + place_rows})
    thresholds = [q for q in thresholds if q > quarters(MIN_ZOOM)]
    root = fmap.get_root()
    root.header.add_child(Element(CSS.render(background=style.BACKGROUND, ink=style.INK, min_zooms=thresholds,
                                             wide=WIDE_PX, embed=view.embed, font=style.LABEL_STYLES["wilayahs"],
                                             places=style.PLACE_STYLES, place_gap=style.PLACE_GAP,
                                             line_em=labels.LINE_HEIGHT_EM)),
                          name="atlas_css")
    root.html.add_child(Element(hatch_patterns(looks)), name="hatch_patterns")
    root.html.add_child(Element(header_html(view, when_html(atlas, view, indices), unit_count(atlas, view.as_of),
                                            events_lines)), name="header")
    drawn = tuple(lid for lid in style.DRAW_ORDER if lid in shown or lid in tiled)
    credits = [places.GEONAMES_CREDIT] if named else []
    notes = ((eventsymbols.CAVEAT,) if view.month else ()) + ((disputed.NOTE,) if lines else ()) + tuple(credits)
    MapScript(groups, control, {
        "attribution": atlas.attribution(drawn) + credits + event_credits,
        "legend": legend_html(view, entries, notes + tuple(event_credits)),
        "events": event_data, "event_path": event_path(0),
        "months": [[m, eventsymbols.month_title(m)] for m in overlay.months] if view.month else [],
        "labels": label_rows, "labelled": "wilayahs", "places": place_rows,
        "markers": {kind: place_marker(kind) for kind in style.PLACE_STYLES}, "thresholds": thresholds,
        "step": ZOOM_STEP,
        "bounds": fit_bounds(atlas, view, indices), "start": start_view(atlas, view, shown, indices),
        "wide": WIDE_PX, "embed": view.embed,
        "fold_cost": FOLD_COST}).add_to(fmap)
    return fmap


def _number_elements(element, counter=None) -> None:
    """Replace branca's random element ids with a count, so that the same view gives the same bytes
    (and so the same ETag from every worker)."""
    counter = counter if counter is not None else iter(range(1 << 30))
    element._id = format(next(counter), "x")
    for child in element._children.values():
        _number_elements(child, counter)


def page_html(atlas, view: View, asset_base: str | None, overlay=None) -> str:
    """The map page as HTML; ``asset_base=None`` gives one self-contained file (assets inlined); an events
    view needs the ``overlay``."""
    root = build_map(atlas, view, asset_base, overlay).get_root()
    when = eventsymbols.month_title(view.month) if view.month else f"as of {view.as_of}"
    root.title = f"ttp-atlas: {page_title(view)}" + (f", {when}" if view.dated else "")
    _number_elements(root)
    return root.render()


def check_date(value: str) -> str:
    """The UTC day of one RFC 3339 instant, read as every endpoint reads ``datetime``; MapError otherwise."""
    try:
        return features.parse_instant(value)
    except features.QueryError as error:
        raise MapError(f"{value!r} is not a date: give {error.valid}") from None
