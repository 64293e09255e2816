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

The window owns its parts, each built with what it uses and nothing else:

* :attr:`config` (:class:`.settings.ConfigStore`) - the config, remembered in the settings;
* :attr:`state` (:class:`.state.WindowState`) - the open source, playing, analysing, recording;
* :attr:`status_line` (:class:`.status.StatusLine`) - the message and counters lines;
* :attr:`session` (:class:`.session.SourceSession`) - opening sources;
* :attr:`display` (:class:`.display.Display`) - results, painting, views and the plot;
* :attr:`player` (:class:`.playback.Player`) - play, seek, step, speed, the whole-file analysis;
* :attr:`output` (:class:`.output.Output`) - recording, export, screenshots;
* :attr:`options` (:class:`.options.EstimatorOptions`) - the Estimator and Display controls.

This module builds the widgets, the parts, the threads and the timers, wires them together and
shuts them down.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QRect, QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QApplication, QLabel, QMainWindow, QSizePolicy, QSplitter,
                               QStackedWidget, QStyle, QTabBar, QVBoxLayout, QWidget)

from ..config import Config, set_value, snap_boxsize
from ..sources import open_source
from . import refguard
from .camera_worker import CameraWorker
from .controls import ControlPanel, ElidedLabel, PlaybackBar
from .display import Display
from .estimator_worker import EstimatorWorker
from .options import EstimatorOptions, usable_pose_net
from .output import Output
from .playback import Player
from .plot import PlotPanel
from .screen import PLOT_MIN_HEIGHT, TITLE_BAR, fit_geometry, keep_inside, restore_geometry
from .session import SourceSession
from .settings import ConfigStore
from .slots import FrameSlot, ResultCache
from .start import StartPage, recent_sources
from .state import WindowState
from .status import StatusLine, StatusModel
from .threads import WorkerThreads
from .views import VIEW_TITLES, VIEWS, ImageView

STOP_TIMEOUT_MS = 1000
PLOT_INTERVAL_MS = 400
SCALE_SEARCH_ON = 0.15       # the zoom of "Scale search" when humanpose.yml sets none


def default_factory(cfg: Config):
    from ..estimator.pipeline import PoseEstimator
    return PoseEstimator(cfg)


class MainWindow(QMainWindow):
    """The window: its widgets, its parts (see the module docstring), its threads."""

    def __init__(self, cfg: Config, estimator_factory: Callable | None = None,
                 settings: QSettings | None = None, source: str | None = None,
                 opener: Callable = open_source, file_cfg: Config | None = None) -> None:
        super().__init__()
        refguard.install(QApplication.instance())   # see refguard: PySide6 refcount bug
        self.setWindowTitle("humanpose")
        if snap_boxsize(cfg.estimator.boxsize) != cfg.estimator.boxsize:
            # e.g. 196 in humanpose.yml: the slider's step is 8
            cfg = set_value(cfg, "estimator.boxsize", snap_boxsize(cfg.estimator.boxsize))
        # the zoom "Scale search" turns on, kept while it is off: the one in use, else humanpose.yml's
        # (``file_cfg``: the config before the remembered settings, which store "off" as 0), else 0.15
        scale_zoom = (cfg.estimator.scale_search or (file_cfg or cfg).estimator.scale_search
                      or SCALE_SEARCH_ON)
        cfg, net_note = usable_pose_net(cfg)      # a remembered net whose weights are gone
        self.settings = settings
        self.config = ConfigStore(cfg, settings)
        self.state = WindowState()
        self.estimator_slot = FrameSlot()
        self.display_slot = FrameSlot()
        self.cache = ResultCache()
        self.status = StatusModel()     # playback state, ms/frame, latency of the current source
        self.camera = CameraWorker(self.estimator_slot, self.display_slot, opener)
        self.estimator = EstimatorWorker(self.estimator_slot, self.cache,
                                         estimator_factory or default_factory, cfg)
        self._closing = False
        self._shown_once = False
        self._build_ui()
        self._build_parts(scale_zoom)
        self._build_menu()
        self._connect()
        self._restored = restore_geometry(self, self.settings)
        self._start_threads()
        self._start_timers()
        self.display.refresh()
        self.status_line.render()
        if not self._restored:
            self.fit_to_screen()
        if source:
            self.open_source(source)
        if net_note:
            self.show_message(net_note, "error")

    # ---------------------------------------------------------------- what the window is doing
    cfg = property(lambda self: self.config.cfg)
    info = property(lambda self: self.state.info)
    playing = property(lambda self: self.state.playing)
    analysing = property(lambda self: self.state.analysing)
    recorder = property(lambda self: self.state.recorder)
    message = property(lambda self: self.status_line.message)
    stats = property(lambda self: self.status_line.stats)
    view = property(lambda self: self.display.view)

    # ---------------------------------------------------------------- what it can be asked
    def open_source(self, spec: str) -> None:
        self.session.open_source(spec)

    def source_fps(self) -> float | None:
        return self.state.source_fps()

    def play(self) -> None:
        self.player.play()

    def pause(self) -> None:
        self.player.pause()

    def step(self, delta: int) -> None:
        self.player.step(delta)

    def seek(self, index: int) -> None:
        self.player.seek(index)

    def analyse_whole_file(self, on: bool = True) -> None:
        self.player.analyse_whole_file(on)

    def set_view(self, view: str) -> None:
        self.display.set_view(view)

    def current_image(self):
        return self.display.current_image()

    def view_options(self):
        return self.display.view_options()

    def set_recording(self, on: bool) -> None:
        self.output.set_recording(on)

    def export_keypoints(self, fmt: str = "csv", path=None):
        return self.output.export_keypoints(fmt, path)

    def save_screenshot(self, path=None):
        return self.output.save_screenshot(path)

    def show_message(self, text: str, kind: str = "info") -> None:
        self.status_line.show_message(text, kind)

    # ---------------------------------------------------------------- building
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
        for w, stretch in ((self.tabs, 0), (self.message_label, 0), (self.picture, 1),
                           (self.stats_label, 0), (self.playback, 0)):
            v.addWidget(w, stretch)
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
        self.controls.output.folder.setText(
            f"Output folder: {self.cfg.resolve(self.cfg.output.directory)}")

    def _build_parts(self, scale_zoom: float) -> None:
        c, style = self.controls, self.style()
        self.status_line = StatusLine(
            self.state, self.status, self.config, self.cache, self.estimator_slot, self.camera,
            self.message_label, self.stats_label, self.statusBar(), self.playback.progress,
            c.estimator.boxsize_label, c.estimator.pose_net_label)
        self.session = SourceSession(self.state, self.camera, self.config, self.status_line,
                                     c, self.start_page, dialog_parent=self)
        self.display = Display(self.state, self.config, self.cache, self.display_slot,
                               self.status_line, self.session, c.display.person,
                               self.image_view, self.tabs, self.plot)
        self.player = Player(self.state, self.camera, self.estimator, self.cache,
                             self.status_line, self.playback, self.plot, self.settings,
                             style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay),
                             style.standardIcon(QStyle.StandardPixmap.SP_MediaPause))
        self.output = Output(self.state, self.config, self.cache, self.status_line,
                             self.display, c.output.record)
        self.options = EstimatorOptions(self.state, self.config, self.estimator, c,
                                        self.status_line, self.display, self.player,
                                        self.estimator_slot, self.display_slot, scale_zoom)

    def _build_menu(self) -> None:
        s, p, o = self.session, self.player, self.output
        menus = {
            "&File": (("Open &video…", QKeySequence.StandardKey.Open, s.choose_video),
                      ("Open &image…", "Ctrl+I", s.choose_image),
                      ("Open &folder…", "Ctrl+Shift+O", s.choose_folder),
                      ("Open &webcam", "Ctrl+Shift+W", s.open_camera),
                      ("Open stream &URL…", "Ctrl+L", s.focus_url),
                      ("&Record video", "Ctrl+R", self.controls.output.record.toggle),
                      ("&Screenshot", "Ctrl+S", o.save_screenshot),
                      ("Export keypoints &CSV", "Ctrl+E", lambda: o.export_keypoints("csv")),
                      ("Export keypoints &JSON", "Ctrl+J", lambda: o.export_keypoints("jsonl")),
                      ("&Quit", "Ctrl+Q", self.close)),
            "&View": tuple((VIEW_TITLES[v], str(n + 1), lambda _=False, v=v: self.set_view(v))
                           for n, v in enumerate(VIEWS)),
            "&Playback": (("Play / pause", "Space", p.toggle_play),
                          ("Frame back", "Left", lambda: p.step(-1)),
                          ("Frame forward", "Right", lambda: p.step(+1)),
                          ("Analyse whole file", "Ctrl+A", self.playback.analyse.toggle)),
            "&Settings": (("Reload models", "F5", self.options.reload_models),
                          ("Forget remembered settings", None, self.options.forget_settings)),
        }
        for title, actions in menus.items():
            menu = self.menuBar().addMenu(title)
            for text, key, slot in actions:
                act = QAction(text, self)
                if key is not None:
                    act.setShortcut(QKeySequence(key))
                act.triggered.connect(slot)
                menu.addAction(act)

    def _connect(self) -> None:
        c, s, d, p, o = self.controls, self.session, self.display, self.player, self.output
        self.tabs.currentChanged.connect(lambda i: self.set_view(VIEWS[i]))
        self.config.changed.connect(d.force_redraw)
        for button, slot in ((c.source.open_camera, s.open_camera),
                             (c.source.open_video, s.choose_video),
                             (c.source.open_image, s.choose_image),
                             (c.source.open_folder, s.choose_folder),
                             (c.source.open_url, s.open_url),
                             (self.start_page.open_video, s.choose_video),
                             (self.start_page.open_folder, s.choose_folder),
                             (self.start_page.open_image, s.choose_image),
                             (self.start_page.open_camera, s.open_camera)):
            button.clicked.connect(slot)
        c.source.url.returnPressed.connect(s.open_url)
        self.start_page.open_requested.connect(s.open_source)
        # the parts answer each other through the window: a source replaced or lost ends the
        # recording and the analysis; a new one starts the picture, the plot and the bar over
        s.interrupted.connect(lambda: o.set_recording(False))
        s.interrupted.connect(lambda: p.stop_analysis(finished=False, resume=False))
        s.opened.connect(self._on_opened)
        s.opened.connect(d.on_opened)
        s.opened.connect(p.on_opened)
        d.result_arrived.connect(o.on_result)
        d.result_arrived.connect(p.on_result)
        c.display.person.currentIndexChanged.connect(d.on_person)
        o_ = c.output
        o_.record.toggled.connect(o.set_recording)
        o_.export_csv.clicked.connect(lambda: o.export_keypoints("csv"))
        o_.export_json.clicked.connect(lambda: o.export_keypoints("jsonl"))
        o_.screenshot.clicked.connect(lambda: o.save_screenshot())
        self.plot.seek_requested.connect(p.seek_time)

    def _on_opened(self, info) -> None:
        self.picture.setCurrentWidget(self.image_view)
        self.setWindowTitle(f"humanpose – {info.name}")

    def _start_threads(self) -> None:
        self.threads = WorkerThreads(self.camera, self.estimator, self)
        self.camera_thread, self.estimator_thread = self.threads.camera_thread, \
            self.threads.estimator_thread
        c, e, s, p = self.camera, self.estimator, self.session, self.player
        c.on_generation = e.new_source
        # worker signals go to methods of QObjects of the GUI thread only (a lambda would run in
        # the worker's thread; a method of a QObject runs queued in the GUI thread)
        for signal, slot in ((c.opened, s.on_opened), (c.failed, s.on_open_failed),
                             (c.lost, s.on_lost), (c.ended, p.on_ended),
                             (c.position, p.on_position), (c.rate, s.on_rate),
                             (c.state, p.on_state),
                             (e.ready, self.options.on_estimator_ready),
                             (e.failed, self.options.on_estimator_failed),
                             (e.result, self.display.on_result),
                             (e.applied, self.options.on_applied)):
            signal.connect(slot)
        self.threads.start()

    def _start_timers(self) -> None:
        self.timers = []
        for interval, slots in ((max(5, int(1000 / self.cfg.gui.display_fps)), (self.display.refresh,)),
                                (1000, (self.status_line.update_stats,)),
                                (PLOT_INTERVAL_MS, (self.player.update_cursor, self.display.update_plot))):
            timer = QTimer(self)
            timer.setInterval(interval)
            for slot in slots:
                timer.timeout.connect(slot)
            timer.start()
            self.timers.append(timer)

    # ---------------------------------------------------------------- geometry
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
        keep_inside(self, self.available_geometry())

    def showEvent(self, event) -> None:  # noqa: N802 - Qt name
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            QTimer.singleShot(300, self.keep_inside_screen)   # once the frame is known

    # ---------------------------------------------------------------- closing
    def shutdown(self, timeout_ms: int = STOP_TIMEOUT_MS) -> bool:
        """Stop both threads, waiting at most ``timeout_ms`` for them (the estimate under way is
        cancelled before its next net pass); True when they ended.  A thread that did not end
        (a stream read that blocks) is left running, kept from destruction in
        :data:`.threads.UNFINISHED`; the application's process ends without waiting for it
        (:func:`humanpose.gui.app.main`)."""
        if self._closing:
            return not self.threads.running()
        self._closing = True
        for timer in self.timers:
            timer.stop()
        self.output.set_recording(False)
        return self.threads.stop(timeout_ms)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt name
        if self.settings is not None:
            self.settings.setValue("window/geometry", self.saveGeometry())
            self.settings.sync()
        # the estimate (or the stream connection) under way must end before the threads do: the
        # window goes away at once instead of hanging on screen meanwhile
        self.hide()
        self.shutdown()
        super().closeEvent(event)
