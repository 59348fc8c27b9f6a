"""Per-zoom geometry for web maps and tiles, computed once at build time.

Only the base coverages are simplified (districts, tehsils, countries). Every layer made of districts
(divisions, provinces, tribal districts, wilayahs, zones) is re-unioned from the simplified districts,
so at any zoom a wilayah's edge is exactly its districts' edge: no slivers, no gaps, no drift.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from geo.simplify import degrees_per_pixel, simplify_coverage

BASE_LAYERS = ("districts", "tehsils", "countries")
LEVELS = (0, 2, 4, 6, 8, 10, 12)  # level L serves zooms L and L+1; from MAX_ZOOM on, full detail
FULL_DETAIL_ZOOM = 14
GENERALISED_FILE = "generalised.gpkg"


def level_for(zoom: int) -> int | None:
    """The precomputed level for a web zoom, or None where full detail is wanted."""
    if zoom >= FULL_DETAIL_ZOOM:
        return None
    return max(level for level in LEVELS if level <= max(zoom, 0))


def tolerance(level: int) -> float:
    """Half a pixel at the deepest zoom the level serves: invisible on screen."""
    return 0.5 * degrees_per_pixel(level + 1)


def levels(base: dict[str, np.ndarray]) -> dict[tuple[str, int], np.ndarray]:
    """Simplified geometry of each base layer at each level.

    Each level is simplified from the next finer one, not from full detail: a fraction of the vertices
    to visit, and the tolerances (halving per level) add up to under 4/3 of the coarsest's.
    """
    simplified = {}
    for layer_id, geoms in base.items():
        for level in sorted(LEVELS, reverse=True):
            geoms = simplified[layer_id, level] = simplify_coverage(geoms, tolerance(level))
    return simplified


def write(path: Path, simplified: dict[tuple[str, int], np.ndarray], ids: dict[str, list[str]]) -> None:
    """One GeoPackage table per (base layer, level): ``districts_z4`` etc., rows aligned by ``id``."""
    for (layer_id, level), geoms in sorted(simplified.items()):
        frame = gpd.GeoDataFrame({"id": ids[layer_id]}, geometry=list(geoms), crs="EPSG:4326")
        pyogrio.write_dataframe(frame, path, layer=f"{layer_id.replace('-', '_')}_z{level}", driver="GPKG",
                                promote_to_multi=True)


def read(path: Path, layer_id: str, level: int) -> np.ndarray:
    frame = pyogrio.read_dataframe(path, layer=f"{layer_id.replace('-', '_')}_z{level}")
    return frame.geometry.values.to_numpy() if hasattr(frame.geometry.values, "to_numpy") \
        else np.asarray(frame.geometry.values, dtype=object)


def district_members(layer_id: str, features: list[dict], districts: list[dict]) -> list[list[int]]:
    """For each feature of a district-made layer, the indices of its districts."""
    index = {d["id"]: i for i, d in enumerate(districts)}
    if layer_id == "divisions":
        return [[i for i, d in enumerate(districts) if d["properties"]["division"] == f["properties"]["name"]]
                for f in features]
    if layer_id == "provinces":
        return [[i for i, d in enumerate(districts) if d["properties"]["province_pcode"] == f["id"]]
                for f in features]
    if layer_id == "tribal-districts":
        return [[index[f["id"]]] for f in features]
    if layer_id == "wilayahs":
        return [[index[m["id"]] for m in f["properties"]["member_districts"]] for f in features]
    raise KeyError(layer_id)


def zone_members(zones: list[dict], wilayahs: list[dict], districts: list[dict]) -> list[list[int]]:
    of_wilayah = dict(zip((w["id"] for w in wilayahs), district_members("wilayahs", wilayahs, districts),
                          strict=True))
    return [sorted({i for wid in z["properties"]["wilayahs"] for i in of_wilayah[wid]}) for z in zones]


def unions(base: np.ndarray, members: list[list[int]]) -> np.ndarray:
    return np.array([shapely.coverage_union_all(base[m]) for m in members], dtype=object)
