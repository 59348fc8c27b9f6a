"""Join the user's event file to the units valid on each event's own day, streaming.

Reads the documented CSV exports of ACLED, UCDP GED and the GTD, or a plain ``date,lon,lat[,...]``
file (the layout is detected from the header), and writes every row back with the lookup columns
(``COLUMNS``) added. A row is placed by its coordinates, else by its place-name columns (most precise
first); one that cannot be placed is kept with its reason in ``placement``. Rows are read and written
one by one and located in chunks of ``CHUNK`` (one STRtree query for the whole chunk), so a file of any
length runs in bounded memory. Nothing is downloaded; the data stays the user's.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import math
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from geo import atomic
from layers import catalogue, lookup, style
from layers.export import RC
from layers.features import QueryError, parse_instant

COLUMNS = ("province", "division", "district", "tehsil", "tribal_district", "wilayah", "wilayah_label",
           "wilayah_part", "wilayah_confidence", "zone", "placement")
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
TEHSIL = list(lookup.CIVIL).index("tehsil")  # position of the tehsil among the civil columns
SEPARATOR = "; "  # between several units of one row (a core and another unit's extension)
PLACE_CACHE = 100_000  # distinct place-name tuples remembered
REPORT_PER_FLAG = 20  # rows named on stderr per kind of flag; the summary counts them all


class EventFileError(ValueError):
    """An event file that cannot be read as a whole (missing, no header, unknown layout)."""


class EncodingError(EventFileError):
    """The file is not text in the encoding it was read with."""


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
    credit: str  # attribution line of the event data; {source} is the file's name

    @property
    def required(self) -> tuple[str, ...]:
        return (*self.date_columns, self.lon, self.lat)


LAYOUTS = (
    Layout("acled", "ACLED (event_date, latitude, longitude, admin1-3, location, actor1, fatalities)",
           ("event_date",), "longitude", "latitude", ("location", "admin3", "admin2", "admin1"), "actor1",
           "fatalities", "Event data: {source}, from ACLED (Armed Conflict Location & Event Data), acleddata.com"),
    Layout("ucdp", "UCDP GED (date_start, date_end, latitude, longitude, where_coordinates, adm_1/2, side_b, best)",
           ("date_start",), "longitude", "latitude", ("where_coordinates", "adm_2", "adm_1"), "side_b", "best",
           "Event data: {source}, from the UCDP Georeferenced Event Dataset (Uppsala Conflict Data Program, "
           "ucdp.uu.se), CC BY 4.0"),
    Layout("gtd", "GTD (iyear, imonth, iday with 0 for unknown, latitude, longitude, city, provstate, gname, nkill)",
           ("iyear", "imonth", "iday"), "longitude", "latitude", ("city", "provstate"), "gname", "nkill",
           "Event data: {source}, from the Global Terrorism Database (START, University of Maryland)"),
    Layout("plain", "plain CSV (date, lon, lat and any other columns; optional place, actor, fatalities)",
           ("date",), "lon", "lat", ("place",), "actor", "fatalities", "Event data: {source}, the user's file"),
)


def detect(header: list[str]) -> Layout:
    """The layout whose columns the header has; EventFileError naming the accepted layouts otherwise."""
    names = set(header)
    for layout in LAYOUTS:
        if set(layout.required) <= names:
            return layout
    shown = ",".join(header[:8])
    shown = shown if shown.isprintable() and len(shown) <= 200 else ascii(shown[:200])  # a binary file: one line
    raise EventFileError(f"unknown header ({shown}{'...' if len(header) > 8 else ''}): accepted layouts are "
                         + "; ".join(layout.title for layout in LAYOUTS))


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
    source: str = ""  # the file's name
    geonames: bool = False  # a row was placed by a GeoNames place name: credit GeoNames

    @property
    def credits(self) -> list[str]:
        """The event data's source, and GeoNames when its place names placed rows."""
        found = [layout.credit.format(source=self.source) for layout in LAYOUTS if layout.name == self.layout]
        return [*found, *([lookup.GEONAMES_CREDIT] if self.geonames else [])]

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
        return lines + self.credits


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


@dataclass
class Joined:
    """A row with its lookup columns (the values of ``COLUMNS``), and the feature positions behind them."""

    row: _Row
    values: list[str]
    district: int = -1  # position in the districts layer; -1: none
    units: list[int] = field(default_factory=list)  # positions of the wilayah features it fell in on its day

    @property
    def placed(self) -> bool:
        return self.values[-1] in PLACED


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
        self.geonames = False  # whether a GeoNames place placed a row

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

    def unit_columns(self, certain: list[int]) -> tuple[str, str, str, str, str]:
        units = [self.wilayahs[i] for i in certain]
        return (SEPARATOR.join(u["name"] for u in units), SEPARATOR.join(u["label"] for u in units),
                SEPARATOR.join(u["part"] for u in units),
                SEPARATOR.join(u["confidence"] for u in units), next((u["zone"] for u in units if u["zone"]), ""))

    def joined(self, rows: list[_Row], summary: Summary) -> Iterator[Joined]:
        """Each row with its lookup columns, in order."""
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
                yield Joined(row, [*empty, self._flag(row, row.placement, summary)])
                continue
            civil = [self.names[key][located.civil[key][i]] for key in lookup.CIVIL]
            if row.whole_district:
                civil[TEHSIL] = ""
            if located.civil["province"][i] < 0:
                yield Joined(row, [*empty, self._flag(row, "outside-pakistan", summary)])
                continue
            district, certain = int(located.civil["district"][i]), located.certain[i]
            if row.date_flag is None and certain != located.possible[i]:
                row.date_flag, row.detail = "date-uncertain", f"{row.start} to {row.end}"
            if row.date_flag:
                yield Joined(row, [*civil, *self.unit_columns([]), self._flag(row, row.date_flag, summary)],
                             district)
                continue
            summary.placements[row.placement] += 1
            yield Joined(row, [*civil, *self.unit_columns(certain), row.placement], district, certain)

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
            joiner.geonames |= found.kind == "place"
            row.detail, row.whole_district = f"{found.kind} {found.name}", found.kind == "district"
    return row


def check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise EventFileError(f"unknown encoding {encoding!r}: give a Python codec name, e.g. utf-8 or "
                             "latin-1") from None


@contextmanager
def reading(source: Path, encoding: str = "utf-8-sig", out: Path | None = None) -> Iterator:
    """A csv reader of ``source``; what goes wrong reading it (or writing ``out``) inside the block
    becomes an EventFileError naming the file."""
    check_encoding(encoding)
    try:
        with Path(source).open(newline="", encoding=encoding) as handle:
            yield csv.reader(handle)
    except UnicodeDecodeError:
        raise EncodingError(f"{source} is not {encoding} text: give its encoding with --encoding "
                            "(GTD's CSV exports are latin-1)") from None
    except OSError as error:
        written = f" or write {out}" if out is not None else ""
        raise EventFileError(f"cannot read {source}{written}: {error.strerror or error}") from None


@dataclass
class Stream:
    """An event file being joined: its header, layout, the joined rows (an iterator: read once, in
    chunks) and the Summary, complete once the rows are exhausted."""

    header: list[str]  # as given
    index: dict[str, int]  # lower-case column name -> position
    layout: Layout
    summary: Summary
    rows: Iterator[Joined]

    def cell(self, joined: Joined, name: str | None) -> str:
        return joined.row.cells[self.index[name]].strip() if name in self.index else ""


def stream(locator: lookup.Locator, reader, source: Path, chunk: int = CHUNK) -> Stream:
    """Start joining the rows of ``reader`` (a csv reader at the header); EventFileError for a header
    of no known layout, or one that already has the joined columns."""
    header = next(reader, None)
    if not header:
        raise EventFileError(f"{source} is empty: the first line must be a header")
    names = [h.strip().lower() for h in header]
    try:
        layout = detect(names)
    except EventFileError as error:
        raise EventFileError(f"{source}: {error}") from None
    taken = sorted(set(COLUMNS) & set(names))
    if taken:
        raise EventFileError(f"{source} already has the column(s) {', '.join(taken)} that the join adds "
                             "(is it a joined file?)")
    index = {name: i for i, name in enumerate(names)}
    summary = Summary(layout=layout.name, source=Path(source).name)
    rows = _joined(Joiner(locator), layout, index, reader, len(header), source, chunk, summary)
    return Stream(header, index, layout, summary, rows)


def _joined(joiner: Joiner, layout: Layout, index: dict[str, int], reader, width: int, source: Path, chunk: int,
            summary: Summary) -> Iterator[Joined]:
    try:
        for records in _chunks(_rows(reader, width), chunk):
            rows = [_prepare(joiner, layout, index, line, cells) for line, cells in records]
            yield from joiner.joined(rows, summary)
            summary.rows += len(rows)
    except csv.Error as error:  # a NUL byte, an unclosed quote over a huge field
        raise EventFileError(f"{source}:{reader.line_num}: not readable as CSV: {error}") from None
    summary.geonames = joiner.geonames


def join(locator: lookup.Locator, source: Path, out: Path, chunk: int = CHUNK, encoding: str = "utf-8-sig") -> Summary:
    """Write ``source`` to ``out`` (atomically) with ``COLUMNS`` added to every row; the Summary says
    how many rows were placed how, and which lines were flagged. EventFileError for a file that cannot
    be read or written as a whole (nothing is written then)."""
    with reading(source, encoding, out) as reader, atomic.staged_file(out) as staged, \
            staged.open("w", newline="", encoding="utf-8") as target:
        joined = stream(locator, reader, source, chunk)
        writer = csv.writer(target)
        writer.writerow([*joined.header, *COLUMNS])
        writer.writerows([*j.row.cells, *j.values] for j in joined.rows)
        return joined.summary


# --- reports: monthly counts per unit, and a chart ---------------------------------------------

MONTHLY_COLUMNS = ("level", "unit", "month", "events", "fatalities")
LEVELS = ("zone", "wilayah", "district")
NO_UNIT = "no claimed unit"  # the zone row of events placed on their day in no claimed unit
NO_UNIT_COLOUR = style.CIVIL_STYLES["districts"]["stroke"]


def month_of(start: str, end: str) -> str | None:
    """The month of a row's days, when they fall in one month (a GTD day 0 does): what counts per month."""
    return start[:7] if start and start[:7] == end[:7] else None


def _month(layout: Layout, row: dict) -> str | None:
    try:
        return month_of(*days(layout, lambda name: (row.get(name) or "").strip()))
    except DateError:
        return None


def number(text: str) -> int:
    """A count cell (fatalities) as a whole number; empty, negative or unreadable: 0."""
    try:
        value = float(text)
    except ValueError:
        return 0
    return int(value) if math.isfinite(value) and value > 0 else 0


def aggregate(rows: Iterable[dict], layout: Layout) -> dict[str, dict[tuple[str, str], list[int]]]:
    """Events and fatalities per (unit, month) for each level of ``LEVELS``, from joined rows (dicts with
    lower-case keys). A row counts in each unit it fell in on its day (wilayahs: by their label, e.g.
    "Zhob (possible extension)"); flagged rows count nowhere. The zone level has a row for
    events placed in no claimed unit (``NO_UNIT``), so that each month's zone rows sum to its events."""
    table: dict[str, dict[tuple[str, str], list[int]]] = {level: {} for level in LEVELS}

    def add(level: str, unit: str, month: str, fatalities: int) -> None:
        counts = table[level].setdefault((unit, month), [0, 0])
        counts[0] += 1
        counts[1] += fatalities

    for row in rows:
        month = _month(layout, row)
        if row["placement"] not in PLACED or month is None:
            continue
        fatalities = number(row.get(layout.fatalities) or "") if layout.fatalities else 0
        add("district", row["district"], month, fatalities)
        labels = row["wilayah_label"].split(SEPARATOR) if row["wilayah_label"] else []
        for label in labels:
            add("wilayah", label, month, fatalities)
        add("zone", style.ZONE_LABELS.get(row["zone"] or None, style.ZONE_LABELS[None]) if labels else NO_UNIT, month,
            fatalities)
    return table


def monthly_rows(table: dict[str, dict[tuple[str, str], list[int]]]) -> Iterator[list]:
    for level in LEVELS:
        for (unit, month), (count, fatalities) in sorted(table[level].items(), key=lambda kv: (kv[0][1], kv[0][0])):
            yield [level, unit, month, count, fatalities]


def months_between(first: str, last: str) -> list[str]:
    """Every "YYYY-MM" from ``first`` to ``last``, both included."""
    months, (year, month) = [], (int(first[:4]), int(first[5:7]))
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def chart(table: dict[str, dict[tuple[str, str], list[int]]], title: str, credits: list[str]) -> Figure:
    """Events and fatalities per month, stacked by the claimed zone they fell in (zone colours of
    ``layers.style``; grey: in no claimed unit that day), with the caveat and the credits."""
    zones = table["zone"]
    order = [*(style.ZONE_LABELS[z] for z in ("north", "south", None)), NO_UNIT]
    colours = {**{style.ZONE_LABELS[z]: c for z, c in style.ZONE_COLOURS.items()}, NO_UNIT: NO_UNIT_COLOUR}
    labels = {**{style.ZONE_LABELS[z]: f"in a unit of the {style.ZONE_LABELS[z]}" for z in ("north", "south")},
              style.ZONE_LABELS[None]: f"in a unit, {style.ZONE_LABELS[None].lower()}", NO_UNIT: f"in {NO_UNIT}"}
    seen = sorted({month for _, month in zones})
    months = months_between(seen[0], seen[-1]) if seen else []
    figure = Figure(figsize=(11, 7), dpi=100, facecolor="white")
    grid = figure.add_gridspec(2, 1, left=0.07, right=0.78, top=0.86, bottom=0.2, hspace=0.12)
    x = np.arange(len(months))
    for row, (what, column) in enumerate((("Events", 0), ("Fatalities", 1))):
        axes = figure.add_subplot(grid[row])
        bottom = np.zeros(len(months))
        for zone in order:
            heights = np.array([zones.get((zone, m), [0, 0])[column] for m in months], dtype=float)
            if heights.any():
                axes.bar(x, heights, bottom=bottom, width=0.8, color=colours[zone], label=labels[zone],
                         edgecolor="white", linewidth=0.3)
                bottom += heights
        axes.set_ylabel(f"{what} per month", color=style.INK)
        axes.set_xlim(-0.6, max(len(months), 1) - 0.4)
        axes.spines[["top", "right"]].set_visible(False)
        axes.tick_params(colors=style.INK, labelsize=8)
        step = max(1, len(months) // 24)
        axes.set_xticks(x[::step], months[::step] if row == 1 else [], rotation=90)
        if row == 0:
            axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9,
                        title="Where the event fell,\non its own day", title_fontsize=9)
    figure.text(0.07, 0.95, title, fontsize=14, fontweight="bold", color=style.INK, va="top")
    figure.text(0.07, 0.905, "Events of the user's file joined to the TTP's claimed units (wilayahs) valid on "
                "each event's day, stacked by zone", fontsize=9.5, color=style.INK, va="top")
    footer = [catalogue.CAVEAT, "Credits: " + "; ".join(credits)]
    figure.text(0.07, 0.03, "\n".join(textwrap.fill(t, 170) for t in footer), fontsize=7, color=style.INK,
                va="bottom")
    return figure


def figure_bytes(figure: Figure, fmt: str) -> bytes:
    with io.BytesIO() as buffer, matplotlib.rc_context(RC):
        FigureCanvasAgg(figure)
        figure.savefig(buffer, format=fmt, dpi=150 if fmt == "png" else 72, metadata={"Creator": "ttp-atlas"}
                       if fmt == "png" else None)
        return buffer.getvalue()


def report(locator: lookup.Locator, source: Path, out: Path, encoding: str = "utf-8-sig") -> Summary:
    """Write into the folder ``out`` (replaced whole): ``joined.csv``, ``monthly.csv`` (``MONTHLY_COLUMNS``
    per zone, wilayah and district) and ``chart.png``/``chart.svg``."""
    try:
        with atomic.staged_dir(out) as folder:
            summary = join(locator, source, folder / "joined.csv", encoding=encoding)
            layout = next(layout for layout in LAYOUTS if layout.name == summary.layout)
            with (folder / "joined.csv").open(newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                names = [h.strip().lower() for h in next(reader)]
                table = aggregate((dict(zip(names, cells, strict=False)) for cells in reader), layout)
            with (folder / "monthly.csv").open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(MONTHLY_COLUMNS)
                writer.writerows(monthly_rows(table))
            credits = [*locator.atlas.attribution([*lookup.CIVIL.values(), "wilayahs"]), *summary.credits]
            figure = chart(table, f"Events per month: {Path(source).name}", credits)
            for fmt in ("png", "svg"):
                (folder / f"chart.{fmt}").write_bytes(figure_bytes(figure, fmt))
    except OSError as error:
        raise EventFileError(f"cannot write {out}: {error.strerror or error}") from None
    return summary
