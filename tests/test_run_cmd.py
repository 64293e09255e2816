"""`humanpose run`: result files written and read back, the summary line, error paths, Ctrl-C.

Tiny random-weight nets (a person net biased to find people everywhere) keep it fast; the
files and counts are checked against each other, not against true poses.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from humanpose import cli
from humanpose.config import Config, from_args, from_dict
from humanpose.export import runner
from humanpose.export.runner import run
from humanpose.export.readers import read_jsonl, read_keypoints_csv
from humanpose.export.writers import CSV_COLUMNS
from humanpose.nets import build_model
from humanpose.skeleton import NUM_JOINTS
from humanpose.sources import FrameSource, open_source
from humanpose.store import save_weights

torch.set_num_threads(1)
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
W, H, N = 96, 64, 6
TINY = {"stages": 2, "feat": 16}
LINE = re.compile(r"^frames: (\d+)  persons found: (\d+)(?: \(tracks: (\d+)\))?  fps: \d+\.\d$")


def nets():
    torch.manual_seed(0)
    person = build_model("cpm_compact", "person", **TINY).eval()
    with torch.no_grad():
        person.stages[-1].out.bias.add_(5.0)   # positive map everywhere: always finds persons
    pose = build_model("cpm_compact", "pose", **TINY).eval()
    return person, pose


def make_cfg(tracking: bool = True) -> Config:
    return from_dict({"model": {"framework": "torch", "device": "cpu"},
                      "estimator": {"boxsize": 64, "max_persons": 2, "person_threshold": 0.0,
                                    "min_pose_score": 0.0},   # untrained nets: keep all
                      "tracking": {"enabled": tracking}})


def frame(i: int) -> np.ndarray:
    # textured, so each MJPG frame is large next to the AVI header (truncation test)
    img = np.random.default_rng(i).integers(40, 80, (H, W, 3), dtype=np.uint8)
    cv2.circle(img, (20 + 8 * i, 32), 10, (200, 180, 160), -1)
    return img


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("media") / "walk.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    for i in range(N):
        w.write(frame(i))
    w.release()
    return path


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    return n


def test_video_run_writes_consistent_files(video, tmp_path):
    person, pose = nets()
    s = run(str(video), make_cfg(), tmp_path / "out", person_model=person, pose_model=pose,
            progress=False)
    assert s.frames == N and not s.interrupted and s.source_error is None
    assert s.video_path == tmp_path / "out" / "annotated.mp4" and s.images_dir is None
    assert count_frames(s.video_path) == N
    cap = cv2.VideoCapture(str(s.video_path))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (W, H)
    from humanpose.export.outdir import read_manifest
    from humanpose.export.writers import h264_available
    manifest = read_manifest(tmp_path / "out")
    codec = manifest["video_codec"]
    assert codec == s.video_codec == ("h264" if h264_available() else "mp4v")
    from humanpose.estimator.cpu import cpu_summary            # what ran, and on which CPU
    assert manifest["backend"]["cpu"] == cpu_summary()
    assert set(manifest["backend"]["precision"]) == {"person", "pose"}

    header = s.csv_path.read_text().splitlines()[0]
    assert header == "frame,time_s,person,joint,x,y,score" == ",".join(CSV_COLUMNS)
    lines = read_jsonl(s.jsonl_path)
    assert [o["frame"] for o in lines] == list(range(N))
    assert [o["time_s"] for o in lines] == pytest.approx([i / 10 for i in range(N)])
    per_frame = [len(o["persons"]) for o in lines]
    assert s.persons == sum(per_frame) and 0 < s.persons <= 2 * N
    ids = {p["id"] for o in lines for p in o["persons"]}
    assert s.tracks == len(ids) and ids == s.track_ids
    assert all(p["track_id"] == p["id"] for o in lines for p in o["persons"])

    rows = read_keypoints_csv(s.csv_path)
    assert sum(len(f.persons) for f in rows) == s.persons
    for f, o in zip(rows, [o for o in lines if o["persons"]]):
        assert f.frame == o["frame"]
        for p in o["persons"]:
            np.testing.assert_allclose(f.persons[p["id"]], p["joints"], atol=0.01)
            assert f.persons[p["id"]].shape == (NUM_JOINTS, 3)

    m = LINE.match(s.line())
    assert m and (int(m[1]), int(m[2]), int(m[3])) == (N, s.persons, s.tracks)


def test_folder_run_writes_annotated_images(tmp_path):
    src = tmp_path / "shots"
    src.mkdir()
    for i, name in enumerate(["b.png", "a.jpg", "c.bmp"]):
        cv2.imwrite(str(src / name), frame(i))
    person, pose = nets()
    s = run(str(src), make_cfg(tracking=False), tmp_path / "o",
            person_model=person, pose_model=pose, progress=False)
    assert s.frames == 3 and s.video_path is None
    names = sorted(p.name for p in s.images_dir.iterdir())
    assert names == ["a.jpg", "b.png", "c.bmp"]
    for name in names:
        img = cv2.imread(str(s.images_dir / name))
        assert img.shape == (H, W, 3) and not np.array_equal(img, frame(0))  # annotated
    assert LINE.match(s.line()) and "tracks" not in s.line()
    assert [o["frame"] for o in read_jsonl(s.jsonl_path)] == [0, 1, 2]


def test_folder_run_keeps_same_stem_images_apart_and_names_unreadable_ones(tmp_path, capsys):
    src = tmp_path / "shots"
    src.mkdir()
    cv2.imwrite(str(src / "d.png"), frame(0))
    cv2.imwrite(str(src / "d.ppm"), frame(1))
    (src / "e.jpg").write_bytes(b"not an image")
    person, pose = nets()
    s = run(str(src), make_cfg(tracking=False), tmp_path / "o",
            person_model=person, pose_model=pose, progress=False)
    assert s.frames == 2
    assert sorted(p.name for p in s.images_dir.iterdir()) == ["d.png", "d.ppm.png"]
    # a skipped image makes the result incomplete, named in run.json's exit_reason
    assert s.skipped == [str(src / "e.jpg")] and not s.complete and s.exit_code == 3
    assert s.reason == "skipped 1 unreadable image(s): e.jpg"
    m = json.loads(s.manifest_path.read_text())
    assert m["complete"] is False and m["exit_reason"] == s.reason and m["exit_code"] == 3


def test_default_out_dir_max_frames_and_no_video(video, tmp_path):
    cfg = from_dict({"output": {"directory": str(tmp_path / "results")}}, make_cfg())
    person, pose = nets()
    s = run(str(video), cfg, write_video=False, max_frames=2, person_model=person,
            pose_model=pose, progress=False)
    assert s.out_dir == tmp_path / "results" / "walk"
    # no lock file nor staging folder is left behind
    assert sorted(p.name for p in s.out_dir.iterdir()) == ["keypoints.csv", "keypoints.jsonl",
                                                           "run.json"]
    assert s.frames == 2 and len(read_jsonl(s.jsonl_path)) == 2


class Interrupting(FrameSource):
    """Wraps a source and raises KeyboardInterrupt (like Ctrl-C) when frame ``at`` is due."""

    def __init__(self, inner: FrameSource, at: int):
        super().__init__()
        self.inner, self.at, self.n = inner, at, 0
        self.name, self.fps, self.size = inner.name, inner.fps, inner.size

    def _read(self):
        if self.n == self.at:
            raise KeyboardInterrupt
        self.n += 1
        return self.inner.read()

    def _close(self):
        self.inner.close()


def test_ctrl_c_closes_complete_files(video, tmp_path):
    person, pose = nets()
    src = Interrupting(open_source(video), at=3)
    s = run(src, make_cfg(), tmp_path / "o", person_model=person, pose_model=pose,
            progress=False)
    assert s.interrupted and s.frames == 3 and src.closed and src.inner.closed
    assert count_frames(s.video_path) == 3
    assert len(read_jsonl(s.jsonl_path)) == 3
    assert sum(len(f.persons) for f in read_keypoints_csv(s.csv_path)) == s.persons


def test_truncated_video_reports_source_error(video, tmp_path):
    cut = tmp_path / "cut.avi"
    data = video.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    person, pose = nets()
    s = run(str(cut), make_cfg(), tmp_path / "o", person_model=person, pose_model=pose,
            progress=False)
    assert 0 < s.frames < N and "truncated" in s.source_error


# --------------------------------------------------------------------------------- CLI
@pytest.fixture()
def config_file(tmp_path) -> Path:
    """A config whose models are tiny weight files saved in the project's format."""
    person, pose = nets()
    models = tmp_path / "models"
    save_weights(person, models / "p.safetensors", "cpm_compact", kwargs=TINY)
    save_weights(pose, models / "q.safetensors", "cpm_compact", kwargs=TINY)
    data = make_cfg().to_dict()
    data["model"].update(models_dir=str(models), person_model="p.safetensors",
                         pose_model="q.safetensors")
    data["output"]["directory"] = str(tmp_path / "results")
    path = tmp_path / "humanpose.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_cli_run_prints_summary_line(video, config_file, tmp_path, capsys):
    rc = cli.main(["run", str(video), "--config", str(config_file), "--no-progress",
                   "--max-frames", "4", "--boxsize", "101"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    last = out.strip().splitlines()[-1]
    m = LINE.match(last)
    assert m and int(m[1]) == 4, last
    out_dir = tmp_path / "results" / "walk"
    assert count_frames(out_dir / "annotated.mp4") == 4
    assert len(read_jsonl(out_dir / "keypoints.jsonl")) == 4
    # the pipeline rounds the box size; the warning is one clean line
    assert "warning: boxsize 101 is not a multiple of 8; using 104" in err.splitlines()


@pytest.mark.parametrize("argv, message", [
    (["{missing}"], "error: file or folder not found: "),
    (["{video}", "--boxsize", "10"], "error: estimator.boxsize: 10 is not allowed"),
    (["{video}", "--framework", "tf"], "error: model.framework: 'tf' is not allowed"),
    (["{video}", "--scale-search", "0.9"], "error: estimator.scale_search: 0.9 is not allowed"),
    (["{video}", "--crop-levels", "0"], "error: estimator.crop_levels: 0 is not allowed"),
    (["{video}", "--config", "{bad_config}"], "error: "),
    (["{video}", "--config", "{no_weights}"], "error: model 'person_multipose' is neither"),
])
def test_cli_errors_exit_2_without_traceback(video, tmp_path, capsys, argv, message):
    bad = tmp_path / "bad.yml"
    bad.write_text("estimator:\n  boxsise: 128\n")
    no_weights = tmp_path / "empty.yml"
    no_weights.write_text(yaml.safe_dump({"model": {"models_dir": str(tmp_path / "none")},
                                          "output": {"directory": str(tmp_path / "res")}}))
    argv = [a.format(missing=tmp_path / "missing.mp4", video=video, bad_config=bad,
                     no_weights=no_weights) for a in argv]
    rc = cli.main(["run", *argv, "--no-progress", "--out", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert rc == 2
    assert message in err and "Traceback" not in err + out
    if "bad.yml" in " ".join(argv):
        assert "unknown key estimator.boxsise" in err
    assert not (tmp_path / "o").exists(), "nothing is written when the run cannot start"


def test_cli_ctrl_c_exit_130(video, config_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "open_source",
                        lambda spec, cfg=None: Interrupting(open_source(spec, cfg), at=2))
    rc = cli.main(["run", str(video), "--config", str(config_file), "--no-progress",
                   "--out", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert rc == 130 and "interrupted" in err
    assert LINE.match(out.strip().splitlines()[-1]).group(1) == "2"
    assert len(read_jsonl(tmp_path / "o" / "keypoints.jsonl")) == 2


def test_shared_street_people_first_frames(tmp_path):
    path = SHARED / "media" / "street_people.avi"
    if not path.exists():
        pytest.skip(f"../shared/media absent: {path}")
    person, pose = nets()
    s = run(str(path), make_cfg(), tmp_path / "o", max_frames=3, person_model=person,
            pose_model=pose, progress=False)
    assert s.frames == 3
    cap = cv2.VideoCapture(str(s.video_path))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (1280, 720)
    assert count_frames(s.video_path) == 3
    assert [o["time_s"] for o in read_jsonl(s.jsonl_path)] == pytest.approx([0, 0.02, 0.04])


@pytest.mark.parametrize("command", ["run", "eval"])
@pytest.mark.parametrize("in_file, flags, expected", [
    (False, [], False), (False, ["--rescale"], True), (True, ["--no-rescale"], False),
    (True, [], True)])
def test_rescale_flags_override_the_config_file(tmp_path, command, in_file, flags, expected):
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump({"estimator": {"rescale": in_file}}))
    first = ["x.mp4"] if command == "run" else ["--data", "d"]
    args = cli.build_parser(command).parse_args([command, *first, "--config", str(path), *flags])
    assert from_args(args).estimator.rescale is expected


@pytest.mark.parametrize("command", ["run", "eval"])
def test_detector_size_and_crop_levels_flags_override_the_config_file(tmp_path, command):
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump({"estimator": {"detector_size": 320, "crop_levels": 2}}))
    first = ["x.mp4"] if command == "run" else ["--data", "d"]
    parse = lambda *flags: from_args(cli.build_parser(command).parse_args(  # noqa: E731
        [command, *first, "--config", str(path), *flags])).estimator
    assert (parse().detector_size, parse().crop_levels) == (320, 2)
    est = parse("--detector-size", "512", "--crop-levels", "1")
    assert (est.detector_size, est.crop_levels) == (512, 1)


def test_cli_waits_passively_unless_a_bounded_spin_is_asked_for(monkeypatch):
    import os

    from humanpose.cli import main
    for spin, expected in ((None, "PASSIVE"), ("100000", None)):
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
        if spin is None:
            monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
        else:
            monkeypatch.setenv("GOMP_SPINCOUNT", spin)
        with pytest.raises(SystemExit):
            main(["export-onnx", "--help"])
        assert os.environ.get("OMP_WAIT_POLICY") == expected
