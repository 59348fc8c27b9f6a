"""Byte-budgeted process caches and the environment settings that size them.

An entry count bounds nothing when entries range from 100 bytes to 100 MB; a byte budget does. Pure
Python with no web or map knowledge, so every layer of the service (tiles, pages, exports) shares it.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable

MIB = 1024 * 1024
PROCESS_CACHE_ENV = "TTP_ATLAS_CACHE_MB"
# What every cache of one process may hold together. Each cache's own budget bounds it alone, but a
# worker holds several (pages, gzip bodies, map pages, exports, tiles) whose budgets add up to over
# 300 MiB, and a server runs 2 x CPUs + 1 workers, each with its own caches.
PROCESS_CACHE_MIB = 96


class ConfigError(ValueError):
    """A bad setting in the environment; the message names the variable and what is valid."""


def number_from_env(variable: str, default: int, valid: str = "a whole number") -> int:
    raw = os.environ.get(variable, "").strip() or str(default)
    if not re.fullmatch(r"[0-9]{1,7}", raw, re.ASCII):
        raise ConfigError(f"{variable}={raw!r} is invalid: {valid}")
    return int(raw)


def budget_from_env(variable: str, default_mib: int) -> int:
    """A cache budget in bytes from ``variable`` (MiB, a non-negative integer; 0 disables the cache)."""
    return number_from_env(variable, default_mib, "a whole number of MiB (0 disables the cache)") * MIB


class SharedBudget:
    """Bytes that several caches may hold together: over it, the least recently used entry of any of
    them goes, so one busy cache can use what the idle ones do not."""

    def __init__(self, budget: int):
        self.budget, self.used = budget, 0
        self.caches: weakref.WeakSet[ByteCache] = weakref.WeakSet()

    def _settle(self) -> None:
        """Evict least recently used entries, across caches, until within the budget (under _LOCK)."""
        while self.used > self.budget and (holding := [c for c in self.caches if c._entries]):
            min(holding, key=ByteCache._oldest_stamp)._evict_oldest()


_LOCK = threading.Lock()  # one lock for every cache: an entry made in one may evict from another
_CLOCK = itertools.count()  # stamps of use, comparable across caches
_PROCESS: list[SharedBudget] = []


def process_budget() -> SharedBudget:
    """The budget every cache of this process shares (``TTP_ATLAS_CACHE_MB``), read on first use."""
    with _LOCK:
        if not _PROCESS:
            _PROCESS.append(SharedBudget(budget_from_env(PROCESS_CACHE_ENV, PROCESS_CACHE_MIB)))
        return _PROCESS[0]


def _release(shared: SharedBudget, held: list[int]) -> None:
    """A cache was dropped: its bytes no longer count against the shared budget."""
    with _LOCK:
        shared.used -= held[0]


class ByteCache:
    """A thread-safe LRU cache bounded by the bytes it holds, not by its entry count.

    An entry count bounds nothing when entries range from 100 bytes to 100 MB; the budget does.
    An entry larger than the whole budget is computed and returned but not kept. Every cache also
    counts against a budget shared with others (by default the process's, ``TTP_ATLAS_CACHE_MB``).
    """

    def __init__(self, budget: int, size: Callable[[object], int] = len, shared: SharedBudget | None = None):
        self.budget, self.size = budget, size
        self.shared = process_budget() if shared is None else shared
        self._entries: OrderedDict[Hashable, tuple[object, int, int]] = OrderedDict()  # value, bytes, stamp
        self._held = [0]  # bytes held, in a list the finaliser can read once the cache is gone
        with _LOCK:
            self.shared.caches.add(self)
        weakref.finalize(self, _release, self.shared, self._held)

    @property
    def used(self) -> int:
        return self._held[0]

    def get_or_make(self, key: Hashable, make: Callable[[], object]):
        with _LOCK:
            if key in self._entries:
                value, cost, _ = self._entries.pop(key)
                self._entries[key] = (value, cost, next(_CLOCK))
                return value
        value = make()  # outside the lock: one slow entry must not hold up the others
        cost = self.size(value)
        with _LOCK:
            if cost <= min(self.budget, self.shared.budget) and key not in self._entries:
                self._entries[key] = (value, cost, next(_CLOCK))
                self._held[0] += cost
                self.shared.used += cost
                while self.used > self.budget:
                    self._evict_oldest()
                self.shared._settle()
        return value

    def _oldest_stamp(self) -> int:
        return next(iter(self._entries.values()))[2]

    def _evict_oldest(self) -> None:
        cost = self._entries.popitem(last=False)[1][1]
        self._held[0] -= cost
        self.shared.used -= cost

    def __len__(self) -> int:
        return len(self._entries)
