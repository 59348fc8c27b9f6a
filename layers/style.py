"""Colours and line styles, defined once for the web map, the tiles and the static exports."""

from __future__ import annotations

ZONE_COLOURS = {"north": "#1f6fb4", "south": "#d7301f", None: "#7a4fa3"}
ZONE_LABELS = {"north": "North zone", "south": "South zone", None: "Zone not reported"}

# How confidence is drawn: solid outline for medium/high, dashed and hatched for low.
CONFIDENCE_STYLES = {
    "high": {"dash": None, "hatch": None, "fill_opacity": 0.30, "label": "High: a source names the districts"},
    "medium": {"dash": None, "hatch": None, "fill_opacity": 0.22,
               "label": "Medium: the name matches a civil division"},
    "low": {"dash": (6, 4), "hatch": "//", "fill_opacity": 0.10, "label": "Low: inferred or unconfirmed"},
}

# Civil and context layers: outline colour, width (px at 96 dpi), fill colour and opacity.
CIVIL_STYLES = {
    "countries": {"stroke": "#9e9e9e", "width": 0.8, "fill": "#f2efe9", "fill_opacity": 1.0},
    "provinces": {"stroke": "#3c3c3c", "width": 1.6, "fill": "#ffffff", "fill_opacity": 0.0},
    "divisions": {"stroke": "#5f5f5f", "width": 1.0, "fill": "#ffffff", "fill_opacity": 0.0},
    "districts": {"stroke": "#8c8c8c", "width": 0.6, "fill": "#ffffff", "fill_opacity": 0.0},
    "tehsils": {"stroke": "#b5b5b5", "width": 0.4, "fill": "#ffffff", "fill_opacity": 0.0},
    "tribal-districts": {"stroke": "#6b4e16", "width": 1.2, "fill": "#d9b65b", "fill_opacity": 0.25},
}
BACKGROUND = "#cfe3ef"  # sea and outside the data
INK = "#3c3c3c"  # map text, north arrow, frames and neutral legend swatches
HALO = "#ffffff"  # outline behind labels so they read over any fill
LAND = CIVIL_STYLES["countries"]["fill"]
WILAYAH_STROKE_WIDTH = 2.0


def wilayah_style(zone: str | None, confidence: str) -> dict:
    """Stroke, fill and dash for a claimed unit: coloured by zone, styled by confidence."""
    colour = ZONE_COLOURS.get(zone, ZONE_COLOURS[None])
    look = CONFIDENCE_STYLES[confidence]
    return {"stroke": colour, "width": WILAYAH_STROKE_WIDTH, "fill": colour,
            "fill_opacity": look["fill_opacity"], "dash": look["dash"], "hatch": look["hatch"]}


def feature_style(layer_id: str, properties: dict) -> dict:
    """The style of one feature of any layer (claimed layers depend on zone and confidence)."""
    if layer_id in ("wilayahs", "zones"):
        return wilayah_style(properties.get("zone"), properties.get("confidence") or "medium")
    return {**CIVIL_STYLES[layer_id], "dash": None, "hatch": None}


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))
