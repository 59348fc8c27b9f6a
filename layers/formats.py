"""Whole-layer downloads in the formats GIS users exchange, lossless and each carrying licence, credits and caveat.

Every format keeps every property value and the CRS, as read back by GDAL (3.6 and later):
- typed columns: ISO dates become DATE columns (GeoPackage, Shapefile, FlatGeobuf, CSV via ``.csvt``),
  lists and objects become JSON text, nulls stay null;
- polygon layers are MultiPolygon in every output, and declared so;
- Shapefile: field names of at most 10 characters from ``SHAPEFILE_NAMES`` (listed in the zip's
  README); text longer than a dbf field holds (254 bytes) is replaced in the dbf by ``LONG_MARKER``
  and kept whole in ``{layer}.long.csv`` beside it, keyed by ``id``;
- CSV is zipped with its ``.csvt`` (column types) and ``.prj`` (CRS), which GDAL reads; an empty
  field is null (the data holds no empty strings: read it with GDAL's ``EMPTY_STRING_AS_NULL=YES``);
- KML keeps ``id`` in each Placemark's ExtendedData (and as the Placemark's own id);
- GeoPackage is version 1.2 (GDAL 3.6 reads it without warnings), with its ``layer_styles``.

GDAL (through pyogrio) writes every format it can; TopoJSON comes from the ``topojson`` package.
Each file is produced at most once per build and process: it is written atomically into a cache
folder keyed by the build, so worker processes share it and a rebuild never serves a stale file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyogrio.raw
import shapely
import topojson

from geo import atomic, geojson
from layers import build, gisstyles, store
from layers.features import Collection, collection_features, collection_indices, collections, layer_metadata

CRS84_NAME = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}  # GDAL reads it
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: same layer in, same archive out
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
KML_ID_FIELD = "placemark_id"  # LIBKML writes this column as each Placemark's id, ``id`` stays ExtendedData
DBF_TEXT_BYTES = 254  # the longest text a dbf field holds
# Shapefile (dbf) field names hold at most 10 characters: the longer property names, renamed.
SHAPEFILE_NAMES = {"member_districts": "members", "attribution": "credit", "parent_pcode": "parent_pc",
                   "province_pcode": "prov_pcode", "former_agency": "agency", "district_id": "distr_id",
                   "iso_numeric": "iso_num"}  # every property name longer than 10 characters, named by hand


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
    Format("gpkg", "GeoPackage 1.2 (with QGIS/SLD styles)", "application/geopackage+sqlite3", "GPKG"),
    Format("shp.zip", "Shapefile (zipped; long names and texts: see its README)", "application/zip",
           "ESRI Shapefile", {"ENCODING": "UTF-8"}),
    Format("fgb", "FlatGeobuf", "application/flatgeobuf", "FlatGeobuf"),
    Format("kml", "KML", "application/vnd.google-earth.kml+xml", "LIBKML"),
    Format("csv.zip", "CSV with WKT geometry, .csvt types and .prj CRS (zipped)", "application/zip", "CSV",
           {"GEOMETRY": "AS_WKT", "CREATE_CSVT": "YES"}),
    Format("topojson", "TopoJSON", "application/json"),
)}


def file_name(layer_id: str, key: str) -> str:
    return f"{layer_id}.{key}"


def metadata_text(meta: dict) -> str:
    """The plain-text notice shipped inside formats without metadata fields (zipped Shapefile, CSV)."""
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


def multipolygons(geoms) -> np.ndarray:
    """Polygons as one-part MultiPolygons, so a layer has one declared geometry type."""
    return np.array([shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g for g in geoms], dtype=object)


def text_value(value):
    """A property as a table cell: lists and objects as JSON text; strings and None as they are."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else value


def is_date_column(values: list) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, str) and ISO_DATE.fullmatch(v) for v in present)


def columns(properties: list[dict], dates: bool = True) -> dict[str, np.ndarray]:
    """Typed columns for GDAL's writers: dates as ``datetime64[D]`` (NaT for null), the rest as text."""
    keys = dict.fromkeys(k for p in properties for k in p)
    found = {}
    for key in keys:
        values = [p.get(key) for p in properties]
        if dates and is_date_column(values):
            found[key] = np.array(["NaT" if v is None else v for v in values], dtype="datetime64[D]")
        else:
            found[key] = np.array([text_value(v) for v in values], dtype=object)
    return found


@dataclass(frozen=True)
class Table:
    """One collection ready for the writers: metadata, properties and MultiPolygon geometries."""

    id: str  # the collection: names the file and the files in a zip
    layer_id: str  # the catalogue layer: names the layer (table) inside, so its styles apply
    meta: dict
    properties: list[dict]
    geometries: np.ndarray


def table(atlas: store.Atlas, collection: Collection) -> Table:
    features, geometries = collection_features(atlas, collection)
    meta = layer_metadata(atlas, collection.layer.id, collection)
    return Table(collection.id, collection.layer.id, meta, [_properties(f["properties"], meta) for f in features],
                 multipolygons(geometries))


def _write(path: Path, data: Table, fmt: Format, fields: dict[str, np.ndarray], dataset_options=None,
           layer_metadata=None, **options) -> None:
    with build.gdal_config(OGR_CURRENT_DATE=build.FIXED_DATE, LIBKML_ID_FIELD=KML_ID_FIELD):
        pyogrio.raw.write(path, shapely.to_wkb(data.geometries), list(fields.values()), list(fields),
                          driver=fmt.driver, layer=data.layer_id, geometry_type="MultiPolygon", crs="EPSG:4326",
                          layer_options={**fmt.options, **options}, dataset_options=dataset_options or {},
                          layer_metadata=layer_metadata)


def _string_metadata(meta: dict) -> dict:
    return {k.upper(): v for k, v in meta.items() if isinstance(v, str)}


def _write_gpkg(data: Table, fmt: Format, path: Path) -> None:
    _write(path, data, fmt, columns(data.properties), {"VERSION": "1.2"}, _string_metadata(data.meta),
           IDENTIFIER=data.meta["title"], DESCRIPTION=data.meta["description"])
    gisstyles.write_layer_styles(path, [data.layer_id])


def _write_fgb(data: Table, fmt: Format, path: Path) -> None:
    """Dates as ISO text: FlatGeobuf has only date-times, which would add a time to every date."""
    _write(path, data, fmt, columns(data.properties, dates=False), None, _string_metadata(data.meta),
           TITLE=data.meta["title"], DESCRIPTION=data.meta["description"])


def _write_kml(data: Table, fmt: Format, path: Path) -> None:
    """``id`` both as the Placemark's id (GDAL 3.7+ reads that as ``id``) and in the ExtendedData (GDAL 3.6
    reads that); dates as ISO text (LIBKML writes a date field as 2023/06/30)."""
    fields = columns(data.properties, dates=False)
    _write(path, data, fmt, {KML_ID_FIELD: fields["id"], **fields},
           {"NAME": data.meta["title"], "DESCRIPTION": metadata_text(data.meta)})


def _zip_folder(path: Path, folder: Path, extra: dict[str, bytes]) -> None:
    """The files GDAL wrote into ``folder`` and ``extra`` ones, zipped with fixed timestamps."""
    members = {**{m.name: m.read_bytes() for m in sorted(folder.iterdir())}, **extra}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            archive.writestr(zipfile.ZipInfo(name, ZIP_DATE), body, zipfile.ZIP_DEFLATED)


def _write_csv_zip(data: Table, fmt: Format, path: Path) -> None:
    """CSV, ``.csvt`` and ``.prj`` (as GDAL writes them) and the README, zipped."""
    with tempfile.TemporaryDirectory() as folder:
        _write(Path(folder) / f"{data.id}.csv", data, fmt, columns(data.properties))
        readme = metadata_text(data.meta) + (
            "\nThe geometry is the WKT column (longitude/latitude, WGS 84: see the .prj); the .csvt gives "
            "each column's type. Lists are JSON text. An empty field is null (there are no empty strings): "
            "with GDAL, open it with EMPTY_STRING_AS_NULL=YES.\n")
        _zip_folder(path, Path(folder), {f"{data.id}.README.txt": readme.encode()})


def shapefile_name(name: str) -> str:
    return SHAPEFILE_NAMES.get(name, name)[:10]


def long_marker(layer_id: str) -> str:
    """What the dbf holds in place of a text too long for it."""
    return f"[too long for a dbf field: full text in {layer_id}.long.csv]"


def _long_table(data: Table, keys: list[str]) -> bytes:
    """The full texts of ``keys`` for every feature, keyed by id (an empty cell is null)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", *keys])
    for props in data.properties:
        writer.writerow([props["id"], *("" if props.get(k) is None else text_value(props[k]) for k in keys)])
    return out.getvalue().encode()


def shapefile_readme(data: Table, renamed: dict[str, str], dates: list[str], long_keys: list[str]) -> str:
    lines = [metadata_text(data.meta), "Shapefile field names (a dbf holds at most 10 characters):"]
    lines += [f"  {short} = {name}" for name, short in renamed.items() if short != name] or ["  (none renamed)"]
    lines += ["", "Lists and objects are JSON text" + (f"; {', '.join(dates)} are dates." if dates else ".")]
    if long_keys:
        lines += [f"Texts longer than {DBF_TEXT_BYTES} bytes in {', '.join(long_keys)} read "
                  f"'{long_marker(data.id)}' in the dbf: their full text is in {data.id}.long.csv "
                  "(one row per feature, keyed by id; an empty cell is null)."]
    return "\n".join(lines) + "\n"


def _write_shapefile_zip(data: Table, fmt: Format, path: Path) -> None:
    table_columns = columns(data.properties)
    renamed = {name: shapefile_name(name) for name in table_columns}
    if len(set(renamed.values())) < len(renamed):
        raise ValueError(f"Shapefile field names collide: {renamed}; extend SHAPEFILE_NAMES")
    long_keys = [k for k, values in table_columns.items() if values.dtype == object and any(
        isinstance(v, str) and len(v.encode()) > DBF_TEXT_BYTES for v in values)]
    marker = long_marker(data.id)
    for key in long_keys:
        table_columns[key] = np.array([marker if isinstance(v, str) and len(v.encode()) > DBF_TEXT_BYTES else v
                                       for v in table_columns[key]], dtype=object)
    dates = [k for k, values in table_columns.items() if values.dtype != object]
    extra = {f"{data.id}.README.txt": shapefile_readme(data, renamed, dates, long_keys).encode()}
    if long_keys:
        extra[f"{data.id}.long.csv"] = _long_table(data, long_keys)
    with tempfile.TemporaryDirectory() as folder:
        _write(Path(folder) / f"{data.id}.shp", data, fmt,
               {renamed[k]: v for k, v in table_columns.items()})
        _zip_folder(path, Path(folder), extra)


def _collection(data: Table, atlas_features: list[dict], geometries: list[dict]) -> dict:
    features = [geojson.as_multi({**f, "properties": props, "geometry": geometry})
                for f, props, geometry in zip(atlas_features, data.properties, geometries, strict=True)]
    return geojson.feature_collection(features, name=data.id, **data.meta)


def _topojson(collection: dict, data: Table) -> bytes:
    """Shared borders stored once (arcs), coordinates kept exact (no quantisation)."""
    topology = topojson.Topology(collection, object_name=data.layer_id, prequantize=False).to_dict()
    return json.dumps({**topology, "crs": CRS84_NAME, **data.meta}, ensure_ascii=False,
                      separators=(",", ":")).encode()


WRITERS = {"gpkg": _write_gpkg, "shp.zip": _write_shapefile_zip, "fgb": _write_fgb, "kml": _write_kml,
           "csv.zip": _write_csv_zip}


def produce(atlas: store.Atlas, collection_id: str, key: str, path: Path) -> None:
    """Write one collection (a layer, or one period of it) in one format to ``path`` (atomically)."""
    check(collection_id, key)
    collection = collections()[collection_id]
    data = table(atlas, collection)
    if key in ("geojson", "topojson"):
        indices = collection_indices(atlas, collection)
        whole = _collection(data, collection_features(atlas, collection)[0],
                            [atlas.geojson_geometry(collection.layer.id, i) for i in indices])
        atomic.write_bytes(path, geojson.dumps(whole) if key == "geojson" else _topojson(whole, data))
    else:
        with atomic.staged_file(path) as staged:
            WRITERS[key](data, FORMATS[key], staged)


def _code_digest() -> str:
    """The writers' code, so that a new version of them never serves files an older one wrote."""
    here = Path(__file__)
    modules = (here, here.with_name("features.py"), Path(gisstyles.__file__))
    return hashlib.sha256(b"".join(m.read_bytes() for m in modules)).hexdigest()[:12]


CODE_DIGEST = _code_digest()


def cache_dir(atlas: store.Atlas) -> Path:
    """Per-build (and per-writer-code) folder in the user cache: the build folder itself stays exactly
    what the build wrote."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ttp-atlas" / "downloads" / f"{atlas.build_id}-{CODE_DIGEST}"


_locks: dict[tuple[str, str, str], threading.Lock] = {}
_guard = threading.Lock()


def check(collection_id: str, key: str) -> None:
    if collection_id not in collections():
        raise FormatError(f"unknown layer {collection_id!r}; valid layers: {', '.join(collections())}")
    if key not in FORMATS:
        raise FormatError(f"unknown format {key!r}; valid formats: {', '.join(FORMATS)}")


def download(atlas: store.Atlas, collection_id: str, key: str) -> Path:
    """The cached file of a collection in a format, produced on first use (once, even with threads)."""
    check(collection_id, key)
    path = cache_dir(atlas) / file_name(collection_id, key)
    with _guard:
        lock = _locks.setdefault((str(path), collection_id, key), threading.Lock())
    with lock:
        if not path.is_file():
            produce(atlas, collection_id, key, path)
    return path
