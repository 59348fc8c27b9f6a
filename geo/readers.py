"""Read the staged boundary datasets into GeoDataFrames (EPSG:4326) with pyogrio/GDAL."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pyogrio
import shapely

from geo.geometry import cut_antimeridian
from geo.datasets import COD_GDB, COD_LINE_OF_CONTROL, NE_COUNTRIES, OSM_GEOGRAPHY, DataError


def _read(path: Path, repair=shapely.make_valid, **kwargs) -> gpd.GeoDataFrame:
    try:
        frame = pyogrio.read_dataframe(path, **kwargs)
    except Exception as error:  # GDAL raises several types for an unreadable file
        raise DataError(f"cannot read {path} ({kwargs.get('layer', '')}): {error}") from error
    frame = frame.set_crs("EPSG:4326", allow_override=True)
    frame["geometry"] = repair(frame.geometry.values)
    return frame


def cod_line_of_control(root: Path) -> shapely.Geometry:
    """COD-AB's Line of Control (``admLevel`` 87), its 21 segments merged into one line."""
    return shapely.line_merge(shapely.union_all(_read(root / COD_LINE_OF_CONTROL).geometry.values))


def cod_admin(root: Path, level: int) -> gpd.GeoDataFrame:
    """COD-AB level 1 (provinces), 2 (districts) or 3 (tehsils), from the File Geodatabase."""
    return _read(root / COD_GDB, layer=f"pak_admbnda_adm{level}_wfp_20220909")


def osm_layer(root: Path, layer: str) -> gpd.GeoDataFrame:
    """A layer (provinces, divisions, districts) of the OSM-derived TopoJSON bundle."""
    return _read(root / OSM_GEOGRAPHY, layer=layer)


def countries(root: Path) -> gpd.GeoDataFrame:
    """Natural Earth 1:50m countries (id = ISO 3166-1 numeric), cut at the antimeridian for planar use."""
    def repair(geoms):  # before make_valid, which would tear the rings that step over ±180° into strips
        return [cut_antimeridian(g) for g in geoms]
    return _read(root / NE_COUNTRIES, repair=repair, layer="countries")
