"""Decoding the pose net's maps into persons (:mod:`.pipeline`): joint peaks inside the frame,
the flip test's averaged maps, a pose's score and extent, and which detections are duplicates of
one person.
"""
from __future__ import annotations

import numpy as np

from ..skeleton import flip_permutation
from . import maps

DUPLICATE_DISTANCE = 0.15  # median joint distance (x person size) under which two persons are one
SHARED_DISTANCE = 0.1      # joints this close (x person size) are on the same place ...
SHARED_JOINTS = 5          # ... and two persons sharing this many of them are one person
POSE_SCORE_JOINTS = 7      # a person's score: the mean of its best this many joint scores


def flip_averaged(backend, batch: np.ndarray) -> list[np.ndarray]:
    """Stage maps of ``batch`` (N, C, b, b) averaged with those of its mirror image.

    The crops and their mirrors go through the net as one batch; the mirrors' maps are flipped
    back and their left/right joints swapped.  With b a multiple of the stride, cell j of a map
    of the mirrored crop covers the same pixels as cell (w - 1 - j) of the original.
    """
    n = len(batch)
    both = np.concatenate([batch, batch[..., ::-1]])
    perm = flip_permutation()
    return [(s[:n] + s[n:, perm, :, ::-1]) / 2.0 for s in backend(np.ascontiguousarray(both))]


def joint_peaks(beliefs: np.ndarray, ok_rows: np.ndarray, ok_cols: np.ndarray) -> np.ndarray:
    """(K, 3) (u, v, value): the sub-cell maximum of each map among the cells inside the frame
    (the refinement uses the unmasked neighbours, so it is unbiased at the frame edge)."""
    peaks = maps.argmax_subpixel(beliefs)
    if ok_rows.all() and ok_cols.all() or not ok_rows.any() or not ok_cols.any():
        return peaks
    valid = ok_rows[:, None] & ok_cols[None, :]
    k, mh, mw = beliefs.shape
    flat = beliefs.reshape(k, -1).argmax(1)
    for n in np.nonzero(~valid.reshape(-1)[flat])[0]:
        i, j = divmod(int(np.where(valid, beliefs[n], -np.inf).argmax()), mw)
        dx, dy = maps.refine(beliefs[n], i, j)   # the same quadratic fit as argmax_subpixel
        peaks[n] = (j + dx, i + dy, beliefs[n, i, j])
    return peaks


def pose_score(joints: np.ndarray) -> float:
    """How surely (14, 3) ``joints`` are a person: the mean of the best POSE_SCORE_JOINTS joint
    scores, half the skeleton, because a person cut off by the frame (a webcam shows a person at
    a desk down to the hips) shows only half of it and the joints out of view score low."""
    return float(np.sort(joints[:, 2])[-POSE_SCORE_JOINTS:].mean())


def person_extent(joints: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and size (larger side) of the box around (14, 2+) joints, frame pixels."""
    xy = joints[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    return (lo + hi) / 2.0, float((hi - lo).max())


def duplicates(joints: list[np.ndarray], centres: np.ndarray) -> set[int]:
    """Indices of the persons to drop as duplicates, in two passes.

    1. Two persons whose (14, 2+) joints lie at a median distance under DUPLICATE_DISTANCE x the
       smaller one's size are one person seen twice; the one kept is the one whose detected
       centre ((K, 2), frame pixels) is nearest the centre of its joints' box, relative to its
       size (the better-placed detection).
    2. Of the rest, two that share SHARED_JOINTS joints (each within SHARED_DISTANCE x the
       smaller one's size) but not the others are one right skeleton and a wrong one built from
       its legs or arms: a second detection on the upper body of a lunging player whose head
       lands elsewhere, or a skeleton spanning two people.  The one whose joints the pose net
       is surer of (the higher mean score, a third column of ``joints``) is kept: the wrong one
       has joints on parts that are not this person's, or outside its crop (an upper-body
       detection whose legs are cut off).  The mean is over all 14 joints, not the best 7 of
       :func:`pose_score`: the joints such a detection places wrongly or cuts off are the ones
       that must count here.  Of two equally sure ones (or without scores) the smaller is kept,
       as the wrong one stretches further.
    """
    extents = [person_extent(j) for j in joints]
    off = [np.linalg.norm(np.asarray(centres[n], float) - c) / max(size, 1.0)
           for n, (c, size) in enumerate(extents)]
    drop: set[int] = set()

    def keep_first(order: list[int], same) -> list[int]:
        """Walk ``order``; drop each person that ``same(distances, size)`` ties to one kept."""
        kept: list[int] = []
        for n in order:
            if any(same(np.linalg.norm(joints[n][:, :2] - joints[k][:, :2], axis=1),
                        min(extents[n][1], extents[k][1])) for k in kept):
                drop.add(n)
            else:
                kept.append(n)
        return kept

    kept = keep_first(sorted(range(len(joints)), key=lambda n: off[n]),
                      lambda d, size: np.median(d) < DUPLICATE_DISTANCE * size)
    sure = [float(np.mean(j[:, 2])) if j.shape[1] > 2 else 0.0 for j in joints]
    keep_first(sorted(kept, key=lambda n: (-sure[n], extents[n][1])),
               lambda d, size: (d < SHARED_DISTANCE * size).sum() >= SHARED_JOINTS)
    return drop
