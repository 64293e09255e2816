"""The control panel widgets of the main window (layout only; the window wires them)."""
from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
                               QPushButton, QScrollArea, QSlider, QSpinBox, QStyle, QTabWidget,
                               QToolButton, QVBoxLayout, QWidget)

BOXSIZE_MIN, BOXSIZE_MAX, BOXSIZE_STEP = 64, 640, 8
PANEL_MIN_WIDTH = 290
SPEEDS = (("0.25x", 0.25), ("0.5x", 0.5), ("1x", 1.0), ("2x", 2.0), ("4x", 4.0), ("max", 0.0))


def strength_to_noise(strength: int) -> float:
    """Kalman strength slider 0..100 -> tracking.measurement_noise (px², log scale 0.1..1000)."""
    return float(10 ** (strength / 25.0 - 1.0))


def noise_to_strength(noise: float) -> int:
    return int(round(min(100.0, max(0.0, 25.0 * (math.log10(max(noise, 1e-6)) + 1.0)))))


def score_box(tooltip: str) -> QDoubleSpinBox:
    """A spin box for a score or threshold in 0..1, in steps of 0.05."""
    box = QDoubleSpinBox()
    box.setRange(0.0, 1.0)
    box.setSingleStep(0.05)
    box.setDecimals(2)
    box.setToolTip(tooltip)
    return box


def snap_boxsize(value: int) -> int:
    value = BOXSIZE_STEP * int(round(value / BOXSIZE_STEP))
    return min(BOXSIZE_MAX, max(BOXSIZE_MIN, value))


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
        self.name = QLabel("no source")
        self.name.setWordWrap(True)
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
        self.boxsize_label = QLabel("")
        self.framework = QComboBox()
        self.framework.addItems(["onnxruntime", "torch", "opencv"])
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.backend = QLabel("loading…")
        self.backend.setWordWrap(True)
        self.threshold = score_box("Person-centre threshold: lower finds more (and more false) "
                                   "persons")
        self.pose_score = score_box("Minimum score of a person (the mean of its best 7 joint "
                                    "scores): higher drops more false detections (street "
                                    "furniture), 0 keeps every detection")
        self.flip = QCheckBox("Flip test (more accurate, 2× pose time)")
        self.flip.setToolTip("Also estimate on mirrored crops and average the belief maps")
        self.scale_search = QCheckBox("Scale search (zoomed crops, 3× pose time)")
        self.scale_search.setToolTip("Also estimate each person on crops zoomed in and out "
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
        self.folder = QLabel("")
        self.folder.setWordWrap(True)
        self.folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        grid = QGridLayout(self)
        grid.addWidget(self.record, 0, 0)
        grid.addWidget(self.screenshot, 0, 1)
        grid.addWidget(self.export_csv, 1, 0)
        grid.addWidget(self.export_json, 1, 1)
        grid.addWidget(self.folder, 2, 0, 1, 2)


class ControlPanel(QTabWidget):
    """The four groups as tabs (Source, Estimator, Display, Output), each scrolling vertically
    only: the panel fits beside the picture from 1024 px wide windows up."""

    def __init__(self) -> None:
        super().__init__()
        self.source = SourcePanel()
        self.estimator = EstimatorPanel()
        self.display = DisplayPanel()
        self.output = OutputPanel()
        for w in (self.source, self.estimator, self.display, self.output):
            page = QWidget()
            layout = QVBoxLayout(page)
            layout.addWidget(w)
            layout.addStretch(1)
            scroll = QScrollArea()
            scroll.setWidget(page)
            scroll.setWidgetResizable(True)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            self.addTab(scroll, w.title())
            w.setTitle("")
        self.setMinimumWidth(PANEL_MIN_WIDTH)
