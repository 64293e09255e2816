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
    assert total <= 40e6      # the accurate pose net (12.6 MB in float16) is the largest
    cfg = config.load()
    names = {e["name"] for e in ENTRIES}
    assert cfg.model.person_model in names and cfg.model.pose_model in names


def test_default_nets_run_int8_on_a_fresh_checkout(tmp_path, monkeypatch):
    """The default precision (int8) needs no calibration data: the shipped pose net carries its
    calibration ranges, current for exactly these weights, and the int8 export is made from them
    on first use; the person net without ranges runs in fp32."""
    import shutil

    from humanpose.estimator import int8
    from humanpose.estimator.backends import auto_int8, make_backend
    from humanpose.store import load_model
    monkeypatch.setenv("HUMANPOSE_CACHE", str(tmp_path / "cache"))
    cfg = config.load()
    assert cfg.model.precision == "auto" and cfg.model.framework == "onnxruntime"
    frame = np.full((1, 3, 192, 256), 0.1, np.float32)
    # the MultiPose person net keeps no int8 ranges yet: precision auto runs it in fp32, no note
    person = next(e for e in ENTRIES if e["name"] == cfg.model.person_model)
    assert not (MODELS / (person["file"] + int8.RANGES_SUFFIX)).exists()
    model = load_model(MODELS / person["file"])
    b = make_backend(model, "onnxruntime", "cpu", cfg.model.precision)
    assert b.name == "onnxruntime/cpu" and b.note is None
    for name in (cfg.model.pose_model,):
        entry = next(e for e in ENTRIES if e["name"] == name)
        for f in (entry["file"], entry["file"] + int8.RANGES_SUFFIX):
            assert (MODELS / f).exists(), f"{f} is not shipped"
            shutil.copy(MODELS / f, tmp_path / f)
        model = load_model(tmp_path / entry["file"])
        assert int8.ranges_for(model) is not None, f"{name}: ranges stale or unusable"
        asked = "auto" if auto_int8(model) else "int8"      # auto: int8 where measured safe
        b = make_backend(model, "onnxruntime", "cpu", asked)
        assert b.name == "onnxruntime/cpu/int8" and b.note is None
        x = frame if model.kind == "person" else np.concatenate(
            [frame[..., :192], np.zeros((1, 1, 192, 192), np.float32)], 1)
        ref = make_backend(model, "onnxruntime", "cpu")(x)[-1]
        diff = np.abs(b(x)[-1] - ref)
        assert diff.mean() < 0.02 and diff.max() < 0.25      # int8, not garbage


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
    """Real clips: the low-scoring detections of the default nets are people half hidden behind
    others or street furniture (first 2026-12-05 weights: vtest frames 64, 72 and 160, pose
    scores 0.39-0.46; 2026-12-06 weights with crop levels: the tripod at vtest frame 583, 0.44;
    the 2026-12-06 pose net scores every vtest detection of every 4th frame at least 0.5, and
    street_people frame 0 has two, 0.45 and 0.22, in the café crowd).  On the first such frame
    (every 8th of vtest, then of street_people) the filter works as it should: with the
    default estimator.min_pose_score that detection is gone, every person kept scores at least
    that, and every person that scores at least that is still there.  (Until 2026-12-05 the
    example was vtest frame 224, a false detection by the lamp post at 0.38 with the compact
    nets; see docs/training-log.md.)"""
    from humanpose.estimator.decode import pose_score
    from humanpose.estimator.pipeline import PoseEstimator
    t = estimator.config.estimator.min_pose_score
    assert t > 0
    keep_all = PoseEstimator(config.set_value(estimator.config, "estimator.min_pose_score", 0.0))
    score = lambda p: pose_score(p.joints)     # noqa: E731
    every, frame = [], None
    for clip in ("vtest.avi", "street_people.avi"):
        cap = cv2.VideoCapture(str(shared_path("media", clip)))
        for i in range(0, 800, 8):
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, frame = cap.read()
            if not ok:
                break
            every = keep_all.estimate(frame, keep_maps=False).persons
            if any(score(p) < t for p in every):
                break
        cap.release()
        if any(score(p) < t for p in every):
            break
    assert any(score(p) < t for p in every), "no low-scoring detection in the clips' frames"
    kept = estimator.estimate(frame).persons
    assert all(score(p) >= t for p in kept)
    centres = [tuple(np.round(p.centre, 3)) for p in kept]
    assert all(tuple(np.round(p.centre, 3)) in centres for p in every if score(p) >= t)
    assert not any(tuple(np.round(p.centre, 3)) in centres for p in every if score(p) < t)


def _small_people_frame(n_people: int = 6, height: int = 960, person: int = 150):
    """LSP training people shrunk to ``person`` pixels (joint box's larger side) and pasted
    side by side on a wide frame of their own images' blurred, enlarged backgrounds: small
    walkers in a large frame.  Returns (frame, list of (14, 3) joints in the frame)."""
    from humanpose.train.datasets import person_box, read_lsp_dir
    data = read_lsp_dir(shared_path("data", "lsp"), "lsp")
    width = height * 16 // 9
    frame = cv2.resize(cv2.GaussianBlur(cv2.imread(str(data.images[0])), (0, 0), 9),
                       (width, height))
    placed = []
    for k, idx in enumerate((3, 17, 42, 90, 120, 150, 200, 260)[:n_people]):
        img, joints = cv2.imread(str(data.images[idx])), data.joints[idx].copy()
        c, size = person_box(joints)
        f = person / size
        small = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        cx, cy = (k + 0.5) * width / n_people, height * 0.55      # where the person's centre goes
        ox, oy = int(cx - c[0] * f), int(cy - c[1] * f)
        x0, y0 = max(ox, 0), max(oy, 0)
        x1, y1 = min(ox + small.shape[1], width), min(oy + small.shape[0], height)
        # only a window 1.3 x the person around it: neighbours stay apart
        wx0, wx1 = max(x0, int(cx - 0.65 * person)), min(x1, int(cx + 0.65 * person))
        wy0, wy1 = max(y0, int(cy - 0.65 * person)), min(y1, int(cy + 0.65 * person))
        frame[wy0:wy1, wx0:wx1] = small[wy0 - oy:wy1 - oy, wx0 - ox:wx1 - ox]
        joints[:, :2] = joints[:, :2] * f + (ox, oy)
        placed.append(joints)
    return frame, placed


def test_crop_levels_find_small_people_in_a_large_frame(estimator):
    """Six persons a sixth of a 960-px frame high, side by side: the frame-high first crop
    (crop_levels 1) shows three or four of them at once, a few map cells each, and the pose net
    joins their limbs (2-3 of 6 right on 2026-12-06); the crop levels (1/2, 1/4 of the frame) let the pose net see them
    at its size, so most get a right skeleton (at least half their joints within PCK@0.2), with a box that
    fits them."""
    from humanpose.estimator.pipeline import PoseEstimator
    from humanpose.train.metrics import pck_correct
    frame, truth = _small_people_frame()
    levels = estimator.config.estimator.crop_levels
    assert levels >= 3
    # crop levels serve the centre-map person nets (a MultiPose person is cut at its own size)
    cfg = config.set_value(estimator.config, "model.person_model", "person_compact")
    cfg = config.set_value(cfg, "estimator.detector_size", 256)
    right = {}
    for n in (1, levels):
        est = PoseEstimator(config.set_value(cfg, "estimator.crop_levels", n))
        persons = est.estimate(frame).persons
        right[n] = 0
        for joints in truth:        # the detected person nearest each pasted one
            if not persons:
                break
            c = np.nanmean(joints[:, :2], axis=0)
            p = min(persons, key=lambda p: np.linalg.norm(p.centre - c))
            ok = pck_correct(p.joints[None, :, :2], joints[None])[0]
            right[n] += np.nanmean(ok) >= 0.5
            if np.nanmean(ok) >= 0.5 and n == levels:     # a crop that fits the person
                assert p.box[2] - p.box[0] < 0.6 * frame.shape[0]
    assert right[levels] >= 5, right
    assert right[levels] > right[1], right


def test_pseudo_labels_find_the_unannotated_person_beside_the_annotated_one(estimator):
    """A crop as the crop cache holds it (288², the annotated person 128 px at the centre) with
    a second LSP person beside it: the pseudo-labels are that second person, not the first."""
    from humanpose.estimator.pipeline import PoseEstimator
    from humanpose.train.datasets import person_box, read_lsp_dir
    from humanpose.train.pseudo import pseudo_centres
    data = read_lsp_dir(shared_path("data", "lsp"), "lsp")
    crop = np.full((288, 288, 3), 120, np.uint8)
    placed = []
    for idx, centre in ((3, (190.0, 144.0)), (42, (70.0, 144.0))):
        img, joints = cv2.imread(str(data.images[idx])), data.joints[idx]
        c, size = person_box(joints)
        f = 110 / size
        m = np.array([[f, 0, centre[0] - f * c[0]], [0, f, centre[1] - f * c[1]]])
        patch = cv2.warpAffine(img, m, (288, 288), borderValue=(120, 120, 120))
        half = 0.42 * 110 + 6
        x0, x1 = int(centre[0] - half), int(centre[0] + half)
        crop[:, x0:x1] = patch[:, x0:x1]
        placed.append(joints * f + m[:, 2])
    cache = {"images": crop[None], "joints": placed[0][None].astype(np.float32)}
    cfg = config.set_value(estimator.config, "model.framework", "onnxruntime")
    found = pseudo_centres(cache, PoseEstimator(cfg), progress=False)[0]
    found = found[np.isfinite(found[:, 0])]
    other, _ = person_box(placed[1])
    assert len(found) == 1 and np.hypot(*(found[0] - other)) < 25, found
