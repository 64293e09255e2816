"""Status of the main window: the message line (errors, progress) and the counters line (fps,
latency, dropped and cached frames, ms per frame beside the box size and the pose net):
:class:`StatusModel` (the state of the current source) and :class:`StatusLine` (what the window
says about it).
"""
from __future__ import annotations

import time
from collections import deque

import numpy as np

from .controls import POSE_NETS

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
        self.first_ms = float("nan")    # the warm-up estimate's ms (a picture has no other)

    def estimate(self, ms: float, latency_ms: float) -> None:
        self.from_cache = False
        if self._warm_up:
            self._warm_up = False
            self.first_ms = ms
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


class StatusLine:
    """The message line (and the status bar) and the counters line of the window, with the
    counters they come from (:attr:`counts`: results, estimates and paints; :attr:`stats`: the
    rates of the last second) and the status model (:attr:`model`)."""

    def __init__(self, state, model: StatusModel, config, cache, estimator_slot, camera,
                 message_label, stats_label, status_bar, progress, boxsize_label,
                 net_label) -> None:
        self.state, self.model, self.config = state, model, config
        self.cache, self.estimator_slot, self.camera = cache, estimator_slot, camera
        self.message_label, self.stats_label, self.status_bar = message_label, stats_label, status_bar
        self.progress, self.boxsize_label, self.net_label = progress, boxsize_label, net_label
        self.net_ms: dict[str, float] = {}    # pose net -> its last measured ms per frame
        self.message = ""
        self.estimator_error = ""     # while the estimator is not available: above every message
        self.last_message = ("", "info")
        self.counts = {"results": 0, "estimates": 0, "shown": 0}
        self.stats = {"camera_fps": 0.0, "estimator_fps": 0.0, "display_fps": 0.0,
                      "latency_ms": float("nan"), "dropped": 0}
        self._stats_prev = (time.perf_counter(), 0, 0, 0)

    def show_message(self, text: str, kind: str = "info") -> None:
        """A message in the window (message line + status bar); never a modal dialog.

        While the estimator is not available its error stays above every other message."""
        self.last_message = (text, kind)
        self.render_message()

    def render_message(self) -> None:
        text, kind = self.last_message
        if self.estimator_error:
            text, kind = self.estimator_error + (f"\n{text}" if text else ""), "error"
        self.message = text
        self.message_label.setText(text)
        self.message_label.setStyleSheet(STYLES.get(kind, ""))
        self.status_bar.showMessage(text.replace("\n", " · "), 15000)

    def update_stats(self) -> None:
        """The frame rates of the last second (stats timer), then the counters line."""
        now = time.perf_counter()
        t0, frames0, est0, shown0 = self._stats_prev
        dt = max(now - t0, 1e-6)
        frames, est, shown = self.camera.frames_read, self.counts["estimates"], self.counts["shown"]
        self._stats_prev = (now, frames, est, shown)
        s = self.stats
        s["camera_fps"] = (frames - frames0) / dt
        s["estimator_fps"] = (est - est0) / dt
        s["display_fps"] = (shown - shown0) / dt
        self.render()

    def render(self) -> None:
        """The counters line from the status model; called by every playback change (and each
        second), so that the state it names is always the current one."""
        s, m = self.stats, self.model
        s["latency_ms"] = m.latency_ms
        s["dropped"] = self.estimator_slot.dropped
        parts = [m.state]
        recorder = self.state.recorder
        if recorder is not None:            # early in the line: never elided away
            parts.append(f"REC {recorder.frames} frames")
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
        self.update_ms_labels()
        if not m.ended and self.last_message[0].startswith("End of file"):
            self.show_message("")           # a step, a seek or Play left the end of the file

    def _cache_text(self) -> str:
        """The cache fill; the progress bar shows the same share of a file (0 after a change
        emptied the cache, whatever an earlier analysis reached)."""
        n, info = len(self.cache), self.state.info
        if info is not None and self.model.seekable and info.frame_count:
            share = int(100 * n / info.frame_count)
            if not self.state.analysing:
                self.progress.setValue(share)
            return f"cached {n}/{info.frame_count} ({share} %)"
        return f"cached {n}"

    def update_ms_labels(self) -> None:
        """The measured ms per frame beside the box size and beside the pose net (with the
        other nets' last measured ms, to compare)."""
        ms, first, cfg = self.model.ms_per_frame, self.model.first_ms, self.config.cfg
        text = f"{ms:.1f} ms/frame" if np.isfinite(ms) else "– ms/frame"
        self.boxsize_label.setText(f"{cfg.estimator.boxsize} px · {text}")
        net = cfg.model.pose_model
        if np.isfinite(ms):
            self.net_ms[net] = ms
        elif np.isfinite(first):      # a paused picture: its one estimate, warm-up included
            text = f"{first:.0f} ms/frame (first estimate)"
        titles = dict((name, title) for title, name in POSE_NETS)
        others = [f"{titles.get(n, n)} {v:.1f}" for n, v in self.net_ms.items() if n != net]
        self.net_label.setText(f"{titles.get(net, net)}: {text}"
                               + (f" (before: {', '.join(others)} ms)" if others else ""))
