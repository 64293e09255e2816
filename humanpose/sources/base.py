"""The frame-source contract shared by videos, images, folders, cameras and streams.

Error policy (one rule for every source):

* a source that cannot be opened at all (missing file, unsupported type, corrupt video with no
  decodable frame, no camera at that index, unreachable stream, empty folder) raises
  :class:`SourceError` from :func:`humanpose.sources.open_source`;
* a source that stops delivering frames *midway* (a truncated video, a camera unplugged, a
  dropped stream) makes :meth:`FrameSource.read` return ``None`` - like a normal end - and sets
  :attr:`FrameSource.error` to a message saying what happened.  ``error`` stays ``None`` on a
  normal end, so callers check it after the loop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class SourceError(RuntimeError):
    """A frame source that cannot be opened (the message names it and says why)."""


@dataclass
class Frame:
    index: int              # position in the source (file frame number, folder position, or count)
    timestamp: float        # seconds: index / fps for files and folders, monotonic since open for live
    image: np.ndarray       # (h, w, 3) uint8 BGR
    name: str | None = None  # file name for images / folder entries, else None


class FrameSource:
    """Base class; subclasses implement ``_read`` and, when seekable, ``_seek``."""

    name: str = ""
    fps: float | None = None
    frame_count: int | None = None
    seekable: bool = False
    is_live: bool = False
    size: tuple[int, int] = (0, 0)   # (width, height)
    interrupted: bool = False        # interrupt() was called: reads end at once

    def __init__(self) -> None:
        self.error: str | None = None
        self.loop = False            # seekable sources restart at frame 0 at the end when True
        self._closed = False

    # -- public API ----------------------------------------------------------------------------
    def read(self) -> Frame | None:
        """The next frame, or ``None`` at the end (check :attr:`error` for an abnormal end)."""
        if self._closed:
            return None
        frame = self._read()
        if frame is None and self.loop and self.seekable and self.error is None:
            self.seek(0)
            frame = self._read()
        return frame

    def interrupt(self) -> None:
        """Ask a read that waits on a stalled live source to give up at once (safe to call from
        a signal handler): that read, and every later one, returns ``None`` like an end."""
        self.interrupted = True

    def seek(self, index: int) -> None:
        """Make the next :meth:`read` return frame ``index`` (clamped to the valid range)."""
        if not self.seekable:
            raise SourceError(f"{self.name}: a live source cannot seek")
        if self.frame_count:
            index = min(max(0, int(index)), self.frame_count - 1)
        self.error = None
        self._seek(max(0, int(index)))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self):
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name!r} {self.size[0]}x{self.size[1]} "
                f"fps={self.fps} frames={self.frame_count}>")

    # -- for subclasses ------------------------------------------------------------------------
    def _read(self) -> Frame | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _seek(self, index: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _close(self) -> None:
        pass
