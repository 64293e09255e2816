"""Training samples: augmentation of cached person crops and belief-map targets.

Pose samples: the person is scaled so its size (larger side of the joint box) is a random
fraction of the crop (``pose_scale``, 0.3-0.95 by default, or with ``zoom_prob``, 20 % by
default, 1.1-2.0 "zoomed" around the upper body so that waist-up, truncated framing is
covered), rotated (±40° 60 % of the time by default; optionally, with
``rotation_any_prob``, anywhere around the circle, for upside-down gymnasts), flipped with
left/right swap, translated and colour-jittered; optionally (``cut_prob``) an upright person
is framed as a webcam frames one at a desk, grey below a line under the hips.  Person-detector
samples ("scenes") place 1 to 3 people at random scales (``person_scale``), rotations (the same
rotation keys; the person recipes before 2026-12-01 had none) and positions on a background
crop, optionally on top of person-free distractors (``distractor_prob``: striped tape, boxes, a
person's patch cut into shuffled tiles) that must stay at 0 in the target, or (``cut_prob``)
show one upright person cut by the scene's bottom edge below the hips, as a webcam frame does.
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
CUT_FILL = (0.5, 1.1)        # person scenes, webcam frames: the view's size, a fraction of the height


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
    """2x3 matrix mapping source pixel coords so that ``centre`` lands on the output centre
    (plus ``shift``); ``out_size`` is a side or (width, height)."""
    w, h = (out_size, out_size) if np.isscalar(out_size) else out_size
    a = np.deg2rad(angle_deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * scale
    t = np.array([(w - 1) / 2.0 + shift[0], (h - 1) / 2.0 + shift[1]]) - r @ centre
    return np.hstack([r, t[:, None]])


def _warp_joints(joints: np.ndarray, m: np.ndarray) -> np.ndarray:
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
        view = _cut_view(joints, rng) if cut_prob and rng.random() < cut_prob else None
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
    m = _affine(centre, k, angle, size, shift)
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    j = _warp_joints(joints, m)
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


COMPANION_GAP = (0.35, 0.6)  # person scenes: a companion's centre beside a pasted person, x its size
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
    _paste_at(crop, other, other_joints, f, to)
    return crop


def _paste_at(canvas: np.ndarray, image: np.ndarray, joints: np.ndarray, f: float,
              to: np.ndarray) -> np.ndarray | None:
    """Paste (in place) the person of a cached crop (``image``, ``joints``) scaled by ``f`` with
    its joint-box centre at ``to``, inside a feathered box 1.2 x its joints' box
    (:func:`_box_alpha`); returns that mask, or None when no joint is annotated (nothing pasted)."""
    c, _ = person_box(joints)
    m = np.array([[f, 0.0, to[0] - f * c[0]], [0.0, f, to[1] - f * c[1]]])
    h, w = canvas.shape[:2]
    j = _warp_joints(joints, m)
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


def _cut_view(joints: np.ndarray, rng: np.random.Generator):
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


def _feather_mask(h: int, w: int) -> np.ndarray:
    ys = (np.arange(h) - (h - 1) / 2) / (h / 2)
    xs = (np.arange(w) - (w - 1) / 2) / (w / 2)
    r = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    return np.clip((1.0 - r) / 0.25, 0, 1).astype(np.float32)[..., None]


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
    hides is no longer a target (before 2026-12-01 it stayed one).  With probability
    ``distractor_prob`` 1-3 :func:`distractors <_paste_distractors>` are drawn on the background
    before the people are pasted (a background person they hide is no longer a target).
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
        scene, kept = _maybe_distract(scene, [pos, *others], *extra)
        return _paste_people(scene, kept, images, joints, height, width, rng, sigma,
                             1 + int(rng.integers(0, max_people)), person_scale, rot,
                             companion_prob)
    base = int(rng.integers(n))
    c0, s0 = person_box(joints[base])
    frac = rng.uniform(*person_scale)
    scale = frac * height / max(s0, 8.0)
    shift = (rng.uniform(-0.45, 0.45) * width, rng.uniform(-0.3, 0.3) * height)
    m = _affine(c0, scale, _scene_angle(rng, *rot), (width, height), shift)
    scene = cv2.warpAffine(images[base], m, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    c = m[:, :2] @ c0 + m[:, 2]
    others = _moved(extra_centres, base, m)
    if rng.random() < 0.5:
        scene = scene[:, ::-1].copy()
        c = np.array([width - 1 - c[0], c[1]])
        others[:, 0] = width - 1 - others[:, 0]
    scene, kept = _maybe_distract(scene, [c, *others], *extra)
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
    """A webcam frame for the person detector: an upright person (:func:`_cut_view`, drawn
    among up to ``tries`` cached crops) whose view fills CUT_FILL of the scene height, with the
    cut line on the scene's bottom edge.  Returns (scene, centre of the box of the joints in
    view) or None when no drawn person is upright."""
    for _ in range(tries):
        k = int(rng.integers(len(images)))
        view = _cut_view(joints[k], rng)
        if view is None:
            continue
        centre, size, below = view
        f = rng.uniform(*CUT_FILL) * height / max(size, 8.0)
        cut_y = np.nanmax(joints[k][HIPS, 1]) + below
        m = np.array([[f, 0.0, rng.uniform(0.25, 0.75) * width - f * centre[0]],
                      [0.0, f, height - 0.5 - f * cut_y]])        # the cut on the bottom edge
        scene = cv2.warpAffine(images[k], m, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
        j = _warp_joints(joints[k], m)
        j = j[np.isfinite(j[:, 0]) & (j[:, 0] >= -0.5) & (j[:, 0] <= width - 0.5)
              & (j[:, 1] >= -0.5) & (j[:, 1] <= height - 0.5)]
        c = (j.min(0) + j.max(0)) / 2.0
        if rng.random() < 0.5:
            scene = scene[:, ::-1].copy()
            c = np.array([width - 1 - c[0], c[1]])
        return scene, c
    return None


def _maybe_distract(scene, centres, images, joints, rng, person_scale, prob):
    """Draw 1-3 distractors on ``scene`` with probability ``prob`` (no random draw when ``prob``
    is 0, so older recipes reproduce their scenes); returns (scene, the centres not hidden)."""
    if not prob or rng.random() >= prob:
        return scene, centres
    for _ in range(1 + int(rng.integers(0, 3))):
        scene, centres = _paste_distractors(scene, centres, images, joints, rng, person_scale)
    return scene, centres


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _paste_distractors(scene, centres, images, joints, rng, person_scale):
    """One person-free distractor on ``scene``, the kind of thing the detector took for a
    person on street clips: a striped tape across the scene (barrier tape, kerbs), a box with
    panels (vans, signs, bins), or a person's patch cut into 3 x 3 shuffled tiles (people's
    colours and textures without a body's layout).  Returns (the new scene, the ``centres`` it
    does not hide; a tape, a few pixels thick, hides none)."""
    kind = int(rng.integers(3))
    size = rng.uniform(*person_scale) * scene.shape[0]
    if kind == 0:
        paint, mask = _tape(scene, rng)
    elif kind == 1:
        paint, mask = _panel_box(scene, size, rng)
    else:
        paint, mask = _shuffled_person(scene, size, images, joints, rng)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    scene = (alpha * paint + (1 - alpha) * scene).astype(np.uint8)
    return scene, centres if kind == 0 else [c for c in centres if not _covered(c, alpha, 0, 0)]


def _tape(scene: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A straight tape of two alternating colours, 1 to 4 % of the scene height thick:
    (painted scene, mask 0/255)."""
    h, w = scene.shape[:2]
    paint, mask = scene.copy(), np.zeros((h, w), np.uint8)
    start = np.array([rng.uniform(0, w), rng.uniform(0, h)])
    angle = rng.uniform(0, np.pi)
    d = np.array([np.cos(angle), np.sin(angle)])
    length = rng.uniform(0.3, 1.2) * w
    thick = int(rng.integers(1, max(2, int(0.04 * h)) + 1))
    seg = rng.uniform(4, 16)
    colours = (_random_colour(rng), _random_colour(rng))
    for k in range(int(length / seg)):
        a = start + d * (k * seg - length / 2)
        pa, pb = tuple(int(v) for v in a), tuple(int(v) for v in a + d * seg)
        cv2.line(paint, pa, pb, colours[k % 2], thick)
        cv2.line(mask, pa, pb, 255, thick)
    return paint, mask


def _panel_box(scene: np.ndarray, size: float, rng: np.random.Generator):
    """A skewed box of one colour (0.5-2 x ``size`` wide, 0.3-1 x high) with up to three
    rectangles or ellipses on it (windows, wheels, labels): (painted scene, mask 0/255)."""
    h, w = scene.shape[:2]
    paint, mask = scene.copy(), np.zeros((h, w), np.uint8)
    bw, bh = size * rng.uniform(0.5, 2.0), size * rng.uniform(0.3, 1.0)
    x0 = rng.uniform(-0.2 * bw, max(-0.2 * bw, w - 0.8 * bw))   # at least 0.8 of it inside
    y0 = rng.uniform(-0.2 * bh, max(-0.2 * bh, h - 0.8 * bh))   # where the scene is big enough
    box = np.array([[x0, y0], [x0 + bw, y0], [x0 + bw, y0 + bh], [x0, y0 + bh]])
    box = (box + rng.normal(0, 0.05 * size, box.shape)).astype(np.int32)
    cv2.fillPoly(paint, [box], _random_colour(rng))
    cv2.fillPoly(mask, [box], 255)
    for _ in range(int(rng.integers(0, 4))):
        px, py = x0 + rng.uniform(0, 0.8) * bw, y0 + rng.uniform(0, 0.8) * bh
        pw, ph = rng.uniform(0.1, 0.4) * bw, rng.uniform(0.1, 0.4) * bh
        if rng.random() < 0.5:
            cv2.rectangle(paint, (int(px), int(py)), (int(px + pw), int(py + ph)), _random_colour(rng), -1)
        else:
            cv2.ellipse(paint, ((px + pw / 2, py + ph / 2), (pw, ph), 0), _random_colour(rng), -1)
    return paint, mask


def _shuffled_person(scene: np.ndarray, size: float, images, joints, rng: np.random.Generator):
    """A random cached person scaled to ``size``, cut into 3 x 3 tiles and shuffled so that the
    middle tile (the body's centre) moves: (painted scene, feathered mask 0-255); nothing is
    painted when the patch would not fit."""
    h, w = scene.shape[:2]
    paint, mask = scene.copy(), np.zeros((h, w), np.uint8)
    window, _, sk = _person_window(images, joints, int(rng.integers(len(images))))
    f = size / max(sk, 8.0)
    th, tw = max(2, int(window.shape[0] * f / 3)), max(2, int(window.shape[1] * f / 3))
    ph, pw = 3 * th, 3 * tw
    if ph >= h or pw >= w:
        return paint, mask
    patch = cv2.resize(window, (pw, ph), interpolation=cv2.INTER_AREA)
    tiles = [patch[i * th:(i + 1) * th, j * tw:(j + 1) * tw] for i in range(3) for j in range(3)]
    order = rng.permutation(9)
    while order[4] == 4:
        order = rng.permutation(9)
    px, py = int(rng.integers(0, w - pw)), int(rng.integers(0, h - ph))
    paint[py:py + ph, px:px + pw] = np.vstack([np.hstack([tiles[order[3 * i + j]] for j in range(3)])
                                               for i in range(3)])
    mask[py:py + ph, px:px + pw] = (255 * _feather_mask(ph, pw)[..., 0]).astype(np.uint8)
    return paint, mask


def _person_window(images: np.ndarray, joints: np.ndarray, k: int):
    """Cached person ``k``'s window (its joint box widened by 0.6 x size + 6 px, 1.1 x that
    vertically, clipped to the crop): (window view, the person's centre in it, size)."""
    ck, sk = person_box(joints[k])
    half = 0.6 * sk + 6
    x0, y0 = int(max(0, ck[0] - half)), int(max(0, ck[1] - half * 1.1))
    x1, y1 = int(min(images.shape[2], ck[0] + half)), int(min(images.shape[1], ck[1] + half * 1.1))
    return images[k, y0:y1, x0:x1], ck - np.array((x0, y0), ck.dtype), sk   # in the joints' dtype


def _covered(c: np.ndarray, alpha: np.ndarray, px: int, py: int) -> bool:
    """Whether a patch pasted at (px, py) with mask ``alpha`` hides the point ``c``."""
    x, y = int(round(c[0])) - px, int(round(c[1])) - py
    return 0 <= y < alpha.shape[0] and 0 <= x < alpha.shape[1] and alpha[y, x, 0] > 0.5


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
    alpha = _paste_at(scene, images[k], joints[k], f, to)
    if alpha is None:
        return centres
    return [c for c in centres if not _covered(c, alpha, 0, 0)] + [to]


def _paste_people(scene, centres, images, joints, height, width, rng, sigma, count,
                  person_scale, rot, companion_prob: float = 0.0):
    """Paste ``count`` random people on ``scene`` (see :func:`person_scene`); returns the
    sample."""
    n = len(images)
    for _ in range(count):
        patch, centre, sk = _person_window(images, joints, int(rng.integers(n)))
        f = rng.uniform(*person_scale) * height / max(sk, 8.0)
        ph, pw = max(4, int(patch.shape[0] * f)), max(4, int(patch.shape[1] * f))
        if ph >= height or pw >= width:
            continue
        patch = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA)
        alpha = _feather_mask(ph, pw)
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
        centres = [c for c in centres if not _covered(c, alpha, px, py)]   # hidden: no target
        centres.append(np.array([px + pc[0], py + pc[1]]))
        if companion_prob and not angle and rng.random() < companion_prob:
            centres = _paste_companion(scene, centres, centres[-1], sk * f, images, joints, rng)
    scene = colour_jitter(scene, rng)
    centres = np.array([c for c in centres if 0 <= c[0] < width and 0 <= c[1] < height]).reshape(-1, 2)
    h8, w8 = height // STRIDE, width // STRIDE
    target = gaussian_maps(h8, w8, to_map(centres), sigma).max(0, initial=0.0)[None]
    x = scene.transpose(2, 0, 1).astype(np.float32) / 256.0 - 0.5
    return x, target.astype(np.float32), centres
