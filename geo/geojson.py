"""Deterministic RFC 7946 GeoJSON: same features in, same bytes out."""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import shapely


def _rounded(coords, decimals: int):
    if isinstance(coords[0], (int, float)):
        return [round(float(c), decimals) for c in coords]
    return [_rounded(c, decimals) for c in coords]


def geometry_dict(geom: shapely.Geometry, decimals: int = 6) -> dict | None:
    """GeoJSON geometry object with coordinates rounded to ``decimals``."""
    if geom is None or geom.is_empty:
        return None
    mapping = shapely.geometry.mapping(geom)
    return {"type": mapping["type"], "coordinates": _rounded(mapping["coordinates"], decimals)}


def as_multi(feature_dict: dict) -> dict:
    """The feature with a Polygon geometry written as a one-part MultiPolygon, so that a layer has one
    geometry type (GIS clients declare a layer's type from its first features)."""
    geometry = feature_dict.get("geometry")
    if not geometry or geometry["type"] != "Polygon":
        return feature_dict
    return {**feature_dict, "geometry": {"type": "MultiPolygon", "coordinates": [geometry["coordinates"]]}}


def feature(fid: str, properties: dict, geom: shapely.Geometry, decimals: int = 6) -> dict:
    return {"type": "Feature", "id": fid, "properties": properties, "geometry": geometry_dict(geom, decimals)}


def dumps(obj) -> bytes:
    """Compact, key-order-preserving UTF-8 JSON (stable across runs)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def feature_collection(features: Iterable[dict], **members) -> dict:
    return {"type": "FeatureCollection", **members, "features": list(features)}


def bbox(geoms) -> list[float]:
    """[minx, miny, maxx, maxy] over geometries (RFC 7946 bbox), rounded to 6 decimals."""
    bounds = shapely.total_bounds(np.asarray(geoms, dtype=object))
    return [round(float(v), 6) for v in bounds]
