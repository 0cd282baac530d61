"""A small thread-safe least-recently-used cache for compiled functions, per-model objects and pictures.

Every compiled TensorFlow function keeps its graphs alive as long as something refers to it.
Caches of them must be bounded: when an entry falls out, the cache drops its reference so
TensorFlow can free the graph. The panel's picture caches use the same bound (without the collection).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, MutableMapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING = object()


class KeyLocks:
    """One lock per key, made on first use and dropped when no thread holds or waits for it.

    For caches whose values take long to build: threads asking for the same key wait for the one
    building it (and then find it cached), while other keys are built at the same time.
    """

    def __init__(self) -> None:
        self._locks: dict[Hashable, list] = {}  # key -> [its lock, threads holding or waiting]
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def hold(self, key: Hashable) -> Iterator[None]:
        """Hold `key`'s lock for the block."""
        with self._guard:
            entry = self._locks.setdefault(key, [threading.RLock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if not entry[1]:
                    del self._locks[key]

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


class LRUCache(MutableMapping[K, V], Generic[K, V]):
    """At most `maxsize` entries; the least recently used one is dropped to make room.

    `collect`: run the garbage collector after an eviction (compiled graphs sit in reference cycles);
    caches of plain arrays pass False.
    """

    def __init__(self, maxsize: int, *, collect: bool = True) -> None:
        if int(maxsize) < 1:
            raise ValueError(f"maxsize must be >= 1; got {maxsize}.")
        self.maxsize = int(maxsize)
        self.collect = collect
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.RLock()
        self._building = KeyLocks()
        self.evictions = 0

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value for `key` (now the most recently used), or `default`."""
        with self._lock:
            value = self._data.get(key, _MISSING)
            if value is _MISSING:
                return default
            self._data.move_to_end(key)
            return value  # type: ignore[return-value]

    def put(self, key: K, value: V) -> None:
        """Store `value`, dropping the least recently used entries beyond `maxsize`."""
        dropped = 0
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
                dropped += 1
            self.evictions += dropped
        if dropped and self.collect:
            # A compiled function's graphs sit in reference cycles: collect now, while the cost is
            # small next to the compilation that caused the eviction, so dropped graphs really go.
            gc.collect()

    def building(self, key: K) -> contextlib.AbstractContextManager:
        """Hold `key` while its value is built: other threads building it wait, other keys go on."""
        return self._building.hold(key)

    def get_or_create(self, key: K, factory: Callable[[], V]) -> V:
        """The cached value, or `factory()` stored under `key` (built once even with several threads)."""
        value = self.get(key, _MISSING)  # type: ignore[arg-type]
        if value is not _MISSING:
            return value  # type: ignore[return-value]
        with self.building(key):
            value = self.get(key, _MISSING)  # type: ignore[arg-type]
            if value is _MISSING:
                value = factory()
                self.put(key, value)
            return value  # type: ignore[return-value]

    def __getitem__(self, key: K) -> V:
        """The value for `key` (now the most recently used); KeyError when absent."""
        value = self.get(key, _MISSING)  # type: ignore[arg-type]
        if value is _MISSING:
            raise KeyError(key)
        return value  # type: ignore[return-value]

    def __setitem__(self, key: K, value: V) -> None:
        self.put(key, value)

    def __delitem__(self, key: K) -> None:
        with self._lock:
            del self._data[key]

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._data.clear()

    def keys(self) -> list[K]:
        """Keys from least to most recently used (a copy)."""
        with self._lock:
            return list(self._data)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __iter__(self) -> Iterator[K]:
        return iter(self.keys())
