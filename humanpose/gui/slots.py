"""Thread-safe hand-over between the workers (no Qt): a latest-frame slot and the result cache.

:class:`FrameSlot` holds at most one item.  A producer that puts a new item while the previous one
was not taken overwrites it and counts a dropped frame, so a slow consumer always gets the newest
frame and memory never grows.  :class:`ResultCache` keeps one estimate per frame index of a video
file, so seeking back shows the same pose without recomputing; the belief maps of old entries are
dropped once they exceed a byte budget (the joints are always kept, for plots and export).
"""
from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from typing import Any


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


def strip_maps(result):
    """A copy of a result without the (large) belief maps and crops; the joints stay.

    A copy, not an in-place change: the GUI thread may be drawing the original right now."""
    persons = [dataclasses.replace(p, stage_maps=None, crop=None) for p in result.persons]
    return dataclasses.replace(result, person_map=None, persons=persons)


class ResultCache:
    """frame index -> PoseResult for one source and one set of estimator settings (of a live
    source only the newest ``max_entries``: a webcam left running for hours must not fill the
    memory)."""

    def __init__(self, maps_budget_bytes: int = 256 << 20) -> None:
        self._lock = threading.Lock()
        self._results: dict[int, Any] = {}   # in the order first put
        self.max_entries: int | None = None  # keep only the newest this many (a live source)
        self._with_maps: OrderedDict[int, int] = OrderedDict()  # index -> bytes, oldest first
        self._maps_bytes = 0
        self.budget = maps_budget_bytes
        self.version = 0      # bumped on every change (plots redraw when it moves)

    def get(self, index: int):
        with self._lock:
            result = self._results.get(index)
            if result is not None and index in self._with_maps:
                self._with_maps.move_to_end(index)
            return result

    def put(self, result) -> None:
        with self._lock:
            index = result.frame_index
            self._forget_maps(index)
            self._results[index] = result
            nbytes = _maps_nbytes(result)
            if nbytes:
                self._with_maps[index] = nbytes
                self._maps_bytes += nbytes
            while self._maps_bytes > self.budget and len(self._with_maps) > 1:
                old, _ = next(iter(self._with_maps.items()))
                self._results[old] = strip_maps(self._results[old])
                self._forget_maps(old)
            while self.max_entries is not None and len(self._results) > self.max_entries:
                old = next(iter(self._results))          # the first put: the oldest frame
                del self._results[old]
                self._forget_maps(old)
            self.version += 1

    def _forget_maps(self, index: int) -> None:
        nbytes = self._with_maps.pop(index, 0)
        self._maps_bytes -= nbytes

    def clear(self) -> None:
        with self._lock:
            self._results.clear()
            self._with_maps.clear()
            self._maps_bytes = 0
            self.version += 1

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
