"""The inference pipeline: frame -> persons with 14 joints each (:class:`PoseEstimator`).

The estimator composes three parts and runs the same steps on every frame (``PoseResult.timings``
has the milliseconds of each: preprocess, person, pose, post, track, total):

1. *preprocess*: the frame (BGR, grayscale or BGRA uint8, any size) as BGR and the scale of
   the *scaled frame*, the frame at height ``boxsize`` (:func:`.crops.scaled_size`; no scaled
   copy is made: the crops are cut from the frame itself), plus on a tracked frame the tracks'
   crops (:meth:`.tracked.TrackedCrops.plan`);
2. *person*: where the persons stand (:class:`.detector.Detector`), or the given centres;
3. *pose*: a boxsize x boxsize crop around each person through the pose net in one batch, crop
   levels, rescale and scale search (:class:`.pose_stage.PoseStage`);
4. *post*: the joints mapped back to the frame; false detections and duplicates dropped
   (:func:`.detector.false_detections`), a :class:`.result.Person` each (:meth:`_assemble`);
5. *track*: tracking ids and Kalman smoothing (:meth:`.tracked.TrackedCrops.update`).

Two paths share these steps: the *detector* path, and the *tracked* path (tracking-driven crops,
:mod:`.tracked`: tracking on, ``tracking.detect_every`` > 1), which skips step 2 while every
track holds; when one is lost the detector runs at once on the same frame.
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

from ..config import BOXSIZE_MAX, BOXSIZE_MIN, BOXSIZE_STEP, Config, snap_boxsize
from ..store import load_named
from . import detector, maps
from .backends import check_kind, make_backend
from .cpu import cpu_summary
from .crops import Crop, scaled_size, to_bgr
from .decode import duplicates, pose_score
from .detector import Detector
from .options import configured
from .pose_stage import PoseStage
from .result import Person, PoseResult
from .tracked import TrackedCrops, TrackPlan


class Cancelled(RuntimeError):
    """An estimate stopped by :meth:`PoseEstimator.cancel` (between two net passes)."""


class PoseEstimator:
    """Person detection + per-person pose estimation (+ tracking) on single frames: a
    :class:`.detector.Detector` (``self.detector``), a :class:`.pose_stage.PoseStage`
    (``self.pose``) and :class:`.tracked.TrackedCrops` (``self.tracks``)."""

    def __init__(self, cfg: Config, person_model: nn.Module | None = None,
                 pose_model: nn.Module | None = None):
        if person_model is None:
            person_model = load_named(cfg.model.person_model,
                                      cfg.resolve(cfg.model.models_dir), "person")
        if pose_model is None:
            pose_model = load_named(cfg.model.pose_model, cfg.resolve(cfg.model.models_dir),
                                    "pose")
        self._lock = threading.RLock()
        self._cancelled = threading.Event()
        self._cfg = dataclasses.replace(cfg)
        self.detector = Detector(person_model)
        self.pose = PoseStage(pose_model, lambda: self._cfg.estimator, self._check_cancelled)
        self.set_backend(cfg.model.framework, cfg.model.device, cfg.model.precision)
        self.set_boxsize(cfg.estimator.boxsize)
        self.tracks = TrackedCrops(self._cfg.tracking)

    # ------------------------------------------------------------------ settings
    @property
    def config(self) -> Config:
        return self._cfg

    @property
    def boxsize(self) -> int:
        return self._cfg.estimator.boxsize

    @property
    def person_model(self) -> nn.Module:
        return self.detector.model

    @property
    def pose_model(self) -> nn.Module:
        return self.pose.model

    @property
    def backend_name(self) -> str:
        return self.pose.backend.name

    @property
    def backend_report(self) -> dict:
        """What ran, for reports: backend, each net's precision, the CPU and its int8 path."""
        return {"backend": self.pose.backend.name,
                "precision": {"person": self.detector.backend.precision,
                              "pose": self.pose.backend.precision},
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
        pose, person = self.pose.backend.note, self.detector.backend.note
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
        if "boxsize" in changes:
            changes["boxsize"] = self._rounded_boxsize(changes["boxsize"])
        cfg = configured(self._cfg, **changes)
        if (cfg.model.framework, cfg.model.device, cfg.model.precision) != (
                self._cfg.model.framework, self._cfg.model.device, self._cfg.model.precision):
            self.set_backend(cfg.model.framework, cfg.model.device, cfg.model.precision)
        with self._lock:
            if cfg.tracking != self._cfg.tracking:
                self.tracks.retune(cfg.tracking)
            self._cfg = dataclasses.replace(cfg, model=self._cfg.model)
        return changes

    @staticmethod
    def _rounded_boxsize(n) -> int:
        if isinstance(n, bool) or not isinstance(n, (int, float, np.integer, np.floating)):
            raise TypeError(f"boxsize must be a number, not {n!r}")
        if not BOXSIZE_MIN <= n <= BOXSIZE_MAX:
            raise ValueError(f"boxsize {n} is outside the allowed range {BOXSIZE_MIN} to "
                             f"{BOXSIZE_MAX}")
        rounded = snap_boxsize(n)
        if rounded != n:
            warnings.warn(f"boxsize {n} is not a multiple of {BOXSIZE_STEP}; using {rounded}",
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
        person = make_backend(self.detector.model, framework, device, precision)
        pose = make_backend(self.pose.model, framework, device, precision)
        with self._lock:
            self.detector.backend, self.pose.backend = person, pose
            model = dataclasses.replace(self._cfg.model, framework=framework, device=device,
                                        precision=precision)
            self._cfg = dataclasses.replace(self._cfg, model=model)

    def set_pose_model(self, pose_model: str | nn.Module) -> None:
        """Swap the pose net (a manifest name, a weight file or a loaded pose net) and its
        backend, live: the detector and the tracks are kept.  A bad name (ModelError), a net of
        another kind (ValueError) or an unavailable backend (BackendError) changes nothing."""
        name = pose_model if isinstance(pose_model, str) else None
        if name is not None:
            pose_model = load_named(name, self._cfg.resolve(self._cfg.model.models_dir), "pose")
        m = self._cfg.model
        pose_model = check_kind(pose_model, "pose")
        backend = make_backend(pose_model, m.framework, m.device, m.precision)
        with self._lock:
            self.pose.model, self.pose.backend = pose_model, backend
            if name is not None:
                self._cfg = dataclasses.replace(
                    self._cfg, model=dataclasses.replace(m, pose_model=name))

    def set_tracking(self, enabled: bool, smoothing: bool, strength: float | None = None) -> None:
        """Turn tracking / smoothing on or off; ``strength`` sets tracking.measurement_noise
        (px², larger = smoother).  Resets the tracks."""
        changes = {"tracking": bool(enabled), "smoothing": bool(smoothing)}
        if strength is not None:
            changes["measurement_noise"] = float(strength)
        self.configure(**changes)
        with self._lock:
            self.tracks.tracker.reset()

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
            self.tracks.reset()

    # ------------------------------------------------------------------ inference
    def estimate(self, frame: np.ndarray, timestamp: float | None = None, frame_index: int = 0,
                 keep_maps: bool = True, centres: np.ndarray | None = None) -> PoseResult:
        """Persons and joints of one frame (see the module doc); ``timestamp`` in seconds
        (default: ``frame_index`` / 30).

        ``centres`` (K, 2) in frame pixels skips the person detector and estimates the pose of
        a person at each given centre (used by `eval` in gt-centre mode).
        """
        with self._lock:
            t0 = time.perf_counter()
            bgr = to_bgr(frame)
            self.pose.buffers.new_frame()   # this frame's crops reuse the last frame's images
            timestamp = float(frame_index / 30.0 if timestamp is None else timestamp)
            est, given = self._cfg.estimator, centres is not None
            plan = None if given else self.tracks.plan(bgr, timestamp, est, self._cfg.tracking,
                                                       self.pose.buffers)
            if plan is not None and not plan.detect:
                t1 = time.perf_counter()
                crops = plan.crops
                stage_maps = self.pose.run(crops)
                if est.scale_search:
                    stage_maps = self.pose.scale_search_pass(bgr, crops, stage_maps)
                t2 = time.perf_counter()
                joints = self.pose.joints(crops, stage_maps, bgr.shape[:2])
                if not self.tracks.lost(plan, joints, timestamp, est.min_pose_score):
                    # a person's centre: its crop's, as on a detector frame (on the detector peak)
                    centres = np.array([(cr.box()[:2] + cr.box()[2:]) / 2 for cr in crops])
                    persons = self._assemble(crops, stage_maps, joints, centres,
                                             [pose_score(j) for j in joints],
                                             duplicates(joints, centres), keep_maps)
                    return self._tracked(persons, bgr.shape[:2], timestamp, frame_index,
                                         np.zeros((0, 0), np.float32), (t0, t1, t1, t2),
                                         "tracked")
                plan.detect = True    # a lost track or one that jumped (plan.reason): at once
            return self._detected(bgr, plan, centres, t0, timestamp, frame_index, keep_maps)

    def _detected(self, bgr: np.ndarray, plan: TrackPlan | None, centres: np.ndarray | None,
                  t0: float, timestamp: float, frame_index: int, keep_maps: bool) -> PoseResult:
        """The detector path: persons found (or given ``centres``), merged with the tracks'
        crops of ``plan``, their poses, the false detections dropped, then tracked."""
        est, shape = self._cfg.estimator, bgr.shape[:2]
        scaled = scaled_size(bgr.shape, est.boxsize)    # the crops' scale; no scaled copy
        sx, sy, _ = scaled
        t1 = time.perf_counter()
        given = centres is not None
        if given:
            found = detector.given(centres, scaled)
        else:
            self._check_cancelled()
            found = self.detector.find(bgr, est, scaled, self.pose.buffers.detector)
        centres, peaks = found.centres, found.peaks
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
        sides = None if found.sides is None else found.sides[keep_new]
        crops, stage_maps = self.pose.first_pass(bgr, scaled, tracked, centres[len(tracked):],
                                                 levels=1 if given else est.crop_levels,
                                                 sides=sides)
        rescaled = []
        if est.rescale and stage_maps is not None:
            crops, stage_maps, rescaled = self.pose.rescale_pass(bgr, crops, stage_maps,
                                                                 skip=len(tracked))
        if est.scale_search and stage_maps is not None:
            stage_maps = self.pose.scale_search_pass(bgr, crops, stage_maps)
        t3 = time.perf_counter()

        persons: list[Person] = []
        if stage_maps is not None:
            joints = self.pose.joints(crops, stage_maps, shape)
            frame_centres = (centres + 0.5) / (sx, sy) - 0.5
            drop = set() if given else detector.false_detections(joints, frame_centres,
                                                                   found, est)
            persons = self._assemble(crops, stage_maps, joints, frame_centres,
                                     [float(p[2]) for p in peaks], drop, keep_maps, rescaled)
        path = ("given centres" if given else
                "detector" if plan is None else f"detector ({plan.reason})")
        return self._tracked(persons, shape, timestamp, frame_index,
                             found.person_map.astype(np.float32, copy=False),
                             (t0, t1, t2, t3), path)

    @staticmethod
    def _assemble(crops: list[Crop], stage_maps: list[np.ndarray], joints: list[np.ndarray],
                  centres: np.ndarray, scores: list[float], drop: set[int], keep_maps: bool,
                  rescaled=()) -> list[Person]:
        """A :class:`Person` for every crop not in ``drop`` (``centres`` and ``joints`` in frame
        pixels; with ``keep_maps`` a copy of its stage maps and crop image)."""
        return [Person(centre=centres[n], centre_score=scores[n], box=cr.box(),
                       joints=joints[n], raw_joints=joints[n].copy(),
                       stage_maps=(np.stack([s[n] for s in stage_maps]).astype(np.float32,
                                                                                copy=False)
                                   if keep_maps else None),
                       crop=cr.image.copy() if keep_maps else None,
                       crop_scale=cr.ky, rescaled=n in rescaled)
                for n, cr in enumerate(crops) if n not in drop]

    def _tracked(self, persons: list[Person], shape: tuple[int, int], timestamp: float,
                 frame_index: int, person_map: np.ndarray, marks: tuple, path: str) -> PoseResult:
        """The tracking step and the result; ``marks``: the times at the start of the
        preprocess, person, pose and post steps."""
        t3 = time.perf_counter()
        if self._cfg.tracking.enabled:
            persons = self.tracks.update(persons, timestamp, shape)
        if path == "tracked":
            self.tracks.since_detect += 1
        elif path != "given centres":
            self.tracks.since_detect = 0
        t4 = time.perf_counter()
        t = marks + (t3, t4)
        timings = {step: (t[k + 1] - t[k]) * 1000.0
                   for k, step in enumerate(("preprocess", "person", "pose", "post", "track"))}
        timings.update(total=(t4 - t[0]) * 1000.0, tracked=float(path == "tracked"))
        return PoseResult(frame_index=frame_index, timestamp=timestamp, frame_shape=shape,
                          boxsize=self._cfg.estimator.boxsize, persons=persons,
                          person_map=person_map, timings=timings, path=path)
