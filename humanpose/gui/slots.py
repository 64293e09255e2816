"""Thread-safe hand-over between the workers (no Qt): a latest-frame slot and the result cache.

:class:`FrameSlot` holds at most one item.  A producer that puts a new item while the previous one
was not taken overwrites it and counts a dropped frame, so a slow consumer always gets the newest
frame and memory never grows.  :class:`ResultCache` keeps one estimate per frame index of a video
file, so seeking back shows the same pose without recomputing; the belief maps of old entries are
dropped once they exceed a byte budget (the joints are always kept, for plots and export).  Of a
live source it keeps a rolling window: the results of the newest ``LIVE_SECONDS`` of the stream
(at most ``LIVE_FRAMES``), within ``max_bytes`` (measured, maps included: the maps of old results
go first, then the oldest results), with the maps of the newest few only.
"""
from __future__ import annotations

import dataclasses
import sys
import threading
from collections import OrderedDict
from typing import Any

import numpy as np


class FrameSlot:
    """A lock-protected single slot: ``put`` overwrites, ``take`` empties, ``peek`` does not."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._full = False
        self.seq = 0          # number of puts so far (tells a reader whether something is new)
        self.dropped = 0      # items overwritten before anybody took them

    def put(self, item: Any) -> None:
        with self._cond:
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            self.seq += 1
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> Any:
        """The item (emptying the slot), or None after ``timeout`` seconds without one."""
        with self._cond:
            if not self._full and not self._cond.wait_for(lambda: self._full, timeout):
                return None
            item, self._item, self._full = self._item, None, False
            self._cond.notify_all()
            return item

    def peek(self) -> tuple[int, Any]:
        """(seq, item) without emptying; item stays None until the first put."""
        with self._cond:
            return self.seq, self._item

    def wait_empty(self, timeout: float) -> bool:
        """Wait until a consumer took the item; True if the slot is empty."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._full, timeout)

    def clear(self) -> None:
        with self._cond:
            self._item, self._full = None, False
            self._cond.notify_all()

    @property
    def full(self) -> bool:
        with self._cond:
            return self._full


def _maps_nbytes(result) -> int:
    n = 0 if result.person_map is None else result.person_map.nbytes
    for p in result.persons:
        for a in (p.stage_maps, p.crop):
            n += 0 if a is None else a.nbytes
    return n


def _deep_size(obj, seen: set) -> int:
    """Bytes ``obj`` keeps alive: the objects themselves (sys.getsizeof), their attributes and
    items, and the data of numpy arrays (a view counts its base once).  Shared objects (names,
    small numbers, None) count nothing; an instance's attributes count as inline values (8
    bytes each), the way CPython >= 3.11 keeps a dataclass's attributes."""
    if obj is None or isinstance(obj, (str, bool)) or id(obj) in seen or \
            (type(obj) is int and -5 <= obj <= 256):
        return 0
    seen.add(id(obj))
    n = sys.getsizeof(obj)
    if isinstance(obj, np.ndarray):
        if obj.base is not None:       # a view: the header here, the data with its base
            n += _deep_size(obj.base, seen)
        return n
    if isinstance(obj, dict):
        n += sum(_deep_size(v, seen) for v in obj.values())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        n += sum(_deep_size(v, seen) for v in obj)
    elif hasattr(obj, "__dict__"):
        attrs = vars(obj)
        n += 8 * len(attrs) + sum(_deep_size(v, seen) for v in attrs.values())
    return n


def result_nbytes(result) -> int:
    """The memory a cached PoseResult takes, maps and crops included (about 5 kB without maps
    and 0.5 MB with them for 3 persons at boxsize 192)."""
    return _deep_size(result, set())


def strip_maps(result):
    """A copy of a result without the (large) belief maps and crops; the joints stay.

    A copy, not an in-place change: the GUI thread may be drawing the original right now."""
    persons = [dataclasses.replace(p, stage_maps=None, crop=None) for p in result.persons]
    return dataclasses.replace(result, person_map=None, persons=persons)


MAPS_BUDGET = 256 << 20      # maps kept of a video file's results (seeking back shows them)
# A live source (a webcam or stream left running for hours) keeps a rolling window: what the plot
# shows and an export writes.  A cache that keeps growing, even within a byte bound, grows the
# process by about 4 times its own measured bytes (the small long-lived joints between the freed
# maps fragment the heap), so the window is short and turns over within minutes.
LIVE_SECONDS = 120.0         # a live source's results: of its newest two minutes ...
LIVE_FRAMES = 3600           # ... at most this many (two minutes at 30 estimates per second)
LIVE_BYTES = 64 << 20        # ... within this many bytes, maps included (measured)
LIVE_MAPS_BYTES = 8 << 20    # a live source's maps: of the newest results only (no seeking back)


class ResultCache:
    """frame index -> PoseResult for one source and one set of estimator settings.

    The belief maps of the least recently used entries are stripped beyond ``budget`` bytes of
    maps.  ``max_bytes`` (a live source: a webcam left running for hours must not fill the
    memory) bounds everything the cache holds, measured by :func:`result_nbytes`: over it, the
    maps of the oldest entries go first, then the oldest entries themselves.  ``max_entries``
    bounds the count too, and ``max_age`` the span of timestamps (seconds before the newest
    result's), when set."""

    def __init__(self, maps_budget_bytes: int = MAPS_BUDGET, max_bytes: int | None = None) -> None:
        self._lock = threading.Lock()
        self._results: dict[int, Any] = {}   # in the order first put
        self.max_entries: int | None = None  # keep only the newest this many
        self.max_age: float | None = None    # keep only those this many seconds before the newest
        self.max_bytes = max_bytes           # keep only the newest within this many bytes
        self._with_maps: OrderedDict[int, int] = OrderedDict()  # index -> bytes, oldest first
        self._maps_bytes = 0
        self._sizes: dict[int, int] = {}     # index -> bytes of the entry (maps included)
        self._bytes = 0
        self.budget = maps_budget_bytes
        self.version = 0      # bumped on every change (plots redraw when it moves)

    def set_live(self, live: bool) -> None:
        """The bounds of a live source's cache (a rolling window: ``LIVE_SECONDS``, at most
        ``LIVE_FRAMES`` results and ``LIVE_BYTES`` in all, ``LIVE_MAPS_BYTES`` of maps) or of a
        video file's (``MAPS_BUDGET`` of maps; one result per frame, all kept)."""
        with self._lock:
            self.max_bytes = LIVE_BYTES if live else None
            self.max_entries = LIVE_FRAMES if live else None
            self.max_age = LIVE_SECONDS if live else None
            self.budget = LIVE_MAPS_BYTES if live else MAPS_BUDGET

    def get(self, index: int):
        with self._lock:
            result = self._results.get(index)
            if result is not None and index in self._with_maps:
                self._with_maps.move_to_end(index)
            return result

    def put(self, result) -> None:
        with self._lock:
            index = result.frame_index
            self._drop(index)
            self._results[index] = result
            self._sizes[index] = size = result_nbytes(result)
            self._bytes += size
            nbytes = _maps_nbytes(result)
            if nbytes:
                self._with_maps[index] = nbytes
                self._maps_bytes += nbytes
            while self._maps_bytes > self.budget and len(self._with_maps) > 1:
                self._strip(next(iter(self._with_maps)))
            if self.max_bytes is not None:
                while self._bytes > self.max_bytes and len(self._results) > 1:
                    oldest_maps = next(iter(self._with_maps), index)
                    if oldest_maps != index:          # maps go before joints
                        self._strip(oldest_maps)
                    else:
                        self._drop(next(iter(self._results)))
            while self.max_entries is not None and len(self._results) > self.max_entries:
                self._drop(next(iter(self._results)))   # the first put: the oldest frame
            if self.max_age is not None:                # a live source: in the order of time
                oldest = result.timestamp - self.max_age
                while len(self._results) > 1:
                    first = next(iter(self._results))
                    if self._results[first].timestamp >= oldest:
                        break
                    self._drop(first)
            self.version += 1

    def _strip(self, index: int) -> None:
        stripped = strip_maps(self._results[index])
        self._results[index] = stripped
        self._forget_maps(index)
        size = result_nbytes(stripped)
        self._bytes += size - self._sizes[index]
        self._sizes[index] = size

    def _drop(self, index: int) -> None:
        if self._results.pop(index, None) is not None:
            self._bytes -= self._sizes.pop(index)
        self._forget_maps(index)

    def _forget_maps(self, index: int) -> None:
        nbytes = self._with_maps.pop(index, 0)
        self._maps_bytes -= nbytes

    def clear(self) -> None:
        with self._lock:
            self._results.clear()
            self._with_maps.clear()
            self._maps_bytes = 0
            self._sizes.clear()
            self._bytes = 0
            self.version += 1

    @property
    def span(self) -> float:
        """Seconds from the oldest result kept to the newest (0 with fewer than two)."""
        with self._lock:
            if len(self._results) < 2:
                return 0.0
            return self._results[next(reversed(self._results))].timestamp - \
                self._results[next(iter(self._results))].timestamp

    def __contains__(self, index: int) -> bool:
        with self._lock:
            return index in self._results

    def __len__(self) -> int:
        with self._lock:
            return len(self._results)

    def items(self) -> list[tuple[int, Any]]:
        """(index, result) sorted by frame index (a snapshot)."""
        with self._lock:
            return sorted(self._results.items())

    @property
    def maps_bytes(self) -> int:
        with self._lock:
            return self._maps_bytes

    @property
    def nbytes(self) -> int:
        """Bytes of everything cached (maps included), as :func:`result_nbytes` measures."""
        with self._lock:
            return self._bytes
