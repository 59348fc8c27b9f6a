"""Simplification for web zooms that keeps a coverage a coverage (shared borders stay shared)."""

from __future__ import annotations

import numpy as np
import shapely

from geo.geometry import polygonal

TILE_SIZE = 256


def degrees_per_pixel(zoom: int) -> float:
    """Width of one 256-px tile pixel in degrees of longitude at ``zoom`` (Web Mercator)."""
    return 360.0 / (TILE_SIZE * 2**zoom)


def simplify_coverage(geoms, tolerance: float) -> np.ndarray:
    """``shapely.coverage_simplify`` that returns only valid polygons (no slivers, no gaps between parts).

    Simplifying each polygon alone would move shared edges differently on each side; simplifying the
    coverage moves them once, so neighbours still meet.
    """
    simplified = shapely.coverage_simplify(np.asarray(geoms, dtype=object), tolerance)
    invalid = ~shapely.is_valid(simplified)
    simplified[invalid] = shapely.make_valid(simplified[invalid])
    return np.array([polygonal(g) for g in simplified], dtype=object)
