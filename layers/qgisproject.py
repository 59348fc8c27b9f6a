"""The QGIS project (.qgs) of a running service: its OGC API - Features layers with the atlas styles
(``layers.gisstyles``), its vector tiles with their MapLibre style, the temporal controller over the
wilayah periods, and the caveat, credits and licences in the project and layer metadata.

Plain XML in QGIS 3.22's project format; QGIS fills in everything left out with its defaults.
"""

from __future__ import annotations

import datetime as dt
import math
import xml.etree.ElementTree as ET
from urllib.parse import quote

from layers import catalogue, gisstyles, style, wilayahs
from layers import tiles as layer_tiles

# Drawn and checked by default (top to bottom of the layer tree: the reverse of the draw order); the
# others are in the project, unchecked.
SHOWN = ("wilayahs", "tribal-districts", "provinces", "districts", "countries")
TILES_ID = "atlas_vector_tiles"


def _text(parent: ET.Element, tag: str, text: str = "", **attributes) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    element.text = text
    return element


QGIS_SRSID = {3857: 3857, 4326: 3452}  # ids in QGIS's srs.db: 3.22 reads a project CRS only with one


def _srs(parent: ET.Element, epsg: int) -> None:
    srs = ET.SubElement(parent, "spatialrefsys")
    _text(srs, "srsid", str(QGIS_SRSID[epsg]))
    _text(srs, "authid", f"EPSG:{epsg}")
    _text(srs, "srid", str(epsg))


def _mercator(lon: float, lat: float) -> tuple[float, float]:
    radius = 6378137.0
    return radius * math.radians(lon), radius * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def _extent(parent: ET.Element, tag: str, bounds) -> None:
    extent = ET.SubElement(parent, tag)
    for name, value in zip(("xmin", "ymin", "xmax", "ymax"), bounds):
        _text(extent, name, f"{value:.6f}")


def features_uri(base: str, layer_id: str) -> str:
    """QGIS's OAPIF data source of one collection of the service at ``base``."""
    return f"url='{base}' typename='{layer_id}' pagingEnabled='true' restrictToRequestBBOX='1'"


def tiles_uri(base: str, tileset: str = layer_tiles.ATLAS) -> str:
    """QGIS's vector tile data source: XYZ tiles of the service with their MapLibre style."""
    tiles = quote(f"{base}/tiles/{tileset}/{{z}}/{{x}}/{{y}}.mvt", safe=":/")
    style_url = quote(f"{base}/tiles/{tileset}/style.json", safe=":/")
    return f"styleUrl={style_url}&type=xyz&url={tiles}&zmax={layer_tiles.MAX_ZOOM}&zmin={layer_tiles.MIN_ZOOM}"


def _licences(atlas, layer_ids) -> list[dict]:
    keys = {k for lid in layer_ids for k in catalogue.layer(lid).datasets}
    return [d for k, d in atlas.manifest["datasets"].items() if k in keys]


def _layer_metadata(parent: ET.Element, atlas, layer_id: str | None) -> None:
    """A layer's title, abstract (with the caveat), rights (credits) and licences."""
    layer_ids = [layer_id] if layer_id else list(catalogue.LAYER_IDS)
    metadata = ET.SubElement(parent, "resourceMetadata")
    _text(metadata, "title", catalogue.layer(layer_id).title if layer_id else "TTP atlas (vector tiles)")
    _text(metadata, "abstract", catalogue.layer(layer_id).description if layer_id else catalogue.CAVEAT)
    for credit in atlas.attribution(layer_ids):
        _text(metadata, "rights", credit)
    for dataset in _licences(atlas, layer_ids):
        _text(metadata, "license", f"{dataset['title']}: {dataset['licence']} ({dataset['licence_url']})")


def _maplayer(parent: ET.Element, atlas, layer_id: str | None, base: str) -> tuple[str, str, str, str]:
    """One ``maplayer`` (a collection, or the vector tiles when ``layer_id`` is None); returns its
    (id, name, source, provider) for the layer tree."""
    if layer_id:
        element = ET.SubElement(parent, "maplayer", type="vector", geometry="Polygon", wkbType="MultiPolygon",
                                labelsEnabled="1" if style.LAYER_STYLES[layer_id].label else "0",
                                styleCategories="AllStyleCategories")
        ident, name = f"{layer_id.replace('-', '_')}_oapif", catalogue.layer(layer_id).title
        source, provider = features_uri(base, layer_id), "oapif"
    else:
        element = ET.SubElement(parent, "maplayer", type="vector-tile", styleCategories="AllStyleCategories")
        ident, name = TILES_ID, "TTP atlas: vector tiles (today's units)"
        source, provider = tiles_uri(base), "vectortile"
    _text(element, "id", ident)
    _text(element, "datasource", source)
    _text(element, "layername", name)
    _srs(ET.SubElement(element, "srs"), 4326 if layer_id else 3857)
    _layer_metadata(element, atlas, layer_id)
    _text(element, "provider", provider, **({"encoding": "UTF-8"} if layer_id else {}))
    element.extend(gisstyles.qgis_style_elements(layer_id) if layer_id else
                   gisstyles.qgis_vector_tile_style(layer_tiles.ATLAS, layer_tiles.tile_layers(layer_tiles.ATLAS)))
    return ident, name, source, provider


def _time_settings(parent: ET.Element, periods: list[dict], today: dt.date) -> None:
    """The temporal controller: from the first period to today, a day per frame."""
    settings = ET.SubElement(parent, "ProjectTimeSettings", cumulativeTemporalRange="0", timeStep="1",
                             timeStepUnit="d", frameRate="1")
    temporal = ET.SubElement(settings, "TemporalRange")
    _text(temporal, "start", f"{periods[0]['from']}T00:00:00Z")
    _text(temporal, "end", f"{today.isoformat()}T00:00:00Z")


def _project_metadata(parent: ET.Element, atlas, periods: list[dict]) -> None:
    metadata = ET.SubElement(parent, "projectMetadata")
    _text(metadata, "title", "TTP atlas: claimed wilayahs and Pakistan's civil geography")
    lines = [catalogue.CAVEAT, "", "Periods of the claimed units (use the temporal controller to pick a date):"]
    lines += [f"- from {p['from']}: {p['label']}" for p in periods]
    lines += ["", "Credits: " + "; ".join(atlas.attribution()), "Licences:"]
    lines += [f"- {d['title']}: {d['licence']} ({d['licence_url']})" for d in atlas.manifest["datasets"].values()]
    lines += ["", f"Styles: {style.PALETTE} colour-blind-safe palette; extensions hatched in their unit's zone "
              f"colour; low confidence dashed. Build {atlas.build_id}."]
    _text(metadata, "abstract", "\n".join(lines))
    keywords = ET.SubElement(metadata, "keywords", vocabulary="licence")
    for dataset in atlas.manifest["datasets"].values():
        _text(keywords, "keyword", dataset["licence"])
    periods_keywords = ET.SubElement(metadata, "keywords", vocabulary="period")
    for period in periods:
        _text(periods_keywords, "keyword", f"{period['from']}: {period['label']}")
    links = ET.SubElement(metadata, "links")
    for dataset in atlas.manifest["datasets"].values():
        ET.SubElement(links, "link", name=f"{dataset['licence']}: {dataset['title']}", type="WWW:LINK",
                      url=dataset["licence_url"], description=dataset["attribution"], format="", mimeType="", size="")
    _text(metadata, "author", "ttp-atlas")


def project(atlas, base: str, today: dt.date | None = None) -> str:
    """The project as XML text, for the service at ``base`` (absolute URL without a trailing slash)."""
    periods = wilayahs.load()["periods"]
    root = ET.Element("qgis", projectname="TTP atlas", version=gisstyles.QGIS_VERSION)
    ET.SubElement(root, "homePath", path="")
    _text(root, "title", "TTP atlas")
    _srs(ET.SubElement(root, "projectCrs"), 3857)
    crs_properties = ET.SubElement(ET.SubElement(root, "properties"), "SpatialRefSys")
    _text(crs_properties, "ProjectionsEnabled", "1", type="int")  # QGIS 3.22 reads projectCrs only with it
    tree = ET.SubElement(root, "layer-tree-group")
    layers = ET.Element("projectlayers")
    order = [*reversed(style.DRAW_ORDER), None]  # top of the tree first; the tiles last, unchecked
    for layer_id in order:
        ident, name, source, provider = _maplayer(layers, atlas, layer_id, base)
        ET.SubElement(tree, "layer-tree-layer", id=ident, name=name, source=source, providerKey=provider,
                      checked="Qt::Checked" if layer_id in SHOWN else "Qt::Unchecked", expanded="0")
    root.append(layers)
    canvas = ET.SubElement(root, "mapcanvas", name="theMapCanvas")
    _text(canvas, "units", "meters")
    west, south, east, north = atlas.pakistan_bounds
    _extent(canvas, "extent", (*_mercator(west, south), *_mercator(east, north)))
    _srs(ET.SubElement(canvas, "destinationsrs"), 3857)
    _project_metadata(root, atlas, periods)
    _time_settings(root, periods, today or dt.date.today())
    return gisstyles.xml_text(root, "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n")
