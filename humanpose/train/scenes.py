"""Person-detector training samples ("scenes"): 1 to 3 people from the cached crops pasted at
random scales (``person_scale``), rotations (``rotation``, ``rotation_prob``,
``rotation_any_prob``; none by default) and positions on a background crop, optionally on top
of person-free distractors (:mod:`.distractors`) that must stay at 0 in the target, or
(``cut_prob``) one upright person cut by the scene's bottom edge below the hips, as a webcam
frame shows one.  The target is a Gaussian at each visible person's centre.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..estimator.maps import STRIDE, gaussian_maps, to_map
from .datasets import person_box
from .distractors import maybe_distract
from .samples import (HIPS, affine, colour_jitter, covered, cut_view, feather_mask, paste_at,
                      person_window, warp_joints)

CUT_FILL = (0.5, 1.1)        # person scenes, webcam frames: the view's size, a fraction of the height
COMPANION_GAP = (0.35, 0.6)  # person scenes: a companion's centre beside a pasted person, x its size


def _rotate_patch(patch: np.ndarray, alpha: np.ndarray, centre: np.ndarray, angle: float):
    """Rotate a pasted patch and its mask by ``angle`` degrees about the patch centre onto a
    canvas that holds all of it; returns (patch, mask, ``centre`` in the new patch)."""
    h, w = patch.shape[:2]
    a = np.deg2rad(angle)
    cos, sin = abs(np.cos(a)), abs(np.sin(a))
    nw, nh = int(np.ceil(w * cos + h * sin)), int(np.ceil(w * sin + h * cos))
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    m[:, 2] += ((nw - w) / 2.0, (nh - h) / 2.0)
    out = cv2.warpAffine(patch, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=(128, 128, 128))
    mask = cv2.warpAffine(np.ascontiguousarray(alpha[..., 0]), m, (nw, nh), flags=cv2.INTER_LINEAR)
    return out, mask[..., None], m[:, :2] @ centre + m[:, 2]


def _scene_angle(rng: np.random.Generator, rotation: float, rotation_prob: float,
                 rotation_any_prob: float) -> float:
    """A person's rotation in a scene: any angle with probability ``rotation_any_prob``, else
    ±``rotation`` with probability ``rotation_prob``, else 0 (no random draw when both are 0,
    so that recipes without rotation reproduce their scenes)."""
    if rotation_any_prob and rng.random() < rotation_any_prob:
        return float(rng.uniform(-180.0, 180.0))
    if rotation_prob and rng.random() < rotation_prob:
        return float(rng.uniform(-rotation, rotation))
    return 0.0


def person_scene(images: np.ndarray, joints: np.ndarray, height: int, width: int,
                 rng: np.random.Generator, sigma: float = 1.5, max_people: int = 3,
                 person_scale: tuple[float, float] = (0.25, 0.9), rotation: float = 0.0,
                 rotation_prob: float = 0.0, rotation_any_prob: float = 0.0,
                 cover_prob: float = 0.0, distractor_prob: float = 0.0, cut_prob: float = 0.0,
                 companion_prob: float = 0.0, extra_centres: np.ndarray | None = None):
    """One person-detector sample: (input (3,H,W), target (1,H/8,W/8), centres (K,2) pixels).

    A random cached crop is the background (its annotated person, if inside, is a positive);
    0-2 more people are pasted with a feathered elliptical mask.  Every person's size (larger
    side of its joint box) is a uniform fraction ``person_scale`` of the scene height, and it
    is rotated about its centre as :func:`_scene_angle` draws.  With probability
    ``cover_prob`` the background is instead a crop enlarged to cover the whole scene (its
    person, 0.45-1.1 x the scene height and often cut by the border, is a positive if its
    centre is inside) and 1-3 people are pasted on it: small people then stand on a real
    background instead of a small picture on grey.  A person whose centre a later paste
    hides is not a target.  With probability ``distractor_prob`` 1-3
    :func:`distractors <.distractors.maybe_distract>` are drawn on the background before the
    people are pasted (a background person they hide is not a target).
    With probability ``cut_prob`` the scene is instead a webcam frame (:func:`_cut_scene`): one
    upright person cut by the scene's bottom edge below the hips, the target at the centre of the
    joints in view.  With probability ``companion_prob`` each pasted upright person gets a
    companion beside it (:func:`_paste_companion`): walkers in pairs, each a target, that a
    detector trained on scattered people merges into one peak.  ``extra_centres`` ((N, K, 2)
    crop pixels, NaN-padded; :mod:`.pseudo`) are more people in the cached crops: where a crop is
    the background they are targets too, instead of background.
    """
    rot = (rotation, rotation_prob, rotation_any_prob)
    extra = (images, joints, rng, person_scale, distractor_prob)
    n = len(images)
    framed = None
    if cut_prob and rng.random() < cut_prob:
        framed = _cut_scene(images, joints, height, width, rng)
    if framed is not None:
        return _paste_people(framed[0], [framed[1]], images, joints, height, width, rng, sigma,
                             0, person_scale, rot)
    if cover_prob and rng.random() < cover_prob:
        k = int(rng.integers(n))
        ck, _ = person_box(joints[k])
        side = images.shape[2]
        scale = max(width, height) / side * rng.uniform(1.0, 1.4)
        # the person's centre where the enlarged crop still covers the whole scene
        pos = np.array([rng.uniform(w - scale * (side - c), scale * c)
                        for w, c in ((width, ck[0]), (height, ck[1]))])
        m = np.array([[scale, 0.0, pos[0] - scale * ck[0]], [0.0, scale, pos[1] - scale * ck[1]]])
        scene = cv2.warpAffine(images[k], m, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
        others = _moved(extra_centres, k, m)
        if rng.random() < 0.5:
            scene = scene[:, ::-1].copy()
            pos[0] = width - 1 - pos[0]
            others[:, 0] = width - 1 - others[:, 0]
        scene, kept = maybe_distract(scene, [pos, *others], *extra)
        return _paste_people(scene, kept, images, joints, height, width, rng, sigma,
                             1 + int(rng.integers(0, max_people)), person_scale, rot,
                             companion_prob)
    base = int(rng.integers(n))
    c0, s0 = person_box(joints[base])
    frac = rng.uniform(*person_scale)
    scale = frac * height / max(s0, 8.0)
    shift = (rng.uniform(-0.45, 0.45) * width, rng.uniform(-0.3, 0.3) * height)
    m = affine(c0, scale, _scene_angle(rng, *rot), (width, height), shift)
    scene = cv2.warpAffine(images[base], m, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    c = m[:, :2] @ c0 + m[:, 2]
    others = _moved(extra_centres, base, m)
    if rng.random() < 0.5:
        scene = scene[:, ::-1].copy()
        c = np.array([width - 1 - c[0], c[1]])
        others[:, 0] = width - 1 - others[:, 0]
    scene, kept = maybe_distract(scene, [c, *others], *extra)
    return _paste_people(scene, kept, images, joints, height, width, rng, sigma,
                         int(rng.integers(0, max_people)), person_scale, rot, companion_prob)


def _moved(extra_centres: np.ndarray | None, k: int, m: np.ndarray) -> np.ndarray:
    """Crop ``k``'s extra person centres (pseudo-labels) through the affine ``m``: (K, 2)."""
    if extra_centres is None:
        return np.zeros((0, 2))
    pts = extra_centres[k][np.isfinite(extra_centres[k][:, 0])].astype(np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def _cut_scene(images: np.ndarray, joints: np.ndarray, height: int, width: int,
               rng: np.random.Generator, tries: int = 8):
    """A webcam frame for the person detector: an upright person (:func:`cut_view`, drawn
    among up to ``tries`` cached crops) whose view fills CUT_FILL of the scene height, with the
    cut line on the scene's bottom edge.  Returns (scene, centre of the box of the joints in
    view) or None when no drawn person is upright."""
    for _ in range(tries):
        k = int(rng.integers(len(images)))
        view = cut_view(joints[k], rng)
        if view is None:
            continue
        centre, size, below = view
        f = rng.uniform(*CUT_FILL) * height / max(size, 8.0)
        cut_y = np.nanmax(joints[k][HIPS, 1]) + below
        m = np.array([[f, 0.0, rng.uniform(0.25, 0.75) * width - f * centre[0]],
                      [0.0, f, height - 0.5 - f * cut_y]])        # the cut on the bottom edge
        scene = cv2.warpAffine(images[k], m, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
        j = warp_joints(joints[k], m)
        j = j[np.isfinite(j[:, 0]) & (j[:, 0] >= -0.5) & (j[:, 0] <= width - 0.5)
              & (j[:, 1] >= -0.5) & (j[:, 1] <= height - 0.5)]
        c = (j.min(0) + j.max(0)) / 2.0
        if rng.random() < 0.5:
            scene = scene[:, ::-1].copy()
            c = np.array([width - 1 - c[0], c[1]])
        return scene, c
    return None


def _paste_companion(scene, centres, beside, size, images, joints, rng):
    """Paste (in place) a random cached person, unrotated, ``size`` x 0.85-1.15 large, beside the
    person centred at ``beside``, COMPANION_GAP x size to its left or right, in a feathered box
    1.2 x its joints' box (tight, unlike the ellipse of the other pastes): two walkers side by
    side, each a target.  Returns the centres, the new one added (a centre the box hides is
    dropped; one outside the scene is dropped by the caller)."""
    k = int(rng.integers(len(images)))
    _, sk = person_box(joints[k])
    f = size * rng.uniform(0.85, 1.15) / max(sk, 8.0)
    to = np.asarray(beside) + (rng.choice((-1.0, 1.0)) * rng.uniform(*COMPANION_GAP) * size,
                               rng.uniform(-0.08, 0.08) * size)
    alpha = paste_at(scene, images[k], joints[k], f, to)
    if alpha is None:
        return centres
    return [c for c in centres if not covered(c, alpha, 0, 0)] + [to]


def _paste_people(scene, centres, images, joints, height, width, rng, sigma, count,
                  person_scale, rot, companion_prob: float = 0.0):
    """Paste ``count`` random people on ``scene`` (see :func:`person_scene`); returns the
    sample."""
    n = len(images)
    for _ in range(count):
        patch, centre, sk = person_window(images, joints, int(rng.integers(n)))
        f = rng.uniform(*person_scale) * height / max(sk, 8.0)
        ph, pw = max(4, int(patch.shape[0] * f)), max(4, int(patch.shape[1] * f))
        if ph >= height or pw >= width:
            continue
        patch = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA)
        alpha = feather_mask(ph, pw)
        pc = centre * f                                          # the person's centre in the patch
        angle = _scene_angle(rng, *rot)
        if angle:
            patch, alpha, pc = _rotate_patch(patch, alpha, pc, angle)
            ph, pw = patch.shape[:2]
            if ph >= height or pw >= width:
                continue
        px, py = int(rng.integers(0, width - pw)), int(rng.integers(0, height - ph))
        region = scene[py:py + ph, px:px + pw].astype(np.float32)
        scene[py:py + ph, px:px + pw] = (alpha * patch + (1 - alpha) * region).astype(np.uint8)
        centres = [c for c in centres if not covered(c, alpha, px, py)]   # hidden: no target
        centres.append(np.array([px + pc[0], py + pc[1]]))
        if companion_prob and not angle and rng.random() < companion_prob:
            centres = _paste_companion(scene, centres, centres[-1], sk * f, images, joints, rng)
    scene = colour_jitter(scene, rng)
    centres = np.array([c for c in centres if 0 <= c[0] < width and 0 <= c[1] < height]).reshape(-1, 2)
    h8, w8 = height // STRIDE, width // STRIDE
    target = gaussian_maps(h8, w8, to_map(centres), sigma).max(0, initial=0.0)[None]
    x = scene.transpose(2, 0, 1).astype(np.float32) / 256.0 - 0.5
    return x, target.astype(np.float32), centres
