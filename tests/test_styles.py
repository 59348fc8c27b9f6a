"""The palette and the style model (``layers.style``): colour-blind safety computed from the style itself."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from colorspacious import cspace_convert, deltaE

from layers import style

VISIONS = {"normal": None, "deuteranopia": "deuteranomaly", "protanopia": "protanomaly",
           "tritanopia": "tritanomaly"}


def seen(rgb: np.ndarray, cvd_type: str | None) -> np.ndarray:
    """sRGB1 colour as seen with full-severity colour-vision deficiency (Machado et al. 2009)."""
    if cvd_type is None:
        return rgb
    return np.clip(cspace_convert(rgb, {"name": "sRGB1+CVD", "cvd_type": cvd_type, "severity": 100}, "sRGB1"), 0, 1)


def over_land(colour: str, opacity: float) -> np.ndarray:
    return (opacity * np.array(style.hex_to_rgb(colour)) + (1 - opacity) * np.array(style.hex_to_rgb(style.LAND))) / 255


def shown_together() -> dict[tuple[str, str], np.ndarray]:
    """(zone key, what) -> drawn colour: each zone's core fill at its drawn opacity over land, each zone's
    extension hatch at its opacity, and land itself, read from the wilayah style classes."""
    colours = {("land", "land"): over_land(style.LAND, 1.0)}
    for cls in style.LAYER_STYLES["wilayahs"].classes:
        zone = cls.key.split("-")[0]
        if cls.symbol.fill:
            colours[(zone, f"fill {cls.symbol.fill}@{cls.symbol.fill_opacity}")] = over_land(cls.symbol.fill, cls.symbol.fill_opacity)
        if cls.symbol.hatch:
            hatch = cls.symbol.hatch
            colours[(zone, f"hatch {hatch.colour}@{hatch.opacity}")] = over_land(hatch.colour, hatch.opacity)
    return colours


def test_every_pair_of_zone_colours_differs_by_delta_e_20_under_every_vision():
    """ΔE is the Euclidean distance in CAM02-UCS (colorspacious ``deltaE``, Luo et al. 2006), where ~1 is a just
    noticeable difference; CVD simulated with ``sRGB1+CVD`` at severity 100. Pairs of the same zone (a unit's
    fill and its own hatch) are meant to look alike and are not compared."""
    colours = shown_together()
    assert len(colours) == 1 + 2 * len(style.ZONE_COLOURS)
    worst = []
    for ((zone_a, a), rgb_a), ((zone_b, b), rgb_b) in itertools.combinations(colours.items(), 2):
        if zone_a == zone_b:
            continue
        for vision, cvd in VISIONS.items():
            worst.append((float(deltaE(seen(rgb_a, cvd), seen(rgb_b, cvd), input_space="sRGB1")), a, b, vision))
    worst.sort()
    assert worst[0][0] >= 20, f"too close: {worst[:3]}"


def test_the_old_palette_would_fail():
    """The test can fail: blue north against purple not-reported at 22% (the old palette) is ~ΔE 3 for deuteranopes."""
    north, none = over_land("#1f6fb4", 0.22), over_land("#7a4fa3", 0.22)
    assert deltaE(seen(north, "deuteranomaly"), seen(none, "deuteranomaly"), input_space="sRGB1") < 20


@pytest.mark.parametrize("zone", list(style.ZONE_COLOURS))
def test_the_wilayah_rule(zone):
    core = style.wilayah_style(zone, "medium")
    low = style.wilayah_style(zone, "low")
    extension = style.wilayah_style(zone, "low", "extension")
    colour = style.ZONE_COLOURS[zone]
    assert core["fill"] == low["fill"] == colour and core["dash"] is None and low["dash"]
    assert core["hatch"] is None and low["hatch"] is None
    assert extension["fill_opacity"] == 0 and extension["hatch"] and extension["hatch_colour"] == colour
    assert style.feature_style("wilayahs", {"zone": zone, "part": "extension", "confidence": "medium"}) == extension


def test_every_feature_of_a_claimed_layer_has_a_class(atlas):
    for layer_id in style.CLAIMED_LAYERS:
        for feature in atlas.features(layer_id):
            hits = [c.key for c in style.LAYER_STYLES[layer_id].classes if style.matches(c, feature["properties"])]
            assert len(hits) == 1, (feature["id"], hits)


def test_tribal_districts_are_an_outline_and_every_layer_is_styled():
    from layers import catalogue

    assert style.feature_style("tribal-districts", {})["fill_opacity"] == 0
    assert set(style.LAYER_STYLES) == set(catalogue.LAYER_IDS) == set(style.DRAW_ORDER)
