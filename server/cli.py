"""``ttp-atlas``: build the layers, fetch the data, serve them, and each feature's own commands.

Errors the user can fix (bad data, bad values) print one line naming the value and exit 2;
they never print a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from geo import datasets
from layers import build, events, overlay, store
from layers.wilayahs import WilayahDataError
from geo.cache import ConfigError
from server.serving import MAX_WORKERS, NO_PROXY_ENV, ServeError


class UsageError(RuntimeError):
    """A bad value given on the command line; the message says what would be valid."""


USER_ERRORS = (UsageError, datasets.DataError, build.BuildError, store.BuildUnusable, WilayahDataError, ConfigError,
               ServeError, events.EventFileError)


def cmd_build(args) -> None:
    info = build.build(args.data, args.build)
    counts = ", ".join(f"{lid} {entry['features']}" for lid, entry in info["layers"].items())
    print(f"built {info['build_id']} in {args.build}: {counts}")


def cmd_data(args) -> None:
    fetched = datasets.download(args.data)
    datasets.verify(args.data)
    print(f"{args.data}: {len(fetched)} files fetched, all checksums match")


def cmd_serve(args) -> None:
    from server import serving

    if args.events:  # read by the app at start (its layout is checked then, before anything listens)
        if not (args.events.is_file() and os.access(args.events, os.R_OK)):
            raise UsageError(f"--events {str(args.events)!r} is not a readable file: give an event file (CSV) "
                             f"in ACLED, UCDP GED, GTD or plain date,lon,lat layout")
        os.environ[overlay.EVENTS_ENV] = str(args.events.resolve())
    serving.run(args.build, args.data, host=args.host, port=args.port, workers=args.workers,
                proxy=not args.no_proxy)


def whole_number(minimum: int, maximum: int, env: str | None = None, note: str = ""):
    """An argparse ``type`` for an integer option with one spelling per value: ASCII digits, no sign,
    space, underscore or leading zero (``int`` alone takes '018766', ' 80', '1_0' and '٥'), in range.

    ``env`` names the variable the option's default is read from, so a bad value there is named too.
    """
    source = f"; its default comes from ${env}" if env else ""

    def parse(raw: str) -> int:
        if re.fullmatch(r"0|[1-9][0-9]{0,17}", raw) and minimum <= int(raw) <= maximum:
            return int(raw)
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number from {minimum} to {maximum} in plain "
                                         f"digits{note}{source}")

    return parse


def env_default(name: str, fallback: str) -> str:
    """The option's default from $NAME, as text: argparse checks it with the option's own type."""
    return os.environ.get(name) or fallback


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line naming the value (no usage block), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    from server.app import feature_modules

    top = OneLineParser(prog="ttp-atlas", description=__doc__.splitlines()[0])
    common = OneLineParser(add_help=False)
    common.add_argument("--data", type=Path, default=datasets.data_dir(),
                     help=f"boundary data folder (default: ${datasets.DATA_ENV} or the user cache)")
    common.add_argument("--build", type=Path, default=store.build_dir(),
                        help=f"build folder to read (default: ${store.BUILD_ENV} or build/); built first if empty")
    commands = top.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", parents=[common], help="build every layer into --out")
    build_command.add_argument("--out", dest="build", type=Path, default=store.build_dir(),
                               help=f"build folder to write (same as --build; default: ${store.BUILD_ENV} or build/)")
    build_command.set_defaults(run=cmd_build)
    commands.add_parser("data", parents=[common], help="download and check the boundary data into --data").set_defaults(run=cmd_data)
    serve = commands.add_parser("serve", parents=[common],
                                help="serve the layers: nginx in front of gunicorn (builds first if needed)")
    serve.add_argument("--host", default=os.environ.get("TTP_ATLAS_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=whole_number(1, 65535, env="TTP_ATLAS_PORT"),
                       default=env_default("TTP_ATLAS_PORT", "8000"),
                       help="TCP port, 1 to 65535 (default: $TTP_ATLAS_PORT or 8000)")
    serve.add_argument("--workers", default=env_default("TTP_ATLAS_WORKERS", "0"),
                       type=whole_number(0, MAX_WORKERS, env="TTP_ATLAS_WORKERS", note=", 0 meaning automatic"),
                       help=f"gunicorn worker processes, 0 to {MAX_WORKERS}; 0 (the default, or $TTP_ATLAS_WORKERS): "
                            f"2 x CPUs + 1, at most {MAX_WORKERS}")
    serve.add_argument("--no-proxy", action="store_true", default=os.environ.get(NO_PROXY_ENV, "") == "1",
                       help="serve gunicorn directly, without the nginx front end (debugging only: slow "
                            f"clients can then hold every worker thread; default: ${NO_PROXY_ENV}=1)")
    serve.add_argument("--events", type=Path, default=os.environ.get(overlay.EVENTS_ENV) or None,
                       help="an event file (CSV: ACLED, UCDP GED, GTD or plain date,lon,lat) to serve as the events "
                            f"and event-counts collections (default: ${overlay.EVENTS_ENV})")
    serve.set_defaults(run=cmd_serve)
    for module in feature_modules():
        module.add_commands(commands, common)
    return top


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except ConfigError as error:  # a bad setting read when the feature modules load
        print(f"ttp-atlas: error: {error}", file=sys.stderr)
        return 2
    try:
        args.run(args)
    except USER_ERRORS as error:
        print(f"ttp-atlas {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0

