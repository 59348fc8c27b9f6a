"""Static map export: option checks, the layout's content (pixels, PDF text, SVG elements) and the CLI."""

from __future__ import annotations

import gc
import io
import logging
import os
import re
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import shapely
from PIL import Image

from matplotlib.backends.backend_agg import RendererAgg

from geo import atomic, paper
from layers import catalogue, export, places, style
from server import cli, exports

DATE = "2023-07-01"  # 12 units: north, south and zone-less ones; medium and low confidence
DPI = 100


def rgb(colour: str) -> np.ndarray:
    return np.array(style.hex_to_rgb(colour), dtype=float)


def blend(colour: str, opacity: float, under: str = style.LAND) -> np.ndarray:
    return rgb(colour) * opacity + rgb(under) * (1 - opacity)


def near(pixels: np.ndarray, colour: np.ndarray, tolerance: float) -> np.ndarray:
    return np.linalg.norm(pixels[..., :3].astype(float) - colour, axis=-1) <= tolerance


def feature(atlas, layer_id: str, fid: str):
    index = [f["id"] for f in atlas.collections[layer_id]["features"]].index(fid)
    return atlas.collections[layer_id]["features"][index]["properties"], atlas.geometries[layer_id][index]


@pytest.fixture(scope="module")
def options(atlas):
    return export.parse_options(atlas, datetime=DATE, dpi=str(DPI))


@pytest.fixture(scope="module")
def rendered(atlas, options):
    with export.matplotlib.rc_context(export.RC):
        return export.render(atlas, options)


@pytest.fixture(scope="module")
def png(rendered, options):
    return np.asarray(Image.open(io.BytesIO(export.to_bytes(rendered, "png", options.dpi))).convert("RGB"))


def axes_pixels(image: np.ndarray, rendered, gid: str) -> np.ndarray:
    """The part of the PNG under the axes with this gid."""
    ax = next(a for a in rendered.figure.axes if a.get_gid() == gid)
    box = ax.get_window_extent()
    height = image.shape[0]
    return image[int(height - box.y1) + 2:int(height - box.y0) - 2, int(box.x0) + 2:int(box.x1) - 2]


# --- options (pure) ----------------------------------------------------------------------------

def test_paper_sizes_and_pixels():
    assert paper.paper_size("A4") == (297.0, 210.0)
    assert paper.paper_size("a4", "portrait") == (210.0, 297.0)
    assert paper.paper_size("Letter") == (279.4, 215.9)
    assert paper.paper_size("300x200mm") == (300.0, 200.0)
    assert paper.paper_size("300x200mm", "portrait") == (200.0, 300.0)
    assert paper.pixels((297.0, 210.0), 300) == (3508, 2480)
    for dpi in (50, 72, 96, 100, 150, 300, 600):
        px = paper.pixels((215.9, 279.4), dpi)
        inches = paper.figure_inches(px, dpi)
        assert tuple(int(side * dpi) for side in inches) == px


@pytest.mark.parametrize(("call", "option", "value"), [
    (lambda: export.parse_layers("wilayahs,roads"), "layers", "wilayahs,roads"),
    (lambda: export.parse_dpi("900"), "dpi", "900"),
    (lambda: export.parse_dpi("high"), "dpi", "high"),
    (lambda: export.parse_paper("B7", None, 300), "size", "B7"),
    (lambda: export.parse_paper("5000x200mm", None, 300), "size", "5000x200mm"),
    (lambda: export.parse_paper("A2", None, 600), "size", "A2"),
    (lambda: export.parse_paper("A4", "sideways", 300), "orientation", "sideways"),
    (lambda: export.parse_bbox("70,30,71"), "bbox", "70,30,71"),
    (lambda: export.parse_bbox("72,30,71,31"), "bbox", "72,30,71,31"),
    (lambda: export.parse_bbox("0,0,90,10"), "bbox", "0,0,90,10"),
    (lambda: export.parse_date("2023-13-01", None), "datetime", "2023-13-01"),
    (lambda: export.parse_text("title", "x" * 300), "title", "x" * 300),
    (lambda: export.output_format("map.jpg"), "out", "map.jpg"),
])
def test_bad_options_name_the_value(call, option, value):
    with pytest.raises(export.ExportOptionError) as caught:
        call()
    assert caught.value.option == option
    assert repr(value) in str(caught.value) and caught.value.valid in str(caught.value)


def test_options_resolve_against_the_build(atlas):
    assert export.parse_date("2023-07-01T10:00:00Z", None) == "2023-07-01"
    assert export.parse_options(atlas).date == export.latest_date(atlas) == "2025-12-25"
    focused = export.parse_options(atlas, focus="Khyber Pakhtunkhwa")
    province = atlas.geometries["provinces"][[f["id"] for f in atlas.features("provinces")].index("PK5")]
    assert shapely.contains(shapely.box(*focused.bounds), province)
    assert focused.subtitle == ("Khyber Pakhtunkhwa: Reported '2026 structure' (December 2025, unconfirmed), "
                                "as of 2025-12-25")
    assert export.parse_options(atlas, datetime=DATE).subtitle == \
        "Pakistan: 12 units: Punjab North and South added (late June 2023), as of 2023-07-01"
    assert export.parse_options(atlas, datetime="2020-01-01").subtitle == "Pakistan, as of 2020-01-01"  # before any
    assert export.parse_options(atlas, layers="provinces").subtitle == "Pakistan"  # nothing dated shown
    assert export.parse_options(atlas, focus="peshawar").place == "Peshawar"  # the wilayah comes first
    with pytest.raises(export.ExportOptionError, match="closest: Peshawar"):
        export.parse_options(atlas, focus="Peshawr")
    with pytest.raises(export.ExportOptionError, match="must overlap"):
        export.parse_options(atlas, bbox="-10,40,0,50")
    with pytest.raises(export.ExportOptionError, match="not both"):
        export.parse_options(atlas, bbox="70,30,72,32", focus="Peshawar")


def test_layout_panels_do_not_overlap():
    for size in ((297.0, 210.0), (210.0, 297.0), (420.0, 297.0), (150.0, 150.0)):
        box = export.layout(size, 6)
        rects = [shapely.box(x, y, x + w, y + h) for x, y, w, h in (box.map, box.inset, box.legend)]
        assert all(shapely.within(r, shapely.box(0, 0, 1, 1)) for r in rects)
        assert all(r.area > 0.02 for r in rects)
        assert not any(a.overlaps(b) for i, a in enumerate(rects) for b in rects[i + 1:])


def test_legend_lists_only_what_is_shown(atlas):
    view = export.make_view(atlas.pakistan_bounds, (200.0, 150.0), 100)
    early = [export.layer_in_view(atlas, lid, view, "2023-03-01") for lid in ("countries", "wilayahs")]
    labels = [row["label"] for row in export.legend_entries(early)]
    assert style.ZONE_LABELS["north"] in labels and style.ZONE_LABELS["south"] in labels
    assert style.ZONE_LABELS[None] not in labels  # every 2023-03 unit has a zone
    assert style.CONFIDENCE_STYLES["low"]["label"] not in labels
    assert catalogue.layer("districts").title not in labels
    later = [export.layer_in_view(atlas, lid, view, DATE) for lid in ("countries", "districts", "wilayahs")]
    labels = [row["label"] for row in export.legend_entries(later)]
    assert style.ZONE_LABELS[None] in labels and style.CONFIDENCE_STYLES["low"]["label"] in labels
    assert catalogue.layer("districts").title in labels
    civil = [export.layer_in_view(atlas, lid, view, DATE) for lid in ("countries", "provinces")]
    assert not any("zone" in row["label"].lower() for row in export.legend_entries(civil))


# --- the rendered layout -------------------------------------------------------------------------

def test_png_has_the_pixel_size_of_paper_and_dpi(png):
    assert png.shape[:2] == (827, 1169)  # A4 landscape at 100 dpi: 297 x 210 mm


def test_a4_at_300_dpi_is_3508_by_2480(atlas):
    payload = export.export(atlas, export.parse_options(atlas, size="A4", dpi="300"), "png")
    image = Image.open(io.BytesIO(payload))
    assert image.size == (3508, 2480)
    assert round(image.info["dpi"][0]) == 300


def test_peshawar_shows_the_north_zone_colour(atlas, rendered, png):
    props, geom = feature(atlas, "wilayahs", "peshawar-2022-12-31-core")
    assert props["zone"] == "north" and props["confidence"] == "medium"
    inner = shapely.buffer(geom, -0.03)
    xs, ys = np.meshgrid(np.linspace(*inner.bounds[0::2], 40), np.linspace(*inner.bounds[1::2], 40))
    points = [(x, y) for x, y in zip(xs.ravel(), ys.ravel(), strict=True) if inner.contains(shapely.Point(x, y))]
    renderer = rendered.figure.canvas.get_renderer()
    text = [t.get_window_extent(renderer).expanded(1.2, 1.5) for t in rendered.map_axes.texts]
    height = png.shape[0]
    pixels = [(col, row) for col, row in (rendered.pixel(x, y) for x, y in points)
              if not any(box.contains(col, height - row) for box in text)]  # labels aside
    assert len(pixels) > 30
    samples = np.array([png[row, col] for col, row in pixels])
    expected = blend(style.ZONE_COLOURS["north"], style.CONFIDENCE_STYLES["medium"]["fill_opacity"])
    colours, counts = np.unique(samples, axis=0, return_counts=True)
    assert near(colours[np.argmax(counts)], expected, 3)  # the commonest colour (borders and labels aside)
    assert near(samples, expected, 12).mean() > 0.4
    south = blend(style.ZONE_COLOURS["south"], style.CONFIDENCE_STYLES["medium"]["fill_opacity"])
    assert near(samples, south, 12).mean() < 0.05


def test_legend_area_has_the_zone_colours(rendered, png):
    legend = axes_pixels(png, rendered, "legend")
    for zone in ("north", "south", None):
        assert near(legend, rgb(style.ZONE_COLOURS[zone]), 40).sum() > 20, zone
    assert near(axes_pixels(png, rendered, "map"), rgb(style.ZONE_COLOURS["north"]), 40).sum() > 200


def test_map_is_not_blank(rendered, png):
    area = axes_pixels(png, rendered, "map")
    colours = {tuple(p) for p in area[::7, ::7].reshape(-1, 3)}
    assert len(colours) > 50
    land, sea = near(area, rgb(style.LAND), 6).mean(), near(area, rgb(style.BACKGROUND), 6).mean()
    assert land + sea < 0.8 and land > 0.05


def test_labels_do_not_overlap_and_name_the_units(rendered):
    renderer = rendered.figure.canvas.get_renderer()
    labels = [t for t in rendered.map_axes.texts if (t.get_gid() or "").startswith("label-")]
    names = {t.get_text() for t in labels}
    assert {"Peshawar", "Kohat", "Zhob"} <= names
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_district_labels_only_on_small_extents(atlas):
    def labelled(**kw):
        options = export.parse_options(atlas, datetime=DATE, dpi="72", **kw)
        with export.matplotlib.rc_context(export.RC):
            done = export.render(atlas, options)
        return {t.get_gid() for t in done.map_axes.texts}
    assert "label-district" not in labelled()
    assert "label-district" in labelled(focus="Peshawar")


def test_scale_bar_is_true_to_the_ground(rendered):
    """1 km east of the map centre is 1000 map units: the projection is in metres at true scale there."""
    transformer = rendered.view.transformer
    x0, y0 = transformer.transform(70.0, 32.0)
    x1, y1 = transformer.transform(70.0 + 1 / (111.32 * np.cos(np.radians(32.0))), 32.0)
    assert abs(np.hypot(x1 - x0, y1 - y0) - 1000) < 10


def test_scale_bar_speaks_km_on_wide_maps(atlas, tmp_path):
    """A bar of 1,000 km or more is labelled in km, never in megametres."""
    assert export.scale_text(1, "Mm") == "1000 km" and export.scale_text(500, "km") == "500 km"
    path = tmp_path / "wide.pdf"
    export.write(atlas, export.parse_options(atlas, datetime=DATE, size="420x150mm", dpi="72"), path)
    text = subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True, text=True).stdout
    assert re.search(r"\b\d+ km\b", text) and not re.search(r"\b\d+ Mm\b", text)


@pytest.fixture(scope="module")
def pdf(atlas, options, tmp_path_factory):
    path = tmp_path_factory.mktemp("pdf") / "map.pdf"
    export.write(atlas, options, path)
    return path


def test_pdf_is_vector_with_text(pdf, options, atlas):
    text = " ".join(subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True,
                                   text=True).stdout.split())
    assert options.title in text
    assert f"As of {DATE}" in text
    assert "OCHA COD-AB Pakistan" in text and "Natural Earth" in text
    assert "Jamestown Foundation" in text  # a publication behind the 2023-06 units
    assert "Claimed units, not areas of control" in text
    fonts = subprocess.run(["pdffonts", str(pdf)], check=True, capture_output=True, text=True).stdout
    assert "TrueType" in fonts and "Type 3" not in fonts


def test_pdf_rasterises_like_the_png(pdf, rendered, png, tmp_path):
    subprocess.run(["pdftoppm", "-r", str(DPI), "-png", "-singlefile", str(pdf), str(tmp_path / "page")], check=True)
    page = np.asarray(Image.open(tmp_path / "page.png").convert("RGB"))
    assert abs(page.shape[0] - png.shape[0]) <= 1 and abs(page.shape[1] - png.shape[1]) <= 1
    page = page[:png.shape[0], :png.shape[1]]

    def small(image):
        area = axes_pixels(image, rendered, "map")
        return np.asarray(Image.fromarray(area).resize((48, 36), Image.BILINEAR), dtype=float)
    difference = np.abs(small(page) - small(png)).mean()
    assert difference < 8, difference
    blank = np.full_like(small(png), rgb(style.LAND))
    assert np.abs(blank - small(png)).mean() > 3 * difference  # the comparison can fail


def test_svg_keeps_text_and_a_path_per_wilayah(atlas, rendered):
    root = ET.fromstring(export.to_bytes(rendered, "svg", DPI))
    ns = "{http://www.w3.org/2000/svg}"
    texts = ["".join(t.itertext()) for t in root.iter(f"{ns}text")]
    assert any(rendered.figure.texts[0].get_text() in t for t in texts)
    groups = {g.get("id"): g for g in root.iter(f"{ns}g")}
    shown = [f["id"] for s in rendered.shown if s.layer_id == "wilayahs" for f in s.features]
    assert len(shown) == len(atlas.features("wilayahs", DATE)) == 15
    for fid in shown:
        assert groups[f"wilayah-{fid}"].find(f"{ns}path") is not None, fid
    # unit labels are <text>, not outlines; the document has a <title>
    assert {p.label.text for p in rendered.labels if p.label.part == "core"} <= set(texts)
    assert root.find(f"{ns}title").text == rendered.metadata["Title"]


# --- labels, metadata, hatching, locator, land -------------------------------------------------------

def map_text(pdf_bytes: bytes, rendered, tmp_path) -> str:
    """pdftotext of the map frame only (not the legend or credits), whitespace normalised."""
    path = tmp_path / "map.pdf"
    path.write_bytes(pdf_bytes)
    box = rendered.map_axes.get_window_extent()
    points = 72 / rendered.figure.dpi
    top = rendered.figure.bbox.height - box.y1
    crop = [str(round(v * points)) for v in (box.x0, top, box.width, box.height)]
    done = subprocess.run(["pdftotext", "-r", "72", "-x", crop[0], "-y", crop[1], "-W", crop[2], "-H", crop[3],
                           str(path), "-"], check=True, capture_output=True, text=True)
    return " ".join(done.stdout.split())


@pytest.mark.parametrize("size", ["A5", "A4", "A3"])
@pytest.mark.parametrize("orientation", ["landscape", "portrait"])
def test_every_unit_valid_at_the_date_is_named_in_the_pdf_map(atlas, size, orientation, tmp_path):
    options = export.parse_options(atlas, datetime=DATE, dpi="72", size=size, orientation=orientation)
    with export.matplotlib.rc_context(export.RC):
        rendered = export.render(atlas, options)
        text = map_text(export.to_bytes(rendered, "pdf", options.dpi), rendered, tmp_path)
    valid = atlas.features("wilayahs", DATE)
    assert rendered.warnings == []
    for name in {f["properties"]["name"] for f in valid}:
        assert name in text, (name, text)
    assert "Dera Ismail Khan" in text and "Mardan" in text
    assert text.count("(possible extension)") == sum(f["properties"]["part"] == "extension" for f in valid) == 3
    # each label's anchor lies inside the labelled part: a unit's core, an extension's own area
    assert sorted(p.label.feature_id for p in rendered.labels) == sorted(f["id"] for f in valid)
    for placed in rendered.labels:
        _, own = feature(atlas, "wilayahs", placed.label.feature_id)
        assert own.contains(shapely.Point(placed.anchor)), placed
        assert placed.size >= export.LABEL_SHRINK[-1] * export.label_look("wilayahs", placed.label.part, 1)[
            "fontsize"] * export.font_scale(options.size_mm) - 1e-9
    export.release(rendered.figure)


def test_a_label_with_a_trailing_phrase_goes_on_two_lines_and_stays_text(atlas, tmp_path):
    """The Gilgit-Baltistan continuation's status label, like "(possible extension)", sets its phrase under
    the name: the PDF has both lines as text, in that order."""
    day = "2026-01-01"
    status = next(f["properties"] for f in atlas.features("wilayahs", day) if f["properties"]["status"] != "claimed")
    assert status["label"] == "Gilgit-Baltistan (status unknown since 2025-12-25)"
    label = next(lb for lb in export.labels.unit_labels(atlas, "wilayahs", day) if lb.text == status["label"])
    assert export.display_text(label) == "Gilgit-Baltistan\n(status unknown since 2025-12-25)"
    options = export.parse_options(atlas, datetime=day, dpi="72", size="A4")
    with export.matplotlib.rc_context(export.RC):
        rendered = export.render(atlas, options)
        pdf = export.to_bytes(rendered, "pdf", options.dpi)
    assert rendered.warnings == [] and label.feature_id in {p.label.feature_id for p in rendered.labels}
    (tmp_path / "map.pdf").write_bytes(pdf)
    lines = subprocess.run(["pdftotext", "-layout", str(tmp_path / "map.pdf"), "-"], check=True, capture_output=True,
                           text=True).stdout.splitlines()
    name = next(i for i, line in enumerate(lines) if "Gilgit-Baltistan" in line)
    assert "(status unknown since 2025-12-25)" in lines[name + 1]
    export.release(rendered.figure)


def test_the_legend_has_a_status_entry_only_where_a_continuation_is_shown(atlas):
    """The continuation is hatched like an extension; the legend says what else that hatch means, on its
    own row, and only on maps that show one."""
    def legend(day: str) -> list[str]:
        shown = [export.layer_in_view(atlas, "wilayahs", export.make_view(atlas.pakistan_bounds, (200, 150), 72), day)]
        return [row["label"] for row in export.legend_entries(shown) if row["kind"] == "swatch"]

    later, earlier = legend("2026-01-01"), legend("2023-07-01")
    assert later[later.index(style.PART_LABELS["extension"]) + 1] == "Status unknown since 2025-12-25"
    assert style.PART_LABELS["extension"] in earlier and not any(text.startswith("Status") for text in earlier)


def test_a_unit_without_room_is_a_warning_never_a_silent_gap(atlas, caplog):
    options = export.parse_options(atlas, datetime=DATE, dpi="50", size="100x100mm")
    with caplog.at_level(logging.WARNING, logger=export.__name__), export.matplotlib.rc_context(export.RC):
        rendered = export.render(atlas, options)
    export.release(rendered.figure)
    warned = {fid for fid in (f["id"] for f in atlas.features("wilayahs", DATE))
              if any(f"({fid})" in w for w in rendered.warnings)}
    assert warned  # a 100 mm square is too small for 15 labels
    assert warned.isdisjoint(p.label.feature_id for p in rendered.labels)
    assert warned | {p.label.feature_id for p in rendered.labels} == {f["id"] for f in atlas.features("wilayahs", DATE)}
    assert [r.getMessage() for r in caplog.records] == [f"export: {w}" for w in rendered.warnings]


def test_crowded_labels_move_shrink_or_get_a_leader_line(atlas):
    options = export.parse_options(atlas, datetime=DATE, dpi="72", size="A5")
    with export.matplotlib.rc_context(export.RC):
        rendered = export.render(atlas, options)
    full = export.label_look("wilayahs", "core", export.font_scale(options.size_mm))["fontsize"]
    called_out = [p for p in rendered.labels if p.callout]
    shrunk = [p for p in rendered.labels if p.label.part == "core" and p.size < full]
    assert called_out or shrunk
    leaders = [a for a in rendered.map_axes.texts if a.get_gid() == "label-wilayah" and getattr(a, "arrow_patch", None)]
    assert len(leaders) == len(called_out)
    export.release(rendered.figure)


def test_a_sliver_under_the_scale_bar_is_called_out(atlas):
    """Gilgit-Baltistan's edge in a view of Ladakh: its anchor lies under the scale bar, a leader reaches it."""
    options = export.parse_options(atlas, dpi="50", size="A5", bbox="77.5,35.5,80,37")
    with export.matplotlib.rc_context(export.RC):
        rendered = export.render(atlas, options)
    export.release(rendered.figure)
    in_view = [f["id"] for s in rendered.shown if s.layer_id == "wilayahs" for f in s.features]
    assert in_view and rendered.warnings == []
    assert sorted(p.label.feature_id for p in rendered.labels) == sorted(in_view)
    assert any(p.callout for p in rendered.labels)


def test_pdf_metadata_names_the_map_and_the_build(pdf, options, atlas):
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    assert fields["Title"].strip() == options.title
    assert fields["Subject"].strip() == options.subtitle
    assert "wilayahs" in fields["Keywords"] and "Pakistan" in fields["Keywords"]
    assert fields["Creator"].strip() == f"ttp-atlas build {atlas.build_id}"


@pytest.mark.parametrize("title", ["$5 and $6", r"\$x^{2}$ {{}} % $$", "$" * 200, r"$\sqrt{\sqrt{\sqrt{x}}}$" * 8])
def test_titles_are_plain_text_even_with_dollars(atlas, title, tmp_path):
    options = export.parse_options(atlas, dpi="50", size="A5", title=title, subtitle=title[::-1])
    pdf = tmp_path / "map.pdf"
    export.write(atlas, options, pdf)
    text = subprocess.run(["pdftotext", "-l", "1", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout
    assert title in text.splitlines()
    root = ET.fromstring(export.export(atlas, options, "svg"))
    ns = "{http://www.w3.org/2000/svg}"
    texts = ["".join(t.itertext()) for t in root.iter(f"{ns}text")]
    assert title in texts and title[::-1] in texts
    assert Image.open(io.BytesIO(export.export(atlas, options, "png"))).size == paper.pixels(options.size_mm, 50)


def test_hatching_is_drawn_as_lines_every_pdf_viewer_shows(atlas, pdf, rendered, tmp_path):
    """pdftoppm (Poppler) shows hatch lines in the zone colour inside an extension, and land between them."""
    subprocess.run(["pdftoppm", "-r", str(DPI), "-png", "-singlefile", str(pdf), str(tmp_path / "page")], check=True)
    page = np.asarray(Image.open(tmp_path / "page.png").convert("RGB"))
    props, geom = feature(atlas, "wilayahs", "qalat-makran-2023-06-14-extension")
    look = style.feature_style("wilayahs", props)
    assert look["hatch"] and look["fill_opacity"] == 0
    inner = shapely.buffer(geom, -0.15)
    renderer = rendered.figure.canvas.get_renderer()
    text = [t.get_window_extent(renderer).expanded(1.2, 1.5) for t in rendered.map_axes.texts]
    xs, ys = np.meshgrid(np.linspace(*inner.bounds[0::2], 60), np.linspace(*inner.bounds[1::2], 60))
    pixels = [rendered.pixel(x, y) for x, y in zip(xs.ravel(), ys.ravel(), strict=True)
              if inner.contains(shapely.Point(x, y))]
    pixels = [(c, r) for c, r in pixels if not any(b.contains(c, page.shape[0] - r) for b in text)]
    assert len(pixels) > 300
    samples = np.array([page[r, c] for c, r in pixels])
    hatch = blend(look["hatch_colour"], look["hatch_opacity"])
    on_line, between = near(samples, hatch, 60).mean(), near(samples, rgb(style.LAND), 12).mean()
    assert on_line > 0.08 and between > 0.3, (on_line, between)
    # a core (filled, not hatched) has no such lines
    core_props, core = feature(atlas, "wilayahs", "qalat-makran-2023-06-14-core")
    assert not style.feature_style("wilayahs", core_props)["hatch"]
    hatches = {c.get_gid() for c in rendered.map_axes.collections}
    assert "hatch-qalat-makran-2023-06-14-extension" in hatches and "hatch-qalat-makran-2023-06-14-core" not in hatches


def test_national_maps_get_a_regional_locator_focused_maps_a_zoomed_one(atlas):
    def inset_of(**kw):
        options = export.parse_options(atlas, datetime=DATE, dpi="50", size="A5", **kw)
        with export.matplotlib.rc_context(export.RC):
            rendered = export.render(atlas, options)
        ax = next(a for a in rendered.figure.axes if a.get_gid() == "inset")
        limits = (*ax.get_xlim(), *ax.get_ylim())
        export.release(rendered.figure)
        return limits
    region = export.local_projection(export.REGION, "laea")
    x0, x1, y0, y1 = inset_of()
    for lon, lat in ((46, 10), (96, 46), (84, 28), (66, 40)):  # Arabia, Mongolia, Nepal, Central Asia
        x, y = region.transform(lon, lat)
        assert x0 <= x <= x1 and y0 <= y <= y1, (lon, lat)
    x0, x1, y0, y1 = inset_of(focus="Peshawar")
    assert (x1 - x0) < 2_500_000  # Pakistan and its surroundings, not the region


def test_land_is_drawn_beyond_pakistan(atlas):
    """Nepal and Central Asia are land, not sea (every Natural Earth country is in the countries layer)."""
    options = export.parse_options(atlas, datetime=DATE, dpi="50", size="A4", bbox="58,20,88,44")
    with export.matplotlib.rc_context(export.RC):
        rendered = export.render(atlas, options)
        image = np.asarray(Image.open(io.BytesIO(export.to_bytes(rendered, "png", 50))).convert("RGB"))
    for lon, lat in ((84, 28), (66, 40)):
        col, row = rendered.pixel(lon, lat)
        patch = image[row - 2:row + 3, col - 2:col + 3].reshape(-1, 3)
        assert near(patch, rgb(style.LAND), 6).mean() > 0.5, (lon, lat, patch[12])
    sea = rendered.pixel(68, 21)  # the Arabian Sea off Gujarat
    assert near(image[sea[1], sea[0]], rgb(style.BACKGROUND), 6)
    export.release(rendered.figure)


def test_disputed_lines_are_dashed_with_the_boundary_note(atlas, rendered, pdf):
    gids = {c.get_gid(): c for c in rendered.map_axes.collections}
    assert "disputed" in gids and "disputed-casing" in gids
    assert gids["disputed"].get_linestyle()[0][1] is not None  # dashed
    text = " ".join(subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True,
                                   text=True).stdout.split())
    assert catalogue.BOUNDARY_NOTE in text and export.DISPUTED_LABEL in text
    # a view far from Kashmir has neither the lines nor the note
    options = export.parse_options(atlas, datetime=DATE, dpi="50", size="A5", focus="Qalat-Makran")
    with export.matplotlib.rc_context(export.RC):
        far = export.render(atlas, options)
    assert "disputed" not in {c.get_gid() for c in far.map_axes.collections}
    assert catalogue.BOUNDARY_NOTE[:40] not in far.figure.texts[-1].get_text().replace("\n", " ")
    export.release(far.figure)


@pytest.mark.parametrize("size", ["100x100mm", "1189x119mm"])
@pytest.mark.parametrize("orientation", ["landscape", "portrait"])
def test_smallest_and_longest_papers_render(atlas, size, orientation):
    options = export.parse_options(atlas, dpi="50", size=size, orientation=orientation)
    image = Image.open(io.BytesIO(export.export(atlas, options, "png")))
    assert image.size == paper.pixels(options.size_mm, 50)


# --- memory and files ---------------------------------------------------------------------------

def test_exports_free_their_raster_without_waiting_for_the_garbage_collector(atlas):
    """The Agg raster (hundreds of MB at A3/600 dpi) is gone when export returns, with no gc.collect()."""
    def rasters():
        return sum(isinstance(o, RendererAgg) for o in gc.get_objects())
    options = export.parse_options(atlas, dpi="50", size="A5")
    gc.collect()
    gc.disable()
    try:
        before = rasters()
        for fmt in ("png", "svg", "pdf"):
            export.export(atlas, options, fmt)
        after = rasters()
    finally:
        gc.enable()
    assert after == before


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
def test_files_are_written_with_the_mode_the_umask_gives(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        assert atomic.umask() == mask
        atomic.write_bytes(tmp_path / "a" / "map.png", b"x")
        with atomic.staged_dir(tmp_path / "folder") as folder:
            (folder / "f").write_bytes(b"y")
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "map.png").stat().st_mode & 0o777 == mode
    assert (tmp_path / "folder").stat().st_mode & 0o777 == mode | 0o111 & ~mask


def test_exported_file_is_0644(atlas, tmp_path):
    old = os.umask(0o022)
    try:
        export.write(atlas, export.parse_options(atlas, dpi="50", size="A5"), tmp_path / "map.pdf")
    finally:
        os.umask(old)
    assert (tmp_path / "map.pdf").stat().st_mode & 0o777 == 0o644


# --- CLI -------------------------------------------------------------------------------------------

@pytest.fixture
def run_cli(built, data_root, atlas, monkeypatch):
    """``ttp-atlas export`` in-process, on the session's build already loaded (the console script test loads it)."""
    def opened(root, data):
        assert (root, data) == (built, data_root)
        return atlas
    monkeypatch.setattr(exports.store, "ensure_build", opened)
    return lambda *argv: cli.main(["export", "--build", str(built), "--data", str(data_root), *argv])


def test_cli_writes_png_svg_pdf(run_cli, tmp_path, capsys):
    for fmt in ("png", "svg", "pdf"):
        out = tmp_path / f"map.{fmt}"
        assert run_cli("--out", str(out), "--dpi", "72", "--size", "A5",
                       "--title", "Claimed units", "--datetime", "2023-03-01") == 0
        assert out.read_bytes()[:8] == {"png": b"\x89PNG\r\n\x1a\n", "svg": b"<?xml ve", "pdf": b"%PDF-1.4"}[fmt]
    assert Image.open(tmp_path / "map.png").size == paper.pixels((210.0, 148.0), 72)
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.pdf", "map.png", "map.svg"]


def test_cli_batch_each_unit_and_each_date(run_cli, tmp_path, atlas):
    assert run_cli("--out", str(tmp_path / "units"), "--each", "wilayah", "--format", "png",
                   "--datetime", "2023-03-01", "--dpi", "50", "--size", "A5") == 0
    units = {f["properties"]["unit"] for f in atlas.features("wilayahs", "2023-03-01")}
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == sorted(f"{u}.png" for u in units)
    assert run_cli("--out", str(tmp_path / "series" / "kp.png"), "--focus", "Khyber Pakhtunkhwa",
                   "--datetime", "2023-03-01,2023-07-01", "--dpi", "50", "--size", "A5") == 0
    assert sorted(p.name for p in (tmp_path / "series").iterdir()) == ["kp-2023-03-01.png", "kp-2023-07-01.png"]


@pytest.mark.parametrize(("argv", "named"), [
    (["--layers", "wilayahs,roads"], "'wilayahs,roads'"),
    (["--bbox", "70,30,71"], "'70,30,71'"),
    (["--dpi", "1200"], "'1200'"),
    (["--size", "B7"], "'B7'"),
    (["--focus", "Atlantis"], "'Atlantis'"),
    (["--datetime", "yesterday"], "'yesterday'"),
])
def test_cli_bad_values_exit_2_naming_the_value(run_cli, tmp_path, capsys, argv, named):
    out = tmp_path / "map.png"
    assert run_cli("--out", str(out), *argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err and "is invalid" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_unwritable_path_leaves_nothing(run_cli, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    assert run_cli("--out", str(blocker / "map.pdf"), "--dpi", "50") == 2
    assert "cannot be written" in capsys.readouterr().err
    assert run_cli("--out", str(tmp_path / "map.tiff")) == 2
    err = capsys.readouterr().err
    assert "map.tiff" in err and ".png, .svg, .pdf" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]


def test_failed_write_leaves_no_partial_file(atlas, tmp_path, monkeypatch):
    def refuse(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(export.atomic.os, "replace", refuse)
    with pytest.raises(OSError):
        export.write(atlas, export.parse_options(atlas, dpi="50", size="A5"), tmp_path / "map.png")
    assert list(tmp_path.iterdir()) == []


def test_console_script(built, data_root, tmp_path):
    """The real command: loads the build itself, writes a PDF; a bad value is one line on stderr, exit 2."""
    def ttp_atlas(*argv):
        return subprocess.run(["ttp-atlas", "export", "--build", str(built), "--data", str(data_root), *argv],
                              check=False, capture_output=True, text=True, timeout=120)
    done = ttp_atlas("--out", str(tmp_path / "small.pdf"), "--size", "100x100mm", "--datetime", "2023-07-01")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "small.pdf").read_bytes().startswith(b"%PDF")
    # a unit left unlabelled is said on stderr
    assert "export: " in done.stderr and "is not labelled: no room at this paper size" in done.stderr
    done = ttp_atlas("--out", str(tmp_path / "map.pdf"), "--dpi", "5000")
    assert done.returncode == 2
    assert done.stderr.strip() == "ttp-atlas export: error: --dpi '5000' is invalid: an integer from 50 to 600 in ASCII digits"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.pdf"]


# --- place names ------------------------------------------------------------------------------------

def place_gids(rendered) -> set[str]:
    return {a.get_gid() for a in rendered.figure.findobj() if (a.get_gid() or "").startswith("place-")}


def test_capitals_are_named_as_text_with_markers_and_credited(atlas, rendered, png, tmp_path):
    text = map_text(export.to_bytes(rendered, "pdf", DPI), rendered, tmp_path)
    assert "Islamabad" in text and "Karachi" in text and "Lahore" in text
    assert place_gids(rendered) <= {f"place-{p.geonameid}" for p in places.places()[:7]}  # capitals only
    footer = next(t for t in rendered.figure.texts if t.get_gid() == "credits").get_text().replace("\n", " ")
    assert "GeoNames" in footer and "CC BY 4.0" in footer
    karachi = places.places()[2]
    column, row = rendered.pixel(karachi.lon, karachi.lat)
    assert near(png[row - 1:row + 2, column - 1:column + 2], rgb(style.INK), 60).any()  # the ring's centre dot


def test_a_focused_map_names_more_places_than_the_country(atlas, rendered):
    options = export.parse_options(atlas, datetime=DATE, dpi="72", focus="Peshawar")
    with export.matplotlib.rc_context(export.RC):
        focused = export.render(atlas, options)
        gids = place_gids(focused)
        legend = [t.get_text() for a in focused.figure.axes if a.get_gid() == "legend" for t in a.texts]
        export.release(focused.figure)
    assert f"place-{places.places()[3].geonameid}" in gids  # Peshawar, the capital
    assert len(gids) > 3 and not gids <= {f"place-{p.geonameid}" for p in places.places()[:7]}  # and cities
    assert style.PLACE_STYLES["city"].title in legend and "Place names" in legend


def test_the_capital_is_marked_on_a_crowded_national_map(atlas, tmp_path):
    """At the latest structure the units crowd Islamabad: their labels keep clear of its marker."""
    options = export.parse_options(atlas, dpi="72")  # A4, the whole country, the latest date
    with export.matplotlib.rc_context(export.RC):
        rendered = export.render(atlas, options)
        text = map_text(export.to_bytes(rendered, "pdf", options.dpi), rendered, tmp_path)
        gids = place_gids(rendered)
        export.release(rendered.figure)
    assert "Islamabad" in text and "Karachi" in text and f"place-{places.places()[0].geonameid}" in gids
    assert rendered.warnings == []
