"""Backends: torch and OpenCV-DNN agree; the ONNX cache is reused and rebuilt; device errors."""
from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

from humanpose.config import from_dict
from humanpose.estimator import backends, onnx_export
from humanpose.estimator.backends import BackendError, make_backend
from humanpose.estimator.pipeline import PoseEstimator
from humanpose.nets.compact import CompactCPM
from humanpose.store import load_model, save_weights

torch.set_num_threads(1)
KW = {"stages": 2, "feat": 16}


def tiny(kind: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = CompactCPM(kind, **KW).eval()
    with torch.no_grad():   # non-trivial BatchNorm statistics, so export must carry them
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    return m


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("HUMANPOSE_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("kind, shapes", [
    ("person", [(1, 64, 64), (1, 96, 136), (2, 64, 64)]),
    ("pose", [(1, 64, 64), (3, 64, 64), (2, 96, 96)]),
])
def test_torch_and_opencv_give_the_same_maps(kind, shapes):
    m = tiny(kind)
    tb, ob = make_backend(m, "torch", "cpu"), make_backend(m, "opencv", "cpu")
    assert tb.name == "torch/cpu" and ob.name == "opencv/cpu"
    rng = np.random.default_rng(0)
    for n, h, w in shapes:
        x = rng.uniform(-0.5, 0.5, (n, m.in_channels, h, w)).astype(np.float32)
        a, b = tb(x), ob(x)
        assert len(a) == len(b) == 2
        for sa, sb in zip(a, b):
            assert sa.shape == sb.shape == (n, m.num_maps, h // 8, w // 8)
            assert np.abs(sa).max() > 1e-3    # not trivially zero
            np.testing.assert_allclose(sa, sb, atol=1e-4, rtol=1e-4)


def test_same_joints_on_torch_and_opencv():
    person, pose = tiny("person", 1), tiny("pose", 2)
    with torch.no_grad():
        person.stages[-1].out.bias.add_(5.0)   # always some persons
    cfg = from_dict({"model": {"framework": "torch", "device": "cpu"},
                     "estimator": {"boxsize": 64, "person_threshold": 0.0, "max_persons": 3,
                                   "min_pose_score": 0.0},   # untrained nets: keep every detection
                     "tracking": {"enabled": False}})
    est = PoseEstimator(cfg, person, pose)
    frame = np.random.default_rng(3).integers(0, 256, (90, 150, 3), dtype=np.uint8)
    a = est.estimate(frame)
    est.set_backend("opencv", "cpu")
    assert est.backend_name == "opencv/cpu" and est.config.model.framework == "opencv"
    b = est.estimate(frame)
    assert len(a.persons) == len(b.persons) >= 1
    for pa, pb in zip(a.persons, b.persons):
        assert np.hypot(*(pa.joints[:, :2] - pb.joints[:, :2]).T).max() < 1.0
        np.testing.assert_allclose(pa.joints[:, 2], pb.joints[:, 2], atol=1e-4)
        # 0.1 frame px: 0.02 of a detector map cell here (150 px seen at 256: a cell is 4.7 px)
        np.testing.assert_allclose(pa.centre, pb.centre, atol=0.1)


def test_onnx_cache_next_to_weights_is_reused_and_rebuilt(tmp_path):
    wpath = tmp_path / "models" / "pose_tiny.safetensors"
    save_weights(tiny("pose", 1), wpath, "cpm_compact", kwargs=KW)
    model = load_model(wpath)
    b1 = make_backend(model, "opencv", "cpu")
    onnx_path = wpath.with_name(wpath.name + ".onnx")
    sidecar = onnx_path.with_name(onnx_path.name + ".sha256")
    assert b1.onnx_path == onnx_path and onnx_path.exists()
    assert sidecar.read_text().strip() == __import__("humanpose.store").store.sha256(wpath)
    stamp = onnx_path.stat().st_mtime_ns
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 4, 64, 64)).astype(np.float32)
    out1 = b1(x)[-1]

    # same weights again: the export is reused, not rewritten
    os.utime(onnx_path, ns=(stamp - 10**9, stamp - 10**9))
    stamp = onnx_path.stat().st_mtime_ns
    b2 = make_backend(load_model(wpath), "opencv", "cpu")
    assert onnx_path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(b2(x)[-1], out1)

    # new weights in the same file: rebuilt, and the outputs follow the new weights
    new = tiny("pose", 7)
    save_weights(new, wpath, "cpm_compact", kwargs=KW)
    b3 = make_backend(load_model(wpath), "opencv", "cpu")
    assert onnx_path.stat().st_mtime_ns != stamp
    out3 = b3(x)[-1]
    assert np.abs(out3 - out1).max() > 1e-3
    with torch.no_grad():
        ref = new(torch.from_numpy(x))[-1].numpy()
    np.testing.assert_allclose(out3, ref, atol=1e-4, rtol=1e-4)
    assert not list(tmp_path.glob("models/*.tmp"))   # atomic writes leave nothing behind


def test_model_without_weights_file_is_cached_by_state_digest(tmp_path):
    m = tiny("person", 3)
    b = make_backend(m, "opencv", "cpu")
    assert b.onnx_path.parent == tmp_path / "cache" / "onnx"
    again = make_backend(tiny("person", 3), "opencv", "cpu")
    assert again.onnx_path == b.onnx_path               # same weights -> same cache entry
    other = make_backend(tiny("person", 4), "opencv", "cpu")
    assert other.onnx_path != b.onnx_path               # other weights -> other entry


def test_unwritable_weights_dir_goes_to_cache(tmp_path, monkeypatch):
    wpath = tmp_path / "ro" / "p.safetensors"
    save_weights(tiny("person"), wpath, "cpm_compact", kwargs=KW)
    real_access = os.access
    monkeypatch.setattr(onnx_export.os, "access",
                        lambda p, mode: False if str(p) == str(wpath.parent) else real_access(p, mode))
    b = make_backend(load_model(wpath), "opencv", "cpu")
    assert b.onnx_path.parent == tmp_path / "cache" / "onnx"
    assert not (wpath.parent / "p.safetensors.onnx").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(BackendError, match="cuda.*torch"):
        make_backend(tiny("person"), "torch", "cuda")


def test_opencv_cuda_without_cuda_is_a_clear_error():
    import cv2
    if cv2.cuda.getCudaEnabledDeviceCount() > 0:
        pytest.skip("OpenCV has CUDA here")
    with pytest.raises(BackendError, match="OpenCV"):
        make_backend(tiny("person"), "opencv", "cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_auto_falls_back_to_cpu_with_a_message(caplog, monkeypatch):
    monkeypatch.setattr(backends, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="humanpose.estimator.backends"):
        b = make_backend(tiny("person"), "torch", "auto")
        make_backend(tiny("pose"), "torch", "auto")
    assert b.name == "torch/cpu" and b.note == "CUDA not available, using CPU"
    msgs = [r.getMessage() for r in caplog.records if "CUDA not available" in r.getMessage()]
    assert len(msgs) == 1   # once, not per model


def test_unknown_framework_or_device():
    with pytest.raises(BackendError, match="tensorflow"):
        make_backend(tiny("person"), "tensorflow", "cpu")
    with pytest.raises(BackendError, match="tpu"):
        make_backend(tiny("person"), "torch", "tpu")


def _write_config(tmp_path, models_dir) -> str:
    import yaml
    path = tmp_path / "hp.yml"
    path.write_text(yaml.safe_dump({"model": {"models_dir": str(models_dir),
                                              "person_model": "p.safetensors",
                                              "pose_model": "q.safetensors"}}))
    return str(path)


def test_export_onnx_command(tmp_path, capsys):
    import cv2

    from humanpose.cli import main
    models = tmp_path / "models"
    save_weights(tiny("person", 1), models / "p.safetensors", "cpm_compact", kwargs=KW)
    save_weights(tiny("pose", 2), models / "q.safetensors", "cpm_compact", kwargs=KW)
    cfg = _write_config(tmp_path, models)
    assert main(["export-onnx", "--config", cfg, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    for name, cin in (("p", 3), ("q", 4)):
        f = tmp_path / "out" / f"{name}.safetensors.onnx"
        assert str(f) in out
        net = cv2.dnn.readNetFromONNX(str(f))
        net.setInput(np.zeros((1, cin, 64, 64), np.float32))
        assert net.forward("stage2").shape[2:] == (8, 8)
    # default: next to the weights (the cache the opencv backend uses)
    assert main(["export-onnx", "--config", cfg]) == 0
    assert (models / "q.safetensors.onnx").exists() and (models / "q.safetensors.onnx.sha256").exists()


def test_export_onnx_command_unwritable_out(tmp_path, capsys):
    from humanpose.cli import main
    models = tmp_path / "models"
    save_weights(tiny("person", 1), models / "p.safetensors", "cpm_compact", kwargs=KW)
    save_weights(tiny("pose", 2), models / "q.safetensors", "cpm_compact", kwargs=KW)
    (tmp_path / "a_file").write_text("")
    assert main(["export-onnx", "--config", _write_config(tmp_path, models),
                 "--out", str(tmp_path / "a_file")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write the person model's ONNX file") and "a_file" in err


def test_a_damaged_onnx_cache_is_exported_again(tmp_path, caplog):
    wpath = tmp_path / "models" / "pose_tiny.safetensors"
    save_weights(tiny("pose", 1), wpath, "cpm_compact", kwargs=KW)
    b1 = make_backend(load_model(wpath), "opencv", "cpu")
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 4, 64, 64)).astype(np.float32)
    want = b1(x)[-1]
    b1.onnx_path.write_bytes(b1.onnx_path.read_bytes()[:500])   # its sidecar still matches
    with caplog.at_level(logging.WARNING):
        b2 = make_backend(load_model(wpath), "opencv", "cpu")
    assert "exporting it again" in caplog.text
    np.testing.assert_array_equal(b2(x)[-1], want)


def test_export_onnx_command_missing_weights(tmp_path, capsys):
    from humanpose.cli import main
    cfg = _write_config(tmp_path, tmp_path / "empty")
    assert main(["export-onnx", "--config", cfg]) == 1
    assert "p.safetensors" in capsys.readouterr().err
