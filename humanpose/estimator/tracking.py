"""Person tracking (stable ids across frames) and Kalman smoothing of the joints.

:class:`Tracker` takes the persons the estimator found in one frame and

* associates them with the tracks of the previous frames: the cost of a pair is the distance
  between the detection's centre and the track's centre predicted to this frame (a constant
  velocity Kalman filter), divided by the mean box diagonal of the two; pairs further apart than
  ``tracking.max_distance`` box diagonals are never matched; the rest is a Hungarian assignment
  (``scipy.optimize.linear_sum_assignment``);
* gates each pair by the joints (:func:`identity_jump`, the median over the joints scored >=
  ``tracking.min_score`` in both): a detection whose joints lie further from the track's last
  measured joints than JUMP + SPEED x (seconds since) person sizes (further than a walker
  gets), or further from where the track's motion takes them than JUMP + DRIFT x seconds,
  or whose joints' box overlaps the track's last one (moved or not) less than MIN_OVERLAP
  (IoU), is someone else: a crop that slid onto a neighbour, a skeleton spanning two people.
  Such a detection starts a new track and the old track goes unmatched (it coasts and is
  dropped as below), so an id never passes from one person to another (a person whose track
  was wrongly ended gets a new id: a gap, never someone else's curve).  The track's motion is
  its joints' velocity (the median of their moves between matched frames, averaged with the
  last estimate), not its centre's: a tracked crop's centre need not be where its joints are;
* given the frame's size, ends a track whose person walked out of it (:func:`left_frame`: the
  centre of its last joints, moved by its motion, is outside), so that someone coming in
  there is someone new;
* starts a new track (ids 0, 1, 2, ... never reused until :meth:`Tracker.reset`) for every
  unmatched detection, and drops a track that went unmatched for more than
  ``tracking.max_missed`` frames in a row;
* with ``tracking.smoothing``, runs a constant-velocity Kalman filter per track and joint
  (filterpy's ``KalmanFilter`` equations batched in numpy over a track's centre and joints,
  :class:`.kalman.ConstantVelocity`), state (x, y, vx, vy) in frame pixels, constant velocity
  with white-noise acceleration:
  ``Q = Q_continuous_white_noise(dt, process_noise)`` (process_noise = acceleration spectral
  density in px²/s³, so the model is the same whatever the frame rate; ``dt`` comes from the
  frame timestamps), ``R = measurement_noise`` px² per axis.  A joint filter starts at the
  joint's first measurement with score >= ``tracking.min_score``; a lower-scored measurement is
  skipped (predict only: the joint keeps its predicted position and gets its last measured
  score times ``SCORE_DECAY`` per skipped frame); after more than ``max_missed`` skipped frames
  the joint filter is dropped and the raw measurement is passed through until the joint is
  measured again.

``update`` fills ``person.track_id`` and, when smoothing, ``person.raw_joints`` (the measured
(14, 3) joints) and ``person.joints`` (filtered x, y; measured score, or the decayed score of a
predicted joint: ``raw_joints[j, 2] < min_score`` tells a predicted joint from a measured one).

:meth:`Tracker.predicted` gives, for the tracks matched on the last frame, their joints
predicted to a new frame's time (each joint's Kalman state; without smoothing, or for a joint
without a filter, the last measurement moved by the track centre's velocity), their last box and
how far the person moves meanwhile (the median of its joints' Kalman velocities): the
estimator crops each tracked person from them
instead of running the person detector (tracking-driven crops).
"""
from __future__ import annotations

import numpy as np
from filterpy.common import Q_continuous_white_noise
from scipy.optimize import linear_sum_assignment

from ..config import TrackingConfig
from ..skeleton import NUM_JOINTS
from .kalman import ConstantVelocity
from .result import Person

MIN_DT = 1e-3        # s; a repeated or backwards timestamp predicts over this instead of dt <= 0
MAX_DT = 1.0         # s; longer gaps (pause, dropped frames) are predicted over one second only
SCORE_DECAY = 0.5    # a predicted (skipped) joint's score: last measured score * 0.5 per frame
JUMP = 0.2           # identity gate: joints further than this share of the person's size ...
SPEED = 1.0          # ... plus this share per second since it was seen (a walker's pace), or
DRIFT = 0.5          # ... off where its velocity takes it by more than JUMP + this share per s,
MIN_OVERLAP = 0.2    # or joints' boxes (at least half as wide as high) overlapping less (IoU)
MIN_GATE_JOINTS = 4  # joints scored >= min_score in both needed to judge (fewer: centres only)
_BIG = 1e9
_CENTRE = np.zeros(1, np.intp)   # the centre's row in a track's filters (the joints: 1 + j)


def _transition(dt: float) -> np.ndarray:
    F = np.eye(4)
    F[0, 2] = F[1, 3] = dt
    return F


class _Track:
    __slots__ = ("id", "kf", "diag", "time", "missed", "joint_missed",
                 "joint_score", "last_joints", "last_box", "last_scale")

    def __init__(self, track_id: int, person: Person, timestamp: float, measurement_noise: float):
        self.id = track_id
        # row 0: the centre's filter (started now); rows 1 + j: joint j's (when measured)
        self.kf = ConstantVelocity(1 + NUM_JOINTS, measurement_noise)
        self.kf.start(_CENTRE, np.asarray(person.centre, np.float64)[:2][None])
        self.diag = _box_diag(person.box)
        self.time = timestamp                  # when the filters were last advanced
        self.missed = 0                        # frames in a row without a detection
        self.joint_missed = np.zeros(NUM_JOINTS, np.int64)
        self.joint_score = np.zeros(NUM_JOINTS)
        self.last_joints = np.array(person.joints, np.float64)   # the last measured (14, 3)
        self.last_box = np.array(person.box, np.float64)          # and the last box (crop)
        self.last_scale = float(person.crop_scale)                # crop pixels per frame pixel

    def predicted_centre(self, dt: float) -> np.ndarray:
        x = self.kf.x[0]
        return np.array([x[0] + x[2] * dt, x[1] + x[3] * dt])


def _joint_box(xy: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) around (K, 2) joints, widened (or heightened) about its centre to at
    least half its longer side: a walker seen from the side is a thin box."""
    lo, hi = xy.min(0), xy.max(0)
    half = np.maximum(hi - lo, (hi - lo).max() / 2.0) / 2.0
    mid = (lo + hi) / 2.0
    return np.concatenate([mid - half, mid + half])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w, h = np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2])
    inter = max(w, 0.0) * max(h, 0.0)
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    return float(inter / union) if union > 0 else 0.0


def identity_jump(last: np.ndarray, joints: np.ndarray, dt: float, min_score: float,
                  shift=(0.0, 0.0)) -> bool:
    """Whether (14, 3) ``joints`` are someone else than the person whose last measured joints
    were ``last``, ``dt`` seconds earlier, and whose velocity would have moved it by ``shift``
    (2,) px since (see the module doc); False when fewer than MIN_GATE_JOINTS joints are scored
    >= ``min_score`` in both (nothing to judge by)."""
    last, joints = np.asarray(last, np.float64), np.asarray(joints, np.float64)
    seen_last = (last[:, 2] >= min_score) & np.isfinite(last[:, :2]).all(1)
    seen_now = (joints[:, 2] >= min_score) & np.isfinite(joints[:, :2]).all(1)
    both = seen_last & seen_now
    if both.sum() < MIN_GATE_JOINTS:
        return False
    dt = max(dt, 0.0)
    size = max(float(np.ptp(last[seen_last, :2], axis=0).max()), 1.0)
    way = joints[both, :2] - last[both, :2]
    shift = np.asarray(shift, np.float64)
    if (np.median(np.linalg.norm(way, axis=1)) > (JUMP + SPEED * dt) * size   # beyond a walk
            or np.median(np.linalg.norm(way - shift, axis=1)) > (JUMP + DRIFT * dt) * size):
        return True        # ... or off where its velocity takes it
    box = _joint_box(joints[seen_now, :2])
    overlap = max(_iou(_joint_box(last[seen_last, :2] + k), box) for k in (0.0, shift))
    return overlap < MIN_OVERLAP


def left_frame(last: np.ndarray, shift, frame_shape: tuple[int, int], min_score: float) -> bool:
    """Whether the person whose last measured (14, 3) joints were ``last`` has walked out of a
    frame of ``frame_shape`` (h, w): the centre of those joints, moved by ``shift``, is outside."""
    last = np.asarray(last, np.float64)
    seen = (last[:, 2] >= min_score) & np.isfinite(last[:, :2]).all(1)
    if not seen.any():
        return False
    x, y = (last[seen, :2].min(0) + last[seen, :2].max(0)) / 2.0 + np.asarray(shift, np.float64)
    h, w = frame_shape[:2]
    return not (0.0 <= x <= w and 0.0 <= y <= h)


def _box_diag(box) -> float:
    b = np.asarray(box, dtype=np.float64)
    return float(max(np.hypot(b[2] - b[0], b[3] - b[1]), 1.0))


class Tracker:
    """Gives persons stable ``track_id`` s and smooths their joints; see the module docstring."""

    def __init__(self, config: TrackingConfig | None = None):
        self.config = config if config is not None else TrackingConfig()
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._q_cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        self._motion: dict[int, np.ndarray] = {}   # track id -> its joints' velocity, px/s

    # ------------------------------------------------------------------ public
    @property
    def track_ids(self) -> list[int]:
        """Ids of the live tracks (matched this frame or missed for at most max_missed frames)."""
        return [t.id for t in self._tracks]

    def reset(self) -> None:
        """Forget all tracks (seek, new source); ids start again at 0."""
        self._tracks.clear()
        self._motion.clear()
        self._next_id = 0

    def predicted(self, timestamp: float) -> list[tuple]:
        """(track id, last measured (14, 3) joints, (14, 2) joints predicted to ``timestamp``,
        last box (x0, y0, x1, y1), its crop scale, (2,) shift of the person predicted to
        ``timestamp``) of every track matched on the last frame (tracks coasting on predictions
        are left out: they were lost)."""
        out = []
        for track in self._tracks:
            if track.missed:
                continue
            dt = self._dt(track, float(timestamp))
            last = track.last_joints
            x, on = track.kf.x, track.kf.on[1:]
            xy = last[:, :2] + x[0, 2:4] * dt
            xy[on] = x[1:][on, :2] + x[1:][on, 2:4] * dt
            # the person's motion: the median of its joints' Kalman velocities (the centre's
            # without joint filters); zero-mean noise on a still person, so the crop stays put
            speeds = x[1:][on, 2:4]
            speed = np.median(speeds, axis=0) if len(speeds) >= 3 else x[0, 2:4]
            out.append((track.id, last.copy(), xy, track.last_box.copy(), track.last_scale,
                        speed * dt))
        return out

    def update(self, persons: list[Person], timestamp: float,
               frame_shape: tuple[int, int] | None = None) -> list[Person]:
        """Track (and smooth) the persons of the frame at ``timestamp`` seconds (of
        ``frame_shape`` (h, w): the tracks of persons who walked out of it end).

        The Person objects are updated in place and the same list is returned.  With
        ``enabled: false`` they are returned untouched (``track_id`` stays -1).
        """
        cfg = self.config
        if not cfg.enabled:
            return persons
        timestamp = float(timestamp)
        for i, p in enumerate(persons):
            if np.shape(p.joints) != (NUM_JOINTS, 3):
                raise ValueError(f"tracking: person {i} has joints of shape {np.shape(p.joints)}, "
                                 f"expected ({NUM_JOINTS}, 3)")

        if frame_shape is not None:     # who walked out of the frame is gone
            self._tracks = [t for t in self._tracks if not left_frame(
                t.last_joints, self._shift(t, min(max(timestamp - t.time, 0.0), MAX_DT)),
                frame_shape, cfg.min_score)]
        pairs, new = self._associate(persons, timestamp)
        matched = set()
        for ti, pi in pairs:
            self._learn_motion(self._tracks[ti], persons[pi].joints, timestamp)
            track = self._tracks[ti]
            matched.add(ti)
            self._advance(track, persons[pi], timestamp)

        survivors = []
        for ti, track in enumerate(self._tracks):
            if ti in matched:
                survivors.append(track)
                continue
            track.missed += 1
            track.joint_missed += 1
            if track.missed <= cfg.max_missed:
                survivors.append(track)
        self._tracks = survivors
        self._motion = {t.id: self._motion[t.id] for t in survivors if t.id in self._motion}

        for pi in new:
            p = persons[pi]
            track = _Track(self._next_id, p, timestamp, cfg.measurement_noise)
            self._next_id += 1
            self._tracks.append(track)
            p.track_id = track.id
            if cfg.smoothing:
                self._smooth(track, p, None, None)
        return persons

    # ----------------------------------------------------------------- helpers
    def _dt(self, track: _Track, timestamp: float) -> float:
        return min(max(timestamp - track.time, MIN_DT), MAX_DT)

    def _model(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """F and Q for a step of ``dt`` seconds (shared by every filter advanced by ``dt``)."""
        key = round(dt, 6)
        fq = self._q_cache.get(key)
        if fq is None:
            Q = Q_continuous_white_noise(dim=2, dt=key, spectral_density=self.config.process_noise,
                                         block_size=2, order_by_dim=False)
            fq = (_transition(key), Q)
            if len(self._q_cache) > 256:
                self._q_cache.clear()
            self._q_cache[key] = fq
        return fq

    def _associate(self, persons: list[Person], timestamp: float):
        """(track index, person index) pairs and the indices of unmatched persons."""
        if not self._tracks or not persons:
            return [], list(range(len(persons)))
        gate = self.config.max_distance
        cost = np.empty((len(self._tracks), len(persons)))
        det_c = np.array([np.asarray(p.centre, np.float64)[:2] for p in persons])
        det_d = np.array([_box_diag(p.box) for p in persons])
        for ti, track in enumerate(self._tracks):
            c = track.predicted_centre(self._dt(track, timestamp))
            cost[ti] = np.hypot(*(det_c - c).T) / ((track.diag + det_d) / 2)
            for pi, p in enumerate(persons):       # the identity gate, on the joints
                if cost[ti, pi] <= gate and self._jumped(track, p.joints, timestamp):
                    cost[ti, pi] = _BIG
        cost[cost > gate] = _BIG
        rows, cols = linear_sum_assignment(cost)
        pairs = [(r, c) for r, c in zip(rows, cols) if cost[r, c] <= gate]
        used = {c for _, c in pairs}
        return pairs, [i for i in range(len(persons)) if i not in used]

    def jumped(self, track_id: int, joints: np.ndarray, timestamp: float) -> bool:
        """Whether (14, 3) ``joints`` at ``timestamp`` fail the identity gate of the live track
        ``track_id`` (:func:`identity_jump`); False for an unknown id."""
        track = next((t for t in self._tracks if t.id == track_id), None)
        return track is not None and self._jumped(track, joints, float(timestamp))

    def _jumped(self, track: _Track, joints: np.ndarray, timestamp: float) -> bool:
        # since the track was last seen (a backwards timestamp: 0, judged as the next frame)
        seen = min(max(timestamp - track.time, 0.0), MAX_DT)
        return identity_jump(track.last_joints, joints, seen, self.config.min_score,
                             self._shift(track, seen))

    def _shift(self, track: _Track, seconds: float) -> np.ndarray:
        """How far the track's person moves in ``seconds`` at its joints' velocity (not the
        centre's: a crop's centre need not be where its joints are)."""
        return self._motion.get(track.id, np.zeros(2)) * seconds

    def _learn_motion(self, track: _Track, joints: np.ndarray, timestamp: float) -> None:
        """Update the track's joints' velocity (the median of its joints' moves, averaged with
        the last one) with ``joints`` at ``timestamp``, before they become its last joints."""
        dt = timestamp - track.time
        last, joints = track.last_joints, np.asarray(joints, np.float64)
        both = ((last[:, 2] >= self.config.min_score) & (joints[:, 2] >= self.config.min_score)
                & np.isfinite(last[:, :2]).all(1) & np.isfinite(joints[:, :2]).all(1))
        if dt < MIN_DT or both.sum() < MIN_GATE_JOINTS:
            return
        v = np.median(joints[both, :2] - last[both, :2], axis=0) / dt
        old = self._motion.get(track.id)
        self._motion[track.id] = v if old is None else (old + v) / 2.0

    def _advance(self, track: _Track, person: Person, timestamp: float) -> None:
        F, Q = self._model(self._dt(track, timestamp))
        if not self.config.smoothing:    # (with smoothing, in one batch with the joints)
            track.kf.predict(_CENTRE, F, Q)
            track.kf.update(_CENTRE, np.asarray(person.centre, np.float64)[:2][None])
        track.diag = _box_diag(person.box)
        track.time = timestamp
        track.missed = 0
        track.last_joints = np.array(person.joints, np.float64)
        track.last_box = np.array(person.box, np.float64)
        track.last_scale = float(person.crop_scale)
        person.track_id = track.id
        if self.config.smoothing:
            self._smooth(track, person, F, Q)
        else:
            track.joint_missed[:] = 0

    def _smooth(self, track: _Track, person: Person, F, Q) -> None:
        """Advance the centre and joint filters of ``track`` by F, Q (None: a new track, whose
        centre filter has just started) with ``person``'s centre and joints, all rows in one
        batch; set person.raw_joints / person.joints.

        Per joint: a measurement (score >= min_score, finite) starts a filter or updates it; a
        joint not measured keeps its filter's prediction (score decayed) for up to max_missed
        frames, then its filter is dropped and the raw joint passes through."""
        cfg = self.config
        kf = track.kf
        raw = np.asarray(person.joints)
        out = np.array(raw, copy=True)
        on = kf.on[1:].copy()
        with np.errstate(invalid="ignore"):
            measured = ((raw[:, 2] >= cfg.min_score) & np.isfinite(raw[:, 0])
                        & np.isfinite(raw[:, 1]))
        update = measured & on
        coast = ~measured & on
        if F is not None:
            track.joint_missed[coast] += 1
        drop = coast & (track.joint_missed > cfg.max_missed)
        coast &= ~drop
        if F is not None:
            centre = np.asarray(person.centre, np.float64)[:2]
            kf.predict(np.concatenate([_CENTRE, 1 + np.flatnonzero(update | coast)]), F, Q)
            kf.update(np.concatenate([_CENTRE, 1 + np.flatnonzero(update)]),
                      np.vstack([centre, raw[update, :2]]))
        kf.stop(1 + np.flatnonzero(drop))           # lost: the raw measurement passes through
        start = measured & ~on
        kf.start(1 + np.flatnonzero(start), raw[start, :2])
        track.joint_missed[measured] = 0
        track.joint_score[measured] = raw[measured, 2]
        shown = update | coast
        out[shown, :2] = kf.x[1:][shown, :2]
        out[coast, 2] = track.joint_score[coast] * SCORE_DECAY ** track.joint_missed[coast]
        person.raw_joints = raw
        person.joints = out
