"""Person-free distractors drawn on a person-detector scene (``distractor_prob``): the kinds of
thing the detector took for a person on street clips -- a striped tape, a box with panels, a
person's patch cut into shuffled tiles.  Their pixels are background (0) in the target.
"""
from __future__ import annotations

import cv2
import numpy as np

from .samples import covered, feather_mask, person_window


def maybe_distract(scene, centres, images, joints, rng, person_scale, prob):
    """Draw 1-3 distractors on ``scene`` with probability ``prob`` (no random draw when ``prob``
    is 0, so that recipes without distractors reproduce their scenes); returns (scene, the centres not hidden)."""
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
    return scene, centres if kind == 0 else [c for c in centres if not covered(c, alpha, 0, 0)]


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
    window, _, sk = person_window(images, joints, int(rng.integers(len(images))))
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
    mask[py:py + ph, px:px + pw] = (255 * feather_mask(ph, pw)[..., 0]).astype(np.uint8)
    return paint, mask
