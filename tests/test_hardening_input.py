"""Every input a 4xx (HTTP) or one line with exit 2 (CLI): property-based tests of each parameter parser.

Over the real server (nginx in front of gunicorn) and the real command line: integers in every
spelling, tile paths, calendar ends with offsets, text with TeX and markup characters, and paper
sizes across the documented range. Bounded and derandomised: the same few hundred inputs each run.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import re
import subprocess
import sys
from urllib.parse import quote, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo import paper
from layers import tiles as layer_tiles
from server import cli, openapi

BOUNDED = settings(deadline=None, derandomize=True, database=None, max_examples=40,
                   suppress_health_check=list(HealthCheck))
RENDERS = settings(BOUNDED, max_examples=6)  # a map takes about a second to draw

DIGITS = "0123456789"
ODD_NUMBER_CHARACTERS = "_+- .e٥٠١۳𝟓\u00a0x"
integer_spellings = st.one_of(st.integers(-10, 10 ** 6).map(str),
                              st.text(DIGITS + ODD_NUMBER_CHARACTERS, min_size=1, max_size=6))
CALENDAR_ENDS = ["0000-01-01", "0001-01-01", "0001-01-02", "9999-12-30", "9999-12-31"]
offsets = st.one_of(st.just("Z"), st.builds(lambda sign, h, m: f"{sign}{h:02d}:{m:02d}",
                                            st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59)))
instants = st.builds(lambda day, time, offset: f"{day}T{time}{offset}", st.sampled_from(CALENDAR_ENDS),
                     st.sampled_from(["00:00:00", "23:59:59", "12:30:00.5"]), offsets)
datetimes = st.one_of(instants, st.sampled_from(CALENDAR_ENDS),
                      st.builds(lambda a, b: f"{a}/{b}", st.one_of(instants, st.just("..")),
                                st.one_of(instants, st.just(".."))))
MARKUP = "$\\{}^_%&#~<>\"'`|*[]()@!"
texts = st.text(alphabet=st.sampled_from(list(MARKUP + "ab AZ59é")), min_size=1, max_size=30)
sides = st.integers(int(paper.MIN_SIDE_MM), int(paper.MAX_SIDE_MM))
drawable = st.tuples(sides, sides).filter(lambda s: max(s) <= paper.MAX_ASPECT * min(s))


def get(server: str, path: str) -> requests.Response:
    response = requests.get(server + path, timeout=120)
    assert response.status_code < 500, (path, response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.headers["Content-Type"].startswith("application/problem+json"), path
        assert "Traceback" not in response.text
    return response


def canonical_in(raw: str, minimum: int, maximum: int) -> bool:
    return bool(re.fullmatch(r"0|-?[1-9][0-9]*", raw)) and minimum <= int(raw) <= maximum


@BOUNDED
@given(limit=integer_spellings, offset=integer_spellings)
def test_paging_integers_have_one_spelling(server, limit, offset):
    response = get(server, f"/collections/provinces/items?limit={quote(limit)}&offset={quote(offset)}&f=json")
    valid = canonical_in(limit, 1, openapi.MAX_LIMIT) and canonical_in(offset, 0, 10 ** 9)
    assert response.status_code == (200 if valid else 400), (limit, offset, response.text[:200])


@BOUNDED
@given(z=st.integers(layer_tiles.MIN_ZOOM, 8), pad=st.sampled_from(["", "0", "00"]), dot=st.sampled_from([".", "%2e", "%2E"]))
def test_tile_paths_have_one_spelling(server, z, pad, dot):
    x, y = int(2 ** z * 0.69), int(2 ** z * 0.41)  # a tile over Pakistan at every zoom
    path = f"/tiles/atlas/{pad}{z}/{pad}{x}/{pad}{y}{dot}mvt"
    connection = http.client.HTTPConnection(urlsplit(server).netloc, timeout=60)  # sends the path verbatim
    connection.request("GET", path)
    status = connection.getresponse().status
    connection.close()
    canonical = pad == "" and dot == "."
    assert (status in (200, 204)) if canonical else status == 404, (path, status)


@BOUNDED
@given(value=datetimes, endpoint=st.sampled_from([
    "/collections/wilayahs/items?f=json&datetime=", "/tiles/atlas/5/22/13.mvt?datetime=",
    "/tiles/atlas.json?datetime=", "/map?datetime=", "/tiles/wilayahs/style.json?datetime="]))
def test_calendar_ends_with_offsets_are_answered_or_refused(server, value, endpoint):
    response = get(server, endpoint + quote(value))
    assert response.status_code in (200, 204, 400, 404), (value, response.text[:200])


@RENDERS
@given(value=instants)
def test_exports_take_calendar_ends_with_offsets(server, value):
    response = get(server, f"/export.png?dpi=50&size=A5&datetime={quote(value)}")
    assert response.status_code in (200, 400), (value, response.text[:200])


@RENDERS
@given(title=texts, subtitle=texts)
def test_titles_with_tex_and_markup_are_drawn(server, title, subtitle):
    response = get(server, f"/export.png?dpi=50&size=A5&title={quote(title)}&subtitle={quote(subtitle)}")
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG"), (title, subtitle)


def test_dollar_signs_stay_in_the_title(server, tmp_path):
    response = get(server, f"/export.pdf?dpi=50&size=A5&title={quote('$5 and $6')}")
    (tmp_path / "map.pdf").write_bytes(response.content)
    text = subprocess.run(["pdftotext", str(tmp_path / "map.pdf"), "-"], capture_output=True, text=True).stdout
    assert "$5 and $6" in text, text[:300]


@RENDERS
@given(size=drawable)
def test_every_documented_paper_size_renders(server, size):
    response = get(server, f"/export.png?dpi=50&size={size[0]}x{size[1]}mm")
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG"), size


@BOUNDED
@given(size=st.tuples(st.integers(1, 3000), st.integers(1, 3000)).filter(
    lambda s: not (paper.MIN_SIDE_MM <= min(s) and max(s) <= min(paper.MAX_SIDE_MM, paper.MAX_ASPECT * min(s)))))
def test_paper_sizes_outside_the_documented_range_are_refused(server, size):
    response = get(server, f"/export.png?dpi=50&size={size[0]}x{size[1]}mm")
    assert response.status_code == 400 and response.json()["parameter"] == "size", size


@BOUNDED
@given(dpi=integer_spellings)
def test_export_resolution_has_one_spelling(server, dpi):
    # a size refused whatever the dpi: only the dpi grammar decides between two 400s, no map is drawn
    response = get(server, f"/export.png?size=A99&dpi={quote(dpi)}")
    assert response.status_code == 400
    assert response.json()["parameter"] == ("size" if canonical_in(dpi, 50, 600) else "dpi"), dpi


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``ttp-atlas ARGV`` in this process (the same code as the command, without its start-up time)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as done:  # argparse
            code = done.code
    return code, err.getvalue()


# An --out no one can write: every option is checked first, so no example loads a build or draws a map.
UNWRITABLE = "/etc/hostname/map.png"


@settings(BOUNDED, max_examples=25)
@given(option=st.sampled_from(["--dpi", "--size", "--datetime", "--bbox", "--title", "--orientation", "--layers"]),
       value=st.one_of(integer_spellings, datetimes, texts, drawable.map(lambda s: f"{s[0]}x{s[1]}mm")))
def test_cli_errors_are_one_line_with_exit_2(built, data_root, option, value):
    code, err = run_cli(["export", "--build", str(built), "--data", str(data_root), "--out", UNWRITABLE,
                         f"{option}={value}"])
    assert code == 2, (option, value, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert option in err or "--out" in err, err


@pytest.mark.parametrize("argv", [["tiles", "--out", "x.pmtiles", "--minzoom", "x"], ["serve", "--port", "http"],
                                  ["tiles", "--out", "x.pmtiles", "--minzoom", "05"],
                                  ["tiles", "--out", "x.pmtiles", "--maxzoom", "٥"],
                                  ["tiles", "--out", "x.pmtiles", "--maxzoom", "15"], ["nope"], []])
def test_cli_usage_errors_are_one_line(argv):
    code, err = run_cli(argv)
    assert code == 2 and len(err.strip().splitlines()) == 1, err


SERVE_INTEGERS = [("--port", "TTP_ATLAS_PORT", 1, 65535), ("--workers", "TTP_ATLAS_WORKERS", 0, 64)]


@settings(BOUNDED, max_examples=30)
@given(option=st.sampled_from(SERVE_INTEGERS), raw=st.one_of(integer_spellings, st.sampled_from(
    ["99999", "65536", "018766", "0", "00", "65", "+80", " 80", "80 ", "8_000", "٨٠", "0x50", "1e3", "", "-1"])))
def test_serve_integers_have_one_spelling_and_a_range(option, raw):
    """Each serve integer, given or from its environment variable: read when canonical and in range,
    else one line naming the option, the value and the range, exit 2 (before anything starts)."""
    name, env, low, high = option
    for argv, environ in [(["serve", f"{name}={raw}"], {}), (["serve"], {env: raw})]:
        code, err, args = parse_serve(argv, environ)
        if canonical_in(raw, low, high) or (environ and raw == ""):  # an empty variable is the same as none
            assert code is None and getattr(args, name[2:]) == int(raw or {"--port": 8000, "--workers": 0}[name])
        else:
            assert code == 2 and len(err.strip().splitlines()) == 1, err
            assert name in err and repr(raw) in err and f"from {low} to {high}" in err and env in err, err


def parse_serve(argv: list[str], environ: dict) -> tuple[int | None, str, object]:
    """(exit code or None, stderr, parsed arguments) of ``ttp-atlas ARGV`` with ENVIRON set, parsed only."""
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(err):
        for key, value in environ.items():
            patch.setenv(key, value)
        try:
            return None, "", cli.parser().parse_args(argv)
        except SystemExit as done:
            return done.code, err.getvalue(), None


def test_serve_refuses_a_bad_port_before_starting_anything(tmp_path):
    """No build is read (there is none) and nothing is started: the value is refused first."""
    for argv in (["--port", "99999"], ["--workers", "0100"], ["--port", "018766"]):
        result = subprocess.run([sys.executable, "-m", "server", "serve", "--build", str(tmp_path / "none"),
                                 "--data", str(tmp_path / "none"), *argv], capture_output=True, text=True, timeout=60)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (argv, result.stderr[-800:])
        assert argv[0] in lines[0] and repr(argv[1]) in lines[0], lines
