"""GIS client styles generated from ``layers.style``: MapLibre GL (spec v8) with its pattern sprite, QGIS QML,
OGC SLD 1.1 / SE, and the GeoPackage ``layer_styles`` table. Pure functions of the style model (plus URLs
given by the caller), so the web map, tiles, exports and GIS clients draw the same cartography.

Sizes: the model's CSS pixels (96 dpi) become millimetres in QML (QGIS prints in mm), pixels in SLD and
MapLibre; MapLibre dashes are in line widths.
"""

from __future__ import annotations

import io
import math
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image, ImageDraw

from layers import catalogue, style

MM_PER_PX = 25.4 / 96
PT_PER_PX = 0.75
SPRITE_RATIOS = (1, 2)
SOURCE = "ttp-atlas"
QGIS_VERSION = "3.22.16-Białowieża"
SLD_NS = {"": "http://www.opengis.net/sld", "se": "http://www.opengis.net/se", "ogc": "http://www.opengis.net/ogc",
          "xlink": "http://www.w3.org/1999/xlink", "xsi": "http://www.w3.org/2001/XMLSchema-instance"}
# Media types as OGC API - Styles names the encodings (for links to the styles, and the responses)
QML_MEDIA, SLD_MEDIA = "application/vnd.qgis.qml", "application/vnd.ogc.sld+xml;version=1.1"
MAPLIBRE_MEDIA = "application/vnd.mapbox.style+json"
# The point layers of the vector tiles (``layers.tiles`` cuts them): one label point per feature of LABELLED,
# and the place names. Styles label the units from these points, so a client draws each name once.
LABELS, PLACES = "labels", "places"
POINT_LAYER_IDS = (LABELS, PLACES)
LABELLED = "wilayahs"


def place_text(look: style.PlaceStyle) -> dict[str, tuple[str, str, float, float]]:
    """Per side of a place's marker (``layers.labels.PLACE_SIDES``), where its name goes, as the web map sets
    it: (align, baseline, dx, dy px), the text's ``align`` side and ``baseline`` edge at (dx, dy) from the place."""
    half, gap = look.size / 2, style.PLACE_GAP
    return {"right": ("left", "middle", half + gap, 0.0), "above-right": ("left", "bottom", half + gap, -half),
            "below-right": ("left", "top", half + gap, half), "left": ("right", "middle", -half - gap, 0.0),
            "above": ("center", "bottom", 0.0, -half - gap), "below": ("center", "top", 0.0, half + gap)}


def _ordered(layer_ids) -> list[str]:
    return [lid for lid in style.DRAW_ORDER if lid in layer_ids]


def _hatches() -> dict[str, style.Hatch]:
    """Sprite name -> hatch, for every hatch of the model."""
    return {hatch_name(c.symbol.hatch): c.symbol.hatch for s in style.LAYER_STYLES.values() for c in s.classes
            if c.symbol.hatch}


def hatch_name(hatch: style.Hatch) -> str:
    return f"hatch-{hatch.colour.lstrip('#').lower()}"


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 4)


# --- sprite ----------------------------------------------------------------------------------

def hatch_tile(hatch: style.Hatch, ratio: int) -> Image.Image:
    """A seamless square of the hatch at ``ratio`` (45° lines: the tile's side is the spacing times √2)."""
    side = max(2, round(hatch.spacing * math.sqrt(2))) * ratio
    big = 4  # drawn 4x and reduced, for antialiased lines
    image = Image.new("RGBA", (side * big, side * big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    width = max(1, round(hatch.width * ratio * big * math.sqrt(2)))  # a 45° line's horizontal thickness
    for k in (-1, 0, 1, 2):  # lines x + y = k * side, in image coordinates (y down): "/" lines
        c = k * side * big
        draw.line([(c - side * big * 2, side * big * 2), (c + side * big * 2, -side * big * 2)],
                  fill=style.rgba(hatch.colour, hatch.opacity), width=width)
    return image.resize((side, side), Image.LANCZOS)


def sprite(ratio: int) -> tuple[dict, bytes]:
    """The MapLibre sprite at pixel ratio 1 or 2: (index JSON, PNG), hatches side by side."""
    tiles = {name: hatch_tile(hatch, ratio) for name, hatch in sorted(_hatches().items())}
    width = sum(t.width for t in tiles.values())
    height = max(t.height for t in tiles.values())
    sheet, index, x = Image.new("RGBA", (width, height), (0, 0, 0, 0)), {}, 0
    for name, tile in tiles.items():
        sheet.paste(tile, (x, 0))
        index[name] = {"x": x, "y": 0, "width": tile.width, "height": tile.height, "pixelRatio": ratio}
        x += tile.width
    out = io.BytesIO()
    sheet.save(out, "PNG", optimize=True)
    return index, out.getvalue()


# --- MapLibre GL -----------------------------------------------------------------------------

def maplibre_filter(where) -> list | None:
    """Legacy filter syntax: MapLibre, Mapbox and QGIS's converter all read it."""
    tests = []
    for field, values in where:
        if values == (None,):
            tests.append(["!has", field])
        elif len(values) == 1:
            tests.append(["==", field, values[0]])
        else:
            tests.append(["in", field, *values])
    return ["all", *tests] if tests else None


def _layer(layer_id: str, key: str, kind: str, where, paint: dict, tileset: str, layout: dict | None = None) -> dict:
    out = {"id": f"{layer_id}-{key}-{kind}", "type": "fill" if kind in ("fill", "hatch") else kind,
           "source": SOURCE, "source-layer": layer_id}
    if tileset == "atlas" and layer_id in catalogue.LAYER_IDS and catalogue.layer(layer_id).min_zoom:
        out["minzoom"] = catalogue.layer(layer_id).min_zoom
    if maplibre_filter(where):
        out["filter"] = maplibre_filter(where)
    if layout:
        out["layout"] = layout
    out["paint"] = paint
    return out


def _text_paint(font: style.Font) -> dict:
    return {"text-color": font.colour, "text-halo-color": font.halo, "text-halo-width": font.halo_width}


def _label_layer(layer_id: str, font: style.Font, tileset: str, points: bool) -> dict:
    """A layer's labels, the text of its font's field (text-field tokens QGIS 3.22 reads too). ``points``:
    from the tiles' ``labels`` layer, one point per feature at its anchor, shown from the zoom where it is
    clear of the labels before it (so always shown, in rank order); else over each polygon of each tile."""
    layout = {"text-field": f"{{{font.field}}}", "text-font": [font.fontstack], "text-size": font.size,
              "symbol-placement": "point", "text-max-width": 8}
    if points:
        layout |= {"symbol-sort-key": ["get", "rank"], "text-allow-overlap": True}
    layer = _layer(layer_id, "label", "symbol", (), _text_paint(font), tileset, layout)
    if points:
        layer["source-layer"] = LABELS
    layer["minzoom"] = max(layer.get("minzoom", 0), font.min_zoom)
    return layer


TEXT_ANCHORS = {("left", "middle"): "left", ("left", "bottom"): "bottom-left", ("left", "top"): "top-left",
                ("right", "middle"): "right", ("center", "bottom"): "bottom", ("center", "top"): "top",
                ("center", "middle"): "center"}


def _place_layers(tileset: str, glyphs: bool) -> list[dict]:
    """Places from the tiles' ``places`` layer: a circle per place (a dot in it for a ring marker), and with
    glyphs its name on the side the tile says (``side``), offset from the marker as on the web map. One layer
    per kind (and side) with constant values: QGIS 3.22 reads ``match`` expressions in these properties as
    their fallback, which centred every name over its marker."""
    def layer(key: str, kind: str, where, paint: dict, layout: dict | None = None) -> dict:
        out = _layer(PLACES, key, kind, where, paint, tileset, layout)
        out["source-layer"] = PLACES
        return out

    layers = []
    for kind, look in style.PLACE_STYLES.items():
        layers.append(layer(f"{kind}-marker", "circle", (("kind", (kind,)),), {
            "circle-radius": _number(look.size / 2 - look.stroke_width), "circle-color": look.fill,
            "circle-stroke-color": look.stroke, "circle-stroke-width": _number(look.stroke_width)}))
        if look.marker == "ring":
            layers.append(layer(f"{kind}-ring", "circle", (("kind", (kind,)),), {
                "circle-radius": _number(look.size / 5), "circle-color": look.stroke}))
    if not glyphs:
        return layers
    for kind, look in style.PLACE_STYLES.items():
        for side, (align, base, dx, dy) in place_text(look).items():
            layers.append(layer(f"{kind}-{side}", "symbol", (("kind", (kind,)), ("side", (side,))),
                                _text_paint(look.font), {
                "text-field": "{name}", "text-font": [look.font.fontstack], "text-size": look.font.size,
                "text-anchor": TEXT_ANCHORS[align, base],
                "text-offset": [_number(dx / look.font.size), _number(dy / look.font.size)],
                "symbol-sort-key": ["get", "rank"], "text-allow-overlap": True}))
    return layers


def maplibre_style(tileset: str, layer_ids, tilejson_url: str, sprite_url: str, glyphs_url: str | None,
                   name: str) -> dict:
    """A MapLibre GL style (spec v8) for a vector tileset whose TileJSON is at ``tilejson_url``, of its MVT
    layers ``layer_ids`` (``layers.tiles.tile_layers``): every fill in draw order, then hatches, then
    outlines, then place markers, then labels and place names (only with ``glyphs_url``). The atlas leaves out
    ``style.HIDDEN_IN_ATLAS`` (QGIS 3.22 ignores ``visibility: none``)."""
    ordered = [lid for lid in _ordered(layer_ids) if tileset != "atlas" or lid not in style.HIDDEN_IN_ATLAS]
    layers = [{"id": "background", "type": "background", "paint": {"background-color": style.BACKGROUND}}] \
        if tileset == "atlas" else []
    for lid in ordered:
        for cls in style.LAYER_STYLES[lid].classes:
            symbol = cls.symbol
            if symbol.fill:
                layers.append(_layer(lid, cls.key, "fill", cls.where,
                                     {"fill-color": symbol.fill, "fill-opacity": symbol.fill_opacity}, tileset))
            if symbol.hatch:
                layers.append(_layer(lid, cls.key, "hatch", cls.where, {"fill-pattern": hatch_name(symbol.hatch)},
                                     tileset))
    for lid in ordered:
        for cls in style.LAYER_STYLES[lid].classes:
            symbol = cls.symbol
            paint = {"line-color": symbol.stroke, "line-width": symbol.width}
            if symbol.dash:
                paint["line-dasharray"] = [_number(d / symbol.width) for d in symbol.dash]
            layers.append(_layer(lid, cls.key, "line", cls.where, paint, tileset, {"line-join": "round"}))
    if PLACES in layer_ids:
        layers += [layer for layer in _place_layers(tileset, bool(glyphs_url)) if layer["type"] == "circle"]
    if glyphs_url:
        for lid in ordered:
            if style.LAYER_STYLES[lid].label:
                points = lid == LABELLED and LABELS in layer_ids
                layers.append(_label_layer(lid, style.LAYER_STYLES[lid].label, tileset, points))
    if PLACES in layer_ids and glyphs_url:
        layers += [layer for layer in _place_layers(tileset, True) if layer["type"] == "symbol"]
    document = {"version": 8, "name": name,
                "metadata": {"ttp-atlas:palette": style.PALETTE, "ttp-atlas:caveat": catalogue.CAVEAT},
                "sources": {SOURCE: {"type": "vector", "url": tilejson_url}},
                "sprite": sprite_url, "layers": layers}
    if glyphs_url:
        document["glyphs"] = glyphs_url
    return document


# --- QGIS expressions and XML helpers ---------------------------------------------------------

def qgis_filter(where) -> str:
    """The class condition as a QGIS expression."""
    tests = []
    for field, values in where:
        if values == (None,):
            tests.append(f'"{field}" IS NULL')
        elif len(values) == 1:
            tests.append(f"\"{field}\" = '{values[0]}'")
        else:
            tests.append(f'"{field}" IN (' + ", ".join(f"'{v}'" for v in values) + ")")
    return " AND ".join(tests) or "TRUE"


def _qcolour(colour: str, opacity: float = 1.0) -> str:
    return ",".join(str(v) for v in style.rgba(colour, opacity))


def _mm(px: float) -> str:
    return f"{px * MM_PER_PX:.3f}".rstrip("0").rstrip(".")


def _options(parent: ET.Element, values: dict) -> None:
    option = ET.SubElement(parent, "Option", type="Map")
    for key, value in values.items():
        ET.SubElement(option, "Option", name=key, value=str(value), type="QString")


def _symbol_layer(parent: ET.Element, cls: str, values: dict) -> ET.Element:
    layer = ET.SubElement(parent, "layer", {"class": cls, "enabled": "1", "locked": "0", "pass": "0"})
    _options(layer, values)
    return layer


def _line_options(colour: str, opacity: float, width: float, dash) -> dict:
    return {"line_color": _qcolour(colour, opacity), "line_width": _mm(width), "line_width_unit": "MM",
            "line_style": "solid", "joinstyle": "round", "capstyle": "flat",
            "use_custom_dash": "1" if dash else "0",
            "customdash": ";".join(_mm(d) for d in (dash or (5, 2))), "customdash_unit": "MM"}


def qgis_symbol(symbol: style.Symbol, name: str) -> ET.Element:
    """A QGIS fill symbol: the fill, the hatch (a line pattern fill) and the outline as its own line layer
    (so dashes have the model's lengths)."""
    element = ET.Element("symbol", {"type": "fill", "name": name, "alpha": "1", "clip_to_extent": "1",
                                    "force_rhr": "0"})
    if symbol.fill:
        _symbol_layer(element, "SimpleFill", {"color": _qcolour(symbol.fill, symbol.fill_opacity), "style": "solid",
                                              "outline_style": "no", "outline_color": "0,0,0,0",
                                              "outline_width": "0", "outline_width_unit": "MM"})
    if symbol.hatch:
        hatch = symbol.hatch
        layer = _symbol_layer(element, "LinePatternFill", {
            "angle": _number(hatch.angle), "distance": _mm(hatch.spacing), "distance_unit": "MM",
            "line_width": _mm(hatch.width), "line_width_unit": "MM", "color": _qcolour(hatch.colour, hatch.opacity),
            "offset": "0", "offset_unit": "MM"})
        line = ET.SubElement(layer, "symbol", {"type": "line", "name": f"@{name}@1", "alpha": "1",
                                               "clip_to_extent": "1", "force_rhr": "0"})
        _symbol_layer(line, "SimpleLine", _line_options(hatch.colour, hatch.opacity, hatch.width, None))
    _symbol_layer(element, "SimpleLine", _line_options(symbol.stroke, 1.0, symbol.width, symbol.dash))
    return element


def qgis_renderer(layer_id: str) -> ET.Element:
    """A single-symbol renderer for one-class layers, else a rule-based renderer with one rule per class."""
    classes = style.LAYER_STYLES[layer_id].classes
    symbols = ET.Element("symbols")
    for i, cls in enumerate(classes):
        symbols.append(qgis_symbol(cls.symbol, str(i)))
    attributes = {"forceraster": "0", "symbollevels": "0", "enableorderby": "0", "referencescale": "-1"}
    if len(classes) == 1:
        renderer = ET.Element("renderer-v2", {**attributes, "type": "singleSymbol"})
        renderer.append(symbols)
        return renderer
    renderer = ET.Element("renderer-v2", {**attributes, "type": "RuleRenderer"})
    rules = ET.SubElement(renderer, "rules", key="root")
    for i, cls in enumerate(classes):
        ET.SubElement(rules, "rule", key=cls.key, filter=qgis_filter(cls.where), symbol=str(i), label=cls.title)
    renderer.append(symbols)
    return renderer


QGIS_WRAP_CHARS = len("(possible extension)")  # the longest line of a unit label in QGIS


def qgis_label_settings(layer_id: str, font: style.Font, around: float | None = None) -> ET.Element:
    """QGIS label settings (a ``settings`` element): the label text, font, halo, placement over the polygon
    or point; ``around``: beside the point at that distance (px), where QGIS finds room. Labels of the tiles'
    point layers are all shown (the tiles carry a point from the zoom where it is clear), as are the claimed
    units' names."""
    settings = ET.Element("settings", calloutType="simple")
    text = ET.SubElement(settings, "text-style", {
        "fieldName": font.field, "isExpression": "0", "fontFamily": font.family,
        "namedStyle": " ".join(filter(None, ["Bold" if font.bold else "", "Oblique" if font.italic else ""])) or "Book",
        "fontWeight": "75" if font.bold else "50", "fontItalic": "1" if font.italic else "0",
        "fontSize": f"{font.size * PT_PER_PX:g}", "fontSizeUnit": "Point", "textColor": _qcolour(font.colour),
        "textOpacity": "1"})
    ET.SubElement(text, "text-buffer", {"bufferDraw": "1", "bufferSize": _mm(font.halo_width), "bufferSizeUnits": "MM",
                                        "bufferColor": _qcolour(font.halo), "bufferOpacity": "1", "bufferNoFill": "1",
                                        "bufferJoinStyle": "128"})
    # over the polygon's centroid (kept inside it) or the point, or around the point; units before civil names
    points = layer_id in POINT_LAYER_IDS
    ET.SubElement(settings, "placement", {"placement": "1" if around is None else "0", "centroidInside": "1",
                                          "centroidWhole": "0", "fitInPolygonOnly": "0", "dist": _mm(around or 0),
                                          "distUnits": "MM", "priority": "8" if layer_id in (
                                              *style.CLAIMED_LAYERS, LABELS) else "3"})
    if layer_id in style.CLAIMED_LAYERS:  # "Zhob" over "(possible extension)", as in the exports: a narrower box
        ET.SubElement(settings, "text-format", {"wrapChar": "", "autoWrapLength": str(QGIS_WRAP_CHARS),
                                                "useMaxLineLengthForAutoWrap": "1", "multilineAlign": "1"})
    # every claimed unit is named at any scale (QGIS would silently drop a colliding one, as it dropped Dera
    # Ismail Khan at national scale); civil names may give way
    shown_always = points or layer_id in style.CLAIMED_LAYERS
    ET.SubElement(settings, "rendering", {"drawLabels": "1", "obstacle": "1", "displayAll": "1" if shown_always else "0",
                                          "labelPerPart": "0"})
    return settings


def qgis_marker(look: style.PlaceStyle, name: str) -> ET.Element:
    """A QGIS marker symbol of a kind of place: a star or a circle, and a ring's inner dot."""
    element = ET.Element("symbol", {"type": "marker", "name": name, "alpha": "1", "clip_to_extent": "1",
                                    "force_rhr": "0"})
    _symbol_layer(element, "SimpleMarker", {
        "name": "star" if look.marker == "star" else "circle", "color": _qcolour(look.fill),
        "outline_color": _qcolour(look.stroke), "outline_style": "solid", "outline_width": _mm(look.stroke_width),
        "outline_width_unit": "MM", "size": _mm(look.size), "size_unit": "MM"})
    if look.marker == "ring":
        _symbol_layer(element, "SimpleMarker", {
            "name": "circle", "color": _qcolour(look.stroke), "outline_style": "no", "outline_color": "0,0,0,0",
            "outline_width": "0", "outline_width_unit": "MM", "size": _mm(look.size * 2 / 5), "size_unit": "MM"})
    return element


def qgis_labeling(layer_id: str, font: style.Font) -> ET.Element:
    labeling = ET.Element("labeling", type="simple")
    labeling.append(qgis_label_settings(layer_id, font))
    return labeling


def qgis_vector_tile_style(tileset: str, layer_ids) -> list[ET.Element]:
    """The renderer and labels of a QGIS vector tile layer (what QGIS otherwise converts from the MapLibre
    style on "load style") of the MVT layers ``layer_ids``: per class, its filter and whole symbol, in draw
    order, from the layer's zoom; unit labels from the ``labels`` points and place markers and names."""
    drawn = [lid for lid in _ordered(layer_ids) if tileset != "atlas" or lid not in style.HIDDEN_IN_ATLAS]

    def entry(parent, lid, name, where, min_zoom, geometry="2"):
        return ET.SubElement(parent, "style", {
            "name": name, "layer": lid, "geometry": geometry, "expression": qgis_filter(where) if where else "",
            "enabled": "1", "min-zoom": str(min_zoom if tileset == "atlas" and min_zoom else -1), "max-zoom": "-1"})

    renderer = ET.Element("renderer", type="basic")
    styles = ET.SubElement(renderer, "styles")
    labeling = ET.Element("labeling", type="basic")
    labels = ET.SubElement(labeling, "styles")
    for lid in drawn:
        min_zoom = catalogue.layer(lid).min_zoom
        for cls in style.LAYER_STYLES[lid].classes:
            ET.SubElement(entry(styles, lid, f"{lid}: {cls.title}", cls.where, min_zoom), "symbols").append(
                qgis_symbol(cls.symbol, "0"))
        font = style.LAYER_STYLES[lid].label
        if font:
            source = LABELS if lid == LABELLED and LABELS in layer_ids else lid
            entry(labels, source, f"{lid}: labels", (), max(min_zoom, font.min_zoom),
                  "0" if source == LABELS else "2").append(qgis_label_settings(source, font))
    if PLACES in layer_ids:
        for kind, look in style.PLACE_STYLES.items():
            where = (("kind", (kind,)),)
            ET.SubElement(entry(styles, PLACES, f"places: {look.title}", where, 0, "0"),
                          "symbols").append(qgis_marker(look, "0"))
            entry(labels, PLACES, f"places: {look.title}", where, 0, "0").append(
                qgis_label_settings(PLACES, look.font, look.size / 2 + style.PLACE_GAP))
    return [renderer, labeling]


def qgis_temporal(layer_id: str) -> ET.Element:
    """Temporal properties: features valid from ``valid_from`` to ``valid_to`` (both days included)."""
    temporal = ET.Element("temporal", {
        "enabled": "1" if catalogue.layer(layer_id).temporal else "0", "mode": "2", "startField": "valid_from",
        "endField": "valid_to", "limitMode": "1", "accumulate": "0", "durationUnit": "d", "fixedDuration": "0",
        "durationField": "", "startExpression": "", "endExpression": ""})
    fixed = ET.SubElement(temporal, "fixedRange")
    ET.SubElement(fixed, "start")
    ET.SubElement(fixed, "end")
    return temporal


def qgis_style_elements(layer_id: str) -> list[ET.Element]:
    """The renderer, labels and temporal properties of a layer (in a QML document or a project's map layer)."""
    elements = [qgis_renderer(layer_id)]
    font = style.LAYER_STYLES[layer_id].label
    if font:
        elements.append(qgis_labeling(layer_id, font))
    if catalogue.layer(layer_id).temporal:
        elements.append(qgis_temporal(layer_id))
    return elements


def xml_text(element: ET.Element, doctype: str = "") -> str:
    ET.indent(element)
    return (doctype + ET.tostring(element, encoding="unicode")).strip() + "\n"


def qml(layer_id: str) -> str:
    """A QGIS layer style (.qml) for the layer's features as served by the features API or a GeoPackage."""
    style.LAYER_STYLES[layer_id]  # KeyError for a layer without a style
    root = ET.Element("qgis", {"version": QGIS_VERSION, "styleCategories": "Symbology|Labeling|Temporal",
                               "labelsEnabled": "1" if style.LAYER_STYLES[layer_id].label else "0"})
    root.extend(qgis_style_elements(layer_id))
    return xml_text(root, "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n")


# --- SLD 1.1 / SE ----------------------------------------------------------------------------

def _se(parent: ET.Element, tag: str, text: str | None = None, **attributes) -> ET.Element:
    prefix, _, name = tag.rpartition(":")
    element = ET.SubElement(parent, f"{{{SLD_NS[prefix or '']}}}{name}", attributes)
    if text is not None:
        element.text = text
    return element


def _svg(parent: ET.Element, values: dict) -> None:
    for key, value in values.items():
        _se(parent, "se:SvgParameter", str(value), name=key)


def _stroke(parent: ET.Element, colour: str, opacity: float, width: float, dash) -> None:
    stroke = _se(parent, "se:Stroke")
    values = {"stroke": colour, "stroke-opacity": _number(opacity), "stroke-width": _number(width),
              "stroke-linejoin": "round"}
    if dash:
        values["stroke-dasharray"] = " ".join(str(_number(d)) for d in dash)
    _svg(stroke, values)


def _sld_filter(parent: ET.Element, where) -> None:
    if not where:
        return
    root = _se(parent, "ogc:Filter")
    target = _se(root, "ogc:And") if len(where) > 1 else root
    for field, values in where:
        if values == (None,):
            _se(_se(target, "ogc:PropertyIsNull"), "ogc:PropertyName", field)
            continue
        group = _se(target, "ogc:Or") if len(values) > 1 else target
        for value in values:
            test = _se(group, "ogc:PropertyIsEqualTo")
            _se(test, "ogc:PropertyName", field)
            _se(test, "ogc:Literal", value)


def sld(layer_id: str) -> str:
    """An OGC SLD 1.1.0 / Symbology Encoding document: one rule per class, as in the QML. The hatch is a
    ``horline`` mark rotated by the hatch angle (QGIS's own SLD encoding of a line pattern fill)."""
    for prefix, uri in SLD_NS.items():
        ET.register_namespace(prefix, uri)
    layer_style = style.LAYER_STYLES[layer_id]
    root = ET.Element(f"{{{SLD_NS['']}}}StyledLayerDescriptor", {
        "version": "1.1.0", f"{{{SLD_NS['xsi']}}}schemaLocation":
            "http://www.opengis.net/sld http://schemas.opengis.net/sld/1.1.0/StyledLayerDescriptor.xsd"})
    named = _se(root, "NamedLayer")
    _se(named, "se:Name", layer_id)
    user = _se(named, "UserStyle")
    _se(user, "se:Name", f"ttp-atlas {layer_id}")
    feature_type = _se(user, "se:FeatureTypeStyle")
    for cls in layer_style.classes:
        rule = _se(feature_type, "se:Rule")
        _se(rule, "se:Name", cls.key)
        _se(_se(rule, "se:Description"), "se:Title", cls.title)
        _sld_filter(rule, cls.where)
        symbol = cls.symbol
        if symbol.fill:
            _svg(_se(_se(rule, "se:PolygonSymbolizer"), "se:Fill"),
                 {"fill": symbol.fill, "fill-opacity": _number(symbol.fill_opacity)})
        if symbol.hatch:
            hatch = symbol.hatch
            graphic = _se(_se(_se(_se(rule, "se:PolygonSymbolizer"), "se:Fill"), "se:GraphicFill"), "se:Graphic")
            mark = _se(graphic, "se:Mark")
            _se(mark, "se:WellKnownName", "horline")
            _stroke(mark, hatch.colour, hatch.opacity, hatch.width, None)
            _se(graphic, "se:Size", str(_number(hatch.spacing)))
            _se(_se(graphic, "se:Rotation"), "ogc:Literal", str(_number(hatch.angle)))
        _stroke(_se(rule, "se:LineSymbolizer"), symbol.stroke, 1.0, symbol.width, symbol.dash)
    if layer_style.label:
        font = layer_style.label
        rule = _se(feature_type, "se:Rule")
        _se(rule, "se:Name", "labels")
        text = _se(rule, "se:TextSymbolizer")
        _se(_se(text, "se:Label"), "ogc:PropertyName", font.field)
        _svg(_se(text, "se:Font"), {"font-family": font.family, "font-size": _number(font.size),
                                    "font-weight": "bold" if font.bold else "normal",
                                    "font-style": "italic" if font.italic else "normal"})
        halo = _se(text, "se:Halo")
        _se(halo, "se:Radius", str(_number(font.halo_width)))
        _svg(_se(halo, "se:Fill"), {"fill": font.halo})
        _svg(_se(text, "se:Fill"), {"fill": font.colour})
    return xml_text(root, '<?xml version="1.0" encoding="UTF-8"?>\n')


# --- GeoPackage ------------------------------------------------------------------------------

LAYER_STYLES_DDL = """CREATE TABLE IF NOT EXISTS layer_styles (
  id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT(256), f_table_schema TEXT(256),
  f_table_name TEXT(256), f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT,
  useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30),
  update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"""


def write_layer_styles(gpkg_path: Path | str, layer_ids) -> int:
    """Add QGIS's ``layer_styles`` table to a GeoPackage: the default QML and SLD of each given layer (its
    table named as the layer id), replacing earlier ``ttp-atlas`` styles. One transaction, so the file is
    unchanged if anything fails. Returns the number of styles written."""
    layer_ids = list(layer_ids)
    for lid in layer_ids:
        style.LAYER_STYLES[lid]  # KeyError naming an unknown layer, before anything is written
    connection = sqlite3.connect(str(gpkg_path))
    try:
        with connection:
            geometry_columns = dict(connection.execute("SELECT table_name, column_name FROM gpkg_geometry_columns"))
            missing = [lid for lid in layer_ids if lid not in geometry_columns]
            if missing:
                raise KeyError(f"{gpkg_path} has no feature table {missing[0]!r}; it has {sorted(geometry_columns)}")
            connection.execute(LAYER_STYLES_DDL)
            connection.execute("INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description) "
                               "VALUES ('layer_styles', 'attributes', 'layer_styles', 'QGIS layer styles')")
            for lid in layer_ids:
                connection.execute("DELETE FROM layer_styles WHERE f_table_name = ? AND owner = 'ttp-atlas'", (lid,))
                connection.execute(
                    "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, "
                    "styleName, styleQML, styleSLD, useAsDefault, description, owner, ui) "
                    "VALUES ('', '', ?, ?, ?, ?, ?, 1, ?, 'ttp-atlas', '')",
                    (lid, geometry_columns[lid], f"ttp-atlas {lid}", qml(lid), sld(lid),
                     f"ttp-atlas style for {catalogue.layer(lid).title} ({style.PALETTE} palette)"))
    finally:
        connection.close()
    return len(layer_ids)
