"""``python -m bench``: run every benchmark of the project and write one markdown table.

Each module ``bench/<name>.py`` exposes ``run() -> list[dict]`` rows (see bench.common.row).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from geo import atomic

MODULES = ("build", "features", "tiles", "pyramid", "publish", "maps", "export", "load", "soak", "slow", "join")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return (f"{platform.node()}: {os.cpu_count()} x {cpu}, {int(memory) // 1024 ** 2} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def table(rows: list[dict]) -> str:
    lines = ["| benchmark | metric | value | unit | goal |", "|---|---|---|---|---|"]
    lines += [f"| {r['benchmark']} | {r['metric']} | {r['value']} | {r['unit']} | {r['goal']} |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results.md"))
    parser.add_argument("--only", nargs="*", choices=MODULES, default=list(MODULES))
    args = parser.parse_args(argv)
    rows, started = [], time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for name in args.only:
        began = time.monotonic()
        try:
            rows += importlib.import_module(f"bench.{name}").run()
        except Exception as error:  # one failing benchmark must not hide the others' figures
            traceback.print_exc()
            rows.append({"benchmark": name, "metric": "FAILED", "value": repr(error)[:200], "unit": "", "goal": ""})
        print(f"{name}: {time.monotonic() - began:.0f} s", file=sys.stderr)
    report = f"# ttp-atlas benchmarks\n\n{started} on {machine()}\n\n{table(rows)}\n"
    atomic.write_bytes(args.out, report.encode())
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
