"""CPM on a pretrained MobileNetV2-FPN trunk ("cpm_mobilenet"): the default nets.

Same contract as every humanpose net (:mod:`humanpose.nets`): BGR / 256 - 0.5 in (plus the
Gaussian centre map as a 4th channel for the pose net), a tuple with every stage's belief maps
at stride 8 out.  Inside:

* the image is turned into MoveNet's input (RGB, ``pixel * 0.00784 - 1``) here, in one place,
  and padded right / bottom to a multiple of 32 (the trunk's stride);
* the trunk is MoveNet's MobileNetV2 + FPN (:class:`~.mobilenet.MobileNetV2FPN`: width 1.0 as
  in SinglePose Lightning for the pose net, 1.5 as in MultiPose for the person net), started from
  MoveNet's weights (``humanpose import-tfjs``);
* stage 1 is a MoveNet head on the stride-4 features (separable 3x3 to 96 channels + ReLU,
  1x1 to the maps) with a sigmoid, averaged 2x2 down to stride 8; ``import-tfjs`` starts it from
  MoveNet's keypoint heatmap head (pose: its COCO keypoints mapped to the 14 joints) or its
  person-centre head (person);
* stages 2..T refine at stride 8 from [features, previous beliefs, (pose) the centre map]: a
  1x1 conv, ``blocks`` depthwise-separable 3x3 blocks with dilations 1, 2, 4, ... (a large
  receptive field for a few MACs) with residuals, a 1x1 conv whose output is *added* to the
  previous beliefs.  Its last conv starts at zero, so a new stage starts as the identity and the
  net starts as exactly MoveNet's own maps;
* the stride-8 features are the FPN's stride-8 level beside the stride-4 level averaged 2x2
  (48 channels).
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .mobilenet import FPN_CHANNELS, MOVENET_SCALE, Head, MobileNetV2FPN, pad_to_trunk


class RefineStage(nn.Module):
    def __init__(self, cin: int, cout: int, width: int = 48, blocks: int = 3):
        super().__init__()
        self.inp = nn.Conv2d(cin, width, 1)
        self.blocks = nn.ModuleList()
        for i in range(blocks):
            d = 2 ** i
            self.blocks.append(nn.Sequential(
                nn.Conv2d(width, width, 3, padding=d, dilation=d, groups=width, bias=False),
                nn.Conv2d(width, width, 1), nn.ReLU(inplace=True)))
        self.out = nn.Conv2d(width, cout, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        y = F.relu(self.inp(x))
        for block in self.blocks:
            y = y + block(y)
        return self.out(y)


class MobileNetCPM(nn.Module):
    """``kind`` "pose" (4 input channels, 15 maps) or "person" (3, 1 map)."""

    def __init__(self, kind: str = "pose", stages: int = 6, alpha: float = 1.0, width: int = 48,
                 blocks: int = 3):
        super().__init__()
        if kind not in ("pose", "person"):
            raise ValueError(f"kind must be 'pose' or 'person', not {kind!r}")
        self.kind = kind
        self.in_channels = 4 if kind == "pose" else 3
        self.num_maps = 15 if kind == "pose" else 1
        self.num_stages = stages
        self.trunk = MobileNetV2FPN(alpha)
        self.stage1 = Head(self.num_maps)
        feat = 2 * FPN_CHANNELS
        extra = 1 if kind == "pose" else 0
        self.stages = nn.ModuleList(
            RefineStage(feat + self.num_maps + extra, self.num_maps, width, blocks)
            for _ in range(stages - 1))
        bgr_to_rgb = torch.tensor([2, 1, 0])
        self.register_buffer("channel_order", bgr_to_rgb, persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h8, w8 = (x.shape[-2] + 7) // 8, (x.shape[-1] + 7) // 8
        # BGR / 256 - 0.5 -> MoveNet's RGB * 0.00784 - 1 (the padding: 0 there, grey)
        img = (x[:, :3].index_select(1, self.channel_order) + 0.5) * (256.0 * MOVENET_SCALE) - 1.0
        f4, f8 = self.trunk(pad_to_trunk(img))
        feats = torch.cat([F.avg_pool2d(f4, 2), f8], 1)
        beliefs = F.avg_pool2d(torch.sigmoid(self.stage1(f4)), 2)
        outs = [beliefs]
        centre = None
        if self.kind == "pose":
            centre = F.avg_pool2d(x[:, 3:4], 8, 8, ceil_mode=True)
            centre = F.pad(centre, (0, feats.shape[-1] - centre.shape[-1],
                                    0, feats.shape[-2] - centre.shape[-2]))
        for stage in self.stages:
            parts = [feats, beliefs] + ([centre] if centre is not None else [])
            beliefs = beliefs + stage(torch.cat(parts, 1))
            outs.append(beliefs)
        return tuple(o[..., :h8, :w8] for o in outs)
