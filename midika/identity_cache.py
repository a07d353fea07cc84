"""Values worked out once per object and looked up by the object's identity.

Trials are frozen models that a registry replaces rather than changes, and routes live as long as
their routers: what is derived from one (a device → profile index, a catalog of names) can be kept
for as long as that very object is in use. Looking up by `id()` avoids hashing a whole model; each
entry holds its object, so the id cannot be reused by another object while the entry exists.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["IdentityCache"]

K = TypeVar("K")
V = TypeVar("V")


class IdentityCache(Generic[K, V]):
    """`build(obj)` for each object called with, computed once; at most `max_entries`, oldest out first."""

    def __init__(self, build: Callable[[K], V], *, max_entries: int) -> None:
        self._build = build
        self._max = max_entries
        self._entries: dict[int, tuple[K, V]] = {}
        self._lock = threading.Lock()

    def __call__(self, key: K) -> V:
        entry = self._entries.get(id(key))
        if entry is not None and entry[0] is key:
            return entry[1]
        value = self._build(key)
        with self._lock:
            while len(self._entries) >= self._max:
                del self._entries[next(iter(self._entries))]
            self._entries[id(key)] = (key, value)
        return value
