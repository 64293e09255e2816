"""Frames and crops of the pipeline (:mod:`.pipeline`): the frame prepared for the nets (BGR,
scaled to the boxsize or the detector size, padded, normalised) and the boxsize x boxsize crops
cut from it (:class:`Crop`: where a crop lies in the frame, its joints in frame pixels, maps of
one crop resampled onto another's grid; a tracked person's crop and the tracks' plan of a frame).
Moved out of ``pipeline.py``, which re-exports them.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from . import maps
from .decode import joint_peaks, person_extent

PAD_VALUE = 128
DETECTOR_STRIDE = 32       # the detector's input is padded to a multiple of this (MobileNet trunks)
SPLIT_DISTANCE = 0.3       # detections this far apart across (x the box's larger side) in one
                           # track's box are two people
RESCALE_TOLERANCE = 1.25   # rescale a person whose size is off the target by more than this factor


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """A BGR uint8 HxWx3 view/copy of a BGR, grayscale (HxW, HxWx1) or BGRA uint8 frame."""
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame must be a numpy array, not {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8, not {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        out = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.ndim == 3 and frame.shape[2] == 3:
        out = frame
    elif frame.ndim == 3 and frame.shape[2] == 4:
        out = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    else:
        raise ValueError(f"frame of shape {frame.shape} is not an image; expected HxW, HxWx1, "
                         "HxWx3 (BGR) or HxWx4 (BGRA)")
    if out.shape[0] < 1 or out.shape[1] < 1:
        raise ValueError(f"frame of shape {frame.shape} is empty")
    return out


def scale_frame(bgr: np.ndarray, boxsize: int) -> tuple[np.ndarray, float, float]:
    """Scale to height ``boxsize``; returns (scaled, sx, sy) with sx, sy = new / old size."""
    h, w = bgr.shape[:2]
    nw = max(1, int(round(w * boxsize / h)))
    if (nw, boxsize) == (w, h):
        return bgr, 1.0, 1.0
    interp = cv2.INTER_AREA if boxsize < h else cv2.INTER_LINEAR
    return cv2.resize(bgr, (nw, boxsize), interpolation=interp), nw / w, boxsize / h


def detector_frame(bgr: np.ndarray, size: int) -> tuple[np.ndarray, float, float]:
    """The person detector's input: ``bgr`` scaled so that its longer side is ``size`` pixels,
    padded right / bottom to a multiple of DETECTOR_STRIDE with grey; returns (image, sx, sy)."""
    h, w = bgr.shape[:2]
    s = size / max(h, w)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    if (nw, nh) != (w, h):
        bgr = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return pad_to_stride(bgr, DETECTOR_STRIDE), nw / w, nh / h


def normalise(bgr: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> 3xHxW float32 in [-0.5, 0.5)."""
    return (bgr.astype(np.float32) / 256.0 - 0.5).transpose(2, 0, 1)


def pad_to_stride(img: np.ndarray, stride: int = maps.STRIDE) -> np.ndarray:
    """Pad right / bottom with grey to multiples of ``stride``."""
    h, w = img.shape[:2]
    ph, pw = -h % stride, -w % stride
    if ph == 0 and pw == 0:
        return img
    return cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT,
                              value=(PAD_VALUE, PAD_VALUE, PAD_VALUE))


def crop_offset(centre_xy: np.ndarray, boxsize: int) -> tuple[int, int]:
    """Integer top-left (ox, oy) of the boxsize crop whose centre (boxsize-1)/2 is nearest to
    ``centre_xy`` (scaled-frame pixels)."""
    c = (boxsize - 1) / 2.0
    return int(np.floor(centre_xy[0] - c + 0.5)), int(np.floor(centre_xy[1] - c + 0.5))


def crop(img: np.ndarray, ox: int, oy: int, size: int) -> np.ndarray:
    """size x size crop of ``img`` at top-left (ox, oy); grey 128 outside the image."""
    h, w = img.shape[:2]
    out = np.full((size, size) + img.shape[2:], PAD_VALUE, dtype=img.dtype)
    x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + size, w), min(oy + size, h)
    if x1 > x0 and y1 > y0:
        out[y0 - oy:y1 - oy, x0 - ox:x1 - ox] = img[y0:y1, x0:x1]
    return out


def frame_cells(ox: int, oy: int, map_shape: tuple[int, int],
                frame_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks over map rows / columns of a crop at (ox, oy): the cells that overlap the
    scaled frame (a cell covers its centre +- 4 px), i.e. are not grey padding only."""
    (mh, mw), (h, w) = map_shape, frame_shape
    half = maps.STRIDE / 2.0
    xs = maps.from_map(np.arange(mw)) + ox
    ys = maps.from_map(np.arange(mh)) + oy
    return (ys + half > -0.5) & (ys - half < h - 0.5), (xs + half > -0.5) & (xs - half < w - 0.5)


@dataclasses.dataclass
class Crop:
    """One boxsize x boxsize pose-net input and where it lies in the frame.

    Crop pixel u and frame pixel x (pixel-centre convention) are related by
    u = (x + 0.5) * kx - 0.5 - ox (the same along y), i.e. the crop starts at (ox, oy) in the
    frame scaled by (kx, ky) whose shape is ``scaled_shape``.
    """
    image: np.ndarray                 # (b, b, 3) uint8 BGR
    ox: float
    oy: float
    kx: float                         # crop pixels per frame pixel
    ky: float
    scaled_shape: tuple[float, float]  # (h, w) of the frame in crop pixels

    @classmethod
    def from_scaled(cls, scaled: np.ndarray, centre: np.ndarray, b: int,
                    sx: float, sy: float) -> "Crop":
        """The crop of the frame scaled to height b (``scaled``), centred on ``centre``
        (scaled-frame pixels) at an integer offset."""
        ox, oy = crop_offset(centre, b)
        return cls(crop(scaled, ox, oy, b), ox, oy, sx, sy, scaled.shape[:2])

    @classmethod
    def rescaled(cls, bgr: np.ndarray, centre: np.ndarray, side: float, b: int) -> "Crop":
        """The crop of a ``side`` x ``side`` window of the frame centred on ``centre`` (frame
        pixels), resized to b x b (grey outside the frame)."""
        h = max(int(round(side)), maps.STRIDE)
        x0, y0 = crop_offset(centre, h)
        window = crop(bgr, x0, y0, h)
        interp = cv2.INTER_AREA if h > b else cv2.INTER_LINEAR
        k = b / h
        fh, fw = bgr.shape[:2]
        return cls(cv2.resize(window, (b, b), interpolation=interp), x0 * k, y0 * k, k, k,
                   (fh * k, fw * k))

    def joints(self, beliefs: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
        """(14, 3) x, y (frame pixels), score from the crop's last-stage joint maps."""
        fh, fw = frame_shape
        rows, cols = frame_cells(self.ox, self.oy, beliefs.shape[1:], self.scaled_shape)
        peak = joint_peaks(beliefs, rows, cols)
        xy = maps.from_map(peak[:, :2]) + (self.ox, self.oy)      # scaled-frame pixels
        out = np.empty((len(beliefs), 3), dtype=np.float64)
        out[:, 0] = np.clip((xy[:, 0] + 0.5) / self.kx - 0.5, -0.5, fw - 0.5)
        out[:, 1] = np.clip((xy[:, 1] + 0.5) / self.ky - 0.5, -0.5, fh - 0.5)
        out[:, 2] = np.clip(peak[:, 2], 0.0, 1.0)
        return out

    def box(self) -> np.ndarray:
        """x0, y0, x1, y1 of the crop's outer edges in frame pixels."""
        b = self.image.shape[0]
        return np.array([self.ox / self.kx - 0.5, self.oy / self.ky - 0.5,
                         (self.ox + b) / self.kx - 0.5, (self.oy + b) / self.ky - 0.5])


def zoomed_onto(beliefs: np.ndarray, src: Crop, dst: Crop) -> tuple[np.ndarray, np.ndarray]:
    """``beliefs`` (C, h, w) of crop ``src`` resampled onto the map grid of crop ``dst`` (both
    crops of one frame), and how much of each dst cell src covers (0..1; 0 outside it).

    Per axis, a crop pixel is u = (x + 0.5) k - 0.5 - o for frame pixel x, so
    u_dst = a u_src + t with a = k_dst / k_src and t = (o_src + 0.5) a - 0.5 - o_dst; in map
    cells (u = STRIDE c + OFFSET) c_dst = a c_src + (a OFFSET + t - OFFSET) / STRIDE.
    """
    m = np.zeros((2, 3), np.float64)
    for axis, (ks, os_, kd, od) in enumerate(((src.kx, src.ox, dst.kx, dst.ox),
                                              (src.ky, src.oy, dst.ky, dst.oy))):
        a = kd / ks
        t = (os_ + 0.5) * a - 0.5 - od
        m[axis, axis] = a
        m[axis, 2] = (a * maps.OFFSET + t - maps.OFFSET) / maps.STRIDE
    c, h, w = beliefs.shape
    warp = lambda img: cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR,  # noqa: E731
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = warp(np.ascontiguousarray(beliefs.transpose(1, 2, 0), dtype=np.float32))
    cover = warp(np.ones((h, w), np.float32))
    return out.reshape(h, w, c).transpose(2, 0, 1), cover


def track_crop(bgr: np.ndarray, scaled: tuple, joints_xy: np.ndarray, box: np.ndarray,
               scale: float, shift: np.ndarray, fraction: float, b: int) -> Crop:
    """The crop of a tracked person: its last crop (``box`` in frame pixels, ``scale`` crop
    pixels per frame pixel) moved by the track's predicted ``shift`` and cut the same way (from
    ``scaled`` = :func:`scale_frame` (image, sx, sy) as the detector path cuts it, or as a
    resized window as the rescale pass cuts it: on a still person the very same crop), as long
    as the person's size (the box of its predicted joints) stays within RESCALE_TOLERANCE of
    ``fraction`` of it; else the window around those joints that they fill to ``fraction``.
    Keeping the last crop, not re-fitting it to the joints on every frame, keeps the errors of
    one frame's joints out of the next frame's crop."""
    centre, size = person_extent(joints_xy)
    size = max(size, float(maps.STRIDE))
    side = float(max(box[2] - box[0], box[3] - box[1]))
    ratio = size / (fraction * side) if side > 0 else 0.0
    if ratio <= 0 or abs(np.log(ratio)) > np.log(RESCALE_TOLERANCE):
        return Crop.rescaled(bgr, centre, size / fraction, b)
    moved = (box[:2] + box[2:]) / 2 + shift
    image, sx, sy = scaled
    if abs(scale - sy) <= 1e-9 * sy:          # last cut from the scaled frame: again so
        return Crop.from_scaled(image, (moved + 0.5) * (sx, sy) - 0.5, b, sx, sy)
    return Crop.rescaled(bgr, moved, side, b)


@dataclasses.dataclass
class TrackPlan:
    """The tracked persons of a frame: their crops, joint boxes (x0, y0, x1, y1, frame pixels),
    box centres, last pose scores and track ids; whether the detector must run, and why."""
    crops: list = dataclasses.field(default_factory=list)
    ids: list = dataclasses.field(default_factory=list)
    boxes: list = dataclasses.field(default_factory=list)
    scores: list = dataclasses.field(default_factory=list)
    centres: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 2)))
    detect: bool = False
    reason: str = "tracked"

    def drop(self, tracks: list[int]) -> None:
        """Leave out the tracks at these indices (their crops slid onto someone else)."""
        keep = [t for t in range(len(self.crops)) if t not in set(tracks)]
        for name in ("crops", "ids", "boxes", "scores"):
            setattr(self, name, [getattr(self, name)[t] for t in keep])
        self.centres = self.centres[keep].reshape(-1, 2)

    def covers(self, xy: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Which of the (K, 2) frame points (detector centres) fall in a track's joint box, and
        which tracks to cut from the detections instead: a track whose box holds detections
        side by side, farther apart across than SPLIT_DISTANCE x the box's larger side, is
        likely one skeleton across two people walking together (the second would never get a
        track of its own); its detections then count as new persons and its own crop is left
        out of this frame.  (Two peaks one above the other, head and hips, are one tall person.)"""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        inside = np.zeros(len(xy), bool)
        split = []
        for t, bx in enumerate(self.boxes):
            mine = ((xy[:, 0] >= bx[0]) & (xy[:, 0] <= bx[2]) & (xy[:, 1] >= bx[1])
                    & (xy[:, 1] <= bx[3]))
            pts = xy[mine]
            if len(pts) > 1 and (np.ptp(pts[:, 0])
                                 > SPLIT_DISTANCE * max(bx[3] - bx[1], bx[2] - bx[0], maps.STRIDE)):
                split.append(t)
                continue
            inside |= mine
        return inside, split
