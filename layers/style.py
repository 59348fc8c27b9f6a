"""The atlas's cartography, defined once as data: every renderer (web map, PNG tiles, exports) and every
generated GIS style (MapLibre, QML, SLD, the QGIS project; ``layers.gisstyles``) reads it from here.

Sizes are CSS pixels at 96 dpi. The palette is Okabe & Ito's colour-blind-safe set: zone fills at
``ZONE_FILL_OPACITY`` over ``LAND``, the extension hatches, the tribal-district outline and land stay at least
ΔE 20 apart under normal vision and simulated deuteranopia, protanopia and tritanopia (``tests/test_styles.py``
computes it from this module).

The claimed-unit rule: colour by zone; look by part and confidence:
- core, high or medium confidence: solid outline, zone fill;
- core, low confidence: dashed outline, the same zone fill;
- extension (a possible reach of the unit): no fill, hatched in the unit's zone colour inside a dashed outline.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- palette ---------------------------------------------------------------------------------

PALETTE = "Okabe-Ito"  # Okabe M., Ito K. (2008), Color Universal Design
ZONE_COLOURS = {"north": "#0072b2", "south": "#d55e00", None: "#000000"}  # blue, vermillion, black
ZONE_LABELS = {"north": "North zone", "south": "South zone", None: "Zone not reported"}
ZONE_KEYS = {"north": "north", "south": "south", None: "none"}  # names for ids (sprites, CSS, rules)
ZONE_FILL_OPACITY = 0.45

BACKGROUND = "#cfe3ef"  # sea and outside the data
INK = "#3c3c3c"  # map text, north arrow, frames and neutral legend swatches
HALO = "#ffffff"  # outline behind labels so they read over any fill
LAND = "#f2efe9"
WILAYAH_STROKE_WIDTH = 2.0
EXTENSION_STROKE_WIDTH = 1.5
LOW_DASH = (6, 4)
EXTENSION_LABEL = "possible extension"  # extensions are labelled "<unit> (possible extension)"


@dataclass(frozen=True)
class Hatch:
    """Parallel lines filling an area: ``spacing`` between lines, ``angle`` anticlockwise from the x axis."""

    colour: str
    opacity: float = 0.9
    spacing: float = 8.0
    angle: float = 45.0
    width: float = 1.5
    pattern: str = "//"  # the same hatch as a matplotlib hatch string


# How confidence is drawn (cores): medium and high solid, low dashed; the fill is the zone's either way.
CONFIDENCE_STYLES = {
    "high": {"dash": None, "hatch": None, "fill_opacity": ZONE_FILL_OPACITY,
             "label": "High: a source names the districts"},
    "medium": {"dash": None, "hatch": None, "fill_opacity": ZONE_FILL_OPACITY,
               "label": "Medium: the name matches a civil division"},
    "low": {"dash": LOW_DASH, "hatch": None, "fill_opacity": ZONE_FILL_OPACITY,
            "label": "Low: inferred or unconfirmed (dashed outline)"},
}
PART_LABELS = {"core": "Unit", "extension": "Possible extension (hatched in the unit's colour)"}

# Civil and context layers: outline colour, width, dash, fill colour and opacity. Tribal districts are an
# outline only, so they never mix with unit fills.
CIVIL_STYLES = {
    "countries": {"stroke": "#9e9e9e", "width": 0.8, "fill": LAND, "fill_opacity": 1.0},
    "provinces": {"stroke": "#3c3c3c", "width": 1.6, "fill": "#ffffff", "fill_opacity": 0.0},
    "divisions": {"stroke": "#5f5f5f", "width": 1.0, "fill": "#ffffff", "fill_opacity": 0.0},
    "districts": {"stroke": "#8c8c8c", "width": 0.6, "fill": "#ffffff", "fill_opacity": 0.0},
    "tehsils": {"stroke": "#b5b5b5", "width": 0.4, "fill": "#ffffff", "fill_opacity": 0.0},
    "tribal-districts": {"stroke": "#6b4e16", "width": 1.4, "fill": "#ffffff", "fill_opacity": 0.0,
                         "dash": (1, 2.5)},
}

# Disputed boundaries (Line of Control, Working Boundary, Siachen): the province border's ink and width,
# dashed, over a land-coloured casing that hides the solid border beneath.
DISPUTED_STYLE = {"stroke": CIVIL_STYLES["provinces"]["stroke"], "width": CIVIL_STYLES["provinces"]["width"],
                  "fill": CIVIL_STYLES["provinces"]["stroke"], "fill_opacity": 0.0, "dash": LOW_DASH, "hatch": None,
                  "casing": LAND, "casing_width": CIVIL_STYLES["provinces"]["width"] + 1.0}


@dataclass(frozen=True)
class Font:
    """A label's look: DejaVu Sans ships with Debian, QGIS and the served MapLibre glyphs."""

    field: str = "name"
    family: str = "DejaVu Sans"
    bold: bool = False
    italic: bool = False
    size: float = 12.0  # px
    colour: str = INK
    halo: str = HALO
    halo_width: float = 1.5  # px
    min_zoom: int = 0  # web zoom from which it shows

    @property
    def fontstack(self) -> str:
        """The MapLibre font name (also a QGIS family + style)."""
        return " ".join([self.family] + (["Bold"] if self.bold else []) + (["Oblique"] if self.italic else []))


LABEL_STYLES = {
    "wilayahs": Font(field="label", bold=True, size=12.0, colour="#1a1a1a", min_zoom=4),
    "provinces": Font(size=11.0, colour="#5f5f5f", italic=True, min_zoom=5),
}


@dataclass(frozen=True)
class PlaceStyle:
    """How one kind of place is drawn: a marker (``star``, ``ring``: a dot in a circle, or ``dot``) of
    ``size`` px across, and its name beside it in ``font``, shown from ``font.min_zoom``. Names are in
    regular weight, so they never read as the bold unit labels."""

    title: str
    marker: str
    size: float  # px, the marker's width
    fill: str
    stroke: str
    stroke_width: float
    font: Font


# Place names (layers/places.py), most important first: capitals from the first view, cities closer in.
PLACE_STYLES = {
    "national-capital": PlaceStyle("National capital", "star", 11.0, INK, HALO, 0.8,
                                   Font(size=12.0, colour=INK, min_zoom=3)),
    "provincial-capital": PlaceStyle("Provincial or territorial capital", "ring", 9.0, HALO, INK, 1.6,
                                     Font(size=11.0, colour=INK, min_zoom=3)),
    "city": PlaceStyle("City", "dot", 6.0, INK, HALO, 0.6,
                       Font(size=10.0, colour="#4a4a4a", min_zoom=6)),
}
PLACE_GAP = 3.0  # px between a place's marker and its name
MINOR_CITY_MIN_ZOOM = 8  # cities of the second tier (layers/places.yaml) show from this web zoom

# Bottom to top. Renderers draw every fill in this order, then every outline in this order, then labels,
# so unit outlines lie over civil borders. Zones duplicate the units' fills: the atlas leaves them out.
DRAW_ORDER = ("countries", "tehsils", "districts", "divisions", "tribal-districts", "provinces", "zones",
              "wilayahs")
HIDDEN_IN_ATLAS = ("zones",)
CLAIMED_LAYERS = ("wilayahs", "zones")


# --- the model -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Symbol:
    """How one class of features is drawn (``fill`` None: no fill)."""

    stroke: str
    width: float
    fill: str | None = None
    fill_opacity: float = 0.0
    dash: tuple[float, ...] | None = None
    hatch: Hatch | None = None


@dataclass(frozen=True)
class StyleClass:
    """A legend entry and the features it draws: every ``(field, values)`` of ``where`` must hold; the
    value ``None`` alone means the property is absent or null."""

    key: str
    title: str
    where: tuple[tuple[str, tuple], ...]
    symbol: Symbol


@dataclass(frozen=True)
class LayerStyle:
    layer_id: str
    classes: tuple[StyleClass, ...]
    label: Font | None = None


def _look(zone: str | None, confidence: str, part: str) -> Symbol:
    colour = ZONE_COLOURS.get(zone, ZONE_COLOURS[None])
    if part == "extension":
        return Symbol(stroke=colour, width=EXTENSION_STROKE_WIDTH, fill=None, fill_opacity=0.0, dash=LOW_DASH,
                      hatch=Hatch(colour))
    look = CONFIDENCE_STYLES[confidence]
    return Symbol(stroke=colour, width=WILAYAH_STROKE_WIDTH, fill=colour, fill_opacity=look["fill_opacity"],
                  dash=look["dash"])


def claimed_classes(with_parts: bool) -> tuple[StyleClass, ...]:
    """The wilayah rule as classes: per zone, cores of high/medium and of low confidence, and extensions
    (``with_parts``: the zones layer has no parts)."""
    classes = []
    for zone, colour in ZONE_COLOURS.items():
        key, zone_where = ZONE_KEYS[zone], ("zone", (zone,))
        core = (("part", ("core",)),) if with_parts else ()
        classes += [StyleClass(f"{key}-core", ZONE_LABELS[zone],
                               (zone_where, *core, ("confidence", ("high", "medium"))), _look(zone, "medium", "core")),
                    StyleClass(f"{key}-low", f"{ZONE_LABELS[zone]}, low confidence",
                               (zone_where, *core, ("confidence", ("low",))), _look(zone, "low", "core"))]
        if with_parts:
            classes.append(StyleClass(f"{key}-extension", f"{ZONE_LABELS[zone]}, possible extension",
                                      (zone_where, ("part", ("extension",))), _look(zone, "low", "extension")))
    return tuple(classes)


def _civil(layer_id: str) -> LayerStyle:
    look = CIVIL_STYLES[layer_id]
    symbol = Symbol(stroke=look["stroke"], width=look["width"], fill=look["fill"] if look["fill_opacity"] else None,
                    fill_opacity=look["fill_opacity"], dash=look.get("dash"))
    return LayerStyle(layer_id, (StyleClass(layer_id, layer_id.replace("-", " ").capitalize(), (), symbol),),
                      LABEL_STYLES.get(layer_id))


LAYER_STYLES: dict[str, LayerStyle] = {
    **{lid: _civil(lid) for lid in CIVIL_STYLES},
    "wilayahs": LayerStyle("wilayahs", claimed_classes(with_parts=True), LABEL_STYLES["wilayahs"]),
    "zones": LayerStyle("zones", claimed_classes(with_parts=False)),
}


def matches(style_class: StyleClass, properties: dict) -> bool:
    return all(properties.get(field) in values for field, values in style_class.where)


def symbol_of(layer_id: str, properties: dict) -> Symbol:
    """The symbol of one feature: its layer's first matching class."""
    return next(c.symbol for c in LAYER_STYLES[layer_id].classes if matches(c, properties))


def status_notes(members: list[dict]) -> list[str]:
    """Legend lines for the hatched features of ``members`` whose status is not simply "claimed" (a
    continuation a later report leaves unnamed): "Status unknown since 2025-12-25", each once."""
    return list(dict.fromkeys(f"Status {p['status']}" for p in members if p.get("status") not in (None, "claimed")))


def label_text(properties: dict) -> str:
    """The label of a claimed unit or civil feature: a unit whose status is not simply "claimed" says
    its status (e.g. "(status unknown since 2025-12-25)"), any other extension says it is one."""
    name = properties.get("name") or ""
    if properties.get("status") not in (None, "claimed"):
        return f"{name} (status {properties['status']})"
    return f"{name} ({EXTENSION_LABEL})" if properties.get("part") == "extension" else name


# --- the dict view renderers read ------------------------------------------------------------

def as_dict(symbol: Symbol) -> dict:
    """``stroke``, ``width``, ``fill``, ``fill_opacity``, ``dash``, ``hatch`` (a matplotlib hatch string or
    None) and, when hatched, ``hatch_colour``, ``hatch_opacity``, ``hatch_spacing``, ``hatch_angle``,
    ``hatch_width``. ``fill`` is the stroke colour when there is no fill (with ``fill_opacity`` 0)."""
    out = {"stroke": symbol.stroke, "width": symbol.width, "fill": symbol.fill or symbol.stroke,
           "fill_opacity": symbol.fill_opacity if symbol.fill else 0.0, "dash": symbol.dash,
           "hatch": symbol.hatch.pattern if symbol.hatch else None}
    if symbol.hatch:
        out |= {"hatch_colour": symbol.hatch.colour, "hatch_opacity": symbol.hatch.opacity,
                "hatch_spacing": symbol.hatch.spacing, "hatch_angle": symbol.hatch.angle,
                "hatch_width": symbol.hatch.width}
    return out


def wilayah_style(zone: str | None, confidence: str, part: str = "core") -> dict:
    """Stroke, fill, dash and hatch of a claimed unit: coloured by zone, styled by part and confidence."""
    return feature_style("wilayahs", {"zone": zone, "confidence": confidence, "part": part})


def feature_style(layer_id: str, properties: dict) -> dict:
    """The style of one feature of any layer (claimed layers depend on zone, part and confidence; a zone
    not in the palette is drawn as "not reported")."""
    if layer_id in CLAIMED_LAYERS:
        properties = {"zone": properties.get("zone") if properties.get("zone") in ZONE_COLOURS else None,
                      "confidence": properties.get("confidence") or "medium",
                      "part": properties.get("part") or "core"}
    return as_dict(symbol_of(layer_id, properties))


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))


def rgba(colour: str, opacity: float = 1.0) -> tuple[int, int, int, int]:
    return (*hex_to_rgb(colour), round(255 * opacity))
