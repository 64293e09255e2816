"""The main window: a camera thread, an estimator thread and the GUI thread painting at display rate.

``MainWindow(cfg, estimator_factory=None, settings=None, source=None, opener=open_source,
file_cfg=None)``

* ``cfg`` - the :class:`~humanpose.config.Config` (``humanpose.yml`` with the remembered
  QSettings already applied, see :mod:`.settings`);
* ``estimator_factory(cfg) -> PoseEstimator`` - how the estimator thread builds its estimator
  (default: :class:`PoseEstimator` with the weights named in ``cfg``; tests inject tiny models);
* ``settings`` - the QSettings to remember changes in (None: remember nothing);
* ``source`` - what to open at start (None or "": nothing, the start page offers a video, a
  folder, the webcam and the recent sources);
* ``opener`` - how a source is opened (default :func:`~humanpose.sources.open_source`; tests
  inject failures);
* ``file_cfg`` - the config before the remembered settings (default ``cfg``): the zoom that
  "Scale search" turns on when the remembered settings say it was off.

Every error (no camera, lost source, unreadable file, missing weights...) is shown in the
message line above the picture and in the status bar; nothing blocks in a modal dialog except
the file choosers the user asked for.

The class is put together from one mixin per responsibility: :mod:`.session` (opening sources),
:mod:`.playback` (play, seek, analysis), :mod:`.output` (record, export, screenshot),
:mod:`.status` (message and counters), :mod:`.options` (estimator and display settings) and
:mod:`.display` (results, painting, plot); this module builds the widgets, the threads and the
timers and shuts them down.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import QByteArray, QRect, QSettings, QSize, Qt, QThread, QTimer
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QApplication, QLabel, QMainWindow, QSizePolicy, QSplitter,
                               QStackedWidget, QStyle, QTabBar, QVBoxLayout, QWidget)

from ..config import Config, set_value
from ..sources import open_source
from . import refguard
from ..config import snap_boxsize
from .controls import ControlPanel, ElidedLabel, PlaybackBar, noise_to_strength
from .display import Display
from .options import EstimatorOptions
from .output import Output
from .playback import Playback
from .plot import PlotPanel
from .session import SourceSession
from .screen import PLOT_MIN_HEIGHT, TITLE_BAR, fit_geometry
from .slots import FrameSlot, ResultCache
from .start import StartPage, recent_sources
from .status import Status, StatusModel
from .views import VIEW_TITLES, VIEWS, ImageView
from .camera_worker import CameraWorker, Captured, SourceInfo
from .estimator_worker import EstimatorWorker

if TYPE_CHECKING:
    from ..export.writers import VideoWriter

log = logging.getLogger(__name__)

STOP_TIMEOUT_MS = 1000
UNFINISHED: list[tuple] = []    # (thread, worker) that did not stop when their window closed
PLOT_INTERVAL_MS = 400
SCALE_SEARCH_ON = 0.15       # the zoom of "Scale search" when humanpose.yml sets none
def default_factory(cfg: Config):
    from ..estimator.pipeline import PoseEstimator
    return PoseEstimator(cfg)


class MainWindow(SourceSession, Playback, Output, Status, EstimatorOptions, Display, QMainWindow):
    """The window; each responsibility lives in its own mixin module (see the module docstring)."""

    def __init__(self, cfg: Config, estimator_factory: Callable | None = None,
                 settings: QSettings | None = None, source: str | None = None,
                 opener: Callable = open_source, file_cfg: Config | None = None) -> None:
        super().__init__()
        refguard.install(QApplication.instance())   # see refguard: PySide6 refcount bug
        self.cfg = cfg
        self.settings = settings
        self.setWindowTitle("humanpose")

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
        self.status = StatusModel()     # playback state, ms/frame, latency of the current source
        self._plot_version = -1
        self._cursor_time: float | None = None
        self._seen_ids: set[int] = set()
        self.measured_fps: float | None = None   # a live source's frame rate, as measured
        self._described = None       # (shape, name) of the frame the info line describes
        self._closing = False
        self._restored = False       # a remembered window geometry was applied
        self._shown_once = False
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
        c.rate.connect(self._on_rate)
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
        self._render_status()
        if not self._restored:
            self.fit_to_screen()
        if source:
            self.open_source(source)

    def _build_ui(self) -> None:
        self.tabs = QTabBar()
        for v in VIEWS:
            self.tabs.addTab(VIEW_TITLES[v])
        self.tabs.setToolTip("Views (keys 1, 2, 3)")
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.message_label.setObjectName("message")
        self.message_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.stats_label = ElidedLabel("")      # never widens the window
        self.stats_label.setObjectName("stats")
        self.image_view = ImageView()
        self.start_page = StartPage()
        self.start_page.set_recent(recent_sources(self.settings, self.cfg.source.source))
        self.picture = QStackedWidget()         # the start page until a source is open
        self.picture.addWidget(self.start_page)
        self.picture.addWidget(self.image_view)
        self.playback = PlaybackBar()
        self.plot = PlotPanel()
        self.controls = ControlPanel()

        top = QWidget()
        v = QVBoxLayout(top)
        v.setContentsMargins(4, 4, 4, 0)
        v.addWidget(self.tabs)
        v.addWidget(self.message_label)
        v.addWidget(self.picture, 1)
        v.addWidget(self.stats_label)
        v.addWidget(self.playback)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(self.plot)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        split.setSizes([560, 200])
        split.setCollapsible(0, False)
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(split)
        main.addWidget(self.controls)        # as wide as its widest page (ControlPanel)
        main.setStretchFactor(0, 1)
        main.setStretchFactor(1, 0)
        main.setCollapsible(0, False)
        main.setCollapsible(1, False)
        main.setSizes([960, self.controls.sizeHint().width()])
        self.main_split, self.plot_split = main, split
        self.setCentralWidget(main)
        self.statusBar().addPermanentWidget(QLabel(""))
        self._build_menu()

    def _build_menu(self) -> None:
        style = self.style()
        file_menu = self.menuBar().addMenu("&File")
        src = self.controls.source
        for text, key, slot in (("Open &video…", QKeySequence.StandardKey.Open, self.choose_video),
                                ("Open &image…", "Ctrl+I", self.choose_image),
                                ("Open &folder…", "Ctrl+Shift+O", self.choose_folder),
                                ("Open &webcam", "Ctrl+Shift+W",
                                 lambda: self.open_source(str(src.camera_index.value()))),
                                ("Open stream &URL…", "Ctrl+L", self._focus_url),
                                ("&Record video", "Ctrl+R", self.controls.output.record.toggle),
                                ("&Screenshot", "Ctrl+S", self.save_screenshot),
                                ("Export keypoints &CSV", "Ctrl+E", lambda: self.export_keypoints("csv")),
                                ("Export keypoints &JSON", "Ctrl+J", lambda: self.export_keypoints("jsonl")),
                                ("&Quit", "Ctrl+Q", self.close)):
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
                                ("Frame forward", "Right", lambda: self.step(+1)),
                                ("Analyse whole file", "Ctrl+A", self.playback.analyse.toggle)):
            act = QAction(text, self)
            act.setShortcut(QKeySequence(key))
            act.triggered.connect(slot)
            play_menu.addAction(act)
        settings_menu = self.menuBar().addMenu("&Settings")
        for text, key, slot in (("Reload models", "F5", self.reload_models),
                                ("Forget remembered settings", None, self.forget_settings)):
            act = QAction(text, self)
            if key is not None:
                act.setShortcut(QKeySequence(key))
            act.triggered.connect(slot)
            settings_menu.addAction(act)
        self._play_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay)
        self._pause_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPause)

    def available_geometry(self) -> QRect:
        """The available area (without panels and docks) of the screen the window is on."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        return screen.availableGeometry()

    def fit_to_screen(self) -> None:
        """Size the window to its screen's available area and put it inside (see
        :func:`fit_geometry`); the picture and the plot share the height left."""
        frame = self.frameGeometry().size() - self.geometry().size() if self.isVisible() \
            else QSize(0, 0 if QGuiApplication.platformName() == "offscreen" else TITLE_BAR)
        rect = fit_geometry(self.available_geometry(), self.minimumSizeHint(), frame)
        self.setGeometry(rect)
        self.fit_to_screen_height(rect.height())

    def fit_to_screen_height(self, height: int) -> None:
        """The plot's share of a window ``height`` px high: room for its joint list unscrolled."""
        plot = max(PLOT_MIN_HEIGHT, min(260, height // 4))
        self.plot_split.setSizes([height - plot, plot])

    def keep_inside_screen(self) -> None:
        """Move (and if need be shrink) the window so that its frame lies inside the screen's
        available area: a remembered geometry from a larger screen, a window manager that
        placed it off the edge."""
        avail, frame = self.available_geometry(), self.frameGeometry()
        if avail.contains(frame):
            return
        extra = frame.size() - self.geometry().size()
        w = max(self.minimumSizeHint().width(), min(self.width(), avail.width() - extra.width()))
        h = max(self.minimumSizeHint().height(), min(self.height(), avail.height() - extra.height()))
        self.resize(w, h)
        x = min(max(frame.x(), avail.x()), avail.right() + 1 - w - extra.width())
        y = min(max(frame.y(), avail.y()), avail.bottom() + 1 - h - extra.height())
        self.move(max(avail.x(), x), max(avail.y(), y))

    def showEvent(self, event) -> None:  # noqa: N802 - Qt name
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            QTimer.singleShot(300, self.keep_inside_screen)   # once the frame is known

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
        d.low_latency.setChecked(cfg.gui.low_latency_display)
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
            if geometry is not None:
                self._restored = (isinstance(geometry, (QByteArray, bytes))
                                  and self.restoreGeometry(geometry))
                if not self._restored:
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
        start = self.start_page
        start.open_video.clicked.connect(self.choose_video)
        start.open_folder.clicked.connect(self.choose_folder)
        start.open_image.clicked.connect(self.choose_image)
        start.open_camera.clicked.connect(lambda: self.open_source(str(c.source.camera_index.value())))
        start.open_requested.connect(self.open_source)
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
                         (d.blend, "gui.heatmap_blend"), (d.low_latency, "gui.low_latency_display")):
            box.toggled.connect(lambda on, key=key: self._set_cfg(key, bool(on)))
        d.person.currentIndexChanged.connect(self._on_person)
        d.joint_score.valueChanged.connect(self._on_joint_score)
        o = c.output
        o.record.toggled.connect(self.set_recording)
        o.export_csv.clicked.connect(lambda: self.export_keypoints("csv"))
        o.export_json.clicked.connect(lambda: self.export_keypoints("jsonl"))
        o.screenshot.clicked.connect(self.save_screenshot)
        self.plot.seek_requested.connect(self.seek_time)

    def shutdown(self, timeout_ms: int = STOP_TIMEOUT_MS) -> bool:
        """Stop both threads, waiting at most ``timeout_ms`` for them (the estimate under way is
        cancelled before its next net pass); True when they ended.  A thread that did not end
        (a stream read that blocks) is left running, kept from destruction in
        :data:`UNFINISHED`; the application's process ends without waiting for it
        (:func:`humanpose.gui.app.main`)."""
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
        deadline = time.perf_counter() + timeout_ms / 1000.0
        ok = True
        for thread, worker in ((self.camera_thread, self.camera),
                               (self.estimator_thread, self.estimator)):
            left = max(1, int((deadline - time.perf_counter()) * 1000))
            if not thread.wait(left):
                ok = False
                log.warning("%s did not stop within %d ms; not waiting for it",
                            thread.objectName(), timeout_ms)
                # a running QThread (and its worker) must not be destroyed with the window
                thread.setParent(None)
                UNFINISHED.append((thread, worker))
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
