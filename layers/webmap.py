"""The web map: the atlas's layers drawn with folium (Leaflet), working with no internet.

folium loads Leaflet, jQuery, Bootstrap and marker fonts from public CDNs; this map needs only Leaflet,
taken from the ``xstatic-leaflet`` package (the version folium expects) and either linked from the
service (``asset_base``) or inlined (a self-contained file). Colours come from ``layers.style``;
geometry is simplified for the zoom the page opens at (``atlas.generalised``).
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
import shapely
import xstatic.pkg.leaflet
from branca.element import Element, MacroElement
from jinja2 import Template

from geo.geojson import geometry_dict
from geo.simplify import degrees_per_pixel
from layers import catalogue, features, style, tiles, wilayahs

# Registry packages whose files the map may use, by the name used in asset paths.
VENDOR = {"leaflet": xstatic.pkg.leaflet}
SCRIPTS = ("leaflet/leaflet.js",)
STYLESHEETS = ("leaflet/leaflet.css",)

VIEW_ZOOM = 6  # the zoom a Pakistan-wide page opens at: geometry is simplified for it
DRAW_ORDER = ("countries", "tehsils", "districts", "divisions", "tribal-districts", "provinces", "wilayahs",
              "zones")
HIDDEN_AT_START = frozenset({"divisions", "zones"})  # in the layer control, unticked
# Context drawn from the service's own raster tiles (one transparent PNG tileset each) on served pages.
BASEMAP_LAYERS = ("countries", "provinces", "districts")
BASEMAP_NAME = "Atlas basemap"
ZONE_KEYS = {None: "none", "north": "north", "south": "south"}
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


# --- data sent to the browser ------------------------------------------------------------------

def decimals_for(zoom: int) -> int:
    """Coordinate decimals that keep rounding under 1/8 px at the deepest zoom a level serves."""
    return max(0, math.ceil(-math.log10(degrees_per_pixel(zoom + 1) / 8)))


@lru_cache(maxsize=1)
def wilayah_file() -> dict:
    return wilayahs.load()


def _period(props: dict) -> str:
    return f"{props['valid_from']} to {props['valid_to'] or 'present (no later report)'}"


def _source_item(source: dict) -> str:
    link = (f'<a href="{html.escape(source["url"])}" target="_blank" rel="noopener noreferrer">'
            f'{html.escape(source["title"])}</a>')
    return f"<li>{link}, {html.escape(source['publisher'])}, {html.escape(source['date'] or 'undated')}</li>"


def display_name(props: dict) -> str:
    """The name a reader sees: a low-confidence extension says so."""
    return props["name"] + (" (possible extension)" if props.get("part") == "extension" else "")


def popup_html(layer_id: str, props: dict, names: dict[str, str]) -> str:
    """What a caption needs about a claimed feature: name, zone, period, confidence, members, sources."""
    esc = html.escape
    confidence = props.get("confidence") or "medium"
    rows = [("Zone", style.ZONE_LABELS.get(props.get("zone"), style.ZONE_LABELS[None])),
            ("Period", _period(props)),
            ("Confidence", f"{confidence}: {wilayah_file()['confidence_rules'][confidence]}")]
    if layer_id == "wilayahs":
        rows += [("Part", props["part"]), ("Basis", props["basis"]),
                 ("Member districts", ", ".join(m["name"] for m in props["member_districts"]))]
        sources = "".join(_source_item(s) for s in props["sources"])
        extra = (f'<p class="notes">{esc(props["notes"])}</p>'
                 f'<p class="sources-title">Sources</p><ul class="sources">{sources}</ul>')
    else:
        rows.append(("Units", ", ".join(names.get(w, w) for w in props["wilayahs"])))
        extra = ""
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    title = display_name(props)
    return (f'<div class="atlas-popup"><h3>{esc(title)}</h3><table>{table}</table>{extra}'
            f'<p class="caveat">{esc(props.get("caveat") or catalogue.CAVEAT)}</p></div>')


def layer_features(atlas, layer_id: str, as_of: str) -> list[dict]:
    """The layer's features valid at ``as_of``, simplified for the page's zoom, with slim properties.

    Every layer uses the page's zoom, tehsils too (drawn from zoom 8, where that is 1 px off at most):
    their zoom-8 geometry alone would weigh more than 2 MB.
    """
    entry = catalogue.layer(layer_id)
    everything = atlas.collections[layer_id]["features"]
    geoms = atlas.generalised(layer_id, VIEW_ZOOM)
    keep = atlas.valid_indices(layer_id, as_of, as_of)
    names = {f["id"]: f["properties"]["name"] for f in atlas.collections["wilayahs"]["features"]}
    features = []
    for i in keep:
        props = everything[i]["properties"]
        slim = {"tip": html.escape(display_name(props))}
        if entry.claimed:
            slim |= {"zone": props.get("zone"), "confidence": props.get("confidence"), "part": props.get("part"),
                     "popup": popup_html(layer_id, props, names)}
        features.append({"type": "Feature", "id": everything[i]["id"], "properties": slim,
                         "geometry": geometry_dict(geoms[i], decimals_for(VIEW_ZOOM))})
    return [f for f in features if f["geometry"] is not None]


def label_points(atlas, layer_id: str, features: list[dict]) -> list[tuple[str, float, float]]:
    """(name, lat, lon) of a label inside each core claimed unit (extensions share the core's name)."""
    by_id = {f["id"]: i for i, f in enumerate(atlas.collections[layer_id]["features"])}
    cores = [f for f in features if f["properties"].get("part") != "extension"]
    points = shapely.point_on_surface(atlas.generalised(layer_id, VIEW_ZOOM)[[by_id[f["id"]] for f in cores]])
    return [(f["properties"]["tip"], float(p.y), float(p.x)) for f, p in zip(cores, points, strict=True)]


# --- styles ------------------------------------------------------------------------------------

def leaflet_style(layer_id: str, props: dict, css_class: str = "") -> dict:
    """Leaflet path options from ``layers.style``: hatched fill (SVG pattern) and dashes for low confidence.

    Paths get a CSS class per layer (``wilayah``, ``zone``, ``atlas-districts`` ...) plus ``css_class``.
    """
    look = style.feature_style(layer_id, props)
    name = {"wilayahs": "wilayah", "zones": "zone"}.get(layer_id, f"atlas-{layer_id}")
    out = {"color": look["stroke"], "weight": look["width"], "fillColor": look["fill"],
           "fillOpacity": look["fill_opacity"], "opacity": 1.0, "className": f"{name} {css_class}".strip()}
    if look["dash"]:
        out["dashArray"] = " ".join(str(d) for d in look["dash"])
    if look["hatch"]:
        out |= {"fillColor": f"url(#hatch-{ZONE_KEYS.get(props.get('zone'), 'none')})", "fillOpacity": 1.0}
    if layer_id == "zones":  # the union of the units: an outline above them, no second fill
        out |= {"weight": look["width"] * 2, "fillOpacity": 0.0}
    return out


def hatch_patterns() -> str:
    """SVG patterns for hatched fills, one per zone colour, referenced as ``url(#hatch-<zone>)``."""
    low = style.CONFIDENCE_STYLES["low"]
    patterns = "".join(
        f'<pattern id="hatch-{ZONE_KEYS[zone]}" width="8" height="8" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="8" height="8" fill="{colour}" '
        f'fill-opacity="{low["fill_opacity"]}"/><line x1="0" y1="0" x2="0" y2="8" stroke="{colour}" '
        f'stroke-width="2" stroke-opacity="0.8"/></pattern>'
        for zone, colour in style.ZONE_COLOURS.items())
    return f'<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>{patterns}</defs></svg>'


def _swatch(look: dict) -> str:
    dash = f' stroke-dasharray="{" ".join(map(str, look["dash"]))}"' if look.get("dash") else ""
    fill = look["fill"] if not look.get("hatch") else look["hatch"]
    return (f'<svg width="28" height="16"><rect x="1" y="1" width="26" height="14" fill="{fill}" '
            f'fill-opacity="{look["fill_opacity"]}" stroke="{look["stroke"]}" stroke-width="{look["width"]}"{dash}/>'
            f'</svg>')


def legend_html(view: View, attribution: list[str]) -> str:
    """Zones, confidence styles, civil layers, the date, the caveat and the dataset credits."""
    esc = html.escape
    items = []
    if any(catalogue.layer(lid).claimed for lid in view.layer_ids):
        for zone, label in style.ZONE_LABELS.items():
            look = style.wilayah_style(zone, "medium")
            items.append(f"<li>{_swatch(look)} {esc(label)}</li>")
        for confidence, look in style.CONFIDENCE_STYLES.items():
            shape = style.wilayah_style("north", confidence)
            if shape["hatch"]:
                shape = {**shape, "hatch": "url(#hatch-north)", "fill_opacity": 1.0}
            items.append(f"<li>{_swatch(shape)} Confidence {esc(look['label'])}</li>")
    for lid in view.layer_ids:
        if lid in style.CIVIL_STYLES:
            look = {**style.CIVIL_STYLES[lid], "fill_opacity": min(style.CIVIL_STYLES[lid]["fill_opacity"], 0.3)}
            items.append(f"<li>{_swatch(look)} {esc(catalogue.layer(lid).title)}</li>")
    claimed = any(catalogue.layer(lid).claimed for lid in view.layer_ids)
    caveat = f'<p class="caveat">{esc(catalogue.CAVEAT)}</p>' if claimed else ""
    credits = "".join(f"<li>{esc(line)}</li>" for line in attribution)
    return (f'<details class="atlas-legend" id="atlas-legend"{"" if view.embed else " open"}><summary>As of '
            f'<time datetime="{view.as_of}">{view.as_of}</time></summary><ul class="keys">{"".join(items)}</ul>'
            f'{caveat}<ul class="credits">{credits}</ul></details>')


def date_nav_html(view: View) -> str:
    """Links to the reported structures and a date box; the URL carries ``datetime`` so views can be linked."""
    current = ' aria-current="true"'
    links = "".join(
        f'<a href="?datetime={p["from"]}"{current if p["from"] == view.as_of else ""} '
        f'title="{html.escape(p["label"])}">{p["from"]}</a>' for p in wilayah_file()["periods"])
    return (f'<nav class="atlas-dates"><strong>TTP claimed units (not areas of control)</strong> '
            f'<span>Structure as of:</span> {links}'
            f'<form method="get"><input type="date" name="datetime" value="{view.as_of}" aria-label="date">'
            f'<button type="submit">Show</button></form></nav>')


CSS = Template("""<style>
.folium-map.leaflet-container { background: {{ background }}; }
.leaflet-control-attribution { max-width: 55%; }
.leaflet-container { font: 12px/1.4 "DejaVu Sans", Arial, sans-serif; }
.wilayah-label span { position: absolute; transform: translate(-50%, -50%); white-space: nowrap;
  font-weight: bold; font-size: 12px; color: #222; text-shadow: 0 0 3px #fff, 0 0 3px #fff; pointer-events: none; }
{% for z in min_zooms %}.below-z{{ z }} .min-z{{ z }} { display: none; }
{% endfor %}
.atlas-legend, .atlas-dates { background: rgba(255,255,255,0.92); border-radius: 4px;
  box-shadow: 0 1px 4px rgba(0,0,0,0.3); padding: 6px 8px; }
.atlas-legend { max-width: 270px; max-height: 55vh; overflow: auto; font-size: 11px; }
.atlas-legend summary { font-weight: bold; cursor: pointer; }
.atlas-legend ul { list-style: none; margin: 0; padding: 0; }
.atlas-legend li { display: flex; align-items: center; gap: 6px; margin: 2px 0; }
.atlas-legend .credits li, .atlas-legend .caveat { font-size: 10px; color: #444; }
.atlas-dates { position: absolute; top: 10px; left: 60px; z-index: 1000; display: flex; gap: 8px;
  align-items: center; flex-wrap: wrap; font: 13px "DejaVu Sans", Arial, sans-serif; max-width: calc(100% - 330px); }
.atlas-dates a[aria-current] { font-weight: bold; color: #000; }
.atlas-dates form { display: inline; margin: 0; }
.atlas-popup h3 { margin: 0 0 4px; font-size: 14px; }
.atlas-popup th { text-align: left; vertical-align: top; padding-right: 6px; }
.atlas-popup .caveat { font-size: 10px; color: #555; }
.atlas-popup ul.sources { padding-left: 16px; margin: 2px 0; }
.atlas-popup .sources-title { margin: 4px 0 0; font-weight: bold; }
</style>""")

# Bound from Python so that texts stay escaped: tooltip (name) on hover, popup (caption) on click.
ON_EACH_FEATURE = folium.JsCode("""function(feature, layer) {
    layer.bindTooltip(feature.properties.tip, {sticky: true});
    if (feature.properties.popup) { layer.bindPopup(feature.properties.popup, {maxWidth: 380}); }
}""")


class MapScript(MacroElement):
    """Attribution (plain text, no link out), legend control, and zoom classes hiding layers too fine to read."""

    _template = Template("""{% macro script(this, kwargs) %}
    (function(map) {
        map.attributionControl.setPrefix("Leaflet");
        {% for line in this.attribution %}map.attributionControl.addAttribution({{ line|tojson }});
        {% endfor %}
        var legend = L.control({position: "bottomleft"});
        legend.onAdd = function() {
            var box = L.DomUtil.create("div");
            box.innerHTML = {{ this.legend|tojson }};
            L.DomEvent.disableScrollPropagation(box);
            return box;
        };
        legend.addTo(map);
        var thresholds = {{ this.min_zooms|tojson }};
        function zoomClasses() {
            var container = map.getContainer();
            thresholds.forEach(function(z) {
                container.classList.toggle("below-z" + z, map.getZoom() < z);
            });
        }
        map.on("zoomend", zoomClasses);
        zoomClasses();
    })({{ this._parent.get_name() }});
    {% endmacro %}""")

    def __init__(self, attribution: list[str], legend: str, min_zooms: list[int]):
        super().__init__()
        self.attribution, self.legend, self.min_zooms = attribution, legend, min_zooms


def _leaflet_bounds(bounds) -> list[list[float]]:
    """Leaflet's [[south, west], [north, east]] from (west, south, east, north)."""
    west, south, east, north = (float(v) for v in bounds)
    return [[south, west], [north, east]]


def _pakistan_bounds(atlas) -> list[list[float]]:
    return _leaflet_bounds(atlas.pakistan_bounds)


def layers_drawn(view: View) -> tuple[list[str], list[str]]:
    """(vector layers, basemap tile layers) of a view, in drawing order.

    With the service's tiles, the land (countries) comes from them on a page of several layers, and
    provinces and districts too unless the page draws them as vectors (no context drawn twice). A
    page of countries alone draws them as vectors, whose opaque land would hide any tile under it.
    A saved file has no tiles: every layer is a vector on the plain background.
    """
    shown = [lid for lid in DRAW_ORDER if lid in view.layer_ids]
    if not view.tiles_base:
        return shown, []
    if len(shown) > 1:
        shown = [lid for lid in shown if lid != "countries"]
    if "countries" in shown:
        return shown, []
    return shown, [lid for lid in BASEMAP_LAYERS if lid not in shown]


def add_basemaps(fmap: folium.Map, atlas, view: View, tiled: list[str]) -> None:
    """The base layers: the service's raster tiles of ``tiled`` and, when configured, the online basemap
    (shown first then). Tiles are asked for inside the tiles' bounds only (outside them is a 404)."""
    if tiled:
        group = folium.FeatureGroup(name=f"{BASEMAP_NAME} ({', '.join(catalogue.layer(lid).title for lid in tiled)})",
                                    overlay=False, show=not view.basemap_url)
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


def build_map(atlas, view: View, asset_base: str | None) -> folium.Map:
    """The folium map of a view; assets linked under ``asset_base`` (a URL prefix), or inlined when None."""
    check_date(view.as_of)
    for lid in view.layer_ids:
        catalogue.layer(lid)
    shown, tiled = layers_drawn(view)
    fmap = folium.Map(location=None, tiles=None, control_scale=True, min_zoom=3, max_zoom=14,
                      zoom_start=VIEW_ZOOM, zoomSnap=0.5)
    fmap.default_js = [] if asset_base is None else [(p, f"{asset_base}/{p}") for p in SCRIPTS]
    fmap.default_css = [] if asset_base is None else [(p, f"{asset_base}/{p}") for p in STYLESHEETS]
    root = fmap.get_root()
    if asset_base is None:
        for path in STYLESHEETS:
            root.header.add_child(Element(f"<style>{inline_css(path)}</style>"), name=path)
        for path in SCRIPTS:
            root.header.add_child(Element(f"<script>{vendor_file(path).read_text(encoding='utf-8')}</script>"),
                                  name=path)
    min_zooms = sorted({catalogue.layer(lid).min_zoom for lid in shown if catalogue.layer(lid).min_zoom > VIEW_ZOOM})
    root.header.add_child(Element('<link rel="icon" href="data:,">'), name="no_favicon")
    root.header.add_child(Element(CSS.render(background=style.BACKGROUND, min_zooms=min_zooms)), name="atlas_css")
    root.html.add_child(Element(hatch_patterns()), name="hatch_patterns")
    add_basemaps(fmap, atlas, view, tiled)
    for lid in shown:
        entry = catalogue.layer(lid)
        features = layer_features(atlas, lid, view.as_of)
        extra = {"minZoom": entry.min_zoom} if entry.min_zoom > VIEW_ZOOM else {}
        group = folium.FeatureGroup(name=entry.title, show=lid not in HIDDEN_AT_START, **extra)
        min_class = f"min-z{entry.min_zoom}" if entry.min_zoom > VIEW_ZOOM else ""
        folium.GeoJson({"type": "FeatureCollection", "features": features}, control=False,
                       style_function=lambda f, lid=lid, c=min_class: leaflet_style(lid, f["properties"], c),
                       on_each_feature=ON_EACH_FEATURE).add_to(group)
        if lid == "wilayahs":
            for name, lat, lon in label_points(atlas, lid, features):
                folium.Marker([lat, lon], interactive=False, keyboard=False,
                              icon=folium.DivIcon(html=f"<span>{name}</span>", class_name="wilayah-label",
                                                  icon_size=(0, 0))).add_to(group)
        group.add_to(fmap)
    folium.LayerControl(collapsed=view.embed).add_to(fmap)
    drawn = tuple(lid for lid in DRAW_ORDER if lid in shown or lid in tiled)
    attribution = atlas.attribution(drawn)
    MapScript(attribution, legend_html(View(view.as_of, drawn, view.embed), attribution), min_zooms).add_to(fmap)
    if not view.embed and view.date_links:
        root.html.add_child(Element(date_nav_html(view)), name="date_nav")
    # Room for the legend (left) and the layer list (right) on a full page.
    fmap.fit_bounds(_pakistan_bounds(atlas), padding_top_left=(0, 0) if view.embed else (260, 40),
                    padding_bottom_right=(0, 0) if view.embed else (200, 0))
    return fmap


def _number_elements(element, counter=None) -> None:
    """Replace branca's random element ids with a count, so that the same view gives the same bytes
    (and so the same ETag from every worker)."""
    counter = counter if counter is not None else iter(range(1 << 30))
    element._id = format(next(counter), "x")
    for child in element._children.values():
        _number_elements(child, counter)


def page_html(atlas, view: View, asset_base: str | None) -> str:
    """The map page as HTML; ``asset_base=None`` gives one self-contained file (assets inlined)."""
    title = "TTP claimed units (not areas of control)" if view.layer_ids == catalogue.LAYER_IDS else \
        ", ".join(catalogue.layer(lid).title for lid in view.layer_ids)
    root = build_map(atlas, view, asset_base).get_root()
    root.title = f"ttp-atlas: {title}, as of {view.as_of}"
    _number_elements(root)
    return root.render()


def check_date(value: str) -> str:
    """The UTC day of one RFC 3339 instant, read as every endpoint reads ``datetime``; MapError otherwise."""
    try:
        return features.parse_instant(value)
    except features.QueryError as error:
        raise MapError(f"{value!r} is not a date: give {error.valid}") from None
