"""``ttp-atlas publish``: the whole static site (PMTiles, web map, styles, data, static OGC API JSON),
timed as a user runs it, with its size and the tiles it holds. ``python -m bench.publish`` prints it alone.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from bench.common import row, timed
from geo import datasets
from layers import store


def run() -> list[dict]:
    atlas = store.ensure_build(store.build_dir(), datasets.data_dir())
    with tempfile.TemporaryDirectory() as work:
        site = Path(work) / "site"
        seconds, error = timed([sys.executable, "-m", "server", "publish", "--build", str(atlas.root),
                                "--out", str(site), "--base-url", "https://atlas.example.org"])
        if seconds is None:
            return [row("publish", "ttp-atlas publish FAILED", error)]
        files = [path for path in site.rglob("*") if path.is_file()]
        manifest = json.loads((site / "manifest.json").read_text())
        tiles = ", ".join(f"{t['path']} {t['tiles']}" for t in manifest.get("tiles", []))
        return [row("publish", "ttp-atlas publish (default zooms) wall / CPU", seconds, "s"),
                row("publish", f"site size ({len(files)} files)", f"{sum(p.stat().st_size for p in files) / 2 ** 20:.1f}",
                    "MiB"),
                row("publish", "tile archives (tiles addressed)", tiles or "see manifest.json")]


if __name__ == "__main__":
    from bench.__main__ import table

    print(table(run()))
