"""``humanpose bench`` runs on tiny settings and prints the comparison table."""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
import torch
import yaml

from humanpose import config
from humanpose.cli import main
from humanpose.optimize import bench
from humanpose.nets import build_model
from humanpose.nets.compact import CompactCPM
from humanpose.store import save_weights

torch.set_num_threads(1)


def write_config(tmp_path, models_dir, **model) -> str:
    path = tmp_path / "hp.yml"
    path.write_text(yaml.safe_dump({
        "model": {"models_dir": str(models_dir), "device": "cpu", "framework": "torch", **model},
        "estimator": {"boxsize": 64}}))
    return str(path)


def table_rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")]
            for line in out.splitlines() if line.startswith("| ") and "---" not in line]


def test_bench_missing_weights_times_random_weights_and_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(config, "shared_media", lambda: tmp_path / "no_media")
    cfg = write_config(tmp_path, tmp_path / "empty")
    rc = main(["bench", "--config", cfg, "--frames", "1", "--boxsizes", "64", "--archs",
               "cpm_compact", "--threads", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    from humanpose.config import ModelConfig
    assert "RANDOM weights" in out and "timing only" in out and ModelConfig().person_model in out
    assert "generated" in out
    rows = table_rows(out)
    assert rows[0][:2] == ["boxsize", "step (median ms)"]
    assert "cpm_compact (random weights, timing only)" in rows[0][2]
    body = rows[1:]
    assert [r[1].split(" (")[0] for r in body] == ["person detection", "pose estimation",
                                                   "full pipeline"]
    for r in body:
        assert r[0] == "64"
        assert float(r[2].split()[0]) > 0


def test_bench_configured_weights_and_converted_vgg_side_by_side(tmp_path, capsys):
    models = tmp_path / "models"
    kw = {"stages": 2, "feat": 16}
    save_weights(CompactCPM("person", **kw), models / "p.safetensors", "cpm_compact", kwargs=kw)
    save_weights(CompactCPM("pose", **kw), models / "q.safetensors", "cpm_compact", kwargs=kw)
    vkw = {"width": 0.125}
    save_weights(build_model("cpm_vgg", "person", **vkw), tmp_path / "vp.safetensors", "cpm_vgg",
                 kwargs=vkw)
    save_weights(build_model("cpm_vgg", "pose", **vkw), tmp_path / "vq.safetensors", "cpm_vgg",
                 kwargs=vkw)
    cfg = write_config(tmp_path, models, person_model="p.safetensors", pose_model="q.safetensors")
    # a real image file as the source
    img = np.random.default_rng(0).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    src = tmp_path / "frame.png"
    assert cv2.imwrite(str(src), img)
    rc = main(["bench", "--config", cfg, "--frames", "1", "--boxsizes", "64", "70",
               "--source", str(src), "--vgg-person", str(tmp_path / "vp.safetensors"),
               "--vgg-pose", str(tmp_path / "vq.safetensors"), "--threads", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "RANDOM" not in out and "frame.png (160x90)" in out
    rows = table_rows(out)
    assert rows[0][2] == "cpm_compact (p.safetensors + q.safetensors)"
    assert rows[0][3] == "cpm_vgg (vp.safetensors + vq.safetensors)"
    assert [r[0] for r in rows[1:]] == ["64"] * 3 + ["72"] * 3     # 70 rounded to 72
    for r in rows[1:]:
        assert re.fullmatch(r"[\d.]+( \([\d.]+\))?", r[2]) and re.fullmatch(r"[\d.]+( \([\d.]+\))?", r[3])


def test_bench_random_vgg_is_labelled(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(config, "shared_media", lambda: tmp_path / "no_media")
    monkeypatch.setenv("HUMANPOSE_CACHE", str(tmp_path / "cache"))
    cfg = write_config(tmp_path, tmp_path / "empty")
    rc = main(["bench", "--config", cfg, "--frames", "1", "--boxsizes", "64", "--archs",
               "cpm_vgg", "--threads", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "cpm_vgg timed with RANDOM weights" in out
    assert table_rows(out)[0][2] == "cpm_vgg (random weights, timing only)"


def test_bench_bad_arguments(tmp_path, capsys):
    cfg = write_config(tmp_path, tmp_path / "empty")
    assert main(["bench", "--config", cfg, "--boxsizes", "32"]) == 2
    assert "32" in capsys.readouterr().err
    assert main(["bench", "--config", cfg, "--source", str(tmp_path / "nope.avi")]) == 2
    assert "nope.avi" in capsys.readouterr().err
    assert main(["bench", "--config", cfg, "--vgg-person", "x", "--archs", "cpm_vgg"]) == 1
    assert "--vgg-pose" in capsys.readouterr().err


def test_bench_on_the_shared_video(tmp_path, capsys):
    media = config.shared_media()
    if not (media / "street_people.avi").exists():
        pytest.skip(f"../shared/media absent: {media / 'street_people.avi'} not found")
    frames, where = bench.load_frames(None, 2)
    assert len(frames) == 2 and frames[0].shape == (720, 1280, 3)
    assert "street_people.avi (1280x720)" in where


def test_bench_models_compares_weight_pairs_side_by_side(tmp_path, capsys, monkeypatch):
    """--models PERSON,POSE ...: one column a pair (files or manifest names), here a compact and
    a cpm_mobilenet pair; a malformed pair is one error line."""
    monkeypatch.setattr(config, "shared_media", lambda: tmp_path / "no_media")
    models = tmp_path / "models"
    kw = {"stages": 2, "feat": 16}
    save_weights(CompactCPM("person", **kw), models / "p.safetensors", "cpm_compact", kwargs=kw)
    save_weights(CompactCPM("pose", **kw), models / "q.safetensors", "cpm_compact", kwargs=kw)
    mkw = {"stages": 2, "width": 8}
    save_weights(build_model("cpm_mobilenet", "person", **mkw), models / "mp.safetensors",
                 "cpm_mobilenet", kwargs=mkw)
    save_weights(build_model("cpm_mobilenet", "pose", **mkw), models / "mq.safetensors",
                 "cpm_mobilenet", kwargs=mkw)
    cfg = write_config(tmp_path, models)
    rc = main(["bench", "--config", cfg, "--frames", "1", "--boxsizes", "64", "--threads", "1",
               "--models", "mp.safetensors,mq.safetensors", "p.safetensors,q.safetensors"])
    out = capsys.readouterr().out
    assert rc == 0, out
    head = table_rows(out)[0]
    assert head[2] == "cpm_mobilenet (mp.safetensors + mq.safetensors)"
    assert head[3] == "cpm_compact (p.safetensors + q.safetensors)"
    assert all(float(r[2].split()[0]) > 0 and float(r[3].split()[0]) > 0 for r in table_rows(out)[1:])
    assert main(["bench", "--config", cfg, "--frames", "1", "--models", "mp.safetensors"]) == 1
    assert "PERSON,POSE pairs" in capsys.readouterr().err
