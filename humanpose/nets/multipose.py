"""MoveNet MultiPose Lightning as humanpose's person net: the whole net and its own decode.

:class:`MultiPoseNet` is MoveNet MultiPose's convolutional graph (:class:`.mobilenet.MobileNetV2FPN`,
width 1.5, + its six CenterNet heads at stride 4) behind humanpose's person-net input (BGR
/ 256 - 0.5, height and width multiples of 32; converted inside the net to MoveNet's RGB
``pixel * 0.007843017578125 - 1``, so the ONNX export and every backend see the usual input).
It returns the raw head outputs as a tuple in :data:`OUTPUTS` order.

:func:`decode` is the decode tail of the TF.js graph (measured bit-exact against TensorFlow.js on
``messi5.jpg``, tests/test_multipose.py):

* instances: peaks of the sigmoid centre map (cells equal to its 5x5 max-pool), the top
  :data:`MAX_INSTANCES` kept;
* box: centre + box offset, +- max(box scale, 0) / 2, clipped to the map;
* keypoint k: the regressed guess r = centre + regression[centre, k]; the sigmoid heatmap of k is
  weighted by exp(-|p - r|^2 / (0.300048828125 x min(map h, map w))) and masked to the box; its
  argmax plus the offset there is the position; its score is the largest weighted (and masked)
  value at that cell over all the kept instances (as the graph gathers it);
* instance score = centre score x the mean of the keypoint scores above
  :data:`KEYPOINT_FLOOR` (0 when none).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .mobilenet import MOVENET_SCALE, Head, MobileNetV2FPN, head_state, trunk_state
from .tfjs import Graph

OUTPUTS = (("center_0", 1), ("kpt_heatmap_0", 17), ("kpt_regress_0", 34), ("kpt_offset_0", 34),
           ("box_scale_0", 2), ("box_offset_0", 2))
MAP_STRIDE = 4
MAX_INSTANCES = 6
KEYPOINT_FLOOR = 0.126953125       # float16 0.127: keypoints above this count in the instance score
GAUSS_RATIO = 0.300048828125       # float16 0.3 of the keypoint weighting's denominator
PEAK_POOL = 5


class MultiPoseNet(nn.Module):
    """MoveNet MultiPose (trunk + centre, keypoint heatmap, regression, offset and box heads) as
    a ``person`` net (input: humanpose's normalised BGR, 3 channels)."""

    kind = "person"
    in_channels = 3
    decoder = "multipose"
    num_stages = len(OUTPUTS)
    num_maps = 1

    def __init__(self, kind: str = "person", alpha: float = 1.5):
        super().__init__()
        if kind != "person":
            raise ValueError(f"movenet_multipose is a person net, not a {kind!r} net")
        self.alpha = alpha
        self.trunk = MobileNetV2FPN(alpha)
        self.heads = nn.ModuleDict({k: Head(c) for k, c in OUTPUTS})

    @classmethod
    def from_graph(cls, graph: Graph) -> "MultiPoseNet":
        from .mobilenet import graph_alpha
        net = cls(alpha=graph_alpha(graph))
        state = trunk_state(graph, "trunk.")
        for k, _ in OUTPUTS:
            state.update(head_state(graph, k, f"heads.{k}."))
        net.load_state_dict(state)
        return net.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # humanpose's BGR / 256 - 0.5 -> MoveNet's RGB pixel * scale - 1
        rgb = torch.flip(x, dims=(1,))
        f4, _ = self.trunk((rgb + 0.5) * (256.0 * MOVENET_SCALE) - 1.0)
        return tuple(self.heads[k](f4) for k, _ in OUTPUTS)


@dataclass
class Instance:
    """One MultiPose person, in map cells (stride :data:`MAP_STRIDE`) of its input."""
    centre: np.ndarray          # (2,) y, x cell of the centre peak
    centre_score: float
    box: np.ndarray             # (4,) ymin, xmin, ymax, xmax in cells
    keypoints: np.ndarray       # (17, 3) y, x (cells, offset added), score
    score: float                # the instance score


def _np(t) -> np.ndarray:
    return t.detach().float().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, np.float32)


def sigmoid(a: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-a.astype(np.float32)))).astype(np.float32)


def centre_peaks(centre: np.ndarray, top: int = MAX_INSTANCES) -> list[tuple[int, int, float]]:
    """(row, col, score) of the sigmoid centre map's peaks (equal to its 5x5 max-pool), best
    first, at most ``top``."""
    t = torch.from_numpy(np.ascontiguousarray(centre, np.float32))[None, None]
    pooled = F.max_pool2d(t, PEAK_POOL, stride=1, padding=PEAK_POOL // 2)[0, 0].numpy()
    flat = np.where(centre == pooled, centre, 0.0).ravel()
    order = np.argsort(-flat, kind="stable")[:top]
    w = centre.shape[1]
    return [(int(i // w), int(i % w), float(flat[i])) for i in order]


def decode(outputs, index: int = 0, top: int = MAX_INSTANCES) -> list[Instance]:
    """MultiPose's own decode of image ``index`` of a batch of raw head outputs (the net's
    tuple, torch or numpy) -> its top instances, best centre first (see the module doc)."""
    cen, heat, reg, off, bscale, boff = (_np(o)[index] for o in outputs)
    centre = sigmoid(cen[0])
    heat = sigmoid(heat)
    h, w = centre.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    denom = np.float32(GAUSS_RATIO) * np.float32(min(h, w))
    peaks = centre_peaks(centre, top)
    boxes, weighted = [], []
    for r, c, _ in peaks:
        cy = np.float32(r) + boff[0, r, c]
        cx = np.float32(c) + boff[1, r, c]
        bh, bw = max(float(bscale[0, r, c]), 0.0) / 2, max(float(bscale[1, r, c]), 0.0) / 2
        box = np.array([np.clip(cy - bh, 0, h), np.clip(cx - bw, 0, w),
                        np.clip(cy + bh, 0, h), np.clip(cx + bw, 0, w)], np.float32)
        inside = (yy >= box[0]) & (yy <= box[2]) & (xx >= box[1]) & (xx <= box[3])
        ry = np.float32(r) + reg[0::2, r, c][:, None, None]
        rx = np.float32(c) + reg[1::2, r, c][:, None, None]
        weight = np.exp(-((yy - ry) ** 2 + (xx - rx) ** 2) / denom)
        boxes.append(box)
        weighted.append(np.where(inside, heat * weight, np.float32(0.0)))
    # a keypoint's score is the best weighted value at its cell over all the instances (as the
    # graph gathers it), its position the argmax of its own instance's weighted map
    best = np.max(weighted, axis=0) if weighted else None
    out = []
    for (r, c, cscore), box, wmap in zip(peaks, boxes, weighted):
        kps = np.zeros((17, 3), np.float32)
        for k in range(17):
            kr, kc = divmod(int(np.argmax(wmap[k])), w)
            kps[k] = (kr + off[2 * k, kr, kc], kc + off[2 * k + 1, kr, kc], best[k, kr, kc])
        sure = kps[:, 2] > KEYPOINT_FLOOR
        score = cscore * float(kps[sure, 2].mean()) if sure.any() else 0.0
        out.append(Instance(np.array([r, c], np.float32), cscore, box, kps, score))
    return out
