"""A small event file in ACLED's documented export columns, generated for the event-map and export tests.

July 2023: 6 events in Peshawar (2 fatalities each), 3 in Bannu (1 each), 1 in Zhob (4); May 2023: 2 in
Peshawar and 1 in Quetta (then in no claimed unit); none in August; September: 4 in Dera Ismail Khan.
"""

from __future__ import annotations

import csv
from pathlib import Path

HEADER = ("event_date", "latitude", "longitude", "admin1", "admin2", "location", "actor1", "fatalities")
PLACES = {"Peshawar": (71.58, 34.01, "Khyber Pakhtunkhwa"), "Bannu": (70.60, 32.99, "Khyber Pakhtunkhwa"),
          "Zhob": (69.45, 31.34, "Balochistan"), "Quetta": (67.00, 30.18, "Balochistan"),
          "Dera Ismail Khan": (70.90, 31.83, "Khyber Pakhtunkhwa")}
EVENTS = (("2023-05-10", "Peshawar", 2, 0), ("2023-05-21", "Quetta", 1, 3), ("2023-07-03", "Peshawar", 6, 2),
          ("2023-07-09", "Bannu", 3, 1), ("2023-07-15", "Zhob", 1, 4), ("2023-09-02", "Dera Ismail Khan", 4, 0))
# What the file holds per (wilayah feature, month): events, fatalities.
COUNTS = {("peshawar-2022-12-31-core", "2023-05"): (2, 0), ("peshawar-2022-12-31-core", "2023-07"): (6, 12),
          ("bannu-2022-12-31-core", "2023-07"): (3, 3), ("zhob-2023-06-14-core", "2023-07"): (1, 4),
          ("dera-ismail-khan-2022-12-31-core", "2023-09"): (4, 0)}
LARGEST = 6
MONTHS = ("2023-05", "2023-06", "2023-07", "2023-08", "2023-09")


def write_acled(path: Path) -> Path:
    """The events above, one row each, spread by a few hundred metres around their place."""
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for day, place, count, fatalities in EVENTS:
            lon, lat, province = PLACES[place]
            for k in range(count):
                writer.writerow([day, f"{lat + 0.004 * k:.4f}", f"{lon + 0.004 * k:.4f}", province, place, place,
                                 "Tehrik-i-Taliban Pakistan", fatalities])
    return Path(path)
