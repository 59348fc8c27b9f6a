"""``/export.{png,svg,pdf}`` on the real server (gunicorn): content types, sizes, same defaults as the CLI, 400s."""

from __future__ import annotations

import io
import subprocess
import xml.etree.ElementTree as ET

import pytest
import requests
from PIL import Image

from server import cli

DATE = "2023-07-01"


def get(server, path, **params):
    return requests.get(f"{server}{path}", params=params, timeout=60)


def test_png_has_the_size_asked_for(server):
    response = get(server, "/export.png", datetime=DATE, dpi="100", size="A4", orientation="portrait")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert 'filename="ttp-atlas-2023-07-01.png"' in response.headers["Content-Disposition"]
    assert Image.open(io.BytesIO(response.content)).size == (827, 1169)


def test_svg_and_pdf_are_vector(server):
    svg = get(server, "/export.svg", datetime=DATE, title="Claimed units, July 2023")
    assert svg.status_code == 200 and svg.headers["Content-Type"].startswith("image/svg+xml")
    root = ET.fromstring(svg.content)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "Claimed units, July 2023" in texts
    ids = {g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert "wilayah-peshawar-2022-12-31-core" in ids and "wilayah-zhob-2023-06-14-extension" in ids
    pdf = get(server, "/export.pdf", datetime=DATE, dpi="72")
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and b"/FontFile2" in pdf.content  # TrueType embedded: text stays text


def test_same_defaults_and_bytes_as_the_cli(server, built, data_root, tmp_path):
    """No parameters over HTTP and no options on the CLI give the very same map."""
    over_http = get(server, "/export.svg")
    assert over_http.status_code == 200
    assert cli.main(["export", "--build", str(built), "--data", str(data_root), "--out", str(tmp_path / "m.svg")]) == 0
    assert (tmp_path / "m.svg").read_bytes() == over_http.content
    assert 'filename="ttp-atlas-2025-12-25.svg"' in over_http.headers["Content-Disposition"]


def test_etag_revalidates(server):
    first = get(server, "/export.png", dpi="60", size="A5")
    again = requests.get(f"{server}/export.png", params={"dpi": "60", "size": "A5"},
                         headers={"If-None-Match": first.headers["ETag"]}, timeout=60)
    assert again.status_code == 304


@pytest.mark.parametrize(("params", "parameter", "value"), [
    ({"layers": "wilayahs,roads"}, "layers", "wilayahs,roads"),
    ({"bbox": "70,30,71"}, "bbox", "70,30,71"),
    ({"bbox": "-10,40,0,50"}, "bbox", "-10,40,0,50"),
    ({"dpi": "601"}, "dpi", "601"),
    ({"size": "B7"}, "size", "B7"),
    ({"size": "A2", "dpi": "600"}, "size", "A2"),
    ({"orientation": "diagonal"}, "orientation", "diagonal"),
    ({"focus": "Atlantis"}, "focus", "Atlantis"),
    ({"focus": "Peshawar", "bbox": "70,30,72,32"}, "focus", "Peshawar"),
    ({"datetime": "last week"}, "datetime", "last week"),
    ({"title": "x" * 300}, "title", "x" * 300),
    ({"colour": "red"}, "colour", "red"),
])
def test_bad_parameters_are_400_problems(server, params, parameter, value):
    response = get(server, "/export.pdf", **params)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["parameter"] == parameter and repr(value) in problem["detail"] and problem["valid"]


def test_unknown_format_is_404(server):
    response = get(server, "/export.jpg")
    assert response.status_code == 404 and response.json()["valid"] == ["/export.pdf", "/export.png", "/export.svg"]


@pytest.mark.parametrize("title", ["$5 and $6", r"$\frac{1}{2}$ and $$", "$" * 150])
def test_titles_with_dollars_are_plain_text(server, title):
    svg = get(server, "/export.svg", title=title, size="A5", dpi="50")
    assert svg.status_code == 200
    root = ET.fromstring(svg.content)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert title in texts
    assert root.find("{http://www.w3.org/2000/svg}title").text == title
    for fmt in ("png", "pdf"):
        assert get(server, f"/export.{fmt}", title=title, size="A5", dpi="50").status_code == 200


def test_pdf_names_every_unit_and_carries_metadata(server, atlas, tmp_path):
    response = get(server, "/export.pdf", datetime=DATE, dpi="72", size="A4", orientation="portrait")
    assert response.status_code == 200
    path = tmp_path / "map.pdf"
    path.write_bytes(response.content)
    text = " ".join(subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True,
                                   text=True).stdout.split())
    for name in {f["properties"]["name"] for f in atlas.features("wilayahs", DATE)}:
        assert name in text, name
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    assert f"ttp-atlas build {atlas.build_id}" in info
    assert "Title:" in info and "TTP wilayahs" in info
