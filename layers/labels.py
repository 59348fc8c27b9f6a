"""Where claimed units are labelled: one placement model for the static exports and the web map.

A unit is labelled inside its own part (the core, never core and extension together) at the pole of
inaccessibility of that part's largest polygon, the point farthest from its edges, where a label
reads as "inside". Extensions get their own label, "<name> (possible extension)", at a lower
priority. Place names (``layers.places``) come after every unit: a name beside its marker.
``web_min_zooms`` resolves collisions per web zoom once, across units and places, so a web map only
has to show each label from its minimum zoom up.
"""

from __future__ import annotations

from dataclasses import dataclass

import mercantile
import numpy as np
import shapely
from shapely.ops import polylabel

from layers import places as places_model
from layers import style

POLYLABEL_TOLERANCE = 0.01  # degrees (~1 km): finer changes nothing a reader can see
PRIORITY = {"core": 0, "extension": 1, "place": 2}  # a place's label: 2 + its rank among the places
NEVER = 99  # min zoom of a label that collides at every zoom
TILE_PX = 256
CHAR_WIDTH_EM, LINE_HEIGHT_EM = 0.6, 1.3  # a label box from its text, without measuring a font
# Unit label boxes on the web (map and tiles) are sized for a font 2 px larger than the one drawn: DejaVu
# Sans Bold is wider than 0.6 em a character (checked by the browser test of label overlaps).
UNIT_FONT = style.LABEL_STYLES["wilayahs"]
UNIT_BOX_PX = round(UNIT_FONT.size) + 2


@dataclass(frozen=True)
class Label:
    feature_id: str  # id of the feature labelled
    text: str  # e.g. "Zhob" or "Zhob (possible extension)"
    lon: float  # anchor: pole of inaccessibility of the feature's own part
    lat: float
    priority: int  # 0 = most important (core units), larger = less (extensions, places, ...)
    part: str  # "core" | "extension" | "place"
    # Boxes the label may take on the web map, best first, in CSS px around the anchor (left, top, right,
    # bottom; y down; each holds the anchor): a place's name beside its marker on one of PLACE_SIDES.
    # Empty: the text centred on the anchor, at the font size asked for.
    boxes_px: tuple[tuple[float, float, float, float], ...] = ()


def largest_polygon(geom: shapely.Geometry) -> shapely.Geometry:
    parts = shapely.get_parts(geom)
    return parts[int(np.argmax(shapely.area(parts)))]


def anchor(geom: shapely.Geometry, tolerance: float = POLYLABEL_TOLERANCE) -> tuple[float, float]:
    """Pole of inaccessibility of the largest polygon: always inside it, far from its edges."""
    point = polylabel(largest_polygon(geom), tolerance)
    return float(point.x), float(point.y)


def unit_labels(atlas, layer_id: str, as_of: str) -> list[Label]:
    """A label for every claimed feature valid at ``as_of``, most important first (cores, then by size).

    Uses the full-resolution geometry, so the anchor is the same at every scale and in every output.
    """
    features = atlas.collections[layer_id]["features"]
    geoms = atlas.geometries[layer_id]
    found = []
    for i in atlas.valid_indices(layer_id, as_of, as_of):
        props = features[i]["properties"]
        part = props.get("part") or "core"
        lon, lat = anchor(geoms[i])
        label = Label(features[i]["id"], style.label_text(props), lon, lat, PRIORITY[part], part)
        found.append((label.priority, -float(shapely.area(largest_polygon(geoms[i]))), label))
    return [label for *_, label in sorted(found, key=lambda row: row[:2])]


# Where a place's name goes beside its marker, best first ("above-right": its lower edge at the marker's top)
PLACE_SIDES = ("right", "above-right", "below-right", "left", "above", "below")


def place_boxes(place: places_model.Place) -> tuple[tuple[float, float, float, float], ...]:
    """A place's boxes on the web map, one per side of ``PLACE_SIDES``: its marker at the anchor, its
    name beside it."""
    look = style.PLACE_STYLES[place.kind]
    half, line = look.size / 2, LINE_HEIGHT_EM * look.font.size
    width, gap = CHAR_WIDTH_EM * look.font.size * len(place.name), style.PLACE_GAP
    side_half, mid_half, right = max(look.size, line) / 2, max(half, width / 2), half + gap + width
    return ((-half, -side_half, right, side_half), (-half, -half - line, right, half),
            (-half, -half, right, half + line),
            (-half - gap - width, -side_half, half, side_half), (-mid_half, -half - gap - line, mid_half, half),
            (-mid_half, -half, mid_half, half + gap + line))


def place_labels(places: list[places_model.Place]) -> list[Label]:
    """Labels of places (``layers.places``), after every unit label and in the places' own order."""
    return [Label(place.id, place.name, place.lon, place.lat, PRIORITY["place"] + place.priority, "place",
                  place_boxes(place)) for place in places]


def world_pixels(labels: list[Label]) -> np.ndarray:
    """Anchors as fractions of the web-mercator world (x right, y down): pixels at zoom z are * 256 * 2**z."""
    half = mercantile.xy(180.0, 0.0)[0]
    xy = np.array([mercantile.xy(label.lon, label.lat) for label in labels], dtype=float).reshape(-1, 2)
    return np.column_stack([(xy[:, 0] + half) / (2 * half), (half - xy[:, 1]) / (2 * half)])


def box_sizes(labels: list[Label], font_px: int) -> np.ndarray:
    """(width, height) in screen pixels of each label, from its length in characters."""
    return np.array([(CHAR_WIDTH_EM * font_px * len(label.text), LINE_HEIGHT_EM * font_px) for label in labels],
                    dtype=float).reshape(-1, 2)


def box_extents(labels: list[Label], font_px: int) -> list[np.ndarray]:
    """Per label, its candidate boxes (left, top, right, bottom) in screen pixels around its anchor: its
    own ``boxes_px``, or its text centred on the anchor."""
    half = box_sizes(labels, font_px) / 2
    return [np.array(label.boxes_px or [(-w, -h, w, h)], dtype=float)
            for label, (w, h) in zip(labels, half, strict=True)]


def overlaps(centre, box, centres, boxes, zooms) -> np.ndarray:
    """Per row, whether the label box (extents around its anchor) at ``centre`` overlaps the row's box on
    screen at the row's zoom."""
    gap = (np.asarray(centres) - centre) * (TILE_PX * 2.0 ** np.asarray(zooms, dtype=float))[:, None]
    return np.all((box[:2] - boxes[:, 2:] < gap) & (gap < box[2:] - boxes[:, :2]), axis=1)


def web_min_zooms(labels: list[Label], font_px: int = 12, zooms=range(3, 15),
                  floors: dict[str, float] | None = None) -> dict[str, int]:
    """Feature id -> the lowest zoom from which its label shows clear of every label of higher priority
    (and not below its ``floors`` entry, the zoom its layer or kind of place starts at)."""
    return {fid: zoom for fid, (zoom, _) in web_placements(labels, font_px, zooms, floors).items()}


def web_placements(labels: list[Label], font_px: int = 12, zooms=range(3, 15),
                   floors: dict[str, float] | None = None) -> dict[str, tuple[int, int]]:
    """Feature id -> (min zoom, which of its boxes): the lowest zoom from which one of its boxes (the
    first such) is clear of every label of higher priority, not below its ``floors`` entry.

    Greedy by priority (ties keep the given order). Label boxes have a fixed size in pixels and each
    holds its anchor, while the distances between anchors double with each zoom, so two labels clear of
    each other at a zoom stay clear at every higher one: showing each label from its min zoom up never
    overlaps. Labels that collide even at the highest zoom get ``NEVER`` (99).
    """
    zooms = sorted(zooms)
    order = sorted(range(len(labels)), key=lambda i: labels[i].priority)
    centres, candidates = world_pixels(labels), box_extents(labels, font_px)
    placed, placed_boxes, placed_zooms = [], [], []  # label indices, their boxes and min zooms
    result = {}
    for i in order:
        floor = (floors or {}).get(labels[i].feature_id, zooms[0])
        others = np.array(placed_boxes, dtype=float).reshape(-1, 4)
        zoom, side = next(((z, k) for z in zooms if z >= floor for k, box in enumerate(candidates[i])
                           if not overlaps(centres[i], box, centres[placed], others,
                                           np.maximum(z, placed_zooms)).any()), (NEVER, 0))
        result[labels[i].feature_id] = (zoom, side)
        if zoom != NEVER:
            placed.append(i)
            placed_boxes.append(candidates[i][side])
            placed_zooms.append(zoom)
    return result


def web_labels(units: list[Label], shown: list[places_model.Place], zooms, unit_font_px: int = UNIT_BOX_PX,
               unit_min_zoom: float = UNIT_FONT.min_zoom) -> list[tuple[Label, int, str]]:
    """(label, web min zoom, side) of unit labels and place names together, for any web output (the
    web map; tiles that carry labels): collisions resolved per zoom across both, units first, each from
    its own zoom up (``unit_min_zoom``; a place's ``min_zoom``); ``side`` is where a place's name goes
    beside its marker (``PLACE_SIDES``; "right" for units, which are centred). ``NEVER`` for a label
    that never fits."""
    chosen = units + place_labels(shown)
    floors = {label.feature_id: unit_min_zoom for label in units} | {p.id: p.min_zoom for p in shown}
    found = web_placements(chosen, font_px=unit_font_px, zooms=zooms, floors=floors)
    return [(label, found[label.feature_id][0], PLACE_SIDES[found[label.feature_id][1]]) for label in chosen]
