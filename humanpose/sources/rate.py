"""The frame rate of a live source, measured from its frames' timestamps.

A stream's container or a camera driver states a frame rate (``FrameSource.fps``) that is often
not the rate the frames arrive at (an MJPEG stream says 25 and delivers 50; a camera says 30 and
delivers 15 in the dark).  Live sources stamp each frame with its arrival time
(``Frame.timestamp``, seconds since the source was opened), so the rate is measured from those.
"""
from __future__ import annotations

from collections import deque

import numpy as np

WINDOW = 30          # frame intervals the rate is the median of
MIN_INTERVALS = 5    # intervals before there is a measurement
ANNOUNCE_CHANGE = 0.03   # a new measurement is announced when it differs by this share
ANNOUNCE_EVERY_S = 2.0   # ... or this much source time after the last announcement


class FrameRate:
    """Frames per second of a live source: 1 / the median interval between the last ``window``
    frame timestamps (robust to a late frame or a burst of buffered ones)."""

    def __init__(self, window: int = WINDOW) -> None:
        self._stamps: deque = deque(maxlen=window + 1)
        self.fps: float | None = None
        self._announced: tuple[float, float] | None = None    # (fps, timestamp) last announced

    def add(self, timestamp: float) -> float | None:
        """Count a frame stamped ``timestamp`` (seconds); returns the measured rate when it is
        worth announcing (the first measurement, a change over ANNOUNCE_CHANGE, or
        ANNOUNCE_EVERY_S after the last one), else None."""
        if self._stamps and timestamp <= self._stamps[-1]:
            return None                     # a repeated or out-of-order stamp says nothing
        self._stamps.append(float(timestamp))
        if len(self._stamps) <= MIN_INTERVALS:
            return None
        interval = float(np.median(np.diff(np.asarray(self._stamps))))
        self.fps = 1.0 / interval
        last = self._announced
        if last is None or abs(self.fps - last[0]) > ANNOUNCE_CHANGE * last[0] \
                or timestamp - last[1] >= ANNOUNCE_EVERY_S:
            self._announced = (self.fps, timestamp)
            return self.fps
        return None
