"""Drawing of poses, belief maps and stages (pure numpy / OpenCV; the GUI reuses these).

* :func:`draw_result` - skeletons, joints, boxes with track ids and optional scores on a frame;
* :func:`heatmap_tiles` - the 14 last-stage joint maps of one person, tiled and labelled;
* :func:`stage_strip` - how the beliefs sharpen stage by stage, plus the crop with its skeleton.

All functions return new BGR uint8 images and never modify their inputs.
"""
from __future__ import annotations

import colorsys

import cv2
import numpy as np

from ..estimator.result import Person, PoseResult
from ..skeleton import JOINT_COLOURS, JOINT_LABELS, LIMB_COLOURS, LIMBS, NUM_JOINTS

FONT = cv2.FONT_HERSHEY_SIMPLEX
UNTRACKED_COLOUR = (200, 200, 200)
GAP = 2  # pixels between tiles
LINE_PER_PX, LINE_WIDTH = 100.0, (1, 8)      # a limb line 1 px per 100 px of person, 1 to 8 px
FONT_PER_PX, FONT_SCALE = 350.0, (0.3, 1.2)  # the box label's font scale per person px, its range


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour per track id (golden-ratio hues); grey for -1."""
    if track_id < 0:
        return UNTRACKED_COLOUR
    h = (track_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image.copy()


def _visible(joints: np.ndarray, threshold: float) -> np.ndarray:
    j = np.asarray(joints, dtype=np.float64)
    return np.isfinite(j[:, :2]).all(1) & (np.nan_to_num(j[:, 2], nan=-1.0) >= threshold)


def _pt(xy) -> tuple[int, int]:
    return int(round(float(xy[0]))), int(round(float(xy[1])))


def label(image: np.ndarray, text: str, org: tuple[int, int], colour=(255, 255, 255),
          scale: float = 0.4, thickness: int = 1, background=(0, 0, 0)) -> None:
    """Text with a filled background box; ``org`` is the box's top-left corner (in place)."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
    x, y = org
    h, w = image.shape[:2]
    x = min(max(0, x), max(0, w - tw - 4))
    y = min(max(0, y), max(0, h - th - base - 4))
    cv2.rectangle(image, (x, y), (x + tw + 4, y + th + base + 4), background, -1)
    cv2.putText(image, text, (x + 2, y + th + 2), FONT, scale, colour, thickness, cv2.LINE_AA)


def person_size(person: Person, image_shape: tuple[int, ...], joint_threshold: float = 0.1) -> float:
    """A person's size in image pixels, what its drawing scales with: the longer side of the box
    around its visible joints, else (fewer than two) 0.65 of its crop box cut to the image."""
    joints = np.asarray(person.joints, dtype=np.float64)
    vis = _visible(joints, joint_threshold)
    if vis.sum() >= 2:
        xy = joints[vis, :2]
        return float((xy.max(0) - xy.min(0)).max())
    h, w = image_shape[:2]
    x0, y0, x1, y1 = np.asarray(person.box, dtype=np.float64)
    return 0.65 * float(max(min(x1, w) - max(x0, 0), min(y1, h) - max(y0, 0), 0.0))


def drawing_sizes(size: float) -> tuple[int, float, int]:
    """(line width px, label font scale, label font thickness) for a person ``size`` pixels
    tall: proportional, within LINE_WIDTH and FONT_SCALE (a child in a 70x160 picture gets thin
    lines and a small label, a person filling an HD frame thick ones)."""
    line = int(np.clip(round(size / LINE_PER_PX), *LINE_WIDTH))
    font = float(np.clip(size / FONT_PER_PX, *FONT_SCALE))
    return line, font, 1 if font < 0.7 else 2


def draw_skeleton(image: np.ndarray, joints: np.ndarray, joint_threshold: float = 0.1,
                  colour: tuple[int, int, int] | None = None, thickness: int = 2,
                  show_scores: bool = False) -> np.ndarray:
    """Draw LIMBS and joints of one (14, 3) joint array on ``image`` in place (and return it).

    ``colour`` None uses the skeleton palette (per limb / joint), else one colour for all.
    Joints below ``joint_threshold`` or NaN are left out, as are limbs touching them.
    """
    joints = np.asarray(joints, dtype=np.float64)
    vis = _visible(joints, joint_threshold)
    for k, (a, b) in enumerate(LIMBS):
        if vis[a] and vis[b]:
            cv2.line(image, _pt(joints[a]), _pt(joints[b]), colour or LIMB_COLOURS[k],
                     thickness, cv2.LINE_AA)
    radius = max(2, thickness + 1)
    for j in range(NUM_JOINTS):
        if vis[j]:
            cv2.circle(image, _pt(joints[j]), radius, colour or JOINT_COLOURS[j], -1, cv2.LINE_AA)
            cv2.circle(image, _pt(joints[j]), radius, (0, 0, 0), 1, cv2.LINE_AA)
            if show_scores:
                x, y = _pt(joints[j])
                cv2.putText(image, f"{joints[j, 2]:.2f}", (x + radius + 1, y - radius), FONT,
                            0.3 + 0.05 * thickness, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def draw_result(frame: np.ndarray, result: PoseResult, show_boxes: bool = True,
                show_scores: bool = False, joint_threshold: float = 0.1,
                colour_by: str = "limb") -> np.ndarray:
    """An annotated copy of ``frame``: every person's skeleton, joints and (optionally) box.

    ``colour_by``: "limb" (skeleton palette) or "track" (one colour per track id).  Boxes are
    always in the track colour and labelled ``#id`` (``person k`` when untracked); with
    ``show_scores`` the label adds the centre score and each joint shows its confidence.
    """
    if colour_by not in ("limb", "track"):
        raise ValueError(f"colour_by must be 'limb' or 'track', not {colour_by!r}")
    image = _as_bgr(frame)
    for k, person in enumerate(result.persons):
        tc = track_colour(person.track_id)
        # line width, joint radius and label size follow the person's size (drawing_sizes)
        thickness, font, font_thickness = drawing_sizes(
            person_size(person, image.shape, joint_threshold))
        if show_boxes:
            x0, y0, x1, y1 = (int(round(float(v))) for v in person.box)
            cv2.rectangle(image, (x0, y0), (x1, y1), tc, thickness, cv2.LINE_AA)
            text = f"#{person.track_id}" if person.track_id >= 0 else f"person {k}"
            if show_scores:
                text += f" {person.centre_score:.2f}"
            (_, th), base = cv2.getTextSize(text, FONT, font, font_thickness)
            label(image, text, (x0, y0 - th - base - 4), colour=(0, 0, 0),
                  scale=font, thickness=font_thickness, background=tc)
        draw_skeleton(image, person.joints, joint_threshold,
                      colour=tc if colour_by == "track" else None, thickness=thickness,
                      show_scores=show_scores)
    return image


# ---------------------------------------------------------------------------------- maps
def crop_coords(person: Person, xy: np.ndarray) -> np.ndarray:
    """Frame pixels -> pixels of ``person.crop`` (the pipeline's pixel-centre convention)."""
    xy = np.asarray(xy, dtype=np.float64)
    return (xy - np.asarray(person.box[:2], dtype=np.float64)) * person.crop_scale - 0.5


def colour_map(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A belief map (values 0..1, clipped) -> JET-coloured BGR image of ``size`` (w, h)."""
    m = cv2.resize(np.asarray(m, dtype=np.float32), size, interpolation=cv2.INTER_LINEAR)
    return cv2.applyColorMap((np.clip(m, 0.0, 1.0) * 255).astype(np.uint8), cv2.COLORMAP_JET)


def _need_maps(person: Person) -> np.ndarray:
    if person.stage_maps is None:
        raise ValueError("this person has no stage maps; estimate with keep_maps=True")
    return np.asarray(person.stage_maps)


def _tile_size(person: Person, maps: np.ndarray, tile_size: int | None) -> tuple[int, int]:
    if tile_size:
        return int(tile_size), int(tile_size)
    if person.crop is not None:
        return person.crop.shape[1], person.crop.shape[0]
    return maps.shape[-1] * 8, maps.shape[-2] * 8


def _crop_tile(person: Person, size: tuple[int, int]) -> np.ndarray:
    if person.crop is None:
        return np.zeros((size[1], size[0], 3), np.uint8)
    return cv2.resize(_as_bgr(person.crop), size, interpolation=cv2.INTER_AREA)


def _map_tile(person: Person, m: np.ndarray, size, blend: bool) -> np.ndarray:
    heat = colour_map(m, size)
    if blend and person.crop is not None:
        return cv2.addWeighted(_crop_tile(person, size), 0.5, heat, 0.5, 0.0)
    return heat


def _skeleton_tile(person: Person, size: tuple[int, int]) -> np.ndarray:
    tile = _crop_tile(person, size)
    joints = person.raw_joints if person.raw_joints is not None else person.joints
    joints = np.array(joints, dtype=np.float64)
    if person.crop is not None:
        joints[:, :2] = crop_coords(person, joints[:, :2])
        joints[:, :2] *= size[0] / person.crop.shape[1]
    else:  # no crop: the maps' frame is boxsize = 8 * map size
        joints[:, :2] = crop_coords(person, joints[:, :2]) * size[0] / (8 * person.stage_maps.shape[-1])
    return draw_skeleton(tile, joints, 0.0, thickness=max(2, size[0] // 100))


def _grid(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    th, tw = tiles[0].shape[:2]
    rows = -(-len(tiles) // cols)
    out = np.full((rows * th + (rows - 1) * GAP, cols * tw + (cols - 1) * GAP, 3), 32, np.uint8)
    for n, tile in enumerate(tiles):
        r, c = divmod(n, cols)
        out[r * (th + GAP): r * (th + GAP) + th, c * (tw + GAP): c * (tw + GAP) + tw] = tile
    return out


def heatmap_tiles(person: Person, blend: bool = True, tile_size: int | None = None,
                  cols: int = 4) -> np.ndarray:
    """The 14 last-stage joint maps of ``person`` tiled ``cols`` wide (4 x 4 by default), each
    labelled with its joint name and JET-coloured (optionally blended over the crop), followed
    by an "all joints" tile (max over joints) and the crop with its skeleton."""
    maps = _need_maps(person)
    last = maps[-1, :NUM_JOINTS]
    size = _tile_size(person, maps, tile_size)
    tiles = []
    for j in range(NUM_JOINTS):
        tile = _map_tile(person, last[j], size, blend)
        label(tile, JOINT_LABELS[j], (0, 0))
        tiles.append(tile)
    tile = _map_tile(person, last.max(0), size, blend)
    label(tile, "all joints", (0, 0))
    tiles.append(tile)
    tile = _skeleton_tile(person, size)
    label(tile, "result", (0, 0))
    tiles.append(tile)
    return _grid(tiles, cols)


def stage_strip(person: Person, blend: bool = True, tile_size: int | None = None) -> np.ndarray:
    """Each stage's max-over-joints map side by side (labelled "stage k", k from 1), then the
    crop with the final skeleton (labelled "result")."""
    maps = _need_maps(person)
    size = _tile_size(person, maps, tile_size)
    tiles = []
    for k in range(maps.shape[0]):
        tile = _map_tile(person, maps[k, :NUM_JOINTS].max(0), size, blend)
        label(tile, f"stage {k + 1}", (0, 0))
        tiles.append(tile)
    tile = _skeleton_tile(person, size)
    label(tile, "result", (0, 0))
    tiles.append(tile)
    return _grid(tiles, len(tiles))
