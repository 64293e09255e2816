"""Real time on the CPU: the onnxruntime backend agrees with torch, int8 export and its
calibration data, precision choices and their notes, config errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from humanpose.config import ConfigError, from_dict
from humanpose.estimator import backends, int8
from humanpose.optimize import calibrate
from humanpose.estimator.backends import BackendError, make_backend
from humanpose.estimator.pipeline import PoseEstimator
from humanpose.store import load_model, save_weights
from test_backends import KW, tiny   # tiny nets with non-trivial BatchNorm statistics

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("HUMANPOSE_CACHE", str(tmp_path / "cache"))


def test_onnxruntime_gives_the_torch_maps():
    m = tiny("pose")
    tb, ob = make_backend(m, "torch", "cpu"), make_backend(m, "onnxruntime", "cpu")
    assert ob.name == "onnxruntime/cpu" and ob.note is None
    rng = np.random.default_rng(0)
    for n, h, w in ((1, 64, 64), (3, 64, 64), (2, 96, 96)):
        x = rng.uniform(-0.5, 0.5, (n, 4, h, w)).astype(np.float32)
        for sa, sb in zip(tb(x), ob(x)):
            assert sa.shape == sb.shape
            np.testing.assert_allclose(sa, sb, atol=1e-4, rtol=1e-4)


def _estimator(framework: str, precision: str = "fp32", **est) -> PoseEstimator:
    person, pose = tiny("person", 1), tiny("pose", 2)
    with torch.no_grad():
        person.stages[-1].out.bias.add_(5.0)   # always some persons
    cfg = from_dict({"model": {"framework": framework, "device": "cpu", "precision": precision},
                     "estimator": {"boxsize": 64, "person_threshold": 0.0, "max_persons": 3,
                                   "min_pose_score": 0.0, **est},
                     "tracking": {"enabled": False}})
    return PoseEstimator(cfg, person, pose)


def test_backends_give_the_same_joints_within_a_pixel():
    frame = np.random.default_rng(3).integers(0, 256, (90, 150, 3), dtype=np.uint8)
    results = {}
    for fw in ("torch", "onnxruntime", "opencv"):
        est = _estimator(fw)
        assert est.backend_name == f"{fw}/cpu"
        results[fw] = est.estimate(frame)
    a = results["torch"]
    assert len(a.persons) >= 1
    for fw in ("onnxruntime", "opencv"):
        b = results[fw]
        assert len(b.persons) == len(a.persons)
        for pa, pb in zip(a.persons, b.persons):
            assert np.hypot(*(pa.joints[:, :2] - pb.joints[:, :2]).T).max() < 1.0
            np.testing.assert_allclose(pa.joints[:, 2], pb.joints[:, 2], atol=1e-4)


def test_calibration_inputs_synthetic_shapes():
    pose, where = calibrate.calibration_inputs("pose", 4, boxsize=64, synthetic=True)
    assert "synthetic" in where and len(pose) == 4
    assert all(x.shape == (1, 4, 64, 64) and x.dtype == np.float32 for x in pose)
    assert all(-0.5 <= x[0, :3].min() and x[0, :3].max() < 0.5 for x in pose)
    assert all(abs(x[0, 3].max() - 1.0) < 0.05 for x in pose)           # the centre map
    assert np.std([x[0, :3].mean() for x in pose]) > 1e-3                # varied
    person, _ = calibrate.calibration_inputs("person", 3, boxsize=64, synthetic=True)
    assert all(x.shape[:2] == (1, 3) and x.shape[2] == 64 and x.shape[3] % 32 == 0
               for x in person)


def _tiny_weights(tmp_path, seed: int = 1):
    """A tiny pose net saved as a weight file in tmp_path/models; (its path, the loaded net)."""
    wpath = tmp_path / "models" / "pose_tiny.safetensors"
    save_weights(tiny("pose", seed), wpath, "cpm_compact", kwargs=KW)
    return wpath, load_model(wpath)


def test_int8_export_runs_and_is_found_by_the_backend(tmp_path):
    wpath, model = _tiny_weights(tmp_path)
    # before the export: int8 asked for, fp32 run, and the note says how to make it
    before = make_backend(model, "onnxruntime", "cpu", "int8")
    assert before.name == "onnxruntime/cpu" and "export-onnx --int8" in before.note
    assert int8.int8_path(model) is None

    path, how = calibrate.export_int8(model, n=8, synthetic=True, boxsize=64)
    assert path == wpath.with_name("pose_tiny.safetensors.int8.onnx") and path.exists()
    assert "synthetic" in how and int8.int8_path(model) == path
    q = make_backend(model, "onnxruntime", "cpu", "int8")
    assert q.name == "onnxruntime/cpu/int8" and q.note is None and q.precision == "int8"
    import onnx
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = calibrate.calibration_inputs("pose", 1, boxsize=64, synthetic=True, seed=5)[0][0]
    ref, out = make_backend(model, "onnxruntime", "cpu")(x)[-1], q(x)[-1]
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 0.25 * (np.abs(ref).max() + 1e-3)   # int8, not garbage

    # new weights in the same file: the int8 export is stale, fp32 runs and says so
    stale = make_backend(_tiny_weights(tmp_path, 9)[1], "onnxruntime", "cpu", "int8")
    assert stale.precision == "fp32" and "export-onnx --int8" in stale.note


def test_kept_ranges_make_the_same_int8_export_on_first_use(tmp_path):
    import json

    wpath, model = _tiny_weights(tmp_path)
    path, how = calibrate.export_int8(model, n=8, synthetic=True, boxsize=64, keep_ranges=True)
    ranges = wpath.with_name(wpath.name + int8.RANGES_SUFFIX)
    meta = json.loads(ranges.read_text())["humanpose"]
    assert meta["method"] == "minmax" and "synthetic" in meta["calibration"]
    assert int8.ranges_for(model)[0] == ranges
    first = path.read_bytes()

    # a user's fresh checkout: the weights and their ranges, no int8 export, no calibration data
    for precision in ("int8", "auto"):
        path.unlink()
        q = make_backend(model, "onnxruntime", "cpu", precision)
        assert q.name == "onnxruntime/cpu/int8" and q.note is None
        assert path.read_bytes() == first                     # the same int8 net
        assert int8.int8_path(model) == path
    for fw in ("torch", "opencv"):                            # auto: fp32 there, and no note
        b = make_backend(model, fw, "cpu", "auto")
        assert b.name == f"{fw}/cpu" and b.note is None

    # ranges recorded for another graph (another exporter): not used, fp32 says how to make it
    path.unlink()
    data = json.loads(ranges.read_text())
    data["humanpose"]["graph_sha256"] = "0" * 64
    ranges.write_text(json.dumps(data))
    other = make_backend(model, "onnxruntime", "cpu", "int8")
    assert other.precision == "fp32" and "export-onnx --int8" in other.note
    assert not path.exists()
    auto = make_backend(model, "onnxruntime", "cpu", "auto")
    assert auto.name == "onnxruntime/cpu" and auto.note is None and not path.exists()

    # new weights: the kept ranges are stale and ignored
    new = _tiny_weights(tmp_path, 9)[1]
    assert int8.ranges_for(new) is None
    stale = make_backend(new, "onnxruntime", "cpu", "int8")
    assert stale.precision == "fp32" and "export-onnx --int8" in stale.note


def test_synthetic_calibration_keeps_no_ranges(tmp_path):
    wpath, model = _tiny_weights(tmp_path)
    calibrate.export_int8(model, n=4, synthetic=True, boxsize=64)
    assert not wpath.with_name(wpath.name + int8.RANGES_SUFFIX).exists()
    assert int8.ranges_for(model) is None


def test_export_onnx_command_int8(tmp_path, capsys, monkeypatch):
    from humanpose.cli import main
    models = tmp_path / "models"
    save_weights(tiny("pose", 1), models / "pose_t.safetensors", "cpm_compact", kwargs=KW)
    save_weights(tiny("person", 1), models / "person_t.safetensors", "cpm_compact", kwargs=KW)
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"model:\n  models_dir: {models}\n  person_model: {models}/person_t.safetensors\n"
                   f"  pose_model: {models}/pose_t.safetensors\n")
    assert main(["export-onnx", "--config", str(cfg), "--int8", "--synthetic",
                 "--calibration", "4"]) == 0
    out = capsys.readouterr().out
    assert "int8" in out
    assert (models / "pose_t.safetensors.int8.onnx").exists()
    assert (models / "person_t.safetensors.int8.onnx").exists()


def test_precision_notes():
    m = tiny("pose")
    ocv = make_backend(m, "opencv", "cpu", "int8")
    assert ocv.name == "opencv/cpu" and "int8" in ocv.note
    tb = make_backend(m, "torch", "cpu", "int8")
    assert tb.name == "torch/cpu" and "onnxruntime" in tb.note
    ob = make_backend(m, "onnxruntime", "cpu", "bf16")
    assert ob.name == "onnxruntime/cpu" and "bf16" in ob.note
    bf = make_backend(m, "torch", "cpu", "bf16")
    if backends.cpu_bf16_support():
        assert bf.name == "torch/cpu/bf16" and "bf16 on" in bf.note
        x = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 4, 64, 64)).astype(np.float32)
        ref = make_backend(m, "torch", "cpu")(x)[-1]
        assert np.abs(bf(x)[-1] - ref).max() < 0.1 * (np.abs(ref).max() + 1e-3)
    else:
        assert bf.name == "torch/cpu" and "no native bfloat16" in bf.note


def test_no_native_bf16_is_reported(monkeypatch):
    monkeypatch.setattr(backends, "cpu_bf16_support", lambda: None)
    bf = make_backend(tiny("pose"), "torch", "cpu", "bf16")
    assert bf.name == "torch/cpu" and "no native bfloat16; using fp32" in bf.note


def test_config_errors():
    assert from_dict({}).model.framework == "onnxruntime"
    assert from_dict({}).model.precision == "auto"
    with pytest.raises(ConfigError, match="model.precision.*fp16.*fp32, bf16, int8"):
        from_dict({"model": {"precision": "fp16"}})
    with pytest.raises(ConfigError, match="model.framework.*tensorrt.*onnxruntime"):
        from_dict({"model": {"framework": "tensorrt"}})
    with pytest.raises(ConfigError, match="tracking.detect_every"):
        from_dict({"tracking": {"detect_every": 0}})
    with pytest.raises(BackendError, match="precision"):
        make_backend(tiny("pose"), "onnxruntime", "cpu", "fp8")
    with pytest.raises(BackendError, match="onnxruntime"):
        if "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers():
            pytest.skip("onnxruntime has CUDA here")
        make_backend(tiny("pose"), "onnxruntime", "cuda")


# ------------------------------------------------------------------ tracking-driven crops
class FakePerson:
    """Person net stand-in: one peak per entry of ``centres`` (input pixels), counts its calls."""

    def __init__(self, centres):
        self.centres, self.calls = centres, 0
        self.name, self.note = "fake", None

    def __call__(self, x):
        from humanpose.estimator import maps
        self.calls += 1
        h, w = x.shape[2] // 8, x.shape[3] // 8
        m = maps.gaussian_maps(h, w, maps.to_map(np.array(self.centres, float)), 1.0).max(0)
        return [m[None, None].astype(np.float32)]


class FakePose:
    """Pose net stand-in: the 14 joints spread over the bright blob (the "person") of each crop,
    peaks of height ``score``; records the batch sizes."""

    def __init__(self, spread: float = 0.15, by_size: bool = False):
        self.score, self.batches, self.spread = 0.9, [], spread   # joints' half-width / height
        self.by_size = by_size      # score = the person's height / the crop's (up to 0.9)
        self.name, self.note = "fake", None

    def __call__(self, x):
        from humanpose.estimator import maps
        n, _, b, _ = x.shape
        self.batches.append(n)
        out = np.zeros((n, 15, b // 8, b // 8), np.float32)
        for k in range(n):
            ys, xs = np.nonzero(x[k, 0] > 0.25)
            if not len(ys):
                out[k, 14] = 1.0
                continue
            top, bottom, cx = ys.min(), ys.max(), xs.mean()
            jy = np.linspace(top, bottom, 14)
            jx = cx + np.where(np.arange(14) % 2, self.spread, -self.spread) * (bottom - top)
            joint = maps.gaussian_maps(b // 8, b // 8, maps.to_map(np.column_stack([jx, jy])), 1.0)
            score = min(self.score, (bottom - top) / b) if self.by_size else self.score
            out[k, :14], out[k, 14] = joint * score, 1 - joint.max(0)
        return [out, out]


def _tracked_estimator(detect_every=5, centres=((128, 96),), crop_levels=1):
    cfg = from_dict({"model": {"framework": "torch", "device": "cpu"},
                     "estimator": {"boxsize": 192, "crop_levels": crop_levels},
                     "tracking": {"detect_every": detect_every}})
    est = PoseEstimator(cfg, tiny("person"), tiny("pose"))
    person, pose = FakePerson(list(centres)), FakePose()
    est.detector.backend, est.pose.backend = person, pose
    return est, person, pose


FRAME = np.full((192, 256, 3), 90, np.uint8)   # 256 x 192: the detector and the boxsize scale 1
FRAME[38:154, 110:146] = 230                    # the person, 116 px tall


def test_detector_is_not_called_on_tracked_frames():
    est, person, pose = _tracked_estimator(detect_every=5)
    paths = []
    for i in range(11):
        before = person.calls
        r = est.estimate(FRAME, timestamp=i / 30, frame_index=i)
        paths.append(r.path)
        assert len(r.persons) == 1
        tracked = r.path == "tracked"
        assert (person.calls == before) == tracked
        assert r.timings["tracked"] == float(tracked)
        if tracked:
            assert r.timings["person"] == 0.0 and r.persons[0].track_id == 0
            np.testing.assert_allclose(r.persons[0].raw_joints[:, 1].min(), 38, atol=2.5)
            np.testing.assert_allclose(r.persons[0].raw_joints[:, 1].max(), 153, atol=2.5)
    assert paths == ["detector (no track)"] + ["tracked"] * 4 + ["detector (every 5)"] + \
        ["tracked"] * 4 + ["detector (every 5)"]
    assert person.calls == 3


def test_detector_runs_at_once_when_a_tracked_pose_drops():
    est, person, pose = _tracked_estimator(detect_every=10)
    for i in range(3):
        est.estimate(FRAME, timestamp=i / 30, frame_index=i)
    assert person.calls == 1
    pose.score = 0.2                               # the tracked person is lost on frame 3
    r = est.estimate(FRAME, timestamp=3 / 30, frame_index=3)
    assert person.calls == 2 and r.path == "detector (pose score dropped)"
    assert r.persons == []                         # no confident pose at all
    pose.score = 0.9
    r = est.estimate(FRAME, timestamp=4 / 30, frame_index=4)   # no confident track: detector
    assert person.calls == 3 and r.path == "detector (no track)" and len(r.persons) == 1


def test_a_tracked_crop_that_slides_onto_someone_else_calls_the_detector_and_a_new_id():
    """The tracked person's crop shows someone else on frame 3 (the blob is now 60 px to the
    left, within the crop): the identity gate rejects that pose for the track, the detector runs
    at once on that frame, and the pose there gets a new id; id 0 is not on it."""
    est, person, pose = _tracked_estimator(detect_every=10)
    for i in range(3):
        r = est.estimate(FRAME, timestamp=i / 30, frame_index=i)
    assert person.calls == 1 and r.path == "tracked" and r.persons[0].track_id == 0
    other = np.full_like(FRAME, 90)
    other[38:154, 50:86] = 230                      # someone else, 60 px to the left
    person.centres[:] = [(68, 96)]
    r = est.estimate(other, timestamp=3 / 30, frame_index=3)
    assert person.calls == 2 and r.path == "detector (identity jump)"
    assert len(r.persons) == 1 and r.persons[0].track_id == 1
    assert abs(np.median(r.persons[0].raw_joints[:, 0]) - 68) < 5
    r = est.estimate(other, timestamp=4 / 30, frame_index=4)      # then tracked again
    assert r.path == "tracked" and [p.track_id for p in r.persons] == [1]


def test_detector_centres_on_a_track_are_merged_before_the_pose_pass():
    # the detector finds two centres on the one person (head and hips), and a second person
    est, person, pose = _tracked_estimator(detect_every=3, centres=((128, 60), (128, 130)))
    r = est.estimate(FRAME, timestamp=0.0, frame_index=0)
    assert pose.batches == [2] and len(r.persons) == 1   # no track yet: dropped after the pass
    for i in range(1, 4):
        r = est.estimate(FRAME, timestamp=i / 30, frame_index=i)
    assert r.path == "detector (every 3)" and len(r.persons) == 1
    assert pose.batches[1:] == [1, 1, 1]                  # both centres on the track: one crop
    frame = FRAME.copy()
    frame[60:130, 232:250] = 230                           # a newcomer beside it
    person.centres.append((241, 96))
    for i in range(4, 7):
        r = est.estimate(frame, timestamp=i / 30, frame_index=i)
    assert r.path == "detector (every 3)"
    # track + newcomer in one batch; then the rescale pass of the (small) newcomer alone
    assert pose.batches[-2:] == [2, 1]
    assert len(r.persons) == 2


def test_crop_levels_cut_a_small_newcomer_smaller_and_keep_its_best_crop():
    # a person filling the frame (116 of 192 rows, scored 0.9): the frame-high crop only
    est, person, pose = _tracked_estimator(detect_every=3, crop_levels=3)
    r = est.estimate(FRAME, timestamp=0.0, frame_index=0)
    assert pose.batches == [1] and len(r.persons) == 1
    # a person 40 rows high, scored by its height in the crop: the frame-high crop (0.21) and
    # 1/2, 1/4 of the frame (0.42, 0.83) are tried; the 1/4 crop wins, then rescale fits it
    small = np.full((192, 256, 3), 90, np.uint8)
    small[76:116, 124:132] = 230
    est, person, pose = _tracked_estimator(detect_every=3, crop_levels=3)
    est.pose.backend = pose = FakePose(by_size=True)
    r = est.estimate(small, timestamp=0.0, frame_index=0)
    assert pose.batches[:2] == [1, 2] and len(r.persons) == 1
    x0, y0, x1, y1 = r.persons[0].box
    assert x1 - x0 < 0.5 * small.shape[0]          # a box that fits it, not the frame
    assert y0 < 76 < 116 < y1
    for i in range(1, 4):
        r = est.estimate(small, timestamp=i / 30, frame_index=i)
    assert r.path == "detector (every 3)"
    assert pose.batches[-1] == 1            # on the track: its own crop only, no levels


def test_a_track_across_two_people_side_by_side_gives_way_to_their_detections():
    """A skeleton as wide as tall (joints spread over two walkers) whose box holds two detector
    centres side by side: on the next detector frame its crop is left out and both centres are
    cut as newcomers (the same bright blob here, so one is then dropped as a duplicate)."""
    est, person, pose = _tracked_estimator(detect_every=3)
    est.pose.backend = pose = FakePose(spread=0.5)
    r = est.estimate(FRAME, timestamp=0.0, frame_index=0)
    assert len(r.persons) == 1
    x0, _, x1, _ = r.persons[0].box
    person.centres[:] = [(106, 96), (150, 96)]      # 44 px apart across, > 0.3 x 116
    for i in range(1, 4):
        r = est.estimate(FRAME, timestamp=i / 30, frame_index=i)
    assert r.path == "detector (every 3)"
    assert pose.batches[-1] == 2, pose.batches    # two newcomers, not the track's crop
    assert len(r.persons) == 1 and r.persons[0].track_id == 0
    person.centres[:] = [(128, 70), (128, 130)]     # one above the other: one tall person
    for i in range(4, 7):
        r = est.estimate(FRAME, timestamp=i / 30, frame_index=i)
    assert r.path == "detector (every 3)" and pose.batches[-1] == 1


def test_detect_every_one_is_the_detector_path():
    est, person, pose = _tracked_estimator(detect_every=1)
    for i in range(4):
        r = est.estimate(FRAME, timestamp=i / 30, frame_index=i)
        assert r.path == "detector" and r.timings["tracked"] == 0.0
    assert person.calls == 4


# ------------------------------------------------------------------ bench --webcam
def test_webcam_bench_table_with_tiny_nets(monkeypatch, tmp_path):
    from humanpose import config
    from humanpose.optimize import webcam_bench
    monkeypatch.setattr(config, "shared_media", lambda: tmp_path / "none" / "media")
    frames, where = webcam_bench.webcam_frames(4)
    assert "generated" in where and len(frames) == 4
    assert all(f.shape == (480, 640, 3) for f in frames)
    assert np.abs(frames[0].astype(int) - frames[3]).mean() > 1     # it moves
    cfg = from_dict({"estimator": {"min_pose_score": 0.0}})
    variants = webcam_bench.make_variants(cfg, tiny("person"), tiny("pose"), [64],
                                          webcam_bench.BACKENDS)
    assert len(variants) == 8
    int8 = [v for v in variants if v.precision == "int8"]
    assert all(v.skip and "export-onnx --int8" in v.skip for v in int8)   # none made here
    auto = [v for v in variants if v.precision == "auto"]   # the default: runs, fp32 here
    assert auto and all(v.skip is None for v in auto)
    assert all(v.backend == "onnxruntime auto (pose fp32, person fp32)" for v in auto)
    webcam_bench.run_variants(variants, frames, warmup=1)
    table = webcam_bench.format_table(variants)
    assert table.count("\n") == 9
    assert "| 64 | onnxruntime fp32 | detect every frame |" in table
    assert "tracking-driven (detector every 10)" in table
    for v in variants:
        assert v.skip is not None or len(v.times) == 4
    # the per-step breakdown beside p50 / p95: each step's mean ms per frame, which together
    # take no more than the frame as timed around estimate()
    assert "| p50 ms | p95 ms | fps (p50) | preprocess | person | pose | post | track |" in table
    for v in variants:
        if v.skip is None:
            means = [v.steps[k] / len(v.times) for k in webcam_bench.STEPS]
            assert min(means) >= 0 and sum(means) <= np.mean(v.times) + 1e-6
            row = next(r for r in table.splitlines() if f"| {v.backend} | {v.path} |" in r)
            assert " | ".join(f"{m:.2f}" for m in means) in row


def test_eval_still_clip_scores_the_last_frame_of_each_clip(tmp_path):
    """eval --still-clip: each image N times with the tracks forgotten between images; the
    last frame's pose is the one scored, and the share of tracked frames is reported."""
    import humanpose.skeleton as sk
    from humanpose.config import Config
    from humanpose.estimator.result import Person, PoseResult
    from humanpose.train import evaluate as ev
    from humanpose.train.datasets import read_lsp_dir
    from test_training import _fake_lsp
    _fake_lsp(tmp_path / "lsp", n=3)
    data = read_lsp_dir(tmp_path / "lsp", "lsp")

    class ClipEstimator:
        config = Config()
        backend_name = "clip oracle"

        def __init__(self):
            self.calls, self.resets, self.image = [], 0, -1

        def reset(self):
            self.resets += 1
            self.image += 1

        def estimate(self, img, timestamp=None, frame_index=0, keep_maps=False, centres=None):
            gt = data.joints[max(self.image, 0)]
            self.calls.append((self.image, frame_index, centres is None))
            last = centres is not None or frame_index == 2
            joints = np.column_stack([np.nan_to_num(gt if last else gt + 500.0),
                                      np.full(sk.NUM_JOINTS, 0.9)])
            return PoseResult(frame_index, 0.0, img.shape[:2], 192, [Person(
                centre=np.nanmean(gt, 0), centre_score=1.0, box=np.zeros(4), joints=joints)],
                path="tracked" if frame_index else "detector")

    est = ClipEstimator()
    rep = ev.evaluate(est, data, progress=False, still_clip=3)
    assert est.resets == 3
    assert [c for c in est.calls if c[2]] == [(i, k, True) for i in range(3) for k in range(3)]
    assert rep["pck_end_to_end"] == 100.0 and rep["still_clip"] == 3
    assert rep["tracked_frames_fraction"] == round(6 / 9, 3)
