"""The camera worker of the window, living in its own QThread.

:class:`CameraWorker` owns the frame source.  It reads frames, paces video files at their own
frame rate (times the playback speed; unpaced in analysis mode) and puts every frame into two
latest-frame slots: one the estimator takes from (:mod:`.estimator_worker`), one the GUI paints
from.  A slow estimator therefore never makes a queue grow; overwritten frames are counted as
dropped.

It runs a loop in its thread (started by ``QThread.started``); the GUI talks to it through
thread-safe request methods and it answers with Qt signals (queued to the GUI thread).
``stop()`` ends the loop within one poll interval (50 ms) plus the step in progress.
"""
from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from ..sources import Frame, ImageListSource, SourceError, open_source
from ..sources.rate import FrameRate
from .slots import FrameSlot

POLL_S = 0.05


@dataclass
class Captured:
    """A frame on its way through the threads."""
    frame: Frame
    captured: float          # time.perf_counter() when it was read
    generation: int          # which opened source it belongs to (stale frames are ignored)
    segment: int = 0         # which run of successive frames it belongs to (a seek starts a new one)


@dataclass
class SourceInfo:
    spec: str
    name: str
    fps: float | None
    frame_count: int | None
    seekable: bool
    is_live: bool
    size: tuple[int, int]
    generation: int
    images: bool = False     # a picture or a folder of pictures (opens paused)


class CameraWorker(QObject):
    opened = Signal(object)      # SourceInfo
    failed = Signal(str)         # could not open the source
    lost = Signal(str)           # the source stopped midway (truncated file, camera unplugged)
    ended = Signal(int, int)     # normal end of a file: last frame index, analysis run (0: none)
    position = Signal(int, float)   # index and timestamp (seconds) of the frame just read
    rate = Signal(float)         # a live source's frame rate, measured from its frames' timestamps
    state = Signal(bool)         # playing?
    finished = Signal()

    def __init__(self, estimator_slot: FrameSlot, display_slot: FrameSlot,
                 opener: Callable = open_source) -> None:
        super().__init__()
        self.estimator_slot = estimator_slot
        self.display_slot = display_slot
        self._opener = opener
        self._commands: deque = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.source = None
        self.generation = 0
        self.playing = False
        self.speed = 1.0            # 0 = as fast as possible
        self.analysis = 0           # analysis run id (0: none): every frame to the estimator, unpaced
        self.frames_read = 0
        self.last_index = -1
        self.segment = 0            # bumped whenever a frame is not the successor of the last one
        self._clock: tuple[float, int] | None = None   # (perf_counter, index) pacing reference
        self._rate = FrameRate()
        # called in this thread with (generation, seekable) whenever the generation changes (a
        # source opened, failed to open or closed), before any frame of the new one is put into
        # the slots: the estimator must know the generation before it sees its frames, and drop
        # (and forget the results of) the previous source's
        self.on_generation: Callable[[int, bool], None] | None = None

    # ---------------------------------------------------------------- requests (any thread)
    def request(self, name: str, *args: Any) -> None:
        with self._lock:
            if name == "seek":   # a dragged seek bar: only the newest position matters
                self._commands = deque(c for c in self._commands if c[0] != "seek")
            self._commands.append((name, args))
        self._wake.set()

    def open(self, spec: str, source_cfg) -> None:
        self.request("open", spec, source_cfg)

    def play(self) -> None:
        self.request("play")

    def pause(self) -> None:
        self.request("pause")

    def seek(self, index: int) -> None:
        self.request("seek", int(index))

    def step(self, delta: int) -> None:
        self.request("step", int(delta))

    def set_speed(self, speed: float) -> None:
        self.request("speed", float(speed))

    def set_analysis(self, run: int) -> None:
        """Analysis run ``run`` (> 0) from now on, 0: normal playback.  ``ended`` carries the id, so
        the GUI can tell the end of its run from an end of file that was still queued before it."""
        self.request("analysis", int(run))

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    # ---------------------------------------------------------------- the loop (worker thread)
    def run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                except Exception as exc:  # noqa: BLE001 - report, stop playing, keep the thread
                    traceback.print_exc()
                    self._set_playing(False)
                    self.lost.emit(f"camera thread error: {exc}")
        finally:
            self._close()
            self.finished.emit()

    def _step(self) -> None:
        self._handle_commands()
        if self._stop.is_set():
            return
        if self.source is None or not self.playing:
            self._wake.wait(POLL_S)
            self._wake.clear()
            return
        if self.analysis or isinstance(self.source, ImageListSource):
            if not self.estimator_slot.wait_empty(POLL_S):   # back-pressure: each is estimated
                return
        if not self.analysis and not self._wait_due():
            return
        self._read_one()

    def _wait_due(self) -> bool:
        """Pace seekable sources at fps x speed; False if woken up early (command or stop)."""
        src = self.source
        if src.is_live or not src.fps or self.speed <= 0:
            return True
        if self._clock is None:
            self._clock = (time.perf_counter(), self.last_index + 1)
            return True
        t0, i0 = self._clock
        due = t0 + (self.last_index + 1 - i0) / (src.fps * self.speed)
        delay = due - time.perf_counter()
        if delay > 0.002:
            if self._wake.wait(min(delay, POLL_S)):
                self._wake.clear()
            return False
        if delay < -0.5:  # far behind (slow decoding): restart the clock instead of racing
            self._clock = (time.perf_counter(), self.last_index + 1)
        return True

    def _read_one(self) -> None:
        frame = self._read_frame()
        if frame is not None:
            self._publish(frame)

    def _read_frame(self) -> Frame | None:
        """The source's next frame, or None (playing stops; ``lost`` or ``ended`` says why)."""
        src = self.source
        try:
            frame = src.read()
        except Exception as exc:  # noqa: BLE001 - a decoder error must not kill the thread
            frame = None
            src.error = src.error or f"{src.name}: reading failed ({exc})"
        if frame is None:
            self._set_playing(False)
            self._clock = None
            if src.error:
                message = src.error
                if not src.seekable:
                    self._close()
                self.lost.emit(message)
            else:
                self.ended.emit(self.last_index, self.analysis)
        return frame

    def _publish(self, frame: Frame) -> None:
        """Hand ``frame`` to the estimator and the display."""
        self.frames_read += 1
        # a jump, or a folder of unrelated pictures (each image is estimated alone)
        if frame.index != self.last_index + 1 or getattr(self.source, "independent", False):
            self.segment += 1
        self.last_index = frame.index
        item = Captured(frame, time.perf_counter(), self.generation, self.segment)
        self.display_slot.put(item)
        self.estimator_slot.put(item)
        self.position.emit(frame.index, frame.timestamp)
        fps = self._rate.add(frame.timestamp) if self.source.is_live else None
        if fps is not None:
            self.rate.emit(fps)

    def _set_playing(self, on: bool, announce: bool = False) -> None:
        """Play or not; ``state`` says so when it changes (or always with ``announce``: the GUI's
        Play button, pressed while nothing can play, must spring back)."""
        if on != self.playing or announce:
            self.playing = on
            self.state.emit(on)

    def _handle_commands(self) -> None:
        while True:
            with self._lock:
                if not self._commands:
                    return
                name, args = self._commands.popleft()
            getattr(self, "_cmd_" + name)(*args)

    def _new_generation(self, seekable: bool) -> None:
        self.generation += 1
        if self.on_generation is not None:
            self.on_generation(self.generation, seekable)

    def _cmd_open(self, spec: str, source_cfg) -> None:
        """Open ``spec`` as a transaction: the current source keeps playing (and its generation,
        so the window keeps its cache and plot) until the new one has delivered its first frame;
        a failed open leaves everything as it was and says why (``failed``)."""
        src = None
        try:
            src = self._opener(spec, source_cfg)
            first = src.read()
            if first is None:
                raise SourceError(src.error or f"{src.name}: no frame could be read")
        except Exception as exc:  # noqa: BLE001 - SourceError says why; anything else names spec
            if src is not None:
                try:
                    src.close()
                except Exception:  # noqa: BLE001 - the error above is the one to report
                    pass
            self.failed.emit(str(exc) if isinstance(exc, SourceError) else f"cannot open {spec}: {exc}")
            return
        self._close()
        self._new_generation(src.seekable)
        self.source = src
        self.last_index = -1
        self._clock = None
        self._rate = FrameRate()
        info = SourceInfo(str(spec), src.name, src.fps, src.frame_count, src.seekable, src.is_live,
                          tuple(src.size), self.generation, isinstance(src, ImageListSource))
        self.opened.emit(info)
        self._publish(first)                  # show the first frame at once
        self._set_playing(not info.images)    # pictures open paused on the first (← → step)

    def _cmd_play(self) -> None:
        if self.source is not None:
            if self.source.seekable and self.source.frame_count and \
                    self.last_index >= self.source.frame_count - 1:
                self._seek_read(0)            # play again from the start after the end
            self._clock = None
        self._set_playing(self.source is not None, announce=True)

    def _cmd_pause(self) -> None:
        self._set_playing(False, announce=True)
        self._clock = None

    def _cmd_seek(self, index: int) -> None:
        self._seek_read(index)

    def _cmd_step(self, delta: int) -> None:
        self._set_playing(False)
        if delta >= 0:
            self._seek_read(self.last_index + delta)
            return
        # back: read() skips an unreadable frame (a broken image in a folder) forward, maybe to
        # where the step began; aim earlier until the frame read is an earlier one
        start = self.last_index
        for target in range(max(0, start + delta), -1, -1):
            if not self._seek(target):
                return
            frame = self._read_frame()
            if frame is None:
                return
            if frame.index < start or target == 0:
                self._publish(frame)
                return

    def _seek_read(self, index: int) -> None:
        if self._seek(index):
            self._read_one()

    def _seek(self, index: int) -> bool:
        """Make the next read return frame ``index`` (clamped); False if the source cannot."""
        src = self.source
        if src is None or not src.seekable:
            return False
        if src.frame_count:
            index = min(max(0, index), src.frame_count - 1)
        try:
            src.seek(max(0, index))
        except Exception as exc:  # noqa: BLE001
            self.lost.emit(f"{src.name}: cannot seek to frame {index} ({exc})")
            return False
        self._clock = None
        return True

    def _cmd_speed(self, speed: float) -> None:
        self.speed = speed
        self._clock = None

    def _cmd_analysis(self, run: int) -> None:
        self.analysis = run
        self._clock = None

    def _close(self) -> None:
        if self.source is not None:
            try:
                self.source.close()
            finally:
                self.source = None
