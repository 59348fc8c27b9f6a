"""The disputed lines of a build (Line of Control, Working Boundary, Siachen), for every renderer to draw
dashed over the civil borders, with ``catalogue.BOUNDARY_NOTE`` wherever they are shown.

They are a line dataset beside the layers (``disputed.geojson``, listed in the manifest), not a catalogue
layer: renderers call ``disputed_lines(atlas)`` and draw each with ``disputed_style()``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import shapely

from layers import build, catalogue, style

NOTE = catalogue.BOUNDARY_NOTE


@lru_cache(maxsize=4)
def _read(path: Path, digest: str) -> tuple[tuple[dict, ...], tuple[shapely.Geometry, ...]]:
    """The file's features and geometries, once per build (``digest`` tells builds apart)."""
    payload = path.read_bytes()
    collection = json.loads(payload)
    return tuple(collection["features"]), tuple(shapely.get_parts(shapely.from_geojson(payload)))


def disputed_lines(atlas) -> list[tuple[dict, shapely.Geometry]]:
    """(properties, lon/lat line) of each disputed line of the build: ``kind`` is ``line-of-control``,
    ``working-boundary``, ``siachen-claim`` or ``siachen-area``; each carries the ``note``. Empty for a
    build made before they existed."""
    digest = atlas.manifest.get("files_sha256", {}).get(build.DISPUTED)
    if digest is None:
        return []
    features, geoms = _read(atlas.root / build.DISPUTED, digest)
    return [(f["properties"], g) for f, g in zip(features, geoms, strict=True)]


def disputed_style() -> dict:
    """How a disputed line is drawn (``style.DISPUTED_STYLE``: dashed over a land-coloured casing that hides
    the solid border beneath), as the renderer dict of ``style.feature_style``."""
    return dict(style.DISPUTED_STYLE)
