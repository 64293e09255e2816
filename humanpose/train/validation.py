"""Validation during training and the relabelling judge: a pose net's joints on the validation
crops (gt-centre PCK@0.2), a person net's recall on whole validation images seen as the
pipeline's detector sees them, and the limbs whose left / right labels a fixed judge fits far
better mirrored.  :mod:`.trainer` calls them at every ``val_every`` steps and before training.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from ..estimator.maps import STRIDE, argmax_subpixel, find_peaks, from_map
from ..estimator.crops import detector_frame, normalise
from ..skeleton import NUM_JOINTS, flip_permutation
from ..store import load_model, sha256
from .datasets import person_box
from .metrics import pck_correct, pck_summary
from .recipe import LIMB_GROUPS
from .samples import pose_sample


@torch.inference_mode()
def predict_crops(model, cache: dict, boxsize: int, device) -> tuple[np.ndarray, np.ndarray]:
    """The model's joints on every cached crop (person at 0.65 of the crop, no augmentation)
    and the ground truth in the same pixels: two (N, 14, 2) arrays."""
    rng = np.random.default_rng(0)
    preds, gts = [], []
    for s in range(0, len(cache["images"]), 32):
        items = [pose_sample(cache["images"][i], cache["joints"][i], boxsize, rng, augment=False)
                 for i in range(s, min(s + 32, len(cache["images"])))]
        x = torch.from_numpy(np.stack([it[0] for it in items])).to(device)
        out = model(x)[-1][:, :14].float().cpu().numpy()
        for o, it in zip(out, items):
            preds.append(from_map(argmax_subpixel(o)[:, :2]))
            gts.append(it[3])
    return np.array(preds), np.array(gts)


def validate_pose(model, cache: dict, boxsize: int, device) -> dict:
    """Fast gt-centre PCK@0.2 on the validation crops."""
    pck, _ = pck_summary(pck_correct(*predict_crops(model, cache, boxsize, device)))
    return {"val_pck": round(float(pck), 2)}


def mirrored_limbs(pred: np.ndarray, gt: np.ndarray, min_gain: int = 2) -> np.ndarray:
    """(N, 2) bool: where the predicted arms / legs (``LIMB_GROUPS``) fit the labels with left
    and right exchanged by at least ``min_gain`` more joints within PCK@0.2 than as given."""
    perm = flip_permutation()[:NUM_JOINTS]
    as_given, exchanged = pck_correct(pred, gt), pck_correct(pred[:, perm], gt)
    out = np.zeros((len(gt), len(LIMB_GROUPS)), bool)
    for g, pairs in enumerate(LIMB_GROUPS.values()):
        idx = [j for pair in pairs for j in pair]
        gain = np.nansum(exchanged[:, idx], 1) - np.nansum(as_given[:, idx], 1)
        out[:, g] = gain >= min_gain
    return out


def relabel_mirrored_limbs(cache: dict, weights: str | Path, boxsize: int, device,
                           record: Path, groups=tuple(LIMB_GROUPS)) -> np.ndarray:
    """Exchange, in ``cache`` (in place), the left/right labels of the limbs of ``groups`` (names
    of ``LIMB_GROUPS``) that the pose net ``weights`` fits far better mirrored
    (``mirrored_limbs``); returns the (N, len(LIMB_GROUPS)) flags of the limbs exchanged.

    LSP-extended was labelled by crowd workers, who sometimes named the limbs from the viewer's
    side: on the validation split the shipped net and an MPII-trained teacher both fit the
    mirrored labels better on about one person in eight.  A fixed judge (not the net being
    trained: a loss that forgives either side lets the net drift to the viewer's side, which
    cost 6 points of validation PCK in 1000 steps) relabels them once.  The flags are kept in
    ``record`` (JSON, with the judge's sha256: the verdict of other weights is an error) and read
    back on a resume.
    """
    digest = sha256(weights)
    if record.exists():
        try:
            data = json.loads(record.read_text())
            flags, judged_by = np.array(data["flags"], bool), data["sha256"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{record} is not a relabelling record ({exc!r}): delete it to "
                             "judge again") from exc
        if judged_by != digest:
            raise ValueError(f"{record} holds the verdict of other weights (sha256 "
                             f"{str(judged_by)[:12]}..., not {weights}'s {digest[:12]}...): delete "
                             "it to judge again")
    else:
        judge = load_model(weights, kind="pose").to(device)
        flags = mirrored_limbs(*predict_crops(judge, cache, boxsize, device))
        record.write_text(json.dumps({"weights": str(weights), "sha256": digest,
                                      "groups": list(LIMB_GROUPS), "judged": flags.sum(0).tolist(),
                                      "flags": flags.astype(int).tolist()}))
    if flags.shape != (len(cache["joints"]), len(LIMB_GROUPS)):
        raise ValueError(f"{record} does not match the training set ({flags.shape[0]} persons, "
                         f"not {len(cache['joints'])}): delete it to judge again")
    flags = flags & np.isin(list(LIMB_GROUPS), list(groups))
    for g, pairs in enumerate(LIMB_GROUPS.values()):
        rows = np.flatnonzero(flags[:, g])
        for a, b in pairs:
            for key in ("joints", "visible"):
                cache[key][rows, a], cache[key][rows, b] = cache[key][rows, b], cache[key][rows, a]
    return flags


@torch.inference_mode()
def validate_person(model, val, detector_size: int, device, threshold: float = 0.2) -> dict:
    """Detector recall on the validation images seen as the pipeline's detector sees them
    (:func:`~humanpose.estimator.crops.detector_frame`, longer side ``detector_size``): a
    peak above ``threshold`` (the config's default) within 0.3 x person size of the centre."""
    hits, peaks = 0, 0
    for path, joints in zip(val.images, val.joints):
        det, sx, sy = detector_frame(cv2.imread(str(path)), detector_size)
        x = torch.from_numpy(normalise(det)[None]).to(device)
        m = model(x)[-1][0, 0].float().cpu().numpy()
        pk = find_peaks(m, threshold, min_distance=0.15 * detector_size * 0.75 / STRIDE)
        peaks += len(pk)
        c, size = person_box(joints)
        if len(pk):
            d = np.linalg.norm((from_map(pk[:, :2]) + 0.5) / (sx, sy) - 0.5 - c, axis=1).min()
            hits += d <= 0.3 * size
    return {"val_recall": round(100.0 * hits / len(val), 2),
            "val_peaks_per_image": round(peaks / len(val), 3)}
