"""The original Convolutional Pose Machines networks ("cpm_vgg"), layer for layer.

Two nets from the official release (Wei et al., CVPR 2016, ``convolutional-pose-machines-release``):

* ``person`` -- the person-centre detector of ``model/_trained_person_MPI/
  pose_deploy_copy_4sg_resize.prototxt``: a VGG-19 front up to ``conv5_1`` plus
  ``conv5_2_CPM`` (128 channels), stage 1 = ``conv6_1_CPM`` / ``conv6_2_CPM`` (1x1 convs), then
  3 more stages of five 7x7 convs and two 1x1 convs; one output map.  Input: 3 channels.
* ``pose`` -- the 14-joint MPI pose net of ``model/_trained_MPI/pose_deploy_resize.prototxt``:
  input 4 channels (image + Gaussian centre map, split like the prototxt's ``Slice``), the centre
  map average-pooled with kernel 9 / stride 8 (``pool_center_lower``), a VGG front to
  ``conv4_7_CPM`` (128 channels), stage 1 = ``conv5_1_CPM`` / ``conv5_2_CPM``, then 5 more stages;
  15 output maps (14 joints + background).

Every convolution is an :class:`torch.nn.Conv2d` stored under its Caffe layer name (``conv1_1``,
``conv4_3_CPM``, ``Mconv1_stage2`` ...), so the parameters are ``<caffe name>.weight`` and
``<caffe name>.bias`` and official weights map 1:1 (see :func:`caffe_param_names`).  Stage ``t``
sees ``concat(beliefs of stage t-1, features[, pooled centre map])`` in that channel order, as in the
prototxts' ``concat_stage<t>`` layers.

Pooling follows Caffe: max pooling kernel 2 stride 2 and the centre-map average pooling use ceil
mode and Caffe's average divisor (window clipped to the input, no padding), so for every input whose
height and width are multiples of 8 all belief maps are (H/8, W/8) -- see :func:`caffe_pool_size`.

``width`` scales every hidden channel count (default 1.0 = the original; tests use tiny widths).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

KINDS = ("person", "pose")
DEFAULT_STAGES = {"person": 4, "pose": 6}
DEFAULT_MAPS = {"person": 1, "pose": 15}
IN_CHANNELS = {"person": 3, "pose": 4}
STAGE_CHANNELS = 128        # hidden width of the refinement stages (Mconv1..6)
POOL = "pool"               # marker for a 2x2 / stride-2 max pooling in a front description

# VGG fronts as (caffe name, original output channels) with POOL markers; all 3x3, pad 1, ReLU.
PERSON_FRONT = (
    ("conv1_1", 64), ("conv1_2", 64), POOL,
    ("conv2_1", 128), ("conv2_2", 128), POOL,
    ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), ("conv3_4", 256), POOL,
    ("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512), ("conv4_4", 512),
    ("conv5_1", 512), ("conv5_2_CPM", 128),
)
POSE_FRONT = (
    ("conv1_1", 64), ("conv1_2", 64), POOL,
    ("conv2_1", 128), ("conv2_2", 128), POOL,
    ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), ("conv3_4", 256), POOL,
    ("conv4_1", 512), ("conv4_2", 512),
    ("conv4_3_CPM", 256), ("conv4_4_CPM", 256), ("conv4_5_CPM", 256), ("conv4_6_CPM", 256),
    ("conv4_7_CPM", 128),
)
# Stage 1 head: two 1x1 convs (hidden 512, then the maps).
_STAGE1 = {"person": ("conv6_1_CPM", "conv6_2_CPM"), "pose": ("conv5_1_CPM", "conv5_2_CPM")}
# Pooled centre-map layer of the pose net (Caffe: AVE pooling, kernel 9, stride 8, pad 0).
CENTER_POOL = dict(name="pool_center_lower", kernel=9, stride=8, pad=0)
FRONT_POOL = dict(kernel=2, stride=2, pad=0)


@dataclass(frozen=True)
class ConvSpec:
    """One Caffe Convolution layer: name, channels, kernel, pad, and whether a ReLU follows."""
    name: str
    cin: int
    cout: int
    kernel: int
    pad: int
    relu: bool
    stage: int          # 0 = front (shared features), 1.. = stage index


def caffe_pool_size(size: int, kernel: int, stride: int, pad: int = 0) -> int:
    """Output size of a Caffe ``Pooling`` layer (ceil mode, last window clipped if it starts in pad)."""
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def caffe_map_sizes(size: int, kind: str = "pose") -> dict[str, int]:
    """Sizes along one axis after the front (three 2x2 pools) and, for the pose net, the centre pool.

    The belief maps concatenate with both, so they must be equal; true for every multiple of 8.
    """
    s = size
    for _ in range(3):
        s = caffe_pool_size(s, FRONT_POOL["kernel"], FRONT_POOL["stride"], FRONT_POOL["pad"])
    sizes = {"features": s}
    if kind == "pose":
        sizes["center"] = caffe_pool_size(size, CENTER_POOL["kernel"], CENTER_POOL["stride"],
                                          CENTER_POOL["pad"])
    return sizes


def _scaled(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def layer_specs(kind: str, width: float = 1.0, stages: int | None = None,
                num_maps: int | None = None) -> list[ConvSpec]:
    """Every Convolution layer of the net in prototxt order."""
    if kind not in KINDS:
        raise ValueError(f"kind must be 'person' or 'pose', not {kind!r}")
    if width <= 0:
        raise ValueError(f"width must be positive, not {width!r}")
    stages = DEFAULT_STAGES[kind] if stages is None else int(stages)
    if stages < 1:
        raise ValueError(f"stages must be >= 1, not {stages}")
    maps = DEFAULT_MAPS[kind] if num_maps is None else int(num_maps)
    specs: list[ConvSpec] = []
    cin = 3
    for item in (PERSON_FRONT if kind == "person" else POSE_FRONT):
        if item == POOL:
            continue
        name, c = item
        cout = _scaled(c, width)
        specs.append(ConvSpec(name, cin, cout, 3, 1, True, 0))
        cin = cout
    feat = cin
    hidden1 = _scaled(512, width)
    n1, n2 = _STAGE1[kind]
    specs.append(ConvSpec(n1, feat, hidden1, 1, 0, True, 1))
    specs.append(ConvSpec(n2, hidden1, maps, 1, 0, False, 1))
    hidden = _scaled(STAGE_CHANNELS, width)
    extra = 1 if kind == "pose" else 0
    for t in range(2, stages + 1):
        c = maps + feat + extra
        for i in range(1, 6):
            specs.append(ConvSpec(f"Mconv{i}_stage{t}", c, hidden, 7, 3, True, t))
            c = hidden
        specs.append(ConvSpec(f"Mconv6_stage{t}", hidden, hidden, 1, 0, True, t))
        specs.append(ConvSpec(f"Mconv7_stage{t}", hidden, maps, 1, 0, False, t))
    return specs


class CPMVGG(nn.Module):
    """Original CPM person detector or pose net; convs are attributes named like the Caffe layers."""

    def __init__(self, kind: str = "pose", width: float = 1.0, stages: int | None = None,
                 num_maps: int | None = None):
        super().__init__()
        self.specs = layer_specs(kind, width, stages, num_maps)
        self.kind = kind
        self.width = width
        self.in_channels = IN_CHANNELS[kind]
        self.num_maps = self.specs[-1].cout
        self.num_stages = max(s.stage for s in self.specs)
        for s in self.specs:
            conv = nn.Conv2d(s.cin, s.cout, s.kernel, padding=s.pad)
            # the prototxts' fillers: gaussian std 0.01, constant (0) bias
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(conv.bias)
            setattr(self, s.name, conv)
        front = PERSON_FRONT if kind == "person" else POSE_FRONT
        # after which front conv a 2x2 max pool follows
        self._pool_after = {front[i - 1][0] for i, item in enumerate(front) if item == POOL}

    # -- pooling with Caffe's output sizes -------------------------------------------------
    @staticmethod
    def front_pool(x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, FRONT_POOL["kernel"], FRONT_POOL["stride"], FRONT_POOL["pad"],
                            ceil_mode=True)

    @staticmethod
    def center_pool(c: torch.Tensor) -> torch.Tensor:
        # torch's ceil-mode average divisor clips the window to input + padding, like Caffe's
        return F.avg_pool2d(c, CENTER_POOL["kernel"], CENTER_POOL["stride"], CENTER_POOL["pad"],
                            ceil_mode=True, count_include_pad=True)

    def _conv(self, spec: ConvSpec, x: torch.Tensor) -> torch.Tensor:
        x = getattr(self, spec.name)(x)
        return F.relu(x, inplace=True) if spec.relu else x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"cpm_vgg {self.kind} net expects {self.in_channels} input channels, "
                             f"got {x.shape[1]}")
        image = x[:, :3]                                     # Slice "image" at slice_point 3
        center = self.center_pool(x[:, 3:4]) if self.kind == "pose" else None
        feats = image
        for spec in self.specs:
            if spec.stage == 0:
                feats = self._conv(spec, feats)
                if spec.name in self._pool_after:
                    feats = self.front_pool(feats)
        beliefs: list[torch.Tensor] = []
        b = feats
        for spec in self.specs:
            if spec.stage == 0:
                continue
            if spec.name.startswith("Mconv1_"):              # concat_stage<t>
                parts = [beliefs[-1], feats] + ([center] if center is not None else [])
                b = torch.cat(parts, 1)
            b = self._conv(spec, b)
            if not spec.relu:                                # last conv of a stage
                beliefs.append(b)
        return tuple(beliefs)


def build_cpm_vgg(kind: str, **kwargs) -> CPMVGG:
    """Build the original CPM ``person`` or ``pose`` net (random weights; kwargs: width, stages,
    num_maps)."""
    return CPMVGG(kind, **kwargs)


def caffe_param_names(model: CPMVGG) -> dict[str, tuple[str, str]]:
    """Caffe layer name -> (torch weight name, torch bias name) in ``model.state_dict()``."""
    return {s.name: (f"{s.name}.weight", f"{s.name}.bias") for s in model.specs}
