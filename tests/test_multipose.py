"""MoveNet MultiPose as the person stage: its own decode (against TensorFlow.js), the net in the
pipeline on real frames (a person found, empty scenes left empty), the person check, the passes,
both backends, and the shipped weight file (tests needing ../shared skip without it)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from humanpose.config import Config, from_dict
from humanpose.estimator.backends import make_backend
from humanpose.estimator.crops import detector_frame, normalise
from humanpose.estimator.persons import (detector_sides, merged, multipose_people,
                                         on_a_person)
from humanpose.estimator.pipeline import PoseEstimator
from humanpose.store import ModelError, load_model, read_manifest, sha256

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURE = ROOT / "tests" / "fixtures" / "movenet_reference.json"
MODELS = ROOT / "models"


def shared_file(*parts) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"../shared absent: {p} not found")
    return p


@pytest.fixture(scope="module")
def multipose_file() -> Path:
    """The shipped MultiPose person net (the default person model), checked against its sha256."""
    name = Config().model.person_model
    entry = next((e for e in read_manifest(MODELS) if e["name"] == name), None)
    assert entry is not None and entry["architecture"] == "movenet_multipose"
    path = MODELS / entry["file"]
    assert sha256(path) == entry["sha256"]
    return path


def multipose_estimator(path: Path, **estimator) -> PoseEstimator:
    """The default config (the shipped MultiPose net), fp32 onnxruntime, tracking off."""
    cfg = from_dict({"model": {"framework": "onnxruntime", "device": "cpu", "precision": "fp32",
                               "person_model": str(path)},
                     "estimator": estimator, "tracking": {"enabled": False}})
    return PoseEstimator(cfg)


# -- the decode, against TensorFlow.js ---------------------------------------------------------

def test_multipose_decode_matches_tensorflow_js_on_messi():
    """The rebuilt MultiPose and its decode give the graph's own output (6 persons: 17 keypoints,
    box and instance score) to float32 rounding."""
    from humanpose.nets.multipose import MultiPoseNet, decode
    from humanpose.nets.tfjs import read_graph
    graph = shared_file("teachers", "movenet", "movenet-multipose.json")
    ref = json.loads(FIXTURE.read_text())["models"]["multipose"]
    img = cv2.imread(str(shared_file("media", "messi5.jpg")))
    h, w = img.shape[:2]
    sq = np.zeros((max(h, w), max(h, w), 3), np.uint8)
    sq[:h, :w] = img
    inp = cv2.resize(sq, (256, 256), interpolation=cv2.INTER_AREA)
    net = MultiPoseNet.from_graph(read_graph(graph))
    with torch.no_grad():
        out = net(torch.from_numpy(normalise(inp))[None])
    want = np.array(ref["output"], np.float32).reshape(6, 56)
    for inst, row in zip(decode(out), want):
        kps = np.column_stack([inst.keypoints[:, :2] / 64, inst.keypoints[:, 2]]).ravel()
        assert np.abs(kps - row[:51]).max() < 1e-4
        assert np.abs(inst.box / 64 - row[51:55]).max() < 1e-5
        assert abs(inst.score - row[55]) < 1e-5
    assert want[0, 55] > 0.5 and want[1:, 55].max() < 0.05      # one person: Messi


# -- the net in the pipeline -------------------------------------------------------------------

def test_shipped_person_net_is_float16_safetensors_and_pickles_are_refused(multipose_file,
                                                                          tmp_path):
    from safetensors import safe_open
    with safe_open(str(multipose_file), framework="pt") as fh:
        assert {fh.get_tensor(k).dtype for k in fh.keys()} == {torch.float16}
    net = load_model(multipose_file, kind="person")
    assert getattr(net, "decoder", None) == "multipose" and net.num_stages == 6
    bad = tmp_path / "person.safetensors"
    torch.save({"w": torch.zeros(2)}, bad)          # a pickle in disguise
    with pytest.raises(ModelError, match="not a safetensors file"):
        load_model(bad, kind="person")


@pytest.mark.skipif(not (SHARED / "teachers" / "movenet").exists(),
                    reason="../shared/teachers/movenet absent")
def test_import_tfjs_multipose_writes_the_whole_net(tmp_path, capsys):
    from humanpose.cli import main
    out = tmp_path / "multipose.safetensors"
    graph = SHARED / "teachers" / "movenet" / "movenet-multipose.json"
    assert main(["import-tfjs", str(graph), str(out), "--kind", "multipose"]) == 0
    assert "movenet_multipose person net" in capsys.readouterr().out
    assert getattr(load_model(out, kind="person"), "decoder", None) == "multipose"


def test_pipeline_finds_messi(multipose_file):
    img = cv2.imread(str(shared_file("media", "messi5.jpg")))
    res = multipose_estimator(multipose_file).estimate(img)
    assert len(res.persons) == 1
    x0, y0, x1, y1 = 180, 40, 450, 340      # where he stands (messi5.jpg is 548 x 342)
    cx, cy = res.persons[0].joints[:, :2].mean(0)
    assert x0 <= cx <= x1 and y0 <= cy <= y1


@pytest.mark.parametrize("name", ["im00596.jpg", "im01072.jpg", "im03523.jpg"])
def test_pipeline_finds_nobody_on_a_background_crop_of_a_real_photo(multipose_file, name):
    """The widest strip of an LSP-extended validation photo beside the annotated athlete, half
    the athlete's width away (a concrete wall and steps, the Great Wall, a snow heap: nobody)."""
    from humanpose.train.datasets import read_lsp_dir
    lspet = read_lsp_dir(shared_file("data", "lspet"), "lspet")
    i = [p.name for p in lspet.images].index(name)
    img = cv2.imread(str(lspet.images[i]))
    joints = lspet.joints[i][np.isfinite(lspet.joints[i][:, 0])]
    lo, hi = joints.min(0), joints.max(0)
    left, right = int(lo[0] - 0.5 * (hi - lo)[0]), int(hi[0] + 0.5 * (hi - lo)[0])
    strip = img[:, :left] if left >= img.shape[1] - right else img[:, right:]
    assert strip.shape[1] >= 300
    res = multipose_estimator(multipose_file).estimate(np.ascontiguousarray(strip))
    assert res.persons == []


def synthetic_room(h: int = 480, w: int = 640, seed: int = 3) -> np.ndarray:
    """An empty scene: a lit wall with a gradient, a floor, a window, a table, a lamp, noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    img[:] = np.linspace(170, 120, w)[None, :, None] * np.array([1.0, 0.95, 0.85])
    img[int(h * 0.7):] = (70, 90, 110)
    cv2.rectangle(img, (60, 60), (240, 220), (235, 225, 200), -1)          # window
    cv2.line(img, (150, 60), (150, 220), (90, 90, 90), 4)
    cv2.rectangle(img, (360, 280), (560, 300), (40, 60, 90), -1)           # table
    for x in (370, 545):
        cv2.rectangle(img, (x, 300), (x + 8, 400), (40, 60, 90), -1)
    cv2.circle(img, (470, 250), 22, (120, 200, 240), -1)                   # lamp
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_pipeline_finds_nobody_in_an_empty_synthetic_room(multipose_file):
    res = multipose_estimator(multipose_file).estimate(synthetic_room())
    assert res.persons == []


# -- the person check and the passes ---------------------------------------------------------

def test_person_check_keeps_a_skeleton_on_a_person_and_drops_one_beside():
    people = [(np.array([100.0, 50.0, 140.0, 210.0]), 0.6)]    # a standing person's keypoints
    joints = np.zeros((14, 3))
    joints[:, 0] = np.linspace(105, 135, 14)
    joints[:, 1] = np.linspace(55, 200, 14)
    joints[:, 2] = 0.8
    assert on_a_person(joints, people, 0.3)
    joints[:, 0] += 150                           # the same skeleton on the wall beside
    assert not on_a_person(joints, people, 0.3)
    joints[:7, 2] = 0.1                           # only the confident joints count
    joints[:7, 0] -= 150
    assert not on_a_person(joints, people, 0.3)


def test_passes_of_one_person_merge_and_two_side_by_side_stay_two():
    a = (None, np.array([0.0, 0.0, 40.0, 100.0]), 0.5)
    a2 = (None, np.array([3.0, 2.0, 42.0, 104.0]), 0.4)           # a in the finer pass
    b = (None, np.array([45.0, 0.0, 85.0, 100.0]), 0.3)           # the walker beside a
    kept = merged([a2, b, a])
    assert [p[2] for p in kept] == [0.5, 0.3]


def test_detector_input_follows_the_frame_size():
    assert detector_sides((480, 640), 0) == (384, 640)
    assert detector_sides((240, 320), 0) == (256,)
    assert detector_sides((480, 640), 320) == (320,)


def test_torch_and_onnxruntime_run_the_person_net_alike_and_auto_precision_is_fp32(
        multipose_file):
    net = load_model(multipose_file, kind="person")
    det, dsx, dsy = detector_frame(synthetic_room(), 256)
    x = normalise(det)[None]
    ort = make_backend(net, "onnxruntime", "cpu", "auto")
    assert ort.precision == "fp32"          # no int8 ranges kept for this net: fp32, no error
    t = make_backend(net, "torch", "cpu", "fp32")(x)
    o = ort(x)
    assert len(t) == len(o) == 6
    for a, b in zip(t, o):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-3
    assert [p[2] for p in multipose_people(t, dsx, dsy)] == pytest.approx(
        [p[2] for p in multipose_people(o, dsx, dsy)], abs=1e-3)
