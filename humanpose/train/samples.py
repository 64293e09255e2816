"""Pose-net training samples: augmentation of cached person crops and belief-map targets.

The person is scaled so its size (larger side of the joint box) is a random fraction of the crop
(``pose_scale``, 0.3-0.95 by default, or with ``zoom_prob``, 20 % by default, 1.1-2.0 "zoomed"
around the upper body so that waist-up, truncated framing is covered), rotated (±40° 60 % of the
time by default; optionally, with ``rotation_any_prob``, anywhere around the circle, for
upside-down gymnasts), flipped with left/right swap, translated and colour-jittered; optionally
(``cut_prob``) an upright person is framed as a webcam frames one at a desk, grey below a line
under the hips.  The pasting helpers here (:func:`paste_at`, :func:`person_window`,
:func:`feather_mask`, :func:`covered`) also build the person detector's scenes
(:mod:`.scenes`, :mod:`.distractors`).
"""
from __future__ import annotations

import cv2
import numpy as np

from ..estimator.maps import STRIDE, centre_map, gaussian_maps, to_map
from ..skeleton import BACKGROUND, FLIP_PAIRS, JOINT_INDEX, NUM_JOINTS, NUM_MAPS, flip_permutation
from .datasets import person_box
from .metrics import upright

LOWRES_RANGE = (0.15, 0.6)   # pose samples: resolution factor of the low-resolution augmentation
UPPER = [JOINT_INDEX[n] for n in ("head_top", "neck", "r_shoulder", "l_shoulder", "r_hip", "l_hip")]
HIPS = [JOINT_INDEX["r_hip"], JOINT_INDEX["l_hip"]]
CUT_RANGE = (-0.1, 0.8)      # pose samples, frame-edge cut: torso lengths below the lower hip
CUT_SCALE = (0.5, 1.0)       # ... and the size of what stays in view, a fraction of the crop
CUT_MAX_TILT = 45.0          # ... for persons whose torso is at most this far from upright (degrees)


def flip_joints(joints: np.ndarray, width: int) -> np.ndarray:
    """Mirror (…,14,2) joints horizontally in an image of ``width`` and swap left/right."""
    out = joints.copy()
    out[..., 0] = width - 1 - out[..., 0]
    for a, b in FLIP_PAIRS:
        out[..., [a, b], :] = out[..., [b, a], :]
    return out


def pose_targets(joints: np.ndarray, size: int, sigma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Targets (15, size/8, size/8) for joints in crop pixels and per-map weights (15,).

    Missing joints (NaN) get weight 0; joints outside the crop get an empty map (weight 1).
    The background map is 1 - max over joint maps.
    """
    h = w = size // STRIDE
    maps = np.zeros((NUM_MAPS, h, w), np.float32)
    maps[:NUM_JOINTS] = gaussian_maps(h, w, to_map(joints), sigma)
    maps[BACKGROUND] = 1.0 - maps[:NUM_JOINTS].max(0)
    weights = np.ones(NUM_MAPS, np.float32)
    weights[:NUM_JOINTS] = np.isfinite(joints[:, 0]).astype(np.float32)
    return maps, weights


def colour_jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float32)
    x = x * rng.uniform(0.7, 1.3) + rng.uniform(-30, 30)              # contrast, brightness
    grey = x.mean(2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.6, 1.4)                      # saturation
    x *= rng.uniform(0.9, 1.1, size=3)                                 # colour balance
    return np.clip(x, 0, 255).astype(np.uint8)


def affine(centre, scale, angle_deg, out_size, shift=(0.0, 0.0)) -> np.ndarray:
    """2x3 matrix mapping source pixel coords so that ``centre`` lands on the output centre
    (plus ``shift``); ``out_size`` is a side or (width, height)."""
    w, h = (out_size, out_size) if np.isscalar(out_size) else out_size
    a = np.deg2rad(angle_deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * scale
    t = np.array([(w - 1) / 2.0 + shift[0], (h - 1) / 2.0 + shift[1]]) - r @ centre
    return np.hstack([r, t[:, None]])


def warp_joints(joints: np.ndarray, m: np.ndarray) -> np.ndarray:
    return joints @ m[:, :2].T + m[:, 2]


def pose_sample(image: np.ndarray, joints: np.ndarray, size: int, rng: np.random.Generator,
                augment: bool = True, centre_sigma: float = 0.06, rotation: float = 40.0,
                rotation_prob: float = 0.6, rotation_any_prob: float = 0.0,
                lowres_prob: float = 0.0, scale: tuple[float, float] = (0.3, 0.95),
                zoom_prob: float = 0.2, translation: float = 0.04, cut_prob: float = 0.0,
                cut_empty: bool = False, neighbours: list | None = None):
    """One pose-net training sample from a cached crop.

    Scale: the person's size (larger side of its joint box) is a uniform fraction ``scale`` of
    the crop, or with probability ``zoom_prob`` 1.1-2.0 of it, centred on the upper body
    (waist-up / truncated framing).

    Frame-edge cut: with probability ``cut_prob`` the sample is framed as a webcam frames a
    person at a desk: everything below a horizontal line CUT_RANGE torso lengths below the lower
    hip is grey (the frame's edge, as the pipeline pads a crop that reaches past the frame),
    the joints there are not trained (weight 0), and what stays in view is CUT_SCALE of the
    crop, centred (the pipeline's rescale pass fits the visible joints to 0.65 of the box).
    The zoom above instead cuts the person at the crop's edge, with the body going on.

    Rotation: with probability ``rotation_any_prob`` a uniform angle in ±180°, else with
    probability ``rotation_prob`` a uniform angle in ±``rotation`` degrees, else none.
    Translation: the person is shifted off the crop centre (and its centre map) by a normal
    offset of standard deviation ``translation`` x the crop side, as a detected centre is off
    the person's.
    Low resolution: with probability ``lowres_prob`` the crop is shrunk by a factor in
    LOWRES_RANGE and enlarged back, as the pipeline's rescale pass enlarges a small, far person
    (a 30-100 px pedestrian) to the box; the targets stay sharp.

    Neighbours: each of ``neighbours`` (a list of (cached crop, joints) of other people, drawn
    by the caller with its ``neighbour_prob``) is pasted beside the person, as a walker beside
    another in a street (:func:`_paste_neighbour`); the targets stay the centred person's, so
    the net learns to follow the centre map instead of joining two people's limbs.

    Returns (input float32 (4,size,size), targets (15,size/8,size/8), weights (15,),
    joints (14,2) in crop pixels).
    """
    centre, psize = person_box(joints)
    frac = 0.65
    angle, shift, flip, cut = 0.0, (0.0, 0.0), False, None
    if augment:
        view = cut_view(joints, rng) if cut_prob and rng.random() < cut_prob else None
        if view is not None:                         # frame-edge cut: see the docstring
            centre, psize, cut = view
            frac = rng.uniform(*CUT_SCALE)
        elif rng.random() < zoom_prob:               # zoom: waist-up / truncated framing
            frac = rng.uniform(1.1, 2.0)
            up = joints[UPPER]
            up = up[np.isfinite(up[:, 0])]
            if len(up):
                centre = up.mean(0)
        else:
            frac = rng.uniform(*scale)
        if cut is None and rotation_any_prob and rng.random() < rotation_any_prob:
            angle = rng.uniform(-180.0, 180.0)       # (a frame-edge cut keeps the person upright-ish:
                                                     # turned over, the grey would take the head)
        else:
            angle = rng.uniform(-rotation, rotation) if rng.random() < rotation_prob else 0.0
        shift = rng.normal(0, translation * size, 2)
        flip = rng.random() < 0.5
    k = frac * size / max(psize, 8.0)
    m = affine(centre, k, angle, size, shift)
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    j = warp_joints(joints, m)
    hidden = np.zeros(len(j), bool)                  # annotated joints below the cut
    if cut is not None:
        y = np.nanmax(j[HIPS, 1]) + cut * k          # the frame's edge, crop pixels
        crop[max(0, int(np.floor(y + 0.5))):] = 128  # rows whose centre lies below it
        hidden = j[:, 1] > y
        j[hidden] = np.nan
    for other, other_joints in (neighbours or ()) if cut is None else ():
        crop = _paste_neighbour(crop, j, other, other_joints, k * psize, rng)
    if flip:
        crop = crop[:, ::-1]
        j = flip_joints(j, size)
        hidden = hidden[flip_permutation()[:NUM_JOINTS]]   # follows the joints' left/right swap
    if augment and lowres_prob and rng.random() < lowres_prob:
        k = rng.uniform(*LOWRES_RANGE)
        small = cv2.resize(crop, (max(8, round(size * k)),) * 2, interpolation=cv2.INTER_AREA)
        crop = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    if augment:
        crop = colour_jitter(crop, rng)
    targets, weights = pose_targets(j, size)
    if cut_empty:
        weights[:NUM_JOINTS][hidden] = 1.0           # their maps are all zero: trained empty
    x = np.empty((4, size, size), np.float32)
    x[:3] = crop.transpose(2, 0, 1) / 256.0 - 0.5
    x[3] = centre_map(size, centre_sigma * size)
    return x, targets, weights, j


NEIGHBOUR_GAP = (0.7, 1.1)   # pose samples: a neighbour's centre beside the person, x the sum of
                             # their joint boxes' half-widths (their limbs may overlap a little)


def _paste_neighbour(crop: np.ndarray, joints: np.ndarray, other: np.ndarray,
                     other_joints: np.ndarray, size: float, rng: np.random.Generator) -> np.ndarray:
    """``crop`` with another person pasted beside its person (joints (14, 2), crop pixels; size
    ``size`` px): as large as it x 0.8-1.2, to its left or right by NEIGHBOUR_GAP x the sum of
    the two joint boxes' half-widths and up to 0.1 x size up or down, upright, inside a
    feathered box 1.2 x its joints' box, so that it covers little of the person's own limbs."""
    _, s_other = person_box(other_joints)
    mine = joints[np.isfinite(joints[:, 0])]
    if not len(mine):
        return crop
    lo, hi = mine.min(0), mine.max(0)
    f = size * rng.uniform(0.8, 1.2) / max(s_other, 8.0)
    theirs = other_joints[np.isfinite(other_joints[:, 0]), 0]
    half_widths = (hi[0] - lo[0]) / 2 + f * (np.ptp(theirs) if len(theirs) else s_other) / 2
    side = rng.choice((-1.0, 1.0))
    to = (lo + hi) / 2 + (side * rng.uniform(*NEIGHBOUR_GAP) * half_widths,
                          rng.uniform(-0.1, 0.1) * size)
    crop = crop.copy()
    paste_at(crop, other, other_joints, f, to)
    return crop


def paste_at(canvas: np.ndarray, image: np.ndarray, joints: np.ndarray, f: float,
              to: np.ndarray) -> np.ndarray | None:
    """Paste (in place) the person of a cached crop (``image``, ``joints``) scaled by ``f`` with
    its joint-box centre at ``to``, inside a feathered box 1.2 x its joints' box
    (:func:`_box_alpha`); returns that mask, or None when no joint is annotated (nothing pasted)."""
    c, _ = person_box(joints)
    m = np.array([[f, 0.0, to[0] - f * c[0]], [0.0, f, to[1] - f * c[1]]])
    h, w = canvas.shape[:2]
    j = warp_joints(joints, m)
    j = j[np.isfinite(j[:, 0])]
    if not len(j):
        return None
    patch = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    alpha = _box_alpha(h, w, j)
    canvas[:] = (alpha * patch + (1 - alpha) * canvas).astype(np.uint8)
    return alpha


def _box_alpha(h: int, w: int, pts: np.ndarray) -> np.ndarray:
    """(h, w, 1) mask: 1 inside the box 1.2 x that of the (K, 2) points ``pts`` (at least 8 px),
    fading to 0 over its outer fifth: a pasted person's body, not its whole picture."""
    lo, hi = pts.min(0), pts.max(0)
    mid, half = (lo + hi) / 2, np.maximum((hi - lo) * 0.6, 4.0)
    ys, xs = np.mgrid[0:h, 0:w]
    r = np.maximum(np.abs(xs - mid[0]) / half[0], np.abs(ys - mid[1]) / half[1])
    return np.clip((1.0 - r) / 0.2, 0, 1).astype(np.float32)[..., None]


def cut_view(joints: np.ndarray, rng: np.random.Generator):
    """A frame-edge cut for :func:`pose_sample`: (centre, size) of what stays in view (the upper
    body's joints and the cut line, source pixels) and the cut's distance below the lower hip
    (source pixels); None when a hip or the neck is missing or the torso is more than
    CUT_MAX_TILT from upright (a frame cuts a seated or standing person below the hips)."""
    if not upright(joints, CUT_MAX_TILT):
        return None
    hips = joints[HIPS]
    below = rng.uniform(*CUT_RANGE) * float(np.linalg.norm(hips.mean(0) - joints[JOINT_INDEX["neck"]]))
    up = joints[UPPER]
    up = up[np.isfinite(up[:, 0])]
    lo, hi = up.min(0), up.max(0)
    hi[1] = max(hi[1], hips[:, 1].max() + below)
    lo[1] = min(lo[1], hips[:, 1].max() + below)
    return (lo + hi) / 2.0, float(max(hi - lo)), below


def feather_mask(h: int, w: int) -> np.ndarray:
    ys = (np.arange(h) - (h - 1) / 2) / (h / 2)
    xs = (np.arange(w) - (w - 1) / 2) / (w / 2)
    r = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    return np.clip((1.0 - r) / 0.25, 0, 1).astype(np.float32)[..., None]


def person_window(images: np.ndarray, joints: np.ndarray, k: int):
    """Cached person ``k``'s window (its joint box widened by 0.6 x size + 6 px, 1.1 x that
    vertically, clipped to the crop): (window view, the person's centre in it, size)."""
    ck, sk = person_box(joints[k])
    half = 0.6 * sk + 6
    x0, y0 = int(max(0, ck[0] - half)), int(max(0, ck[1] - half * 1.1))
    x1, y1 = int(min(images.shape[2], ck[0] + half)), int(min(images.shape[1], ck[1] + half * 1.1))
    return images[k, y0:y1, x0:x1], ck - np.array((x0, y0), ck.dtype), sk   # in the joints' dtype


def covered(c: np.ndarray, alpha: np.ndarray, px: int, py: int) -> bool:
    """Whether a patch pasted at (px, py) with mask ``alpha`` hides the point ``c``."""
    x, y = int(round(c[0])) - px, int(round(c[1])) - py
    return 0 <= y < alpha.shape[0] and 0 <= x < alpha.shape[1] and alpha[y, x, 0] > 0.5
