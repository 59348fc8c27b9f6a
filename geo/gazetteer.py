"""Resolve place names written many ways (``D. I. Khan``, ``Kohistan Upper``) to one key.

A gazetteer is plain data: key -> the names it is known by. Names compare by their set of
words, case- and punctuation-blind, so word order and dots do not matter; everything else
(``Dera Ismail Khan`` = ``D. I. Khan``) must be an explicit alias.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping


class PlaceNameError(LookupError):
    """A name that resolves to no key, or to more than one."""

    def __init__(self, name: str, reason: str, suggestions: list[str]):
        self.name, self.reason, self.suggestions = name, reason, suggestions
        hint = f"; closest valid names: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"{reason} name {name!r}{hint}")


def normalise(name: str) -> str:
    """Order-, case-, accent- and punctuation-blind form of a name: 'D. I. Khan' -> 'd i khan',
    'Peşawar' -> 'pesawar'; words in any script are kept ('پشاور' stays itself)."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(sorted(re.findall(r"[^\W_]+", plain)))


def index(names_by_key: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """Normalised name -> keys that carry it (more than one key means ambiguous)."""
    lookup: dict[str, set[str]] = defaultdict(set)
    for key, names in names_by_key.items():
        for name in names:
            if normalised := normalise(name):  # a name of punctuation alone names nothing
                lookup[normalised].add(key)
    return dict(lookup)


def candidates(name: str, lookup: Mapping[str, set[str]]) -> set[str]:
    """Every key carrying ``name`` (empty when unknown, several when ambiguous)."""
    normalised = normalise(name)
    return set(lookup.get(normalised, ())) if normalised else set()


def closest(name: str, display: Iterable[str], n: int = 3) -> list[str]:
    """The ``display`` names nearest to ``name`` in spelling, for "did you mean" hints."""
    return difflib.get_close_matches(name, sorted(set(display)), n=n, cutoff=0.5)


def resolve(name: str, lookup: Mapping[str, set[str]], display: Iterable[str]) -> str:
    """The one key for ``name``; PlaceNameError with the closest ``display`` names otherwise."""
    keys = candidates(name, lookup)
    if len(keys) == 1:
        return next(iter(keys))
    if keys:
        raise PlaceNameError(name, "ambiguous", sorted(keys))
    raise PlaceNameError(name, "unknown", closest(name, display))
