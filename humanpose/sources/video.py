"""Video files, network streams and cameras, all read through ``cv2.VideoCapture``."""
from __future__ import annotations

import queue
import re
import threading
import time

import cv2
import numpy as np

from .base import Frame, FrameSource, SourceError

STREAM_TIMEOUT_MS = 10000      # open / read timeout for network streams
CAMERA_FIRST_FRAME_TRIES = 20  # cameras may need a few reads before the first image arrives
INTERRUPT_POLL_S = 0.1         # how often a read waiting on a live stream looks at interrupt()


class _Reader(threading.Thread):
    """Reads a live stream's frames on request in its own thread, so a read that waits for a
    stalled stream (up to the read timeout) can be given up by :meth:`FrameSource.interrupt`
    (a signal) at once.  It releases the capture when told to stop, after the read in
    progress returns."""

    def __init__(self, cap) -> None:
        super().__init__(name="stream-reader", daemon=True)
        self.cap = cap
        self.requests: queue.Queue = queue.Queue()
        self.results: queue.Queue = queue.Queue()
        self.busy = False                       # a request whose result is not taken yet

    def run(self) -> None:
        try:
            while self.requests.get() is not None:
                try:
                    self.results.put(self.cap.read())
                except Exception:  # noqa: BLE001 - a failed read is the end of the stream
                    self.results.put((False, None))
        finally:
            self.cap.release()

    def read(self, source: "FrameSource"):
        """(ok, image) like VideoCapture.read, or (False, None) once ``source`` is interrupted."""
        if not self.busy:
            self.requests.put(True)
            self.busy = True
        while not source.interrupted:
            try:
                result = self.results.get(timeout=INTERRUPT_POLL_S)
            except queue.Empty:
                continue
            self.busy = False
            return result
        return False, None

    def stop(self) -> None:
        self.requests.put(None)


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Any decoded image -> contiguous (h, w, 3) uint8 BGR."""
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1.0, float(np.iinfo(image.dtype).max))
                                    if np.issubdtype(image.dtype, np.integer) else 255.0)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


def redact_url(url: str) -> str:
    """Hide credentials (``rtsp://user:pass@host`` -> ``rtsp://***@host``) for names and messages."""
    return re.sub(r"(://)[^/@]*@", r"\1***@", url)


class CaptureSource(FrameSource):
    """A video file or a network stream.

    A stream whose container reports a frame count (e.g. a video file served over HTTP) behaves
    like a file: seekable, timestamps ``index / fps``.  Otherwise it is live: not seekable,
    ``frame_count`` None, timestamps from ``time.monotonic()`` since the source was opened.
    """

    def __init__(self, target: str, name: str, is_url: bool = False) -> None:
        super().__init__()
        self.name = name
        if is_url:
            cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS])
            if not cap.isOpened():
                raise SourceError(f"cannot open stream {name}: unreachable, wrong address or "
                                  "unsupported protocol")
        else:
            cap = cv2.VideoCapture(target)
            if not cap.isOpened():
                raise SourceError(f"cannot open video {name}: not a video OpenCV can decode "
                                  "(corrupt, truncated or unsupported codec)")
        self._cap = cap
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        self.fps = fps if 0 < fps < 1000 else None
        self.frame_count = count if count > 0 else None
        self.is_live = is_url and self.frame_count is None
        self.seekable = not self.is_live and self.frame_count is not None
        self._t0 = time.monotonic()
        self._next = 0
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            what = "stream" if is_url else "video"
            raise SourceError(f"{what} {name} has no decodable frame (corrupt or empty)")
        self._pending: np.ndarray | None = as_bgr(image)
        self._pending_time = time.monotonic() - self._t0
        self.size = (self._pending.shape[1], self._pending.shape[0])
        self._reader: _Reader | None = None
        if self.is_live:                    # reads that a signal can cut short
            self._reader = _Reader(cap)
            self._reader.start()

    def _timestamp(self, index: int) -> float:
        if self.is_live:
            return time.monotonic() - self._t0
        if self.fps:
            return index / self.fps
        return float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0

    def _read(self) -> Frame | None:
        index = self._next
        if self._pending is not None:
            image, self._pending = self._pending, None
            stamp = self._pending_time if self.is_live else self._timestamp(index)
        else:
            if self.interrupted:
                return None
            ok, image = self._reader.read(self) if self._reader else self._cap.read()
            if self.interrupted:            # given up: an end the user asked for
                return None
            if not ok or image is None:
                if self.is_live:
                    self.error = (f"stream {self.name} stopped delivering frames after "
                                  f"{index} frame{'s' if index != 1 else ''}")
                elif self.frame_count and index < self.frame_count - 1:
                    self.error = (f"video {self.name} ended after {index} of {self.frame_count} "
                                  "frames (truncated or corrupt file)")
                return None
            image = as_bgr(image)
            stamp = self._timestamp(index)
        self._next = index + 1
        return Frame(index, stamp, image)

    def _seek(self, index: int) -> None:
        self._pending = None
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        self._next = index

    def _close(self) -> None:
        if self._reader is not None:        # releases the capture once its read returns
            self._reader.stop()
        else:
            self._cap.release()


class CameraSource(FrameSource):
    """A local camera by index; small driver buffer so frames are fresh (low latency)."""

    def __init__(self, index: int, width: int = 0, height: int = 0, fps: float = 30.0) -> None:
        super().__init__()
        self.name = f"camera {index}"
        self.is_live = True
        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            raise SourceError(f"no camera at index {index} (is it connected and not in use by "
                              "another program? on Linux see /dev/video*)")
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if width > 0 and height > 0:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps > 0:
            cap.set(cv2.CAP_PROP_FPS, fps)
        self._cap = cap
        self._t0 = time.monotonic()
        image = None
        for _ in range(CAMERA_FIRST_FRAME_TRIES):
            ok, image = cap.read()
            if ok and image is not None:
                break
            time.sleep(0.05)
        else:
            cap.release()
            raise SourceError(f"camera {index} opened but delivered no frame")
        self._pending: np.ndarray | None = as_bgr(image)
        self._pending_time = time.monotonic() - self._t0
        self.size = (self._pending.shape[1], self._pending.shape[0])
        got = float(cap.get(cv2.CAP_PROP_FPS))
        self.fps = got if 0 < got < 1000 else (fps or None)
        self._next = 0

    def _read(self) -> Frame | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
            stamp = self._pending_time
        else:
            ok, image = self._cap.read()
            if not ok or image is None:
                n = self._next
                self.error = (f"{self.name} stopped delivering frames after "
                              f"{n} frame{'s' if n != 1 else ''}")
                return None
            image = as_bgr(image)
            stamp = time.monotonic() - self._t0
        frame = Frame(self._next, stamp, image)
        self._next += 1
        return frame

    def _close(self) -> None:
        self._cap.release()

