"""The inference pipeline: frame -> persons with 14 joints each (:class:`PoseEstimator`).

Steps (``PoseResult.timings`` has the milliseconds of each: preprocess, person, pose, post,
track, total):

1. *preprocess*: the frame (BGR, grayscale or BGRA uint8, any size) as BGR and the scale of
   the *scaled frame*, the frame at height ``boxsize`` (sx = round(W * s) / W, sy = boxsize / H,
   :func:`scaled_size`; no scaled copy is made: the crops are cut from the frame itself), plus
   on a tracked frame the tracks' crops;
2. *person*: the person stage (:mod:`.persons`): the person net sees the frame scaled so that
   its longer side is ``estimator.detector_size`` (0: following the frame); MoveNet MultiPose
   gives persons with a size (cut at it at once, no crop levels) and the person check, a
   centre-map net gives centres (local maxima above ``estimator.person_threshold``);
3. *pose*: for every centre a boxsize x boxsize crop of the scaled frame, placed at the integer
   offset (ox, oy) nearest to centring it (grey 128 outside the frame), cut from the frame with
   one cv2.warpAffine (:func:`cut`) into a reused image, normalised to x / 256 - 0.5 straight
   into the reused batch, plus the Gaussian centre map as 4th channel; all crops go through the
   pose net in ONE batch; with ``estimator.crop_levels`` = L > 1 a person whose pose there is
   small (under LEVEL_EXTENT of the crop) or unsure (under LEVEL_SCORE) is also cut as windows
   of 1/2 ... 1/2^(L-1) of the frame height, scaled to boxsize, in one more batch (the detector
   gives no size: a walker a sixth of the frame high is a few cells of a frame-high crop), and
   of its crops the one whose :func:`pose_score` is best is kept;
4. *post*: each joint is the sub-cell maximum of its last-stage map, searched over the cells
   inside the frame (not the grey padding) and clipped to the frame (with
   ``estimator.flip_test`` the maps are first averaged with those of the mirrored crops,
   :func:`flip_averaged`); map -> crop pixels with
   :func:`maps.from_map`, + (ox, oy) -> scaled-frame pixels, then x = (xs + 0.5) / sx - 0.5
   (the pixel-centre convention of cv2.resize) -> frame pixels;
   *scale search* (``estimator.scale_search`` = d > 0, part of the pose time, after rescale):
   every crop is estimated again zoomed by 1 - d and 1 + d (windows of the frame with the same
   centre) and the maps, resampled onto its grid (:func:`zoomed_onto`), averaged with its own;
   *rescale* (``estimator.rescale``, part of the pose time): a person whose size (the larger
   side of the box around its joints) is off ``rescale_fraction`` x boxsize in its crop by more
   than RESCALE_TOLERANCE is cut again from the full frame, a window of size / fraction frame
   pixels centred on its joints resized to boxsize x boxsize (:meth:`Crop.rescaled`), and
   estimated again (one more batch): the nets are trained on persons of 0.3 to 0.95 of the
   crop, 0.65 on average, and a far or tall person otherwise fills too little or too much of it;
   *duplicates* (detector mode only): two detections whose joints lie on the same places (median
   joint distance under DUPLICATE_DISTANCE x the smaller person's size, see :func:`duplicates`)
   are one person seen twice (a tall person can give two centre peaks); the one whose detected
   centre is further from the centre of its joints is dropped; of two that share SHARED_JOINTS
   joints but not the rest, one is a wrong skeleton built from the other's limbs, and the one
   with the lower mean joint score is dropped (of equal ones the larger); so is a detection
   whose :func:`pose_score` is below ``estimator.min_pose_score`` (the pose net finds no person
   there: a false detection on a bollard, a lamp post or a crowd in the background);
5. *track*: optional tracking ids and Kalman smoothing (:class:`tracking.Tracker`).

*Tracking-driven crops* (the BlazePose / MoveNet way; tracking on, ``tracking.detect_every`` =
N > 1, no given centres): when every track matched on the previous frame had a confident pose
(:func:`pose_score` at least ``max(min_pose_score, MIN_TRACK_SCORE)``), each tracked person is
cut from the frame where the Kalman state predicts it (:meth:`tracking.Tracker.predicted`,
:func:`track_crop`): its last crop moved by the track's predicted motion while its predicted
joints fill about ``rescale_fraction`` of it, else the window that its predicted joints fill to
that fraction (the right scale, so no rescale pass), all in one batch; the person detector
does not run (nor the boxsize scaling of the frame).  The detector runs on every N-th
frame (for newcomers), when no track is confident, and at once, on the same frame, when a
tracked crop's pose score drops below ``min_pose_score`` (a lost track) or its pose fails its
track's identity gate (:func:`tracking.identity_jump`: the crop slid onto someone else; that
crop is left out and the detector's peaks there are newcomers).  On a detector frame
with tracks, a detector centre that falls in a track's predicted box is that track's (merged
before the pose pass), unless the box holds detections side by side, more than SPLIT_DISTANCE x
its larger side apart across (one skeleton across two people side by side: the track's crop is
left out and its detections are newcomers, :meth:`TrackPlan.covers`); the tracks' crops and the
newcomers' go through the pose net in one batch, and only the newcomers get the rescale pass.
``PoseResult.timings["tracked"]`` is 1 on a frame without the detector, ``PoseResult.path`` says
which path ran and why.
"""
from __future__ import annotations

import dataclasses
import threading
import time
import warnings

import numpy as np
from torch import nn

from ..config import Config
from ..skeleton import NUM_JOINTS
from . import maps
from .backends import make_backend
from .buffers import Buffers
# frames, crops and map decoding live in crops.py and decode.py; their names stay importable
# from here (the CLI, the trainer, the tools and the tests import them from the pipeline)
from .crops import (DETECTOR_STRIDE, PAD_VALUE, RESCALE_TOLERANCE, Crop,  # noqa: F401
                    TrackPlan, crop, crop_offset, cut, detector_frame, frame_cells, normalise,
                    pad_to_stride, scale_frame, scaled_size, to_bgr, track_crop, zoomed_onto)
from .decode import (DUPLICATE_DISTANCE, POSE_SCORE_JOINTS, SHARED_DISTANCE,  # noqa: F401
                     SHARED_JOINTS, duplicates, flip_averaged, joint_peaks, person_extent,
                     pose_score)
from .persons import detect, on_a_person
from .result import Person, PoseResult

BOXSIZE_RANGE = (64, 640)
LEVEL_EXTENT = 0.35        # crop levels: a new person whose joints' box is under this part of the
LEVEL_SCORE = 0.6          # frame-high crop, or whose pose scores under this, is also cut smaller;
LEVEL_KEEP_SCORE = 0.7     # a smaller crop is kept only when its pose scores this much
                           # (vtest: walkers 0.73-0.86; tripod, bollard, jacket on the grass 0.61-0.69)
MIN_TRACK_SCORE = 0.3      # a tracked pose scored below this (or min_pose_score) needs the detector


def _person_maps(stage_maps: list[np.ndarray], n: int) -> np.ndarray:
    """(stages, C, h, w) float32 maps of person ``n``: one copy, for the result to keep."""
    return np.stack([s[n] for s in stage_maps]).astype(np.float32, copy=False)


class Cancelled(RuntimeError):
    """An estimate stopped by :meth:`PoseEstimator.cancel` (between two net passes)."""


class PoseEstimator:
    """Person detection + per-person pose estimation (+ tracking) on single frames."""

    def __init__(self, cfg: Config, person_model: nn.Module | None = None,
                 pose_model: nn.Module | None = None):
        if person_model is None or pose_model is None:
            from ..store import load_named
            models_dir = cfg.resolve(cfg.model.models_dir)
            if person_model is None:
                person_model = load_named(cfg.model.person_model, models_dir, "person")
            if pose_model is None:
                pose_model = load_named(cfg.model.pose_model, models_dir, "pose")
        for model, kind in ((person_model, "person"), (pose_model, "pose")):
            if getattr(model, "kind", None) != kind:
                raise ValueError(f"the {kind} model is a {getattr(model, 'kind', 'unknown')!r} "
                                 f"net, expected a {kind!r} net")
        self._lock = threading.RLock()
        self._cancelled = threading.Event()
        self._cfg = dataclasses.replace(cfg)
        self.person_model = person_model.eval()
        self.pose_model = pose_model.eval()
        self._centre_maps: dict[int, np.ndarray] = {}
        self._buffers = Buffers(self.centre_map)     # reused net inputs and crop images
        self._person_backend = self._pose_backend = None
        self.set_backend(cfg.model.framework, cfg.model.device, cfg.model.precision)
        self.set_boxsize(cfg.estimator.boxsize)
        from .tracking import Tracker
        self._tracker = Tracker(self._cfg.tracking)
        self._tracked_shape: tuple[int, int] | None = None   # frame size the tracks were made on
        self._since_detect = 0          # frames since the person detector last ran

    # ------------------------------------------------------------------ settings
    @property
    def config(self) -> Config:
        return self._cfg

    @property
    def boxsize(self) -> int:
        return self._cfg.estimator.boxsize

    @property
    def backend_name(self) -> str:
        return self._pose_backend.name

    @property
    def backend_report(self) -> dict:
        """What ran, for reports: backend, each net's precision, the CPU and its int8 path."""
        from .cpu import cpu_summary
        return {"backend": self._pose_backend.name,
                "precision": {"person": self._person_backend.precision,
                              "pose": self._pose_backend.precision},
                "cpu": cpu_summary()}

    @property
    def backend_summary(self) -> str:
        """Short, for the window: "onnxruntime/cpu/int8 (pose int8, person fp32; AVX512-VNNI)"."""
        r = self.backend_report
        return (f"{r['backend']} (pose {r['precision']['pose']}, person "
                f"{r['precision']['person']}; {r['cpu']['int8_kernel']})")

    @property
    def backend_note(self) -> str | None:
        """Why the backend differs from the one asked for (e.g. CUDA not available, no int8
        export), or None; the person net's own note where it differs."""
        pose, person = self._pose_backend.note, self._person_backend.note
        if person and person != pose:
            return f"{pose}; person net: {person}" if pose else f"person net: {person}"
        return pose

    def configure(self, **changes) -> dict:
        """Change several options at once (names in :data:`.options.OPTIONS`: framework, device,
        boxsize, person_threshold, min_pose_score, flip_test, scale_search, rescale, tracking,
        smoothing, measurement_noise).  All or nothing: an unknown name (TypeError), a bad value
        (ConfigError) or an unavailable backend (BackendError) changes nothing.  The boxsize is
        rounded to a multiple of 8 with a warning.  A tracking change resets the tracks.
        Returns the changes as applied."""
        from .options import configured
        from .tracking import Tracker
        if "boxsize" in changes:
            changes["boxsize"] = self._rounded_boxsize(changes["boxsize"])
        cfg = configured(self._cfg, **changes)
        if (cfg.model.framework, cfg.model.device, cfg.model.precision) != (
                self._cfg.model.framework, self._cfg.model.device, self._cfg.model.precision):
            self.set_backend(cfg.model.framework, cfg.model.device, cfg.model.precision)
        with self._lock:
            if cfg.tracking != self._cfg.tracking:
                self._tracker = Tracker(cfg.tracking)
            self._cfg = dataclasses.replace(cfg, model=self._cfg.model)
        return changes

    @staticmethod
    def _rounded_boxsize(n) -> int:
        lo, hi = BOXSIZE_RANGE
        if isinstance(n, bool) or not isinstance(n, (int, float, np.integer, np.floating)):
            raise TypeError(f"boxsize must be a number, not {n!r}")
        if not lo <= n <= hi:
            raise ValueError(f"boxsize {n} is outside the allowed range {lo} to {hi}")
        rounded = int(maps.STRIDE * round(float(n) / maps.STRIDE))
        if rounded != n:
            warnings.warn(f"boxsize {n} is not a multiple of {maps.STRIDE}; using {rounded}",
                          stacklevel=3)
        return rounded

    def set_boxsize(self, n: int) -> int:
        """Set the box size (pixels); rounded to a multiple of 8 with a warning.  Returns it."""
        return self.configure(boxsize=n)["boxsize"]

    def set_backend(self, framework: str, device: str, precision: str | None = None) -> None:
        """Switch framework (onnxruntime | torch | opencv), device (cpu | cuda | auto) and
        precision (auto | fp32 | bf16 | int8; None keeps it); BackendError if not possible (the
        previous backend is kept then)."""
        precision = precision or self._cfg.model.precision
        person = make_backend(self.person_model, framework, device, precision)
        pose = make_backend(self.pose_model, framework, device, precision)
        with self._lock:
            self._person_backend, self._pose_backend = person, pose
            model = dataclasses.replace(self._cfg.model, framework=framework, device=device,
                                        precision=precision)
            self._cfg = dataclasses.replace(self._cfg, model=model)

    def set_pose_model(self, name: str) -> None:
        """Swap the pose net for ``name`` (manifest name or file, loaded as the constructor
        does) on the current backend; the person net and the tracks stay.  ModelError or
        BackendError leave the current net running."""
        from ..store import load_named
        model = load_named(name, self._cfg.resolve(self._cfg.model.models_dir), "pose").eval()
        m = self._cfg.model
        backend = make_backend(model, m.framework, m.device, m.precision)
        with self._lock:
            self.pose_model, self._pose_backend = model, backend
            self._cfg = dataclasses.replace(self._cfg, model=dataclasses.replace(m, pose_model=name))

    def set_tracking(self, enabled: bool, smoothing: bool, strength: float | None = None) -> None:
        """Turn tracking / smoothing on or off; ``strength`` sets tracking.measurement_noise
        (px², larger = smoother).  Resets the tracks."""
        changes = {"tracking": bool(enabled), "smoothing": bool(smoothing)}
        if strength is not None:
            changes["measurement_noise"] = float(strength)
        self.configure(**changes)
        with self._lock:
            self._tracker.reset()

    def cancel(self) -> None:
        """Stop for good (any thread, without the estimator's lock): the estimate under way
        raises :class:`Cancelled` before its next net pass (person net, pose batch, flip,
        rescale or scale-search pass), and so does every later one.  A window that closes does
        not wait for a whole estimate."""
        self._cancelled.set()

    def _check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise Cancelled("the estimator was cancelled")

    def reset(self) -> None:
        """Forget the tracks (new source, seek)."""
        with self._lock:
            self._tracker.reset()
            self._since_detect = 0

    def centre_map(self, boxsize: int | None = None) -> np.ndarray:
        b = boxsize or self.boxsize
        m = self._centre_maps.get(b)
        if m is None:
            m = self._centre_maps[b] = maps.centre_map(b, self._cfg.estimator.centre_sigma * b)
        return m

    # ------------------------------------------------------------------ inference
    def _pose_pass(self, crops: list[Crop]) -> list[np.ndarray] | None:
        """Stage maps (each (N, 15, h, w)) of the crops, in one batch; None if no crop."""
        if not crops:
            return None
        self._check_cancelled()
        b = crops[0].image.shape[0]
        batch = self._buffers.batch(len(crops), b)   # reused: no allocation per frame
        for k, c in enumerate(crops):     # normalise() written straight into the batch
            np.multiply(c.image.transpose(2, 0, 1), 1.0 / 256.0, out=batch[k, :3],
                        casting="unsafe")
        batch[:, :3] -= 0.5
        if self._cfg.estimator.flip_test:
            return flip_averaged(self._pose_backend, batch)
        return self._pose_backend(batch)

    def _first_pass(self, bgr: np.ndarray, scaled: tuple, tracked: list[Crop],
                    centres: np.ndarray, levels: int, sides: np.ndarray | None = None):
        """The crops of the tracked persons and of the new ``centres`` (scaled-frame pixels) and
        their stage maps.  A new person's crop is the boxsize-high frame around its centre, in
        one batch with the tracks' crops.  With ``levels`` > 1, a new person whose pose there
        is small (its joints' box under LEVEL_EXTENT of the crop) or unsure (pose score under
        LEVEL_SCORE) is also cut at 1/2, 1/4 ... of the frame height (a second batch) and the
        crop whose pose scores best is kept, a smaller one only when it scores at least
        LEVEL_KEEP_SCORE (cut small, street furniture can look like a person): the detector
        gives no size, and a walker a fifth of the frame high is a few map cells of a
        frame-high crop, where the pose net joins the limbs of several people
        (``../shared/media/vtest.avi``).  A person who fills the frame,
        as at a webcam, costs no second batch.  The rescale pass then fits the kept crop."""
        b = self._cfg.estimator.boxsize
        if sides is not None:    # sized detections (MultiPose): each cut at its size at once
            sx, sy, _ = scaled
            frame_centres = (np.asarray(centres).reshape(-1, 2) + 0.5) / (sx, sy) - 0.5
            crops = tracked + [Crop.rescaled(bgr, c, s, b, self._buffers.crop(b))
                               for c, s in zip(frame_centres, sides)]
            return crops, self._pose_pass(crops)
        crops = tracked + [Crop.centred(bgr, c, b, scaled, self._buffers.crop(b)) for c in centres]
        stage_maps = self._pose_pass(crops)
        if stage_maps is None or levels <= 1 or not len(centres):
            return crops, stage_maps
        shape, n0, fh = bgr.shape[:2], len(tracked), bgr.shape[0]
        sx, sy, _ = scaled

        def rated(cr: Crop, beliefs: np.ndarray) -> tuple[float, float]:
            joints = cr.joints(beliefs[:NUM_JOINTS], shape)
            return pose_score(joints), person_extent(joints)[1] * cr.ky / b
        first = [rated(crops[n0 + i], stage_maps[-1][n0 + i]) for i in range(len(centres))]
        todo = [i for i, (score, extent) in enumerate(first)
                if score < LEVEL_SCORE or extent < LEVEL_EXTENT]
        extra = [Crop.rescaled(bgr, (centres[i] + 0.5) / (sx, sy) - 0.5, fh / 2 ** k, b,
                               self._buffers.crop(b))
                 for i in todo for k in range(1, levels)]
        second = self._pose_pass(extra)
        if second is None:
            return crops, stage_maps
        stage_maps = [s.copy() for s in stage_maps]
        for t, i in enumerate(todo):
            rows = range(t * (levels - 1), (t + 1) * (levels - 1))
            scores = [first[i][0]] + [rated(extra[r], second[-1][r])[0] for r in rows]
            best = int(np.argmax(scores))
            if best and scores[best] >= LEVEL_KEEP_SCORE:
                r = rows[best - 1]
                crops[n0 + i] = extra[r]
                for s, s2 in zip(stage_maps, second):
                    s[n0 + i] = s2[r]
        return crops, stage_maps

    def _rescale_pass(self, bgr: np.ndarray, crops: list[Crop], stage_maps: list[np.ndarray],
                      skip: int = 0):
        """Second pose pass on the persons whose size (the box of their first-pass joints)
        is off the ``rescale_fraction`` of the box by more than RESCALE_TOLERANCE: their crop
        is cut again from the full frame so that they fill that fraction, and re-estimated.
        The first ``skip`` crops (cut from tracks, already at that fraction) are left alone.
        Returns (crops, stage maps, indices of the rescaled persons)."""
        est = self._cfg.estimator
        b = est.boxsize
        todo, new = [], []
        for n, cr in enumerate(crops):
            if n < skip:
                continue
            joints = cr.joints(stage_maps[-1][n, :NUM_JOINTS], bgr.shape[:2])
            centre, size = person_extent(joints)
            ratio = size * cr.ky / (est.rescale_fraction * b)
            if ratio <= 0 or abs(np.log(ratio)) <= np.log(RESCALE_TOLERANCE):
                continue
            todo.append(n)
            new.append(Crop.rescaled(bgr, centre, size / est.rescale_fraction, b,
                                     self._buffers.crop(b)))
        if not todo:
            return crops, stage_maps, []
        second = self._pose_pass(new)
        crops = list(crops)
        stage_maps = [s.copy() for s in stage_maps]
        for i, n in enumerate(todo):
            crops[n] = new[i]
            for s, s2 in zip(stage_maps, second):
                s[n] = s2[i]
        return crops, stage_maps, todo

    def _scale_search_pass(self, bgr: np.ndarray, crops: list[Crop],
                           stage_maps: list[np.ndarray]) -> list[np.ndarray]:
        """Every crop estimated again zoomed by 1 - d and 1 + d (d = ``scale_search``), on
        windows of the frame with the same centre (one batch); their maps are resampled onto
        the crop's grid and averaged with its own where they cover it (:func:`zoomed_onto`)."""
        d = self._cfg.estimator.scale_search
        b = crops[0].image.shape[0]
        extra = []
        for cr in crops:
            x0, y0, x1, y1 = cr.box()
            centre = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
            for z in (1.0 - d, 1.0 + d):
                extra.append(Crop.rescaled(bgr, centre, b / (z * cr.ky), b,
                                           self._buffers.crop(b)))
        more = np.stack(self._pose_pass(extra), axis=1)             # (2N, stages, C, h, w)
        total = np.stack(stage_maps, axis=1).astype(np.float32, copy=False)  # (N, stages, C, h, w)
        weight = np.ones((len(crops),) + total.shape[3:], np.float32)
        for n, cr in enumerate(crops):
            for k in (2 * n, 2 * n + 1):       # every stage's maps resampled in one warp
                maps_k, cover = zoomed_onto(more[k].reshape(-1, *more.shape[3:]), extra[k], cr)
                total[n] += maps_k.reshape(more.shape[1:])
                weight[n] += cover
        total /= weight[:, None, None]
        return [total[:, i] for i in range(total.shape[1])]

    def estimate(self, frame: np.ndarray, timestamp: float | None = None, frame_index: int = 0,
                 keep_maps: bool = True, centres: np.ndarray | None = None) -> PoseResult:
        """Persons and joints of one frame (see the module doc).

        ``centres`` (K, 2) in frame pixels skips the person detector and estimates the pose of
        a person at each given centre (used by `eval` in gt-centre mode).
        """
        with self._lock:
            return self._estimate(frame, timestamp, frame_index, keep_maps, centres)

    def _estimate(self, frame, timestamp, frame_index, keep_maps, centres=None) -> PoseResult:
        t0 = time.perf_counter()
        est = self._cfg.estimator
        b = est.boxsize
        bgr = to_bgr(frame)
        fh, fw = bgr.shape[:2]
        self._buffers.new_frame()    # this frame's crops reuse the last frame's images
        if timestamp is None:
            timestamp = frame_index / 30.0
        plan = self._track_plan(centres is not None, bgr, float(timestamp))
        if plan is not None and not plan.detect:
            result = self._estimate_tracked(bgr, plan, t0, float(timestamp), frame_index,
                                            keep_maps)
            if result is not None:
                return result
            plan.detect = True    # a lost track or one that jumped (plan.reason): at once
        scaled = scaled_size(bgr.shape, b)    # the crops' scale; no scaled copy of the frame
        sx, sy, scaled_shape = scaled
        t1 = time.perf_counter()

        detector_off = centres is not None
        found = None
        if centres is None:   # the person stage on its own input (persons.detect)
            self._check_cancelled()
            found = detect(self._person_backend, self.person_model, bgr, est, sx, sy,
                           self._buffers.detector)
            centres, peaks, person_map = found.centres, found.peaks, found.person_map
        else:   # given centres, frame pixels -> scaled-frame pixels; no person map
            centres = (np.asarray(centres, np.float64).reshape(-1, 2) + 0.5) * (sx, sy) - 0.5
            peaks = np.column_stack([maps.to_map(centres), np.ones(len(centres))])
            person_map = np.zeros([-(-n // maps.STRIDE) for n in scaled_shape], np.float32)
        t2 = time.perf_counter()

        tracked: list[Crop] = []
        keep_new = np.ones(len(centres), bool)
        if plan is not None and plan.crops:   # a centre on a track's box is that track's
            on_track, split = plan.covers((centres + 0.5) / (sx, sy) - 0.5)
            keep_new = ~on_track
            kept = [t for t in range(len(plan.crops)) if t not in split]
            tracked = [plan.crops[t] for t in kept]
            track_centres = (plan.centres[kept] + 0.5) * (sx, sy) - 0.5
            centres = np.concatenate([track_centres, centres[~on_track]])
            peaks = np.concatenate([np.column_stack([maps.to_map(track_centres),
                                                     np.asarray(plan.scores)[kept]]),
                                    peaks.reshape(-1, 3)[~on_track]])
        sides = None if found is None or found.sides is None else found.sides[keep_new]
        first, stage_maps = self._first_pass(bgr, scaled, tracked, centres[len(tracked):],
                                             levels=1 if detector_off else est.crop_levels,
                                             sides=sides)
        crops, rescaled = first, []
        if est.rescale and stage_maps is not None:
            crops, stage_maps, rescaled = self._rescale_pass(bgr, first, stage_maps,
                                                             skip=len(tracked))
        if est.scale_search and stage_maps is not None:
            stage_maps = self._scale_search_pass(bgr, crops, stage_maps)
        t3 = time.perf_counter()

        persons: list[Person] = []
        if stage_maps is not None:
            last = stage_maps[-1]
            all_joints = [cr.joints(last[n, :NUM_JOINTS], (fh, fw)) for n, cr in enumerate(crops)]
            frame_centres = (centres + 0.5) / (sx, sy) - 0.5
            drop = set()
            if not detector_off:
                drop = {n for n, j in enumerate(all_joints) if pose_score(j) < est.min_pose_score}
                keep = [n for n in range(len(all_joints)) if n not in drop]
                drop |= {keep[k] for k in duplicates([all_joints[n] for n in keep],
                                                      frame_centres[keep])}
                if found is not None and found.people is not None:   # the person check
                    drop |= {n for n, j in enumerate(all_joints)
                             if not on_a_person(j, found.people, est.joint_threshold)}
            for n, (cr, (_, _, cval)) in enumerate(zip(crops, peaks)):
                if n in drop:
                    continue
                joints = all_joints[n]
                centre = frame_centres[n]
                persons.append(Person(
                    centre=centre, centre_score=float(cval), box=cr.box(), joints=joints,
                    raw_joints=joints.copy(),
                    stage_maps=_person_maps(stage_maps, n) if keep_maps else None,
                    crop=cr.image.copy() if keep_maps else None,
                    crop_scale=cr.ky, rescaled=n in rescaled))
        t4 = time.perf_counter()

        if timestamp is None:
            timestamp = frame_index / 30.0
        if self._cfg.tracking.enabled:
            if self._tracked_shape != (fh, fw):   # another camera or picture: other people
                self._tracker.reset()
                self._tracked_shape = (fh, fw)
            persons = self._tracker.update(persons, float(timestamp), (fh, fw))
        if not detector_off:
            self._since_detect = 0
        t5 = time.perf_counter()

        ms = lambda a, c: (c - a) * 1000.0  # noqa: E731
        timings = {"preprocess": ms(t0, t1), "person": ms(t1, t2), "pose": ms(t2, t3),
                   "post": ms(t3, t4), "track": ms(t4, t5), "total": ms(t0, t5),
                   "tracked": 0.0}
        path = ("given centres" if detector_off else
                "detector" if plan is None else f"detector ({plan.reason})")
        return PoseResult(frame_index=frame_index, timestamp=float(timestamp),
                          frame_shape=(fh, fw), boxsize=b, persons=persons,
                          person_map=person_map.astype(np.float32, copy=False),
                          timings=timings, path=path)

    # ------------------------------------------------------------------ tracking-driven crops
    def _track_plan(self, given: bool, bgr: np.ndarray, timestamp: float) -> "TrackPlan | None":
        """The tracks' crops for this frame and whether the detector must run (see the module
        doc); None when tracking-driven crops are off (no tracking, detect_every 1, given
        centres)."""
        trk, est = self._cfg.tracking, self._cfg.estimator
        if given or not trk.enabled or trk.detect_every <= 1:
            return None
        if self._tracked_shape != bgr.shape[:2]:     # the tracks are reset: other people
            return TrackPlan(detect=True, reason="no track")
        floor = max(est.min_pose_score, MIN_TRACK_SCORE)
        tracks = self._tracker.predicted(timestamp)
        sure = [t for t in tracks if pose_score(t[1]) >= floor]
        plan = TrackPlan()
        scaled = scaled_size(bgr.shape, est.boxsize)
        for track_id, last, xy, box, scale, shift in sure:
            plan.ids.append(track_id)
            plan.crops.append(track_crop(bgr, scaled, xy, box, scale, shift,
                                         est.rescale_fraction, est.boxsize,
                                         self._buffers.crop(est.boxsize)))
            plan.boxes.append(np.concatenate([xy.min(0), xy.max(0)]))
            plan.scores.append(pose_score(last))
        plan.centres = np.array([(bx[:2] + bx[2:]) / 2 for bx in plan.boxes]).reshape(-1, 2)
        if not tracks:
            plan.detect, plan.reason = True, "no track"
        elif len(sure) < len(tracks):
            plan.detect, plan.reason = True, "pose score dropped"
        elif self._since_detect + 1 >= trk.detect_every:
            plan.detect, plan.reason = True, f"every {trk.detect_every}"
        return plan

    def _estimate_tracked(self, bgr, plan: "TrackPlan", t0: float, timestamp: float,
                          frame_index: int, keep_maps: bool) -> PoseResult | None:
        """A frame without the detector: the tracks' crops in one batch.  None when a tracked
        pose scores below ``min_pose_score`` (the caller runs the detector at once)."""
        est = self._cfg.estimator
        fh, fw = bgr.shape[:2]
        crops = plan.crops
        t1 = time.perf_counter()
        stage_maps = self._pose_pass(crops)
        if est.scale_search:
            stage_maps = self._scale_search_pass(bgr, crops, stage_maps)
        t2 = time.perf_counter()
        last = stage_maps[-1]
        all_joints = [cr.joints(last[n, :NUM_JOINTS], (fh, fw)) for n, cr in enumerate(crops)]
        scores = [pose_score(j) for j in all_joints]
        if min(scores) < est.min_pose_score:
            plan.reason = "pose score dropped"
            return None
        jumped = [n for n, (t, j) in enumerate(zip(plan.ids, all_joints))
                  if self._tracker.jumped(t, j, timestamp)]
        if jumped:      # its crop slid onto someone else: cut newcomers from the detector's peaks
            plan.drop(jumped)
            plan.reason = "identity jump"
            return None
        # a person's centre: its crop's, as on a detector frame (centred on the detector peak)
        centres = np.array([(cr.box()[:2] + cr.box()[2:]) / 2 for cr in crops])
        drop = duplicates(all_joints, centres)
        persons = [Person(centre=centres[n], centre_score=scores[n], box=cr.box(),
                          joints=all_joints[n], raw_joints=all_joints[n].copy(),
                          stage_maps=_person_maps(stage_maps, n) if keep_maps else None,
                          crop=cr.image.copy() if keep_maps else None, crop_scale=cr.ky)
                   for n, cr in enumerate(crops) if n not in drop]
        t3 = time.perf_counter()
        persons = self._tracker.update(persons, timestamp, (fh, fw))
        self._since_detect += 1
        t4 = time.perf_counter()
        ms = lambda a, c: (c - a) * 1000.0  # noqa: E731
        timings = {"preprocess": ms(t0, t1), "person": 0.0, "pose": ms(t1, t2),
                   "post": ms(t2, t3), "track": ms(t3, t4), "total": ms(t0, t4), "tracked": 1.0}
        return PoseResult(frame_index=frame_index, timestamp=timestamp, frame_shape=(fh, fw),
                          boxsize=est.boxsize, persons=persons,
                          person_map=np.zeros((0, 0), np.float32), timings=timings,
                          path="tracked")
