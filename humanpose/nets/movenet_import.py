"""MoveNet (TF.js graph files) -> a :class:`~.cpm_mobilenet.MobileNetCPM` to fine-tune.

The trunk takes the graph's MobileNetV2-FPN weights; stage 1 takes a head: the pose net the
keypoint-heatmap head with MoveNet's 17 COCO keypoints mapped onto the 14 joints (below), the
person net the person-centre head as it is.  Refinement stages start as the identity
(:class:`~.cpm_mobilenet.RefineStage`), so the imported net computes MoveNet's own maps.
"""
from __future__ import annotations

import torch

from ..skeleton import JOINTS

from .cpm_mobilenet import MobileNetCPM
from .mobilenet import graph_alpha, head_state, trunk_state
from .tfjs import Graph

# COCO keypoints: 0 nose, 1/2 left/right eye, 3/4 ears, 5/6 shoulders, 7/8 elbows, 9/10 wrists,
# 11/12 hips, 13/14 knees, 15/16 ankles (left = the person's own left, as in humanpose.skeleton).
# The neck starts as the mean of the two shoulder maps' logits, the head top as the nose (COCO
# has no head top); the background map starts at sigmoid(3) everywhere.  Fine-tuning moves them
# where LSP puts them.
COCO_FOR_JOINT = {"head_top": (0,), "neck": (5, 6), "r_shoulder": (6,), "r_elbow": (8,),
                  "r_wrist": (10,), "l_shoulder": (5,), "l_elbow": (7,), "l_wrist": (9,),
                  "r_hip": (12,), "r_knee": (14,), "r_ankle": (16,), "l_hip": (11,),
                  "l_knee": (13,), "l_ankle": (15,)}
BACKGROUND_BIAS = 3.0


def cpm_from_movenet(graph: Graph, kind: str, **kwargs) -> tuple[MobileNetCPM, dict]:
    """A ``kind`` net on ``graph``'s trunk; returns it and its architecture kwargs."""
    kwargs = dict(kwargs, alpha=graph_alpha(graph))
    net = MobileNetCPM(kind, **kwargs)
    state = net.state_dict()
    state.update(trunk_state(graph, "trunk."))
    if kind == "person":
        state.update(head_state(graph, "center_0", "stage1."))
    else:
        head = head_state(graph, "kpt_heatmap_0", "stage1.")
        w, b = head.pop("stage1.out.weight"), head.pop("stage1.out.bias")
        state.update(head)
        out_w = torch.zeros_like(state["stage1.out.weight"])
        out_b = torch.full_like(state["stage1.out.bias"], BACKGROUND_BIAS)
        for j, name in enumerate(JOINTS):
            coco = COCO_FOR_JOINT[name]
            out_w[j] = w[list(coco)].mean(0)
            out_b[j] = b[list(coco)].mean()
        state["stage1.out.weight"], state["stage1.out.bias"] = out_w, out_b
    net.load_state_dict(state)
    return net.eval(), kwargs
