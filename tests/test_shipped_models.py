"""The shipped weights in models/: manifest checksums, and right poses on real people."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from humanpose import config, skeleton as sk
from humanpose.store import read_manifest, sha256

from conftest import ROOT, shared_path

MODELS = ROOT / "models"
ENTRIES = read_manifest(MODELS)
pytestmark = pytest.mark.skipif(not ENTRIES, reason="no shipped weights in models/manifest.json yet")


def test_manifest_files_exist_with_their_checksum_and_card():
    total = 0
    for e in ENTRIES:
        path = MODELS / e["file"]
        assert path.exists(), f"{path} listed in the manifest is missing"
        assert sha256(path) == e["sha256"], f"{path} does not match its sha256"
        assert (MODELS / e["card"]).exists(), f"model card {e['card']} missing"
        total += path.stat().st_size
    assert total <= 25e6
    cfg = config.load()
    names = {e["name"] for e in ENTRIES}
    assert cfg.model.person_model in names and cfg.model.pose_model in names


@pytest.fixture(scope="module")
def estimator():
    from humanpose.estimator.pipeline import PoseEstimator
    cfg = config.set_value(config.load(), "tracking.enabled", False)
    cfg = config.set_value(cfg, "model.framework", "torch")
    return PoseEstimator(config.set_value(cfg, "model.device", "cpu"))


def _upright(joints: np.ndarray) -> bool:
    """Head above neck above hips above ankles (image y grows downwards)."""
    j = {n: joints[sk.JOINT_INDEX[n], 1] for n in sk.JOINTS}
    hips = (j["r_hip"] + j["l_hip"]) / 2
    ankles = (j["r_ankle"] + j["l_ankle"]) / 2
    return j["head_top"] < j["neck"] < hips < ankles


def test_street_people_frame_gives_upright_people(estimator):
    cap = cv2.VideoCapture(str(shared_path("media", "street_people.avi")))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 60)
    ok, frame = cap.read()
    cap.release()
    assert ok
    res = estimator.estimate(frame)
    assert len(res.persons) >= 1
    upright = [p for p in res.persons if _upright(p.joints)]
    assert upright, "no detected person has head above hips above ankles"
    for p in upright:                                  # joints lie around the detected centre
        d = np.linalg.norm(p.joints[:, :2] - p.centre, axis=1)
        assert np.median(d) < 0.5 * res.frame_shape[0]


def test_lsp_training_images_pose_is_mostly_right(estimator):
    """Sanity on a few LSP training images (seen in training: not a result, a check of wiring)."""
    from humanpose.train.datasets import person_box, read_lsp_dir
    from humanpose.train.metrics import pck_correct, pck_summary
    data = read_lsp_dir(shared_path("data", "lsp"), "lsp")
    data = data.subset(np.arange(0, 1000, 50))
    preds = []
    for path, joints in zip(data.images, data.joints):
        img = cv2.imread(str(path))
        c, _ = person_box(joints)
        preds.append(estimator.estimate(img, centres=c[None]).persons[0].joints[:, :2])
    pck, _ = pck_summary(pck_correct(np.array(preds), data.joints))
    assert pck > 40.0


def test_min_pose_score_drops_low_scoring_detections_and_only_them(estimator):
    """vtest.avi: with the default nets since session 33 (person_mobilenet + pose_mobilenet)
    the detector fires on no lamp post or bollard there any more; its low-scoring detections
    are people half hidden behind others (with the first session-33 weights frames 64, 72 and
    160, pose scores 0.39-0.46).  On the first such frame (every 8th of the first 400), the
    filter works as it should: with the default estimator.min_pose_score that detection is
    gone, every person kept scores at least that, and every person that scores at least that is
    still there.  (Until session 32 the example was frame 224, a false detection by the lamp
    post at 0.38 with the compact nets; see docs/training-log.md.)"""
    from humanpose.estimator.pipeline import PoseEstimator, pose_score
    t = estimator.config.estimator.min_pose_score
    assert t > 0
    keep_all = PoseEstimator(config.set_value(estimator.config, "estimator.min_pose_score", 0.0))
    score = lambda p: pose_score(p.joints)     # noqa: E731
    cap = cv2.VideoCapture(str(shared_path("media", "vtest.avi")))
    every = []
    for i in range(0, 400, 8):
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, frame = cap.read()
        assert ok
        every = keep_all.estimate(frame, keep_maps=False).persons
        if any(score(p) < t for p in every):
            break
    cap.release()
    assert any(score(p) < t for p in every), "no low-scoring detection in vtest's first 400 frames"
    kept = estimator.estimate(frame).persons
    assert all(score(p) >= t for p in kept)
    centres = [tuple(np.round(p.centre, 3)) for p in kept]
    assert all(tuple(np.round(p.centre, 3)) in centres for p in every if score(p) >= t)
    assert not any(tuple(np.round(p.centre, 3)) in centres for p in every if score(p) < t)
