"""Where claimed units are labelled: one placement model for the static exports and the web map.

A unit is labelled inside its own part (the core, never core and extension together) at the pole of
inaccessibility of that part's largest polygon, the point farthest from its edges, where a label
reads as "inside". Extensions get their own label, "<name> (possible extension)", at a lower
priority. ``web_min_zooms`` resolves collisions per web zoom once, so a web map only has to show
each label from its minimum zoom up.
"""

from __future__ import annotations

from dataclasses import dataclass

import mercantile
import numpy as np
import shapely
from shapely.ops import polylabel

from layers import style

POLYLABEL_TOLERANCE = 0.01  # degrees (~1 km): finer changes nothing a reader can see
PRIORITY = {"core": 0, "extension": 1}
NEVER = 99  # min zoom of a label that collides at every zoom
TILE_PX = 256
CHAR_WIDTH_EM, LINE_HEIGHT_EM = 0.6, 1.3  # a label box from its text, without measuring a font


@dataclass(frozen=True)
class Label:
    feature_id: str  # id of the feature labelled
    text: str  # e.g. "Zhob" or "Zhob (possible extension)"
    lon: float  # anchor: pole of inaccessibility of the feature's own part
    lat: float
    priority: int  # 0 = most important (core units), larger = less (extensions, ...)
    part: str  # "core" | "extension"


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


def world_pixels(labels: list[Label]) -> np.ndarray:
    """Anchors as fractions of the web-mercator world (x right, y down): pixels at zoom z are * 256 * 2**z."""
    half = mercantile.xy(180.0, 0.0)[0]
    xy = np.array([mercantile.xy(label.lon, label.lat) for label in labels], dtype=float).reshape(-1, 2)
    return np.column_stack([(xy[:, 0] + half) / (2 * half), (half - xy[:, 1]) / (2 * half)])


def box_sizes(labels: list[Label], font_px: int) -> np.ndarray:
    """(width, height) in screen pixels of each label, from its length in characters."""
    return np.array([(CHAR_WIDTH_EM * font_px * len(label.text), LINE_HEIGHT_EM * font_px) for label in labels],
                    dtype=float).reshape(-1, 2)


def overlap(centre_a, size_a, centre_b, size_b, zoom: int) -> bool:
    """Whether two centred label boxes overlap on screen at ``zoom``."""
    scale = TILE_PX * 2 ** zoom
    gap = np.abs(np.subtract(centre_a, centre_b)) * scale
    return bool(np.all(gap < (np.asarray(size_a) + np.asarray(size_b)) / 2))


def web_min_zooms(labels: list[Label], font_px: int = 12, zooms=range(3, 15)) -> dict[str, int]:
    """Feature id -> the lowest zoom from which its label shows clear of every label of higher priority.

    Greedy by priority (ties keep the given order). Label boxes have a fixed size in pixels while
    the distances between anchors double with each zoom, so two labels clear of each other at a zoom
    stay clear at every higher one: showing each label from its min zoom up never overlaps. Labels
    that collide even at the highest zoom get ``NEVER`` (99).
    """
    zooms = sorted(zooms)
    order = sorted(range(len(labels)), key=lambda i: labels[i].priority)
    centres, sizes = world_pixels(labels), box_sizes(labels, font_px)
    placed: list[tuple[int, int]] = []  # (label index, min zoom)
    result = {}
    for i in order:
        zoom = next((z for z in zooms
                     if not any(overlap(centres[i], sizes[i], centres[j], sizes[j], max(z, zj)) for j, zj in placed)),
                    NEVER)
        result[labels[i].feature_id] = zoom
        if zoom != NEVER:
            placed.append((i, zoom))
    return result
