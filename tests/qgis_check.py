"""PyQGIS checks run by tests/test_qgis.py with Debian's /usr/bin/python3 (QGIS 3.22, QT_QPA_PLATFORM=offscreen).

    qgis_check.py tiles BASE OUT.png [DATETIME]   vector tiles with their style.json, Pakistan rendered to PNG
                                                  (with the count of each label text drawn)
    qgis_check.py qml BASE BUILD_DIR LAYER...     each layer's GeoJSON with the served QML, and SLD, applied
    qgis_check.py gpkg FILE.gpkg LAYER...         layers of a GeoPackage, styled from its layer_styles
    qgis_check.py project FILE.qgs OUT.png DAY TILES.png   the project's layers, time and metadata;
                                                         its OAPIF layers at DAY, its tile layer

Prints one JSON document on stdout for the test to assert on.
"""

import json
import sys
import tempfile
import urllib.request
from urllib.parse import quote
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsDateTimeRange,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
    QgsVectorTileLayer,
)
from qgis.PyQt.QtCore import QDate, QDateTime, QSize, Qt, QTime
from qgis.PyQt.QtGui import QColor

PAKISTAN_3857 = QgsRectangle(6_800_000, 2_700_000, 8_800_000, 4_400_000)


def symbol_info(symbol) -> dict:
    return {"layers": [layer.layerType() for layer in symbol.symbolLayers()],
            "colours": [layer.color().name(QColor.HexArgb) for layer in symbol.symbolLayers()]}


def renderer_info(layer) -> dict:
    renderer = layer.renderer()
    info = {"type": renderer.type()}
    if renderer.type() == "RuleRenderer":
        info["rules"] = {rule.label(): {"filter": rule.filterExpression(), **symbol_info(rule.symbol())}
                         for rule in renderer.rootRule().children()}
    elif renderer.type() == "singleSymbol":
        info.update(symbol_info(renderer.symbol()))
    return info


def temporal_info(layer) -> dict:
    props = layer.temporalProperties()
    return {"active": props.isActive(), "mode": int(props.mode()), "start": props.startField(),
            "end": props.endField()}


def render(layers, out: str, day: str = "") -> dict:
    """Pakistan in web Mercator, 500 px wide; at ``day`` (ISO date) for temporal layers if given. Returns
    how many times each label text was drawn."""
    settings = QgsMapSettings()
    settings.setLayers(layers)
    if day:
        start = QDateTime(QDate.fromString(day, "yyyy-MM-dd"), QTime(0, 0), Qt.UTC)
        settings.setIsTemporal(True)
        settings.setTemporalRange(QgsDateTimeRange(start, start.addSecs(86399)))
    settings.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    settings.setExtent(PAKISTAN_3857)
    settings.setOutputSize(QSize(500, 425))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(out, "PNG")
    drawn = {}
    for position in job.takeLabelingResults().allLabels():
        drawn[position.labelText] = drawn.get(position.labelText, 0) + 1
    return drawn


def check_tiles(base: str, out: str, datetime: str = "") -> dict:
    query = f"?datetime={datetime}" if datetime else ""
    uri = (f"styleUrl={quote(f'{base}/tiles/atlas/style.json{query}', safe=':/')}&type=xyz"
           f"&url={quote(f'{base}/tiles/atlas/{{z}}/{{x}}/{{y}}.mvt{query}', safe=':/')}&zmin=0&zmax=14")
    layer = QgsVectorTileLayer(uri, "atlas")
    error, ok = layer.loadDefaultStyle()
    drawn = render([layer], out)
    styles = layer.renderer().styles() if layer.renderer() else []
    return {"valid": layer.isValid(), "style_loaded": ok, "error": error, "renderer": layer.renderer().type(),
            "styles": len(styles), "layers": sorted({s.layerName() for s in styles}), "labels_drawn": drawn,
            "label_layers": sorted({s.layerName() for s in layer.labeling().styles()}) if layer.labeling() else []}


def check_qml(base: str, build: str, *layer_ids: str) -> dict:
    result = {}
    for path in (Path(build) / f"{layer_id}.geojson" for layer_id in layer_ids):
        layer = QgsVectorLayer(str(path), path.stem, "ogr")
        with tempfile.NamedTemporaryFile(suffix=".qml") as qml:
            qml.write(urllib.request.urlopen(f"{base}/styles/{path.stem}.qml").read())
            qml.flush()
            message, ok = layer.loadNamedStyle(qml.name)
        result[path.stem] = {"valid": layer.isValid(), "loaded": ok, "message": message,
                             "renderer": renderer_info(layer), "labels": layer.labelsEnabled(),
                             "temporal": temporal_info(layer)}
        sld_layer = QgsVectorLayer(str(path), path.stem, "ogr")
        with tempfile.NamedTemporaryFile(suffix=".sld") as sld:
            sld.write(urllib.request.urlopen(f"{base}/styles/{path.stem}.sld").read())
            sld.flush()
            message, ok = sld_layer.loadSldStyle(sld.name)
        result[path.stem]["sld"] = {"loaded": ok, "message": message, "renderer": renderer_info(sld_layer)}
    return result


def check_gpkg(path: str, *names: str) -> dict:
    result = {}
    for name in names:
        layer = QgsVectorLayer(f"{path}|layername={name}", name, "ogr")
        result[name] = {"valid": layer.isValid(), "renderer": renderer_info(layer),
                        "temporal": temporal_info(layer), "features": layer.featureCount()}
        layer.loadDefaultStyle()  # QGIS 3.22 resets temporal properties after the style read on open
        result[name]["temporal_reloaded"] = temporal_info(layer)
    return result


def check_project(path: str, out: str, day: str, tiles_out: str) -> dict:
    project = QgsProject.instance()
    ok = project.read(path)
    labels = render([node.layer() for node in project.layerTreeRoot().findLayers() if node.isVisible()], out, day)
    drawn = render([layer for layer in project.mapLayers().values() if isinstance(layer, QgsVectorTileLayer)],
                   tiles_out)
    layers = {}
    for layer in project.mapLayers().values():
        node = project.layerTreeRoot().findLayer(layer.id())
        info = {"valid": layer.isValid(), "provider": layer.providerType(), "visible": node.isVisible(),
                "crs": layer.crs().authid()}
        if isinstance(layer, QgsVectorTileLayer):
            info["styles"] = {s.styleName(): s.symbol().color().name(QColor.HexArgb) for s in layer.renderer().styles()}
            info["labels"] = len(layer.labeling().styles()) if layer.labeling() else 0
        if isinstance(layer, QgsVectorLayer):
            info.update(renderer=renderer_info(layer), temporal=temporal_info(layer),
                        features=layer.featureCount() if layer.isValid() else None,
                        rights=layer.metadata().rights(), licenses=layer.metadata().licenses())
        layers[layer.name()] = info
    time = project.timeSettings().temporalRange()
    return {"read": ok, "layers": layers, "crs": project.crs().authid(),
            "time": [time.begin().toString("yyyy-MM-dd"), time.end().toString("yyyy-MM-dd")],
            "abstract": project.metadata().abstract(), "title": project.metadata().title(), "tile_labels": drawn,
            "labels": labels}


def main() -> None:
    app = QgsApplication([], False)
    app.initQgis()
    command, *args = sys.argv[1:]
    checks = {"tiles": check_tiles, "qml": check_qml, "gpkg": check_gpkg, "project": check_project}
    print(json.dumps(checks[command](*args)))
    sys.stdout.flush()
    app.exitQgis()


if __name__ == "__main__":
    main()
