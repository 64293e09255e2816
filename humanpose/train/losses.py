"""What a training step minimises: the stage loss (intermediate supervision) and the soft
targets of distillation (a teacher's flip- and scale-averaged maps).
"""
from __future__ import annotations

import torch

from ..skeleton import flip_permutation


def stage_loss(outputs, target, weight, positive_weight: float = 0.0) -> torch.Tensor:
    """Weighted squared error summed over every stage (intermediate supervision).

    ``positive_weight`` > 0 weighs pixels near the joints more (1 + k * target), which gets a
    small net out of the "all maps zero" start much sooner; the background map keeps weight 1.
    """
    w = weight[:, :, None, None]
    if positive_weight:
        pos = target.clone()
        if target.shape[1] > 1:
            pos[:, -1] = 0.0
        w = w * (1.0 + positive_weight * pos)
    return sum(((o - target) ** 2 * w).mean() * target.shape[1] for o in outputs)


def _zoom(x: torch.Tensor, s: float) -> torch.Tensor:
    """``x`` (N, C, H, W) resampled from a window ``s`` times its size with the same centre
    (s > 1 zooms out, grey = 0 beyond the edge); align_corners=False puts map cell j at input
    pixel STRIDE j + OFFSET, as the nets do."""
    theta = torch.tensor([[s, 0.0, 0.0], [0.0, s, 0.0]], dtype=x.dtype, device=x.device)
    grid = torch.nn.functional.affine_grid(theta.expand(len(x), 2, 3), list(x.shape),
                                           align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, align_corners=False)


@torch.no_grad()
def teacher_maps(teacher, x: torch.Tensor, scale_search: float = 0.0) -> torch.Tensor:
    """The teacher's last-stage maps of batch ``x`` averaged with those of its mirror image
    (flipped back, left / right swapped: the estimator's flip test, ``decode.flip_averaged``)
    and, with ``scale_search`` d > 0, with those of the images zoomed by 1 - d and 1 + d, the
    centre map kept (``PoseStage.scale_search_pass``; beyond the crop's edge the images
    are grey, where the estimator sees the frame): the soft targets of distillation."""
    n, perm = len(x), flip_permutation()

    def mirrored(inp):
        last = teacher(torch.cat([inp, inp.flip(-1)]))[-1]
        return (last[:n] + last[n:, perm].flip(-1)) / 2.0

    total = mirrored(x)
    if not scale_search:
        return total
    weight = torch.ones_like(total[:, :1])
    for z in (1.0 - scale_search, 1.0 + scale_search):
        zoomed = torch.cat([_zoom(x[:, :3], 1.0 / z), x[:, 3:]], dim=1)
        total += _zoom(mirrored(zoomed), z)            # back onto the crop's grid ...
        weight += _zoom(torch.ones_like(weight), z)    # ... where the window covers it
    return total / weight
