"""Byte-budgeted process caches and the environment settings that size them.

An entry count bounds nothing when entries range from 100 bytes to 100 MB; a byte budget does. Pure
Python with no web or map knowledge, so every layer of the service (tiles, pages, exports) shares it.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

MIB = 1024 * 1024


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


class ByteCache:
    """A thread-safe LRU cache bounded by the bytes it holds, not by its entry count.

    An entry count bounds nothing when entries range from 100 bytes to 100 MB; the budget does.
    An entry larger than the whole budget is computed and returned but not kept.
    """

    def __init__(self, budget: int, size: Callable[[object], int] = len):
        self.budget, self.size, self.used = budget, size, 0
        self._entries: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: Hashable, make: Callable[[], object]):
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
        value = make()  # outside the lock: one slow entry must not hold up the others
        cost = self.size(value)
        with self._lock:
            if cost <= self.budget and key not in self._entries:
                self._entries[key] = (value, cost)
                self.used += cost
                while self.used > self.budget:
                    self.used -= self._entries.popitem(last=False)[1][1]
        return value

    def __len__(self) -> int:
        return len(self._entries)
