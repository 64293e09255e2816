"""Tracking-driven crops (the BlazePose / MoveNet way; :class:`TrackedCrops`): with tracking on,
``tracking.detect_every`` = N > 1 and no given centres, the tracked persons are cut from the
frame where the Kalman state predicts them, and the person detector does not run.

When every track matched on the previous frame had a confident pose (:func:`.decode.pose_score`
at least ``max(min_pose_score, MIN_TRACK_SCORE)``), each tracked person is cut from the frame
where :meth:`.tracking.Tracker.predicted` puts it (:func:`track_crop`): its last crop moved by
the track's predicted motion while its predicted joints fill about ``rescale_fraction`` of it,
else the window that its predicted joints fill to that fraction (the right scale, so no rescale
pass), all in one batch (:meth:`TrackedCrops.plan`).  The detector runs on every N-th frame (for
newcomers), when no track is confident, and at once, on the same frame, when a tracked crop's
pose score drops below ``min_pose_score`` (a lost track) or its pose fails its track's identity
gate (:meth:`TrackedCrops.lost`, :func:`.tracking.identity_jump`: the crop slid onto someone
else; that crop is left out and the detector's peaks there are newcomers).  On a detector frame
with tracks, a detector centre that falls in a track's predicted box is that track's (merged
before the pose pass), unless the box holds detections side by side, more than SPLIT_DISTANCE x
its larger side apart across (one skeleton across two people side by side: the track's crop is
left out and its detections are newcomers, :meth:`TrackPlan.covers`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..config import EstimatorConfig, TrackingConfig
from . import maps
from .buffers import Buffers
from .crops import RESCALE_TOLERANCE, Crop, scaled_size
from .decode import person_extent, pose_score
from .result import Person
from .tracking import Tracker

MIN_TRACK_SCORE = 0.3      # a tracked pose scored below this (or min_pose_score) needs the detector
SPLIT_DISTANCE = 0.3       # detections this far apart across (x the box's larger side) in one
                           # track's box are two people


def track_crop(bgr: np.ndarray, scaled: tuple, joints_xy: np.ndarray, box: np.ndarray,
               scale: float, shift: np.ndarray, fraction: float, b: int,
               out: np.ndarray | None = None) -> Crop:
    """The crop of a tracked person: its last crop (``box`` in frame pixels, ``scale`` crop
    pixels per frame pixel) moved by the track's predicted ``shift`` and cut the same way (at
    the scale of ``scaled`` = :func:`scaled_size` (sx, sy, shape) as the detector path cuts it,
    or as a scaled window as the rescale pass cuts it: on a still person the very same crop), as
    long as the person's size (the box of its predicted joints) stays within RESCALE_TOLERANCE of
    ``fraction`` of it; else the window around those joints that they fill to ``fraction``.
    Keeping the last crop, not re-fitting it to the joints on every frame, keeps the errors of
    one frame's joints out of the next frame's crop."""
    centre, size = person_extent(joints_xy)
    size = max(size, float(maps.STRIDE))
    side = float(max(box[2] - box[0], box[3] - box[1]))
    ratio = size / (fraction * side) if side > 0 else 0.0
    if ratio <= 0 or abs(np.log(ratio)) > np.log(RESCALE_TOLERANCE):
        return Crop.rescaled(bgr, centre, size / fraction, b, out)
    moved = (box[:2] + box[2:]) / 2 + shift
    sx, sy, _ = scaled
    if abs(scale - sy) <= 1e-9 * sy:          # last cut at the scaled frame's scale: again so
        return Crop.centred(bgr, (moved + 0.5) * (sx, sy) - 0.5, b, scaled, out)
    return Crop.rescaled(bgr, moved, side, b, out)


@dataclasses.dataclass
class TrackPlan:
    """The tracked persons of a frame: their crops, joint boxes (x0, y0, x1, y1, frame pixels),
    box centres, last pose scores and track ids; whether the detector must run, and why."""
    crops: list = dataclasses.field(default_factory=list)
    ids: list = dataclasses.field(default_factory=list)
    boxes: list = dataclasses.field(default_factory=list)
    scores: list = dataclasses.field(default_factory=list)
    centres: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 2)))
    detect: bool = False
    reason: str = "tracked"

    def drop(self, tracks: list[int]) -> None:
        """Leave out the tracks at these indices (their crops slid onto someone else)."""
        keep = [t for t in range(len(self.crops)) if t not in set(tracks)]
        for name in ("crops", "ids", "boxes", "scores"):
            setattr(self, name, [getattr(self, name)[t] for t in keep])
        self.centres = self.centres[keep].reshape(-1, 2)

    def covers(self, xy: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Which of the (K, 2) frame points (detector centres) fall in a track's joint box, and
        which tracks to cut from the detections instead: a track whose box holds detections
        side by side, farther apart across than SPLIT_DISTANCE x the box's larger side, is
        likely one skeleton across two people walking together (the second would never get a
        track of its own); its detections then count as new persons and its own crop is left
        out of this frame.  (Two peaks one above the other, head and hips, are one tall person.)"""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        inside = np.zeros(len(xy), bool)
        split = []
        for t, bx in enumerate(self.boxes):
            mine = ((xy[:, 0] >= bx[0]) & (xy[:, 0] <= bx[2]) & (xy[:, 1] >= bx[1])
                    & (xy[:, 1] <= bx[3]))
            pts = xy[mine]
            if len(pts) > 1 and (np.ptp(pts[:, 0])
                                 > SPLIT_DISTANCE * max(bx[3] - bx[1], bx[2] - bx[0], maps.STRIDE)):
                split.append(t)
                continue
            inside |= mine
        return inside, split


class TrackedCrops:
    """The tracker, the frame size its tracks were made on and the frames since the detector
    last ran: which crops the tracks give a frame, and the tracking step itself."""

    def __init__(self, config: TrackingConfig):
        self.tracker = Tracker(config)
        self.shape: tuple[int, int] | None = None   # frame size the tracks were made on
        self.since_detect = 0                        # frames since the person detector ran

    def retune(self, config: TrackingConfig) -> None:
        """New tracking settings: a new tracker (the tracks are reset)."""
        self.tracker = Tracker(config)

    def reset(self) -> None:
        """Forget the tracks (new source, seek)."""
        self.tracker.reset()
        self.since_detect = 0

    def plan(self, bgr: np.ndarray, timestamp: float, est: EstimatorConfig,
             trk: TrackingConfig, buffers: Buffers) -> TrackPlan | None:
        """The tracks' crops for this frame and whether the detector must run (see the module
        doc); None when tracking-driven crops are off (no tracking, detect_every 1)."""
        if not trk.enabled or trk.detect_every <= 1:
            return None
        if self.shape != bgr.shape[:2]:     # the tracks are reset: other people
            return TrackPlan(detect=True, reason="no track")
        floor = max(est.min_pose_score, MIN_TRACK_SCORE)
        tracks = self.tracker.predicted(timestamp)
        sure = [t for t in tracks if pose_score(t[1]) >= floor]
        plan = TrackPlan()
        scaled = scaled_size(bgr.shape, est.boxsize)
        for track_id, last, xy, box, scale, shift in sure:
            plan.ids.append(track_id)
            plan.crops.append(track_crop(bgr, scaled, xy, box, scale, shift,
                                         est.rescale_fraction, est.boxsize,
                                         buffers.crop(est.boxsize)))
            plan.boxes.append(np.concatenate([xy.min(0), xy.max(0)]))
            plan.scores.append(pose_score(last))
        plan.centres = np.array([(bx[:2] + bx[2:]) / 2 for bx in plan.boxes]).reshape(-1, 2)
        if not tracks:
            plan.detect, plan.reason = True, "no track"
        elif len(sure) < len(tracks):
            plan.detect, plan.reason = True, "pose score dropped"
        elif self.since_detect + 1 >= trk.detect_every:
            plan.detect, plan.reason = True, f"every {trk.detect_every}"
        return plan

    def lost(self, plan: TrackPlan, joints: list[np.ndarray], timestamp: float,
             min_pose_score: float) -> bool:
        """Whether the tracked crops' ``joints`` need the detector at once: a pose scored below
        ``min_pose_score`` (a lost track) or one that fails its track's identity gate (its crop
        is left out of ``plan``).  Sets ``plan.reason``."""
        if min(pose_score(j) for j in joints) < min_pose_score:
            plan.reason = "pose score dropped"
            return True
        jumped = [n for n, (t, j) in enumerate(zip(plan.ids, joints))
                  if self.tracker.jumped(t, j, timestamp)]
        if jumped:      # its crop slid onto someone else: cut newcomers from the detector's peaks
            plan.drop(jumped)
            plan.reason = "identity jump"
            return True
        return False

    def update(self, persons: list[Person], timestamp: float,
               shape: tuple[int, int]) -> list[Person]:
        """The tracking step: track ids and smoothed joints (:meth:`.tracking.Tracker.update`);
        a frame of another size (another camera or picture: other people) resets the tracks."""
        if self.shape != shape:
            self.tracker.reset()
            self.shape = shape
        return self.tracker.update(persons, timestamp, shape)
