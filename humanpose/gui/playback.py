"""Playback of the window: play / pause / step / seek / speed, the seek bar's position, the end
of a file and "Analyse whole file" (every frame estimated, unpaced, with the progress bar;
afterwards the window goes back to the frame it was on).

:class:`Player` writes ``state.playing`` and ``state.analysing``.  Every change of the playback
reaches the status model (:class:`~humanpose.gui.status.StatusModel`) and the counters line at
once.
"""
from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QObject


class Player(QObject):
    """Play, pause, seek, step, speed and the whole-file analysis."""

    def __init__(self, state, camera, estimator, cache, status_line, bar, plot, settings,
                 play_icon, pause_icon) -> None:
        super().__init__()
        self.state, self.camera, self.estimator, self.cache = state, camera, estimator, cache
        self.status_line, self.bar, self.plot, self.settings = status_line, bar, plot, settings
        self.play_icon, self.pause_icon = play_icon, pause_icon
        self.cursor_time: float | None = None   # the plot's cursor, drawn by the plot timer
        self._analysis_t0 = 0.0
        self._analysis_calls0 = 0
        self._analysis_last: int | None = None
        self._analysis_resume = (-1, False)
        self._analysis_run = 0       # id of the newest analysis run (see CameraWorker.set_analysis)
        for w in (bar.seek, bar.back, bar.forward, bar.analyse, bar.speed):
            w.setEnabled(False)          # until a file or folder is open
        speed = settings.value("playback/speed") if settings is not None else None
        if speed is not None and bar.speed.findText(str(speed)) >= 0:
            bar.speed.setCurrentIndex(bar.speed.findText(str(speed)))
        camera.set_speed(bar.speed.currentData())
        bar.play.clicked.connect(lambda on: self.play() if on else self.pause())
        bar.back.clicked.connect(lambda: self.step(-1))
        bar.forward.clicked.connect(lambda: self.step(+1))
        bar.seek.valueChanged.connect(self.seek)
        bar.speed.currentIndexChanged.connect(self.on_speed)
        bar.analyse.toggled.connect(self.analyse_whole_file)

    @property
    def model(self):
        return self.status_line.model

    def on_opened(self, info) -> None:
        seekable = info.seekable and bool(info.frame_count)
        b = self.bar
        b.seek.blockSignals(True)
        b.seek.setRange(0, max(0, (info.frame_count or 1) - 1))
        b.seek.setValue(0)
        b.seek.blockSignals(False)
        for w in (b.seek, b.back, b.forward, b.analyse, b.speed):
            w.setEnabled(seekable)
        b.progress.setValue(0)
        b.progress.setVisible(seekable)      # a stream's share of frames cached is not known

    def on_position(self, index: int, timestamp: float) -> None:
        b = self.bar
        b.seek.blockSignals(True)
        b.seek.setValue(index)
        b.seek.blockSignals(False)
        info = self.state.info
        total = info.frame_count if info and info.frame_count else None
        b.frame.setText(f"{index} / {total - 1}" if total else f"frame {index}")
        # the frame's own time, as the plot's (a live source's: its arrival, not index / fps)
        self.cursor_time = timestamp                # drawn by the plot timer (repaint cost)
        if not self.state.playing:
            self.plot.set_cursor(self.cursor_time)
        was = self.model.state
        self.model.moved(index)
        if self.model.state != was:                 # e.g. a step back from the end of the file
            self.status_line.render()

    def update_cursor(self) -> None:
        """The plot's cursor at the newest frame's time (plot timer)."""
        if self.cursor_time is not None and self.plot.isVisible():
            self.plot.set_cursor(self.cursor_time)
            self.cursor_time = None

    def on_state(self, playing: bool) -> None:
        self.state.playing = playing
        self.model.set_playing(playing)
        self.status_line.render()
        p = self.bar.play
        p.blockSignals(True)
        p.setChecked(playing)
        p.setIcon(self.pause_icon if playing else self.play_icon)
        p.blockSignals(False)

    def play(self) -> None:
        self.camera.play()

    def pause(self) -> None:
        self.camera.pause()

    def toggle_play(self) -> None:
        self.pause() if self.state.playing else self.play()

    def step(self, delta: int) -> None:
        self.model.reset(warm_up=False)
        self.camera.step(delta)

    def seek(self, index: int) -> None:
        self.model.reset(warm_up=False)
        self.camera.seek(index)

    def seek_time(self, seconds: float) -> None:
        """Seek to the frame nearest to ``seconds`` (plot clicks)."""
        info = self.state.info
        if info is None or not info.seekable:
            return
        items = self.cache.items()
        if items:
            times = np.array([r.timestamp for _, r in items])
            index = items[int(np.argmin(np.abs(times - seconds)))][0]
        elif info.fps:
            index = int(round(seconds * info.fps))
        else:
            return
        self.seek(index)

    def on_speed(self, _i: int) -> None:
        self.camera.set_speed(self.bar.speed.currentData())
        if self.settings is not None:
            self.settings.setValue("playback/speed", self.bar.speed.currentText())

    def on_ended(self, last: int, run: int) -> None:
        if self.state.analysing:
            # an end of file queued before this run began (e.g. of the playback that was under way
            # when Analyse was pressed) must neither finish the run nor replace its message
            if run == self._analysis_run:
                # the camera is through; done once the estimator has the last frame too
                self._analysis_last = last
                self._maybe_finish_analysis()
            return
        self.model.end(last)
        self.status_line.show_message(f"End of file (frame {last}). Press Play to start again.", "info")
        self.status_line.render()

    # ---------------------------------------------------------------- the whole-file analysis
    def analyse_whole_file(self, on: bool = True) -> None:
        """Estimate every frame of the file, unpaced, with the progress bar (toggle)."""
        info = self.state.info
        if on and not self.state.analysing:
            if info is None or not info.seekable or not info.frame_count:
                self.status_line.show_message("Analysing needs a video file or image folder.", "error")
                self._set_analyse_button(False)
                return
            self.state.analysing = True
            # where the window goes back to afterwards: the frame on show, and whether the
            # file had ended there
            self._analysis_resume = (self.model.position, self.model.ended)
            self._analysis_last = None
            self._analysis_t0 = time.perf_counter()
            self._analysis_calls0 = self.estimator.estimate_calls
            self._set_analyse_button(True)
            self._analysis_run += 1
            self.camera.set_analysis(self._analysis_run)
            self.camera.seek(0)
            self.camera.play()
            self.status_line.show_message(f"Analysing {info.name} …")
        elif not on and self.state.analysing:
            self.stop_analysis(finished=False)
            self.status_line.show_message(f"Analysis stopped: {len(self.cache)} of {info.frame_count} "
                                     "frames estimated. Seek or click the plot to review.", "info")

    def restart_analysis(self) -> None:
        """The settings changed and emptied the cache: analyse again from the start."""
        self._analysis_run += 1
        self._analysis_last = None
        self.bar.progress.setValue(0)
        self.camera.set_analysis(self._analysis_run)
        self.camera.seek(0)
        self.camera.play()
        self.status_line.show_message(f"Settings changed: analysing {self.state.info.name} again "
                                 "from the start …")

    def on_result(self, _item, _result) -> None:
        """A result arrived: the analysis' progress (and its end, once the last frame is in)."""
        info = self.state.info
        if self.state.analysing and info.frame_count:
            self.bar.progress.setValue(int(100 * len(self.cache) / info.frame_count))
            self._maybe_finish_analysis()

    def _maybe_finish_analysis(self) -> None:
        last = self._analysis_last
        if last is not None and (last in self.cache or self.estimator.estimator is None):
            self.stop_analysis(finished=True)

    def stop_analysis(self, finished: bool, resume: bool = True) -> None:
        """End the analysis run; ``resume``: go back to the frame it began on (not when the
        source is being replaced or was lost)."""
        if not self.state.analysing:
            return
        self.state.analysing = False
        self.camera.set_analysis(0)
        self._set_analyse_button(False)
        if resume:
            self._resume_after_analysis(finished)
        if finished:
            dt = time.perf_counter() - self._analysis_t0
            n = self.estimator.estimate_calls - self._analysis_calls0
            self.status_line.show_message(
                f"Analysed {len(self.cache)} frames ({n} estimated) in {dt:.1f} s "
                f"({n / max(dt, 1e-6):.1f} fps). Seek or click the plot to review.", "ok")
            self.bar.progress.setValue(100)

    def _resume_after_analysis(self, finished: bool) -> None:
        """Back to the frame the window showed when the analysis began, paused; a finished
        analysis that began at the end of the file (or before any frame) stays at the end."""
        self.camera.pause()
        position, was_ended = self._analysis_resume
        last = self._analysis_last
        if finished and last is not None and (position < 0 or was_ended or position >= last):
            self.model.end(last)
            self.status_line.render()
        elif position >= 0:
            self.camera.seek(position)

    def _set_analyse_button(self, on: bool) -> None:
        b = self.bar.analyse
        b.blockSignals(True)
        b.setChecked(on)
        b.setText("Stop analysis" if on else "Analyse whole file")
        b.blockSignals(False)
