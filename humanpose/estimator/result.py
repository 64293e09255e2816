"""What the estimator returns for one frame (plain data, no Qt, no torch)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Person:
    centre: np.ndarray                 # (2,) x, y in frame pixels
    centre_score: float                # person-heatmap peak value
    box: np.ndarray                    # (4,) x0, y0, x1, y1 of the crop, frame pixels
    joints: np.ndarray                 # (14, 3) x, y (frame pixels), score; smoothed if tracked
    raw_joints: np.ndarray | None = None   # (14, 3) before smoothing
    stage_maps: np.ndarray | None = None   # (stages, 15, h, w) float32 beliefs of the crop
    crop: np.ndarray | None = None         # (boxsize, boxsize, 3) uint8 BGR crop fed to the pose net
    crop_scale: float = 1.0            # crop pixels per frame pixel
    rescaled: bool = False             # the crop was cut again to fit the person (estimator.rescale)
    track_id: int = -1


@dataclass
class PoseResult:
    frame_index: int
    timestamp: float                   # seconds
    frame_shape: tuple[int, int]       # (height, width) of the input frame
    boxsize: int
    persons: list[Person] = field(default_factory=list)
    person_map: np.ndarray | None = None   # last-stage person-centre heatmap (stride 8)
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds per step
    # which path made it: "detector" (+ why: "no track", "every N", "pose score dropped",
    # "identity jump"),
    # "tracked" (crops from the tracks, no detector), "given centres"
    path: str = "detector"
