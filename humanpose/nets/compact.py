"""Compact real-time CPM family ("cpm_compact").

Same contract as the original CPM (see :mod:`humanpose.nets`): the input is a BGR image
normalised to [-0.5, 0.5) (plus, for the pose net, a Gaussian centre map as a 4th channel) and
the output is a tuple with the belief maps of every stage at stride 8.

Design for 2 CPU cores: a small VGG-like front (16-32-48-96 channels, three stride-2 convs, one
dilated conv, BatchNorm) gives 64 shared features at stride 8; each refinement stage sees the
features, the previous stage's beliefs and (pose net) the pooled centre map, and widens its
receptive field with dilated 3x3 convs (dilation 1, 2, 4, 8) instead of CPM's 7x7 / 11x11
kernels.  About 0.4 GMAC per 192x192 crop for the 3-stage pose net.  ``front_blocks`` adds
residual 3x3 blocks at stride 8 to the front (a deeper feature extractor for about 0.05 GMAC
each at 192x192); :meth:`CompactCPM.deepened` adds them to trained weights without changing what
the net computes.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
import torch.nn.functional as F


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ResBlock(nn.Module):
    """relu(x + BN(conv3x3(x))): with the BatchNorm's scale and shift at 0 it is the identity
    on the non-negative (post-ReLU) features it sees, in training and in eval mode alike."""

    def __init__(self, ch: int, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(ch)

    def forward(self, x):
        return F.relu(x + self.bn(self.conv(x)))


def front_block(ch: int, i: int) -> ResBlock:
    """The i-th added front block (dilation 1, 2, 1, 2, ...)."""
    return ResBlock(ch, dilation=1 + i % 2)


class Front(nn.Module):
    """Image (+ centre map) -> features at stride 8."""

    def __init__(self, cin: int, width: int = 1, feat: int = 64, blocks: int = 0):
        super().__init__()
        c1, c2, c3, c4 = 16 * width, 32 * width, 48 * width, 96 * width
        self.body = nn.Sequential(
            conv_bn(cin, c1, 3, 2), conv_bn(c1, c2),
            conv_bn(c2, c3, 3, 2), conv_bn(c3, c3),
            conv_bn(c3, c4, 3, 2), conv_bn(c4, c4), conv_bn(c4, c4, dilation=2),
            *(front_block(c4, i) for i in range(blocks)),
            conv_bn(c4, feat, 1),
        )

    def forward(self, x):
        return self.body(x)


class Stage(nn.Module):
    def __init__(self, cin: int, cout: int, ch: int = 64, dilations=(1, 2, 4, 8)):
        super().__init__()
        layers = [conv_bn(cin if i == 0 else ch, ch, 3, dilation=d) for i, d in enumerate(dilations)]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(ch, cout, 1)

    def forward(self, x):
        return self.out(self.body(x))


class CompactCPM(nn.Module):
    """Compact CPM; ``kind`` is "pose" (4 input channels, 15 maps) or "person" (3, 1 map)."""

    def __init__(self, kind: str = "pose", stages: int = 3, width: int = 1, feat: int = 64,
                 num_maps: int | None = None, front_blocks: int = 0):
        super().__init__()
        if kind not in ("pose", "person"):
            raise ValueError(f"kind must be 'pose' or 'person', not {kind!r}")
        self.kind = kind
        self.in_channels = 4 if kind == "pose" else 3
        self.num_maps = num_maps or (15 if kind == "pose" else 1)
        self.num_stages = stages
        self.front_blocks = front_blocks
        self.front = Front(self.in_channels, width, feat, front_blocks)
        extra = 1 if kind == "pose" else 0
        self.stage1 = Stage(feat, self.num_maps, feat, dilations=(1, 2))
        self.stages = nn.ModuleList(
            Stage(feat + self.num_maps + extra, self.num_maps, feat) for _ in range(stages - 1))

    def grown(self, stages: int) -> "CompactCPM":
        """A copy of this net with ``stages`` stages: the added refinement stages start as copies
        of the last one (which then refine the last stage's beliefs), all else is unchanged."""
        if stages == self.num_stages:
            return copy.deepcopy(self)
        if stages < self.num_stages or self.num_stages < 2:
            raise ValueError(f"stages {stages} cannot be grown from a net with {self.num_stages} "
                             "(only more stages, from a net with at least 2)")
        net = copy.deepcopy(self)
        for _ in range(stages - self.num_stages):
            net.stages.append(copy.deepcopy(self.stages[-1]))
        net.num_stages = stages
        return net

    def deepened(self, front_blocks: int) -> "CompactCPM":
        """A copy of this net with ``front_blocks`` residual blocks in its front, computing the
        same function: each added :class:`ResBlock` starts with its BatchNorm's scale and shift
        at 0 (its convolution random, so it learns once the scale moves), so it passes its
        (non-negative) input through unchanged."""
        if front_blocks < self.front_blocks:
            raise ValueError(f"front_blocks {front_blocks} cannot be grown from a net with "
                             f"{self.front_blocks} (only more)")
        net = copy.deepcopy(self)
        layers = list(net.front.body)
        ch = layers[-1][0].in_channels
        added = []
        for i in range(self.front_blocks, front_blocks):
            block = front_block(ch, i)
            nn.init.zeros_(block.bn.weight)
            nn.init.zeros_(block.bn.bias)
            added.append(block)
        net.front.body = nn.Sequential(*layers[:-1], *added, layers[-1])
        net.front_blocks = front_blocks
        return net

    def widened(self, feat: int, seed: int = 0) -> "CompactCPM":
        """A copy of this net with ``feat`` channels (shared features and every stage's width)
        computing the same function (Net2WiderNet, Chen et al. 2016): each added channel copies
        a random existing one, together with its BatchNorm statistics, and the layers reading
        the copies get the original's weights split between them in random shares that sum to
        one, so the copies receive different gradients and grow apart in training."""
        old = self.front.body[-1][0].out_channels
        if feat < old:
            raise ValueError(f"feat {feat} cannot be widened from a net with feat {old} (only more)")
        net = copy.deepcopy(self)
        if feat == old:
            return net
        gen = torch.Generator().manual_seed(seed)

        def split() -> tuple[torch.Tensor, torch.Tensor]:
            src = torch.cat([torch.arange(old), torch.randint(0, old, (feat - old,), generator=gen)])
            share = torch.rand(feat, generator=gen) + 0.5
            return src, share / torch.zeros(old).index_add_(0, src, share)[src]

        feats, feats_share = split()
        _widen_conv_bn(net.front.body[-1], feats, None, None)
        for stage in [net.stage1, *net.stages]:
            rest = stage.body[0][0].in_channels - old       # beliefs (+ centre map) channels
            src = torch.cat([feats, old + torch.arange(rest)])
            share = torch.cat([feats_share, torch.ones(rest)])
            for layer in stage.body:
                out, out_share = split()
                _widen_conv_bn(layer, out, src, share)
                src, share = out, out_share
            stage.out = _widened_conv(stage.out, None, src, share)
        return net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.front(x)
        beliefs = [self.stage1(feats)]
        centre = None
        if self.kind == "pose":
            centre = F.avg_pool2d(x[:, 3:4], 8, 8)
        for stage in self.stages:
            parts = [feats, beliefs[-1]] + ([centre] if centre is not None else [])
            beliefs.append(stage(torch.cat(parts, 1)))
        return tuple(beliefs)


def _widened_conv(conv: nn.Conv2d, out: torch.Tensor | None, src: torch.Tensor | None,
                  share: torch.Tensor | None) -> nn.Conv2d:
    """``conv`` with output channels ``out`` (indices of the old ones) and input channels
    ``src`` (indices of the old inputs) weighted by ``share``; None keeps that side as it is."""
    w = conv.weight.detach()
    b = None if conv.bias is None else conv.bias.detach()
    if out is not None:
        w, b = w[out], (None if b is None else b[out])
    if src is not None:
        w = w[:, src] * share[None, :, None, None]
    new = nn.Conv2d(w.shape[1], w.shape[0], conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, dilation=conv.dilation, bias=b is not None)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    return new


def _widen_conv_bn(layer: nn.Sequential, out: torch.Tensor, src: torch.Tensor | None,
                   share: torch.Tensor | None) -> None:
    """Widen a :func:`conv_bn` block in place to output channels ``out``."""
    conv, bn = layer[0], layer[1]
    layer[0] = _widened_conv(conv, out, src, share)
    new = nn.BatchNorm2d(len(out), eps=bn.eps, momentum=bn.momentum)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(new, name).copy_(getattr(bn, name)[out])
        new.num_batches_tracked.copy_(bn.num_batches_tracked)
    layer[1] = new
