"""PCK arithmetic (the standard LSP protocol)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..skeleton import JOINT_INDEX, NUM_JOINTS, flip_permutation

TORSO = (JOINT_INDEX["l_shoulder"], JOINT_INDEX["r_hip"])
OTHER_DIAGONAL = (JOINT_INDEX["r_shoulder"], JOINT_INDEX["l_hip"])
TORSO_DEFINITION = "torso diameter = distance from the left shoulder to the right hip"


def torso_size(gt: np.ndarray, either_diagonal: bool = False) -> np.ndarray:
    """(N,14,2) ground truth -> (N,) torso diameters (NaN where a torso joint is missing).

    ``either_diagonal``: where the left shoulder or the right hip is missing (LSP-extended leaves
    joints it does not see unannotated), the right shoulder to the left hip instead."""
    a, b = TORSO
    size = np.linalg.norm(gt[:, a] - gt[:, b], axis=-1)
    if either_diagonal:
        c, d = OTHER_DIAGONAL
        size = np.where(np.isfinite(size), size, np.linalg.norm(gt[:, c] - gt[:, d], axis=-1))
    return size


def pck_correct(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.2,
                either_diagonal: bool = False) -> np.ndarray:
    """(N,14) float: 1 correct, 0 wrong, NaN not evaluated (missing ground truth or torso; see
    :func:`torso_size` for ``either_diagonal``).

    A prediction that is NaN (e.g. no person detected) counts as wrong.
    """
    pred = np.asarray(pred, np.float64)[..., :2]
    gt = np.asarray(gt, np.float64)[..., :2]
    dist = np.linalg.norm(pred - gt, axis=-1)
    thr = alpha * torso_size(gt, either_diagonal)[:, None]
    ok = np.where(np.isnan(dist), 0.0, (dist <= thr).astype(np.float64))
    valid = np.isfinite(gt[..., 0]) & np.isfinite(thr)
    return np.where(valid, ok, np.nan)


def pck_mirror_tolerant(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.2
                        ) -> tuple[np.ndarray, np.ndarray]:
    """A diagnostic of left/right label disagreement: (correct, swapped) where ``correct`` is
    :func:`pck_correct` against the labels or against the labels with left and right exchanged
    (the whole skeleton, as a mirrored annotation), whichever gives the image more correct
    joints, and ``swapped`` (N,) marks the images where the exchanged labels won."""
    perm = flip_permutation()[:NUM_JOINTS]
    straight = pck_correct(pred, gt, alpha)
    mirrored = pck_correct(pred, np.asarray(gt)[:, perm], alpha)
    swapped = np.nansum(mirrored, 1) > np.nansum(straight, 1)
    return np.where(swapped[:, None], mirrored, straight), swapped


def pck_summary(correct: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean PCK over all evaluated joints (percent) and per joint (percent; NaN for a joint
    never evaluated, e.g. the ankles of waist-up frames)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # a joint never evaluated: NaN
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


def upright(joints: np.ndarray, max_tilt: float) -> bool:
    """Whether ``joints`` (14, 2) have the neck and both hips annotated and a torso within
    ``max_tilt`` degrees of upright (head above hips), as :func:`torso_angle` measures it."""
    torso = joints[[JOINT_INDEX["neck"], JOINT_INDEX["r_hip"], JOINT_INDEX["l_hip"]]]
    return bool(np.isfinite(torso).all() and torso_angle(joints[None])[0] <= max_tilt)


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


def correct_codes(correct: np.ndarray) -> list[str]:
    """(N,14) correct array (1 / 0 / NaN) -> one string per image, '1' / '0' / '-' per joint."""
    return ["".join("-" if np.isnan(v) else str(int(v)) for v in row) for row in correct]


def from_codes(codes: list[str]) -> np.ndarray:
    """The inverse of :func:`correct_codes`."""
    table = {"1": 1.0, "0": 0.0, "-": np.nan}
    try:
        rows = [[table[c] for c in code] for code in codes]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"per-image codes must be strings of 1, 0 and -, not {exc}") from None
    if len({len(r) for r in rows}) > 1:
        raise ValueError("per-image codes differ in length")
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(rows[0]) if rows else NUM_JOINTS)


def paired_difference(base: np.ndarray, new: np.ndarray, rounds: int = 2000,
                      seed: int = 0) -> tuple[float, float, float]:
    """PCK of ``new`` minus PCK of ``base`` (percent points) on the same images and joints, and
    its 95 % interval from a paired bootstrap over the images (both results resampled together,
    so the differences between images, the bulk of the noise, cancel)."""
    base, new = np.asarray(base, np.float64), np.asarray(new, np.float64)
    if base.shape != new.shape or not np.array_equal(np.isnan(base), np.isnan(new)):
        raise ValueError("the two results are not on the same images and joints")
    counted = (~np.isnan(base)).sum(1)
    gain = np.nansum(new, 1) - np.nansum(base, 1)          # per image: joints won minus lost
    diff = 100.0 * gain.sum() / max(counted.sum(), 1)
    idx = np.random.default_rng(seed).integers(0, len(gain), size=(rounds, len(gain)))
    boot = 100.0 * gain[idx].sum(1) / np.maximum(counted[idx].sum(1), 1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(diff), float(lo), float(hi)


def read_json_report(path) -> dict:
    """The JSON report at ``path`` (``eval --json``) as a dict; FileNotFoundError / ValueError
    naming ``--compare`` and the path otherwise."""
    try:
        rep = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"--compare: {path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--compare: {path} is not a JSON report ({exc})") from None
    if not isinstance(rep, dict):
        raise ValueError(f"--compare: {path} is not a JSON report (not a mapping)")
    return rep
