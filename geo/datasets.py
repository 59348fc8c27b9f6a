"""The open boundary datasets the atlas is built from: where they live, how they are checked, how to fetch them.

One setting locates the data: the ``TTP_ATLAS_DATA`` environment variable (a folder laid out like
``shared/data/boundaries``). Every file read is checked against the sha256 list shipped beside this
module, so a corrupt or substituted file fails loudly instead of drawing a wrong map.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DATA_ENV = "TTP_ATLAS_DATA"
CHECKSUMS = Path(__file__).with_name("boundaries.sha256")

COD_GDB = "ocha_cod_ab_pak_20220909/pak_adm_wfp_20220909_gdb.gdb/pak_adm_wfp_20220909_GDB.gdb"
COD_LINE_OF_CONTROL = ("ocha_cod_ab_pak_20220909/pak_admbndl_adm_loc_wfp_itos_20220909/"
                       "pak_admbndl_adm_LOC_wfp_itos_20220909.shp")
OSM_GEOGRAPHY = "osm_derived_abubakrch_pakistan_map/geography.topojson.json"
NE_COUNTRIES = "natural_earth_world_atlas/countries-50m.json"


@dataclass(frozen=True)
class Dataset:
    """An upstream dataset: its credit line, licence and the files of it that the build reads."""

    key: str
    title: str
    publisher: str
    version: str
    licence: str
    licence_url: str
    attribution: str
    homepage: str
    prefix: str  # folder of the dataset inside the data directory
    download_base: str  # URL that the prefix maps to, or a tarball for ``tarball`` datasets
    tarball_sha256: str | None = None
    tarball_member_prefix: str = ""


DATASETS: dict[str, Dataset] = {
    d.key: d
    for d in (
        Dataset(
            key="cod-ab",
            title="OCHA COD-AB Pakistan subnational administrative boundaries",
            publisher="UN OCHA (boundaries: WFP SDI; processing: ITOS, University of Georgia)",
            version="v01, validOn 2022-09-09",
            licence="CC BY-IGO 3.0",
            licence_url="https://creativecommons.org/licenses/by/3.0/igo/",
            attribution="Boundaries: OCHA COD-AB Pakistan (WFP SDI, ITOS), CC BY-IGO",
            homepage="https://data.humdata.org/dataset/cod-ab-pak",
            prefix="ocha_cod_ab_pak_20220909/",
            download_base=(
                "https://raw.githubusercontent.com/szhaider/PakIndicatorsApp/"
                "49b8d7d97574c5fad54c481309142e83b46d5be9/data-raw/rawdata/PAK_SHP_2022/"
            ),
        ),
        Dataset(
            key="osm",
            title="OpenStreetMap administrative boundaries (divisions), via AbuBakrCh/pakistan-map",
            publisher="OpenStreetMap contributors",
            version="OSM 2026-08-01, bundle c004fc69",
            licence="ODbL 1.0",
            licence_url="https://opendatacommons.org/licenses/odbl/1-0/",
            attribution="Divisions: © OpenStreetMap contributors, ODbL",
            homepage="https://www.openstreetmap.org/copyright",
            prefix="osm_derived_abubakrch_pakistan_map/",
            download_base=(
                "https://github.com/AbuBakrCh/pakistan-map/raw/"
                "c004fc69bae6f67ea94b3117d9ba61a0c04e8b83/data/bundle/"
            ),
        ),
        Dataset(
            key="natural-earth",
            title="Natural Earth Admin-0 countries 1:50m, via world-atlas",
            publisher="Natural Earth",
            version="4.1.0 (world-atlas 2.0.2)",
            licence="Public domain",
            licence_url="https://www.naturalearthdata.com/about/terms-of-use/",
            attribution="Countries: Made with Natural Earth (public domain)",
            homepage="https://www.naturalearthdata.com/",
            prefix="natural_earth_world_atlas/",
            download_base="https://registry.npmjs.org/world-atlas/-/world-atlas-2.0.2.tgz",
            tarball_sha256="032e7765f2ce00edaeafec23ff22bc3b77e42987c257da944cc585b452c05b97",
            tarball_member_prefix="package/",
        ),
    )
}


class DataError(RuntimeError):
    """Input data missing or corrupt; the message names the file and how to obtain it."""


def data_dir(environ: dict[str, str] | None = None) -> Path:
    """The data folder: ``$TTP_ATLAS_DATA``, else the user cache that ``ttp-atlas data`` fills."""
    env = os.environ if environ is None else environ
    if env.get(DATA_ENV):
        return Path(env[DATA_ENV]).expanduser()
    cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ttp-atlas" / "boundaries"


def expected_checksums(path: Path = CHECKSUMS) -> dict[str, str]:
    """Relative path -> sha256 for every upstream file the build reads."""
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip()] = digest
    return sums


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dataset_of(relative: str) -> Dataset:
    return next(d for d in DATASETS.values() if relative.startswith(d.prefix))


def how_to_obtain(relative: str) -> str:
    dataset = dataset_of(relative)
    return (
        f"run `ttp-atlas data` (or `make data`) to download it from {dataset.publisher} "
        f"({dataset.homepage}), or point {DATA_ENV} at a folder that holds it"
    )


def verify(root: Path, sums: dict[str, str] | None = None) -> None:
    """Raise DataError for the first file that is missing or whose checksum differs."""
    sums = expected_checksums() if sums is None else sums
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist: run `ttp-atlas data` (or `make data`) to "
                        f"download the boundary data, or point {DATA_ENV} at a folder that holds it")
    for relative, digest in sorted(sums.items()):
        path = root / relative
        if not path.is_file():
            raise DataError(f"missing input file {path}: {how_to_obtain(relative)}")
        actual = sha256_file(path)
        if actual != digest:
            raise DataError(
                f"corrupt input file {path}: sha256 {actual} differs from the expected {digest}; "
                f"{how_to_obtain(relative)}"
            )


def _fetch(url: str, timeout: float = 60) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed https URLs
        return response.read()


def _write_checked(target: Path, payload: bytes, digest: str, origin: str) -> None:
    actual = hashlib.sha256(payload).hexdigest()
    if actual != digest:
        raise DataError(f"download of {origin} has sha256 {actual}, expected {digest}; not saved")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
        handle.write(payload)
    os.replace(handle.name, target)


def download(root: Path, bases: dict[str, str] | None = None, fetch=_fetch) -> list[str]:
    """Fetch every missing or corrupt file into ``root`` from its upstream, checking sha256.

    ``bases`` overrides a dataset's download URL (a mirror); returns the relative paths fetched.
    """
    bases = bases or {}
    sums = expected_checksums()
    stale = [
        rel for rel, digest in sorted(sums.items())
        if not (root / rel).is_file() or sha256_file(root / rel) != digest
    ]
    for key, dataset in DATASETS.items():
        wanted = [rel for rel in stale if rel.startswith(dataset.prefix)]
        if not wanted:
            continue
        base = bases.get(key, dataset.download_base)
        if dataset.tarball_sha256:
            payload = fetch(base)
            actual = hashlib.sha256(payload).hexdigest()
            if actual != dataset.tarball_sha256:
                raise DataError(f"download of {base} has sha256 {actual}, expected {dataset.tarball_sha256}")
            with tarfile.open(fileobj=io.BytesIO(payload)) as archive:
                for rel in wanted:
                    member = dataset.tarball_member_prefix + rel[len(dataset.prefix):]
                    content = archive.extractfile(member).read()
                    _write_checked(root / rel, content, sums[rel], f"{base}!{member}")
        else:
            for rel in wanted:
                url = base + urllib.request.pathname2url(rel[len(dataset.prefix):])
                _write_checked(root / rel, fetch(url), sums[rel], url)
    return stale

