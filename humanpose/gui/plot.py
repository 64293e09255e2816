"""Plot panel: chosen joint angles or joint coordinates of the selected person against time.

Data come from the per-frame result cache; a vertical cursor marks the current frame and a click
into the plot asks the window to seek there (:attr:`PlotPanel.seek_requested`, seconds).

The curves follow one identity (a track id: the chosen one, else the person seen most) and
show gaps, not jumps: where that person is not in the frame, where a joint is below the joint
threshold, where no frame was estimated for BREAK_GAP_S, and where the track moved to someone
else (:func:`identity_breaks`: its joints jumped further than a person walks, or its size
changed by more than BREAK_SIZE; the tracker itself gives a pose that jumped to someone else
a new id, :func:`humanpose.estimator.tracking.identity_jump`, so such a curve ends there).
The joints are those of the overlay (Kalman-smoothed with the same tracking settings).  The
plot's title names the person plotted.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QVBoxLayout, QWidget)

from ..skeleton import ANGLES, JOINT_LABELS, NUM_JOINTS
from .views import AUTO, select_person

MODES = ("angles", "coordinates")
DEFAULT_ANGLES = ("R elbow", "L elbow", "R knee", "L knee", "R hip", "L hip")
DEFAULT_JOINTS = ("R wrist", "L wrist")
BREAK_GAP_S = 1.0     # no estimate of the person for this long: the curve is not joined across
BREAK_JUMP = 0.5      # the joints' centre moved more than this share of the person's size ...
BREAK_SPEED = 2.0     # ... plus this share per second between two estimates: another person
BREAK_SIZE = 1.6      # the person's size changed by more than this factor: another person
PENS = [(230, 80, 80), (80, 160, 255), (250, 180, 40), (90, 200, 90), (200, 90, 220),
        (60, 210, 210), (240, 240, 240), (160, 120, 60)]


def _angles(joints: np.ndarray, name: str) -> np.ndarray:
    """skeleton.joint_angle for a (F, 14, 2) array at once (degrees, NaN where undefined)."""
    a, v, b = ANGLES[name]
    u = joints[:, a] - joints[:, v]
    w = joints[:, b] - joints[:, v]
    nu, nw = np.linalg.norm(u, axis=1), np.linalg.norm(w, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.einsum("ij,ij->i", u, w) / (nu * nw)
        out = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    out[~np.isfinite(nu * nw) | (nu == 0) | (nw == 0)] = np.nan
    return out


def main_track(items) -> int | None:
    """The track id with the largest summed person score over (index, PoseResult) pairs (the
    clip's main person), or None when no person has a track id (tracking off)."""
    totals: dict[int, float] = {}
    for _, result in items:
        for p in (result.persons if result is not None else ()):
            if p.track_id >= 0:
                totals[p.track_id] = totals.get(p.track_id, 0.0) + float(p.centre_score)
    return max(totals, key=lambda t: (totals[t], -t)) if totals else None


def series(items, mode: str, names: list[str], person: int = AUTO,
           joint_threshold: float = 0.1) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(times, {curve name: values}) from (index, PoseResult) pairs; NaN where not found.

    ``person`` AUTO follows one person through time: the ``main_track`` when persons are tracked
    (a curve that jumped between persons, whichever is the most confident in each frame, would
    not describe anyone), else the most confident person of each frame.
    mode "angles": names are keys of skeleton.ANGLES (degrees, as skeleton.joint_angle);
    "coordinates": names are joint labels and each gives two curves "<name> x" and "<name> y"
    (frame pixels).  Joints scored below ``joint_threshold`` count as missing.
    """
    times, xy = _person_joints(items, person, joint_threshold)
    out: dict[str, np.ndarray] = {}
    for name in names:
        if mode == "angles":
            out[name] = _angles(xy, name)
        else:
            j = JOINT_LABELS.index(name)
            out[f"{name} x"], out[f"{name} y"] = xy[:, j, 0].copy(), xy[:, j, 1].copy()
    return times, out


def _person_joints(items, person: int, joint_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(times (F,), joint x, y (F, 14, 2), NaN where absent or below ``joint_threshold``) of the
    person ``series`` follows."""
    if person == AUTO:
        track = main_track(items)
        person = AUTO if track is None else track
    times = np.array([r.timestamp for _, r in items], dtype=np.float64)
    joints = np.full((len(items), NUM_JOINTS, 3), np.nan)
    for n, (_, result) in enumerate(items):
        p = select_person(result, person)
        if p is not None:
            joints[n] = p.joints
    joints[joints[..., 2] < joint_threshold, :2] = np.nan
    return times, joints[..., :2]


def identity_breaks(items, person: int = AUTO, joint_threshold: float = 0.1) -> np.ndarray:
    """(F,) bools: True where the curve must not join a sample to the previous one of the same
    person (``series``'s): more than BREAK_GAP_S apart, or the track went over to someone else
    (its joints' centre moved more than BREAK_JUMP + BREAK_SPEED x seconds person sizes, or its
    size changed by more than BREAK_SIZE)."""
    times, xy = _person_joints(items, person, joint_threshold)
    out = np.zeros(len(times), bool)
    prev = None
    for n in range(len(times)):
        seen = np.isfinite(xy[n]).all(1)
        if seen.sum() < 4:           # too few joints to tell where and how large the person is
            continue
        centre = np.median(xy[n, seen], axis=0)
        size = float((xy[n, seen].max(0) - xy[n, seen].min(0)).max())
        if prev is not None:
            dt = times[n] - prev[0]
            jump = np.hypot(*(centre - prev[1])) / max(size, prev[2], 1.0)
            ratio = max(size, 1.0) / max(prev[2], 1.0)
            out[n] = (dt > BREAK_GAP_S or jump > BREAK_JUMP + BREAK_SPEED * max(dt, 0.0)
                      or not 1 / BREAK_SIZE <= ratio <= BREAK_SIZE)
        prev = (times[n], centre, size)
    return out


class PlotPanel(QWidget):
    seek_requested = Signal(float)   # seconds

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.mode = "angles"
        self.person = AUTO
        self.joint_threshold = 0.1
        self._items: list = []
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._colours: dict[str, tuple] = {}     # the pen colour of each curve on show

        self.mode_box = QComboBox()
        self.mode_box.addItems(["Joint angles (deg)", "Coordinates (px)"])
        self.mode_box.setToolTip("Plot joint angles or joint coordinates against time")
        self.choices = QListWidget()
        self.choices.setMaximumWidth(170)
        self.choices.setToolTip("Tick the angles / joints to plot")
        self.plot = pg.PlotWidget(background=(30, 30, 30))
        self.plot.setLabel("bottom", "time", units="s")
        self.plot.setLabel("left", "angle (deg)")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.addLegend(offset=(5, 5), brush=(20, 20, 20, 190))
        self.cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((255, 255, 0), width=1))
        self.plot.addItem(self.cursor)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        self.info = QLabel("")

        side = QVBoxLayout()
        side.addWidget(self.mode_box)
        side.addWidget(self.choices, 1)
        side.addWidget(self.info)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(side)
        layout.addWidget(self.plot, 1)

        self._fill_choices()
        self.mode_box.currentIndexChanged.connect(self._mode_changed)
        self.choices.itemChanged.connect(lambda _item: self.redraw())

    # ----------------------------------------------------------------- choices
    def _fill_choices(self) -> None:
        self.choices.blockSignals(True)
        self.choices.clear()
        names = list(ANGLES) if self.mode == "angles" else list(JOINT_LABELS[:NUM_JOINTS])
        default = DEFAULT_ANGLES if self.mode == "angles" else DEFAULT_JOINTS
        for name in names:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in default else Qt.CheckState.Unchecked)
            self.choices.addItem(item)
        self.choices.blockSignals(False)

    def _mode_changed(self, i: int) -> None:
        self.mode = MODES[i]
        self._fill_choices()
        self.plot.setLabel("left", "angle (deg)" if self.mode == "angles" else "position (px)")
        self.redraw()

    def chosen(self) -> list[str]:
        return [self.choices.item(i).text() for i in range(self.choices.count())
                if self.choices.item(i).checkState() == Qt.CheckState.Checked]

    def set_chosen(self, names) -> None:
        self.choices.blockSignals(True)
        for i in range(self.choices.count()):
            item = self.choices.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)
        self.choices.blockSignals(False)
        self.redraw()

    # ----------------------------------------------------------------- data
    def set_data(self, items, person: int = AUTO, joint_threshold: float = 0.1) -> None:
        """``items``: (frame index, PoseResult) pairs sorted by index (ResultCache.items())."""
        self._items = items
        self.person = person
        self.joint_threshold = joint_threshold
        self.redraw()

    def redraw(self) -> None:
        times, data = series(self._items, self.mode, self.chosen(), self.person, self.joint_threshold)
        breaks = identity_breaks(self._items, self.person, self.joint_threshold)
        for name in list(self.curves):
            if name not in data:
                self.plot.removeItem(self.curves.pop(name))
                self._colours.pop(name)
                legend = self.plot.plotItem.legend
                if legend is not None:
                    legend.removeItem(name)
        for name, values in data.items():
            curve = self.curves.get(name)
            if curve is None:   # a colour no curve on show has (while there are enough colours)
                taken = list(self._colours.values())
                colour = min(PENS, key=lambda c: (taken.count(c), PENS.index(c)))
                self._colours[name] = colour
                curve = self.plot.plot([], [], name=name, connect="finite",
                                       pen=pg.mkPen(colour, width=2))
                self.curves[name] = curve
            finite = np.isfinite(values)
            # point i is joined to i + 1 when both are known and no identity break lies between
            joined = np.zeros(len(values), bool)
            joined[:-1] = finite[:-1] & finite[1:] & ~breaks[1:]
            curve.setData(times, values, connect=joined)
        track = main_track(self._items) if self.person == AUTO else None
        self.info.setText(f"{len(times)} frames" + (f" · #{track}" if track is not None else ""))
        self.plot.setTitle(self.who(track), size="9pt", color=(220, 220, 220))

    def who(self, track: int | None = None) -> str:
        """Which person the curves are of (the plot's title)."""
        if not self._items:
            return ""
        if self.person != AUTO:
            return f"person #{self.person} (chosen under Display)"
        if track is not None:
            return f"person #{track}: the one seen most (Display → Person picks another)"
        return "the most confident person of each frame (tracking is off)"

    def set_cursor(self, seconds: float) -> None:
        self.cursor.setValue(seconds)

    # ----------------------------------------------------------------- seeking
    def _on_click(self, event) -> None:
        vb = self.plot.plotItem.vb
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        self.request_seek(vb.mapSceneToView(event.scenePos()).x())

    def request_seek(self, seconds: float) -> None:
        """What a click at time ``seconds`` does (also called by tests)."""
        self.seek_requested.emit(max(0.0, float(seconds)))
