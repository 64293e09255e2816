"""The main window: a camera thread, an estimator thread and the GUI thread painting at display rate.

``MainWindow(cfg, estimator_factory=None, settings=None, source=None, opener=open_source,
file_cfg=None)``

* ``cfg`` - the :class:`~humanpose.config.Config` (``humanpose.yml`` with the remembered
  QSettings already applied, see :mod:`.settings`);
* ``estimator_factory(cfg) -> PoseEstimator`` - how the estimator thread builds its estimator
  (default: :class:`PoseEstimator` with the weights named in ``cfg``; tests inject tiny models);
* ``settings`` - the QSettings to remember changes in (None: remember nothing);
* ``source`` - what to open at start (default ``cfg.source.source``; "" opens nothing);
* ``opener`` - how a source is opened (default :func:`~humanpose.sources.open_source`; tests
  inject failures);
* ``file_cfg`` - the config before the remembered settings (default ``cfg``): the zoom that
  "Scale search" turns on when the remembered settings say it was off.

Every error (no camera, lost source, unreadable file, missing weights...) is shown in the
message line above the picture and in the status bar; nothing blocks in a modal dialog except
the file choosers the user asked for.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QByteArray, QSettings, Qt, QThread, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QApplication, QFileDialog, QLabel, QMainWindow, QScrollArea,
                               QSplitter, QStyle, QTabBar, QVBoxLayout, QWidget)

from ..config import Config, set_value
from ..export.draw import draw_result
from ..export.writers import ExportError, KeypointWriter, VideoWriter, write_image
from ..sources import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, open_source, source_stem
from ..sources.video import redact_url
from . import refguard
from . import settings as remembered
from .controls import (ControlPanel, PlaybackBar, noise_to_strength, snap_boxsize,
                       strength_to_noise)
from .plot import PlotPanel
from .slots import FrameSlot, ResultCache
from .views import AUTO, VIEW_TITLES, VIEWS, ImageView, ViewOptions, render
from .workers import CameraWorker, Captured, EstimatorWorker, SourceInfo

log = logging.getLogger(__name__)

STOP_TIMEOUT_MS = 1000
MAX_PERSON_CHOICES = 64      # track ids offered in the person selector
PLOT_INTERVAL_MS = 400
PLOT_LIVE_FRAMES = 3000      # a live source's plot shows its newest frames only (the export has all)
RECORD_MAX_HOLD_S = 2.0      # longest gap in the source's time a recorded frame is held for
SCALE_SEARCH_ON = 0.15       # the zoom of "Scale search" when humanpose.yml sets none
STYLES = {"error": "color: #ff6b6b;", "info": "color: #e0c060;", "ok": "color: #8fd18f;"}


def default_factory(cfg: Config):
    from ..estimator.pipeline import PoseEstimator
    return PoseEstimator(cfg)


class MainWindow(QMainWindow):
    def __init__(self, cfg: Config, estimator_factory: Callable | None = None,
                 settings: QSettings | None = None, source: str | None = None,
                 opener: Callable = open_source, file_cfg: Config | None = None) -> None:
        super().__init__()
        refguard.install(QApplication.instance())   # see refguard: PySide6 refcount bug
        self.cfg = cfg
        self.settings = settings
        self.setWindowTitle("humanpose")
        self.resize(1280, 820)

        # --- shared state between the threads
        self.estimator_slot = FrameSlot()
        self.display_slot = FrameSlot()
        self.cache = ResultCache()
        self.info: SourceInfo | None = None
        self.latest: tuple[Captured, object] | None = None   # newest (frame, result) pair
        self.view = cfg.gui.view
        # the zoom "Scale search" turns on, kept while it is off: the one in use, else humanpose.yml's
        # (``file_cfg``: the config before the remembered settings, which store "off" as 0), else 0.15
        self.scale_zoom = (cfg.estimator.scale_search or (file_cfg or cfg).estimator.scale_search
                           or SCALE_SEARCH_ON)
        self.playing = False
        self.analysing = False
        self.recorder: VideoWriter | None = None
        self._record_t0: float | None = None   # source time of the recording's first frame
        self.message = ""
        self.estimator_error = ""
        self._last_message = ("", "info")
        self._shown_key = None
        self._analysis_t0 = 0.0
        self._analysis_last: int | None = None
        self._analysis_run = 0       # id of the newest analysis run (see CameraWorker.set_analysis)
        self._counts = {"results": 0, "estimates": 0, "shown": 0}
        self._stats_prev = (time.perf_counter(), 0, 0, 0)
        self._latency_ms = float("nan")
        self._ms_per_frame = float("nan")
        self._plot_version = -1
        self._cursor_time: float | None = None
        self._seen_ids: set[int] = set()
        self._closing = False
        self.stats = {"camera_fps": 0.0, "estimator_fps": 0.0, "display_fps": 0.0,
                      "latency_ms": float("nan"), "dropped": 0}

        self._build_ui()
        self._load_values()
        self._connect()

        # --- threads
        self.camera = CameraWorker(self.estimator_slot, self.display_slot, opener)
        self.camera.set_speed(self.playback.speed.currentData())   # the remembered speed
        self.estimator = EstimatorWorker(self.estimator_slot, self.cache,
                                         estimator_factory or default_factory, self.cfg)
        self.camera_thread = QThread(self)
        self.camera_thread.setObjectName("humanpose-camera")
        self.estimator_thread = QThread(self)
        self.estimator_thread.setObjectName("humanpose-estimator")
        for worker, thread in ((self.camera, self.camera_thread),
                               (self.estimator, self.estimator_thread)):
            worker.moveToThread(thread)
            thread.started.connect(worker.run)
            # QThread.quit is thread-safe: call it directly from the worker thread (a queued
            # call would wait for the GUI thread, which may itself be waiting in shutdown())
            worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        c, e = self.camera, self.estimator
        c.on_generation = e.new_source
        c.opened.connect(self._on_opened)
        # worker signals go to bound methods of this window only (a lambda would run in the
        # worker's thread; a method of a QObject runs queued in the GUI thread)
        c.failed.connect(self._on_open_failed)
        c.lost.connect(self._on_lost)
        c.ended.connect(self._on_ended)
        c.position.connect(self._on_position)
        c.state.connect(self._on_state)
        e.ready.connect(self._on_estimator_ready)
        e.failed.connect(self._on_estimator_failed)
        e.result.connect(self._on_result)
        e.applied.connect(self._on_applied)
        self.camera_thread.start()
        self.estimator_thread.start()

        # --- timers (GUI thread)
        self.display_timer = QTimer(self)
        self.display_timer.setInterval(max(5, int(1000 / cfg.gui.display_fps)))
        self.display_timer.timeout.connect(self.refresh)
        self.display_timer.start()
        self.stats_timer = QTimer(self)
        self.stats_timer.setInterval(1000)
        self.stats_timer.timeout.connect(self._update_stats)
        self.stats_timer.start()
        self.plot_timer = QTimer(self)
        self.plot_timer.setInterval(PLOT_INTERVAL_MS)
        self.plot_timer.timeout.connect(self._update_plot)
        self.plot_timer.start()

        self.refresh()
        start = cfg.source.source if source is None else source
        if start not in (None, ""):
            self.open_source(start)

    # ================================================================== UI
    def _build_ui(self) -> None:
        self.tabs = QTabBar()
        for v in VIEWS:
            self.tabs.addTab(VIEW_TITLES[v])
        self.tabs.setToolTip("Views (keys 1, 2, 3)")
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.message_label.setObjectName("message")
        self.stats_label = QLabel("")
        self.stats_label.setObjectName("stats")
        self.image_view = ImageView()
        self.playback = PlaybackBar()
        self.plot = PlotPanel()
        self.controls = ControlPanel()

        top = QWidget()
        v = QVBoxLayout(top)
        v.setContentsMargins(4, 4, 4, 0)
        v.addWidget(self.tabs)
        v.addWidget(self.message_label)
        v.addWidget(self.image_view, 1)
        v.addWidget(self.stats_label)
        v.addWidget(self.playback)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(self.plot)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        split.setSizes([620, 200])
        scroll = QScrollArea()
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(300)
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(split)
        main.addWidget(scroll)
        main.setStretchFactor(0, 1)
        main.setSizes([960, 320])
        self.setCentralWidget(main)
        self.statusBar().addPermanentWidget(QLabel(""))
        self._build_menu()

    def _build_menu(self) -> None:
        style = self.style()
        file_menu = self.menuBar().addMenu("&File")
        for text, key, slot in (("Open &video…", QKeySequence.StandardKey.Open, self.choose_video),
                                ("Open &image…", None, self.choose_image),
                                ("Open &folder…", None, self.choose_folder),
                                ("&Screenshot", "Ctrl+S", self.save_screenshot),
                                ("Export keypoints &CSV", "Ctrl+E", lambda: self.export_keypoints("csv")),
                                ("Export keypoints &JSON", None, lambda: self.export_keypoints("jsonl")),
                                ("&Quit", QKeySequence.StandardKey.Quit, self.close)):
            act = QAction(text, self)
            if key is not None:
                act.setShortcut(QKeySequence(key))
            act.triggered.connect(slot)
            file_menu.addAction(act)
        view_menu = self.menuBar().addMenu("&View")
        for n, v in enumerate(VIEWS):
            act = QAction(VIEW_TITLES[v], self)
            act.setShortcut(QKeySequence(str(n + 1)))
            act.triggered.connect(lambda _=False, v=v: self.set_view(v))
            view_menu.addAction(act)
        play_menu = self.menuBar().addMenu("&Playback")
        for text, key, slot in (("Play / pause", "Space", self.toggle_play),
                                ("Frame back", "Left", lambda: self.step(-1)),
                                ("Frame forward", "Right", lambda: self.step(+1))):
            act = QAction(text, self)
            act.setShortcut(QKeySequence(key))
            act.triggered.connect(slot)
            play_menu.addAction(act)
        settings_menu = self.menuBar().addMenu("&Settings")
        act = QAction("Forget remembered settings", self)
        act.triggered.connect(self.forget_settings)
        settings_menu.addAction(act)
        self._play_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay)
        self._pause_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPause)

    def _load_values(self) -> None:
        cfg, c = self.cfg, self.controls
        est = c.estimator
        box = snap_boxsize(cfg.estimator.boxsize)
        if box != cfg.estimator.boxsize:     # e.g. 196 in humanpose.yml: the slider's step is 8
            self.cfg = cfg = set_value(cfg, "estimator.boxsize", box)
        est.boxsize.setValue(box)
        est.framework.setCurrentText(cfg.model.framework)
        est.device.setCurrentText(cfg.model.device)
        est.threshold.setValue(cfg.estimator.person_threshold)
        est.pose_score.setValue(cfg.estimator.min_pose_score)
        est.flip.setChecked(cfg.estimator.flip_test)
        est.scale_search.setChecked(cfg.estimator.scale_search > 0)
        est.rescale.setChecked(cfg.estimator.rescale)
        est.tracking.setChecked(cfg.tracking.enabled)
        est.kalman.setChecked(cfg.tracking.smoothing)
        est.strength.setValue(noise_to_strength(cfg.tracking.measurement_noise))
        est.strength.setEnabled(cfg.tracking.smoothing)
        self._update_boxsize_label()
        d = c.display
        d.joint_score.setValue(cfg.estimator.joint_threshold)
        d.boxes.setChecked(cfg.gui.show_boxes)
        d.scores.setChecked(cfg.gui.show_scores)
        d.blend.setChecked(cfg.gui.heatmap_blend)
        self.tabs.setCurrentIndex(VIEWS.index(self.view))
        c.output.folder.setText(f"Output folder: {self.output_dir}")
        p = self.playback
        for w in (p.seek, p.back, p.forward, p.analyse, p.speed):
            w.setEnabled(False)          # until a file or folder is open
        if self.settings is not None:
            speed = self.settings.value("playback/speed")
            if speed is not None:
                i = self.playback.speed.findText(str(speed))
                if i >= 0:
                    self.playback.speed.setCurrentIndex(i)
            geometry = self.settings.value("window/geometry")
            # a stale or hand-edited entry is ignored (settings.py's rule), never a failed start
            if geometry is not None and not (isinstance(geometry, (QByteArray, bytes))
                                             and self.restoreGeometry(geometry)):
                log.warning("ignoring remembered setting window/geometry=%r", geometry)

    def _connect(self) -> None:
        c, p = self.controls, self.playback
        self.tabs.currentChanged.connect(lambda i: self.set_view(VIEWS[i]))
        c.source.open_camera.clicked.connect(lambda: self.open_source(str(c.source.camera_index.value())))
        c.source.open_video.clicked.connect(self.choose_video)
        c.source.open_image.clicked.connect(self.choose_image)
        c.source.open_folder.clicked.connect(self.choose_folder)
        c.source.open_url.clicked.connect(lambda: self.open_source(c.source.url.text().strip()))
        c.source.url.returnPressed.connect(lambda: self.open_source(c.source.url.text().strip()))
        p.play.clicked.connect(lambda on: self.play() if on else self.pause())
        p.back.clicked.connect(lambda: self.step(-1))
        p.forward.clicked.connect(lambda: self.step(+1))
        p.seek.valueChanged.connect(self._on_seek_bar)
        p.speed.currentIndexChanged.connect(self._on_speed)
        p.analyse.toggled.connect(self.analyse_whole_file)
        e = c.estimator
        e.boxsize.valueChanged.connect(self._on_boxsize)
        e.framework.currentTextChanged.connect(self._on_backend)
        e.device.currentTextChanged.connect(self._on_backend)
        e.threshold.valueChanged.connect(self._on_threshold)
        e.pose_score.valueChanged.connect(self._on_pose_score)
        e.flip.toggled.connect(self._on_flip)
        e.scale_search.toggled.connect(self._on_scale_search)
        e.rescale.toggled.connect(self._on_rescale)
        e.tracking.toggled.connect(self._on_tracking)
        e.kalman.toggled.connect(self._on_tracking)
        e.strength.valueChanged.connect(self._on_tracking)
        e.reload.clicked.connect(self.reload_models)
        d = c.display
        for box, key in ((d.boxes, "gui.show_boxes"), (d.scores, "gui.show_scores"),
                         (d.blend, "gui.heatmap_blend")):
            box.toggled.connect(lambda on, key=key: self._set_cfg(key, bool(on)))
        d.person.currentIndexChanged.connect(self._on_person)
        d.joint_score.valueChanged.connect(self._on_joint_score)
        o = c.output
        o.record.toggled.connect(self.set_recording)
        o.export_csv.clicked.connect(lambda: self.export_keypoints("csv"))
        o.export_json.clicked.connect(lambda: self.export_keypoints("jsonl"))
        o.screenshot.clicked.connect(self.save_screenshot)
        self.plot.seek_requested.connect(self.seek_time)

    # ================================================================== messages and settings
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

    def _set_cfg(self, key: str, value) -> None:
        self.cfg = set_value(self.cfg, key, value)
        if self.settings is not None and key in remembered.REMEMBERED:
            remembered.remember(self.settings, key, value)
        self._force_redraw()

    def _on_joint_score(self, value: float) -> None:
        """Which joints are drawn and plotted (display only: the estimator is not involved)."""
        self._set_cfg("estimator.joint_threshold", round(float(value), 2))
        self._plot_version = -1          # the plot leaves out the joints below it too

    def _on_person(self, _index: int) -> None:
        """The person the heatmap views and the plot follow."""
        self._force_redraw()
        self._plot_version = -1

    def forget_settings(self) -> None:
        if self.settings is not None:
            self.settings.clear()
            self.settings.sync()
        self.show_message("Remembered settings forgotten; humanpose.yml applies at the next start.")

    @property
    def output_dir(self) -> Path:
        return self.cfg.resolve(self.cfg.output.directory)

    # ================================================================== sources and playback
    def open_source(self, spec: str) -> None:
        """Open a video / image / folder / camera index / URL (errors end up in the window)."""
        if not spec:
            self.show_message("Give a source: a file, a folder, a camera index or a URL.", "error")
            return
        self.set_recording(False)
        self._stop_analysis(finished=False)
        self.show_message(f"Opening {spec} …")
        self.camera.set_analysis(0)
        self.camera.open(spec, self.cfg.source)

    def choose_video(self) -> None:
        patterns = " ".join("*" + e for e in VIDEO_EXTENSIONS)
        path, _ = QFileDialog.getOpenFileName(self, "Open video", "", f"Videos ({patterns});;All files (*)")
        if path:
            self.open_source(path)

    def choose_image(self) -> None:
        patterns = " ".join("*" + e for e in IMAGE_EXTENSIONS)
        path, _ = QFileDialog.getOpenFileName(self, "Open image", "", f"Images ({patterns});;All files (*)")
        if path:
            self.open_source(path)

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open image folder")
        if path:
            self.open_source(path)

    def _on_opened(self, info: SourceInfo) -> None:
        self.info = info
        self.latest = None
        self._seen_ids.clear()
        self._reset_person_choice()
        w, h = info.size
        fps = f"{info.fps:.1f} fps" if info.fps else "fps unknown"
        frames = f", {info.frame_count} frames" if info.frame_count else ""
        kind = "live" if info.is_live else ("seekable" if info.seekable else "")
        self.controls.source.name.setText(f"{info.name}\n{w}x{h}, {fps}{frames} {kind}")
        self.setWindowTitle(f"humanpose – {info.name}")
        seekable = info.seekable and bool(info.frame_count)
        p = self.playback
        p.seek.blockSignals(True)
        p.seek.setRange(0, max(0, (info.frame_count or 1) - 1))
        p.seek.setValue(0)
        p.seek.blockSignals(False)
        for w_ in (p.seek, p.back, p.forward, p.analyse, p.speed):
            w_.setEnabled(seekable)
        p.progress.setValue(0)
        self.show_message(f"Opened {info.name}.", "ok")
        # the next start opens it again; not a camera index, nor a URL with a password in it
        # (the settings file is plain text)
        if info.spec and not info.spec.isdigit() and redact_url(info.spec) == info.spec \
                and self.settings is not None:
            remembered.remember(self.settings, "source.source", info.spec)

    def _on_open_failed(self, message: str) -> None:
        # the previous source was closed before trying this one: nothing is open now
        self._stop_analysis(finished=False)
        self.info = None
        self.latest = None
        self.cache.clear()          # the estimator clears it too once it sees the new generation
        p = self.playback
        for w in (p.seek, p.back, p.forward, p.analyse, p.speed):
            w.setEnabled(False)
        p.frame.setText("– / –")
        self.controls.source.name.setText("no source")
        self.setWindowTitle("humanpose")
        self.show_message(f"Cannot open the source: {message}", "error")

    def _on_estimator_failed(self, message: str) -> None:
        if message.startswith("pose estimator not available"):
            self.estimator_error = message + " (fix it, then press Reload models)"
            self.controls.estimator.backend.setText("not available")
            self._render_message()
        else:
            self.show_message(message, "error")

    def _on_lost(self, message: str) -> None:
        self._stop_analysis(finished=False)
        self.set_recording(False)
        self.show_message(f"Source lost: {message}. Open another source or seek back.", "error")

    def _on_ended(self, last: int, run: int) -> None:
        if self.analysing:
            # an end of file queued before this run began (e.g. of the playback that was under way
            # when Analyse was pressed) must neither finish the run nor replace its message
            if run == self._analysis_run:
                # the camera is through; done once the estimator has the last frame too
                self._analysis_last = last
                self._maybe_finish_analysis()
            return
        self.show_message(f"End of file (frame {last}). Press Play to start again.", "info")

    def _on_position(self, index: int) -> None:
        p = self.playback
        p.seek.blockSignals(True)
        p.seek.setValue(index)
        p.seek.blockSignals(False)
        total = self.info.frame_count if self.info and self.info.frame_count else None
        p.frame.setText(f"{index} / {total - 1}" if total else f"frame {index}")
        if self.info and self.info.fps:
            self._cursor_time = index / self.info.fps   # drawn by the plot timer (repaint cost)
            if not self.playing:
                self.plot.set_cursor(self._cursor_time)

    def _on_state(self, playing: bool) -> None:
        self.playing = playing
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
        self.camera.step(delta)

    def seek(self, index: int) -> None:
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
            self.camera.pause()

    def _maybe_finish_analysis(self) -> None:
        last = self._analysis_last
        if last is not None and (last in self.cache or self.estimator.estimator is None):
            self._stop_analysis(finished=True)

    def _stop_analysis(self, finished: bool) -> None:
        if not self.analysing:
            return
        self.analysing = False
        self.camera.set_analysis(0)
        self._set_analyse_button(False)
        if finished:
            dt = time.perf_counter() - self._analysis_t0
            n = self.estimator.estimate_calls - self._analysis_calls0
            self.show_message(f"Analysed {len(self.cache)} frames ({n} estimated) in {dt:.1f} s "
                              f"({n / max(dt, 1e-6):.1f} fps). Seek or click the plot to review.", "ok")
            self.playback.progress.setValue(100)

    def _set_analyse_button(self, on: bool) -> None:
        b = self.playback.analyse
        b.blockSignals(True)
        b.setChecked(on)
        b.setText("Stop analysis" if on else "Analyse whole file")
        b.blockSignals(False)

    # ================================================================== estimator settings
    def _on_boxsize(self, value: int) -> None:
        snapped = snap_boxsize(value)
        if snapped != value:
            self.controls.estimator.boxsize.setValue(snapped)   # re-enters with the snapped value
            return
        self._set_cfg("estimator.boxsize", snapped)
        self.estimator.set_boxsize(snapped)
        self._ms_per_frame = float("nan")
        self._update_boxsize_label()

    def set_boxsize(self, value: int) -> None:
        self.controls.estimator.boxsize.setValue(value)

    def _update_boxsize_label(self) -> None:
        b = self.cfg.estimator.boxsize
        ms = self._ms_per_frame
        text = f"{b} px" + (f" · {ms:.1f} ms/frame" if np.isfinite(ms) else " · – ms/frame")
        self.controls.estimator.boxsize_label.setText(text)

    def _on_backend(self, _text: str) -> None:
        e = self.controls.estimator
        fw, dev = e.framework.currentText(), e.device.currentText()
        self._set_cfg("model.framework", fw)
        self._set_cfg("model.device", dev)
        e.backend.setText("switching…")
        if self.estimator_error:     # no estimator yet (e.g. it was built for a missing device)
            self.reload_models()
        else:
            self.estimator.set_backend(fw, dev)

    def _on_threshold(self, value: float) -> None:
        self._set_cfg("estimator.person_threshold", round(float(value), 2))
        self.estimator.set_person_threshold(round(float(value), 2))

    def _on_pose_score(self, value: float) -> None:
        self._set_cfg("estimator.min_pose_score", round(float(value), 2))
        self.estimator.set_min_pose_score(round(float(value), 2))

    def _on_flip(self, on: bool) -> None:
        self._set_cfg("estimator.flip_test", bool(on))
        self.estimator.set_flip_test(bool(on))

    def _on_scale_search(self, on: bool) -> None:
        d = self.scale_zoom if on else 0.0
        self._set_cfg("estimator.scale_search", d)
        self.estimator.set_scale_search(d)

    def _on_rescale(self, on: bool) -> None:
        self._set_cfg("estimator.rescale", bool(on))
        self.estimator.set_rescale(bool(on))

    def _on_tracking(self, *_args) -> None:
        e = self.controls.estimator
        enabled, smoothing = e.tracking.isChecked(), e.kalman.isChecked()
        noise = round(strength_to_noise(e.strength.value()), 4)
        e.strength.setEnabled(smoothing)
        e.strength.setToolTip(f"Smoothing strength: measurement noise {noise:g} px²")
        self._set_cfg("tracking.enabled", enabled)
        self._set_cfg("tracking.smoothing", smoothing)
        self._set_cfg("tracking.measurement_noise", noise)
        self.estimator.set_tracking(enabled, smoothing, noise)

    def reload_models(self) -> None:
        self.controls.estimator.backend.setText("loading…")
        self.estimator.rebuild(self.cfg)

    def _on_estimator_ready(self, backend: str) -> None:
        self.controls.estimator.backend.setText(backend)
        if self.estimator_error:
            self.estimator_error = ""
            self.show_message(f"Pose estimator ready ({backend}).", "ok")

    def _on_applied(self, applied: dict) -> None:
        if "backend_failed" in applied and self.estimator.estimator is not None:
            # the previous backend stays: show it in the selectors and remember it
            model = self.estimator.estimator.config.model
            e = self.controls.estimator
            for box, value in ((e.framework, model.framework), (e.device, model.device)):
                box.blockSignals(True)
                box.setCurrentText(value)
                box.blockSignals(False)
            self._set_cfg("model.framework", model.framework)
            self._set_cfg("model.device", model.device)
        if self.analysing and any(not key.endswith("_failed") for key in applied):
            # the change emptied the cache: the frames analysed so far must be analysed again
            self._analysis_run += 1
            self._analysis_last = None
            self.playback.progress.setValue(0)
            self.camera.set_analysis(self._analysis_run)
            self.camera.seek(0)
            self.camera.play()
            self.show_message(f"Settings changed: analysing {self.info.name} again from the start …")
            return
        # paused: estimate the frame on screen again so the change shows at once
        if not self.playing:
            _, item = self.display_slot.peek()
            if item is not None and self.info is not None and item.generation == self.info.generation:
                self.estimator_slot.put(item)

    # ================================================================== results and painting
    def _on_result(self, item: Captured, result, cached: bool) -> None:
        if self.info is None or item.generation != self.info.generation:
            return
        self.latest = (item, result)
        self._counts["results"] += 1
        if not cached:
            self._counts["estimates"] += 1
            ms = result.timings.get("total", float("nan"))
            self._ms_per_frame = ms if not np.isfinite(self._ms_per_frame) else \
                0.7 * self._ms_per_frame + 0.3 * ms
            latency = (time.perf_counter() - item.captured) * 1000.0
            self._latency_ms = latency if not np.isfinite(self._latency_ms) else \
                0.7 * self._latency_ms + 0.3 * latency
        new_ids = {p.track_id for p in result.persons if p.track_id >= 0} - self._seen_ids
        if new_ids and len(self._seen_ids) < MAX_PERSON_CHOICES:
            self._seen_ids |= new_ids
            for tid in sorted(new_ids):
                self.controls.display.person.addItem(f"track #{tid}", tid)
        if self.recorder is not None:
            self._record(item, result)
        if self.analysing and self.info.frame_count:
            self.playback.progress.setValue(int(100 * len(self.cache) / self.info.frame_count))
            self._maybe_finish_analysis()

    def _reset_person_choice(self) -> None:
        box = self.controls.display.person
        box.blockSignals(True)
        while box.count() > 1:
            box.removeItem(box.count() - 1)
        box.setCurrentIndex(0)
        box.blockSignals(False)

    def view_options(self) -> ViewOptions:
        g = self.cfg.gui
        person = self.controls.display.person.currentData()
        return ViewOptions(g.show_boxes, g.show_scores, self.cfg.estimator.joint_threshold,
                           g.heatmap_blend, AUTO if person is None else int(person))

    def result_for(self, item: Captured):
        """The result to draw on ``item``: its own (cache) if known, else the newest one."""
        if self.info is None or item.generation != self.info.generation:
            return None
        if self.latest is not None and self.latest[0].frame.index == item.frame.index:
            return self.latest[1]
        if self.info.seekable:
            cached = self.cache.get(item.frame.index)
            if cached is not None:
                return cached
        return self.latest[1] if self.latest is not None else None

    def current_image(self) -> np.ndarray:
        """The BGR image of the current view (what is on screen)."""
        seq, item = self.display_slot.peek()
        if item is None or self.info is None or item.generation != self.info.generation:
            return render(self.view, None, None, self.view_options())
        return render(self.view, item.frame.image, self.result_for(item), self.view_options())

    def refresh(self) -> None:
        """Paint the newest frame with its result (display timer)."""
        seq, item = self.display_slot.peek()
        result = self.result_for(item) if item is not None else None
        key = (seq, id(result), self.view, dataclasses.astuple(self.view_options()),
               self.info.generation if self.info else -1)
        if key == self._shown_key:
            return
        self._shown_key = key
        self.image_view.set_image(self.current_image())
        self._counts["shown"] += 1

    def _force_redraw(self) -> None:
        self._shown_key = None

    def set_view(self, view: str) -> None:
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; known: {', '.join(VIEWS)}")
        self.view = view
        if self.tabs.currentIndex() != VIEWS.index(view):
            self.tabs.setCurrentIndex(VIEWS.index(view))   # re-enters once
            return
        self._set_cfg("gui.view", view)
        self.refresh()

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

    def _update_plot(self) -> None:
        if self._cursor_time is not None and self.plot.isVisible():
            self.plot.set_cursor(self._cursor_time)
            self._cursor_time = None
        if self.cache.version == self._plot_version or not self.plot.isVisible():
            return
        self._plot_version = self.cache.version
        person = self.controls.display.person.currentData()
        items = self.cache.items()
        if self.info is not None and self.info.is_live:
            items = items[-PLOT_LIVE_FRAMES:]      # all 20 000 kept would cost the GUI thread
        self.plot.set_data(items, AUTO if person is None else int(person),
                           self.cfg.estimator.joint_threshold)

    # ================================================================== output
    def _stem(self) -> str:
        return source_stem(self.info.spec) if self.info else "humanpose"

    def set_recording(self, on: bool) -> None:
        """Start / stop recording the annotated frames to the output folder (each result held for
        the source frames it stands for: see :meth:`_record`)."""
        button = self.controls.output.record
        if on and self.recorder is None:
            if self.info is None:
                self.show_message("Nothing to record: open a source first.", "error")
                on = False
            else:
                path = self.output_dir / f"{self._stem()}_annotated_{time.strftime('%Y%m%d-%H%M%S')}.mp4"
                self.recorder = VideoWriter(path, self.info.fps or self.stats["estimator_fps"] or 10.0)
                self._record_t0 = None
                self.show_message(f"Recording to {path} …")
        elif not on and self.recorder is not None:
            rec, self.recorder = self.recorder, None
            rec.close()
            if rec.frames:
                self.show_message(f"Recorded {rec.frames} frames to {rec.path}.", "ok")
            else:
                self.show_message("Recording stopped; no frame was estimated meanwhile.", "info")
        button.blockSignals(True)
        button.setChecked(self.recorder is not None)
        button.setText("Stop recording" if self.recorder is not None else "Record video")
        button.blockSignals(False)

    def _record(self, item: Captured, result) -> None:
        """Write the annotated frame once per 1/fps of the source's time it stands for: an estimate
        that took several source frames is held for them, so the recording plays at the real pace
        (a jump back or a gap over RECORD_MAX_HOLD_S, a pause or a seek, is not held)."""
        rec, t = self.recorder, item.frame.timestamp
        if self._record_t0 is None:
            self._record_t0 = t
        copies = int(round((t - self._record_t0) * rec.fps)) + 1 - rec.frames
        if not 1 <= copies <= rec.fps * RECORD_MAX_HOLD_S:
            copies, self._record_t0 = 1, t - rec.frames / rec.fps
        try:
            g = self.cfg.gui
            image = draw_result(item.frame.image, result, g.show_boxes, g.show_scores,
                                self.cfg.estimator.joint_threshold, colour_by="track")
            for _ in range(copies):
                rec.write(image)
        except ExportError as exc:
            self.set_recording(False)
            self.show_message(str(exc), "error")

    def export_keypoints(self, fmt: str = "csv", path: str | Path | None = None) -> Path | None:
        """Write every cached result (sorted by frame) as keypoints CSV or JSON lines."""
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"format must be 'csv' or 'jsonl', not {fmt!r}")
        items = self.cache.items()
        if not items:
            self.show_message("Nothing to export yet: no frame has been estimated.", "error")
            return None
        path = Path(path) if path else self.output_dir / f"{self._stem()}_keypoints.{fmt}"
        try:
            kw = {"csv_path": path} if fmt == "csv" else {"jsonl_path": path}
            with KeypointWriter(**kw) as writer:
                for _, result in items:
                    writer.write(result)
        except ExportError as exc:
            self.show_message(str(exc), "error")
            return None
        self.show_message(f"Exported {len(items)} frames to {path}.", "ok")
        return path

    def save_screenshot(self, path: str | Path | None = None) -> Path | None:
        """Save the current view (full resolution) as PNG."""
        image = self.current_image()
        path = Path(path) if path else \
            self.output_dir / f"{self._stem()}_{self.view}_{time.strftime('%Y%m%d-%H%M%S')}.png"
        try:
            write_image(path, image)
        except ExportError as exc:
            self.show_message(str(exc), "error")
            return None
        self.show_message(f"Screenshot saved to {path}.", "ok")
        return path

    # ================================================================== shutdown
    def shutdown(self) -> bool:
        """Stop both threads; True when they ended within STOP_TIMEOUT_MS."""
        if self._closing:
            return not (self.camera_thread.isRunning() or self.estimator_thread.isRunning())
        self._closing = True
        for timer in (self.display_timer, self.stats_timer, self.plot_timer):
            timer.stop()
        self.set_recording(False)
        self.camera.stop()
        self.estimator.stop()
        for thread in (self.camera_thread, self.estimator_thread):
            thread.quit()   # leaves the thread's event loop as soon as the worker loop returns
        deadline = time.perf_counter() + STOP_TIMEOUT_MS / 1000.0
        ok = True
        for thread in (self.camera_thread, self.estimator_thread):
            left = max(1, int((deadline - time.perf_counter()) * 1000))
            if not thread.wait(left):
                ok = False
                thread.wait()          # never leave a running QThread behind (it would abort)
        return ok

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt name
        if self.settings is not None:
            self.settings.setValue("window/geometry", self.saveGeometry())
            self.settings.sync()
        # the estimate (or the stream connection) under way must end before the threads do: the
        # window goes away at once instead of hanging on screen meanwhile
        self.hide()
        self.shutdown()
        super().closeEvent(event)
