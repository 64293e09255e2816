"""The control panel widgets of the main window (layout only; the window wires them)."""
from __future__ import annotations

import math

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
                               QPushButton, QScrollArea, QSizePolicy, QSlider, QSpinBox, QStyle,
                               QTabWidget, QToolButton, QVBoxLayout, QWidget)

from ..config import BOXSIZE_MAX, BOXSIZE_MIN, BOXSIZE_STEP

PANEL_MIN_WIDTH = 290
# the pose nets offered in the Estimator tab: (title, model.pose_model)
POSE_NETS = (("Fast", "pose_mobilenet"), ("Accurate", "pose_mobilenet_accurate"))
SPEEDS = (("0.25x", 0.25), ("0.5x", 0.5), ("1x", 1.0), ("2x", 2.0), ("4x", 4.0), ("max", 0.0))


def strength_to_noise(strength: int) -> float:
    """Kalman strength slider 0..100 -> tracking.measurement_noise (px², log scale 0.1..1000)."""
    return float(10 ** (strength / 25.0 - 1.0))


def noise_to_strength(noise: float) -> int:
    return int(round(min(100.0, max(0.0, 25.0 * (math.log10(max(noise, 1e-6)) + 1.0)))))


def score_box(tooltip: str) -> QDoubleSpinBox:
    """A spin box for a score or threshold, in steps of 0.05 (its range comes from the config
    key it sets: :mod:`.options`)."""
    box = QDoubleSpinBox()
    box.setSingleStep(0.05)
    box.setDecimals(2)
    box.setToolTip(tooltip)
    return box


class ElidedLabel(QLabel):
    """One line of status text that never widens its layout: what does not fit ends in "…"
    (the whole text in the tooltip).  :meth:`text` is the whole text."""

    def __init__(self, text: str = "") -> None:
        super().__init__()
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt name
        self._full = text
        self._elide()

    def text(self) -> str:
        return self._full

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt name
        return QSize(0, super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt name
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight,
                                              max(0, self.contentsRect().width()))
        super().setText(shown)
        self.setToolTip(self._full if shown != self._full else "")


def wrapping_label(text: str = "") -> QLabel:
    """A word-wrapped label whose text (a long path, a file name) never widens its layout: it
    wraps at the layout's width, also inside a path (see :func:`breakable`)."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


def breakable(text: str) -> str:
    """``text`` with a zero-width space after each path separator, where a word-wrapped label
    may break a long path."""
    for sep in ("/", "\\"):
        text = text.replace(sep, sep + "\u200b")
    return text


class SourcePanel(QGroupBox):
    def __init__(self) -> None:
        super().__init__("Source")
        self.camera_index = QSpinBox()
        self.camera_index.setRange(0, 15)
        self.camera_index.setToolTip("Webcam index (0 = first camera)")
        self.open_camera = QPushButton("Webcam")
        self.open_video = QPushButton("Video…")
        self.open_image = QPushButton("Image…")
        self.open_folder = QPushButton("Folder…")
        self.url = QLineEdit()
        self.url.setPlaceholderText("rtsp:// or http:// stream URL")
        self.open_url = QPushButton("Open")
        self.name = wrapping_label("no source")
        grid = QGridLayout(self)          # two buttons a row: fits a narrow panel
        grid.addWidget(QLabel("Camera"), 0, 0)
        grid.addWidget(self.camera_index, 0, 1)
        grid.addWidget(self.open_camera, 0, 2)
        grid.addWidget(self.open_video, 1, 0, 1, 2)
        grid.addWidget(self.open_image, 1, 2)
        grid.addWidget(self.open_folder, 2, 0, 1, 2)
        grid.addWidget(self.url, 3, 0, 1, 2)
        grid.addWidget(self.open_url, 3, 2)
        grid.addWidget(self.name, 4, 0, 1, 3)


class PlaybackBar(QWidget):
    def __init__(self) -> None:
        super().__init__()
        style = self.style()
        self.play = QToolButton()
        self.play.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay))
        self.play.setToolTip("Play / pause (Space)")
        self.play.setCheckable(True)
        self.back = QToolButton()
        self.back.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaSeekBackward))
        self.back.setToolTip("One frame back (Left)")
        self.forward = QToolButton()
        self.forward.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaSeekForward))
        self.forward.setToolTip("One frame forward (Right)")
        self.seek = QSlider(Qt.Orientation.Horizontal)
        self.seek.setRange(0, 0)
        self.seek.setToolTip("Seek")
        self.frame = QLabel("– / –")
        self.frame.setMinimumWidth(90)
        self.frame.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.speed = QComboBox()
        for text, value in SPEEDS:
            self.speed.addItem(text, value)
        self.speed.setCurrentIndex(2)
        self.speed.setToolTip("Playback speed of video files (max = as fast as possible)")
        self.analyse = QPushButton("Analyse whole file")
        self.analyse.setCheckable(True)
        self.analyse.setToolTip("Estimate every frame of the file (results are cached)")
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(140)
        self.progress.setFormat("%p% cached")
        self.progress.setVisible(False)      # a file or folder only: a stream's share is not known
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        for w in (self.play, self.back, self.forward):
            row.addWidget(w)
        row.addWidget(self.seek, 1)
        row.addWidget(self.frame)
        row.addWidget(QLabel("Speed"))
        row.addWidget(self.speed)
        row.addWidget(self.analyse)
        row.addWidget(self.progress)


class EstimatorPanel(QGroupBox):
    def __init__(self) -> None:
        super().__init__("Estimator")
        self.boxsize = QSlider(Qt.Orientation.Horizontal)
        self.boxsize.setRange(BOXSIZE_MIN, BOXSIZE_MAX)
        self.boxsize.setSingleStep(BOXSIZE_STEP)
        self.boxsize.setPageStep(4 * BOXSIZE_STEP)
        self.boxsize.setTickInterval(64)
        self.boxsize.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.boxsize.setToolTip("Box size in pixels (multiples of 8): bigger = more accurate, slower")
        self.boxsize_label = ElidedLabel("")
        self.pose_net = QComboBox()
        for title, name in POSE_NETS:
            self.pose_net.addItem(title, name)
        self.pose_net.setToolTip("The pose net: Fast (the default) or Accurate (a bigger net, "
                                 "more ms per frame); switched without a restart")
        self.pose_net_label = wrapping_label("")
        self.framework = QComboBox()
        self.framework.addItems(["onnxruntime", "torch", "opencv"])
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.backend = wrapping_label("loading…")
        self.threshold = score_box("Person-centre threshold: lower finds more (and more false) "
                                   "persons")
        self.pose_score = score_box("Minimum score of a person (the mean of its best 7 joint "
                                    "scores): higher drops more false detections (street "
                                    "furniture), 0 keeps every detection")
        self.flip = QCheckBox("Flip test (2× pose time)")
        self.flip.setToolTip("More accurate: also estimate on mirrored crops and average the "
                             "belief maps")
        self.scale_search = QCheckBox("Scale search (3× pose time)")
        self.scale_search.setToolTip("Zoomed crops: also estimate each person on crops zoomed "
                                     "in and out "
                                     "(estimator.scale_search, 15 % unless humanpose.yml sets "
                                     "another) and average the belief maps")
        self.rescale = QCheckBox("Rescale crops to the person")
        self.rescale.setToolTip("Re-estimate persons much smaller or larger than the box on a "
                                "crop cut to fit them (up to 2× pose time)")
        self.tracking = QCheckBox("Track persons (stable ids)")
        self.kalman = QCheckBox("Kalman smoothing")
        self.strength = QSlider(Qt.Orientation.Horizontal)
        self.strength.setRange(0, 100)
        self.strength.setToolTip("Smoothing strength (measurement noise, log scale)")
        self.reload = QPushButton("Reload models")
        form = QFormLayout(self)
        form.addRow("Box size", self.boxsize)
        form.addRow("", self.boxsize_label)
        form.addRow("Pose net", self.pose_net)
        form.addRow("", self.pose_net_label)
        row = QHBoxLayout()
        row.addWidget(self.framework)
        row.addWidget(self.device)
        form.addRow("Backend", row)
        form.addRow("", self.backend)
        form.addRow("Person threshold", self.threshold)
        form.addRow("Min pose score", self.pose_score)
        form.addRow(self.flip)
        form.addRow(self.scale_search)
        form.addRow(self.rescale)
        form.addRow(self.tracking)
        form.addRow(self.kalman)
        form.addRow("Strength", self.strength)
        form.addRow(self.reload)


class DisplayPanel(QGroupBox):
    def __init__(self) -> None:
        super().__init__("Display")
        self.person = QComboBox()
        self.person.addItem("most confident", -1)
        self.person.setToolTip("Person shown in the heatmap and multi-stage views and the plot "
                               "(most confident: in the plot, the person most confident over "
                               "the whole clip)")
        self.joint_score = score_box("Joints scored below this are not drawn nor plotted: a joint "
                                     "out of the frame (the legs of a person at a desk) is "
                                     "otherwise drawn somewhere in view; 0 draws every joint")
        self.boxes = QCheckBox("Boxes")
        self.scores = QCheckBox("Joint confidences")
        self.blend = QCheckBox("Blend maps over the crop")
        self.low_latency = QCheckBox("Low latency display")
        self.low_latency.setToolTip("Show each camera frame at once with the newest pose, which "
                                    "was computed on an earlier frame (skeletons trail moving "
                                    "people); off: each pose is shown on its own frame, the "
                                    "picture later by the estimator's latency")
        form = QFormLayout(self)
        form.addRow("Person", self.person)
        form.addRow("Min joint score", self.joint_score)
        form.addRow(self.boxes)
        form.addRow(self.scores)
        form.addRow(self.blend)
        form.addRow(self.low_latency)


class OutputPanel(QGroupBox):
    def __init__(self) -> None:
        super().__init__("Output")
        self.record = QPushButton("Record video")
        self.record.setCheckable(True)
        self.record.setToolTip("Record the annotated frames (one per estimate) to the output folder")
        self.export_csv = QPushButton("Export CSV")
        self.export_json = QPushButton("Export JSON")
        self.screenshot = QPushButton("Screenshot")
        self.folder = wrapping_label("")
        self.folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        grid = QGridLayout(self)
        grid.addWidget(self.record, 0, 0)
        grid.addWidget(self.screenshot, 0, 1)
        grid.addWidget(self.export_csv, 1, 0)
        grid.addWidget(self.export_json, 1, 1)
        grid.addWidget(self.folder, 2, 0, 1, 2)


class ControlPanel(QTabWidget):
    """The four groups as tabs (Source, Estimator, Display, Output), each scrolling vertically
    only.  The panel's width comes from its pages: its size hints are those of the widest page
    plus the room of a vertical scroll bar and the frames, so no page is ever wider than its
    viewport (and nothing is cut on the right); texts that change (status, paths) wrap or
    elide and never widen it."""

    def __init__(self) -> None:
        super().__init__()
        self.source = SourcePanel()
        self.estimator = EstimatorPanel()
        self.display = DisplayPanel()
        self.output = OutputPanel()
        self.scrolls: list[QScrollArea] = []
        for w in (self.source, self.estimator, self.display, self.output):
            page = QWidget()
            layout = QVBoxLayout(page)
            layout.addWidget(w)
            layout.addStretch(1)
            scroll = QScrollArea()
            scroll.setWidget(page)
            scroll.setWidgetResizable(True)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            self.scrolls.append(scroll)
            self.addTab(scroll, w.title())
            w.setTitle("")
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)

    def _width_for(self, page_width: int) -> int:
        """The panel width that gives a page of ``page_width`` a viewport as wide."""
        scroll = self.scrolls[0]
        bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        frame = 2 * scroll.frameWidth()
        tab_frame = 2 * self.style().pixelMetric(QStyle.PixelMetric.PM_DefaultFrameWidth) + 4
        return max(PANEL_MIN_WIDTH, page_width + bar + frame + tab_frame)

    def page_width(self) -> int:
        """The widest page's size hint (each page needs at least its minimum size hint)."""
        return max(max(s.widget().sizeHint().width(), s.widget().minimumSizeHint().width())
                   for s in self.scrolls)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt name
        hint = super().minimumSizeHint()
        return QSize(self._width_for(self.page_width()), hint.height())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt name
        hint = super().sizeHint()
        return QSize(self._width_for(self.page_width()), hint.height())
