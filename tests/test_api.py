"""The Python API (``from humanpose import Estimator``) and the live pose-net swap, on real
frames of ../shared/media (skipped when absent)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import shared_path  # type: ignore
from humanpose.config import ConfigError, from_dict
from humanpose.estimator.pipeline import PoseEstimator
from humanpose.store import ModelError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def vtest_frames() -> list[np.ndarray]:
    """The first 9 frames of vtest.avi (three walkers, 768x576; the first detector frame
    every 10 frames, so these are one detector frame and tracked frames)."""
    cap = cv2.VideoCapture(str(shared_path("media", "vtest.avi")))
    frames = []
    while len(frames) < 9:
        ok, frame = cap.read()
        assert ok
        frames.append(frame)
    cap.release()
    return frames


def test_import_humanpose_loads_neither_torch_nor_the_nets():
    code = ("import sys, humanpose; print(humanpose.__version__, 'torch' in sys.modules, "
            "'humanpose.api' in sys.modules, len(humanpose.JOINTS))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, check=True)
    assert out.stdout.split()[1:] == ["False", "False", "14"]
    with pytest.raises(AttributeError, match="no attribute 'Estimater'"):
        import humanpose
        humanpose.Estimater                               # noqa: B018


def test_estimator_gives_tracked_people_on_consecutive_frames(vtest_frames):
    from humanpose import JOINTS, Estimator, Pose
    estimator = Estimator(boxsize=192, pose_model="pose_mobilenet", device="cpu")
    assert estimator.config.model.pose_model == "pose_mobilenet"
    h, w = vtest_frames[0].shape[:2]
    seen = []
    for frame in vtest_frames:
        people = estimator(frame)
        assert people and all(isinstance(p, Pose) for p in people)
        for p in people:
            assert p.joints.shape == (14, 2) and p.scores.shape == (14,) and p.box.shape == (4,)
            assert ((p.scores >= 0) & (p.scores <= 1)).all() and 0.5 <= p.score <= 1
            x0, y0, x1, y1 = p.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert x1 - x0 < 0.3 * w and y1 - y0 < 0.3 * h        # a walker, not the frame
            assert p.joint(JOINTS[0])[:2] == tuple(p.joints[0])
        seen.append({p.track_id: (p.box[:2] + p.box[2:]) / 2 for p in people})
    assert estimator.last.path == "tracked" and estimator.last.frame_index == 8
    # the same walkers keep their ids from frame to frame, each moving a few pixels a frame
    assert all(set(s) == set(seen[0]) for s in seen) and min(seen[0]) >= 0
    for a, b in zip(seen, seen[1:]):
        assert all(np.hypot(*(b[t] - a[t])) < 20 for t in a)
    with pytest.raises(KeyError, match="unknown joint 'nose'"):
        people[0].joint("nose")
    # a new video: new ids from 0; an explicit timestamp; a grayscale frame
    estimator.reset()
    gray = cv2.cvtColor(vtest_frames[0], cv2.COLOR_BGR2GRAY)
    assert sorted(p.track_id for p in estimator(gray, timestamp=12.5)) == sorted(seen[0])
    assert estimator.last.timestamp == 12.5 and estimator.last.path == "detector (no track)"
    with pytest.raises(TypeError, match="numpy array"):
        estimator("frame.png")


def test_estimator_options_are_checked_by_name_and_value():
    from humanpose import Estimator
    with pytest.raises(TypeError, match="option 'boxsiz'; did you mean 'boxsize'"):
        Estimator(boxsiz=256)
    with pytest.raises(ConfigError, match="boxsize: .*9999.*64 to 640"):
        Estimator(boxsize=9999)
    with pytest.raises(ConfigError, match="device: .*'gpu'.*cpu, cuda, auto"):
        Estimator(device="gpu")
    with pytest.raises(ConfigError, match="tracking: .*"):
        Estimator(tracking="yes please")
    with pytest.raises(ModelError, match="'no_such_net'.*known: .*pose_mobilenet"):
        Estimator(pose_model="no_such_net")


def test_set_pose_model_swaps_only_the_pose_net(vtest_frames):
    cfg = from_dict({"model": {"device": "cpu", "pose_model": "pose_mobilenet"}})
    est = PoseEstimator(cfg)
    detector, person_backend = est.detector, est.detector.backend
    ids = [[p.track_id for p in est.estimate(f, frame_index=i).persons]
           for i, f in enumerate(vtest_frames[:4])]
    before = type(est.pose_model).__name__
    est.set_pose_model("pose_compact")
    assert (before, type(est.pose_model).__name__) == ("MobileNetCPM", "CompactCPM")
    assert est.config.model.pose_model == "pose_compact"
    assert est.detector is detector and est.detector.backend is person_backend
    for i, f in enumerate(vtest_frames[4:], start=4):
        r = est.estimate(f, frame_index=i)
        ids.append([p.track_id for p in r.persons])
        assert r.path == "tracked" and min(p.joints[:, 2].max() for p in r.persons) > 0.5
    assert all(sorted(i) == sorted(ids[0]) for i in ids) and len(ids[0]) == 3
    # a bad name or a person net changes nothing
    with pytest.raises(ModelError):
        est.set_pose_model("no_such_net")
    with pytest.raises(ValueError, match="expected a 'pose' net"):
        est.set_pose_model(est.person_model)
    assert type(est.pose_model).__name__ == "CompactCPM"
    assert est.config.model.pose_model == "pose_compact"
