"""Vectorised geometry helpers on shapely 2 arrays: areas, splits, unions, output precision."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from pyproj import Transformer

# World Cylindrical Equal Area: areas in m² anywhere on the map, good enough for tolerances in km².
_EQUAL_AREA = Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True)
OUTPUT_GRID = 1e-6  # degrees; RFC 7946 output keeps 6 decimals (about 0.1 m)


def reproject(geoms, transformer: Transformer, inverse: bool = False) -> np.ndarray:
    """Geometries through a pyproj transformer (always_xy), vectorised over every vertex."""
    direction = "INVERSE" if inverse else "FORWARD"
    return shapely.transform(np.asarray(geoms, dtype=object),
                             lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1], direction=direction)))


def area_km2(geoms) -> np.ndarray:
    """Area of lon/lat geometries in km² (equal-area projection)."""
    return shapely.area(reproject(geoms, _EQUAL_AREA)) / 1e6


def union(geoms: Sequence) -> shapely.Geometry:
    """Union of polygons that form a coverage (no overlaps): faster and exact on shared edges."""
    return shapely.coverage_union_all(np.asarray(geoms, dtype=object))


def split(parent: shapely.Geometry, parts: Sequence[shapely.Geometry]) -> list[shapely.Geometry]:
    """Cut ``parent`` into each part's share and a remainder, so the pieces tile the parent exactly.

    Sub-units (tehsils) rarely follow their district's edge to the vertex; clipping by the parent
    and giving the remainder to the last piece keeps districts gap- and overlap-free.
    """
    pieces = [shapely.intersection(parent, part) for part in parts]
    remainder = shapely.difference(parent, shapely.union_all(pieces))
    return [shapely.make_valid(p) for p in (*pieces, remainder)]


def largest_overlap(geoms: Sequence, candidates: Sequence) -> np.ndarray:
    """For each geometry, the index of the candidate it shares most area with (-1 for none)."""
    geoms, candidates = np.asarray(geoms, dtype=object), np.asarray(candidates, dtype=object)
    tree = shapely.STRtree(candidates)
    left, right = tree.query(geoms, predicate="intersects")
    shared = area_km2(shapely.intersection(geoms[left], candidates[right]))
    best = np.full(len(geoms), -1)
    best_area = np.zeros(len(geoms))
    for i, j, a in zip(left, right, shared, strict=True):
        if a > best_area[i]:
            best[i], best_area[i] = j, a
    return best


TOUCH = 1e-7  # degrees (about 1 cm): overlays move shared vertices by less, so edges within it are shared


def refit(neighbours: Sequence, old: shapely.Geometry, new: shapely.Geometry) -> np.ndarray:
    """The neighbours of a polygon whose outline ``old`` is replaced by ``new`` (two sources' borders).

    Each neighbour loses what ``new`` covers and gains the slivers of ``old`` that ``new`` leaves, each
    to the neighbour sharing most of its edge (slivers touching no neighbour, e.g. along a coast, are
    dropped): the result has no overlaps with ``new`` and no slivers between them, so one border is drawn.
    """
    neighbours = np.array(neighbours, dtype=object)
    near = shapely.STRtree(neighbours).query(shapely.union(old, new), predicate="intersects")
    if near.size == 0:
        return neighbours
    slivers = shapely.get_parts(shapely.difference(old, new))
    reach = shapely.buffer(neighbours[near], TOUCH)
    shared = np.array([[shapely.length(shapely.intersection(shapely.boundary(s), r)) for r in reach]
                       for s in slivers]).reshape(len(slivers), len(near))
    owner = np.where(shared.max(axis=1) > 0, shared.argmax(axis=1), -1)
    for k, i in enumerate(near):
        grown = shapely.union_all([neighbours[i], *slivers[owner == k]])
        neighbours[i] = polygonal(shapely.difference(grown, new))
    return neighbours


def _unwrapped(ring: np.ndarray, near: float | None = None) -> np.ndarray:
    """A ring's lon/lat with longitudes made continuous (a step over the antimeridian does not jump 360°),
    shifted by whole turns so that its mean lies nearest ``near``."""
    lon = np.unwrap(ring[:, 0], period=360.0)
    if near is not None:
        lon = lon - 360.0 * np.round((lon.mean() - near) / 360.0)
    return np.column_stack([lon, ring[:, 1]])


def cut_antimeridian(geom: shapely.Geometry) -> shapely.Geometry:
    """A polygon whose rings step over the antimeridian as short spherical edges (Natural Earth as
    world-atlas stitches it), cut into planar parts either side of ±180°; a ring around a pole is
    closed along the pole. Read planar, such rings would be strips across the whole world. The result
    is valid (``make_valid``)."""
    pieces = []
    for polygon in shapely.get_parts(geom):
        rings = [shapely.get_coordinates(r) for r in (polygon.exterior, *polygon.interiors)]
        if all(np.abs(np.diff(r[:, 0])).max(initial=0) <= 180 for r in rings):
            pieces.append(shapely.make_valid(polygon))
            continue
        shell = _unwrapped(rings[0])
        if abs(shell[-1, 0] - shell[0, 0]) > 180:  # winds once around a pole
            pole = -90.0 if shell[:, 1].mean() < 0 else 90.0
            shell = np.vstack([shell, [[shell[-1, 0], pole], [shell[0, 0], pole]], shell[:1]])
        holes = [_unwrapped(r, shell[:, 0].mean()) for r in rings[1:]]
        planar = shapely.make_valid(shapely.Polygon(shell, holes))
        for turn in (-360.0, 0.0, 360.0):
            moved = shapely.transform(planar, lambda xy, t=turn: xy + [t, 0.0])
            pieces.append(shapely.clip_by_rect(moved, -180.0, -90.0, 180.0, 90.0))
    return polygonal(shapely.union_all([polygonal(p) for p in pieces]))


def polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """Keep only the polygons of a geometry (make_valid and overlays can leave lines and points)."""
    if shapely.get_type_id(geom) in (3, 6):
        return geom
    parts = [g for g in shapely.get_parts(geom) if shapely.get_type_id(g) in (3, 6)]
    return shapely.multipolygons(list(shapely.get_parts(parts))) if parts else shapely.Polygon()


def for_output(geoms) -> np.ndarray:
    """Snap to the 6-decimal output grid (staying valid) and orient exteriors counter-clockwise."""
    snapped = shapely.set_precision(np.asarray(geoms, dtype=object), OUTPUT_GRID)
    snapped = np.array([polygonal(g) for g in snapped], dtype=object)
    return shapely.orient_polygons(snapped)
