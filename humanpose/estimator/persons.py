"""The person stage of the pipeline: where the persons of a frame stand (:func:`detect`), and the
person check that drops a skeleton standing on none of them (:func:`on_a_person`).

Two kinds of person net:

* a centre-map net (``cpm_mobilenet`` / ``cpm_compact`` person nets): local maxima of its last
  stage above ``estimator.person_threshold``, at least ``min_person_distance * boxsize``
  scaled-frame pixels apart; it gives centres only;
* MoveNet MultiPose (``movenet_multipose``, :mod:`..nets.multipose`): its own decode, persons
  whose instance score (centre score x mean confident keypoint score) is at least
  ``estimator.person_threshold``; each gives its centre and its size (the box of its confident
  keypoints), so the pose crop is cut at the right scale at once (no crop levels), and its
  keypoints back the person check: with ``estimator.person_check`` > 0, a skeleton is kept only
  when the mean of its confident joints lies in the keypoint box of a MultiPose person whose
  instance score is at least that (on real photos the pose net alone draws skeletons on
  kerbs, cones and furniture that no pose score separates from people).

The detector sees the frame scaled so that its longer side is ``estimator.detector_size``
(0 = follow the frame: with MultiPose :func:`detector_sides`, a coarse and a finer pass on
large frames whose persons are merged; a centre-map net sees CENTRE_NET_SIDE, as its larger
inputs found a few more persons for many more false skeletons).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..nets.multipose import KEYPOINT_FLOOR, decode, sigmoid
from . import maps
from .crops import detector_frame, normalise

# detector_size 0: the longer sides MultiPose sees (one pass each, the persons of all the passes
# merged) for frames of at least this longer side; a centre-map net sees CENTRE_NET_SIDE
AUTO_SIDES = ((640, (384, 640)), (0, (256,)))
CENTRE_NET_SIDE = 256
SAME_PERSON_IOU = 0.4      # MultiPose persons of two passes whose keypoint boxes overlap this much
MIN_KEYPOINTS = 3          # a MultiPose person's size needs this many confident keypoints
MULTIPOSE_STRIDE = 4


@dataclass
class Detections:
    """A frame's persons: ``centres`` (K, 2) scaled-frame pixels, ``peaks`` (K, 3) map u, v and
    score, ``sides`` (K,) the side of the frame window to crop each from (frame pixels; None
    for a centre-map net, which gives no size), ``people`` the MultiPose persons for the person
    check as (keypoint box x0, y0, x1, y1 in frame pixels, instance score) (None: no check)."""
    centres: np.ndarray
    peaks: np.ndarray
    person_map: np.ndarray
    sides: np.ndarray | None = None
    people: list[tuple[np.ndarray, float]] | None = field(default=None)


def detector_sides(shape: tuple[int, int], size: int) -> tuple[int, ...]:
    """The longer sides the detector sees for a frame of ``shape``: ``size``, or with 0 the
    :data:`AUTO_SIDES` entry of the frame's longer side."""
    if size > 0:
        return (size,)
    longer = max(shape[:2])
    return next(sides for least, sides in AUTO_SIDES if longer >= least)


def is_multipose(model) -> bool:
    return getattr(model, "decoder", None) == "multipose"


def detect(backend, model, bgr: np.ndarray, est, sx: float, sy: float,
           prepare=None) -> Detections:
    """The persons of ``bgr`` (see the module doc); ``sx, sy`` map frame to scaled-frame pixels.
    ``prepare``: the detector image -> the net's (1, 3, H, W) input (default: normalised anew;
    the pipeline's normalises into a reused buffer)."""
    prepare = prepare or (lambda det: normalise(det)[None])
    sides = detector_sides(bgr.shape, est.detector_size)
    if is_multipose(model):
        people, centre_map = [], None
        for side in sides:
            det, dsx, dsy = detector_frame(bgr, side)
            outputs = backend(prepare(det))
            people += multipose_people(outputs, dsx, dsy)
            centre_map = sigmoid(outputs[0][0, 0]) if centre_map is None else centre_map
        return _multipose(merged(people), est, sx, sy, centre_map)
    det, dsx, dsy = detector_frame(bgr, est.detector_size or CENTRE_NET_SIDE)
    outputs = backend(prepare(det))
    b = est.boxsize
    person_map = outputs[-1][0, 0]
    peaks = maps.find_peaks(person_map, est.person_threshold,
                            min_distance=est.min_person_distance * b / sy * dsy / maps.STRIDE,
                            max_peaks=est.max_persons)
    centres = ((maps.from_map(peaks[:, :2]) + 0.5) / (dsx, dsy) * (sx, sy) - 0.5
               if len(peaks) else np.zeros((0, 2)))
    return Detections(centres, peaks, person_map)


def multipose_people(outputs, dsx: float, dsy: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MultiPose's persons (its own decode) in frame pixels: (keypoints (17, 3) x, y, score,
    keypoint box x0, y0, x1, y1 of the confident keypoints (else its predicted box), instance
    score), best centre first."""
    people = []
    for inst in decode(outputs):
        kps = np.empty((17, 3))
        # map cells (TF's normalised coordinates x map size) -> detector input pixels -> frame
        kps[:, 0] = inst.keypoints[:, 1] * MULTIPOSE_STRIDE / dsx - 0.5
        kps[:, 1] = inst.keypoints[:, 0] * MULTIPOSE_STRIDE / dsy - 0.5
        kps[:, 2] = inst.keypoints[:, 2]
        sure = kps[:, 2] > KEYPOINT_FLOOR
        if sure.sum() >= MIN_KEYPOINTS:
            box = np.concatenate([kps[sure, :2].min(0), kps[sure, :2].max(0)])
        else:
            y0, x0, y1, x1 = inst.box * MULTIPOSE_STRIDE
            box = np.array([x0 / dsx, y0 / dsy, x1 / dsx, y1 / dsy]) - 0.5
        people.append((kps, box, float(inst.score)))
    return people


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    area = lambda r: max(r[2] - r[0], 1e-6) * max(r[3] - r[1], 1e-6)  # noqa: E731
    return w * h / (area(a) + area(b) - w * h)


def merged(people: list) -> list:
    """MultiPose persons of several passes, best instance score first, less those whose keypoint
    box overlaps a better one's by SAME_PERSON_IOU (one person seen in two passes)."""
    out = []
    for p in sorted(people, key=lambda p: -p[2]):
        if all(_iou(p[1], q[1]) < SAME_PERSON_IOU for q in out):
            out.append(p)
    return out


def _multipose(people, est, sx, sy, centre_map=None) -> Detections:
    kept = [p for p in people if p[2] >= est.person_threshold][:est.max_persons]
    centres = np.array([(box[:2] + box[2:]) / 2 for _, box, _ in kept]).reshape(-1, 2)
    sides = np.array([max(box[2] - box[0], box[3] - box[1], 1.0) / est.rescale_fraction
                      for _, box, _ in kept])
    scaled = (centres + 0.5) * (sx, sy) - 0.5
    peaks = np.column_stack([maps.to_map(scaled), [s for _, _, s in kept]]).reshape(-1, 3)
    check = ([(box, score) for _, box, score in people if score >= est.person_check]
             if est.person_check > 0 else None)
    return Detections(scaled, peaks, np.zeros((0, 0), np.float32) if centre_map is None
                      else centre_map, sides, check)


def on_a_person(joints: np.ndarray, people: list[tuple[np.ndarray, float]],
                threshold: float) -> bool:
    """Whether the mean of the confident joints ((14, 3), score >= ``threshold``; all joints if
    none is) of a skeleton lies within half the keypoint extent (the larger side of the
    keypoint box) of the centre of one of the ``people``."""
    sure = joints[:, 2] >= threshold
    xy = joints[sure if sure.any() else slice(None), :2].mean(0)
    for box, _ in people:
        half = max(box[2] - box[0], box[3] - box[1]) / 2
        if np.all(np.abs(xy - (box[:2] + box[2:]) / 2) <= half):
            return True
    return False
