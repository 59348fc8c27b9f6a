"""Whole-layer downloads in the formats GIS users exchange, each carrying licence, credits and caveat.

GDAL (through pyogrio) writes every format it can; TopoJSON comes from the ``topojson`` package.
Each file is produced at most once per build and process: it is written atomically into a cache
folder keyed by the build, so worker processes share it and a rebuild never serves a stale file.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pyogrio
import topojson

from geo import atomic, geojson
from layers import build, catalogue, store
from layers.features import layer_metadata

CRS84_NAME = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}  # GDAL reads it
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: same layer in, same archive out


class FormatError(ValueError):
    """An unknown format or layer; the message names the valid ones."""


@dataclass(frozen=True)
class Format:
    key: str  # URL suffix: /collections/{id}/download.{key}
    title: str
    mimetype: str
    driver: str | None = None  # GDAL driver, None when written without GDAL
    options: dict = field(default_factory=dict)  # GDAL layer creation options


FORMATS: dict[str, Format] = {f.key: f for f in (
    Format("geojson", "GeoJSON", "application/geo+json"),
    Format("gpkg", "GeoPackage", "application/geopackage+sqlite3", "GPKG"),
    Format("shp.zip", "Shapefile (zipped)", "application/zip", "ESRI Shapefile", {"ENCODING": "UTF-8"}),
    Format("fgb", "FlatGeobuf", "application/flatgeobuf", "FlatGeobuf"),
    Format("kml", "KML", "application/vnd.google-earth.kml+xml", "LIBKML"),
    Format("csv", "CSV with WKT geometry", "text/csv", "CSV", {"GEOMETRY": "AS_WKT"}),
    Format("topojson", "TopoJSON", "application/json"),
)}


def file_name(layer_id: str, key: str) -> str:
    return f"{layer_id}.{key}"


def metadata_text(meta: dict) -> str:
    """The plain-text notice shipped inside formats without metadata fields (zipped Shapefile)."""
    lines = [meta["title"], "", meta["description"], "", f"Licence: {meta['licence']}",
             *(f"  {d['title']}: {d['licence']} <{d['url']}>" for d in meta["licences"]),
             f"Attribution: {meta['attribution']}"]
    if "caveat" in meta:
        lines += ["", "CAVEAT: " + meta["caveat"]]
    return "\n".join(lines) + "\n"


def _properties(props: dict, meta: dict) -> dict:
    """A feature's properties with the licence, credits and caveat that must travel with it."""
    extra = {k: meta[k] for k in ("licence", "attribution", "caveat") if k in meta}
    return {**props, **{k: v for k, v in extra.items() if k not in props}}


def _frame(atlas: store.Atlas, layer_id: str, meta: dict) -> gpd.GeoDataFrame:
    return build.flat_frame([_properties(f["properties"], meta) for f in atlas.features(layer_id)],
                            atlas.geometries[layer_id])


def _collection(atlas: store.Atlas, layer_id: str, meta: dict) -> dict:
    features = [{**f, "properties": _properties(f["properties"], meta)} for f in atlas.features(layer_id)]
    return geojson.feature_collection(features, name=layer_id, **{k: v for k, v in meta.items()})


def _write_gdal(atlas: store.Atlas, layer_id: str, fmt: Format, meta: dict, path: Path) -> None:
    """Metadata where the format has room for it: GPKG/FlatGeobuf layer fields, the KML document."""
    layer_meta = {k.upper(): v for k, v in meta.items() if isinstance(v, str)}
    options, dataset_options = dict(fmt.options), {}
    if fmt.driver == "GPKG":
        options.update(IDENTIFIER=meta["title"], DESCRIPTION=meta["description"])
    elif fmt.driver == "FlatGeobuf":
        options.update(TITLE=meta["title"], DESCRIPTION=meta["description"])
    elif fmt.driver == "LIBKML":
        dataset_options = {"NAME": meta["title"], "DESCRIPTION": metadata_text(meta)}
    with warnings.catch_warnings(), build.gdal_config(OGR_CURRENT_DATE=build.FIXED_DATE):
        warnings.simplefilter("ignore", RuntimeWarning)  # Shapefile's 10-character field names
        pyogrio.write_dataframe(_frame(atlas, layer_id, meta), path, layer=layer_id, driver=fmt.driver,
                                promote_to_multi=fmt.driver != "CSV", layer_options=options,
                                dataset_options=dataset_options,
                                layer_metadata=layer_meta if fmt.driver in ("GPKG", "FlatGeobuf") else None)


def _write_shapefile_zip(atlas: store.Atlas, layer_id: str, fmt: Format, meta: dict, path: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        shp = Path(folder) / f"{layer_id}.shp"
        _write_gdal(atlas, layer_id, fmt, meta, shp)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for member in sorted(Path(folder).iterdir()):
                archive.writestr(zipfile.ZipInfo(member.name, ZIP_DATE), member.read_bytes(),
                                 zipfile.ZIP_DEFLATED)
            archive.writestr(zipfile.ZipInfo(f"{layer_id}.README.txt", ZIP_DATE), metadata_text(meta),
                             zipfile.ZIP_DEFLATED)


def _topojson(atlas: store.Atlas, layer_id: str, meta: dict) -> bytes:
    """Shared borders stored once (arcs), coordinates kept exact (no quantisation)."""
    topology = topojson.Topology(_collection(atlas, layer_id, meta), object_name=layer_id,
                                 prequantize=False).to_dict()
    return json.dumps({**topology, "crs": CRS84_NAME, **meta}, ensure_ascii=False, separators=(",", ":")).encode()


def produce(atlas: store.Atlas, layer_id: str, key: str, path: Path) -> None:
    """Write one layer in one format to ``path`` (atomically)."""
    fmt = FORMATS[key]
    meta = layer_metadata(atlas, layer_id)
    if key == "geojson":
        atomic.write_bytes(path, geojson.dumps(_collection(atlas, layer_id, meta)))
    elif key == "topojson":
        atomic.write_bytes(path, _topojson(atlas, layer_id, meta))
    else:
        writer = _write_shapefile_zip if key == "shp.zip" else _write_gdal
        with atomic.staged_file(path) as staged:
            writer(atlas, layer_id, fmt, meta, staged)


def cache_dir(atlas: store.Atlas) -> Path:
    """Per-build folder in the user cache: the build folder itself stays exactly what the build wrote."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ttp-atlas" / "downloads" / atlas.build_id


_locks: dict[tuple[str, str, str], threading.Lock] = {}
_guard = threading.Lock()


def check(layer_id: str, key: str) -> None:
    if layer_id not in catalogue.LAYER_IDS:
        raise FormatError(f"unknown layer {layer_id!r}; valid layers: {', '.join(catalogue.LAYER_IDS)}")
    if key not in FORMATS:
        raise FormatError(f"unknown format {key!r}; valid formats: {', '.join(FORMATS)}")


def download(atlas: store.Atlas, layer_id: str, key: str) -> Path:
    """The cached file of a layer in a format, produced on first use (once, even with threads)."""
    check(layer_id, key)
    path = cache_dir(atlas) / file_name(layer_id, key)
    with _guard:
        lock = _locks.setdefault((str(path), layer_id, key), threading.Lock())
    with lock:
        if not path.is_file():
            produce(atlas, layer_id, key, path)
    return path
