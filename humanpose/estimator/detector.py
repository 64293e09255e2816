"""The detector step of the pipeline (:class:`Detector`): the person net and its backend, where
a frame's persons stand, and which of the skeletons cut there are false detections.

* :meth:`Detector.find`: the person net sees the frame scaled so that its longer side is
  ``estimator.detector_size`` (0: following the frame; one or two passes,
  :func:`.persons.detector_sides`); MoveNet MultiPose gives persons with a size (cut at it at
  once, no crop levels) and the person check, a centre-map net gives centres (local maxima above
  ``estimator.person_threshold``), see :mod:`.persons`;
* :func:`given`: centres given by the caller instead (``eval`` in gt-centre mode);
* :func:`false_detections`: a skeleton whose :func:`.decode.pose_score` is below
  ``estimator.min_pose_score`` (the pose net finds no person there: a bollard, a lamp post, a
  crowd in the background); *duplicates*, two detections whose joints lie on the same places
  (:func:`.decode.duplicates`: a tall person can give two centre peaks); and with a MultiPose
  net a skeleton standing on none of its persons (:func:`.persons.on_a_person`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from torch import nn

from ..config import EstimatorConfig
from . import maps
from .backends import check_kind
from .decode import duplicates, pose_score
from .persons import Detections, detect, on_a_person


class Detector:
    """The person net and its backend (set by the estimator: ``make_backend``)."""

    def __init__(self, model: nn.Module):
        self.model = check_kind(model, "person")
        self.backend = None

    def find(self, bgr: np.ndarray, est: EstimatorConfig, scaled: tuple,
             prepare: Callable[[np.ndarray], np.ndarray] | None = None) -> Detections:
        """The persons of ``bgr``; centres in scaled-frame pixels (``scaled``: sx, sy, shape of
        :func:`.crops.scaled_size`).  ``prepare``: the detector image -> the net's input."""
        sx, sy, _ = scaled
        return detect(self.backend, self.model, bgr, est, sx, sy, prepare)


def given(centres: np.ndarray, scaled: tuple) -> Detections:
    """Detections at given centres (K, 2) in frame pixels: scaled-frame centres, peaks of
    score 1, an empty person map of the scaled frame's cells."""
    sx, sy, scaled_shape = scaled
    centres = (np.asarray(centres, np.float64).reshape(-1, 2) + 0.5) * (sx, sy) - 0.5
    peaks = np.column_stack([maps.to_map(centres), np.ones(len(centres))])
    person_map = np.zeros([-(-n // maps.STRIDE) for n in scaled_shape], np.float32)
    return Detections(centres, peaks, person_map)


def false_detections(joints: list[np.ndarray], centres: np.ndarray, found: Detections,
                     est: EstimatorConfig) -> set[int]:
    """Indices of the skeletons (``joints``, frame pixels; ``centres`` their detected centres)
    that are no person or a person seen twice (see the module doc)."""
    drop = {n for n, j in enumerate(joints) if pose_score(j) < est.min_pose_score}
    keep = [n for n in range(len(joints)) if n not in drop]
    drop |= {keep[k] for k in duplicates([joints[n] for n in keep], centres[keep])}
    if found.people is not None:   # the person check
        drop |= {n for n, j in enumerate(joints)
                 if not on_a_person(j, found.people, est.joint_threshold)}
    return drop
