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
    """The state of the current source in one place, updated by every playback change (open,
    play, pause, a frame shown after a step or a seek, the end of a file, a result from the
    cache or a new estimate), so that no text derived from it can go stale:

    * :attr:`state`: "no source", "playing", "paused" or "end of file" (only while the frame on
      show is the one the end was met after: a step or a seek back leaves it);
    * ms per frame and latency: medians of the last ``window`` estimates, the first estimate
      after a :meth:`reset` (a new source, a seek, a setting change: the warm-up one) skipped;
      no latency while paused, nor while the results come from the cache (nothing is estimated:
      :attr:`from_cache`);
    * :attr:`seekable`: a file or folder (its cached share is known), not a stream or camera."""

    def __init__(self, window: int = 15) -> None:
        self.window = window
        self.open = False
        self.seekable = False
        self.playing = False
        self.position = -1
        self.ended_at: int | None = None      # the frame the end of the file was met after
        self.from_cache = False
        self.reset()

    # ---------------------------------------------------------------- transitions
    def opened(self, seekable: bool) -> None:
        self.open, self.seekable, self.position, self.ended_at = True, seekable, -1, None
        self.from_cache = False
        self.reset()

    def set_playing(self, on: bool) -> None:
        self.playing = on
        if on:
            self.ended_at = None

    def moved(self, index: int) -> None:
        """A frame was shown (played, stepped or sought to)."""
        self.position = index
        if self.ended_at is not None and index != self.ended_at:
            self.ended_at = None

    def end(self, last: int) -> None:
        """The file ended after frame ``last`` (playing stopped)."""
        self.playing = False
        self.ended_at = last
        self.position = max(self.position, last)

    def cached(self) -> None:
        """A result came from the cache: nothing was estimated for it."""
        self.from_cache = True

    def reset(self, warm_up: bool = True) -> None:
        """Start the counters again; ``warm_up``: the next estimate (the first with new settings
        or of a new source, which pays for allocations and tracing) is not counted."""
        self._ms: deque = deque(maxlen=self.window)
        self._latency: deque = deque(maxlen=self.window)
        self._warm_up = warm_up

    def estimate(self, ms: float, latency_ms: float) -> None:
        self.from_cache = False
        if self._warm_up:
            self._warm_up = False
            return
        if np.isfinite(ms):
            self._ms.append(ms)
        if np.isfinite(latency_ms):
            self._latency.append(latency_ms)

    # ---------------------------------------------------------------- what it says
    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    @property
    def ms_per_frame(self) -> float:
        return float(np.median(self._ms)) if self._ms else float("nan")

    @property
    def latency_ms(self) -> float:
        """Only while playing and estimating (a paused frame's age, or a cached result's, says
        nothing about the pipeline)."""
        return float(np.median(self._latency)) if self._latency and self.playing \
            and not self.from_cache else float("nan")

    @property
    def state(self) -> str:
        if not self.open:
            return "no source"
        if self.playing:
            return "playing cached results" if self.from_cache else "playing"
        return "end of file" if self.ended else "paused"


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
        """The frame rates of the last second (stats timer), then the counters line."""
        now = time.perf_counter()
        t0, frames0, est0, shown0 = self._stats_prev
        dt = max(now - t0, 1e-6)
        frames, est, shown = self.camera.frames_read, self._counts["estimates"], self._counts["shown"]
        self._stats_prev = (now, frames, est, shown)
        s = self.stats
        s["camera_fps"] = (frames - frames0) / dt
        s["estimator_fps"] = (est - est0) / dt
        s["display_fps"] = (shown - shown0) / dt
        self._render_status()

    def _render_status(self) -> None:
        """The counters line from the status model; called by every playback change (and each
        second), so that the state it names is always the current one."""
        s, m = self.stats, self.status
        s["latency_ms"] = m.latency_ms
        s["dropped"] = self.estimator_slot.dropped
        parts = [m.state]
        if self.recorder is not None:       # early in the line: never elided away
            parts.append(f"REC {self.recorder.frames} frames")
        parts += [f"camera {s['camera_fps']:.1f} fps",
                  "estimator idle (cached)" if m.playing and m.from_cache
                  else f"estimator {s['estimator_fps']:.1f} fps",
                  f"display {s['display_fps']:.1f} fps"]
        if m.playing and not m.from_cache:
            parts.append(f"latency {m.latency_ms:.0f} ms" if np.isfinite(m.latency_ms)
                         else "latency –")
        parts.append(f"dropped {s['dropped']}")
        parts.append(self._cache_text())
        self.stats_label.setText(" · ".join(parts))
        self._update_boxsize_label()
        if not m.ended and self._last_message[0].startswith("End of file"):
            self.show_message("")           # a step, a seek or Play left the end of the file

    def _cache_text(self) -> str:
        """The cache fill; the progress bar shows the same share of a file (0 after a change
        emptied the cache, whatever an earlier analysis reached)."""
        n, info = len(self.cache), self.info
        if info is not None and self.status.seekable and info.frame_count:
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
