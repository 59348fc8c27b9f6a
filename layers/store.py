"""Open a finished build: the layers' features (id and properties) and their shapely geometry, checked
against the manifest.

Every output (features API, maps, tiles, exports) reads layers through here, so a corrupt or partial
build is refused in one place. The geometry is held once, as shapely arrays parsed by GEOS: the feature
dicts carry no coordinate lists (as Python floats they cost about 170 MiB and a second of start).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import numpy as np
import shapely

from geo import datasets, geojson
from layers import build, catalogue, generalise, wilayahs

BUILD_ENV = "TTP_ATLAS_BUILD"
# A feature's geometry member as the build writes it (geo.geojson.dumps: compact, the feature's last
# member). Inside a JSON string every '"' is escaped, so ',"geometry":' only ever matches a member name.
GEOMETRY = re.compile(rb',"geometry":(null|\{"type":"[A-Za-z]+","coordinates":[-+0-9.eE,\[\]]*\})(?=\})')


class BuildUnusable(RuntimeError):
    """The build folder is missing, partial or corrupt; the message says which file and what to do."""


def build_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get(BUILD_ENV) or "build")


@dataclass
class Atlas:
    """An opened build. ``collections`` holds each layer's FeatureCollection as in its GeoJSON file, except
    that a feature dict has no ``geometry`` member (only ``type``, ``id`` and ``properties``): the geometry
    is ``geometries[layer][i]``, aligned with the features; ``geojson_geometry`` gives it as a GeoJSON dict
    and ``geometry_texts`` as the text the build wrote."""

    root: Path
    manifest: dict
    collections: dict[str, dict]  # layer id -> FeatureCollection of features without geometry
    geometries: dict[str, np.ndarray] = field(default_factory=dict)  # aligned with collection features
    _generalised: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def build_id(self) -> str:
        return self.manifest["build_id"]

    def features(self, layer_id: str, start: str | None = None, end: str | None = None) -> list[dict]:
        """The layer's features, those valid at ``start`` (or during ``start``..``end``) when given."""
        found = self.collections[catalogue.layer(layer_id).id]["features"]
        if start is None and end is None:
            return found
        return wilayahs.select(found, start, end)

    def valid_indices(self, layer_id: str, start: str | None, end: str | None) -> list[int]:
        """Positions of the layer's features valid during [start, end] (None: open); they index
        ``geometries`` and ``generalised`` alike."""
        return wilayahs.valid_indices(self.collections[catalogue.layer(layer_id).id]["features"], start, end)

    def generalised(self, layer_id: str, zoom: int) -> np.ndarray:
        """Geometry of a layer simplified for a web zoom, aligned with its features (see layers.generalise)."""
        level = generalise.level_for(zoom)
        if level is None:
            return self.geometries[layer_id]
        key = (catalogue.layer(layer_id).id, level)
        if key not in self._generalised:
            self._generalised[key] = self._generalise(layer_id, level)
        return self._generalised[key]

    def _generalise(self, layer_id: str, level: int) -> np.ndarray:
        if layer_id in generalise.BASE_LAYERS:
            return generalise.read(self.root / generalise.GENERALISED_FILE, layer_id, level)
        districts = self.collections["districts"]["features"]
        features = self.collections[layer_id]["features"]
        if layer_id == "zones":
            members = generalise.zone_members(features, self.collections["wilayahs"]["features"], districts)
        else:
            members = generalise.district_members(layer_id, features, districts)
        return generalise.unions(self.generalised("districts", level), members)

    def warm(self) -> None:
        """Compute every zoom level now (before forking workers, so they share it)."""
        for layer_id in catalogue.LAYER_IDS:
            for level in generalise.LEVELS:
                self.generalised(layer_id, level)

    def geojson_geometry(self, layer_id: str, index: int) -> dict | None:
        """One feature's geometry as a GeoJSON dict, written as the build wrote it (geo.geojson)."""
        return geojson.geometry_dict(self.geometries[catalogue.layer(layer_id).id][index])

    def geometry_texts(self, layer_id: str) -> list[bytes]:
        """Every feature's geometry exactly as the build wrote it (its GeoJSON text, read again from the
        layer's file), for serialising a whole layer without building coordinate lists; each equals
        ``geojson.dumps(self.geojson_geometry(layer_id, i))`` (tests/test_store.py)."""
        path = self.file(layer_id)
        payload = path.read_bytes()
        if hashlib.sha256(payload).hexdigest() != self.manifest["layers"][layer_id]["sha256"]:
            raise BuildUnusable(f"{path} changed since the build was opened: restart the server")
        return [m.group(1) for m in GEOMETRY.finditer(payload)]

    @property
    def pakistan_bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the provinces: the country's extent, the default view."""
        return tuple(self.manifest["layers"]["provinces"]["bbox"])

    def file(self, layer_id: str) -> Path:
        return self.root / self.manifest["layers"][layer_id]["file"]

    def attribution(self, layer_ids=None) -> list[str]:
        """Credit lines of the datasets behind the given layers (all layers when None)."""
        keys = {k for lid in (layer_ids or catalogue.LAYER_IDS) for k in catalogue.layer(lid).datasets}
        return [d["attribution"] for k, d in self.manifest["datasets"].items() if k in keys]


SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


def manifest_schema() -> dict:
    """What the server reads from ``manifest.json``: every key it uses, and a sha256 for every file."""
    layer = {"type": "object", "required": ["file", "features", "bbox", "sha256"], "properties": {
        "file": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+\.geojson$"},
        "features": {"type": "integer", "minimum": 0},
        "bbox": {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}},
        "sha256": SHA256}}
    dataset = {"type": "object", "required": ["title", "licence", "attribution"],
               "properties": {key: {"type": "string"} for key in ("title", "licence", "attribution")}}
    files = [build.GEOPACKAGE, generalise.GENERALISED_FILE]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object", "required": ["build_id", "layers", "datasets", "files_sha256"], "properties": {
            "build_id": {"type": "string", "minLength": 1},
            "layers": {"type": "object", "required": list(catalogue.LAYER_IDS), "additionalProperties": layer},
            "datasets": {"type": "object", "minProperties": 1, "additionalProperties": dataset},
            "files_sha256": {"type": "object", "required": files, "additionalProperties": SHA256,
                             "propertyNames": {"pattern": "^[A-Za-z0-9_.-]+$"}}}}


def check_manifest(manifest, manifest_path: Path) -> None:
    """BuildUnusable naming the file, the key and the fault, for the first fault the schema finds."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(manifest_schema()).iter_errors(manifest))
    if error is not None:
        raise BuildUnusable(f"{manifest_path}: {error.json_path}: {error.message}: rebuild with "
                            f"`ttp-atlas build --out {manifest_path.parent}`")


def open_build(root: Path) -> Atlas:
    """Load a build, refusing it whole if any layer is missing or differs from the manifest."""
    root = Path(root)
    manifest_path = root / build.MANIFEST
    if not manifest_path.is_file():
        raise BuildUnusable(f"no build in {root} (no {build.MANIFEST}): run `ttp-atlas build --out {root}`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise BuildUnusable(f"corrupt {manifest_path} ({error}): rebuild with `ttp-atlas build --out {root}`") from None
    check_manifest(manifest, manifest_path)
    expected = manifest["layers"]
    collections, geometries = {}, {}
    for layer_id in catalogue.LAYER_IDS:
        path = root / expected[layer_id]["file"]
        if not path.is_file():
            raise BuildUnusable(f"build in {root} lacks layer {layer_id}: rebuild with `ttp-atlas build --out {root}`")
        payload = path.read_bytes()
        if hashlib.sha256(payload).hexdigest() != expected[layer_id]["sha256"]:
            raise BuildUnusable(f"{path} does not match {build.MANIFEST} (corrupt or edited): rebuild it")
        # GEOS parses the whole file at once: one geometry per feature, in order; json only the rest
        geometries[layer_id] = shapely.get_parts(shapely.from_geojson(payload))
        stripped, found = GEOMETRY.subn(b"", payload)
        collections[layer_id] = json.loads(stripped)
        if not len(geometries[layer_id]) == found == len(collections[layer_id]["features"]):
            raise BuildUnusable(f"{path} has features without geometry: rebuild it")
    for name, digest in manifest["files_sha256"].items():
        if not (root / name).is_file() or datasets.sha256_file(root / name) != digest:
            raise BuildUnusable(f"{root / name} is missing or does not match {build.MANIFEST}: rebuild it")
    return Atlas(root, manifest, collections, geometries)


def ensure_build(root: Path | None = None, data_root: Path | None = None) -> Atlas:
    """Open the build in ``root``, building it first from the data when the folder holds none."""
    root = build_dir() if root is None else Path(root)
    if not (root / build.MANIFEST).is_file():
        if root.is_dir() and any(root.iterdir()):
            raise BuildUnusable(f"{root} holds files but no {build.MANIFEST} (a partial or foreign build): "
                                f"remove it or run `ttp-atlas build --out {root}`")
        build.build(datasets.data_dir() if data_root is None else data_root, root)
    return open_build(root)
