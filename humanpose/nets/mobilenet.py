"""MoveNet's convolutional graph rebuilt in PyTorch: a MobileNetV2 + FPN trunk and CenterNet heads.

MoveNet SinglePose Lightning / Thunder and MultiPose Lightning (Google, Apache-2.0) are a Keras
MobileNetV2 (width ``alpha`` 1.0, 1.75 and 1.5; batch norm folded into the convs) whose outputs
at strides 4, 8, 16 and 32 feed a small top-down FPN (1x1 laterals, 2x bilinear upsampling with
half-pixel centres, depthwise-separable 3x3 + ReLU) ending in 24 channels at stride 4, on which
each head (depthwise 3x3, pointwise to 96 + ReLU, 1x1) predicts a map: the person centre, 17
keypoint heatmaps, the keypoints' regression from the centre and their sub-cell offsets.

Exactness (checked against TF.js, tests/test_tfjs.py): TF's ``SAME`` padding of a stride-2 3x3
conv on an even input pads 0 before and 1 after (:class:`SamePadConv`); the trunk pads its input
to a multiple of 32 so that every stride-2 layer sees an even size and the FPN's levels align.
Input: RGB normalised as MoveNet does, ``pixel * 0.007843017578125 - 1`` (:data:`MOVENET_SCALE`).

:func:`trunk_state` / :func:`head_state` read the weights out of a TF.js graph
(:mod:`.tfjs`); :class:`MoveNet` with :func:`decode_single` is the whole single-pose model,
used for the reference check and the zero-shot evaluation.
"""
from __future__ import annotations

import re

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .tfjs import Graph, TfjsError

MOVENET_SCALE = 0.007843017578125        # the float16-rounded 1/127.5 of the graph's preprocessing
TRUNK_STRIDE = 32
FPN_CHANNELS = 24
HEAD_CHANNELS = 96
# (expansion, channels, repeats, stride) of MobileNetV2 (Sandler et al. 2018)
_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1))
NUM_BLOCKS = sum(n for _, _, n, _ in _BLOCKS)   # 17: expanded_conv, block_1 .. block_16
_TAPS = (2, 5, 9)                        # blocks whose outputs feed the FPN (strides 4, 8, 16)
ALPHAS = {"lightning": 1.0, "thunder": 1.75, "multipose": 1.5}


def make_divisible(v: float, divisor: int = 8) -> int:
    """Keras' channel rounding for a width multiplier."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class SamePadConv(nn.Conv2d):
    """A conv with TF ``SAME`` padding for even inputs: stride 1 pads k//2 on every side, stride 2
    pads (k-1)//2 - ... i.e. 0 before and 1 after for k = 3 (TF puts the odd pixel at the end)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
                 bias: bool = True):
        super().__init__(cin, cout, k, stride=stride, groups=groups, bias=bias,
                         padding=k // 2 if stride == 1 else 0)
        total = k - stride
        self.same = (total // 2, total - total // 2) if stride > 1 else None

    def forward(self, x):
        if self.same is not None:
            lo, hi = self.same
            x = F.pad(x, (lo, hi, lo, hi))
        return super().forward(x)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        mid = cin * expansion
        self.expand = nn.Conv2d(cin, mid, 1) if expansion != 1 else None
        self.depthwise = SamePadConv(mid, mid, 3, stride, groups=mid)
        self.project = nn.Conv2d(mid, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.residual else y


class SepConv(nn.Module):
    """Depthwise 3x3 (no bias) then pointwise with bias, optionally ReLU."""

    def __init__(self, cin: int, cout: int, relu: bool = True):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1)
        self.relu = relu

    def forward(self, x):
        y = self.pointwise(self.depthwise(x))
        return F.relu(y) if self.relu else y


class Head(nn.Module):
    """A CenterNet head: separable 3x3 to 96 channels + ReLU, then 1x1 to ``cout`` maps."""

    def __init__(self, cout: int, cin: int = FPN_CHANNELS, mid: int = HEAD_CHANNELS):
        super().__init__()
        self.sep = SepConv(cin, mid)
        self.out = nn.Conv2d(mid, cout, 1)

    def forward(self, x):
        return self.out(self.sep(x))


def _up2(x):
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class MobileNetV2FPN(nn.Module):
    """MoveNet's feature extractor.  Input: (N, 3, H, W) RGB in MoveNet's normalisation, H and W
    multiples of 32.  Returns the FPN features at stride 4 and stride 8 (24 channels each)."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha
        c = make_divisible(32 * alpha)
        self.stem = SamePadConv(3, c, 3, 2)
        blocks, outs = [], []
        for t, ch, n, s in _BLOCKS:
            cout = make_divisible(ch * alpha)
            for i in range(n):
                blocks.append(InvertedResidual(c, cout, s if i == 0 else 1, t))
                c = cout
            outs.append(c)
        self.blocks = nn.ModuleList(blocks)
        self.last = nn.Conv2d(c, 1280, 1)
        c4, c8, c16 = (blocks[i].project.out_channels for i in _TAPS)
        self.lateral32 = nn.Conv2d(1280, 64, 1)
        self.lateral16 = nn.Conv2d(c16, 64, 1)
        self.smooth16 = SepConv(64, 32)
        self.lateral8 = nn.Conv2d(c8, 32, 1)
        self.smooth8 = SepConv(32, FPN_CHANNELS)
        self.lateral4 = nn.Conv2d(c4, FPN_CHANNELS, 1)
        self.smooth4 = SepConv(FPN_CHANNELS, FPN_CHANNELS)

    def backbone(self, x):
        """The MobileNetV2 part: (stride-32 output, taps at strides 4, 8, 16)."""
        x = F.relu6(self.stem(x))
        taps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in _TAPS:
                taps.append(x)
        return x, taps

    def forward(self, x):
        x, (x4, x8, x16) = self.backbone(x)
        top = self.lateral32(F.relu6(self.last(x)))
        f16 = self.smooth16(_up2(top) + self.lateral16(x16))
        f8 = self.smooth8(_up2(f16) + self.lateral8(x8))
        f4 = self.smooth4(_up2(f8) + self.lateral4(x4))
        return f4, f8


def pad_to_trunk(x: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """Pad right / bottom to a multiple of :data:`TRUNK_STRIDE`."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, (-w) % TRUNK_STRIDE, 0, (-h) % TRUNK_STRIDE), value=value)


# ------------------------------------------------------------------------------------------------
# weights out of a TF.js graph

def _conv_weight(w: np.ndarray, depthwise: bool = False) -> torch.Tensor:
    """TF HWIO (or HW,C,1 depthwise) -> torch OIHW."""
    t = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
    return t.permute(2, 3, 0, 1).contiguous() if depthwise else t.permute(3, 2, 0, 1).contiguous()


def _vec(w: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))


def trunk_names() -> list[tuple[str, str, bool]]:
    """(torch key, TF weight-name suffix, depthwise) of every trunk weight: the map between a
    :class:`MobileNetV2FPN` state dict and a MoveNet graph's weights (biases: ``.bias`` keys)."""
    mb, fe = "model_1/model/", "model_1/"
    table = [("stem.weight", mb + "Conv1/Conv2D_weights", False),
             ("stem.bias", mb + "Conv1/Conv2D_bn_offset", False)]
    for i, name in enumerate(["expanded_conv"] + [f"block_{k}" for k in range(1, NUM_BLOCKS)]):
        parts = (["expand"] if i else []) + ["depthwise", "project"]
        for part in parts:
            tf = f"{mb}{name}_{part}/" + ("depthwise" if part == "depthwise" else "Conv2D")
            table += [(f"blocks.{i}.{part}.weight", tf + "_weights", part == "depthwise"),
                      (f"blocks.{i}.{part}.bias", tf + "_bn_offset", False)]
    table += [("last.weight", mb + "Conv_1/Conv2D_weights", False),
              ("last.bias", mb + "Conv_1/Conv2D_bn_offset", False)]
    for key, tf in (("lateral32", "conv2d"), ("lateral16", "conv2d_1"), ("lateral8", "conv2d_2"),
                    ("lateral4", "conv2d_3")):
        table += [(key + ".weight", f"{fe}{tf}/Conv2D/ReadVariableOp", False),
                  (key + ".bias", f"{fe}{tf}/BiasAdd/ReadVariableOp", False)]
    for key, tf in (("smooth16", "separable_conv2d"), ("smooth8", "separable_conv2d_1"),
                    ("smooth4", "separable_conv2d_2")):
        table += [(key + ".depthwise.weight", f"{fe}{tf}/separable_conv2d/ReadVariableOp", True),
                  (key + ".pointwise.weight", f"{fe}{tf}/separable_conv2d_weights", False),
                  (key + ".pointwise.bias", f"{fe}{tf}/separable_conv2d_bn_offset", False)]
    return table


def _to_torch(w: np.ndarray, key: str, depthwise: bool) -> torch.Tensor:
    return _vec(w) if key.endswith(".bias") else _conv_weight(w, depthwise)


def trunk_state(graph: Graph, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict of a :class:`MobileNetV2FPN` (keys under ``prefix``) from a MoveNet graph."""
    return {prefix + key: _to_torch(graph.find(tf), key, dw) for key, tf, dw in trunk_names()}


HEAD_NAMES = (  # (torch key, pattern of the TF name inside the head's scope, depthwise)
    ("sep.depthwise.weight", r"separable_conv2d_\d+/separable_conv2d/ReadVariableOp$", True),
    ("sep.pointwise.weight", r"separable_conv2d_\d+/separable_conv2d/ReadVariableOp_1$", False),
    ("sep.pointwise.bias", r"separable_conv2d_\d+/BiasAdd/ReadVariableOp$", False),
    ("out.weight", r"/conv2d_\d+/Conv2D/ReadVariableOp$", False),
    ("out.bias", r"/conv2d_\d+/BiasAdd/ReadVariableOp$", False))


def head_state(graph: Graph, head: str, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict of a :class:`Head` from the graph's head ``head`` (e.g. "kpt_heatmap_0")."""
    mine = {k: v for k, v in graph.weights.items() if f"/{head}/" in k}
    if not mine:
        raise TfjsError(f"{graph.path}: no head {head!r}")
    state = {}
    for key, pattern, dw in HEAD_NAMES:
        hits = [v for k, v in mine.items() if re.search(pattern, k)]
        if len(hits) != 1:
            raise TfjsError(f"{graph.path}: head {head}: {len(hits)} weights match {pattern!r}")
        state[prefix + key] = _to_torch(hits[0], key, dw)
    return state


def graph_alpha(graph: Graph) -> float:
    """The width multiplier of a MoveNet graph, from its first conv's channels."""
    c = graph.find("model_1/model/Conv1/Conv2D_weights").shape[-1]
    for alpha in sorted(set(ALPHAS.values())):
        if make_divisible(32 * alpha) == c:
            return alpha
    raise TfjsError(f"{graph.path}: a first conv of {c} channels matches no known MoveNet width")


# ------------------------------------------------------------------------------------------------
# the whole single-pose MoveNet (reference check, zero-shot evaluation)

HEADS = {"center_0": 1, "kpt_heatmap_0": 17, "kpt_regress_0": 34, "kpt_offset_0": 34}


class MoveNet(nn.Module):
    """MoveNet's convolutional part: RGB pixels (N, 3, H, W, 0..255 float) -> raw head outputs
    at stride 4 (centre and keypoint heatmaps as logits, regression and offsets in cells).
    ``centre_weight`` is the graph's own (float16-rounded) centre weighting of its input size."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.trunk = MobileNetV2FPN(alpha)
        self.heads = nn.ModuleDict({k: Head(c) for k, c in HEADS.items()})
        self.centre_weight: np.ndarray | None = None

    @classmethod
    def from_graph(cls, graph: Graph) -> "MoveNet":
        net = cls(graph_alpha(graph))
        state = trunk_state(graph, "trunk.")
        for k in HEADS:
            state.update(head_state(graph, k, f"heads.{k}."))
        net.load_state_dict(state)
        recip = [v for k, v in graph.weights.items() if k.endswith("truediv_2_recip")]
        if recip and recip[0].ndim == 3:
            net.centre_weight = recip[0][..., 0].astype(np.float32)
        return net.eval()

    def forward(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        f4, _ = self.trunk(rgb * MOVENET_SCALE - 1.0)
        return {k: h(f4) for k, h in self.heads.items()}


def decode_single(out: dict[str, torch.Tensor], centre_weight: np.ndarray | None = None) -> np.ndarray:
    """SinglePose MoveNet's own decode of one image's head outputs -> (17, 3) keypoints as (y, x,
    score) normalised to the input, as the TF graph computes it (float32): the person centre is
    the peak of the centre heatmap times ``centre_weight`` (default 1 / (distance to the map's
    centre cell + 1.8)); each keypoint is the peak of its heatmap divided by (distance to the
    keypoint regressed from that centre + 1.8), moved by its offset, times the float16 1 / size."""
    eps = np.float32(1.7998047)                       # float16 1.8, as in the graph
    centre = torch.sigmoid(out["center_0"][0, 0].float()).numpy()
    heat = torch.sigmoid(out["kpt_heatmap_0"][0].float()).numpy()
    reg = out["kpt_regress_0"][0].float().numpy()
    off = out["kpt_offset_0"][0].float().numpy()
    h, w = centre.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if centre_weight is None or centre_weight.shape != (h, w):
        centre_weight = 1.0 / (np.sqrt((yy - h // 2) ** 2 + (xx - w // 2) ** 2) + eps)
    r, c = divmod(int(np.argmax(centre * centre_weight)), w)
    scale = np.array([np.float16(1.0 / h), np.float16(1.0 / w)], np.float32)
    kps = np.zeros((17, 3), np.float32)
    for k in range(17):
        ry, rx = np.float32(r) + reg[2 * k, r, c], np.float32(c) + reg[2 * k + 1, r, c]
        d = np.sqrt((yy - ry) ** 2 + (xx - rx) ** 2) + eps
        kr, kc = divmod(int(np.argmax(heat[k] / d)), w)
        kps[k, :2] = (np.float32(kr) + off[2 * k, kr, kc], np.float32(kc) + off[2 * k + 1, kr, kc]) * scale
        kps[k, 2] = heat[k, kr, kc]
    return kps
