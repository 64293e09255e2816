"""Frames and crops of the pipeline (:mod:`.pipeline`): the frame prepared for the detector
(BGR, scaled to the detector size, padded) and the boxsize x boxsize crops cut from the frame
(:func:`cut`: one cv2.warpAffine each, no scaled copy of the whole frame; :class:`Crop`: where
a crop lies in the frame, its joints in frame pixels, maps of one crop resampled onto another's
grid).  A tracked person's crop and the tracks' plan of a frame: :mod:`.tracked`.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from . import maps
from .decode import joint_peaks

PAD_VALUE = 128
DETECTOR_STRIDE = 32       # the detector's input is padded to a multiple of this (MobileNet trunks)
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


def scaled_size(shape: tuple, boxsize: int) -> tuple[float, float, tuple[int, int]]:
    """(sx, sy, (h, w)) of :func:`scale_frame` without scaling anything: the frame of
    ``shape`` scaled to height ``boxsize`` (sx, sy = new / old size)."""
    h, w = shape[:2]
    nw = max(1, int(round(w * boxsize / h)))
    if (nw, boxsize) == (w, h):
        return 1.0, 1.0, (h, w)
    return nw / w, boxsize / h, (boxsize, nw)


def scale_frame(bgr: np.ndarray, boxsize: int) -> tuple[np.ndarray, float, float]:
    """Scale to height ``boxsize``; returns (scaled, sx, sy) with sx, sy = new / old size.
    (The pipeline does not scale whole frames: it cuts each crop from the frame, :func:`cut`.)"""
    sx, sy, (nh, nw) = scaled_size(bgr.shape, boxsize)
    if (sx, sy) == (1.0, 1.0):
        return bgr, 1.0, 1.0
    interp = cv2.INTER_AREA if boxsize < bgr.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(bgr, (nw, nh), interpolation=interp), sx, sy


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


def cut(bgr: np.ndarray, kx: float, ky: float, ox: float, oy: float, b: int,
        out: np.ndarray | None = None) -> np.ndarray:
    """The b x b crop whose pixel u is frame pixel x = (u + ox + 0.5) / kx - 0.5 (along y the
    same, with ky, oy): the pixel-centre convention of cv2.resize, so that it equals cutting
    the frame scaled by (kx, ky) at (ox, oy), within interpolation noise, without scaling the
    frame.  One cv2.warpAffine (bilinear, the frame's edge pixels repeated for the taps beyond
    it) into ``out`` (a reused (b, b, 3) uint8 buffer) when given; the crop pixels whose centre
    lies outside the frame are grey (a hard edge, as in a crop of the scaled frame).  A frame
    shrunk by f >= 2 (f = floor(1 / k)) is first averaged over f x f pixel blocks
    (cv2.INTER_AREA at an integer factor, on the window the crop covers only) so that the crop
    does not alias, as cv2.resize's INTER_AREA does not."""
    fh, fw = bgr.shape[:2]
    f = int(1.0 / max(kx, ky))
    x0 = y0 = 0
    src, scale = bgr, 1.0
    if f >= 2:
        # the frame window under the crop (+ the bilinear taps), on the f-grid of the frame
        xa, xb = (ox + 0.5) / kx - 1.5, (ox + b + 0.5) / kx + 0.5
        ya, yb = (oy + 0.5) / ky - 1.5, (oy + b + 0.5) / ky + 0.5
        x0, y0 = max(int(np.floor(xa / f)) * f, 0), max(int(np.floor(ya / f)) * f, 0)
        nx = min(int(np.ceil((xb - x0) / f)) + 1, (fw - x0) // f)
        ny = min(int(np.ceil((yb - y0) / f)) + 1, (fh - y0) // f)
        if nx > 0 and ny > 0:
            src = cv2.resize(bgr[y0:y0 + ny * f, x0:x0 + nx * f], (nx, ny),
                             interpolation=cv2.INTER_AREA)
            scale = float(f)
        else:             # the crop lies outside the frame (all grey below)
            x0 = y0 = 0
    # block pixel p covers frame pixels x0 + f p ... x0 + f p + f - 1: x = x0 + (f-1)/2 + f p
    c = (scale - 1.0) / 2.0
    m = np.array([[1.0 / (kx * scale), 0.0, ((ox + 0.5) / kx - 0.5 - x0 - c) / scale],
                  [0.0, 1.0 / (ky * scale), ((oy + 0.5) / ky - 0.5 - y0 - c) / scale]])
    img = cv2.warpAffine(src, m, (b, b), dst=out, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    # crop pixel u shows the frame when (u + ox + 0.5) / kx lies in [0, fw)
    u0, u1 = (int(np.clip(np.ceil(t - ox - 0.5), 0, b)) for t in (0.0, fw * kx))
    v0, v1 = (int(np.clip(np.ceil(t - oy - 0.5), 0, b)) for t in (0.0, fh * ky))
    if u0 or v0 or u1 < b or v1 < b:
        img[:v0] = PAD_VALUE
        img[v1:] = PAD_VALUE
        img[:, :u0] = PAD_VALUE
        img[:, u1:] = PAD_VALUE
    return img


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
    def centred(cls, bgr: np.ndarray, centre: np.ndarray, b: int, scaled: tuple,
                out: np.ndarray | None = None) -> "Crop":
        """The crop of the frame scaled to height b (``scaled`` = :func:`scaled_size`'s (sx,
        sy, shape)), centred on ``centre`` (scaled-frame pixels) at an integer offset; cut
        from the frame itself (:func:`cut`), not from a scaled copy."""
        sx, sy, shape = scaled
        ox, oy = crop_offset(centre, b)
        return cls(cut(bgr, sx, sy, ox, oy, b, out), ox, oy, sx, sy, shape)

    @classmethod
    def rescaled(cls, bgr: np.ndarray, centre: np.ndarray, side: float, b: int,
                 out: np.ndarray | None = None) -> "Crop":
        """The crop of a ``side`` x ``side`` window of the frame centred on ``centre`` (frame
        pixels), scaled to b x b (grey outside the frame; :func:`cut`)."""
        h = max(int(round(side)), maps.STRIDE)
        x0, y0 = crop_offset(centre, h)
        k = b / h
        fh, fw = bgr.shape[:2]
        return cls(cut(bgr, k, k, x0 * k, y0 * k, b, out), x0 * k, y0 * k, k, k,
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
