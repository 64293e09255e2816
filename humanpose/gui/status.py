"""Status of the main window: the message line (errors, progress) and the counters line (fps,
latency, dropped and cached frames, ms per frame beside the box size).

A mixin of :class:`~humanpose.gui.main_window.MainWindow`.
"""
from __future__ import annotations

import time
from collections import deque

import numpy as np

STYLES = {"error": "color: #ff6b6b;", "info": "color: #e0c060;", "ok": "color: #8fd18f;"}


class StatusModel:
    """The counters of the current source, in one place: ms per frame and latency as medians of
    the last ``window`` estimates, the first estimate after a :meth:`reset` (a new source, a seek,
    a setting change: the warm-up one) skipped; the playback state (playing / paused / end of
    file)."""

    def __init__(self, window: int = 15) -> None:
        self.window = window
        self.playing = False
        self.reset()

    def reset(self, warm_up: bool = True) -> None:
        """Start the counters again; ``warm_up``: the next estimate (the first with new settings
        or of a new source, which pays for allocations and tracing) is not counted."""
        self._ms: deque = deque(maxlen=self.window)
        self._latency: deque = deque(maxlen=self.window)
        self._warm_up = warm_up
        self.ended = False

    def estimate(self, ms: float, latency_ms: float) -> None:
        if self._warm_up:
            self._warm_up = False
            return
        if np.isfinite(ms):
            self._ms.append(ms)
        if np.isfinite(latency_ms):
            self._latency.append(latency_ms)

    @property
    def ms_per_frame(self) -> float:
        return float(np.median(self._ms)) if self._ms else float("nan")

    @property
    def latency_ms(self) -> float:
        """Only while playing (a paused frame's age says nothing about the pipeline)."""
        return float(np.median(self._latency)) if self._latency and self.playing else float("nan")

    @property
    def state(self) -> str:
        return "playing" if self.playing else ("end of file" if self.ended else "paused")


class Status:
    """Messages and counters (mixin of MainWindow)."""

    def show_message(self, text: str, kind: str = "info") -> None:
        """A message in the window (message line + status bar); never a modal dialog.

        While the estimator is not available its error stays above every other message."""
        self._last_message = (text, kind)
        self._render_message()

    def _render_message(self) -> None:
        text, kind = self._last_message
        if self.estimator_error:
            text, kind = self.estimator_error + (f"\n{text}" if text else ""), "error"
        self.message = text
        self.message_label.setText(text)
        self.message_label.setStyleSheet(STYLES.get(kind, ""))
        self.statusBar().showMessage(text.replace("\n", " · "), 15000)

    def _update_stats(self) -> None:
        now = time.perf_counter()
        t0, frames0, est0, shown0 = self._stats_prev
        dt = max(now - t0, 1e-6)
        frames, est, shown = self.camera.frames_read, self._counts["estimates"], self._counts["shown"]
        self._stats_prev = (now, frames, est, shown)
        s = self.stats
        s["camera_fps"] = (frames - frames0) / dt
        s["estimator_fps"] = (est - est0) / dt
        s["display_fps"] = (shown - shown0) / dt
        m = self.status
        s["latency_ms"] = m.latency_ms
        s["dropped"] = self.estimator_slot.dropped
        parts = [m.state if self.info is not None else "no source",
                 f"camera {s['camera_fps']:.1f} fps", f"estimator {s['estimator_fps']:.1f} fps",
                 f"display {s['display_fps']:.1f} fps"]
        if m.playing:
            parts.append(f"latency {m.latency_ms:.0f} ms" if np.isfinite(m.latency_ms)
                         else "latency –")
        parts.append(f"dropped {s['dropped']}")
        parts.append(self._cache_text())
        if self.recorder is not None:
            parts.append(f"REC {self.recorder.frames} frames")
        self.stats_label.setText(" · ".join(parts))
        self._update_boxsize_label()

    def _cache_text(self) -> str:
        """The cache fill; the progress bar shows the same share of a file (0 after a change
        emptied the cache, whatever an earlier analysis reached)."""
        n, info = len(self.cache), self.info
        if info is not None and info.seekable and info.frame_count:
            share = int(100 * n / info.frame_count)
            if not self.analysing:
                self.playback.progress.setValue(share)
            return f"cached {n}/{info.frame_count} ({share} %)"
        return f"cached {n}"

    def _update_boxsize_label(self) -> None:
        b = self.cfg.estimator.boxsize
        ms = self.status.ms_per_frame
        text = f"{b} px" + (f" · {ms:.1f} ms/frame" if np.isfinite(ms) else " · – ms/frame")
        self.controls.estimator.boxsize_label.setText(text)
