"""One bounded, thread-safe cache for every place that keeps recent results (the labs, LPIPS references, the CT
operators, the restorations): least recently used first out, at most ``size`` entries, safe to share between the
sessions of one server. A value is computed outside the lock (``get_or_compute``), so a slow computation never holds
up readers of other keys; two callers may then compute the same key once each, and the later one's value is kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING = object()


class BoundedCache(Generic[K, V]):
    """A least-recently-used mapping of at most ``size`` entries; ``on_evict(key, value)`` hears of each one dropped
    to make room (a file to delete, say)."""

    def __init__(self, size: int, on_evict: Callable[[K, V], None] | None = None):
        if size < 1:
            raise ValueError(f"a cache holds at least one entry, got size {size}")
        self.size = int(size)
        self._on_evict = on_evict
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value of ``key`` (now the most recent), or ``default``."""
        with self._lock:
            if key not in self._entries:
                return default
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key: K, value: V) -> V:
        """Keep ``value`` under ``key`` as the most recent; the oldest entries beyond ``size`` go. Returns ``value``."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            evicted = [self._entries.popitem(last=False) for _ in range(len(self._entries) - self.size)]
        if self._on_evict is not None:
            for old_key, old_value in evicted:  # outside the lock: a callback may be slow or use the cache
                self._on_evict(old_key, old_value)
        return value

    def get_or_compute(self, key: K, compute: Callable[[], V]) -> V:
        """The value of ``key``, computed by ``compute()`` (outside the lock) and kept when it is missing."""
        value = self.get(key, _MISSING)  # type: ignore[arg-type]
        if value is _MISSING:
            value = self.put(key, compute())
        return value  # type: ignore[return-value]

    def pop(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            return self._entries.pop(key, default)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def keys(self) -> list[K]:
        """The keys, oldest first (a copy)."""
        with self._lock:
            return list(self._entries)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[K]:
        return iter(self.keys())
