"""The skeleton definition, the config object and the model store."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from humanpose import config, skeleton as sk
from humanpose.nets import build_model
from humanpose.store import ModelError, load_model, load_named, save_weights, sha256, write_manifest


def test_skeleton_order_and_lsp_mapping():
    assert sk.JOINTS[:2] == ("head_top", "neck") and sk.NUM_MAPS == 15
    lsp = np.arange(14)                     # LSP index of each joint
    mpi = sk.lsp_to_mpi(lsp)
    assert [sk.LSP_JOINTS[i] for i in mpi] == list(sk.JOINTS)
    assert sk.LSP_JOINTS[mpi[sk.JOINT_INDEX["r_ankle"]]] == "r_ankle"


def test_flip_pairs_are_left_right():
    for a, b in sk.FLIP_PAIRS:
        assert sk.JOINTS[a][2:] == sk.JOINTS[b][2:] and {sk.JOINTS[a][0], sk.JOINTS[b][0]} == {"r", "l"}
    perm = sk.flip_permutation()
    assert sorted(perm) == list(range(15)) and perm[perm[3]] == 3 and perm[14] == 14
    assert len(sk.LIMB_COLOURS) == len(sk.LIMBS)


def test_joint_angle():
    j = np.zeros((14, 2))
    j[2], j[3], j[4] = (0, 0), (10, 0), (10, 10)       # right elbow bent 90 degrees
    assert sk.joint_angle(j, "R elbow") == pytest.approx(90.0)
    j[4] = np.nan
    assert np.isnan(sk.joint_angle(j, "R elbow"))


def test_project_config_loads_and_defaults_match(tmp_path):
    cfg = config.load()
    assert cfg.estimator.boxsize % 8 == 0 and cfg.model.framework in ("onnxruntime", "torch", "opencv")
    # every dataclass default is the value written in humanpose.yml
    assert cfg.to_dict() == config.Config().to_dict()


@pytest.mark.parametrize("text, words", [
    ("estimator:\n  boxsise: 128\n", ["estimator.boxsise", "allowed keys", "boxsize"]),
    ("estimator:\n  boxsize: big\n", ["estimator.boxsize", "'big'", "integer"]),
    ("estimator:\n  boxsize: 1000\n", ["estimator.boxsize", "1000", "64 to 640"]),
    ("model:\n  framework: caffe\n", ["model.framework", "'caffe'", "torch, opencv"]),
    ("tracking:\n  enabled: 3\n", ["tracking.enabled", "true or false"]),
    ("camera:\n  fps: 3\n", ["unknown section", "camera"]),
    ("estimator: [1, 2\n", ["not valid YAML"]),
    ("estimator:\n  scale_search: .nan\n", ["estimator.scale_search", "nan", "finite number"]),
    ("tracking:\n  process_noise: .inf\n", ["tracking.process_noise", "inf", "finite number"]),
])
def test_bad_config_names_key_value_and_allowed(tmp_path, text, words):
    p = tmp_path / "bad.yml"
    p.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.load(p)
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize("command", ["run", "bench", "export-onnx", "eval"])
def test_every_command_reports_a_bad_config_without_traceback(tmp_path, capsys, command):
    from humanpose.cli import main
    p = tmp_path / "bad.yml"
    p.write_text("estimator:\n  boxsise: 128\n")
    extra = {"run": [str(tmp_path)], "eval": ["--data", str(tmp_path)]}.get(command, [])
    assert main([command, *extra, "--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "estimator.boxsise" in err and "Traceback" not in err


def test_config_that_is_not_a_yaml_text_file_is_named(tmp_path):
    video = tmp_path / "clip.avi"
    video.write_bytes(b"RIFF\x00\x10\x00\x00AVI LIST\xc0\xff\xfe" * 8)   # binary, not UTF-8
    with pytest.raises(config.ConfigError, match="clip.avi: not a YAML text file.*as the source"):
        config.load(video)
    with pytest.raises(config.ConfigError, match="cannot read config file"):
        config.load(tmp_path)                                     # a folder


def test_set_value_validates():
    cfg = config.set_value(config.Config(), "estimator.boxsize", 128)
    assert cfg.estimator.boxsize == 128 and config.Config().estimator.boxsize == 192
    with pytest.raises(config.ConfigError):
        config.set_value(cfg, "model.device", "tpu")


def test_store_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    model = build_model("cpm_compact", "pose", stages=2, feat=16).eval()
    path = save_weights(model, tmp_path / "pose.safetensors", "cpm_compact",
                        kwargs={"stages": 2, "feat": 16})
    write_manifest(tmp_path, [{"name": "tiny", "architecture": "cpm_compact", "kind": "pose",
                               "file": "pose.safetensors", "sha256": sha256(path)}])
    loaded = load_named("tiny", tmp_path, "pose")
    x = torch.randn(1, 4, 64, 64)
    with torch.inference_mode():
        for a, b in zip(model(x), loaded(x)):
            assert torch.equal(a, b)
    with pytest.raises(ModelError, match="person net"):
        load_named("tiny", tmp_path, "person")
    with pytest.raises(ModelError, match="neither in"):
        load_named("nope", tmp_path, "pose")
    # truncated file: named, with how to get it back
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cut.safetensors.*truncated or corrupt"):
        load_model(tmp_path / "cut.safetensors")
    # same size, one byte changed: caught by the manifest's sha256
    bad = bytearray(data)
    bad[-1] ^= 0xFF
    path.write_bytes(bytes(bad))
    with pytest.raises(ModelError, match="sha256"):
        load_named("tiny", tmp_path, "pose")
    with pytest.raises(ModelError, match="not found") as err:
        load_model(tmp_path / "missing.safetensors")
    assert "git checkout" not in str(err.value)       # not a shipped file: retrain or convert
    with pytest.raises(ModelError, match="git checkout -- models/gone.safetensors"):
        load_model(Path(__file__).resolve().parents[1] / "models" / "gone.safetensors")
    with pytest.raises(ModelError, match="not a file"):
        load_model(tmp_path)


@pytest.mark.parametrize("text, words", [
    ('[1, 2]', ['expected {"models"']),
    ('{"models": {"a": 1}}', ['expected {"models"']),
    ('{"models": [{"file": "p.safetensors"}]}', ['needs a "name" and a "file"', "p.safetensors"]),
    ('{"models": [{"name": "p"}]}', ['needs a "name" and a "file"', "'p'"]),
])
def test_a_malformed_manifest_is_a_model_error_naming_it(tmp_path, text, words):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ModelError) as err:
        load_named("p", tmp_path, "pose")
    assert "manifest.json" in str(err.value)
    for w in words:
        assert w in str(err.value)


def test_compact_contract():
    for kind, cin, maps in (("pose", 4, 15), ("person", 3, 1)):
        m = build_model("cpm_compact", kind, stages=3, feat=16).eval()
        assert m.in_channels == cin and m.num_maps == maps and m.num_stages == 3
        out = m(torch.zeros(2, cin, 96, 136))
        assert len(out) == 3 and all(o.shape == (2, maps, 12, 17) for o in out)
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("resnet", "pose")


def test_ship_weights_checks_metrics_before_it_copies_anything():
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "tools" / "ship_weights.py"),
                          str(root / "models" / "pose_compact.safetensors"), "pose_tmp_test",
                          "--metrics", "val=1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--metrics must be a JSON object" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (root / "models" / "pose_tmp_test.safetensors").exists()
