"""Events on static maps: circles per claimed unit with the month's counts, where the units' labels are
anchored and in the style's colour (pdftoppm); legend, caveat and credits as text (pdftotext); the CLI's
map and events report; the options' refusals."""

from __future__ import annotations

import csv
import re
import subprocess

import numpy as np
import pytest
import shapely
from PIL import Image

from layers import eventsymbols, export, labels, overlay, style
from server import cli, exports
from tests import eventfiles

DPI = 100
MONTH = "2023-07"


def rgb(colour: str) -> np.ndarray:
    return np.array(style.hex_to_rgb(colour), dtype=float)


def over(colour: str, opacity: float, under: np.ndarray) -> np.ndarray:
    return rgb(colour) * opacity + under * (1 - opacity)


def options_for(atlas, events, **strings) -> export.Options:
    return export.parse_options(atlas, **exports.event_strings(events, strings))


@pytest.fixture(scope="module")
def event_file(tmp_path_factory):
    return eventfiles.write_acled(tmp_path_factory.mktemp("events") / "events-acled.csv")


@pytest.fixture(scope="module")
def events(atlas, event_file):
    return overlay.load(atlas, event_file)


@pytest.fixture(scope="module")
def drawn(atlas, events, tmp_path_factory):
    """The July map as a PDF, and that PDF rasterised by Poppler at the render's dpi."""
    folder = tmp_path_factory.mktemp("events-map")
    options = options_for(atlas, events, month=MONTH, dpi=str(DPI))
    with export.matplotlib.rc_context(export.RC):
        rendered = export.render(atlas, options, events)
        (folder / "map.pdf").write_bytes(export.to_bytes(rendered, "pdf", DPI))
    subprocess.run(["pdftoppm", "-r", str(DPI), "-png", "-singlefile", str(folder / "map.pdf"), str(folder / "page")],
                   check=True)
    yield options, rendered, folder / "map.pdf", np.asarray(Image.open(folder / "page.png").convert("RGB"))
    export.release(rendered.figure)


def test_options_pick_the_month_and_its_units(atlas, events):
    options = options_for(atlas, events, month=MONTH)
    assert (options.month, options.date) == (MONTH, "2023-07-31")
    assert options.title == "Events per TTP claimed unit, July 2023"
    assert options_for(atlas, events).month == eventfiles.MONTHS[-1]  # default: the last month
    assert options_for(atlas, events, datetime="2023-07-15").month == MONTH
    assert options_for(atlas, None, datetime="2023-07-15").month == ""  # no events asked for
    for kwargs, option in (({"month": "2023-13"}, "month"), ({"month": "2022-07"}, "month"),
                           ({"month": "2023-07", "datetime": "2023-09-01"}, "datetime"),
                           ({"datetime": "2024-07-01"}, "datetime")):
        with pytest.raises(export.ExportOptionError) as error:
            options_for(atlas, events, **kwargs)
        assert error.value.option == option
    with pytest.raises(export.ExportOptionError, match="month"):
        options_for(atlas, None, month=MONTH)


def test_circles_have_the_months_counts_at_the_unit_anchors_in_the_style_colour(atlas, drawn):
    options, rendered, _, page = drawn
    assert {s.unit_id: (s.events, s.fatalities) for s in rendered.events} == {
        unit: counts for (unit, month), counts in eventfiles.COUNTS.items() if month == MONTH}
    anchors = {lb.feature_id: (lb.lon, lb.lat) for lb in labels.unit_labels(atlas, "wilayahs", options.date)}
    valid = atlas.valid_indices("wilayahs", options.date, options.date)
    units = [(atlas.collections["wilayahs"]["features"][i]["properties"]["zone"], atlas.geometries["wilayahs"][i])
             for i in valid]
    view, scale = rendered.view, export.font_scale(options.size_mm)
    renderer = rendered.figure.canvas.get_renderer()
    text = [t.get_window_extent(renderer).expanded(1.1, 1.4) for t in rendered.map_axes.texts]
    outlines = shapely.union_all(shapely.boundary(np.array([geom for _, geom in units])))
    three_px = 3 * view.metres_per_pt * 72 / DPI / 111_320 / np.cos(np.radians(32))  # degrees, at least
    seen = {}  # points looked at per circle: a small circle may lie wholly under its unit's label
    for symbol in rendered.events:
        assert (symbol.lon, symbol.lat) == anchors[symbol.unit_id]
        share = symbol.events / eventfiles.LARGEST  # area proportional to the events
        assert symbol.radius_px == pytest.approx(eventsymbols.MAX_RADIUS_PX * share ** 0.5)
        x, y = view.transformer.transform(symbol.lon, symbol.lat)
        radius = symbol.radius_px * export.PX_TO_PT * scale * view.metres_per_pt
        checked = []
        for u, v in np.stack(np.meshgrid(np.linspace(-0.8, 0.8, 21), np.linspace(-0.8, 0.8, 21)), -1).reshape(-1, 2):
            if u * u + v * v > 0.8 ** 2:
                continue
            lon, lat = view.transformer.transform(x + u * radius, y + v * radius, direction="INVERSE")
            column, row = rendered.pixel(lon, lat)
            if any(box.contains(column, page.shape[0] - row) for box in text) or \
                    shapely.dwithin(outlines, shapely.Point(lon, lat), three_px):
                continue  # a label over the circle, or a unit's outline under it
            zone = next((zone for zone, geom in units if shapely.contains_xy(geom, lon, lat)), "land")
            under = rgb(style.LAND) if zone == "land" else over(style.ZONE_COLOURS[zone], style.ZONE_FILL_OPACITY,
                                                                 rgb(style.LAND))
            expected = over(eventsymbols.FILL, eventsymbols.FILL_OPACITY, under)
            checked.append(np.linalg.norm(page[row, column].astype(float) - expected) <= 20)
        assert not checked or np.mean(checked) >= 0.9, (symbol, np.mean(checked))
        seen[symbol.unit_id] = len(checked)
        # just below the circle, no event colour
        lon, lat = view.transformer.transform(x, y - radius * 1.3, direction="INVERSE")
        column, row = rendered.pixel(lon, lat)
        assert np.linalg.norm(page[row, column] - rgb(eventsymbols.FILL)) > 60
    assert seen["peshawar-2022-12-31-core"] >= 20 and seen["bannu-2022-12-31-core"] >= 10, seen


def test_legend_credits_and_caveat_are_text_and_the_legend_circle_is_drawn(events, drawn):
    _, rendered, path, page = drawn
    text = " ".join(subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True,
                                   text=True).stdout.split())
    for expected in ("Events per TTP claimed unit, July 2023", "Events per claimed unit in the month", "6 events",
                     "2 events", eventsymbols.CAVEAT, "Event data: events-acled.csv, from ACLED", *events.credits):
        assert expected in text, expected
    in_units = sum(n for (_, month), (n, _) in eventfiles.COUNTS.items() if month == MONTH)
    totals = re.search(r"July 2023: (\d+) events? placed \((\d+) in a claimed unit\), (\d+) fatalit", text)
    assert totals and int(totals[2]) == in_units and int(totals[1]) >= in_units  # the month's totals, stated
    largest = next(a for a in rendered.figure.findobj() if a.get_gid() == "legend-events-0")
    box = largest.get_window_extent()
    column, row = int((box.x0 + box.x1) / 2), int(page.shape[0] - (box.y0 + 0.85 * box.height))
    assert box.width == pytest.approx(2 * eventsymbols.MAX_RADIUS_PX * export.PX_TO_PT * DPI / 72, rel=0.05)
    assert np.linalg.norm(page[row, column] - over(eventsymbols.FILL, eventsymbols.FILL_OPACITY, rgb("#ffffff"))) <= 12


@pytest.fixture
def run_cli(built, data_root, atlas, monkeypatch):
    """``ttp-atlas export`` in-process, on the session's build already loaded."""
    monkeypatch.setattr(exports.store, "ensure_build", lambda root, data: atlas)
    return lambda *argv: cli.main(["export", "--build", str(built), "--data", str(data_root), *argv])


def test_cli_writes_the_map_the_monthly_table_and_the_chart(run_cli, event_file, tmp_path, capsys):
    out = tmp_path / "report" / "map.png"
    assert run_cli("--events", str(event_file), "--month", MONTH, "--out", str(out), "--dpi", "50", "--size", "A5") == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "events of 2023-07" in capsys.readouterr().out
    folder = tmp_path / "report" / "map-events"
    with (folder / "monthly.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["level", "unit", "month", "events", "fatalities"]
    assert ["wilayah", "Peshawar", MONTH, "6", "12"] in rows and ["wilayah", "Zhob", MONTH, "1", "4"] in rows
    assert (folder / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (folder / "chart.svg").read_bytes()[:400]


@pytest.mark.parametrize(("argv", "named"), [
    (["--month", "2023-13"], "--month"), (["--month", "2023-07"], "--month"),
    (["--events", "{missing}", "--month", "2023-07"], "--events"), (["--month", "2024-01"], "--month")])
def test_cli_bad_event_options_exit_2_naming_them(run_cli, event_file, tmp_path, capsys, argv, named):
    argv = [a.replace("{missing}", str(tmp_path / "none.csv")) for a in argv]
    if argv[0] == "--month" and argv[1] != "2023-07":
        argv = ["--events", str(event_file), *argv]
    assert run_cli(*argv, "--out", str(tmp_path / "map.pdf")) == 2
    error = capsys.readouterr().err
    assert named in error and error.count("\n") == 1 and not (tmp_path / "map.pdf").exists()


@pytest.mark.parametrize(("content", "said"), [
    (b"date,lon,lat,fatalities\n", "has none"),  # a header and no rows: the file is named, not a month
    (bytes(range(256)) * 8, "unknown header")])  # binary: one printable line, not its bytes
def test_cli_event_files_that_cannot_be_drawn_are_one_line_naming_the_file(run_cli, tmp_path, capsys, content, said):
    path = tmp_path / "events.csv"
    path.write_bytes(content)
    assert run_cli("--events", str(path), "--out", str(tmp_path / "map.pdf")) == 2
    error = capsys.readouterr().err
    assert "--events" in error and said in error and error.count("\n") == 1
    assert all(ch.isprintable() for ch in error.rstrip("\n")) and len(error) < 1200
    assert not (tmp_path / "map.pdf").exists()


def test_cli_reads_a_latin_1_gtd_file_for_the_map_and_the_report(run_cli, tmp_path):
    """GTD's CSV exports are Latin-1: the map's overlay and the report both read it."""
    gtd = tmp_path / "gtd.csv"
    gtd.write_bytes("iyear,imonth,iday,latitude,longitude,city,provstate,gname,nkill\n"
                    "2023,7,15,31.34,69.45,Zh\xf4b,Balochistan,Tehrik-i-Taliban Pakistan (TTP),4\n".encode("latin-1"))
    assert run_cli("--events", str(gtd), "--out", str(tmp_path / "map.png"), "--dpi", "50", "--size", "A5") == 0
    with (tmp_path / "map-events" / "monthly.csv").open(newline="", encoding="utf-8") as handle:
        assert ["wilayah", "Zhob", MONTH, "1", "4"] in list(csv.reader(handle))
