"""The Python API: the poses of the people in video frames, tracked from call to call.

Example::

    import cv2
    from humanpose import Estimator

    estimator = Estimator()                      # the shipped nets, the settings of humanpose.yml
    video = cv2.VideoCapture("walk.mp4")
    while True:
        ok, frame = video.read()                 # a BGR numpy frame (uint8, H x W x 3)
        if not ok:
            break
        for person in estimator(frame):          # each call is the next frame of the video
            print(person.track_id, person.joints, person.scores, person.box)

Each person is a :class:`Pose`: ``joints`` (14, 2) x, y in frame pixels in the order of
:data:`humanpose.JOINTS` (head_top, neck, r_shoulder ... l_ankle), ``scores`` (14,) 0..1,
``box`` (x0, y0, x1, y1) around its joints, ``score`` (the pose's score) and ``track_id`` (the
same person keeps it across calls; -1 with tracking off).

Options are keyword arguments, checked like the config file (:mod:`humanpose.config`), e.g.
``Estimator(boxsize=256, pose_model="pose_compact", device="cpu", tracking=False)``: the live
options of :data:`humanpose.estimator.options.OPTIONS` (framework, device, precision, boxsize,
tracking, smoothing, ...) and every other key of the config's ``model``, ``estimator`` and
``tracking`` sections by its name (person_model, pose_model, detect_every, max_persons ...).
An unknown name raises TypeError, a bad value :class:`humanpose.config.ConfigError`.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import config as config_mod
from .config import Config, ConfigError
from .estimator.decode import pose_score
from .estimator.options import OPTIONS
from .estimator.pipeline import PoseEstimator
from .estimator.result import PoseResult
from .skeleton import JOINTS


def _option_keys() -> dict[str, str]:
    """Keyword -> config key: the live options, then each other key of the model, estimator
    and tracking sections by its own name."""
    keys = dict(OPTIONS)
    for section in ("model", "estimator", "tracking"):
        for f in dataclasses.fields(getattr(Config(), section)):
            if f.name != "enabled":                      # tracking.enabled is `tracking`
                keys.setdefault(f.name, f"{section}.{f.name}")
    return keys


OPTION_KEYS: dict[str, str] = _option_keys()


def settings(base: Config | str | Path | None = None, **options: Any) -> Config:
    """The config of an :class:`Estimator`: ``base`` (a Config, a YAML file; None: humanpose.yml
    when present, else the defaults) with ``options`` set, each validated."""
    if isinstance(base, Config):
        cfg = base
    elif base is not None or config_mod.DEFAULT_CONFIG.exists():
        cfg = config_mod.load(base)
    else:
        cfg = Config()
    for name, value in options.items():
        if name not in OPTION_KEYS:
            near = difflib.get_close_matches(name, OPTION_KEYS, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise TypeError(f"unknown Estimator option {name!r}; {hint}options: "
                            f"{', '.join(OPTION_KEYS)}")
        try:
            cfg = config_mod.set_value(cfg, OPTION_KEYS[name], value)
        except ConfigError as exc:
            raise ConfigError(f"Estimator option {name}: {exc}") from None
    return cfg


@dataclass(frozen=True)
class Pose:
    """One person in one frame (see the module doc)."""
    joints: np.ndarray       # (14, 2) x, y frame pixels, in the order of JOINTS
    scores: np.ndarray       # (14,) 0..1
    box: np.ndarray          # (4,) x0, y0, x1, y1 frame pixels around the joints
    score: float             # the pose's score: the mean of its 7 best joint scores
    track_id: int            # the same across calls while the person is tracked; -1: untracked

    def joint(self, name: str) -> tuple[float, float, float]:
        """(x, y, score) of the joint ``name`` (one of JOINTS, e.g. "l_wrist")."""
        if name not in JOINTS:
            raise KeyError(f"unknown joint {name!r}; joints: {', '.join(JOINTS)}")
        i = JOINTS.index(name)
        return float(self.joints[i, 0]), float(self.joints[i, 1]), float(self.scores[i])


def poses(result: PoseResult, joint_threshold: float) -> list[Pose]:
    """The :class:`Pose` of every person of an estimator result; each box holds the joints
    scored at least ``joint_threshold`` (all of them when none is)."""
    out = []
    for p in result.persons:
        xy, sc = p.joints[:, :2].astype(np.float64), p.joints[:, 2].astype(np.float64)
        sure = xy[sc >= joint_threshold] if (sc >= joint_threshold).any() else xy
        out.append(Pose(joints=xy, scores=sc,
                        box=np.concatenate([sure.min(0), sure.max(0)]),
                        score=pose_score(p.joints), track_id=int(p.track_id)))
    return out


class Estimator:
    """Poses of the people in consecutive video frames: ``estimator(frame)`` -> list of
    :class:`Pose` (see the module doc).  ``config``: a Config or a YAML file (default:
    humanpose.yml); ``options``: keyword options on top of it."""

    def __init__(self, config: Config | str | Path | None = None, **options: Any):
        self.pipeline = PoseEstimator(settings(config, **options))
        self.last: PoseResult | None = None     # the full result of the last call
        self._frames = 0

    @property
    def config(self) -> Config:
        return self.pipeline.config

    def __call__(self, frame: np.ndarray, timestamp: float | None = None) -> list[Pose]:
        """The people in ``frame`` (BGR, grayscale or BGRA uint8 numpy array), the next frame
        of the video; ``timestamp`` its time in seconds (default: 30 frames a second)."""
        self.last = self.pipeline.estimate(frame, timestamp, self._frames, keep_maps=False)
        self._frames += 1
        return poses(self.last, self.config.estimator.joint_threshold)

    def configure(self, **options: Any) -> None:
        """Change live options (:data:`humanpose.estimator.options.OPTIONS`) between frames."""
        self.pipeline.configure(**options)

    def set_pose_model(self, name: str) -> None:
        """Another pose net (a name in models/manifest.json or a weight file); tracks kept."""
        self.pipeline.set_pose_model(name)

    def reset(self) -> None:
        """A new video: forget the tracks."""
        self.pipeline.reset()
        self._frames = 0
