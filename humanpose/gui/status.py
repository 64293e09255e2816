"""Status of the main window: the message line (errors, progress) and the counters line (fps,
latency, dropped and cached frames, ms per frame beside the box size).

A mixin of :class:`~humanpose.gui.main_window.MainWindow`.
"""
from __future__ import annotations

import time

import numpy as np

STYLES = {"error": "color: #ff6b6b;", "info": "color: #e0c060;", "ok": "color: #8fd18f;"}


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
        s["latency_ms"] = self._latency_ms
        s["dropped"] = self.estimator_slot.dropped
        lat = f"{self._latency_ms:.0f} ms" if np.isfinite(self._latency_ms) else "–"
        rec = f" · REC {self.recorder.frames} frames" if self.recorder is not None else ""
        self.stats_label.setText(
            f"camera {s['camera_fps']:.1f} fps · estimator {s['estimator_fps']:.1f} fps · "
            f"display {s['display_fps']:.1f} fps · latency {lat} · dropped {s['dropped']} · "
            f"cached {len(self.cache)}{rec}")
        self._update_boxsize_label()

    def _update_boxsize_label(self) -> None:
        b = self.cfg.estimator.boxsize
        ms = self._ms_per_frame
        text = f"{b} px" + (f" · {ms:.1f} ms/frame" if np.isfinite(ms) else " · – ms/frame")
        self.controls.estimator.boxsize_label.setText(text)
