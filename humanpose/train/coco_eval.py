"""``humanpose eval --format coco DIR``: the pipeline on real multi-person photos.

``DIR`` holds ``images/`` and COCO annotations: ``person_keypoints_*.json`` (17 keypoints,
v = 0 not labelled) and, optionally, ``instances_*.json`` (every person's box, also the people
too small or hidden to carry keypoints; without it the keypoint file's boxes stand in).  The
detector runs on the whole image, tracking off; each image is judged on its own:

* **persons found**: of the persons (not crowd) with >= MIN_KEYPOINTS labelled keypoints, those
  that a skeleton covers: at least FOUND_SHARE of their labelled limb joints (COCO's 12 shoulder
  to ankle keypoints, mapped by name; COCO has no head top or neck) within FOUND_RADIUS x the
  longer side of their box of the skeleton's joint.  One skeleton finds one person at most
  (an optimal one-to-one assignment), so one skeleton spanning three people finds one.
* **joint PCK**: the same distance rule per joint, a person not found counting every labelled
  limb joint wrong (``pck_found`` counts only the found persons: the pose net alone).
* **skeletons on no person**: skeletons with a confident joint (score >= joint_threshold, the
  ones the app draws) whose confident joints' mean lies in no person box, crowd boxes and boxes
  of people without keypoints included; reported per image, the person-free images apart.
* **detector recall and precision by person height** (box height < 64, 64-128, > 128 px): a
  person box (not crowd) is recalled when a detected person's ``centre`` lies in it (one centre
  per box, one-to-one); a centre is correct when it lies in any person box.  A centre has no
  annotated height, so precision is binned by the detection's own height: the vertical extent of
  its confident joints (of all its joints when fewer than two are confident).

``--compare BASE.json`` (a ``--json`` report of another run on the same images) gives the
differences in found persons, PCK, skeletons on no person per image and detector recall, each
with a 95 % interval from a paired bootstrap (over persons, resp. images, resp. boxes).
"""
from __future__ import annotations

import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from ..skeleton import JOINT_INDEX, JOINT_LABELS, NUM_JOINTS
from .datasets import DatasetError
from .metrics import correct_codes, from_codes, paired_difference

MIN_KEYPOINTS = 8
FOUND_RADIUS = 0.2
FOUND_SHARE = 0.5
HEIGHT_BINS = (("< 64", 0.0, 64.0), ("64-128", 64.0, 128.0), ("> 128", 128.0, np.inf))
LIMBS = ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
COCO_TO_JOINT = {f"{side}_{part}": JOINT_INDEX[f"{side[0]}_{part}"]
                 for side in ("left", "right") for part in LIMBS}


@dataclass
class CocoSet:
    root: Path
    images: list[Path]
    keypoints: list[np.ndarray]    # per image (P, 14, 2): persons with >= MIN_KEYPOINTS, NaN unlabelled
    kp_boxes: list[np.ndarray]     # per image (P, 4) x0, y0, x1, y1 of those persons
    boxes: list[np.ndarray]        # per image (B, 4): every person box
    crowd: list[np.ndarray]        # per image (B,) bool: a crowd box
    boxes_from: str                # the file the boxes came from

    def head(self, k: int) -> "CocoSet":
        return CocoSet(self.root, *(v[:k] for v in (self.images, self.keypoints, self.kp_boxes,
                                                     self.boxes, self.crowd)), self.boxes_from)


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is not a COCO annotation file ({exc})") from None
    if not isinstance(data, dict) or not {"images", "annotations"} <= data.keys():
        raise DatasetError(f"{path} is not a COCO annotation file (no images / annotations)")
    return data


def _one(root: Path, pattern: str, required: bool) -> Path | None:
    found = sorted(root.glob(pattern))
    if len(found) > 1:
        raise DatasetError(f"{root} holds {len(found)} files {pattern}; keep one")
    if not found and required:
        raise DatasetError(f"{root}: no {pattern} (COCO keypoint annotations) found")
    return found[0] if found else None


def _xyxy(bbox) -> np.ndarray:
    x, y, w, h = (float(v) for v in bbox)
    return np.array([x, y, x + w, y + h])


def read_coco_dir(path) -> CocoSet:
    """The images and person annotations under ``path`` (see the module doc)."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory")
    kp_path = _one(root, "person_keypoints*.json", True)
    kp = _load(kp_path)
    inst_path = _one(root, "instances*.json", False)
    inst = _load(inst_path) if inst_path else kp
    person_ids = {c["id"] for c in inst.get("categories", []) if c.get("name") == "person"} or {1}
    try:
        names = kp["categories"][0]["keypoints"]
        cols = [(names.index(n), j) for n, j in COCO_TO_JOINT.items()]
    except (KeyError, IndexError, ValueError, TypeError):
        raise DatasetError(f"{root}: the keypoint file names no COCO person keypoints") from None
    try:
        at = {im["id"]: k for k, im in enumerate(kp["images"])}
        kps, kboxes, boxes, crowd = ([[] for _ in at] for _ in range(4))
        for a in kp["annotations"]:
            if a["image_id"] in at and not a.get("iscrowd") and a.get("num_keypoints", 0) >= MIN_KEYPOINTS:
                k, j = np.asarray(a["keypoints"], np.float64).reshape(-1, 3), np.full((NUM_JOINTS, 2), np.nan)
                for c, idx in cols:
                    j[idx] = k[c, :2] if k[c, 2] > 0 else np.nan
                kps[at[a["image_id"]]].append(j)
                kboxes[at[a["image_id"]]].append(_xyxy(a["bbox"]))
        for a in inst["annotations"]:
            if a["image_id"] in at and a.get("category_id") in person_ids:
                boxes[at[a["image_id"]]].append(_xyxy(a["bbox"]))
                crowd[at[a["image_id"]]].append(bool(a.get("iscrowd")))
        images = [root / "images" / im["file_name"] for im in kp["images"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{root}: a COCO annotation lacks or garbles {exc}") from None
    missing = [p.name for p in images if not p.is_file()]
    if missing:
        raise DatasetError(f"{root / 'images'}: {len(missing)} annotated images missing "
                           f"({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''})")
    arr = lambda rows, shape: np.array(rows, np.float64).reshape(-1, *shape)  # noqa: E731
    return CocoSet(root, images, [arr(r, (NUM_JOINTS, 2)) for r in kps],
                   [arr(r, (4,)) for r in kboxes], [arr(r, (4,)) for r in boxes],
                   [np.array(c, bool) for c in crowd], (inst_path or kp_path).name)


def inside(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(K, 2) points, (B, 4) boxes -> (K, B) bool: the point lies in the box."""
    p, b = points[:, None, :], boxes[None]
    return ((p[..., 0] >= b[..., 0]) & (p[..., 0] <= b[..., 2])
            & (p[..., 1] >= b[..., 1]) & (p[..., 1] <= b[..., 3]))


def assign(score: np.ndarray, ok: np.ndarray) -> dict[int, int]:
    """One-to-one rows -> columns among the ``ok`` pairs, as many as can be, the higher
    ``score`` first."""
    if not ok.any():
        return {}
    rows, cols = linear_sum_assignment(-(ok * (1.0 + np.clip(score, 0, 1))))
    return {int(r): int(c) for r, c in zip(rows, cols) if ok[r, c]}


def joint_hits(persons: np.ndarray, pboxes: np.ndarray, skeletons: np.ndarray) -> np.ndarray:
    """(P, S, 14) 1 / 0 / NaN (not labelled): the skeleton's joint within FOUND_RADIUS x the
    longer side of the person's box of the labelled joint."""
    radius = FOUND_RADIUS * np.max(pboxes[:, 2:] - pboxes[:, :2], axis=1)
    d = np.linalg.norm(persons[:, None] - skeletons[None, :, :, :2], axis=-1)
    hit = (d <= radius[:, None, None]).astype(np.float64)
    return np.where(np.isfinite(persons[:, None, :, 0]), hit, np.nan)


def confident_mean(joints: np.ndarray, threshold: float) -> np.ndarray | None:
    """The mean of the joints scored >= ``threshold`` (None: the app draws none)."""
    ok = joints[:, 2] >= threshold
    return joints[ok, :2].mean(0) if ok.any() else None


def own_height(joints: np.ndarray, threshold: float) -> float:
    ok = joints[:, 2] >= threshold
    y = joints[ok if ok.sum() >= 2 else slice(None), 1]
    return float(y.max() - y.min())


def height_bin(h: float) -> str:
    return next(name for name, lo, hi in HEIGHT_BINS if lo <= h < hi)


def judge_image(skeletons: np.ndarray, centres: np.ndarray, data: CocoSet, i: int,
                threshold: float) -> dict:
    """One image's verdicts: persons' joint hits (P, 14) and found (P,), skeletons drawn and on
    no person, boxes recalled (non-crowd, with heights), detections (height, correct)."""
    persons, pboxes, boxes, crowd = data.keypoints[i], data.kp_boxes[i], data.boxes[i], data.crowd[i]
    hits = np.where(np.isfinite(persons[:, :, 0]), 0.0, np.nan)
    found = np.zeros(len(persons), bool)
    if len(persons) and len(skeletons):
        h = joint_hits(persons, pboxes, skeletons)
        share = np.nanmean(h, axis=2)
        for p, s in assign(share, share >= FOUND_SHARE).items():
            hits[p], found[p] = h[p, s], True
    means = [confident_mean(s, threshold) for s in skeletons]
    drawn = [m for m in means if m is not None]
    off = int((~inside(np.array(drawn).reshape(-1, 2), boxes).any(1)).sum()) if drawn else 0
    single = boxes[~crowd]
    hit_box = np.zeros(len(single), bool)
    if len(single) and len(centres):
        within = inside(centres, single)
        mid = (single[:, :2] + single[:, 2:]) / 2
        size = np.maximum(np.max(single[:, 2:] - single[:, :2], axis=1), 1.0)
        near = 1.0 - np.linalg.norm(centres[:, None] - mid[None], axis=-1) / size
        hit_box[list(assign(near, within).values())] = True
    correct = inside(centres.reshape(-1, 2), boxes).any(1) if len(centres) else np.zeros(0, bool)
    return {"hits": hits, "found": found, "drawn": len(drawn), "off": off,
            "box_heights": single[:, 3] - single[:, 1], "box_hit": hit_box,
            "det_heights": [own_height(s, threshold) for s in skeletons], "det_correct": correct}


def _rate(num: int, den: int) -> float | None:
    return round(100.0 * num / den, 2) if den else None


def evaluate_coco(estimator, data: CocoSet, progress: bool = True) -> dict:
    """Run the estimator (detector on, as configured) on every image; returns the report."""
    from ..progress import progress as progress_bar
    thr = estimator.config.estimator.joint_threshold
    verdicts, seconds = [], 0.0
    for i in progress_bar(range(len(data.images)), desc="eval coco", enabled=progress):
        img = cv2.imread(str(data.images[i]), cv2.IMREAD_COLOR)
        if img is None:
            raise DatasetError(f"cannot read image {data.images[i]}")
        t0 = time.perf_counter()
        res = estimator.estimate(img, frame_index=i, keep_maps=False)
        seconds += time.perf_counter() - t0
        skel = np.array([p.joints for p in res.persons], np.float64).reshape(-1, NUM_JOINTS, 3)
        centres = np.array([p.centre[:2] for p in res.persons], np.float64).reshape(-1, 2)
        verdicts.append(judge_image(skel, centres, data, i, thr))
    return report(verdicts, data, estimator, seconds)


def report(verdicts: list[dict], data: CocoSet, estimator, seconds: float) -> dict:
    n = len(verdicts)
    hits = np.concatenate([v["hits"] for v in verdicts]).reshape(-1, NUM_JOINTS)
    found = np.concatenate([v["found"] for v in verdicts]).astype(bool)
    off = np.array([v["off"] for v in verdicts], int)
    free = np.array([len(b) == 0 for b in data.boxes])
    drawn = sum(v["drawn"] for v in verdicts)
    bh = np.concatenate([v["box_heights"] for v in verdicts])
    bhit = np.concatenate([v["box_hit"] for v in verdicts]).astype(bool)
    dh = np.array([h for v in verdicts for h in v["det_heights"]], np.float64)
    dok = np.concatenate([v["det_correct"] for v in verdicts]).astype(bool)
    recall, precision = {}, {}
    for name, lo, hi in HEIGHT_BINS:
        m, d = (bh >= lo) & (bh < hi), (dh >= lo) & (dh < hi)
        recall[name] = {"persons": int(m.sum()), "recalled": int(bhit[m].sum()),
                        "rate": _rate(bhit[m].sum(), m.sum())}
        precision[name] = {"detections": int(d.sum()), "correct": int(dok[d].sum()),
                           "rate": _rate(dok[d].sum(), d.sum())}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # a joint never labelled: NaN
        per_joint = np.nanmean(hits, axis=0) * 100.0 if len(hits) else np.full(NUM_JOINTS, np.nan)
    cfg = estimator.config
    return {
        "format": "coco", "n_images": n, "n_person_free_images": int(free.sum()),
        "n_persons": int(len(found)), "n_person_boxes": int(sum(len(b) for b in data.boxes)),
        "min_keypoints": MIN_KEYPOINTS, "boxes_from": data.boxes_from,
        "persons_found": int(found.sum()), "found_percent": _rate(found.sum(), len(found)),
        "pck": _rate(np.nansum(hits), np.isfinite(hits).sum()),
        "pck_found": _rate(np.nansum(hits[found]), np.isfinite(hits[found]).sum()),
        "per_joint_pck": {j: round(float(v), 2) if np.isfinite(v) else None
                          for j, v in zip(JOINT_LABELS, per_joint)},
        "skeletons_drawn": drawn, "skeletons_on_no_person": int(off.sum()),
        "on_no_person_per_image": round(off.sum() / max(n, 1), 3),
        "on_no_person_person_free": int(off[free].sum()),
        "on_no_person_per_person_free_image": round(off[free].sum() / max(free.sum(), 1), 3),
        "on_no_person_with_persons": int(off[~free].sum()),
        "on_no_person_per_image_with_persons": round(off[~free].sum() / max((~free).sum(), 1), 3),
        "images_with_skeletons_on_no_person": {data.images[i].name: int(off[i])
                                               for i in np.flatnonzero(off)},
        "detector_recall": _rate(bhit.sum(), len(bhit)), "detector_recall_by_height": recall,
        "detector_precision": _rate(dok.sum(), len(dok)), "detector_precision_by_height": precision,
        "detections_per_image": round(len(dok) / max(n, 1), 3),
        "per_person_joints": correct_codes(hits), "per_person_found": "".join("01"[int(f)] for f in found),
        "per_image_on_no_person": off.tolist(), "per_box_recalled": "".join("01"[int(h)] for h in bhit),
        "seconds_per_image": round(seconds / max(n, 1), 4),
        "backend": estimator.backend_name, "precision": cfg.model.precision,
        "person_model": cfg.model.person_model, "pose_model": cfg.model.pose_model,
        "detector_size": cfg.estimator.detector_size, "person_threshold": cfg.estimator.person_threshold,
        "joint_threshold": cfg.estimator.joint_threshold, "boxsize": cfg.estimator.boxsize,
        "alpha": FOUND_RADIUS, "pck_size": "longer side of the person's box",
    }


def format_report(rep: dict) -> str:
    pct = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    lines = [f"{'joint':<12} {'PCK@0.2':>8}  (of the box's longer side; a person not found: all wrong)"]
    lines += [f"{j:<12} {pct(v):>8}" for j, v in rep["per_joint_pck"].items() if v is not None]
    free, full = rep["n_person_free_images"], rep["n_images"] - rep["n_person_free_images"]
    lines.append(f"skeletons drawn: {rep['skeletons_drawn']}, on no person: "
                 f"{rep['skeletons_on_no_person']} ({rep['on_no_person_per_image']:.2f} per image); "
                 f"on the {free} person-free images: {rep['on_no_person_person_free']} "
                 f"({rep['on_no_person_per_person_free_image']:.2f} per image); on the {full} "
                 f"with persons: {rep['on_no_person_with_persons']} "
                 f"({rep['on_no_person_per_image_with_persons']:.2f} per image)")
    for what, key, count in (("recall", "detector_recall", "persons"),
                             ("precision", "detector_precision", "detections")):
        by = rep[key + "_by_height"]
        lines.append(f"detector {what} by height: " + "  ".join(
            f"{k} px {pct(v['rate'])} % ({v[count]})" for k, v in by.items())
            + f"  all {pct(rep[key])} %")
    lines.append(f"images: {rep['n_images']} ({free} person-free)  person boxes: "
                 f"{rep['n_person_boxes']}  detections/image: {rep['detections_per_image']:.2f}  "
                 f"s/image: {rep['seconds_per_image']:.3f}  backend: {rep['backend']}  "
                 f"detector_size: {rep['detector_size']}")
    lines.append(f"persons found: {rep['persons_found']} / {rep['n_persons']} "
                 f"({pct(rep['found_percent'])} %)  PCK@0.2: {pct(rep['pck'])} (found persons: "
                 f"{pct(rep['pck_found'])})  on no person: {rep['on_no_person_per_image']:.2f} per "
                 f"image, {rep['on_no_person_person_free']} on person-free images")
    return "\n".join(lines)


SAME = ("format", "n_images", "n_persons", "n_person_boxes", "data")
PAIRED = (("found", "per_person_found", 1.0, "pp"), ("PCK", "per_person_joints", 1.0, "pp"),
          ("on no person", "per_image_on_no_person", 0.01, "per image"),   # a count, not a share
          ("detector recall", "per_box_recalled", 1.0, "pp"))


def _values(rep: dict, key: str) -> np.ndarray:
    """The per-unit values of ``key``: (N, J) with NaN for the joint codes, else (N, 1)."""
    v = rep[key]
    if key == "per_person_joints":
        return from_codes(v)
    if isinstance(v, str):
        if set(v) - {"0", "1"}:
            raise ValueError(f"{key} must be a string of 0 and 1")
        return np.array([float(c) for c in v]).reshape(-1, 1)
    return np.asarray(v, np.float64).reshape(-1, 1)


def read_baseline(path) -> dict:
    try:
        rep = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"--compare: {path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--compare: {path} is not a JSON report ({exc})") from None
    if not isinstance(rep, dict) or rep.get("format") != "coco":
        raise ValueError(f"--compare: {path} is not a report of `eval --format coco --json`")
    missing = [k for k in SAME + tuple(k for _, k, _, _ in PAIRED) if k not in rep]
    if missing:
        raise ValueError(f"--compare: {path} lacks {', '.join(missing)}")
    for _, key, _, _ in PAIRED:
        try:
            _values(rep, key)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"--compare: {path}: {key}: {exc}") from None
    return rep


def comparison_lines(base: dict, rep: dict, name: str) -> list[str]:
    same = lambda k, r: Path(r[k]).name if k == "data" else r[k]  # noqa: E731
    differ = [k for k in SAME if same(k, base) != same(k, rep)]
    if differ:
        return [f"not compared with {name}: its {', '.join(differ)} differ from this run's "
                f"({', '.join(f'{same(k, base)} vs {same(k, rep)}' for k in differ)})"]
    parts = []
    for label, key, scale, unit in PAIRED:
        old, new = _values(base, key), _values(rep, key)
        if not len(old):
            continue
        try:      # (a paired bootstrap over the rows: persons, images or boxes)
            d, lo, hi = (scale * x for x in paired_difference(old, new))
        except ValueError as exc:
            return [f"not compared with {name}: {exc}"]
        parts.append(f"{label} {d:+.2f} {unit} (95 % {lo:+.2f} to {hi:+.2f})")
    return [f"against {name} ({base['n_images']} images, paired bootstrap): " + "  ".join(parts)]


def main(args) -> int:
    """``eval --format coco``: the options shared with the LSP eval, checked, then the run."""
    from ..config import ConfigError, from_args, set_value
    from ..store import ModelError
    try:
        for flag, off in (("--shrink", args.shrink == 1.0), ("--waist-up", not args.waist_up),
                          ("--still-clip", not args.still_clip), ("--split", args.split == "all")):
            if not off:
                raise ValueError(f"{flag} is for LSP-layout directories, not --format coco")
        cfg = set_value(from_args(args), "tracking.enabled", False)   # independent images
        data = read_coco_dir(args.data)
        if args.limit:
            data = data.head(args.limit)
        base = read_baseline(args.compare) if args.compare else None
        from ..estimator.pipeline import PoseEstimator
        estimator = PoseEstimator(cfg)
        rep = evaluate_coco(estimator, data, progress=not args.no_progress)
    except (ConfigError, ModelError, DatasetError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rep["data"] = str(Path(args.data))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rep, indent=2) + "\n")
    lines = format_report(rep).splitlines()
    if base is not None:     # before the last line, which stays the summary
        lines[-1:-1] = comparison_lines(base, rep, args.compare)
    print("\n".join(lines))
    return 0
