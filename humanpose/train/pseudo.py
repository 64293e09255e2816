"""Pseudo-labels for the person detector: the other people in the training crops.

An LSP / LSP-extended picture annotates one person; the people around it (team mates, a crowd,
passers-by) are unannotated, so a person-detector scene built on that picture trains them as
background.  :func:`pseudo_centres` runs humanpose's own pipeline (the configured detector and
pose net, tracking off) on every cached crop and keeps, as extra person centres, the persons
whose pose scores at least PSEUDO_SCORE and that lie away from the annotated person (centre
farther than PSEUDO_AWAY x its size, and not sharing its joints).  The trainer's person scenes
then make them targets too (``pseudo_labels: true`` in a person recipe; ``scenes.person_scene``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .datasets import person_box

PSEUDO_SCORE = 0.75     # pose score a pseudo-labelled person needs (walkers on vtest: 0.73-0.86)
PSEUDO_AWAY = 0.5       # ... and its centre this far (x the annotated person's size) from it
PSEUDO_MAX = 4          # at most this many per crop


def pseudo_centres(cache: dict, estimator, progress: bool = True) -> np.ndarray:
    """(N, PSEUDO_MAX, 2) float32 extra person centres per cached crop (crop pixels), NaN-padded."""
    from ..estimator.decode import person_extent, pose_score
    from ..progress import progress as progress_bar
    images, joints = cache["images"], cache["joints"]
    out = np.full((len(images), PSEUDO_MAX, 2), np.nan, np.float32)
    for i in progress_bar(range(len(images)), desc="pseudo-labels", enabled=progress):
        c0, s0 = person_box(joints[i])
        estimator.reset()        # (a tracking estimator would carry persons from crop to crop)
        found = []
        for p in estimator.estimate(images[i], keep_maps=False).persons:
            c, _ = person_extent(p.joints)
            if pose_score(p.joints) < PSEUDO_SCORE or np.hypot(*(c - c0)) < PSEUDO_AWAY * s0:
                continue
            near = np.linalg.norm(p.joints[:, :2] - joints[i], axis=1)   # NaN: not annotated
            if np.nanmedian(near) < 0.2 * s0:                   # the annotated person again
                continue
            found.append(c)
        for k, c in enumerate(found[:PSEUDO_MAX]):
            out[i, k] = c
    return out


def load_or_make(cache: dict, cache_file: Path, config_path=None, progress: bool = True) -> np.ndarray:
    """The pseudo-labels of a crop cache, made once with the configured nets (humanpose.yml or
    ``config_path``) and stored beside it as ``<cache>.pseudo.npz``."""
    path = Path(cache_file).with_suffix(".pseudo.npz")
    if path.exists():
        with np.load(path) as z:
            if len(z["centres"]) == len(cache["images"]):
                return z["centres"]
    from .. import config as config_mod
    from ..estimator.pipeline import PoseEstimator
    cfg = config_mod.load(config_path)
    cfg = config_mod.set_value(cfg, "tracking.enabled", False)
    centres = pseudo_centres(cache, PoseEstimator(cfg), progress)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, centres=centres)
    tmp.replace(path)
    return centres
