#!/usr/bin/env python3
"""Where a tracked frame's and a detector frame's time goes: cProfile + ``PoseResult.timings``.

    PYTHONPATH=$PWD python3 tools/profile_frame.py [--frames 100] [--source VIDEO] [--top 25]

The frames are those of ``humanpose bench --webcam`` (640x480, one person), the settings those
of humanpose.yml (backend, precision, boxsize) with tracking on.  Two estimators:

* *tracked*: the detector runs on the first frame only (``tracking.detect_every: 1000``), every
  later frame is cut from the tracks (a frame whose pose score drops still runs the detector,
  and the count says so);
* *detector*: ``tracking.detect_every: 1``, the person detector on every frame.

For each: the mean of every ``PoseResult.timings`` step and the cProfile table (cumulative time,
``--top`` rows) of ``--frames`` frames after a few warm-up frames.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humanpose.config import load, set_value  # noqa: E402
from humanpose.estimator.pipeline import PoseEstimator  # noqa: E402
from humanpose.optimize.webcam_bench import webcam_frames  # noqa: E402
from humanpose.store import load_named  # noqa: E402

STEPS = ("preprocess", "person", "pose", "post", "track", "total")
WARMUP = 5


def profile(est: PoseEstimator, frames: list, top: int) -> tuple[dict, int, str]:
    for i, f in enumerate(frames[:WARMUP]):
        est.estimate(f, timestamp=i / 30.0, frame_index=i, keep_maps=False)
    est.reset()
    est.estimate(frames[0], timestamp=0.0, frame_index=0, keep_maps=False)   # starts the tracks
    prof = cProfile.Profile()
    sums = dict.fromkeys(STEPS, 0.0)
    tracked = 0
    for i, f in enumerate(frames[1:], start=1):
        prof.enable()
        r = est.estimate(f, timestamp=i / 30.0, frame_index=i, keep_maps=False)
        prof.disable()
        for k in STEPS:
            sums[k] += r.timings[k]
        tracked += int(r.timings.get("tracked", 0.0))
    n = len(frames) - 1
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    return {k: v / n for k, v in sums.items()}, tracked, out.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--source", default=None, help="a video (default: the bench --webcam frames)")
    ap.add_argument("--config", default=None)
    ap.add_argument("--top", type=int, default=25, help="rows of each cProfile table")
    args = ap.parse_args(argv)
    cfg = load(args.config)
    cfg = set_value(cfg, "tracking.enabled", True)
    models_dir = cfg.resolve(cfg.model.models_dir)
    person = load_named(cfg.model.person_model, models_dir, "person")
    pose = load_named(cfg.model.pose_model, models_dir, "pose")
    frames, where = webcam_frames(args.frames + 1, args.source)
    print(f"profile_frame: {where}; boxsize {cfg.estimator.boxsize}")
    for name, every in (("tracked", 1000), ("detector", 1)):
        est = PoseEstimator(set_value(cfg, "tracking.detect_every", every), person, pose)
        means, tracked, table = profile(est, frames, args.top)
        print(f"\n## {name} frames ({est.backend_name}; {tracked}/{len(frames) - 1} "
              "without the detector)\n")
        print("| step | mean ms |\n| --- | ---: |")
        for k in STEPS:
            print(f"| {k} | {means[k]:.2f} |")
        print("\n```\n" + table.strip() + "\n```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
