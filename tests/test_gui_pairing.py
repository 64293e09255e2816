"""Each pose is drawn on its own frame: a moving-square live source whose frames carry their
index (in their grey level), a deliberately slow estimator, and a spy on what the window
paints.  The result drawn must be the estimate of the frame it is drawn on, during playback, in
screenshots and in the recording; the low-latency display pairs the newest frame with an older
result instead."""
from __future__ import annotations

import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("pytestqt")

from humanpose.config import from_dict  # noqa: E402
from humanpose.estimator.pipeline import PoseEstimator  # noqa: E402
from humanpose.gui import display  # noqa: E402
from humanpose.gui.main_window import MainWindow  # noqa: E402
from humanpose.gui.settings import open_settings  # noqa: E402
from humanpose.nets.compact import CompactCPM  # noqa: E402
from humanpose.sources import Frame, FrameSource  # noqa: E402

torch.set_num_threads(1)
W, H, FPS = 160, 120, 40.0
WAIT_MS = 20000


def frame_index_of(image: np.ndarray) -> int:
    """The index a MovingSquare frame carries: its background grey level."""
    return int(np.median(image[:, :, 0])) - 20


class MovingSquare(FrameSource):
    """A live source: a white square moving right, the background grey = 20 + index."""

    def __init__(self):
        super().__init__()
        self.name, self.fps, self.size, self.is_live = "moving square", FPS, (W, H), True
        self.i = 0

    def _read(self):
        if self.i >= 200:
            self.error = "done"
            return None
        time.sleep(1 / FPS)
        img = np.full((H, W, 3), 20 + self.i, np.uint8)
        x = 10 + (self.i * 3) % (W - 40)
        img[40:80, x:x + 24] = 255
        self.i += 1
        return Frame(self.i - 1, time.monotonic(), img)


def slow_factory(cfg):
    """Tiny random nets, each estimate made 60 ms slower than the frame interval allows."""
    torch.manual_seed(0)
    person = CompactCPM("person", stages=2, feat=16).eval()
    with torch.no_grad():
        person.stages[-1].out.bias.add_(5.0)      # always a person
    est = PoseEstimator(cfg, person, CompactCPM("pose", stages=2, feat=16).eval())
    inner = est.estimate

    def estimate(frame, *a, **kw):
        time.sleep(0.06)
        return inner(frame, *a, **kw)
    est.estimate = estimate
    return est


@pytest.fixture()
def painted(monkeypatch):
    """(shown frame index, drawn result's frame index) of every render of the window."""
    calls = []
    real = display.render

    def spy(view, frame, result, options):
        if frame is not None and result is not None:
            calls.append((frame_index_of(frame), result.frame_index))
        return real(view, frame, result, options)
    monkeypatch.setattr(display, "render", spy)
    return calls


def make_window(qtbot, tmp_path, low_latency: bool):
    cfg = from_dict({"model": {"framework": "torch", "device": "cpu"},
                     "estimator": {"boxsize": 64, "max_persons": 1, "min_pose_score": 0.0},
                     "gui": {"display_fps": 60.0, "low_latency_display": low_latency},
                     "output": {"directory": str(tmp_path / "out")}})
    win = MainWindow(cfg, estimator_factory=slow_factory,
                     settings=open_settings(str(tmp_path / "settings.ini")), source="square",
                     opener=lambda spec, c: MovingSquare())
    qtbot.addWidget(win)
    win.show()
    return win


def test_each_pose_is_drawn_on_its_own_frame(qtbot, tmp_path, painted):
    win = make_window(qtbot, tmp_path, low_latency=False)
    try:
        assert not win.controls.display.low_latency.isChecked()
        qtbot.waitUntil(lambda: len({r for _, r in painted}) >= 8, timeout=WAIT_MS)
        assert win.camera.frames_read > win.estimator.estimate_calls + 4   # frames were dropped
        assert all(shown == drawn for shown, drawn in painted), painted
        # a screenshot pairs the same way
        painted.clear()
        shot = win.save_screenshot(tmp_path / "shot.png")
        assert shot is not None and painted and all(s == d for s, d in painted)
        # the recording too: every recorded frame's own result
        written = []
        win.set_recording(True)
        real_write = win.recorder.write
        win.recorder.write = lambda image: (written.append(frame_index_of(image)),
                                            real_write(image))[1]
        qtbot.waitUntil(lambda: len(written) >= 3, timeout=WAIT_MS)
        win.set_recording(False)
    finally:
        win.close()


def test_low_latency_display_pairs_the_newest_frame_with_an_older_pose(qtbot, tmp_path, painted):
    win = make_window(qtbot, tmp_path, low_latency=True)
    try:
        assert win.controls.display.low_latency.isChecked()
        qtbot.waitUntil(lambda: sum(s != d for s, d in painted) >= 3, timeout=WAIT_MS)
        assert all(s >= d for s, d in painted)      # never a pose of a later frame
        # switched off in the window: from then on each pose on its own frame again
        win.controls.display.low_latency.setChecked(False)
        assert not win.cfg.gui.low_latency_display
        qtbot.wait(50)
        painted.clear()
        qtbot.waitUntil(lambda: len(painted) >= 5, timeout=WAIT_MS)
        assert all(s == d for s, d in painted), painted
    finally:
        win.close()
