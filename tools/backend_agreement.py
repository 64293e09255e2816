#!/usr/bin/env python3
"""Do the backends give the same joints?  On the validation images (gt-centre crops, the
configured nets and boxsize), every backend's joints against torch fp32:

* share of joints within 1 px (frame pixels) and within 1 map cell (8 crop pixels);
* median and largest distance in frame pixels.

    python3 tools/backend_agreement.py [--images 200] [--config humanpose.yml]

The int8 row needs ``humanpose export-onnx --int8`` first (otherwise it says it ran fp32).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = (("onnxruntime", "fp32"), ("opencv", "fp32"), ("onnxruntime", "int8"),
            ("torch", "bf16"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=200, help="validation images (default: 200)")
    ap.add_argument("--config", default=None)
    args = ap.parse_args(argv)

    import cv2

    from humanpose import config as config_mod
    from humanpose.config import set_value
    from humanpose.estimator.pipeline import PoseEstimator
    from humanpose.train.datasets import person_box, splits
    cfg = config_mod.load(args.config) if args.config or config_mod.DEFAULT_CONFIG.exists() \
        else config_mod.Config()
    cfg = set_value(set_value(cfg, "tracking.enabled", False), "model.device", "cpu")
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (shared / "lspet" / "joints.mat").exists():
        print(f"error: {shared} not found (the validation images)", file=sys.stderr)
        return 2
    val = splits(shared)[1]
    val = val.subset(np.arange(min(args.images, len(val))))
    ref = PoseEstimator(set_value(set_value(cfg, "model.framework", "torch"),
                                  "model.precision", "fp32"))
    others = []
    for fw, prec in VARIANTS:
        est = PoseEstimator(set_value(set_value(cfg, "model.framework", fw),
                                      "model.precision", prec), ref.person_model, ref.pose_model)
        others.append((f"{fw} {prec}", est))
    dists = {name: [] for name, _ in others}
    cells = {name: [] for name, _ in others}
    for i in range(len(val)):
        img = cv2.imread(str(val.images[i]), cv2.IMREAD_COLOR)
        centre = person_box(val.joints[i])[0][None]
        a = ref.estimate(img, keep_maps=False, centres=centre).persons[0]
        for name, est in others:
            b = est.estimate(img, keep_maps=False, centres=centre).persons[0]
            d = np.hypot(*(a.joints[:, :2] - b.joints[:, :2]).T)
            dists[name].append(d)
            cells[name].append(d * a.crop_scale / 8.0)      # crop pixels / stride
    print(f"backend agreement with torch fp32: {len(val)} validation images, gt-centre crops, "
          f"boxsize {cfg.estimator.boxsize}, {cfg.model.pose_model}\n")
    print("| backend (ran as) | joints within 1 px | within 1 map cell | median px | max px |")
    print("|---|---:|---:|---:|---:|")
    for name, est in others:
        d, c = np.concatenate(dists[name]), np.concatenate(cells[name])
        print(f"| {name} ({est.backend_name}) | {100 * (d <= 1).mean():.1f} % | "
              f"{100 * (c <= 1).mean():.1f} % | {np.median(d):.2f} | {d.max():.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
