"""The one skeleton definition of humanpose.

CPM's MPI order (14 joints + background), limbs, left/right flip pairs, colours and the mapping
from the Leeds Sports Pose (LSP) order.  Every other module imports from here.
"""
from __future__ import annotations

import numpy as np

JOINTS: tuple[str, ...] = (
    "head_top", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
)
NUM_JOINTS = len(JOINTS)            # 14
NUM_MAPS = NUM_JOINTS + 1           # + background (last channel)
BACKGROUND = NUM_JOINTS             # index of the background map
JOINT_INDEX = {name: i for i, name in enumerate(JOINTS)}

# Human-readable names (for views, plots and CSV readers).
JOINT_LABELS: tuple[str, ...] = (
    "head top", "neck",
    "R shoulder", "R elbow", "R wrist",
    "L shoulder", "L elbow", "L wrist",
    "R hip", "R knee", "R ankle",
    "L hip", "L knee", "L ankle",
)

# Limbs as (from, to) joint index pairs, in drawing order.
LIMBS: tuple[tuple[int, int], ...] = (
    (0, 1),                  # head
    (1, 2), (2, 3), (3, 4),  # right arm
    (1, 5), (5, 6), (6, 7),  # left arm
    (1, 8), (8, 9), (9, 10),  # right leg (neck-hip as torso side)
    (1, 11), (11, 12), (12, 13),  # left leg
)

# Left/right pairs: horizontal flip swaps these.
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13))


def flip_permutation() -> list[int]:
    """Index permutation p so that flipped[j] = original[p[j]] (background maps to itself)."""
    perm = list(range(NUM_MAPS))
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return perm


# BGR colours per limb (right side warm, left side cool, centre yellow) - the CPM demo palette.
LIMB_COLOURS: tuple[tuple[int, int, int], ...] = (
    (0, 255, 255),
    (0, 128, 255), (0, 64, 255), (0, 0, 255),
    (255, 128, 0), (255, 64, 0), (255, 0, 0),
    (0, 255, 128), (0, 255, 64), (0, 200, 0),
    (255, 255, 0), (200, 200, 0), (160, 160, 0),
)
JOINT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (0, 255, 255), (0, 255, 255),
    (0, 128, 255), (0, 64, 255), (0, 0, 255),
    (255, 128, 0), (255, 64, 0), (255, 0, 0),
    (0, 255, 128), (0, 255, 64), (0, 200, 0),
    (255, 255, 0), (200, 200, 0), (160, 160, 0),
)

# LSP order: R-ankle, R-knee, R-hip, L-hip, L-knee, L-ankle, R-wrist, R-elbow, R-shoulder,
# L-shoulder, L-elbow, L-wrist, neck, head-top.  LSP_TO_MPI[j] = LSP index of MPI joint j.
LSP_JOINTS: tuple[str, ...] = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
    "neck", "head_top",
)
LSP_TO_MPI: tuple[int, ...] = tuple(LSP_JOINTS.index(name) for name in JOINTS)


def lsp_to_mpi(arr: np.ndarray, axis: int = 0) -> np.ndarray:
    """Reorder an array whose `axis` is in LSP joint order into the MPI order."""
    return np.take(arr, LSP_TO_MPI, axis=axis)


# Joint angles offered by plots: name -> (a, vertex, b); angle at `vertex` in degrees.
ANGLES: dict[str, tuple[int, int, int]] = {
    "R elbow": (2, 3, 4), "L elbow": (5, 6, 7),
    "R knee": (8, 9, 10), "L knee": (11, 12, 13),
    "R hip": (1, 8, 9), "L hip": (1, 11, 12),
    "R shoulder": (1, 2, 3), "L shoulder": (1, 5, 6),
}


def joint_angle(joints_xy: np.ndarray, name: str) -> float:
    """Angle in degrees at the vertex joint of ANGLES[name]; NaN if any joint is NaN."""
    a, v, b = ANGLES[name]
    u = joints_xy[a, :2] - joints_xy[v, :2]
    w = joints_xy[b, :2] - joints_xy[v, :2]
    nu, nw = np.linalg.norm(u), np.linalg.norm(w)
    if not np.isfinite(nu * nw) or nu == 0 or nw == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(np.dot(u, w) / (nu * nw), -1.0, 1.0))))
