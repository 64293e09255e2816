#!/usr/bin/env python3
"""Contact sheets of a clip's annotated frames, to count people and skeletons by eye.

    python tools/media_sheets.py ../shared/media/vtest.avi --frames 50 --out /tmp/sheets/vtest
    python tools/media_sheets.py ../shared/media/street_people.avi --config my.yml --frames 50 ...

The clip runs through the estimator frame by frame as `humanpose run` does (tracking on, with
the config's detector schedule); ``--frames`` evenly spaced frames are drawn (skeletons, boxes
and track ids, the frame number in the corner) and laid out ``--cols`` x ``--rows`` a sheet
(``sheet_01.jpg`` ...), each frame at ``--scale`` of its size.  A person then counts, on each
frame, the people taller than 60 px in view, the skeletons on them and the skeletons on no one
(the model card's media table).  It also prints, per sampled frame, the persons found.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from humanpose import config as config_mod  # noqa: E402
from humanpose.estimator.pipeline import PoseEstimator  # noqa: E402
from humanpose.export.draw import draw_result, label  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clip")
    p.add_argument("--out", required=True, help="folder for the sheets")
    p.add_argument("--config", help="humanpose.yml to use (default: the project's)")
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--cols", type=int, default=2)
    p.add_argument("--rows", type=int, default=3)
    p.add_argument("--scale", type=float, default=0.5)
    args = p.parse_args(argv)
    cap = cv2.VideoCapture(args.clip)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if not cap.isOpened() or total <= 0:
        print(f"error: cannot read {args.clip}", file=sys.stderr)
        return 2
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    est = PoseEstimator(config_mod.load(args.config))
    wanted = set(np.linspace(0, total - 1, args.frames).round().astype(int).tolist())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tiles, sheets, i = [], 0, 0
    thr = est.config.estimator.joint_threshold
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        res = est.estimate(frame, timestamp=i / fps, frame_index=i, keep_maps=False)
        if i in wanted:
            img = draw_result(frame, res, show_boxes=True, joint_threshold=thr)
            label(img, f"frame {i}", (8, 8), scale=0.8, thickness=2)
            tiles.append(cv2.resize(img, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_AREA))
            print(f"frame {i}: {len(res.persons)} skeletons, path {getattr(res, 'path', '?')}")
        if len(tiles) == args.cols * args.rows or (tiles and i >= max(wanted)):
            while len(tiles) < args.cols * args.rows:
                tiles.append(np.zeros_like(tiles[0]))
            rows = [np.hstack(tiles[r * args.cols:(r + 1) * args.cols]) for r in range(args.rows)]
            sheets += 1
            cv2.imwrite(str(out / f"sheet_{sheets:02d}.jpg"), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 85])
            tiles = []
        if i >= max(wanted):
            break
        i += 1
    print(f"{sheets} sheets in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
