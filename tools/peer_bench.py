#!/usr/bin/env python3
"""humanpose against MediaPipe BlazePose on the same frames, in the same run.

    python3 tools/peer_bench.py [--frames 60] [--source VIDEO] [--mediapipe-python PY]

The frames are those of ``humanpose bench --webcam`` (640x480, one person).  Pipelines, taking
turns frame by frame (round robin), each timed per frame (p50 / p95 ms):

* humanpose with the configured settings (humanpose.yml: backend, precision, boxsize,
  tracking-driven crops every ``tracking.detect_every`` frames), with the detector on every
  frame, and tracking-driven in the other onnxruntime precision (fp32 beside the default int8;
  int8 beside fp32 when its export can be made);
* MediaPipe BlazePose lite and full in video mode (``static_image_mode=False``: the detector
  runs only when the landmarks lose the person), and full with detector + landmarks on every
  frame (``static_image_mode=True``).  Timed around ``Pose.process`` including the BGR->RGB
  conversion.

MediaPipe is NOT a dependency of humanpose and this script installs nothing.  When ``mediapipe``
is importable here, it runs in this process; otherwise give ``--mediapipe-python`` the Python of
a separate environment that has it, and it runs there as a worker process that is fed the same
frames in the same round robin (its Pose objects stay warm between frames).  To make one:

    python3 -m venv /tmp/mpvenv && /tmp/mpvenv/bin/pip install "mediapipe==0.10.21"

(0.10.21 still has the ``mp.solutions.pose`` API used here, with the full model inside the
wheel; the lite model is downloaded on first use, or copy ``pose_landmark_lite.tflite`` from
the npm package ``@mediapipe/pose`` into ``mediapipe/modules/pose_landmark/`` offline.)
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MP_PIPELINES = (("BlazePose lite, video mode", 0, False),
                ("BlazePose full, video mode", 1, False),
                ("BlazePose full, detector + landmarks every frame", 1, True))
WARMUP = 3


# ------------------------------------------------------------------ MediaPipe (either process)
class MediaPipeRunner:
    """The MediaPipe pipelines in this process: ``run(k, frame) -> (ms, found)``."""

    def __init__(self):
        import mediapipe as mp
        self.version = mp.__version__
        self.poses = [mp.solutions.pose.Pose(static_image_mode=static, model_complexity=c,
                                             enable_segmentation=False, smooth_landmarks=True)
                      for _, c, static in MP_PIPELINES]

    def run(self, k: int, frame: np.ndarray) -> tuple[float, bool]:
        import cv2
        t = time.perf_counter()
        res = self.poses[k].process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        return (time.perf_counter() - t) * 1000.0, res.pose_landmarks is not None


def worker(frames_path: str) -> int:
    """Worker mode (in the MediaPipe environment): lines "k i" in, "ms found" out."""
    frames = np.load(frames_path)
    try:
        runner = MediaPipeRunner()
    except Exception as exc:  # noqa: BLE001 - tell the parent, one line
        print(f"error {type(exc).__name__}: {exc}".replace("\n", " "), flush=True)
        return 1
    print(f"ready {runner.version}", flush=True)
    for line in sys.stdin:
        k, i = map(int, line.split())
        ms, found = runner.run(k, frames[i])
        print(f"{ms:.4f} {int(found)}", flush=True)
    return 0


class RemoteRunner:
    """The MediaPipe pipelines in a worker process of another Python."""

    def __init__(self, python: str, frames_path: str):
        self.proc = subprocess.Popen([python, __file__, "--worker", frames_path],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        first = self.proc.stdout.readline().strip()
        if not first.startswith("ready"):
            self.close()
            raise RuntimeError(first or f"{python} could not start the MediaPipe worker")
        self.version = first.split(maxsplit=1)[1]

    def run(self, k: int, i: int) -> tuple[float, bool]:
        self.proc.stdin.write(f"{k} {i}\n")
        ms, found = self.proc.stdout.readline().split()
        return float(ms), found == "1"

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=10)


# ------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--frames", type=int, default=60, help="timed frames (default: %(default)s)")
    ap.add_argument("--source", default=None, help="a video instead of the moving LSP person")
    ap.add_argument("--config", default=None, help="humanpose config (default: humanpose.yml)")
    ap.add_argument("--mediapipe-python", default=None, metavar="PY",
                    help="a Python with mediapipe installed (when it is not importable here)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import os
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # as the humanpose CLI
    import tempfile

    from humanpose import config as config_mod
    from humanpose.config import set_value
    from humanpose.estimator.pipeline import PoseEstimator
    from humanpose.optimize.webcam_bench import webcam_frames

    cfg = config_mod.load(args.config) if args.config or config_mod.DEFAULT_CONFIG.exists() \
        else config_mod.Config()
    frames, where = webcam_frames(args.frames + WARMUP, args.source)

    # MediaPipe: here, or in a worker of another Python, or not at all
    mp_runner, mp_note, tmp = None, None, None
    try:
        mp_runner = MediaPipeRunner()
        call = lambda k, i: mp_runner.run(k, frames[i])   # noqa: E731
    except ImportError:
        if args.mediapipe_python:
            tmp = tempfile.NamedTemporaryFile(suffix=".npy", delete=False)
            np.save(tmp, np.stack(frames))
            tmp.close()
            try:
                mp_runner = RemoteRunner(args.mediapipe_python, tmp.name)
                call = mp_runner.run
                mp_note = f"MediaPipe {mp_runner.version} in a worker process ({args.mediapipe_python})"
            except (OSError, RuntimeError) as exc:
                mp_note = f"MediaPipe not run: {exc}"
        else:
            mp_note = ("MediaPipe not run: `import mediapipe` fails here (it is no humanpose "
                       "dependency). Install it into a separate environment and pass its Python:\n"
                       "  python3 -m venv /tmp/mpvenv && /tmp/mpvenv/bin/pip install "
                       "\"mediapipe==0.10.21\"\n"
                       "  python3 tools/peer_bench.py --mediapipe-python /tmp/mpvenv/bin/python")
    except Exception as exc:  # noqa: BLE001 - a broken mediapipe: say so, time humanpose
        mp_note = f"MediaPipe not run: {type(exc).__name__}: {exc}"
    if mp_runner is not None and mp_note is None:
        mp_note = f"MediaPipe {mp_runner.version} in this process"

    every = max(cfg.tracking.detect_every, 2)
    hp = []
    runs = [(f"humanpose, tracking-driven (detector every {every})", every, None),
            ("humanpose, detector every frame", 1, None)]
    other = "fp32" if cfg.model.precision in ("auto", "int8") else "int8"   # the other one beside
    runs.append((f"humanpose {other}, tracking-driven (detector every {every})", every, other))
    for label, detect_every, precision in runs:
        c = set_value(set_value(cfg, "tracking.detect_every", detect_every),
                      "tracking.enabled", True)
        if precision:
            c = set_value(set_value(c, "model.precision", precision), "model.framework",
                          "onnxruntime")
        est = PoseEstimator(c)
        if precision == "int8" and not est.backend_name.endswith(precision):
            continue                        # no int8 export: not timed twice as fp32
        hp.append((f"{label}: {est.backend_name}, boxsize {c.estimator.boxsize}", est))
    rows = {name: [[], 0] for name, _ in hp}
    if mp_runner is not None:
        rows.update({name: [[], 0] for name, _, _ in MP_PIPELINES})

    for i in range(len(frames)):
        timed = i >= WARMUP
        for name, est in hp:
            t = time.perf_counter()
            r = est.estimate(frames[i], timestamp=i / 30.0, frame_index=i, keep_maps=False)
            ms = (time.perf_counter() - t) * 1000.0
            if timed:
                rows[name][0].append(ms)
                rows[name][1] += bool(r.persons)
        if mp_runner is not None:
            for k, (name, _, _) in enumerate(MP_PIPELINES):
                ms, found = call(k, i)
                if timed:
                    rows[name][0].append(ms)
                    rows[name][1] += found
    if isinstance(mp_runner, RemoteRunner):
        mp_runner.close()
    if tmp is not None:
        Path(tmp.name).unlink(missing_ok=True)

    print(f"peer bench: {where}; {args.frames} timed frames after {WARMUP} warm-up, round robin")
    print(mp_note)
    print()
    print("| pipeline | p50 ms | p95 ms | frames with a person |")
    print("|---|---:|---:|---:|")
    for name, (times, found) in rows.items():
        print(f"| {name} | {statistics.median(times):.1f} | {np.percentile(times, 95):.1f} | "
              f"{found}/{len(times)} |")
    if mp_runner is not None:
        print()
        for ours_name, _ in hp:
            if "tracking-driven" not in ours_name:
                continue
            ours = statistics.median(rows[ours_name][0])
            for name in ("BlazePose full, video mode", "BlazePose lite, video mode"):
                theirs = statistics.median(rows[name][0])
                print(f"ratio {ours_name.split(':')[0]} / {name}: {ours / theirs:.2f} "
                      f"({ours:.1f} / {theirs:.1f} ms p50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
