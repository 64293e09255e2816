"""Belief-map geometry shared by training targets and inference decoding.

Convention: map cell (row i, column j) at stride 8 is centred on input pixel
(x, y) = (8 j + 3.5, 8 i + 3.5), so ``to_map`` / ``from_map`` are exact inverses and the
targets the nets learn are decoded without bias.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter

STRIDE = 8
OFFSET = (STRIDE - 1) / 2.0  # 3.5


def to_map(xy: np.ndarray) -> np.ndarray:
    """Input-pixel coordinates -> map coordinates."""
    return (np.asarray(xy, dtype=np.float64) - OFFSET) / STRIDE


def from_map(uv: np.ndarray) -> np.ndarray:
    """Map coordinates -> input-pixel coordinates."""
    return np.asarray(uv, dtype=np.float64) * STRIDE + OFFSET


def gaussian_maps(h: int, w: int, centres_uv: np.ndarray, sigma: float) -> np.ndarray:
    """(K, h, w) float32 Gaussians with peak 1 at map coordinates ``centres_uv`` (K, 2).

    A centre with a NaN coordinate gives an all-zero map.
    """
    centres_uv = np.asarray(centres_uv, dtype=np.float32).reshape(-1, 2)
    ys = np.arange(h, dtype=np.float32)[None, :, None]
    xs = np.arange(w, dtype=np.float32)[None, None, :]
    cu = centres_uv[:, 0][:, None, None]
    cv = centres_uv[:, 1][:, None, None]
    out = np.exp(-((xs - cu) ** 2 + (ys - cv) ** 2) / (2.0 * sigma * sigma))
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


def centre_map(size: int, sigma_px: float) -> np.ndarray:
    """(size, size) float32 Gaussian centre map (peak 1 at the crop centre), the pose net's 4th channel."""
    c = (size - 1) / 2.0
    r = np.arange(size, dtype=np.float32) - c
    g = np.exp(-(r * r) / (2.0 * sigma_px * sigma_px))
    return np.outer(g, g).astype(np.float32)


def refine(m: np.ndarray, i: int, j: int) -> tuple[float, float]:
    """Sub-cell offset of a local maximum from its 3x3 neighbourhood, per axis.

    A parabola through the logarithms of the three values (exact for Gaussian peaks, which is
    what the nets are trained to produce) where all three are positive, else through the values.
    """
    h, w = m.shape

    def offset(a: float, b: float, c: float) -> float:
        if a > 1e-6 and b > 1e-6 and c > 1e-6:
            a, b, c = np.log(a), np.log(b), np.log(c)
        den = a - 2.0 * b + c
        return 0.0 if den >= 0 else float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))

    dx = offset(m[i, j - 1], m[i, j], m[i, j + 1]) if 0 < j < w - 1 else 0.0
    dy = offset(m[i - 1, j], m[i, j], m[i + 1, j]) if 0 < i < h - 1 else 0.0
    return dx, dy


def _offsets(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """:func:`refine`'s offset along one axis for arrays of three neighbouring values."""
    logs = (a > 1e-6) & (b > 1e-6) & (c > 1e-6)
    with np.errstate(divide="ignore", invalid="ignore"):
        if logs.any():
            a, b, c = (np.where(logs, np.log(np.where(logs, v, 1)), v) for v in (a, b, c))
        den = a - 2.0 * b + c
        off = np.clip(0.5 * (a - c) / den, -0.5, 0.5)
    return np.where(den >= 0, 0.0, off)


def argmax_subpixel(maps: np.ndarray) -> np.ndarray:
    """(K, h, w) maps -> (K, 3) with (u, v, value) of each map's maximum, refined to sub-cell
    (:func:`refine` on all K maps at once)."""
    k, h, w = maps.shape
    i, j = np.divmod(maps.reshape(k, -1).argmax(1), w)
    n = np.arange(k)
    value = maps[n, i, j]
    left, right = maps[n, i, np.maximum(j - 1, 0)], maps[n, i, np.minimum(j + 1, w - 1)]
    up, down = maps[n, np.maximum(i - 1, 0), j], maps[n, np.minimum(i + 1, h - 1), j]
    dx = np.where((j > 0) & (j < w - 1), _offsets(left, value, right), 0.0)
    dy = np.where((i > 0) & (i < h - 1), _offsets(up, value, down), 0.0)
    out = np.empty((k, 3), dtype=np.float64)
    out[:, 0] = j + dx.astype(np.float64)
    out[:, 1] = i + dy.astype(np.float64)
    out[:, 2] = value
    return out


def find_peaks(m: np.ndarray, threshold: float, min_distance: float = 1.0,
               max_peaks: int | None = None) -> np.ndarray:
    """Local maxima of a 2-D map above ``threshold`` -> (K, 3) (u, v, value), strongest first.

    Peaks closer than ``min_distance`` cells to a stronger one are suppressed.
    """
    size = max(3, int(2 * np.floor(min_distance) + 1))
    local = maximum_filter(m, size=size, mode="constant", cval=-np.inf)
    ii, jj = np.nonzero((m == local) & (m > threshold))
    order = np.argsort(-m[ii, jj])
    kept: list[tuple[float, float, float]] = []
    for n in order:
        i, j = int(ii[n]), int(jj[n])
        dx, dy = refine(m, i, j)
        u, v = j + dx, i + dy
        if any((u - a) ** 2 + (v - b) ** 2 < min_distance ** 2 for a, b, _ in kept):
            continue
        kept.append((u, v, float(m[i, j])))
        if max_peaks and len(kept) >= max_peaks:
            break
    return np.array(kept, dtype=np.float64).reshape(-1, 3)
