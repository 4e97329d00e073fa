"""Small in-process caches of what many requests read alike (R9.2; docs/capacity.md).

A ``TimedCache`` keeps at most ``max_entries`` values, each for the lifetime the caller gives when
reading it, measured by the application's clock (so tests travel in time with it). It is bounded
(least recently used first out) and safe to share between the threads of a gthread worker; its
values must be immutable and must never hold a personal value or an ORM row.

There is no invalidation between processes: a value is as stale as its lifetime at most, and each
caller documents why that is safe for what it keeps.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from flask import current_app

from . import dates


def _app_seconds() -> float:
    return dates.now().timestamp()


class TimedCache:
    def __init__(self, max_entries: int, clock: Callable[[], float] = _app_seconds):
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, lifetime: float, make: Callable[[], Any]) -> Any:
        """The value kept for ``key`` if younger than ``lifetime`` seconds, else ``make()`` (kept
        unless ``lifetime`` is 0). ``make`` runs outside the lock: two threads may both make a
        missing value, the later one is kept."""
        if lifetime <= 0:
            return make()
        now = self.clock()
        with self._lock:
            found = self._entries.get(key)
            # A clock set back (or a test travelling back) never makes a value live longer.
            if found is not None and 0 <= now - found[0] < lifetime:
                self._entries.move_to_end(key)
                return found[1]
        value = make()
        with self._lock:
            self._entries[key] = (now, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value

    def forget(self, key: Hashable) -> None:
        """Drop the value kept for ``key`` (this process changed what it was made from)."""
        with self._lock:
            self._entries.pop(key, None)

    def items(self) -> list[tuple[Hashable, Any]]:
        with self._lock:
            return [(key, value) for key, (_, value) in self._entries.items()]

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def of_app(name: str, max_entries: int) -> TimedCache:
    """The current app's cache called ``name``, made on first use: one per app and worker process
    (apps built side by side, as in tests, never share one)."""
    caches: dict[str, TimedCache] = current_app.extensions.setdefault("madoguchi.caches", {})
    found = caches.get(name)
    if found is None:
        found = caches.setdefault(name, TimedCache(max_entries))
    return found
