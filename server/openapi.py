"""The OpenAPI 3.0 document served at ``/api``: every endpoint, built from the catalogue.

The document is the sum of *path groups*: functions ``(ctx) -> {"paths": {...}, "components": {...}}``
(components optional) where ``ctx`` is an ``ApiContext`` (the atlas and each layer's queryables).

How to add endpoints:
- an endpoint module (tiles, maps, exports: anything in ``server.app.FEATURE_MODULES``) defines
  ``def openapi(ctx) -> dict`` in the same shape; it is picked up without touching this file;
- app-level endpoints (healthz, readyz) live in ``app_paths`` below: the lead adds theirs there.
Reuse ``operation``, ``param``, ``query``, ``collection_param``, ``FORMAT_PARAM`` and the
``ref``-erenced components (``Problem``, ``Link``) to keep the document uniform.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from layers import catalogue, store
from layers.features import DATETIME_PATTERN, Queryable, collections

OPENAPI_MEDIA = "application/vnd.oai.openapi+json;version=3.0"
GEOJSON, JSON, HTML, PROBLEM = "application/geo+json", "application/json", "text/html", "application/problem+json"
QUERYABLES_MEDIA = "application/schema+json"
DEFAULT_LIMIT, MAX_LIMIT = 1000, 5000  # the items page size: advertised here and enforced by the server


@dataclass(frozen=True)
class ApiContext:
    atlas: store.Atlas
    queryables: dict[str, dict[str, Queryable]]  # collection id -> query parameter -> queryable
    titles: dict[str, str] = field(default_factory=dict)  # collection id -> title: the served collections

    @property
    def collection_ids(self) -> list[str]:
        """The collections served: the catalogue's, and the event file's when one is loaded."""
        return list(self.titles) or list(collections())


# --- building blocks -------------------------------------------------------------------------

def ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def param(name: str, where: str, schema: dict, description: str, required: bool = False, **extra) -> dict:
    return {"name": name, "in": where, "required": required or where == "path", "description": description,
            "schema": schema, **extra}


def query(name: str, schema: dict, description: str, **extra) -> dict:
    return param(name, "query", schema, description, **extra)


CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS_PARAM = query("crs", {"type": "string", "enum": [CRS84]}, "CRS of the response: only CRS84 (lon, lat).")
FORMAT_PARAM = query("f", {"type": "string", "enum": ["json", "html"]},
                     "Output format; by default JSON, or HTML when the Accept header prefers text/html.")


def collection_param(ids: list[str]) -> dict:
    return param("collectionId", "path", {"type": "string", "enum": ids},
                 "A layer of the catalogue, or one period of a timed layer (e.g. wilayahs-2023-06-30: the "
                 "units valid on that period's first day, with no overlaps), or, when an event file is loaded, "
                 "events, event-counts-wilayahs or event-counts-districts.")


def content(schema: dict, *mimetypes: str) -> dict:
    return {m: {"schema": schema} for m in mimetypes}


def operation(summary: str, tag: str, parameters: list[dict], ok: dict, description: str = "",
              op_id: str | None = None) -> dict:
    """A GET operation: ``ok`` is the 200 response's ``content``; problems documented once for all."""
    spec = {"summary": summary, "tags": [tag], "parameters": parameters,
            "responses": {"200": {"description": "OK", "content": ok},
                          "304": {"description": "Not modified (the If-None-Match ETag matched)"},
                          "400": ref("responses", "BadRequest"), "404": ref("responses", "NotFound"),
                          "default": ref("responses", "Problem")}}
    if description:
        spec["description"] = description
    if op_id:
        spec["operationId"] = op_id
    return {"get": spec}


def _html() -> dict:
    return {"type": "string"}


# --- components ------------------------------------------------------------------------------

def components() -> dict:
    link = {"type": "object", "required": ["href", "rel"], "properties": {
        "href": {"type": "string"}, "rel": {"type": "string"}, "type": {"type": "string"},
        "title": {"type": "string"}, "hreflang": {"type": "string"}}}
    links = {"type": "array", "items": ref("schemas", "Link")}
    geometry = {"type": "object", "nullable": True, "required": ["type"], "properties": {
        "type": {"type": "string", "enum": ["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                                            "MultiPolygon", "GeometryCollection"]},
        "coordinates": {"type": "array"}, "geometries": {"type": "array"}}}
    feature = {"type": "object", "required": ["type", "id", "geometry", "properties"], "properties": {
        "type": {"type": "string", "enum": ["Feature"]}, "id": {"type": "string"},
        "geometry": ref("schemas", "Geometry"), "properties": {"type": "object", "nullable": True},
        "links": links}}
    collection = {"type": "object", "required": ["id", "links"], "properties": {
        "id": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
        "attribution": {"type": "string"}, "licence": {"type": "string"}, "caveat": {"type": "string"},
        "itemType": {"type": "string"}, "crs": {"type": "array", "items": {"type": "string"}},
        "storageCrs": {"type": "string"},
        "extent": {"type": "object", "properties": {
            "spatial": {"type": "object", "properties": {
                "bbox": {"type": "array", "minItems": 1,
                         "items": {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}}},
                "crs": {"type": "string"}}},
            "temporal": {"type": "object", "properties": {
                "interval": {"type": "array", "minItems": 1, "items": {
                    "type": "array", "minItems": 2, "maxItems": 2,
                    "items": {"type": "string", "format": "date-time", "nullable": True}}},
                "trs": {"type": "string"}}}}},
        "links": links}}
    problem = {"type": "object", "required": ["title", "status", "detail"], "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "instance": {"type": "string"}, "parameter": {"type": "string"},
        "valid": {}}}
    def problem_response(text):
        return {"description": text, "content": content(ref("schemas", "Problem"), PROBLEM)}
    return {
        "schemas": {
            "Link": link, "Geometry": geometry, "Feature": feature, "Collection": collection, "Problem": problem,
            "Queryables": {"type": "object", "required": ["$schema", "$id", "type", "properties"], "properties": {
                "$schema": {"type": "string"}, "$id": {"type": "string"},
                "type": {"type": "string", "enum": ["object"]},
                "title": {"type": "string"}, "description": {"type": "string"},
                "properties": {"type": "object", "additionalProperties": {"type": "object"}},
                "additionalProperties": {"type": "boolean"}}},
            "LandingPage": {"type": "object", "required": ["links"], "properties": {
                "title": {"type": "string"}, "description": {"type": "string"},
                "attribution": {"type": "string"}, "links": links}},
            "Conformance": {"type": "object", "required": ["conformsTo"], "properties": {
                "conformsTo": {"type": "array", "items": {"type": "string"}}}},
            "Collections": {"type": "object", "required": ["links", "collections"], "properties": {
                "links": links, "collections": {"type": "array", "items": ref("schemas", "Collection")}}},
            "FeatureCollection": {"type": "object", "required": ["type", "features"], "properties": {
                "type": {"type": "string", "enum": ["FeatureCollection"]},
                "features": {"type": "array", "items": ref("schemas", "Feature")}, "links": links,
                "timeStamp": {"type": "string", "format": "date-time"},
                "numberMatched": {"type": "integer", "minimum": 0},
                "numberReturned": {"type": "integer", "minimum": 0}}},
        },
        "parameters": shared_parameters(),
        "responses": {"BadRequest": problem_response("A query parameter is unknown, repeated or invalid"),
                      "NotFound": problem_response("No such collection, feature or resource"),
                      "Problem": problem_response("Any other problem (405 for methods other than GET)")},
    }


# --- path groups -----------------------------------------------------------------------------

def app_paths(ctx: ApiContext) -> dict:
    """Endpoints of ``server.app`` itself: the lead adds further app-level paths here."""
    status = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}
    return {"paths": {
        "/healthz": operation("Liveness", "Service", [], content(status, JSON)),
        "/readyz": operation("Readiness: the build loaded, with its id and layer sizes", "Service", [],
                             content(status, JSON)),
    }}


def core_paths(ctx: ApiContext) -> dict:
    """OGC API - Features core: landing page, conformance, API description, collections."""
    both = [FORMAT_PARAM]
    return {"paths": {
        "/": operation("Landing page", "Capabilities", both,
                       {**content(ref("schemas", "LandingPage"), JSON), **content(_html(), HTML)}, op_id="getLandingPage"),
        "/conformance": operation("Conformance classes implemented", "Capabilities", both,
                                  {**content(ref("schemas", "Conformance"), JSON), **content(_html(), HTML)},
                                  op_id="getConformance"),
        "/api": operation("This OpenAPI document", "Capabilities", both,
                          {**content({"type": "object"}, OPENAPI_MEDIA), **content(_html(), HTML)}, op_id="getApi"),
        "/collections": operation("The layers", "Capabilities", both,
                                  {**content(ref("schemas", "Collections"), JSON), **content(_html(), HTML)},
                                  op_id="getCollections"),
        "/collections/{collectionId}": operation(
            "One layer: extent, licence, links to its items and downloads", "Capabilities",
            [collection_param(ctx.collection_ids), FORMAT_PARAM],
            {**content(ref("schemas", "Collection"), JSON), **content(_html(), HTML)}, op_id="describeCollection"),
        "/collections/{collectionId}/queryables": operation(
            "The properties a client may filter items on (OGC API - Features Part 3, JSON Schema 2020-12)",
            "Capabilities",
            [collection_param(ctx.collection_ids), query("f", {"type": "string", "enum": ["json"]}, "Output format.")],
            content(ref("schemas", "Queryables"), QUERYABLES_MEDIA),
            op_id="getQueryables"),
    }}


SHARED_PARAMETERS = ("bbox", "bbox-crs", "crs", "limit", "offset", "datetime")  # in components/parameters


def shared_parameters() -> dict[str, dict]:
    """The items parameters every client looks up under ``components/parameters`` (GDAL and QGIS
    read the page size there), defined once and referenced from every items path."""
    found = {p["name"]: p for p in (
        query("bbox", {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}},
              "Features intersecting minx,miny,maxx,maxy (CRS84 longitude/latitude).", style="form",
              explode=False),
        query("bbox-crs", {"type": "string", "enum": [CRS84]}, "CRS of bbox: only CRS84."), CRS_PARAM,
        query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
              f"Features per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}).", style="form", explode=False),
        query("offset", {"type": "integer", "minimum": 0, "default": 0}, "Features to skip (the next link sets it)."),
        query("datetime", {"type": "string", "pattern": DATETIME_PATTERN},
              "RFC 3339 instant or interval (start/end, '..' or empty for an open end; "
              "0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z, with any offset, are open ends too): "
              "features valid then. Features without dates always match.", style="form", explode=False))}
    return {name: found[name] for name in SHARED_PARAMETERS}


def items_parameters(queryables: dict[str, Queryable]) -> list[dict]:
    filters = [query(q.name, {"type": "string", **({"enum": list(q.values)} if q.values else {}),
                              **({"pattern": q.pattern} if q.pattern else {})}, q.description)
               for q in queryables.values()]
    return [*(ref("parameters", name) for name in SHARED_PARAMETERS), FORMAT_PARAM, *filters]


def items_paths(ctx: ApiContext) -> dict:
    """Per layer, so that each layer's property filters (and their values) are listed."""
    paths = {}
    for lid, queryables in ctx.queryables.items():
        title = ctx.titles.get(lid) or collections()[lid].title
        paths[f"/collections/{lid}/items"] = operation(
            f"Features of {title}", "Data", items_parameters(queryables),
            {**content(ref("schemas", "FeatureCollection"), GEOJSON), **content(_html(), HTML)},
            op_id=f"getFeatures-{lid}")
        paths[f"/collections/{lid}/items/{{featureId}}"] = operation(
            f"One feature of {title}", "Data",
            [param("featureId", "path", {"type": "string"}, "The feature's stable id."), CRS_PARAM, FORMAT_PARAM],
            {**content(ref("schemas", "Feature"), GEOJSON), **content(_html(), HTML)}, op_id=f"getFeature-{lid}")
    return {"paths": paths}


def download_paths(ctx: ApiContext) -> dict:
    from layers.formats import FORMATS

    mimetypes = sorted({f.mimetype for f in FORMATS.values()})
    return {"paths": {"/collections/{collectionId}/download.{format}": operation(
        "The whole layer as a file (licence, credits and caveat inside)", "Data",
        [collection_param(list(collections())), param("format", "path", {"type": "string", "enum": list(FORMATS)},
                                   "; ".join(f"{k}: {f.title}" for k, f in FORMATS.items()))],
        {m: {"schema": {"type": "object"} if m.endswith("json") else {"type": "string", "format": "binary"}}
         for m in mimetypes}, op_id="download")}}


PATH_GROUPS: tuple[Callable[[ApiContext], dict], ...] = (app_paths, core_paths, items_paths, download_paths)


def module_groups() -> list[Callable[[ApiContext], dict]]:
    """``openapi(ctx)`` of every endpoint module that defines one (tiles, maps, exports ...)."""
    from server.app import FEATURE_MODULES

    modules = (importlib.import_module(name) for name in FEATURE_MODULES)
    return [m.openapi for m in modules if callable(getattr(m, "openapi", None))]


def document(ctx: ApiContext, base: str) -> dict:
    spec = {"openapi": "3.0.3",
            "info": {"title": "ttp-atlas", "version": ctx.atlas.manifest.get("version", "0"),
                     "description": "Layers of Pakistan's civil geography and of the TTP's claimed units "
                                    "(OGC API - Features). " + catalogue.CAVEAT + " Credits: "
                                    + "; ".join(ctx.atlas.attribution()),
                     "license": {"name": "Data: see each collection's licence links"}},
            "servers": [{"url": base or "/"}], "paths": {}, "components": components()}
    for group in (*PATH_GROUPS, *module_groups()):
        part = group(ctx)
        spec["paths"].update(part.get("paths", {}))
        for kind, entries in part.get("components", {}).items():
            spec["components"].setdefault(kind, {}).update(entries)
    return spec


# --- checking responses against the document (for tests: any endpoint's) ---------------------

def _resolve(node, spec: dict):
    """``node`` with every local ``$ref`` replaced by its target (the document has no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _resolve(target, spec)
        return {k: _resolve(v, spec) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, spec) for v in node]
    return node


def operation_for(spec: dict, path: str, method: str = "get") -> dict | None:
    """The operation whose path template matches ``path``, the most specific template first."""
    templates = sorted(spec["paths"], key=lambda t: (t.count("{"), -len(t)))
    for template in templates:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return spec["paths"][template].get(method.lower())
    return None


def response_errors(spec: dict, method: str, path: str, status: int, content_type: str, body: bytes) -> list[str]:
    """Why a response does not match the document (empty when it does): status, media type, schema."""
    from openapi_schema_validator import OAS30Validator

    op = operation_for(spec, path, method)
    if op is None:  # only a problem may answer a path or method the document does not list
        op = {"responses": {"default": ref("responses", "Problem")}} if status in (404, 405) else None
    if op is None:
        return [f"{method} {path}: no such operation in the document"]
    declared = op["responses"].get(str(status)) or op["responses"].get("default")
    if declared is None:
        return [f"{method} {path}: status {status} not documented"]
    declared = _resolve(declared, spec)
    media = content_type.split(";")[0].strip()
    contents = {k.split(";")[0]: v for k, v in declared.get("content", {}).items()}
    if not contents:
        return []
    if media not in contents:
        return [f"{method} {path} {status}: media type {media} not among {sorted(contents)}"]
    schema = _resolve(contents[media]["schema"], spec)
    if "json" not in media:
        return []
    validator = OAS30Validator(schema)
    return [f"{method} {path} {status}: {e.message} at {list(e.absolute_path)}"
            for e in validator.iter_errors(json.loads(body))]
