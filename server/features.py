"""OGC API - Features: landing page, conformance, API document, collections, items, whole-layer downloads.

Responses are assembled from feature JSON serialised once at start (``layers.features``); a page
with its ETag is cached, so repeated requests (the whole layer, above all) cost a dictionary lookup.
"""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import quote, urlencode

from flask import Blueprint, current_app, render_template, request, send_file

from geo import geojson
from geo.cache import ByteCache, budget_from_env
from layers import catalogue, formats, overlay as overlays, store
from layers.features import (LayerFeatures, QueryError, collections as all_collections, layer_metadata,
                             parse_datetime, queryables_schema, rfc3339, temporal_properties)
from layers.overlay import OverlayFeatures, overlay_features
from server import openapi
from server.openapi import CRS84, HTML
from server.http import (GEOJSON, JSON, Problem, bad_parameter, base_url, bbox_param, etag_of, int_param,
                         not_found, params, respond)

blueprint = Blueprint("features", __name__)

CONTENT_CRS = {"Content-Crs": f"<{CRS84}>"}
GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
CONFORMANCE = [*(f"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/{c}" for c in ("core", "oas30", "html",
                                                                                           "geojson")),
               *(f"http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/{c}"
                 for c in ("queryables", "queryables-query-parameters"))]
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
STYLES = (("qml", "application/vnd.qgis.qml+xml", "QGIS style (QML)"),  # served by server.styles
          ("sld", "application/vnd.ogc.sld+xml", "OGC SLD 1.1 / SE style"))
MAPLIBRE_STYLE = "application/vnd.mapbox.style+json"
QGIS_PROJECT = "application/x-qgis-project"
ITEM_PARAMS = ("bbox", "bbox-crs", "crs", "limit", "offset", "datetime", "f")
CRS_PARAMS = ("crs", "bbox-crs")  # OGC API - Features Part 2, where CRS84 is the one CRS offered
PAGE_CACHE_ENV = "TTP_ATLAS_PAGE_CACHE_MB"  # assembled pages kept per process (whole-layer pages among them)


class Service:
    """Everything the endpoints answer from, prepared once per app (shared by forked workers)."""

    def __init__(self, atlas: store.Atlas, overlay: overlays.Overlay | None = None):
        self.atlas = atlas
        texts = {layer_id: atlas.geometry_texts(layer_id) for layer_id in atlas.collections}  # read once per layer
        self.layers = {cid: LayerFeatures.of(atlas, c, texts[c.layer.id]) for cid, c in all_collections().items()}
        self.layers.update(overlay_features(atlas, overlay) if overlay else {})  # the user's events, if loaded
        self.started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.api = openapi.ApiContext(atlas, {lid: lf.queryables for lid, lf in self.layers.items()},
                                      {lid: lf.title for lid, lf in self.layers.items()})
        self.pages = ByteCache(budget_from_env(PAGE_CACHE_ENV, 64), size=lambda page: len(page[0]))

    def items_page(self, layer_id: str, base: str, query: tuple[tuple[str, str], ...]) -> tuple[bytes, str]:
        return self.pages.get_or_make(("items", layer_id, base, query),
                                      lambda: self._items_page(layer_id, base, query))

    def api_document(self, base: str) -> tuple[bytes, str]:
        return self.pages.get_or_make(("api", base), lambda: self._api_document(base))

    def _api_document(self, base: str) -> tuple[bytes, str]:
        body = geojson.dumps(openapi.document(self.api, base))
        return body, etag_of(body)

    def _items_page(self, layer_id: str, base: str, query: tuple[tuple[str, str], ...]) -> tuple[bytes, str]:
        """One page of items as GeoJSON bytes and its ETag; ``query`` is the sorted query string."""
        lf = self.layers[layer_id]
        args = dict(query)
        chosen, limit, offset = select(lf, args)
        path = f"{base}/collections/{layer_id}/items"
        links = [link(href(path, args), "self", GEOJSON, "This page"),
                 link(href(path, {**args, "f": "html"}), "alternate", HTML, "This page as HTML"),
                 link(f"{base}/collections/{layer_id}", "collection", JSON, lf.title)]
        if offset + limit < len(chosen):
            links.append(link(href(path, {**args, "offset": str(offset + limit)}), "next", GEOJSON, "Next page"))
        if offset > 0:
            links.append(link(href(path, {**args, "offset": str(max(0, offset - limit))}), "prev", GEOJSON,
                              "Previous page"))
        returned = len(chosen[offset:offset + limit])
        head = geojson.dumps({"type": "FeatureCollection", "numberMatched": len(chosen),
                              "numberReturned": returned, "timeStamp": self.started, "links": links})
        body = head[:-1] + b',"features":' + lf.page(chosen, offset, limit) + b"}"
        return body, etag_of(body)


def service() -> Service:
    return current_app.extensions["features"]


@blueprint.record_once
def _prepare(state) -> None:
    state.app.extensions["features"] = Service(state.app.extensions["atlas"], state.app.extensions["overlay"])


# --- helpers ---------------------------------------------------------------------------------

def link(href_: str, rel: str, mimetype: str, title: str) -> dict:
    return {"href": href_, "rel": rel, "type": mimetype, "title": title}


def href(path: str, args: dict) -> str:
    return f"{path}?{urlencode(sorted(args.items()))}" if args else path


def output(args: dict) -> str:
    """``json`` or ``html``: the f parameter, else the Accept header (browsers get HTML)."""
    if "f" in args:
        if args["f"] not in ("json", "html"):
            raise bad_parameter("f", args["f"], "json or html")
        return args["f"]
    best = request.accept_mimetypes.best_match([JSON, GEOJSON, HTML], default=JSON)
    return "html" if best == HTML else "json"


EVENT_IDS = tuple(layer.id for layer in catalogue.EVENT_LAYERS)


def layer_features(layer_id: str) -> LayerFeatures:
    found = service().layers.get(layer_id)
    if found is None and layer_id in EVENT_IDS:
        raise not_found(f"collection {layer_id!r} (no event file is loaded: ttp-atlas serve --events FILE, or "
                        f"${overlays.EVENTS_ENV})", list(service().layers))
    if found is None:
        raise not_found(f"collection {layer_id!r}", list(service().layers))
    return found


def select(lf: LayerFeatures, args: dict):
    """The chosen feature indices, limit and offset for validated query ``args``; Problem on bad values."""
    limit = int_param(args, "limit", openapi.DEFAULT_LIMIT, 1, openapi.MAX_LIMIT)
    offset = int_param(args, "offset", 0, 0, 10**9)
    filters = {k: v for k, v in args.items() if k in lf.queryables}
    try:
        period = parse_datetime(args.get("datetime"))
        lf.check_filters(filters)
    except QueryError as error:
        raise bad_parameter(error.name, error.value, error.valid) from None
    return lf.select(bbox_param(args), period, filters), limit, offset


def check_crs(args: dict) -> None:
    for name in CRS_PARAMS:
        if args.get(name, CRS84) != CRS84:
            raise bad_parameter(name, args[name], f"{CRS84} (longitude, latitude), the only CRS offered")


def page(template: str, title: str, json_href: str, credits: tuple[str, ...] = (), **context):
    """An HTML page; ``credits`` (the event data's) come before the boundary data's."""
    body = render_template(template, title=title, json_href=json_href, base=base_url(),
                           attribution=[*credits, *service().atlas.attribution()], caveat=catalogue.CAVEAT,
                           **context).encode()
    return respond(body, HTML)


def map_href(lf: LayerFeatures, base: str, properties: dict | None = None, month: str | None = None) -> str:
    """The web map of a collection, or of one feature (at its first day, or its month for the events
    overlay): the overlay's collections all show on the events map."""
    properties = properties or {}
    if isinstance(lf, OverlayFeatures):
        month = properties.get("month") or month
        return f"{base}/map/events" + (f"?month={month}" if month else "")
    day = properties.get("valid_from") or lf.collection.day
    return f"{base}/map/{lf.layer.id}" + (f"?datetime={day}" if day else "")


def collection_doc(lf: LayerFeatures, base: str) -> dict:
    """A collection's description; one of the events overlay links to its data and the events map (the
    catalogue's layers to their map, styles, tiles and downloads) and lists its months."""
    lid, layer_id = lf.id, lf.layer.id
    meta = layer_metadata(service().atlas, layer_id, lf.collection)
    url = f"{base}/collections/{lid}"
    layer_links = [link(map_href(lf, base), "related", HTML, "Map of this layer"),
                   *(link(f"{base}/styles/{layer_id}.{ext}", "stylesheet", mimetype, title)
                     for ext, mimetype, title in STYLES),
                   link(f"{base}/tiles/{layer_id}/style.json", "stylesheet", MAPLIBRE_STYLE,
                        "MapLibre GL style of this layer's vector tiles"),
                   *(link(f"{url}/download.{key}", "enclosure", fmt.mimetype, f"Download: {fmt.title}")
                     for key, fmt in formats.FORMATS.items())]
    links = [link(url, "self", JSON, "This collection"), link(f"{url}?f=html", "alternate", HTML, "As HTML"),
             link(f"{url}/items", "items", GEOJSON, "Features (GeoJSON)"),
             link(f"{url}/items?f=html", "items", HTML, "Features (HTML)"),
             link(f"{url}/queryables", QUERYABLES_REL, openapi.QUERYABLES_MEDIA,
                  "Properties to filter on (JSON Schema)"),
             *({"href": d["url"], "rel": "license", "type": HTML, "title": f"{d['title']}: {d['licence']}"}
               for d in meta["licences"]),
             *([link(map_href(lf, base), "related", HTML, "Map of the events, per month")]
               if isinstance(lf, OverlayFeatures) else layer_links)]
    extent = {"spatial": {"bbox": [lf.bbox], "crs": CRS84}}
    if lf.interval:
        start, end = lf.interval
        extent["temporal"] = {"interval": [[rfc3339(start), rfc3339(end, end=True)]], "trs": GREGORIAN}
    doc = {"id": lid, "title": meta["title"], "description": meta["description"], "itemType": "feature",
           "crs": [CRS84], "storageCrs": CRS84, "extent": extent, "licence": meta["licence"],
           "attribution": meta["attribution"], "links": links}
    if temporal_properties(lf):
        doc["temporalProperties"] = temporal_properties(lf)
    if lf.collection.day:
        doc["period"] = {"start": lf.collection.day, "label": lf.collection.label}
    if "caveat" in meta:
        doc["caveat"] = meta["caveat"]
    if isinstance(lf, OverlayFeatures):
        doc["months"] = list(lf.months)
    return doc


# --- endpoints -------------------------------------------------------------------------------

@blueprint.get("/")
def landing():
    args = params(["f"])
    base = base_url()
    links = [link(f"{base}/", "self", JSON, "This document"), link(f"{base}/?f=html", "alternate", HTML, "As HTML"),
             link(f"{base}/api", "service-desc", openapi.OPENAPI_MEDIA, "The API definition (OpenAPI 3.0)"),
             link(f"{base}/api?f=html", "service-doc", HTML, "The API documentation"),
             link(f"{base}/conformance", "conformance", JSON, "Conformance classes"),
             link(f"{base}/collections", "data", JSON, "The layers"),
             link(f"{base}/qgis/atlas.qgs", "related", QGIS_PROJECT,
                  "QGIS project: every layer, styled, with the temporal controller set to the periods")]
    doc = {"title": "ttp-atlas",
           "description": "Pakistan's civil geography and the TTP's claimed units, as OGC API - Features. "
                          + catalogue.CAVEAT,
           "attribution": "; ".join(service().atlas.attribution()), "links": links}
    if output(args) == "html":
        return page("features_landing.html", "ttp-atlas", f"{base}/?f=json", doc=doc,
                    layers=[service().layers[lid].layer for lid in catalogue.LAYER_IDS])
    return respond(geojson.dumps(doc), JSON)


@blueprint.get("/conformance")
def conformance():
    args = params(["f"])
    doc = {"conformsTo": CONFORMANCE}
    if output(args) == "html":
        return page("features_conformance.html", "Conformance", f"{base_url()}/conformance?f=json", doc=doc)
    return respond(geojson.dumps(doc), JSON)


@blueprint.get("/api")
def api():
    args = params(["f"])
    body, etag = service().api_document(base_url())
    if output(args) == "html":
        return page("features_api.html", "API", f"{base_url()}/api?f=json", doc=json.loads(body))
    return respond(body, openapi.OPENAPI_MEDIA, etag=etag)


@blueprint.get("/collections")
def collections():
    args = params(["f"])
    base = base_url()
    docs = [collection_doc(lf, base) for lf in service().layers.values()]
    doc = {"links": [link(f"{base}/collections", "self", JSON, "This document"),
                     link(f"{base}/collections?f=html", "alternate", HTML, "As HTML")],
           "collections": docs}
    if output(args) == "html":
        return page("features_collections.html", "Layers", f"{base}/collections?f=json", doc=doc)
    return respond(geojson.dumps(doc), JSON)


@blueprint.get("/collections/<layer_id>")
def collection(layer_id: str):
    # The items parameters are accepted and ignored here: GDAL 3.6 opens "OAPIF:.../collections/{id}?month=..."
    # by sending that query string with every request, this one included.
    args = params([*ITEM_PARAMS, *layer_features(layer_id).queryables])
    doc = collection_doc(layer_features(layer_id), base_url())
    if output(args) == "html":
        return page("features_collection.html", doc["title"], f"{doc['links'][0]['href']}?f=json",
                    credits=layer_features(layer_id).collection.credits, doc=doc)
    return respond(geojson.dumps(doc), JSON)


@blueprint.get("/collections/<layer_id>/queryables")
def queryables(layer_id: str):
    lf = layer_features(layer_id)
    args = params(["f"])
    if args.get("f", "json") != "json":
        raise bad_parameter("f", args["f"], "json (the queryables are a JSON Schema)")
    doc = queryables_schema(lf, f"{base_url()}/collections/{layer_id}/queryables")
    return respond(geojson.dumps(doc), openapi.QUERYABLES_MEDIA)


@blueprint.get("/collections/<layer_id>/items")
def items(layer_id: str):
    lf = layer_features(layer_id)
    args = params([*ITEM_PARAMS, *lf.queryables])
    if output(args) == "html":
        chosen, limit, offset = select(lf, args)
        shown = [lf.features[i] for i in chosen[offset:offset + limit]]
        path = f"{base_url()}/collections/{layer_id}/items"
        return page("features_items.html", lf.layer.title, href(path, {**args, "f": "json"}),
                    credits=lf.collection.credits, layer=lf.layer, map_href=map_href(lf, base_url(), month=
                                                                                        args.get("month")),
                    fitted=not isinstance(lf, OverlayFeatures),
                    features=shown, matched=len(chosen), offset=offset, limit=limit,
                    next_href=href(path, {**args, "offset": offset + limit}) if offset + limit < len(chosen) else None,
                    prev_href=href(path, {**args, "offset": max(0, offset - limit)}) if offset else None)
    check_crs(args)
    query = tuple(sorted((k, v) for k, v in args.items() if k not in ("f", *CRS_PARAMS)))
    body, etag = service().items_page(layer_id, base_url(), query)
    return respond(body, GEOJSON, etag=etag, headers=CONTENT_CRS)


@blueprint.get("/collections/<layer_id>/items/<path:feature_id>")  # a count's id holds a slash: unit/month
def item(layer_id: str, feature_id: str):
    lf = layer_features(layer_id)
    args = params(["f", "crs"])
    index = lf.position.get(feature_id)
    if index is None:
        raise Problem(404, "Not found", f"feature {feature_id!r} does not exist in collection {layer_id!r}")
    base = base_url()
    url = f"{base}/collections/{layer_id}/items/{quote(feature_id, safe='')}"
    if output(args) == "html":
        return page("features_item.html", lf.features[index]["properties"].get("name", feature_id),
                    f"{url}?f=json", credits=lf.collection.credits, layer=lf.layer, feature=lf.features[index],
                    map_href=map_href(lf, base, lf.features[index]["properties"]),
                    fitted=not isinstance(lf, OverlayFeatures))
    check_crs(args)
    links = [link(url, "self", GEOJSON, "This feature"), link(f"{url}?f=html", "alternate", HTML, "As HTML"),
             link(f"{base}/collections/{layer_id}", "collection", JSON, lf.layer.title)]
    body = lf.blob(index)[:-1] + b',"links":' + geojson.dumps(links) + b"}"
    return respond(body, GEOJSON, headers=CONTENT_CRS)


@blueprint.get("/collections/<layer_id>/download.<key>")
def download(layer_id: str, key: str):
    if isinstance(layer_features(layer_id), OverlayFeatures):
        raise not_found(f"a download of {layer_id!r} (the event file's collections are read through items)")
    params([])
    if key not in formats.FORMATS:
        raise Problem(404, "Not found", f"no download format {key!r}; formats: {', '.join(formats.FORMATS)}",
                      valid=list(formats.FORMATS))
    path = formats.download(service().atlas, layer_id, key)
    return send_file(path, mimetype=formats.FORMATS[key].mimetype, as_attachment=True,
                     download_name=formats.file_name(layer_id, key), conditional=True, etag=True,
                     max_age=current_app.config["CACHE_MAX_AGE"])


# --- command line ----------------------------------------------------------------------------

def cmd_download(args) -> None:
    from server.cli import UsageError

    try:
        formats.check(args.layer, args.format)
    except formats.FormatError as error:
        raise UsageError(str(error)) from None
    atlas = store.ensure_build(args.build, args.data)
    target = args.out or formats.file_name(args.layer, args.format)
    formats.produce(atlas, args.layer, args.format, target)
    print(f"wrote {target}")


def add_commands(subparsers, common) -> None:
    """``ttp-atlas download LAYER FORMAT [--out FILE]``: one whole layer as a file, as the server offers it."""
    command = subparsers.add_parser("download", parents=[common],
                                    help="write one whole layer as GeoJSON, GeoPackage, Shapefile, ...")
    command.add_argument("layer", help=f"one of: {', '.join(all_collections())}")
    command.add_argument("format", help=f"one of: {', '.join(formats.FORMATS)}")
    command.add_argument("--out", help="file to write (default: LAYER.FORMAT in the current folder)")
    command.set_defaults(run=cmd_download)
