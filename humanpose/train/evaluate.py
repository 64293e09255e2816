"""``humanpose eval``: PCK@0.2 on a directory laid out like LSP (images/*.jpg + joints.mat).

Two modes, both with the configured nets, backend and boxsize:

* ``gt-centre``: the pose net on the crop centred on the annotated person (centre of the
  annotated joints' box), the person detector skipped;
* ``end-to-end``: the person detector on the whole image, then the pose of the detected person
  that matches the annotated one: the person whose joints lie nearest the annotated joints
  (median distance over the annotated joints), if that median is within 0.3 x the person's
  size (the larger side of the annotated joints' box), i.e. at least half its joints are on
  the person; no match counts every joint as wrong (``found_end_to_end`` is the fraction
  matched).  A median, unlike the centre of the joints' box, is not moved by one wild joint.

``detector_recall`` judges the person detector alone: the fraction of annotated persons with a
detector peak (a detected person's ``centre``) within 0.3 x their size of the annotated centre.
``pck_end_to_end_peak_match`` is the end-to-end PCK with the pose matched by that peak instead
(a correct pose whose peak lies a little further off counts as a miss).
PCK: a joint is correct within 0.2 x the torso diameter, here the distance from the left
shoulder to the right hip (the usual "shoulder to opposite hip" LSP definition).  A person
without one of those two joints is not scored (LSP annotates every joint; LSP-extended leaves
the unseen ones out: 152 of the 500 validation persons), so the report also says how many were
scored and gives the PCK with the right shoulder to the left hip where they lack
(``*_either_diagonal``).  The report
also splits PCK by the annotated torso's orientation (upright within 30 deg of the vertical,
tilted, sideways, inverted beyond 120 deg): LSP-extended is full of gymnasts and free runners
upside down.

``--shrink F`` (0 < F < 1) asks how the estimator does on *small* people, as in street videos:
each image is scaled by F and pasted, at a position drawn from a fixed seed, on a grey canvas
of the original size (not on another image: LSP images are full of large people, who would
stand behind the small one).  The annotated joints move with it, so both modes and the
detector recall are measured on the small person.

``--waist-up`` asks how the estimator does on a person framed as a webcam frames someone at a
desk: only the persons whose torso is within WAIST_UP_TILT of upright (and whose neck and hips
are annotated) are evaluated, each on the part of the image that shows them from a little above
the head (or the raised hands) down to a little below the hips, 4:3 and centred on the upper
body (:func:`waist_up_window`); the joints cut off are not counted.  Comparing it with the same
joints on the whole images (``per_image_*`` with ``waist_up_index``) shows what the frame's
edge costs.

``--still-clip N`` asks what tracking-driven crops (``tracking.detect_every``) cost: the
end-to-end mode sees each image as an N-frame still clip (tracking on, tracks forgotten between
images) and scores its last frame, which with ``detect_every`` > 1 the pose net estimates on the
crop cut from the track, not on the detector's; ``--compare`` against the same run with
``tracking.detect_every: 1`` (detector on every frame) isolates it.

``--compare BASE.json`` (a report written by ``--json`` for other weights or settings on the
same images; :mod:`.eval_report`) adds the difference in both modes with its 95 % interval from a paired bootstrap
over the images: the JSON keeps which joints were correct in each image (``per_image_*``:
'1' / '0' / '-' for not annotated, in joint order), so two results can be compared image by
image.  On 500 images a difference of half a point is usually inside that interval.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ..config import add_estimator_arguments
from ..skeleton import JOINT_INDEX, JOINT_LABELS, NUM_JOINTS
from .datasets import DatasetError, PoseSet, person_box, read_lsp_dir, splits
from .eval_report import comparison_lines, format_report, read_baseline
from .metrics import (TORSO_DEFINITION, correct_codes, pck_by_orientation, pck_correct,
                      pck_mirror_tolerant, pck_summary, rate_by_orientation, upright)

DETECTION_RADIUS = 0.3
WAIST_UP_TILT = 45.0      # --waist-up: persons whose torso is within this of upright (degrees)
WAIST_UP_ABOVE = 0.4      # ... framed from this many torso lengths above the highest upper-body joint
WAIST_UP_BELOW = 0.3      # ... down to this many below the lower hip, 4:3
UPPER_BODY = slice(0, 8)  # head top, neck, shoulders, elbows, wrists (the skeleton's first 8)


def match(persons, joints: np.ndarray) -> tuple[int | None, int | None]:
    """Which detected person is the annotated one (``joints`` (14, 2), NaN = missing): returns
    (by pose, by peak), each the index of the person whose joints (resp. detector peak) lie
    nearest (median joint distance; resp. distance to the annotated centre), or None when that
    is further than DETECTION_RADIUS x the annotated person's size."""
    centre, size = person_box(joints)
    ok = np.isfinite(joints[:, 0])
    by_pose = [float(np.median(np.linalg.norm(p.joints[ok, :2] - joints[ok], axis=1))) for p in persons]
    by_peak = [float(np.linalg.norm(np.asarray(p.centre)[:2] - centre)) for p in persons]
    return _nearest(by_pose, DETECTION_RADIUS * size), _nearest(by_peak, DETECTION_RADIUS * size)


def _nearest(d: list[float], limit: float) -> int | None:
    k = int(np.argmin(d)) if d else None
    return k if k is not None and d[k] <= limit else None


def shrunk(img: np.ndarray, joints: np.ndarray, factor: float,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``img`` scaled by ``factor`` and pasted at a random position on a grey canvas of its
    size; returns (the composite, ``joints`` moved with it)."""
    h, w = img.shape[:2]
    out = np.full_like(img, 128)
    sw, sh = max(1, round(w * factor)), max(1, round(h * factor))
    ox, oy = int(rng.integers(0, w - sw + 1)), int(rng.integers(0, h - sh + 1))
    out[oy:oy + sh, ox:ox + sw] = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
    kx, ky = sw / w, sh / h
    return out, joints * (kx, ky) + (ox + 0.5 * kx - 0.5, oy + 0.5 * ky - 0.5)


def waist_up_eligible(joints: np.ndarray) -> bool:
    """Whether ``joints`` (14, 2) can be framed waist-up: neck and hips annotated, torso within
    WAIST_UP_TILT of upright (head above hips)."""
    return upright(joints, WAIST_UP_TILT)


def waist_up_window(joints: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the part of an image of ``shape`` (h, w) that a webcam would show of
    the (eligible) person ``joints``: from WAIST_UP_ABOVE torso lengths above the highest of the
    upper body's joints down to WAIST_UP_BELOW below the lower hip, 4/3 as wide as high (at most
    the image's width), centred on the upper body and kept inside the image."""
    h, w = shape[:2]
    neck, hips = joints[JOINT_INDEX["neck"]], joints[[JOINT_INDEX["r_hip"], JOINT_INDEX["l_hip"]]]
    torso = float(np.linalg.norm(hips.mean(0) - neck))
    upper = joints[UPPER_BODY]
    upper = upper[np.isfinite(upper[:, 0])]
    y1 = int(min(h, round(hips[:, 1].max() + WAIST_UP_BELOW * torso)))
    y0 = int(max(0, round(upper[:, 1].min() - WAIST_UP_ABOVE * torso)))
    width = min(w, int(round(4 / 3 * (y1 - y0))))
    cx = (upper[:, 0].min() + upper[:, 0].max()) / 2.0
    x0 = int(np.clip(round(cx - width / 2.0), 0, w - width))
    return x0, y0, x0 + width, y1


def waist_up(img: np.ndarray, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``img`` cut to :func:`waist_up_window`; returns (the cut, ``joints`` in it, NaN where cut
    off)."""
    x0, y0, x1, y1 = waist_up_window(joints, img.shape)
    out = joints - (x0, y0)
    inside = ((out[:, 0] >= -0.5) & (out[:, 0] <= x1 - x0 - 0.5)
              & (out[:, 1] >= -0.5) & (out[:, 1] <= y1 - y0 - 0.5))
    out[~inside] = np.nan
    return np.ascontiguousarray(img[y0:y1, x0:x1]), out


def _read(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"cannot read image {path}")
    return img


def evaluate(estimator, data: PoseSet, progress: bool = True, shrink: float = 1.0,
             waist_up_framing: bool = False, still_clip: int = 0) -> dict:
    """Run both modes over ``data`` (each image shrunk as :func:`shrunk` does when ``shrink``
    < 1; with ``waist_up_framing`` only the eligible persons, each image cut as :func:`waist_up`
    does; with ``still_clip`` = N > 0 the end-to-end mode sees each image as an N-frame still
    clip, tracks forgotten between images, and scores the last frame: with tracking-driven crops
    its frames after the first are cropped from the track); returns the JSON-able report."""
    from ..progress import progress as progress_bar
    index = np.arange(len(data))
    if waist_up_framing:
        index = np.array([i for i in index if waist_up_eligible(data.joints[i])], int)
        data = data.subset(index)
    n = len(data)
    gt = data.joints.copy()
    pred_gt = np.full((n, NUM_JOINTS, 2), np.nan)
    pred_e2e = np.full((n, NUM_JOINTS, 2), np.nan)
    pred_peak = np.full((n, NUM_JOINTS, 2), np.nan)    # matched by the detector peak
    score_e2e = np.full((n, NUM_JOINTS), np.nan)        # joint scores of the matched pose
    detected = np.zeros(n, bool)
    matched = np.zeros(n, bool)
    found = 0      # detections in all (other people in the image and false ones included)
    rescaled = 0   # of those, re-estimated on a rescaled crop (estimator.rescale)
    tracked = 0    # still-clip frames made from the tracks (no detector)
    t_gt = t_e2e = 0.0
    for i in progress_bar(range(n), desc="eval", enabled=progress):
        img = _read(data.images[i])
        if waist_up_framing:
            img, gt[i] = waist_up(img, data.joints[i])
        if shrink < 1.0:
            img, gt[i] = shrunk(img, gt[i], shrink, np.random.default_rng(i))
        centre, _ = person_box(gt[i])
        t0 = time.perf_counter()
        res = estimator.estimate(img, frame_index=i, keep_maps=False, centres=centre[None])
        t1 = time.perf_counter()
        pred_gt[i] = res.persons[0].joints[:, :2]
        if still_clip:
            estimator.reset()
            for k in range(still_clip):
                res = estimator.estimate(img, timestamp=k / 30.0, frame_index=k, keep_maps=False)
                tracked += res.path == "tracked"
        else:
            res = estimator.estimate(img, frame_index=i, keep_maps=False)
        t2 = time.perf_counter()
        t_gt += t1 - t0
        t_e2e += t2 - t1
        found += len(res.persons)
        rescaled += sum(p.rescaled for p in res.persons)
        by_pose, by_peak = match(res.persons, gt[i])
        if by_pose is not None:       # a miss stays NaN: every joint wrong
            matched[i] = True
            pred_e2e[i] = res.persons[by_pose].joints[:, :2]
            score_e2e[i] = res.persons[by_pose].joints[:, 2]
        if by_peak is not None:
            detected[i] = True
            pred_peak[i] = res.persons[by_peak].joints[:, :2]
    ok_gt, ok_e2e = pck_correct(pred_gt, gt), pck_correct(pred_e2e, gt)
    pck_gt, per_gt = pck_summary(ok_gt)
    pck_e2e, per_e2e = pck_summary(ok_e2e)
    pck_peak, _ = pck_summary(pck_correct(pred_peak, gt))
    # the persons the torso leaves out, and the PCK with them scored by the other diagonal
    either = [pck_correct(p, gt, either_diagonal=True) for p in (pred_e2e, pred_gt)]
    # how much of what is missed is a left / right disagreement with the labels
    mirror_ok, mirror_swapped = pck_mirror_tolerant(pred_gt, gt)
    cfg = estimator.config
    cut_off = np.isfinite(data.joints[:, :, 0]) & ~np.isfinite(gt[:, :, 0])
    return {
        "pck_end_to_end": round(pck_e2e, 2),
        "pck_gt_centre": round(pck_gt, 2),
        "per_joint_end_to_end": _per_joint(per_e2e),
        "per_joint_gt_centre": _per_joint(per_gt),
        "per_image_end_to_end": correct_codes(ok_e2e),
        "per_image_gt_centre": correct_codes(ok_gt),
        "by_orientation_end_to_end": pck_by_orientation(ok_e2e, gt),
        "by_orientation_gt_centre": pck_by_orientation(ok_gt, gt),
        "n_images": n,
        "detector_recall": round(100.0 * detected.mean(), 2),
        "detector_recall_by_orientation": rate_by_orientation(detected, gt),
        "found_end_to_end": round(100.0 * matched.mean(), 2),
        "pck_end_to_end_peak_match": round(pck_peak, 2),
        "persons_scored": int(np.isfinite(ok_gt).any(1).sum()),
        "persons_scored_either_diagonal": int(np.isfinite(either[1]).any(1).sum()),
        "pck_end_to_end_either_diagonal": round(pck_summary(either[0])[0], 2),
        "pck_gt_centre_either_diagonal": round(pck_summary(either[1])[0], 2),
        "pck_gt_centre_mirror_tolerant": round(pck_summary(mirror_ok)[0], 2),
        "images_read_mirrored": round(100.0 * mirror_swapped.mean(), 2),
        **drawn_joints(score_e2e, ok_e2e, cut_off, cfg.estimator.joint_threshold),
        "detections_per_image": round(found / max(n, 1), 3),
        "person_threshold": cfg.estimator.person_threshold,
        "seconds_per_image_end_to_end": round(t_e2e / max(n, 1), 4),
        "seconds_per_image_gt_centre": round(t_gt / max(n, 1), 4),
        "boxsize": cfg.estimator.boxsize,
        "flip_test": cfg.estimator.flip_test,
        "scale_search": cfg.estimator.scale_search,
        "rescale": cfg.estimator.rescale,
        "shrink": shrink,
        "framing": "waist-up" if waist_up_framing else "whole",
        **({"waist_up_index": index.tolist()} if waist_up_framing else {}),
        "rescaled_fraction_end_to_end": round(rescaled / max(found, 1), 3),
        **({"still_clip": still_clip,
            "detect_every": cfg.tracking.detect_every,
            "tracked_frames_fraction": round(tracked / max(n * still_clip, 1), 3)}
           if still_clip else {}),
        "backend": estimator.backend_name,
        **{k: v for k, v in (getattr(estimator, "backend_report", None) or {}).items()
           if k in ("precision", "cpu")},
        "person_model": cfg.model.person_model,
        "pose_model": cfg.model.pose_model,
        "alpha": 0.2,
        "torso": TORSO_DEFINITION,
    }


def drawn_joints(scores: np.ndarray, correct: np.ndarray, cut_off: np.ndarray,
                 threshold: float) -> dict:
    """Which joints of the matched poses (``scores`` (N, 14), NaN where no pose was matched) the
    app draws (score >= ``threshold``, estimator.joint_threshold): the share of the correct ones
    it hides, and of the joints annotated but cut off by the frame (``cut_off``, --waist-up) the
    share it draws anyway, somewhere in view."""
    matched = np.isfinite(scores)
    drawn = matched & (np.nan_to_num(scores, nan=-1.0) >= threshold)
    ok = (np.nan_to_num(correct) > 0) & matched      # correct: 1 / 0 / NaN (pck_correct)
    out = {"joint_threshold": threshold,
           "correct_joints_hidden": round(100.0 * (ok & ~drawn).sum() / max(ok.sum(), 1), 2)}
    gone = cut_off & matched
    if gone.any():
        out["cut_off_joints"] = int(gone.sum())
        out["cut_off_joints_drawn"] = round(100.0 * (gone & drawn).sum() / gone.sum(), 2)
    return out


def _per_joint(values: np.ndarray) -> dict:
    """Per-joint PCK for the JSON: None for a joint never evaluated (JSON has no NaN)."""
    return {j: round(float(v), 2) if np.isfinite(v) else None for j, v in zip(JOINT_LABELS, values)}


def add_arguments(p) -> None:
    p.add_argument("dir", nargs="?", metavar="DIR", help="the data directory (or --data)")
    p.add_argument("--data", help="directory with images/*.jpg and joints.mat (coco: images/ and "
                                  "person_keypoints_*.json, instances_*.json)")
    p.add_argument("--format", choices=("lsp", "lspet", "coco"), default="lsp",
                   help="lsp: joints 3x14xN, flag 1 = occluded; lspet: 14x3xN, flag 1 = visible; "
                        "coco: COCO keypoint annotations of multi-person photos, persons found, "
                        "skeletons on no person, detector recall / precision by height "
                        "(see humanpose/train/coco_eval.py)")
    p.add_argument("--split", choices=("all", "val"), default="all",
                   help="val: only the 500 validation images held out of LSP-extended (seed 0); "
                        "--data must then be the lspet directory")
    p.add_argument("--config", help="humanpose.yml to use (default: the project's)")
    add_estimator_arguments(p)
    p.add_argument("--shrink", type=float, default=1.0, metavar="F",
                   help="small people: scale each image by F (0 < F <= 1) and paste it on a "
                        "grey canvas of its size (see the module doc)")
    p.add_argument("--waist-up", action="store_true",
                   help="webcam framing: only the persons within 45 degrees of upright, each image "
                        "cut a little below the hips (see the module doc)")
    p.add_argument("--still-clip", type=int, default=0, metavar="N",
                   help="end-to-end mode on each image as an N-frame still clip with tracking on "
                        "(tracks forgotten between images), the last frame scored: measures "
                        "tracking-driven crops (tracking.detect_every) against the detector")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--json", help="write the report as JSON here")
    p.add_argument("--compare", metavar="BASE.json",
                   help="also print the difference from an earlier --json report on the same "
                        "images, with its 95 %% interval (paired bootstrap over the images)")
    p.add_argument("--no-progress", action="store_true")


def main(args) -> int:
    from ..config import ConfigError, from_args, set_value
    from ..store import ModelError
    if args.dir and args.data and args.dir != args.data:
        print(f"error: two data directories given: {args.dir} and --data {args.data}", file=sys.stderr)
        return 2
    args.data = args.data or args.dir
    if not args.data:
        print("error: name the data directory (DIR or --data)", file=sys.stderr)
        return 2
    if args.format == "coco":
        from .coco_eval import main as coco_main
        return coco_main(args)
    try:
        cfg = set_value(from_args(args), "tracking.enabled", False)   # independent images
        if args.still_clip < 0:
            raise ValueError(f"--still-clip must be 0 or more, not {args.still_clip}")
        if args.still_clip:
            cfg = set_value(cfg, "tracking.enabled", True)           # within each clip
        if args.split == "val":
            data = splits(Path(args.data).parent)[1]
        else:
            data = read_lsp_dir(args.data, args.format)
        if not 0.0 < args.shrink <= 1.0:
            raise ValueError(f"--shrink must be in (0, 1], not {args.shrink}")
        if args.limit:
            data = data.subset(np.arange(min(args.limit, len(data))))
        base = read_baseline(args.compare) if args.compare else None
        from ..estimator.pipeline import PoseEstimator
        estimator = PoseEstimator(cfg)
    except (ConfigError, ModelError, DatasetError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rep = evaluate(estimator, data, progress=not args.no_progress, shrink=args.shrink,
                   waist_up_framing=args.waist_up, still_clip=args.still_clip)
    rep["data"] = str(Path(args.data)) + (" (validation split)" if args.split == "val" else "")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rep, indent=2) + "\n")
    lines = format_report(rep).splitlines()
    if base is not None:     # before the last line, which stays the PCK line
        lines[-1:-1] = comparison_lines(base, rep, args.compare)
    print("\n".join(lines))
    return 0
