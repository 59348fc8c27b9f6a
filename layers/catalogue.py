"""The layer catalogue: every layer the atlas shows, defined once and read by every output."""

from __future__ import annotations

from dataclasses import dataclass

CAVEAT = (
    "Claimed units, not areas of control: these are organisational units the TTP is reported to "
    "have announced, drawn by the map-maker as unions of Pakistani civil districts. No source "
    "publishes their boundaries; confidence and sources are given on every feature."
)

BOUNDARY_NOTE = (
    "The boundaries and names shown and the designations used on this map do not imply official "
    "endorsement or acceptance by the map-maker. The Line of Control in Jammu and Kashmir, the Working "
    "Boundary and the Siachen area are drawn dashed: their final status has not yet been agreed upon "
    "by the parties."
)


@dataclass(frozen=True)
class Layer:
    id: str
    title: str
    description: str
    datasets: tuple[str, ...]  # keys of geo.datasets.DATASETS whose licences apply
    temporal: bool = False  # features carry valid_from / valid_to
    min_zoom: int = 0  # below this zoom the layer is not legible on a web map

    @property
    def claimed(self) -> bool:
        """Layers of (or naming) claimed TTP units, which must carry the caveat wherever shown."""
        return self.id in ("wilayahs", "zones", "events", "event-counts-wilayahs")


LAYERS: tuple[Layer, ...] = (
    Layer("countries", "Countries",
          "Every country, for context (Natural Earth 1:50m); Pakistan is drawn with OCHA COD-AB's outline "
          "(the union of its provinces) and its neighbours are fitted to it, so there is one border.",
          ("natural-earth", "cod-ab")),
    Layer("provinces", "Provinces and territories",
          "Pakistan's provinces and territories, including Azad Jammu and Kashmir, Gilgit-Baltistan "
          "and Islamabad Capital Territory (OCHA COD-AB).", ("cod-ab",)),
    Layer("divisions", "Divisions",
          "Civil divisions, drawn as unions of the districts so that borders coincide; each district "
          "is placed in the OpenStreetMap division it overlaps most.", ("cod-ab", "osm"), min_zoom=4),
    Layer("districts", "Districts (2023)",
          "Districts as of 2023: OCHA COD-AB districts, with districts notified after September 2022 "
          "(Upper and Lower South Waziristan among them) rebuilt from COD tehsils.", ("cod-ab", "osm"),
          min_zoom=5),
    Layer("tehsils", "Tehsils", "Sub-districts (OCHA COD-AB ADM3).", ("cod-ab",), min_zoom=8),
    Layer("tribal-districts", "Tribal districts (ex-FATA)",
          "Khyber Pakhtunkhwa's districts that were agencies of the Federally Administered Tribal "
          "Areas until the 2018 merger; South Waziristan was split in October 2022.", ("cod-ab",),
          min_zoom=5),
    Layer("wilayahs", "TTP wilayahs (claimed units)",
          "Units the TTP is reported to have announced, per period, each drawn as the union of its "
          "member districts, with zone, confidence, basis and sources. " + CAVEAT, ("cod-ab",),
          temporal=True),
    Layer("zones", "TTP zones (claimed)",
          "The union of the claimed units in each reported zone (north, south), per period. " + CAVEAT,
          ("cod-ab",), temporal=True),
)

LAYER_IDS: tuple[str, ...] = tuple(layer.id for layer in LAYERS)

# The layers of the user's event file (``layers.overlay``), served only while one is loaded: outside the
# catalogue's builds, downloads, styles and tiles of the boundary layers.
EVENT_LAYERS: tuple[Layer, ...] = (
    Layer("events", "Events (the user's event file)",
          "One point per row of the loaded event file that has coordinates (its own, or its place name's), with "
          "the civil units and the claimed units (wilayahs) it fell in on its own day; flag says why a row counts "
          "nowhere (no date, outside Pakistan, a date range over which the units changed). " + CAVEAT,
          ("cod-ab", "osm")),
    Layer("event-counts-wilayahs", "Events per claimed unit (wilayah) and month",
          "Events and fatalities of the loaded event file per wilayah feature and month, drawn with the unit: "
          "an event counts in each claimed unit valid on its own day (a core and another unit's possible "
          "extension may both hold it). Only units and months with events. " + CAVEAT, ("cod-ab",)),
    Layer("event-counts-districts", "Events per district and month",
          "Events and fatalities of the loaded event file per district (2023) and month, drawn with the "
          "district. Only districts and months with events.", ("cod-ab", "osm")),
)


def layer(layer_id: str) -> Layer:
    """The catalogue entry for ``layer_id``; KeyError names the valid ids."""
    for entry in LAYERS:
        if entry.id == layer_id:
            return entry
    raise KeyError(f"unknown layer {layer_id!r}; valid layers: {', '.join(LAYER_IDS)}")
