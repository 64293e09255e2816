"""Playback of the main window: play / pause / step / seek / speed, the seek bar's position and
"Analyse whole file" (every frame estimated, unpaced, with the progress bar; afterwards the
window goes back to the frame it was on).

Every change of the playback reaches the status model (:class:`~humanpose.gui.status.StatusModel`)
and the counters line at once.

A mixin of :class:`~humanpose.gui.main_window.MainWindow`.
"""
from __future__ import annotations

import time

import numpy as np


class Playback:
    """Play, pause, seek, step, speed and the whole-file analysis (mixin of MainWindow)."""

    def _on_position(self, index: int, timestamp: float) -> None:
        p = self.playback
        p.seek.blockSignals(True)
        p.seek.setValue(index)
        p.seek.blockSignals(False)
        total = self.info.frame_count if self.info and self.info.frame_count else None
        p.frame.setText(f"{index} / {total - 1}" if total else f"frame {index}")
        # the frame's own time, as the plot's (a live source's: its arrival, not index / fps)
        self._cursor_time = timestamp               # drawn by the plot timer (repaint cost)
        if not self.playing:
            self.plot.set_cursor(self._cursor_time)
        was = self.status.state
        self.status.moved(index)
        if self.status.state != was:                # e.g. a step back from the end of the file
            self._render_status()

    def _on_state(self, playing: bool) -> None:
        self.playing = playing
        self.status.set_playing(playing)
        self._render_status()
        p = self.playback.play
        p.blockSignals(True)
        p.setChecked(playing)
        p.setIcon(self._pause_icon if playing else self._play_icon)
        p.blockSignals(False)

    def play(self) -> None:
        self.camera.play()

    def pause(self) -> None:
        self.camera.pause()

    def toggle_play(self) -> None:
        self.pause() if self.playing else self.play()

    def step(self, delta: int) -> None:
        self.status.reset(warm_up=False)
        self.camera.step(delta)

    def seek(self, index: int) -> None:
        self.status.reset(warm_up=False)
        self.camera.seek(index)

    def seek_time(self, seconds: float) -> None:
        """Seek to the frame nearest to ``seconds`` (plot clicks)."""
        if self.info is None or not self.info.seekable:
            return
        items = self.cache.items()
        if items:
            times = np.array([r.timestamp for _, r in items])
            index = items[int(np.argmin(np.abs(times - seconds)))][0]
        elif self.info.fps:
            index = int(round(seconds * self.info.fps))
        else:
            return
        self.seek(index)

    def _on_seek_bar(self, value: int) -> None:
        self.seek(value)

    def _on_speed(self, _i: int) -> None:
        self.camera.set_speed(self.playback.speed.currentData())
        if self.settings is not None:
            self.settings.setValue("playback/speed", self.playback.speed.currentText())

    def analyse_whole_file(self, on: bool = True) -> None:
        """Estimate every frame of the file, unpaced, with the progress bar (toggle)."""
        if on and not self.analysing:
            if self.info is None or not self.info.seekable or not self.info.frame_count:
                self.show_message("Analysing needs a video file or image folder.", "error")
                self._set_analyse_button(False)
                return
            self.analysing = True
            # where the window goes back to afterwards: the frame on show, and whether the
            # file had ended there
            self._analysis_resume = (self.status.position, self.status.ended)
            self._analysis_last = None
            self._analysis_t0 = time.perf_counter()
            self._analysis_calls0 = self.estimator.estimate_calls
            self._set_analyse_button(True)
            self._analysis_run += 1
            self.camera.set_analysis(self._analysis_run)
            self.camera.seek(0)
            self.camera.play()
            self.show_message(f"Analysing {self.info.name} …")
        elif not on and self.analysing:
            self._stop_analysis(finished=False)
            self.show_message(f"Analysis stopped: {len(self.cache)} of {self.info.frame_count} "
                              "frames estimated. Seek or click the plot to review.", "info")

    def _maybe_finish_analysis(self) -> None:
        last = self._analysis_last
        if last is not None and (last in self.cache or self.estimator.estimator is None):
            self._stop_analysis(finished=True)

    def _stop_analysis(self, finished: bool, resume: bool = True) -> None:
        """End the analysis run; ``resume``: go back to the frame it began on (not when the
        source is being replaced or was lost)."""
        if not self.analysing:
            return
        self.analysing = False
        self.camera.set_analysis(0)
        self._set_analyse_button(False)
        if resume:
            self._resume_after_analysis(finished)
        if finished:
            dt = time.perf_counter() - self._analysis_t0
            n = self.estimator.estimate_calls - self._analysis_calls0
            self.show_message(f"Analysed {len(self.cache)} frames ({n} estimated) in {dt:.1f} s "
                              f"({n / max(dt, 1e-6):.1f} fps). Seek or click the plot to review.", "ok")
            self.playback.progress.setValue(100)

    def _resume_after_analysis(self, finished: bool) -> None:
        """Back to the frame the window showed when the analysis began, paused; a finished
        analysis that began at the end of the file (or before any frame) stays at the end."""
        self.camera.pause()
        position, was_ended = getattr(self, "_analysis_resume", (-1, False))
        last = self._analysis_last
        if finished and last is not None and (position < 0 or was_ended or position >= last):
            self.status.end(last)
            self._render_status()
        elif position >= 0:
            self.camera.seek(position)

    def _set_analyse_button(self, on: bool) -> None:
        b = self.playback.analyse
        b.blockSignals(True)
        b.setChecked(on)
        b.setText("Stop analysis" if on else "Analyse whole file")
        b.blockSignals(False)
