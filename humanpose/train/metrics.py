"""PCK arithmetic (the standard LSP protocol)."""
from __future__ import annotations

import numpy as np

from ..skeleton import JOINT_INDEX

TORSO = (JOINT_INDEX["l_shoulder"], JOINT_INDEX["r_hip"])
TORSO_DEFINITION = "torso diameter = distance from the left shoulder to the right hip"


def torso_size(gt: np.ndarray) -> np.ndarray:
    """(N,14,2) ground truth -> (N,) torso diameters (NaN where a torso joint is missing)."""
    a, b = TORSO
    return np.linalg.norm(gt[:, a] - gt[:, b], axis=-1)


def pck_correct(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.2) -> np.ndarray:
    """(N,14) float: 1 correct, 0 wrong, NaN not evaluated (missing ground truth or torso).

    A prediction that is NaN (e.g. no person detected) counts as wrong.
    """
    pred = np.asarray(pred, np.float64)[..., :2]
    gt = np.asarray(gt, np.float64)[..., :2]
    dist = np.linalg.norm(pred - gt, axis=-1)
    thr = alpha * torso_size(gt)[:, None]
    ok = np.where(np.isnan(dist), 0.0, (dist <= thr).astype(np.float64))
    valid = np.isfinite(gt[..., 0]) & np.isfinite(thr)
    return np.where(valid, ok, np.nan)


def pck_summary(correct: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean PCK over all evaluated joints (percent) and per joint (percent)."""
    per_joint = np.nanmean(correct, axis=0) * 100.0
    return float(np.nanmean(correct) * 100.0), per_joint


ORIENTATIONS = (("upright", 0, 30), ("tilted", 30, 60), ("sideways", 60, 120), ("inverted", 120, 181))


def torso_angle(gt: np.ndarray) -> np.ndarray:
    """(N,14,2) ground truth -> (N,) angle in degrees (0..180) between the image's downward
    vertical and the neck-to-hips vector (0 = upright, 180 = upside down; NaN when the neck or
    both hips are missing)."""
    neck = gt[:, JOINT_INDEX["neck"]]
    hips = gt[:, [JOINT_INDEX["r_hip"], JOINT_INDEX["l_hip"]]]
    with np.errstate(invalid="ignore"):     # both hips missing: 0 / 0 = NaN
        hip = np.nansum(hips, 1) / np.isfinite(hips).sum(1)
    v = hip - neck
    return np.abs(np.degrees(np.arctan2(v[:, 0], v[:, 1])))


def pck_by_orientation(correct: np.ndarray, gt: np.ndarray) -> dict:
    """PCK (percent) and person count per torso orientation (see ORIENTATIONS)."""
    ang = torso_angle(gt)
    out = {}
    for name, lo, hi in ORIENTATIONS:
        m = (ang >= lo) & (ang < hi) & np.isfinite(correct).any(1)
        out[name] = {"persons": int(m.sum()),
                     "pck": round(float(np.nanmean(correct[m]) * 100.0), 2) if m.any() else None}
    return out


def rate_by_orientation(hit: np.ndarray, gt: np.ndarray) -> dict:
    """Percent of persons with ``hit`` (N,) bool (e.g. found by the detector) and person count
    per torso orientation (see ORIENTATIONS)."""
    ang = torso_angle(gt)
    out = {}
    for name, lo, hi in ORIENTATIONS:
        m = (ang >= lo) & (ang < hi)
        out[name] = {"persons": int(m.sum()),
                     "rate": round(float(np.mean(hit[m]) * 100.0), 2) if m.any() else None}
    return out
