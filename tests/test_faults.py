"""Faults a user meets: one test per point, with real files read back and real subprocesses for
the signals.

1 two runs into one folder, 2 a full disk, 3 SIGTERM / SIGHUP, 4 kill -9, 5 a truncated video,
6 stale files of a rerun, 7 unrelated pictures of one size in a folder, 8 bad YAML to `train`,
9 the live result cache bounded by bytes, 10 the small ones (weights by path, a pickle as
weights, duplicate YAML keys, OpenCV's log lines, the ONNX file mode); reruns that never cost
a result: 11 a stop before the rerun's first frame, 12 the user's files in the output folder,
13 kill -9 at every step of the final swap, 14 numbered photos of one size, 15 skipped
images and a closed stdout, 16 a YAML alias bomb and SIGTERM on a stalled stream.

Tiny random-weight nets keep it fast (the subprocesses load them from a config file); the
signal tests start a real `python -m humanpose run` and signal it once its staged files hold
a few frames.
"""
from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from humanpose import cli
from humanpose.config import from_dict
from humanpose.export import writers
from humanpose.export.runner import run
from humanpose.export.readers import read_jsonl, read_keypoints_csv
from humanpose.export.writers import ExportError

from test_run_cmd import count_frames, nets   # tiny nets whose detector always finds persons
from humanpose.sources import FrameSource, open_source
from humanpose.store import save_weights

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
W, H = 96, 64
TINY = {"stages": 2, "feat": 16}
LONG = 1500           # frames of the video the signal tests interrupt (over a minute of work: a
                      # loaded CI machine must not finish it before the signal)
STAGE_PREFIX = ".partial-"             # a run's staging folder inside its output folder
LOCK_NAME = ".humanpose-run.lock"      # its lock file there


def cfg_dict(tmp: Path) -> dict:
    return {"model": {"framework": "torch", "device": "cpu"},
            "estimator": {"boxsize": 64, "max_persons": 2, "person_threshold": 0.0,
                          "min_pose_score": 0.0},
            "output": {"directory": str(tmp / "results")}}


def frame(i: int, w: int = W, h: int = H) -> np.ndarray:
    img = np.random.default_rng(i).integers(40, 80, (h, w, 3), dtype=np.uint8)
    cv2.circle(img, (20 + (8 * i) % (w - 30), h // 2), 10, (200, 180, 160), -1)
    return img


def write_video(path: Path, n: int) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    for i in range(n):
        w.write(frame(i))
    w.release()
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict:
    """A short and a long video, and a config file whose models are tiny weight files."""
    tmp = tmp_path_factory.mktemp("faults")
    person, pose = nets()
    from humanpose.store import sha256, write_manifest
    entries = []
    for name, net in (("p", person), ("q", pose)):      # listed: loaded with their checksum
        path = save_weights(net, tmp / "models" / f"{name}.safetensors", "cpm_compact",
                            kwargs=TINY)
        entries.append({"name": name, "file": path.name, "sha256": sha256(path)})
    write_manifest(tmp / "models", entries)
    data = cfg_dict(tmp)
    data["model"].update(models_dir=str(tmp / "models"), person_model="p", pose_model="q")
    (tmp / "c.yml").write_text(yaml.safe_dump(data))
    return {"tmp": tmp, "config": tmp / "c.yml", "short": write_video(tmp / "walk.avi", 6),
            "long": write_video(tmp / "long.avi", LONG)}


def tiny_run(source, out, **kw):
    person, pose = nets()
    return run(str(source), from_dict(cfg_dict(Path(out).parent)), out, person_model=person,
               pose_model=pose, progress=False, **kw)


def start_run(media, *args, preexec=None) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "humanpose", "run", str(media["long"]),
                             "--config", str(media["config"]), "--no-progress", *map(str, args)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=preexec)


def wait_staged(proc: subprocess.Popen, folder: Path, frames: int = 5,
                timeout: float = 60) -> Path:
    """Wait until ``proc``'s staging folder in ``folder`` holds ``frames`` result lines."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        for stage in folder.glob(STAGE_PREFIX + "*"):
            jsonl = stage / "keypoints.jsonl"
            if jsonl.exists() and jsonl.read_bytes().count(b"\n") >= frames:
                return stage
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the run wrote no {frames} frames within {timeout} s")


def check_result(folder: Path, complete: bool) -> dict:
    """run.json agrees with the files beside it; no staging folder nor lock is left."""
    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["complete"] is complete
    lines = read_jsonl(folder / "keypoints.jsonl")
    assert len(lines) == manifest["frames_written"]
    assert [o["frame"] for o in lines] == list(range(len(lines)))
    rows = read_keypoints_csv(folder / "keypoints.csv")      # every row whole
    assert sum(len(f.persons) for f in rows) == sum(len(o["persons"]) for o in lines)
    assert not list(folder.glob(".partial-*")) and not (folder / LOCK_NAME).exists()
    return manifest


# ------------------------------------------------------------------ 1: two runs, one folder
def test_1_second_run_into_a_busy_folder_is_refused_or_moved(media, capsys):
    tmp = media["tmp"] / "t1"
    results = tmp / "results"
    cfg = yaml.safe_load(media["config"].read_text())
    cfg["output"]["directory"] = str(results)
    (tmp).mkdir()
    (tmp / "c.yml").write_text(yaml.safe_dump(cfg))
    a = start_run({**media, "config": tmp / "c.yml"})           # default folder results/long
    try:
        wait_staged(a, results / "long")
        # a second run with --out the busy folder: one error line naming the running process
        rc = cli.main(["run", str(media["long"]), "--config", str(tmp / "c.yml"),
                       "--no-progress", "--out", str(results / "long"), "--max-frames", "3"])
        out, err = capsys.readouterr()
        assert rc == 2 and "Traceback" not in err
        assert err.strip().splitlines() == [
            next(line for line in err.splitlines() if line.startswith("error: "))]
        assert f"in use by another humanpose run (pid {a.pid}," in err
        # without --out: a fresh <stem>-2 folder, and the user is told
        rc = cli.main(["run", str(media["long"]), "--config", str(tmp / "c.yml"),
                       "--no-progress", "--max-frames", "3"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        assert f"writing to {results / 'long-2'} instead" in err
        assert f"keypoints: {results / 'long-2' / 'keypoints.csv'}" in out
        assert check_result(results / "long-2", True)["frames_written"] == 3
    finally:
        a.send_signal(signal.SIGHUP)               # its terminal closed (3: SIGHUP too)
        _, a_err = a.communicate(timeout=60)
    assert a.returncode == 129 and "interrupted by SIGHUP" in a_err
    m = check_result(results / "long", False)      # the first run's files, not mixed
    assert m["source"] == str(media["long"]) and m["frames_written"] >= 5
    assert m["exit_reason"] == "interrupted by SIGHUP"


# ------------------------------------------------------------------------ 2: a full disk
def _limit_file_size(limit: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return preexec


def test_2_disk_full_stops_with_one_line_exit_1(media):
    """Files may grow to 60 kB only (RLIMIT_FSIZE: the kernel's EFBIG, like ENOSPC of a full
    disk): one error line, exit 1, no traceback, whole rows up to the failure, complete: false."""
    out = media["tmp"] / "t2"
    proc = start_run(media, "--out", out, preexec=_limit_file_size(60_000))
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr and "[ WARN" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "cannot write" in errors[0] and "full" in errors[0]
    m = check_result(out, False)
    assert 0 < m["frames_written"] < LONG and m["exit_code"] == 1
    assert m["exit_reason"].startswith("failed: cannot write")
    assert (out / "keypoints.csv").read_bytes().endswith(b"\n")
    if "video" in m["files"]:                 # kept only when it opens
        assert count_frames(out / m["files"]["video"]) > 0
    else:
        assert not list(out.glob("annotated.*")) and "not kept" in stderr


@pytest.fixture()
def small_disk(tmp_path):
    """A real 1 MB file system (tmpfs; needs root, else the test skips)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                                            str(mount)], capture_output=True).returncode != 0:
        pytest.skip("mounting a 1 MB tmpfs needs root (and mount permission)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)   # lazy: a lock file may be open


def test_2_full_disk_folder_run_keeps_whole_images_and_its_run_json(tmp_path, small_disk):
    """A real full disk: every annotated image whole (none cut short), the keypoints up to the
    last whole frame, and run.json (its space was reserved at the start) saying so."""
    shots = tmp_path / "shots"
    shots.mkdir()
    for i in range(80):                                   # ~18 kB each annotated: > 1 MB
        cv2.imwrite(str(shots / f"s{i:02d}.png"), frame(i))
    s = tiny_run(shots, small_disk / "o")
    assert s.failed and "No space left on device" in s.failed and s.exit_code == 1
    m = check_result(small_disk / "o", False)
    images = sorted((small_disk / "o" / "annotated").iterdir())
    assert len(images) == m["frames_written"] == s.frames and 0 < s.frames < 80
    assert all(cv2.imread(str(p)) is not None for p in images)


def test_2_run_json_is_written_on_a_disk_that_filled_up(small_disk):
    """Its space is reserved when the run starts: another program filling the disk to the last
    byte meanwhile does not cost the run its run.json (nor the results it describes)."""
    from humanpose.export.outdir import OutputFolder
    folder = OutputFolder(small_disk / "o").acquire("test")
    folder.staged("keypoints.csv").write_text("frame,time_s,person,joint,x,y,score\n")
    with open(small_disk / "filler", "wb") as fh:        # the disk, full
        with pytest.raises(OSError, match="No space left"):
            while True:
                fh.write(b"x" * 65536)
                fh.flush()
    # larger than the 4 kB page a file gets for its first byte
    manifest = {"complete": False, "exit_reason": "failed: disk full", "notes": ["x" * 9000]}
    path = folder.finish(manifest)
    folder.release()
    assert json.loads(path.read_text()) == dict(manifest, owned=["keypoints.csv", "run.json"],
                                                replaced=[])
    assert (small_disk / "o" / "keypoints.csv").exists()


def test_2_full_disk_mid_frame_cuts_back_to_the_last_whole_frame(tmp_path, monkeypatch):
    """A writer that raises ENOSPC half-way through a frame's rows."""
    person, pose = nets()
    budget = {"n": 5000}
    real = writers._write_all

    def full_disk(fh, data):
        if len(data) > budget["n"]:
            real(fh, data[: budget["n"]])            # half a row reaches the disk, then ENOSPC
            raise OSError(errno.ENOSPC, "No space left on device")
        budget["n"] -= len(data)
        real(fh, data)

    monkeypatch.setattr(writers, "_write_all", full_disk)
    src = open_source(str(write_video(tmp_path / "v.avi", 40)))
    s = run(src, from_dict(cfg_dict(tmp_path)), tmp_path / "o", person_model=person,
            pose_model=pose, progress=False)
    assert s.failed and "No space left on device (the disk or your quota is full)" in s.failed
    assert s.exit_code == 1 and not s.complete and 0 < s.frames < 40
    m = check_result(tmp_path / "o", False)
    assert m["frames_written"] == s.frames and m["exit_code"] == 1
    assert count_frames(tmp_path / "o" / "annotated.mp4") == s.frames


def test_2_failed_video_frame_and_short_image_are_errors(tmp_path, monkeypatch):
    # a video frame FFmpeg could not write (OpenCV >= 5 returns False) stops the run
    v = writers.VideoWriter(tmp_path / "v.mp4", 10)
    v.write(frame(0))

    class Failing:
        def write(self, image):
            return False

        def release(self):
            pass

    real, v._writer = v._writer, Failing()
    with pytest.raises(ExportError, match="cannot write frame 1 to .*disk full"):
        v.write(frame(1))
    real.release()
    # an image larger than the file system takes: an error and no short file (was: a file cut
    # at 8192 bytes by numpy's unchecked fclose, and no error)
    big = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, old[1]))
    try:
        with pytest.raises(ExportError, match="cannot write .*big.png: File too large"):
            writers.write_image(tmp_path / "big.png", big)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert not (tmp_path / "big.png").exists()


# ---------------------------------------------------- 3: SIGTERM (SIGHUP: in test 1)
def test_3_sigterm_ends_with_playable_video_and_incomplete_manifest(media):
    sig, code = signal.SIGTERM, 143
    out = media["tmp"] / "t3"
    proc = start_run(media, "--out", out)
    wait_staged(proc, out)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert f"interrupted by {sig.name}" in stderr and "Traceback" not in stderr
    m = check_result(out, False)
    assert m["exit_reason"] == f"interrupted by {sig.name}" and m["exit_code"] == code
    assert 5 <= m["frames_written"] < LONG == m["frames_expected"]
    assert count_frames(out / "annotated.mp4") == m["frames_written"] == m["video_frames"]


# ------------------------------------------------------------------------- 4: kill -9
def test_4_kill_9_keeps_the_previous_complete_result(media):
    out = media["tmp"] / "t4"
    first = tiny_run(media["short"], out)
    assert first.complete and first.frames == 6
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = start_run(media, "--out", out)
    stage = wait_staged(proc, out, frames=20)
    proc.kill()
    proc.communicate(timeout=30)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()
            and p.name != LOCK_NAME} == before
    assert stage.exists()               # the killed run's partial files, under a hidden name
    # the next run is not locked out by the dead one, and clears its leftovers
    again = tiny_run(media["short"], out, max_frames=3)
    assert again.complete and check_result(out, True)["frames_written"] == 3


# ------------------------------------------------------------------ 5: a truncated video
def test_5_truncated_video_exits_3(media, tmp_path, capsys):
    data = media["long"].read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 10])
    rc = cli.main(["run", str(cut), "--config", str(media["config"]), "--no-progress",
                   "--no-video", "--out", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert rc == 3, err
    assert "truncated" in err and "exit status 3" in err
    m = check_result(tmp_path / "o", False)
    assert m["exit_code"] == 3 and m["frames_expected"] == LONG
    assert 0 < m["frames_written"] < LONG and m["exit_reason"].startswith("source ended early")


# --------------------------------------------------------------- 6: stale files of a rerun
def test_6_rerun_leaves_no_stale_files(media, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    for i in range(5):
        cv2.imwrite(str(shots / f"s{i}.png"), frame(i))
    out = tmp_path / "o"
    tiny_run(media["short"], out)                     # a video: annotated.mp4
    tiny_run(shots, out)                              # then 5 images
    assert not (out / "annotated.mp4").exists()
    for i in range(2, 5):
        (shots / f"s{i}.png").unlink()
    s = tiny_run(shots, out)                          # then 2 of them
    assert s.complete and sorted(p.name for p in (out / "annotated").iterdir()) == \
        ["s0.png", "s1.png"]
    assert check_result(out, True)["frames_written"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["annotated", "keypoints.csv",
                                                     "keypoints.jsonl", "run.json"]


# ------------------------------------------------- 7: unrelated pictures of one size
def _joints(folder: Path) -> list[np.ndarray]:
    return [np.array([p["joints"] for p in o["persons"]]) for o in read_jsonl(folder /
                                                                          "keypoints.jsonl")]


def test_7_unrelated_same_size_pictures_are_estimated_alone(tmp_path):
    pics = tmp_path / "holiday"
    pics.mkdir()
    names = ["beach.png", "dog.png", "kitchen.png"]            # not numbered: unrelated
    for i, name in enumerate(names):
        cv2.imwrite(str(pics / name), frame(10 * i + 3))
    s = tiny_run(pics, tmp_path / "o")
    assert s.sequence is False and "tracks" not in s.line()
    together = _joints(tmp_path / "o")
    for name, joints in zip(names, together):
        alone = tmp_path / f"alone-{name}"
        tiny_run(pics / name, alone)
        np.testing.assert_array_equal(joints, _joints(alone)[0])
    # the same pictures as numbered frames of one size: tracked (and smoothed) across
    frames = tmp_path / "clip"
    frames.mkdir()
    for i, name in enumerate(names):
        (frames / f"frame{i + 1:03d}.png").write_bytes((pics / name).read_bytes())
    seq = tiny_run(frames, tmp_path / "seq")
    assert seq.sequence is True and seq.tracks == 2
    assert not np.array_equal(_joints(tmp_path / "seq")[2], together[2])   # smoothed
    forced = tiny_run(frames, tmp_path / "forced", sequence=False)
    assert forced.sequence is False
    assert all(np.array_equal(a, b) for a, b in zip(_joints(tmp_path / "forced"), together))


def test_7_frame_sequence_rule(tmp_path):
    from humanpose.sources.images import image_size, is_frame_sequence, list_images

    def img(name, h=30):
        cv2.imwrite(str(tmp_path / name), np.zeros((h, 40, 3), np.uint8))

    for n in (8, 9, 10):
        img(f"f{n}.png")
    files = list_images(tmp_path)
    assert [p.name for p in files] == ["f8.png", "f9.png", "f10.png"]   # by number
    assert is_frame_sequence(files)
    img("f11.png", h=31)                                      # another size
    assert not is_frame_sequence(list_images(tmp_path))
    img("f11.png")
    img("g12.png")                                            # another name
    assert not is_frame_sequence(list_images(tmp_path))
    (tmp_path / "g12.png").unlink()
    img("f27.png")                                            # picked, not counted up
    assert not is_frame_sequence(list_images(tmp_path))
    for n in range(12, 27):                                   # f8..f27 but f20: a dropped frame
        if n != 20:
            img(f"f{n}.png")
    assert is_frame_sequence(list_images(tmp_path))
    for ext in (".jpg", ".bmp", ".ppm", ".webp"):                           # header sizes
        cv2.imwrite(str(tmp_path / f"x{ext}"), np.zeros((17, 23, 3), np.uint8))
        assert image_size(tmp_path / f"x{ext}") == (23, 17), ext


def test_7_shared_lsp_people_of_one_size_not_smoothed_together(tmp_path):
    """The issue's repro with the shipped nets: three LSP people resized to 300x400."""
    lsp = SHARED / "data" / "lsp" / "images"
    if not lsp.is_dir():
        pytest.skip(f"../shared LSP images absent: {lsp}")
    from humanpose.config import load, set_value
    cfg = set_value(load(ROOT / "humanpose.yml"), "model.device", "cpu")
    pics = tmp_path / "people"
    pics.mkdir()
    for name in ("im0003.jpg", "im0010.jpg", "im0027.jpg"):
        img = cv2.resize(cv2.imread(str(lsp / name)), (300, 400))
        cv2.imwrite(str(pics / name.replace(".jpg", ".png")), img)
    s = run(str(pics), cfg, tmp_path / "o", progress=False, write_video=False)
    assert s.sequence is False
    together = _joints(tmp_path / "o")
    for k, name in enumerate(sorted(p.name for p in pics.iterdir())):
        run(str(pics / name), cfg, tmp_path / f"a{k}", progress=False, write_video=False)
        np.testing.assert_allclose(together[k], _joints(tmp_path / f"a{k}")[0], atol=1e-3)


# ------------------------------------------------------------- 8: bad YAML to `train`
@pytest.mark.parametrize("text, message", [
    ("kind: pose\nsteps: [1, 2\n", "not valid YAML"),
    ("kind: !!python/object/apply:os.system ['echo owned']\n", "not allowed"),
    ("kind: pose\nsteps: 10\nsteps: 20\n", "duplicate key 'steps'"),
])
def test_8_train_bad_yaml_is_one_line(tmp_path, capfd, text, message):
    recipe = tmp_path / "r.yml"
    recipe.write_text(text)
    rc = cli.main(["train", str(recipe)])
    out, err = capfd.readouterr()
    assert rc == 2 and "Traceback" not in err and "owned" not in out + err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err


def test_7_window_estimates_unrelated_pictures_alone(tmp_path):
    """The window's camera worker starts a new segment (a tracking reset) on every picture of
    a folder of unrelated pictures, and keeps one segment over a frame sequence."""
    pytest.importorskip("PySide6")
    from humanpose.gui.slots import FrameSlot
    from humanpose.gui.camera_worker import CameraWorker
    for folder, names in (("holiday", ["beach.png", "dog.png", "kitchen.png"]),
                          ("clip", ["f1.png", "f2.png", "f3.png"])):
        (tmp_path / folder).mkdir()
        for i, name in enumerate(names):
            cv2.imwrite(str(tmp_path / folder / name), frame(i))
    cfg = from_dict(cfg_dict(tmp_path))
    segments = {}
    for folder in ("holiday", "clip"):
        slot = FrameSlot()
        camera = CameraWorker(slot, FrameSlot())
        camera._cmd_open(str(tmp_path / folder), cfg.source)      # publishes image 0
        seen = [slot.take(0).segment]
        for _ in range(2):
            camera._read_one()
            seen.append(slot.take(0).segment)
        camera._close()
        segments[folder] = seen
    assert len(set(segments["holiday"])) == 3 and len(set(segments["clip"])) == 1


# -------------------------------------------------------- 9: the live cache, bound by bytes
def _results(n: int, boxsize: int = 192) -> list:
    """Results as the window's estimator makes them (maps and crops kept), 2 persons each."""
    from humanpose.estimator.pipeline import PoseEstimator
    person, pose = nets()
    cfg = from_dict({"estimator": {"boxsize": boxsize}}, from_dict(cfg_dict(Path("/tmp"))))
    est = PoseEstimator(cfg, person, pose)
    img = cv2.resize(frame(1), (320, 240))
    return [est.estimate(img, i / 10, i, keep_maps=True) for i in range(n)]


def test_9_result_size_is_measured_not_assumed():
    """result_nbytes agrees with what the results really allocate (tracemalloc), with maps and
    once they are stripped."""
    import copy
    import gc
    import tracemalloc
    from humanpose.gui.slots import result_nbytes, strip_maps
    base = _results(2)
    for strip in (False, True):
        gc.collect()
        tracemalloc.start()
        made = [copy.deepcopy(strip_maps(r) if strip else r) for r in base * 100]
        gc.collect()
        real = tracemalloc.get_traced_memory()[0] / len(made)
        tracemalloc.stop()
        measured = np.mean([result_nbytes(r) for r in made])
        assert 0.8 * real < measured < 1.25 * real, (strip, real, measured)
    assert result_nbytes(base[0]) > 100_000 > 1_000 > result_nbytes(strip_maps(base[0])) / 10


def test_9_live_cache_is_bound_by_bytes_maps_first():
    import copy
    from humanpose.gui.slots import ResultCache, result_nbytes, strip_maps
    base = _results(1)[0]
    with_maps, without = result_nbytes(base), result_nbytes(strip_maps(base))
    bound = 4 * with_maps                      # room for 4 results with maps
    cache = ResultCache(max_bytes=bound)
    first_drop = None
    puts = int(2 * bound / without)
    for i in range(puts):
        r = copy.deepcopy(base)
        r.frame_index = i
        cache.put(r)
        assert cache.nbytes <= bound
        kept = [k for k, _ in cache.items()]
        if kept[0] != 0 and first_drop is None:        # the first result dropped ...
            first_drop = i                              # ... only once no old one has maps
            assert all(res.persons[0].stage_maps is None for _, res in cache.items()[:-1])
    items = cache.items()
    assert cache.nbytes == sum(result_nbytes(r) for _, r in items)      # the books balance
    assert items[-1][0] == puts - 1 and items[-1][1].persons[0].stage_maps is not None
    # the joints of as many frames as fit beside the newest one's maps: far more than 4
    assert first_drop is not None and len(items) >= 0.95 * (bound - with_maps) / without
    assert cache.nbytes > 0.9 * bound and without < with_maps / 20


def test_9_window_bounds_a_live_sources_cache_by_bytes():
    pytest.importorskip("PySide6")
    from humanpose.gui.slots import LIVE_BYTES, LIVE_FRAMES, LIVE_MAPS_BYTES, LIVE_SECONDS, \
        MAPS_BUDGET, FrameSlot, ResultCache
    from humanpose.gui.estimator_worker import EstimatorWorker
    worker = EstimatorWorker(FrameSlot(), ResultCache(), lambda c: None, None)
    worker.new_source(1, False)                   # a camera or stream
    worker._apply_pending()
    assert worker.cache.max_bytes == LIVE_BYTES == 64 << 20
    assert worker.cache.budget == LIVE_MAPS_BYTES < LIVE_BYTES
    assert worker.cache.max_age == LIVE_SECONDS and worker.cache.max_entries == LIVE_FRAMES
    worker.new_source(2, True)                    # a video file: one result per frame
    worker._apply_pending()
    assert worker.cache.max_bytes is None and worker.cache.budget == MAPS_BUDGET
    assert worker.cache.max_age is None and worker.cache.max_entries is None


# ------------------------------------------------------------------------ 10: small ones
def test_10_weights_by_path_are_checked_or_named(tmp_path):
    import hashlib
    import warnings as w
    from humanpose.store import ModelError, load_named, write_manifest
    person, _ = nets()
    models = tmp_path / "models"
    path = save_weights(person, models / "p.safetensors", "cpm_compact", kwargs=TINY)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    write_manifest(models, [{"name": "p", "file": "p.safetensors", "sha256": digest}])
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF                                  # a weight changed, the header intact
    path.write_bytes(bytes(data))
    for spec, folder in ((str(path), tmp_path / "elsewhere"), ("p.safetensors", models)):
        with pytest.raises(ModelError, match="does not match its sha256 in the manifest"):
            load_named(spec, folder, "person")      # by path too, the manifest's checksum
    other = save_weights(person, tmp_path / "mine.safetensors", "cpm_compact", kwargs=TINY)
    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        load_named(str(other), models, "person")
    assert [str(c.message) for c in caught] == [
        f"person weights {other} are in no manifest.json: loaded without a checksum (sha256 "
        f"{hashlib.sha256(other.read_bytes()).hexdigest()})"]


def test_10_a_pickle_as_weights_is_named(tmp_path):
    import pickle
    from humanpose.store import ModelError, load_model
    (tmp_path / "w.pkl").write_bytes(pickle.dumps({"conv.weight": [1.0, 2.0]}))
    torch.save({"w": torch.zeros(2)}, tmp_path / "w.pth")
    with pytest.raises(ModelError, match=r"not a safetensors file \(a pickle\?"):
        load_model(tmp_path / "w.pkl")
    with pytest.raises(ModelError, match=r"not a safetensors file \(a zip archive: a torch.save"):
        load_model(tmp_path / "w.pth")


def test_10_duplicate_yaml_keys_are_errors(tmp_path):
    from humanpose.config import ConfigError, load
    path = tmp_path / "c.yml"
    path.write_text("estimator:\n  boxsize: 128\n  flip_test: true\n  boxsize: 256\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'boxsize' \(first on line 2\) "
                                          r"\(line 4, column 3\)"):
        load(path)
    path.write_text("estimator:\n  boxsize: 128\nestimator:\n  flip_test: true\n")
    with pytest.raises(ConfigError, match="duplicate key 'estimator'"):
        load(path)


def test_10_cli_quiets_opencv_and_ffmpeg_log_lines(media, tmp_path):
    broken = tmp_path / "broken.mp4"
    mp4 = tiny_run(media["short"], tmp_path / "o").video_path
    broken.write_bytes(mp4.read_bytes()[: len(mp4.read_bytes()) // 2])   # no moov atom
    proc = subprocess.run([sys.executable, "-m", "humanpose", "run", str(broken), "--out",
                           str(tmp_path / "x")], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: cannot open video {broken}: not a video OpenCV can decode (corrupt, truncated "
        "or unsupported codec)"]


def test_10_cpu_fallback_said_once(media, tmp_path, capsys):
    import torch.cuda
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: there is no fallback to report")
    from humanpose.estimator import backends
    backends._warned.clear()
    cfg = yaml.safe_load(media["config"].read_text())
    cfg["model"]["device"] = "auto"
    (tmp_path / "c.yml").write_text(yaml.safe_dump(cfg))
    rc = cli.main(["run", str(media["short"]), "--config", str(tmp_path / "c.yml"),
                   "--no-progress", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 0 and err.count("CUDA not available") == 1, err


def test_10_onnx_and_weight_files_get_the_usual_mode(tmp_path):
    from humanpose.estimator.onnx_export import export_onnx
    from humanpose.store import _umask
    person, _ = nets()
    expected = 0o666 & ~_umask()
    assert expected == 0o666 & ~os.umask(os.umask(0o022))
    onnx = export_onnx(person, tmp_path / "p.onnx")
    weights = save_weights(person, tmp_path / "p.safetensors", "cpm_compact", kwargs=TINY)
    for path in (onnx, weights):
        assert (path.stat().st_mode & 0o777) == expected, (path, oct(path.stat().st_mode))


# ------------------------------------------------ 11-16: reruns that never cost a result
def _snapshot(folder: Path) -> dict:
    """Every visible file under ``folder`` (relative path -> bytes); hidden ones left out."""
    files = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            files[str(rel)] = p.read_bytes()
    return files


class SignalAt(FrameSource):
    """A video that sends this process a real SIGTERM as frame ``at`` is read (a stop while
    that frame is in progress)."""

    def __init__(self, inner: FrameSource, at: int):
        super().__init__()
        self.inner, self.at = inner, at
        self.name, self.fps, self.size = inner.name, inner.fps, inner.size
        self.frame_count = inner.frame_count

    def _read(self):
        got = self.inner.read()
        if got is not None and got.index == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return got

    def _close(self):
        self.inner.close()


def test_11_a_stop_before_the_reruns_first_frame_keeps_the_previous_result(media, tmp_path):
    out = tmp_path / "o"
    assert tiny_run(media["short"], out).complete
    before = _snapshot(out)
    person, pose = nets()
    cfg = from_dict(cfg_dict(tmp_path))
    s = run(SignalAt(open_source(str(media["short"])), 0), cfg, out, person_model=person,
            pose_model=pose, progress=False)
    assert s.interrupted and s.exit_code == 143 and s.frames == 0
    assert s.kept_previous == out / "run.json" and s.manifest_path is None
    assert _snapshot(out) == before and check_result(out, True)["frames_written"] == 6
    # a stop once the first frame is written: the new result, complete: false, replaces it
    s = run(SignalAt(open_source(str(media["short"])), 1), cfg, out, person_model=person,
            pose_model=pose, progress=False)
    assert s.exit_code == 143 and s.frames == 2 and check_result(out, False)["frames_written"] == 2


def test_12_files_run_did_not_write_stay_and_its_own_go_beside_them(media, tmp_path, capsys):
    from humanpose.export.outdir import read_manifest
    shots = tmp_path / "shots"
    shots.mkdir()
    for i in range(3):
        cv2.imwrite(str(shots / f"s{i}.png"), frame(i))
    out = tmp_path / "o"
    (out / "annotated").mkdir(parents=True)
    (out / "annotated" / "precious.txt").write_text("mine")
    (out / "run.json").write_text('{"my": "notes"}\n')
    (out / "keypoints.csv").write_text("a,b\n1,2\n")
    (out / "notes.md").write_text("hello")
    mine = _snapshot(out)
    argv = ["run", str(shots), "--config", str(media["config"]), "--no-progress", "--out",
            str(out)]
    assert cli.main(argv) == 0
    stdout, err = capsys.readouterr()
    assert {k: v for k, v in _snapshot(out).items() if k in mine} == mine     # all still there
    m = read_manifest(out)
    assert m == json.loads((out / "run.humanpose.json").read_text()) and m["complete"]
    assert m["files"] == {"csv": "keypoints.humanpose.csv", "jsonl": "keypoints.jsonl",
                          "images": "annotated.humanpose/"}
    assert m["owned"] == ["annotated.humanpose", "keypoints.humanpose.csv", "keypoints.jsonl",
                          "run.humanpose.json"]
    for name, beside in (("keypoints.csv", "keypoints.humanpose.csv"),
                         ("annotated", "annotated.humanpose"), ("run.json", "run.humanpose.json")):
        assert f"note: {out / name} is not humanpose's: left it, and wrote {out / beside} " \
               "beside it" in err
    assert f"note: left 4 file(s) in {out} that humanpose did not write: annotated/, " \
           "keypoints.csv, notes.md, run.json" in err
    assert f"keypoints: {out / 'keypoints.humanpose.csv'}, {out / 'keypoints.jsonl'}" in stdout
    assert f"annotated images: {out / 'annotated.humanpose'}" in stdout
    # a rerun replaces the files it wrote, and only those
    (shots / "s2.png").unlink()
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert {k: v for k, v in _snapshot(out).items() if k in mine} == mine
    assert sorted(p.name for p in (out / "annotated.humanpose").iterdir()) == ["s0.png", "s1.png"]
    assert read_manifest(out)["frames_written"] == 2
    # a file the user put into the folder run made: the folder is the user's now, and stays
    (out / "annotated.humanpose" / "keep.txt").write_text("x")
    assert cli.main(argv) == 0
    assert f"note: {out / 'annotated'}, {out / 'annotated.humanpose'} are not humanpose's: " \
        f"left them, and wrote {out / 'annotated.humanpose-2'} beside them" in \
        capsys.readouterr().err
    assert sorted(p.name for p in (out / "annotated.humanpose").iterdir()) == \
        ["keep.txt", "s0.png", "s1.png"]
    assert read_manifest(out)["files"]["images"] == "annotated.humanpose-2/"
    assert sorted(p.name for p in (out / "annotated.humanpose-2").iterdir()) == \
        ["s0.png", "s1.png"]


# a result written through OutputFolder by a child process that SIGKILLs itself at its n-th
# file-system step in the output folder (rename, replace, unlink, rmdir, rmtree)
KILL_AT_STEP = r"""
import json, os, shutil, signal, sys
from pathlib import Path
n, out, tag, images = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
steps = [0]
def counted(fn):
    def step(path, *args, **kw):
        if str(path).startswith(out):
            steps[0] += 1
            if steps[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
        return fn(path, *args, **kw)
    return step
os.rename, os.replace, os.unlink, os.rmdir, shutil.rmtree = map(
    counted, (os.rename, os.replace, os.unlink, os.rmdir, shutil.rmtree))
from humanpose.export.outdir import OutputFolder
folder = OutputFolder(out).acquire(tag)
folder.staged("keypoints.csv").write_text(f"csv of {tag}\n")
folder.staged("keypoints.jsonl").write_text(f"jsonl of {tag}\n")
folder.staged("annotated").mkdir()
for i in range(images):
    folder.staged("annotated").joinpath(f"{tag}{i:03d}.png").write_bytes(tag.encode() * 50)
folder.finish({"humanpose_version": "test", "run": tag, "complete": True,
               "frames_written": images, "images_written": images,
               "files": {"csv": "keypoints.csv", "jsonl": "keypoints.jsonl",
                         "images": "annotated/"}})
folder.release()
print(steps[0])
"""


def _write_result(out: Path, tag: str, images: int, kill_at: int = 0):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", KILL_AT_STEP, str(kill_at), str(out), tag,
                           str(images)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_13_kill_9_at_any_step_of_the_final_move_keeps_one_whole_result(tmp_path):
    """Killed at every step of the swap in turn: the folder then holds the old result or the
    new one, whole (the next run finishes a swap cut short), and the user's file."""
    import shutil
    from humanpose.export.outdir import OutputFolder
    template = tmp_path / "template"
    assert _write_result(template, "old", 60).returncode == 0
    (template / "mine.txt").write_text("the user's")
    old = _snapshot(template)
    fresh = tmp_path / "fresh"
    shutil.copytree(template, fresh)
    done = _write_result(fresh, "new", 40)
    assert done.returncode == 0, done.stderr
    new, steps = _snapshot(fresh), int(done.stdout)
    assert json.loads(new["run.json"])["run"] == "new" and new["mine.txt"] == b"the user's"
    assert len([k for k in new if k.startswith("annotated/")]) == 40 and steps >= 4
    seen = []
    for n in range(1, steps + 1):
        out = tmp_path / f"k{n}"
        shutil.copytree(template, out)
        killed = _write_result(out, "new", 40, kill_at=n)
        assert killed.returncode == -signal.SIGKILL, (n, killed.stderr)
        OutputFolder(out).acquire("next run").release()       # the next run into the folder
        now = _snapshot(out)
        assert now in (old, new), (n, sorted(set(now) ^ set(old)), sorted(set(now) ^ set(new)))
        assert not [p for p in out.iterdir() if p.name.startswith(".")]
        seen.append("old" if now == old else "new")
    assert seen == sorted(seen, key=("old", "new").index)        # old ... old, new ... new
    assert "new" in seen


def _unrelated_photo(i: int, w: int = W, h: int = H) -> np.ndarray:
    """A picture unlike the next one: large smooth blobs of random colours."""
    small = np.random.default_rng(100 + i).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    cv2.circle(img, (w // 2, h // 2), 10, (200, 180, 160), -1)
    return img


def test_14_numbered_photos_of_one_size_are_not_tracked_as_a_video(tmp_path):
    from humanpose.sources.images import is_frame_sequence, list_images
    pics = tmp_path / "DCIM"
    pics.mkdir()
    for i in range(4):                         # a camera's names, one size, unrelated pictures
        cv2.imwrite(str(pics / f"IMG_{i + 1:04d}.jpg"), _unrelated_photo(i))
    s = tiny_run(pics, tmp_path / "o")
    assert s.sequence is False and json.loads(s.manifest_path.read_text())["sequence"] is False
    together = _joints(tmp_path / "o")
    for k, path in enumerate(list_images(pics)):
        tiny_run(path, tmp_path / f"alone{k}")
        np.testing.assert_array_equal(together[k], _joints(tmp_path / f"alone{k}")[0])
    assert tiny_run(pics, tmp_path / "forced", sequence=True).sequence is True   # still forced
    # real photos and real video frames, one size, named alike
    coco, vtest = SHARED / "data" / "coco_dev" / "images", SHARED / "media" / "vtest.avi"
    if not coco.is_dir() or not vtest.exists():
        pytest.skip("../shared COCO images or vtest.avi absent")
    from humanpose.sources.images import frame_difference
    photos, frames = tmp_path / "photos", tmp_path / "frames"
    photos.mkdir()
    frames.mkdir()
    for k, path in enumerate(sorted(coco.glob("*.jpg"))[:12]):
        cv2.imwrite(str(photos / f"IMG_{k + 1:04d}.jpg"),
                    cv2.resize(cv2.imread(str(path)), (640, 480)))
    cap = cv2.VideoCapture(str(vtest))
    for k in range(60):
        ok, image = cap.read()
        if k % 5 == 0:                                   # every 5th frame
            cv2.imwrite(str(frames / f"frame_{k:05d}.jpg"), image)
    cap.release()
    assert frame_difference(list_images(photos)) > 0.15 > 0.05 > \
        frame_difference(list_images(frames))
    assert not is_frame_sequence(list_images(photos)) and is_frame_sequence(list_images(frames))


def test_15_skipped_images_are_incomplete_and_a_closed_stdout_is_quiet(media, tmp_path, capsys):
    shots = tmp_path / "shots"
    shots.mkdir()
    for i in range(5):
        cv2.imwrite(str(shots / f"s{i}.png"), frame(i))
    (shots / "s1.png").write_bytes(b"not an image")
    (shots / "s3.png").write_bytes((shots / "s3.png").read_bytes()[:40])     # cut short
    rc = cli.main(["run", str(shots), "--config", str(media["config"]), "--no-progress",
                   "--out", str(tmp_path / "o")])
    _, err = capsys.readouterr()
    assert rc == 3, err
    assert "warning: skipped 2 unreadable image(s): s1.png, s3.png (run.json: complete: " \
           "false, exit status 3)" in err
    m = json.loads((tmp_path / "o" / "run.json").read_text())
    assert m["complete"] is False and [o["frame"] for o in read_jsonl(
        tmp_path / "o" / "keypoints.jsonl")] == [0, 2, 4]
    assert m["exit_reason"] == "skipped 2 unreadable image(s): s1.png, s3.png"
    assert m["exit_code"] == 3 and m["frames_written"] == 3 and m["frames_expected"] == 5
    assert m["skipped"] == ["s1.png", "s3.png"]
    # `run ... | head`: stdout's reader gone before the summary is printed
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "humanpose", "run", str(media["short"]),
                             "--config", str(media["config"]), "--no-progress", "--out",
                             str(tmp_path / "piped")], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception" not in err
    assert check_result(tmp_path / "piped", True)["frames_written"] == 6


def _bomb(levels: int = 8) -> str:
    """A YAML value of a few hundred bytes whose aliases expand to 9 ** levels items."""
    parts = ['&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, levels):
        parts.append(f"&a{k} [" + ", ".join([f"*a{k - 1}"] * 9) + "]")
    return "[" + ", ".join(parts) + "]"


@pytest.mark.parametrize("command, text", [
    ("run", f"estimator:\n  boxsize: {_bomb()}\n"),
    ("train", f"kind: pose\nsteps: {_bomb()}\n"),
])
def test_16_a_yaml_alias_bomb_is_one_error_line_at_once(media, tmp_path, command, text):
    path = tmp_path / "bomb.yml"
    path.write_text(text)
    argv = [str(media["short"]), "--config", str(path), "--out", str(tmp_path / "o")] \
        if command == "run" else [str(path)]
    try:
        proc = subprocess.run([sys.executable, "-m", "humanpose", command, *argv], cwd=ROOT,
                              capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the alias bomb hung the config reader")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {path}: not valid YAML: the alias *a0 is not allowed")
    assert not (tmp_path / "o").exists()


def test_16_short_repr_bounds_a_bad_value_in_a_message(tmp_path):
    from humanpose.config import ConfigError, load
    path = tmp_path / "c.yml"
    path.write_text("estimator:\n  boxsize: [" + ", ".join(["[1, 2, 3]"] * 20000) + "]\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert len(str(err.value)) < 300 and "expected an integer" in str(err.value)


def test_16_sigterm_on_a_stalled_stream_stops_within_2_s(media, tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    stalled = threading.Event()
    release = threading.Event()

    class Mjpeg(BaseHTTPRequestHandler):           # 5 frames, then nothing: a stalled camera
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for i in range(5):
                data = cv2.imencode(".jpg", frame(i))[1].tobytes()
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 b"%d\r\n\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            stalled.set()
            release.wait(60)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Mjpeg)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = tmp_path / "o"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "humanpose", "run",
                             f"http://127.0.0.1:{server.server_address[1]}/cam.mjpg", "--config",
                             str(media["config"]), "--no-progress", "--out", str(out)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_staged(proc, out, frames=5)
        assert stalled.wait(10)
        time.sleep(1.0)                      # the run now waits on the stream's next frame
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        release.set()
        server.shutdown()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143 and "interrupted by SIGTERM" in err, err
    assert took < 2.0, f"SIGTERM took {took:.1f} s"
    m = check_result(out, False)
    assert m["frames_written"] == 5 and m["exit_reason"] == "interrupted by SIGTERM"
