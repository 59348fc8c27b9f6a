"""Join the user's event file to the units valid on each event's own day, streaming.

Reads the documented CSV exports of ACLED, UCDP GED and the GTD, or a plain ``date,lon,lat[,...]``
file (the layout is detected from the header), and writes every row back with the lookup columns
(``COLUMNS``) added. A row is placed by its coordinates, else by its place-name columns (most precise
first); one that cannot be placed is kept with its reason in ``placement``. Rows are read and written
one by one and located in chunks of ``CHUNK`` (one STRtree query for the whole chunk), so a file of any
length runs in bounded memory. Nothing is downloaded; the data stays the user's.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import shapely

from geo import atomic
from layers import lookup
from layers.features import QueryError, parse_instant

COLUMNS = ("province", "division", "district", "tehsil", "tribal_district", "wilayah", "wilayah_part",
           "wilayah_confidence", "zone", "placement")
CHUNK = 10_000
PLACED = ("coordinates", "place-name")  # the placement of a row placed, with its date
# Why a row could not be (wholly) placed, most serious first: a row gets the first that applies.
FLAGS = {
    "no-location": "no coordinates and no place name",
    "bad-coordinates": "coordinates that are not two numbers in range",
    "unknown-place": "no coordinates, and a place name the gazetteer does not know",
    "ambiguous-place": "no coordinates, and a place name that fits several places",
    "outside-pakistan": "a place outside Pakistan",
    "no-date": "no date",
    "bad-date": "a date that cannot be read",
    "date-uncertain": "a date range (unknown day or month) over which the claimed units changed",
}
SEPARATOR = "; "  # between several units of one row (a core and another unit's extension)
PLACE_CACHE = 100_000  # distinct place-name tuples remembered
REPORT_PER_FLAG = 20  # rows named on stderr per kind of flag; the summary counts them all


class EventFileError(ValueError):
    """An event file that cannot be read as a whole (missing, no header, unknown layout)."""


class DateError(ValueError):
    """A row's date is missing (``no-date``) or unreadable (``bad-date``)."""


# --- layouts ---------------------------------------------------------------------------------

def _iso_day(text: str) -> str:
    return dt.date.fromisoformat(text[:10]).isoformat()


def _acled_day(text: str) -> str:
    """ACLED's exports write ``2023-07-15``; older ones ``15 July 2023``."""
    try:
        return _iso_day(text)
    except ValueError:
        return dt.datetime.strptime(text, "%d %B %Y").date().isoformat()


def _plain_day(text: str) -> str:
    try:
        return parse_instant(text)
    except QueryError:
        raise ValueError(text) from None


@dataclass(frozen=True)
class Layout:
    name: str
    title: str
    date_columns: tuple[str, ...]  # read by ``days``
    lon: str
    lat: str
    places: tuple[str, ...]  # place-name columns, most precise first
    actor: str | None  # for reports
    fatalities: str | None

    @property
    def required(self) -> tuple[str, ...]:
        return (*self.date_columns, self.lon, self.lat)


LAYOUTS = (
    Layout("acled", "ACLED (event_date, latitude, longitude, admin1-3, location, actor1, fatalities)",
           ("event_date",), "longitude", "latitude", ("location", "admin3", "admin2", "admin1"), "actor1",
           "fatalities"),
    Layout("ucdp", "UCDP GED (date_start, date_end, latitude, longitude, where_coordinates, adm_1/2, side_b, best)",
           ("date_start",), "longitude", "latitude", ("where_coordinates", "adm_2", "adm_1"), "side_b", "best"),
    Layout("gtd", "GTD (iyear, imonth, iday with 0 for unknown, latitude, longitude, city, provstate, gname, nkill)",
           ("iyear", "imonth", "iday"), "longitude", "latitude", ("city", "provstate"), "gname", "nkill"),
    Layout("plain", "plain CSV (date, lon, lat and any other columns; optional place)", ("date",), "lon", "lat",
           ("place",), None, None),
)


def detect(header: list[str]) -> Layout:
    """The layout whose columns the header has; EventFileError naming the accepted layouts otherwise."""
    names = set(header)
    for layout in LAYOUTS:
        if set(layout.required) <= names:
            return layout
    raise EventFileError("unknown header (" + ",".join(header[:8]) + ("..." if len(header) > 8 else "")
                         + "): accepted layouts are " + "; ".join(layout.title for layout in LAYOUTS))


@lru_cache(maxsize=65536)
def _day(parse: Callable[[str], str], text: str) -> str:
    return parse(text)


def days(layout: Layout, cell: Callable[[str], str]) -> tuple[str, str]:
    """The first and last day the row's date may be (one day, or a GTD month or year with day or month 0,
    or a UCDP start-end range); DateError when it has none or an unreadable one."""
    if layout.name == "gtd":
        return _gtd_days(cell("iyear"), cell("imonth"), cell("iday"))
    text = cell(layout.date_columns[0])
    if not text:
        raise DateError("no-date")
    parse = {"acled": _acled_day, "ucdp": _iso_day, "plain": _plain_day}[layout.name]
    try:
        start = _day(parse, text)
        end = _day(parse, cell("date_end")) if layout.name == "ucdp" and cell("date_end") else start
    except ValueError:
        raise DateError("bad-date") from None
    if end < start:
        raise DateError("bad-date")
    return start, end


@lru_cache(maxsize=65536)
def _gtd_days(year: str, month: str, day: str) -> tuple[str, str]:
    if not year:
        raise DateError("no-date")
    try:
        y, m, d = int(year), int(month or 0), int(day or 0)
        if m == 0:
            return dt.date(y, 1, 1).isoformat(), dt.date(y, 12, 31).isoformat()
        if d == 0:
            following = dt.date(y + m // 12, m % 12 + 1, 1)
            return dt.date(y, m, 1).isoformat(), (following - dt.timedelta(days=1)).isoformat()
        return (dt.date(y, m, d).isoformat(),) * 2
    except ValueError:
        raise DateError("bad-date") from None


def _coordinates(lon: str, lat: str) -> tuple[float, float] | None:
    """(lon, lat), None when both are empty; ValueError when not two finite numbers in range."""
    if not lon.strip() and not lat.strip():
        return None
    x, y = float(lon), float(lat)
    if not (math.isfinite(x) and math.isfinite(y) and -180 <= x <= 180 and -90 <= y <= 90):
        raise ValueError(f"{lon},{lat}")
    return x, y


# --- the join --------------------------------------------------------------------------------

@dataclass
class Summary:
    rows: int = 0
    placements: Counter = field(default_factory=Counter)
    flagged: list[tuple[int, str, str]] = field(default_factory=list)  # (line, flag, detail), a few per flag
    layout: str = ""

    def note(self, line: int, flag: str, detail: str) -> None:
        self.placements[flag] += 1
        if self.placements[flag] <= REPORT_PER_FLAG:
            self.flagged.append((line, flag, detail))

    def report(self, path: Path) -> list[str]:
        """One line per reported row, then the counts."""
        lines = [f"{path}:{line}: {flag} ({FLAGS[flag]}): {detail}" for line, flag, detail in self.flagged]
        lines += [f"{path}: {self.placements[flag] - REPORT_PER_FLAG} more rows flagged {flag}"
                  for flag in FLAGS if self.placements[flag] > REPORT_PER_FLAG]
        counts = ", ".join(f"{self.placements[k]} {k}" for k in (*PLACED, *FLAGS) if self.placements[k])
        lines.append(f"{path}: {self.rows} rows ({self.layout}): {counts}")
        return lines


@dataclass
class _Row:
    line: int
    cells: list[str]
    start: str = ""
    end: str = ""
    point: tuple[float, float] | None = None
    placement: str = "coordinates"
    date_flag: str | None = None
    detail: str = ""
    whole_district: bool = False  # placed by a district's name: no one tehsil


class Joiner:
    """Locates chunks of rows; keeps the name lists and caches that turn positions into columns."""

    def __init__(self, locator: lookup.Locator):
        self.locator = locator
        atlas = locator.atlas
        # positions index these lists; -1 (no unit) picks the trailing ""
        self.names = {key: [f["properties"]["name"] for f in atlas.features(layer_id)] + [""]
                      for key, layer_id in lookup.CIVIL.items()}
        self.wilayahs = [f["properties"] for f in atlas.features("wilayahs")]
        self._places: dict[tuple[str, ...], lookup.Place | str] = {}

    def place(self, names: tuple[str, ...]) -> lookup.Place | str:
        """The first of a row's place names that resolves (the others narrow an ambiguous one), else the
        flag of the first name tried; cached, since event files repeat their places."""
        if names not in self._places:
            if len(self._places) >= PLACE_CACHE:
                self._places.clear()  # bounded memory, whatever the file
            found: lookup.Place | str = "no-location"
            for i, name in enumerate(names):
                try:
                    found = self.locator.resolve(name, context=names[i + 1:])
                    break
                except lookup.PlaceError as error:
                    found = f"{error.reason}-place" if found == "no-location" else found
            self._places[names] = found
        return self._places[names]

    def unit_columns(self, certain: list[int]) -> tuple[str, str, str, str]:
        units = [self.wilayahs[i] for i in certain]
        return (SEPARATOR.join(u["name"] for u in units), SEPARATOR.join(u["part"] for u in units),
                SEPARATOR.join(u["confidence"] for u in units), next((u["zone"] for u in units if u["zone"]), ""))

    def columns(self, rows: list[_Row], summary: Summary) -> Iterator[list[str]]:
        """Each row's cells with the lookup columns added, in order."""
        located_rows = [r for r in rows if r.point is not None]
        if located_rows:
            points = shapely.points(np.array([r.point for r in located_rows], dtype=float))
            located = self.locator.locate(points, np.array([r.start for r in located_rows], dtype="U10"),
                                          np.array([r.end for r in located_rows], dtype="U10"))
        position = {id(r): i for i, r in enumerate(located_rows)}
        empty = [""] * (len(COLUMNS) - 1)
        for row in rows:
            i = position.get(id(row))
            if i is None:
                yield [*row.cells, *empty, self._flag(row, row.placement, summary)]
                continue
            civil = [self.names[key][located.civil[key][i]] for key in lookup.CIVIL]
            if row.whole_district:
                civil[3] = ""
            if located.civil["province"][i] < 0:
                yield [*row.cells, *empty, self._flag(row, "outside-pakistan", summary)]
                continue
            certain = located.certain[i]
            units = ("", "", "", "")
            if row.date_flag is None and certain != located.possible[i]:
                row.date_flag, row.detail = "date-uncertain", f"{row.start} to {row.end}"
            if row.date_flag is None:
                units = self.unit_columns(certain)
            placement = self._flag(row, row.date_flag, summary) if row.date_flag else row.placement
            if not row.date_flag:
                summary.placements[placement] += 1
            yield [*row.cells, *civil, *units, placement]

    @staticmethod
    def _flag(row: _Row, flag: str, summary: Summary) -> str:
        where = f"lon {row.point[0]}, lat {row.point[1]}" if row.point else ",".join(row.cells[:6])
        summary.note(row.line, flag, row.detail or where)
        return flag


def _rows(reader, width: int) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells padded to the header's width) per record; a quoted cell may span lines."""
    line = reader.line_num + 1
    for cells in reader:
        if cells:
            yield line, cells + [""] * (width - len(cells))
        line = reader.line_num + 1


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _prepare(joiner: Joiner, layout: Layout, index: dict[str, int], line: int, cells: list[str]) -> _Row:
    """A row's days, and its point from its coordinates or its place names; the flags where neither works."""
    row = _Row(line, cells)

    def cell(name: str) -> str:
        return cells[index[name]].strip() if name in index else ""

    try:
        row.start, row.end = days(layout, cell)
    except DateError as error:
        row.date_flag, row.detail = error.args[0], ",".join(cell(c) for c in layout.date_columns)
    try:
        row.point = _coordinates(cell(layout.lon), cell(layout.lat))
    except ValueError:
        row.placement, row.detail = "bad-coordinates", f"lon {cell(layout.lon)!r}, lat {cell(layout.lat)!r}"
        return row
    if row.point is None:
        names = tuple(dict.fromkeys(n for n in (cell(c) for c in layout.places) if n))
        found = joiner.place(names)
        if isinstance(found, str):
            row.placement, row.detail = found, " / ".join(names) or "no place columns"
        else:
            row.point, row.placement = (found.lon, found.lat), "place-name"
            row.detail, row.whole_district = f"{found.kind} {found.name}", found.kind == "district"
    return row


def join(locator: lookup.Locator, source: Path, out: Path, chunk: int = CHUNK) -> Summary:
    """Write ``source`` to ``out`` (atomically) with ``COLUMNS`` added to every row; the Summary says
    how many rows were placed how, and which lines were flagged."""
    source = Path(source)
    try:
        handle = source.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise EventFileError(f"cannot read {source}: {error.strerror}") from None
    with handle, atomic.staged_file(out) as staged, staged.open("w", newline="", encoding="utf-8") as target:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise EventFileError(f"{source} is empty: the first line must be a header")
        names = [h.strip().lower() for h in header]
        layout = detect(names)
        taken = sorted(set(COLUMNS) & set(names))
        if taken:
            raise EventFileError(f"{source} already has the column(s) {', '.join(taken)} that the join adds "
                                 "(is it a joined file?)")
        index = {name: i for i, name in enumerate(names)}
        joiner, summary = Joiner(locator), Summary(layout=layout.name)
        writer = csv.writer(target)
        writer.writerow([*header, *COLUMNS])
        for records in _chunks(_rows(reader, len(header)), chunk):
            rows = [_prepare(joiner, layout, index, line, cells) for line, cells in records]
            writer.writerows(joiner.columns(rows, summary))
            summary.rows += len(rows)
    return summary
