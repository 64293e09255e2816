"""The int8 self-check: an int8 export runs only where it gives fp32's answer on this CPU."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from humanpose import config
from humanpose.estimator import cpu, int8, int8_check
from humanpose.estimator.backends import OnnxRuntimeBackend, auto_int8, make_backend
from humanpose.store import load_model, read_manifest

from conftest import ROOT

MODELS = ROOT / "models"


def _fresh_copy(tmp_path, monkeypatch, name):
    """The shipped net ``name`` with its kept ranges, as on a user's fresh checkout."""
    monkeypatch.setenv("HUMANPOSE_CACHE", str(tmp_path / "cache"))
    entry = next((e for e in read_manifest(MODELS) if e["name"] == name), None)
    if entry is None or not (MODELS / (entry["file"] + int8.RANGES_SUFFIX)).exists():
        pytest.skip(f"{name} is not shipped with int8 ranges")
    for f in (entry["file"], entry["file"] + int8.RANGES_SUFFIX):
        shutil.copy(MODELS / f, tmp_path / f)
    return load_model(tmp_path / entry["file"])


def _perturb_int8(monkeypatch, factor=0.3):
    """int8 outputs scaled down, as saturating AVX2 kernels flatten the person net's peaks."""
    real = OnnxRuntimeBackend.__call__

    def call(self, x):
        out = real(self, x)
        return [o * factor for o in out] if self.precision == "int8" else out
    monkeypatch.setattr(OnnxRuntimeBackend, "__call__", call)


def _asked(model) -> str:
    """The precision under which ``model`` runs int8: auto where that is int8, else int8."""
    return "auto" if auto_int8(model) else "int8"


def _int8_net_names():
    cfg = config.load()
    return [n for n in (cfg.model.person_model, cfg.model.pose_model)
            if any(e["name"] == n for e in read_manifest(MODELS))]


@pytest.mark.parametrize("name", _int8_net_names())
def test_a_disagreeing_int8_export_is_not_run(tmp_path, monkeypatch, name):
    model = _fresh_copy(tmp_path, monkeypatch, name)
    _perturb_int8(monkeypatch)
    auto = make_backend(model, "onnxruntime", "cpu", _asked(model))
    assert auto.precision == "fp32" and auto.name == "onnxruntime/cpu"
    assert auto.note.startswith("int8 disagreed with fp32 on this CPU")
    assert cpu.int8_kernel() in auto.note and "using fp32" in auto.note
    explicit = make_backend(model, "onnxruntime", "cpu", "int8")
    assert explicit.precision == "fp32" and "int8 disagreed" in explicit.note
    # the verdict is kept with the export for this CPU ...
    path = int8.int8_path(model)
    kept = json.loads(path.with_name(path.name + int8_check.CHECK_SUFFIX).read_text())
    assert kept["disagreement"] and kept["cpu"] == cpu.cpu_key()
    monkeypatch.undo()                                    # kernels fine again, verdict kept
    monkeypatch.setenv("HUMANPOSE_CACHE", str(tmp_path / "cache"))
    assert make_backend(model, "onnxruntime", "cpu", _asked(model)).precision == "fp32"
    # ... and another CPU checks again
    monkeypatch.setattr(int8_check, "cpu_key", lambda: "another CPU")
    again = make_backend(model, "onnxruntime", "cpu", _asked(model))
    assert again.precision == "int8" and again.note is None


@pytest.mark.parametrize("name", _int8_net_names())
def test_the_shipped_int8_exports_pass_the_self_check_here(tmp_path, monkeypatch, name):
    model = _fresh_copy(tmp_path, monkeypatch, name)
    b = make_backend(model, "onnxruntime", "cpu", _asked(model))
    assert b.precision == "int8" and b.note is None, b.note
    if not auto_int8(model):                 # measured not safe on this CPU: auto runs fp32
        auto = make_backend(model, "onnxruntime", "cpu", "auto")
        assert auto.precision == "fp32" and auto.note is None
    fp32 = make_backend(model, "onnxruntime", "cpu", "fp32")
    for x in int8_check.reference_inputs(model.kind):
        assert int8_check.compare(model.kind, fp32(x), b(x)) is None
    # the export's weights are the scheme that holds on every kernel path
    assert int8.int8_location(model)[1].endswith(f"weights={int8.weight_scheme(model)}")


def test_compare_finds_a_moved_person_and_moved_joints():
    person = np.zeros((1, 1, 24, 32), np.float32)
    person[0, 0, 10, 12] = 0.7
    moved = np.zeros_like(person)
    moved[0, 0, 10, 16] = 0.7
    assert int8_check.compare("person", [person], [person]) is None
    assert "person peaks" in int8_check.compare("person", [person], [moved])
    assert "person peaks" in int8_check.compare("person", [person], [person * 0.3])
    pose = np.zeros((1, 15, 24, 24), np.float32)
    for k in range(14):
        pose[0, k, k + 2, 5] = 0.8
    shifted = np.roll(pose, 3, axis=3)
    assert int8_check.compare("pose", [pose], [pose]) is None
    one = pose.copy()
    one[0, 0] = shifted[0, 0]
    assert int8_check.compare("pose", [pose], [one]) is None          # one ambiguous joint
    assert "14 of 14 joints" in int8_check.compare("pose", [pose], [shifted])


def test_reference_inputs_are_a_person_frame_and_crop():
    person = int8_check.reference_inputs("person")
    assert len(person) == 2 and all(x.shape[:3] == (1, 3, 192) and x.shape[3] % 32 == 0
                                    for x in person)
    (pose,) = int8_check.reference_inputs("pose")
    assert pose.shape == (1, 4, 192, 192) and abs(pose[0, 3].max() - 1) < 0.05
    assert pose[0, :3].std() > 0.05                       # a photo, not a blank


def test_cpu_int8_path_from_the_flags(monkeypatch):
    for flags, kernel, vnni in (({"avx2", "fma"}, "AVX2 (no VNNI)", False),
                                ({"avx2", "avx512f", "avx512_vnni"}, "AVX512-VNNI", True),
                                ({"avx2", "avx_vnni"}, "AVX-VNNI", True),
                                ({"avx2", "avx512_vnni", "amx_int8", "amx_tile"}, "AMX", True)):
        monkeypatch.setattr(cpu, "cpu_flags", lambda f=flags: frozenset(f))
        assert cpu.int8_kernel() == kernel and cpu.has_vnni() is vnni
        assert cpu.cpu_summary()["int8_kernel"] == kernel
        assert kernel in cpu.describe()


def test_unknown_weight_scheme_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown int8 weight scheme"):
        int8.quantize_onnx(tmp_path / "none.onnx", tmp_path / "q.onnx", [], weights="s9")


def test_the_estimator_reports_what_ran_and_on_which_cpu(tmp_path, monkeypatch):
    from humanpose.estimator.pipeline import PoseEstimator
    monkeypatch.setenv("HUMANPOSE_CACHE", str(tmp_path / "cache"))
    cfg = config.load()
    cfg = config.set_value(cfg, "model.framework", "onnxruntime")
    est = PoseEstimator(config.set_value(cfg, "model.device", "cpu"))
    rep = est.backend_report
    assert rep["backend"] == est.backend_name
    assert set(rep["precision"]) == {"person", "pose"}
    if not cpu.has_vnni():                                # auto: the detector stays fp32
        assert rep["precision"]["person"] == "fp32"
    assert rep["precision"]["pose"] in ("int8", "fp32")   # int8 unless this CPU's check failed
    assert (rep["precision"]["pose"] == "int8") == (est.backend_note is None)
    assert rep["cpu"] == cpu.cpu_summary() and rep["cpu"]["int8_kernel"] in est.backend_summary
    assert f"pose {rep['precision']['pose']}" in est.backend_summary


def test_the_weight_scheme_and_auto_follow_the_cpu(monkeypatch):
    """8-bit weights only where VNNI / AMX accumulate in 32 bits; elsewhere schemes that cannot
    saturate the AVX2 kernels, and auto keeps the detector in fp32 there."""
    person, pose = (type("Net", (), {"kind": k})() for k in ("person", "pose"))
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert (int8.weight_scheme(person), int8.weight_scheme(pose)) == ("u8", "s7")
    assert not auto_int8(person) and auto_int8(pose)
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_vnni"}))
    assert (int8.weight_scheme(person), int8.weight_scheme(pose)) == ("s8", "s8")
    assert auto_int8(person) and auto_int8(pose)
