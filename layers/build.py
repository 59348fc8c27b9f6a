"""Build every layer of the atlas from the boundary data and the wilayah file.

``build(data_dir, out_dir)`` writes ``<id>.geojson`` per layer, ``atlas.gpkg`` and ``manifest.json``
into a staging folder that replaces ``out_dir`` only when everything succeeded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import sqlite3
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
import shapely.ops
import yaml

from geo import atomic, datasets, gazetteer, geojson, geometry, readers
from layers import catalogue, generalise, gisstyles, style, wilayahs

CIVIL_FILE = Path(__file__).with_name("civil.yaml")
GEOPACKAGE = "atlas.gpkg"
MANIFEST = "manifest.json"
DISPUTED = "disputed.geojson"  # a line dataset beside the layers (not a catalogue layer)
FIXED_DATE = "2000-01-01T00:00:00Z"  # GeoPackage timestamps, fixed so that builds are reproducible


class BuildError(RuntimeError):
    """The build cannot go on; the message says what to fix."""


def package_version() -> str:
    try:
        return version("ttp-atlas")
    except PackageNotFoundError:
        return "0+unknown"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-")


def _caption(dataset_keys: tuple[str, ...]) -> dict:
    """Source and licence fields every feature carries, for captions."""
    chosen = [datasets.DATASETS[k] for k in dataset_keys]
    return {"source": "; ".join(d.title for d in chosen),
            "licence": "; ".join(d.licence for d in chosen),
            "attribution": "; ".join(d.attribution for d in chosen)}


def civil_config(path: Path = CIVIL_FILE) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


# --- districts -------------------------------------------------------------------------------

def districts_2023(adm2: gpd.GeoDataFrame, adm3: gpd.GeoDataFrame, splits: list[dict]) -> list[dict]:
    """COD districts with the configured post-2022 splits applied; plain records with a geometry."""
    by_pcode = {row.admin2Pcode: row for row in adm2.itertuples()}
    tehsil_geoms = dict(zip(adm3.admin3Pcode, adm3.geometry.values, strict=True))
    records = {}
    for row in adm2.sort_values("admin2Pcode").itertuples():
        records[row.admin2Pcode] = {
            "id": row.admin2Pcode, "name": row.admin2Name_en, "pcode": row.admin2Pcode,
            "parent_pcode": None, "province": row.admin1Name_en, "province_pcode": row.admin1Pcode,
            "notified": None, "tehsils": sorted(adm3.admin3Pcode[adm3.admin2Pcode == row.admin2Pcode]),
            "geometry": row.geometry,
        }
    for split in splits:
        parent = by_pcode[split["parent"]]
        parts = [shapely.union_all([tehsil_geoms[t] for t in new["tehsils"]]) for new in split["new"]]
        *pieces, remainder = geometry.split(parent.geometry, parts)
        base = records[split["parent"]]
        for new, piece in zip(split["new"], pieces, strict=True):
            records[f"{split['parent']}-{slug(new['name'])}"] = {
                **base, "id": f"{split['parent']}-{slug(new['name'])}", "name": new["name"], "pcode": None,
                "parent_pcode": split["parent"], "notified": str(split["notified"]),
                "tehsils": sorted(new["tehsils"]), "geometry": piece}
        base["geometry"] = remainder
        base["tehsils"] = sorted(set(base["tehsils"]) - {t for n in split["new"] for t in n["tehsils"]})
        if "parent_becomes" in split:
            new_id = f"{split['parent']}-{slug(split['parent_becomes'])}"
            records[new_id] = {**records.pop(split["parent"]), "id": new_id, "name": split["parent_becomes"],
                               "pcode": None, "parent_pcode": split["parent"], "notified": str(split["notified"])}
    return sorted(records.values(), key=lambda r: r["id"])


def district_gazetteer(districts: list[dict], aliases: dict[str, list[str]]) -> dict[str, set[str]]:
    names = {d["id"]: [d["name"], *aliases.get(d["name"], [])] for d in districts}
    unused = set(aliases) - {d["name"] for d in districts}
    if unused:
        raise BuildError(f"{CIVIL_FILE}: aliases for unknown districts: {', '.join(sorted(unused))}")
    return gazetteer.index(names)


def assign_divisions(districts: list[dict], divisions: gpd.GeoDataFrame) -> None:
    """Set each district's division to the OSM division it overlaps most (in place)."""
    best = geometry.largest_overlap([d["geometry"] for d in districts], divisions.geometry.values)
    for district, index in zip(districts, best, strict=True):
        district["division"] = divisions.name.iloc[index] if index >= 0 else None


# --- wilayahs and zones ----------------------------------------------------------------------

def resolve_members(units: list[dict], lookup: dict, display: list[str], path: str) -> None:
    """Replace each unit's district names by district ids; fail naming the file, line and close names."""
    for unit in units:
        resolved = []
        for ref in unit["district_refs"]:
            try:
                resolved.append(gazetteer.resolve(ref.value, lookup, display))
            except gazetteer.PlaceNameError as error:
                raise BuildError(f"{path}:{ref.line}: {error} (unit {unit['unit']})") from None
        unit["district_ids"] = resolved


def check_no_core_overlap(units: list[dict], geoms: dict[str, shapely.Geometry]) -> None:
    """No two units valid at the same time may overlap where either is a core (above 0.01 km²)."""
    for i, a in enumerate(units):
        for b in units[i + 1:]:
            if "core" not in (a["part"], b["part"]) or a["unit"] == b["unit"]:
                continue
            if not wilayahs.valid_during(a, b["valid_from"], b["valid_to"]):
                continue
            shared = set(a["district_ids"]) & set(b["district_ids"])
            if shared:
                raise BuildError(f"{a['id']} and {b['id']} share districts {sorted(shared)} while both valid")


def wilayah_features(units: list[dict], districts: dict[str, dict]) -> list[dict]:
    features = []
    for unit in units:
        members = [districts[i] for i in unit["district_ids"]]
        props = {
            "id": unit["id"], "unit": unit["unit"], "name": unit["name"], "label": style.label_text(unit),
            "zone": unit["zone"], "part": unit["part"], "valid_from": unit["valid_from"], "valid_to": unit["valid_to"],
            "status": unit["status"], "confidence": unit["confidence"], "basis": unit["basis"],
            "member_districts": [{"pcode": m["pcode"] or m["parent_pcode"], "id": m["id"], "name": m["name"]}
                                 for m in members],
            "provinces": sorted({m["province"] for m in members}),
            "divisions": sorted({m["division"] for m in members if m["division"]}),
            "sources": unit["sources"], "notes": unit["notes"], "caveat": catalogue.CAVEAT,
            **_caption(("cod-ab",)),
        }
        features.append({"id": unit["id"], "properties": props,
                         "geometry": geometry.union([m["geometry"] for m in members])})
    return features


def period_bounds(features: list[dict]) -> list[tuple[str, str | None]]:
    """Consecutive intervals over which the set of valid features does not change."""
    starts = {f["properties"]["valid_from"] for f in features}
    ends = {(dt.date.fromisoformat(f["properties"]["valid_to"]) + dt.timedelta(days=1)).isoformat()
            for f in features if f["properties"]["valid_to"]}
    cuts = sorted(starts | ends)
    return [(start, (dt.date.fromisoformat(cuts[i + 1]) - dt.timedelta(days=1)).isoformat()
             if i + 1 < len(cuts) else None) for i, start in enumerate(cuts)]


def zone_features(wilayah: list[dict]) -> list[dict]:
    """The union of the claimed units in each reported zone, per period."""
    rank = {c: i for i, c in enumerate(wilayahs.CONFIDENCES)}
    features = []
    for start, end in period_bounds(wilayah):
        valid = wilayahs.select(wilayah, start, start)
        for zone in ("north", "south"):
            members = [f for f in valid if f["properties"]["zone"] == zone]
            if not members:
                continue
            fid = f"{zone}-{start}"
            props = {
                "id": fid, "name": f"{zone.title()} zone", "zone": zone, "valid_from": start, "valid_to": end,
                "status": "claimed",
                "confidence": max((f["properties"]["confidence"] for f in members), key=rank.__getitem__),
                "wilayahs": [f["id"] for f in members], "caveat": catalogue.CAVEAT, **_caption(("cod-ab",)),
            }
            features.append({"id": fid, "properties": props,
                             "geometry": shapely.union_all([f["geometry"] for f in members])})
    return features


# --- assembling the layers -------------------------------------------------------------------

def civil_layers(root: Path, config: dict) -> tuple[dict[str, list[dict]], list[dict]]:
    """Every civil and context layer as features, plus the district records (for the wilayahs)."""
    adm1, adm2, adm3 = (readers.cod_admin(root, level) for level in (1, 2, 3))
    divisions = readers.osm_layer(root, "divisions")
    districts = districts_2023(adm2, adm3, config["splits"])
    assign_divisions(districts, divisions)
    cod = _caption(("cod-ab",))
    cod_osm = _caption(("cod-ab", "osm"))
    district_of_tehsil = {t: d for d in districts for t in d["tehsils"]}

    layers = {"districts": [
        {"id": d["id"], "geometry": d["geometry"], "properties": {
            "id": d["id"], "name": d["name"], "pcode": d["pcode"], "parent_pcode": d["parent_pcode"],
            "province": d["province"], "province_pcode": d["province_pcode"], "division": d["division"],
            "notified": d["notified"], **cod_osm}} for d in districts]}

    division_names = sorted({d["division"] for d in districts if d["division"]})
    layers["divisions"] = []
    for name in division_names:
        members = [d for d in districts if d["division"] == name]
        fid = slug(name)
        layers["divisions"].append({"id": fid, "geometry": geometry.union([m["geometry"] for m in members]),
                                    "properties": {"id": fid, "name": name, "pcode": None,
                                                   "province": members[0]["province"],
                                                   "districts": [m["name"] for m in members], **cod_osm}})

    layers["provinces"] = [
        {"id": row.admin1Pcode, "geometry": row.geometry, "properties": {
            "id": row.admin1Pcode, "name": row.admin1Name_en, "pcode": row.admin1Pcode, **cod}}
        for row in adm1.sort_values("admin1Pcode").itertuples()]

    layers["tehsils"] = []
    for row in adm3.sort_values("admin3Pcode").itertuples():
        district = district_of_tehsil[row.admin3Pcode]
        layers["tehsils"].append({"id": row.admin3Pcode, "geometry": row.geometry, "properties": {
            "id": row.admin3Pcode, "name": row.admin3Name_en, "pcode": row.admin3Pcode,
            "district": district["name"], "district_id": district["id"], "division": district["division"],
            "province": district["province"], **cod}})

    tribal = config["tribal_districts"]
    by_name = {d["name"]: d for d in districts}
    layers["tribal-districts"] = []
    for entry in tribal["districts"]:
        d = by_name[entry["district"]]
        layers["tribal-districts"].append({"id": d["id"], "geometry": d["geometry"], "properties": {
            "id": d["id"], "name": d["name"], "pcode": d["pcode"], "parent_pcode": d["parent_pcode"],
            "former_agency": entry["agency"], "merged": str(tribal["merged"]),
            "split": str(entry["split"]) if entry.get("split") else None,
            "province": d["province"], "division": d["division"], **cod}})

    layers["countries"] = country_features(readers.countries(root), geometry.union(adm1.geometry.values))
    return layers, districts


PAKISTAN = "586"  # ISO 3166-1 numeric


def country_features(world: gpd.GeoDataFrame, pakistan: shapely.Geometry) -> list[dict]:
    """Every Natural Earth country, with one outline of Pakistan: COD-AB's (the union of its provinces).

    The neighbours are refitted to it (``geometry.refit``), so Natural Earth's and COD-AB's borders,
    kilometres apart, draw neither a double line nor a sliver. Features without an ISO code (Siachen
    Glacier, Kosovo, ...) take their name's slug as id.
    """
    world = world.sort_values("name", kind="stable")
    is_pakistan = (world.id == PAKISTAN).to_numpy()
    shapes = np.array(world.geometry.values, dtype=object)
    neighbours = shapes[~is_pakistan]
    refitted = geometry.refit(neighbours, shapes[is_pakistan][0], pakistan)
    moved = np.zeros(len(shapes), dtype=bool)
    moved[~is_pakistan] = [a is not b for a, b in zip(refitted, neighbours, strict=True)]
    shapes[~is_pakistan], shapes[is_pakistan] = refitted, pakistan
    captions = {False: _caption(("natural-earth",)), True: _caption(("natural-earth", "cod-ab"))}
    iso = [i if isinstance(i, str) else None for i in world.id]
    largest = {}  # an ISO code shared by several features (Australia and Ashmore) stays with the largest
    for k in np.argsort(-shapely.area(shapes), kind="stable"):
        largest.setdefault(iso[k], k)
    features = []
    for k, (name, shape) in enumerate(zip(world.name, shapes, strict=True)):
        fid = iso[k] if iso[k] and largest[iso[k]] == k else slug(name)
        caption = _caption(("cod-ab",)) if is_pakistan[k] else captions[bool(moved[k])]
        features.append({"id": fid, "geometry": shape, "properties": {
            "id": fid, "name": name, "pcode": None, "iso_numeric": iso[k], **caption}})
    return features


def along(outline: shapely.Geometry, start, end) -> shapely.LineString:
    """The shorter stretch of a polygon's outline between the points nearest ``start`` and ``end``."""
    point = shapely.Point(start)
    ring = min((p.exterior for p in shapely.get_parts(outline)), key=lambda r: r.distance(point))
    lo, hi = sorted((ring.project(point), ring.project(shapely.Point(end))))
    inner = shapely.ops.substring(ring, lo, hi)
    outer = shapely.line_merge(shapely.union(shapely.ops.substring(ring, hi, ring.length),
                                             shapely.ops.substring(ring, 0, lo)))
    return min((inner, outer), key=lambda line: line.length)


def disputed_features(line_of_control: shapely.LineString, pakistan: shapely.Geometry,
                      siachen: shapely.Geometry, config: dict) -> list[dict]:
    """The Line of Control, the Working Boundary and the Siachen claim line and area, each with the note."""
    north_end, south_end = sorted((line_of_control.coords[0], line_of_control.coords[-1]), key=lambda c: -c[1])
    cod, ne = _caption(("cod-ab",)), _caption(("natural-earth",))
    lines = [
        ("line-of-control", "Line of Control", line_of_control, cod,
         "The ceasefire line between Pakistani- and Indian-administered Kashmir (COD-AB admLevel 87)."),
        ("working-boundary", "Working Boundary", along(pakistan, south_end, config["working_boundary_end"]), cod,
         "Between Pakistani Punjab and Indian-administered Jammu, from the Line of Control's end to the Ravi."),
        ("siachen-claim", "Siachen: NJ9842 to the Karakoram Pass", along(pakistan, north_end, config["karakoram_pass"]),
         cod, "Pakistan's position beyond the Line of Control's end, as COD-AB draws Gilgit-Baltistan."),
        ("siachen-area", "Siachen Glacier area", shapely.boundary(siachen), ne,
         "Natural Earth's outline of the Siachen Glacier area, held by India and claimed by Pakistan."),
    ]
    return [{"id": fid, "geometry": shapely.set_precision(geom, geometry.OUTPUT_GRID), "properties": {
        "id": fid, "name": name, "kind": fid, "description": text, "note": catalogue.BOUNDARY_NOTE, **caption}}
        for fid, name, geom, caption, text in lines]


def snap_layers(layers: dict[str, list[dict]]) -> None:
    """Put every geometry on the 6-decimal output grid, exteriors counter-clockwise (in place)."""
    for features in layers.values():
        snapped = geometry.for_output([f["geometry"] for f in features])
        for feature, geom in zip(features, snapped, strict=True):
            feature["geometry"] = geom


def assemble(root: Path, wilayah_file: Path = wilayahs.WILAYAHS_FILE,
             civil_file: Path = CIVIL_FILE) -> tuple[dict[str, list[dict]], dict]:
    """All layers as ``{id: [feature]}`` (features: id, properties, shapely geometry) and the wilayah data."""
    config = civil_config(civil_file)
    data = wilayahs.load(wilayah_file)
    layers, districts = civil_layers(root, config)
    snap_layers(layers)  # members are unioned from the published district geometry, so sums match exactly
    by_id = {d["id"]: {**d, "geometry": f["geometry"]} for d, f in zip(districts, layers["districts"], strict=True)}
    lookup = district_gazetteer(districts, config["aliases"])
    display = [name for d in districts for name in (d["name"], *config["aliases"].get(d["name"], []))]
    resolve_members(data["units"], lookup, display, data["path"])
    check_no_core_overlap(data["units"], by_id)
    layers["wilayahs"] = wilayah_features(data["units"], by_id)
    layers["zones"] = zone_features(layers["wilayahs"])
    snap_layers({k: layers[k] for k in ("wilayahs", "zones")})
    return {lid: layers[lid] for lid in catalogue.LAYER_IDS}, data


# --- writing ---------------------------------------------------------------------------------

def layer_bytes(layer_id: str, features: list[dict]) -> bytes:
    entry = catalogue.layer(layer_id)
    collection = geojson.feature_collection(
        (geojson.feature(f["id"], f["properties"], f["geometry"]) for f in features),
        name=layer_id, title=entry.title, description=entry.description,
        attribution=_caption(entry.datasets)["attribution"], licence=_caption(entry.datasets)["licence"])
    return geojson.dumps(collection)


def flat_frame(properties: list[dict], geometries) -> gpd.GeoDataFrame:
    """A GeoDataFrame for table formats (GeoPackage, Shapefile, ...), whose columns hold scalars:
    nested values (sources, member districts) become JSON text."""
    rows = [{k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v for k, v in p.items()}
            for p in properties]
    return gpd.GeoDataFrame(rows, geometry=list(geometries), crs="EPSG:4326")


def write_geopackage(path: Path, layers: dict[str, list[dict]]) -> None:
    """Every layer as a table, with its QGIS style (QML and SLD) in ``layer_styles`` so it opens styled."""
    with gdal_config(OGR_CURRENT_DATE=FIXED_DATE):
        for layer_id, features in layers.items():
            frame = flat_frame([f["properties"] for f in features], [f["geometry"] for f in features])
            pyogrio.write_dataframe(frame, path, layer=layer_id, driver="GPKG", promote_to_multi=True,
                                    layer_options={"IDENTIFIER": catalogue.layer(layer_id).title,
                                                   "DESCRIPTION": catalogue.layer(layer_id).description})
    gisstyles.write_layer_styles(path, list(layers))
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # the styles' timestamps, fixed as GDAL's are
        db.execute("UPDATE layer_styles SET update_time = ?", (FIXED_DATE,))
        db.execute("UPDATE gpkg_contents SET last_change = ? WHERE table_name = 'layer_styles'", (FIXED_DATE,))


@contextlib.contextmanager
def gdal_config(**options):
    """Set GDAL config options for the duration of a block."""
    saved = {k: pyogrio.get_gdal_config_option(k) for k in options}
    pyogrio.set_gdal_config_options(options)
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options(saved)


def write_generalised(path: Path, layers: dict[str, list[dict]]) -> None:
    """The per-zoom simplified base layers that web maps and tiles read (see layers.generalise)."""
    base = {lid: np.array([f["geometry"] for f in layers[lid]], dtype=object) for lid in generalise.BASE_LAYERS}
    with gdal_config(OGR_CURRENT_DATE=FIXED_DATE):
        generalise.write(path, generalise.levels(base), {lid: [f["id"] for f in layers[lid]] for lid in base})


def manifest(layers: dict[str, list[dict]], files: dict[str, bytes]) -> dict:
    used = sorted({k for lid in layers for k in catalogue.layer(lid).datasets} | {"osm", "natural-earth"})
    entries = {}
    for layer_id, features in layers.items():
        payload = files[f"{layer_id}.geojson"]
        entries[layer_id] = {
            "file": f"{layer_id}.geojson", "features": len(features),
            "bbox": geojson.bbox([f["geometry"] for f in features]),
            "sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
    build_id = hashlib.sha256("".join(e["sha256"] for e in entries.values()).encode()).hexdigest()[:16]
    return {
        "build_id": build_id, "version": package_version(), "layers": entries,
        "datasets": {k: {"title": d.title, "publisher": d.publisher, "version": d.version, "licence": d.licence,
                         "licence_url": d.licence_url, "attribution": d.attribution, "homepage": d.homepage}
                     for k, d in datasets.DATASETS.items() if k in used},
        "files_sha256": {},
        "inputs_sha256": hashlib.sha256(datasets.CHECKSUMS.read_bytes()).hexdigest(),
        "caveat": catalogue.CAVEAT,
    }


def build(root: Path, out_dir: Path, wilayah_file: Path = wilayahs.WILAYAHS_FILE,
          civil_file: Path = CIVIL_FILE) -> dict:
    """Check the inputs, build every layer and swap the result into ``out_dir``; returns the manifest."""
    root = Path(root)
    datasets.verify(root)
    layers, _ = assemble(root, wilayah_file, civil_file)
    files = {f"{lid}.geojson": layer_bytes(lid, features) for lid, features in layers.items()}
    info = manifest(layers, files)
    world = readers.countries(root)
    pakistan = next(f["geometry"] for f in layers["countries"] if f["id"] == PAKISTAN)
    lines = disputed_features(readers.cod_line_of_control(root), pakistan,
                              world.geometry[world.name == "Siachen Glacier"].iloc[0], civil_config(civil_file)["disputed"])
    files[DISPUTED] = geojson.dumps(geojson.feature_collection(
        (geojson.feature(f["id"], f["properties"], f["geometry"]) for f in lines), name="disputed",
        title="Disputed lines", description=catalogue.BOUNDARY_NOTE))
    info["disputed"] = {"file": DISPUTED, "features": len(lines), "note": catalogue.BOUNDARY_NOTE}
    with atomic.staged_dir(out_dir) as staging:
        for name, payload in files.items():
            (staging / name).write_bytes(payload)
        write_geopackage(staging / GEOPACKAGE, layers)
        write_generalised(staging / generalise.GENERALISED_FILE, layers)
        for name in (GEOPACKAGE, generalise.GENERALISED_FILE, DISPUTED):
            info["files_sha256"][name] = datasets.sha256_file(staging / name)
        (staging / MANIFEST).write_bytes(json.dumps(info, indent=2, ensure_ascii=False).encode() + b"\n")
    return info
