"""Training samples: augmentation of cached person crops and belief-map targets.

Pose samples: the person is scaled so its size (larger side of the joint box) is a random
fraction of the crop (0.3-0.95, or 1.1-2.0 "zoomed" around the upper body so that waist-up,
truncated framing is covered), rotated (±40° 60 % of the time by default; optionally, with
``rotation_any_prob``, anywhere around the circle, for upside-down gymnasts), flipped with
left/right swap, translated and colour-jittered.  Person-detector samples ("scenes") place 1 to
3 people at random scales and positions on a background crop.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..estimator.maps import STRIDE, centre_map, gaussian_maps, to_map
from ..skeleton import BACKGROUND, FLIP_PAIRS, JOINT_INDEX, NUM_JOINTS, NUM_MAPS
from .datasets import person_box

UPPER = [JOINT_INDEX[n] for n in ("head_top", "neck", "r_shoulder", "l_shoulder", "r_hip", "l_hip")]


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


def _affine(centre, scale, angle_deg, out_size, shift=(0.0, 0.0)) -> np.ndarray:
    """2x3 matrix mapping source pixel coords so that ``centre`` lands on the output centre."""
    a = np.deg2rad(angle_deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * scale
    t = np.array([(out_size - 1) / 2.0 + shift[0], (out_size - 1) / 2.0 + shift[1]]) - r @ centre
    return np.hstack([r, t[:, None]])


def _warp_joints(joints: np.ndarray, m: np.ndarray) -> np.ndarray:
    return joints @ m[:, :2].T + m[:, 2]


def pose_sample(image: np.ndarray, joints: np.ndarray, size: int, rng: np.random.Generator,
                augment: bool = True, centre_sigma: float = 0.06, rotation: float = 40.0,
                rotation_prob: float = 0.6, rotation_any_prob: float = 0.0):
    """One pose-net training sample from a cached crop.

    Rotation: with probability ``rotation_any_prob`` a uniform angle in ±180°, else with
    probability ``rotation_prob`` a uniform angle in ±``rotation`` degrees, else none.

    Returns (input float32 (4,size,size), targets (15,size/8,size/8), weights (15,),
    joints (14,2) in crop pixels).
    """
    centre, psize = person_box(joints)
    frac = 0.65
    angle, shift, flip = 0.0, (0.0, 0.0), False
    if augment:
        if rng.random() < 0.2:                       # zoom: waist-up / truncated framing
            frac = rng.uniform(1.1, 2.0)
            up = joints[UPPER]
            up = up[np.isfinite(up[:, 0])]
            if len(up):
                centre = up.mean(0)
        else:
            frac = rng.uniform(0.3, 0.95)
        if rotation_any_prob and rng.random() < rotation_any_prob:
            angle = rng.uniform(-180.0, 180.0)
        else:
            angle = rng.uniform(-rotation, rotation) if rng.random() < rotation_prob else 0.0
        shift = rng.normal(0, 0.04 * size, 2)
        flip = rng.random() < 0.5
    scale = frac * size / max(psize, 8.0)
    m = _affine(centre, scale, angle, size, shift)
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    j = _warp_joints(joints, m)
    if flip:
        crop = crop[:, ::-1]
        j = flip_joints(j, size)
    if augment:
        crop = colour_jitter(crop, rng)
    targets, weights = pose_targets(j, size)
    x = np.empty((4, size, size), np.float32)
    x[:3] = crop.transpose(2, 0, 1) / 256.0 - 0.5
    x[3] = centre_map(size, centre_sigma * size)
    return x, targets, weights, j


def _feather_mask(h: int, w: int) -> np.ndarray:
    ys = (np.arange(h) - (h - 1) / 2) / (h / 2)
    xs = (np.arange(w) - (w - 1) / 2) / (w / 2)
    r = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    return np.clip((1.0 - r) / 0.25, 0, 1).astype(np.float32)[..., None]


def person_scene(images: np.ndarray, joints: np.ndarray, height: int, width: int,
                 rng: np.random.Generator, sigma: float = 1.5, max_people: int = 3):
    """One person-detector sample: (input (3,H,W), target (1,H/8,W/8), centres (K,2) pixels).

    A random cached crop is the background (its annotated person, if inside, is a positive);
    0-2 more people are pasted with a feathered elliptical mask at random scales / positions.
    """
    n = len(images)
    base = int(rng.integers(n))
    c0, s0 = person_box(joints[base])
    frac = rng.uniform(0.25, 0.9)
    scale = frac * height / max(s0, 8.0)
    shift = (rng.uniform(-0.45, 0.45) * width, rng.uniform(-0.3, 0.3) * height)
    m = np.array([[scale, 0.0, (width - 1) / 2.0 + shift[0] - scale * c0[0]],
                  [0.0, scale, (height - 1) / 2.0 + shift[1] - scale * c0[1]]])
    scene = cv2.warpAffine(images[base], m, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    if rng.random() < 0.5:
        scene = scene[:, ::-1].copy()
        c = np.array([width - 1 - (m[0, 0] * c0[0] + m[0, 2]), m[1, 1] * c0[1] + m[1, 2]])
    else:
        c = m[:, :2] @ c0 + m[:, 2]
    centres = [c]
    for _ in range(int(rng.integers(0, max_people))):
        k = int(rng.integers(n))
        ck, sk = person_box(joints[k])
        half = 0.6 * sk + 6
        x0, y0 = int(max(0, ck[0] - half)), int(max(0, ck[1] - half * 1.1))
        x1, y1 = int(min(images.shape[2], ck[0] + half)), int(min(images.shape[1], ck[1] + half * 1.1))
        patch = images[k, y0:y1, x0:x1]
        f = rng.uniform(0.25, 0.9) * height / max(sk, 8.0)
        ph, pw = max(4, int(patch.shape[0] * f)), max(4, int(patch.shape[1] * f))
        if ph >= height or pw >= width:
            continue
        patch = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA)
        px, py = int(rng.integers(0, width - pw)), int(rng.integers(0, height - ph))
        alpha = _feather_mask(ph, pw)
        region = scene[py:py + ph, px:px + pw].astype(np.float32)
        scene[py:py + ph, px:px + pw] = (alpha * patch + (1 - alpha) * region).astype(np.uint8)
        centres.append(np.array([px + (ck[0] - x0) * f, py + (ck[1] - y0) * f]))
    scene = colour_jitter(scene, rng)
    centres = np.array([c for c in centres if 0 <= c[0] < width and 0 <= c[1] < height]).reshape(-1, 2)
    h8, w8 = height // STRIDE, width // STRIDE
    target = gaussian_maps(h8, w8, to_map(centres), sigma).max(0, initial=0.0)[None]
    x = scene.transpose(2, 0, 1).astype(np.float32) / 256.0 - 0.5
    return x, target.astype(np.float32), centres
