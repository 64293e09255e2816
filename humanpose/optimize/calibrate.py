"""int8 calibration: static quantisation calibrated on varied training crops (needs ``train``
data; the runtime quantises on kept ranges only, :mod:`humanpose.estimator.int8`).

``humanpose export-onnx --int8`` (:mod:`.export_cmd`) writes ``<weights>.int8.onnx`` next to each
fp32 export, from the ranges kept next to the weights when they are current, else calibrated here
(:func:`export_int8`), whose ranges are then kept.

Calibration inputs (:func:`calibration_inputs`), ``n`` of them, deterministic (seed 0):

* pose net: boxsize x boxsize crops of the LSP / LSP-extended *training* images (never the
  validation split) cut like the pipeline cuts them (the person's joint box centred with a
  random shift of up to 15 % of the box, its larger side 0.3 to 1.0 of the box, half of them
  mirrored), normalised, plus the Gaussian centre map;
* person net: whole training images, letterboxed onto a 4:3 grey canvas (a webcam's frame)
  and scaled to height ``boxsize`` and padded to a multiple of 32;
* without ``../shared`` (or with ``synthetic=True``, for tests): generated textured frames with
  person-like shapes (:func:`synthetic_images`).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
from torch import nn

from ..config import shared_media
from ..estimator import maps
from ..estimator.crops import PAD_VALUE, crop, normalise, pad_to_stride
from ..estimator.int8 import (CALIB_METHOD, RangesMismatch, cache_supported, export_from_ranges,
                              int8_location, quantize_onnx, ranges_for, ranges_location,
                              replace_atomically, weight_scheme)
from ..estimator.onnx_export import cached_onnx, write_sidecar
from ..train.datasets import person_box, splits

CALIB_COUNT = 300                 # crops or frames
CALIB_BOXSIZE = 192
FRAME_ASPECT = 4 / 3


def synthetic_images(n: int, h: int = 240, w: int = 320, seed: int = 0):
    """``n`` generated BGR frames with textured backgrounds and person-like shapes, and the
    (centre, size) of the shape in each."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0),
                               float(rng.uniform(1, 6)))
        size = rng.uniform(0.4, 0.9) * h
        cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.4, 0.6) * h
        top = cy - size / 2
        col = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(img, (int(cx), int(top + size * 0.08)), int(size * 0.07), col, -1)
        cv2.rectangle(img, (int(cx - size * 0.1), int(top + size * 0.17)),
                      (int(cx + size * 0.1), int(top + size * 0.55)), col[::-1], -1)
        for dx in (-1, 1):
            cv2.line(img, (int(cx), int(top + size * 0.55)),
                     (int(cx + dx * size * 0.12), int(top + size)), col, max(2, int(size * 0.04)))
        out.append((img, np.array([cx, cy]), float(size)))
    return out


def lsp_images(n: int, seed: int = 0):
    """``n`` (image, person centre, person size) of the LSP / LSP-extended training split."""
    train, _ = splits(shared_media().parent / "data")
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.permutation(len(train)):
        if len(out) >= n:
            break
        j = train.joints[i]
        if np.isfinite(j[:, 0]).sum() < 6:
            continue
        img = cv2.imread(str(train.images[i]), cv2.IMREAD_COLOR)
        if img is None:
            continue
        c, size = person_box(j)
        out.append((img, c, max(size, 16.0)))
    return out


def shared_data_available() -> bool:
    d = shared_media().parent / "data"
    return (d / "lsp" / "joints.mat").exists() and (d / "lspet" / "joints.mat").exists()


def calibration_inputs(kind: str, n: int = CALIB_COUNT, boxsize: int = CALIB_BOXSIZE,
                       synthetic: bool | None = None, seed: int = 0,
                       centre_sigma: float = 0.06) -> tuple[list[np.ndarray], str]:
    """(inputs, where from): ``n`` float32 arrays (1, C, H, W) to calibrate a ``kind`` net on."""
    if synthetic is None:
        synthetic = not shared_data_available()
    if synthetic:
        people, where = synthetic_images(n, seed=seed), f"{n} generated frames (synthetic)"
    else:
        people, where = lsp_images(n, seed), f"{n} LSP / LSP-extended training images"
    rng = np.random.default_rng(seed + 1)
    inputs = []
    if kind == "pose":
        cmap = maps.centre_map(boxsize, centre_sigma * boxsize)[None]
        for img, c, size in people:
            frac = rng.uniform(0.3, 1.0)
            s = frac * boxsize / size
            side = int(round(boxsize / s))
            centre = c + rng.uniform(-0.15, 0.15, 2) * side
            x0, y0 = int(round(centre[0] - side / 2)), int(round(centre[1] - side / 2))
            window = crop(img, x0, y0, max(side, 8))
            interp = cv2.INTER_AREA if side > boxsize else cv2.INTER_LINEAR
            patch = cv2.resize(window, (boxsize, boxsize), interpolation=interp)
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            inputs.append(np.concatenate([normalise(np.ascontiguousarray(patch)), cmap])[None]
                          .astype(np.float32))
        return inputs, where + f", pose crops at boxsize {boxsize}"
    for img, _, _ in people:
        h, w = img.shape[:2]
        ch, cw = (h, int(round(h * FRAME_ASPECT))) if w < h * FRAME_ASPECT else \
            (int(round(w / FRAME_ASPECT)), w)
        canvas = np.full((ch, cw, 3), PAD_VALUE, np.uint8)
        y0, x0 = (ch - h) // 2, (cw - w) // 2
        canvas[y0:y0 + h, x0:x0 + w] = img
        nw = int(round(cw * boxsize / ch))
        frame = cv2.resize(canvas, (nw, boxsize), interpolation=cv2.INTER_AREA)
        inputs.append(normalise(pad_to_stride(frame, 32))[None].astype(np.float32))
    return inputs, where + f", whole frames at height {boxsize}"


def export_int8(model: nn.Module, n: int = CALIB_COUNT, synthetic: bool | None = None,
                method: str | None = None, boxsize: int = CALIB_BOXSIZE,
                out_path: str | Path | None = None,
                use_kept: bool = True, calibrate: bool = True,
                keep_ranges: bool | None = None,
                weights: str | None = None) -> tuple[Path, str]:
    """Quantise the fp32 export of ``model`` (made first if needed); (path, calibration note).

    With ``use_kept`` and ranges kept for exactly these weights (:func:`ranges_for`; with
    ``method``, of that method), those are used and nothing is calibrated; otherwise ``n``
    calibration inputs are run (``method``, default :data:`CALIB_METHOD`), and their ranges
    are kept next to the weights when they came from the LSP images (``keep_ranges`` True /
    False: whatever the calibration).  Without ``calibrate``, only kept ranges are used
    (:class:`RangesMismatch` when there are none that fit).  ``weights``: the weight scheme
    (default: :func:`weight_scheme`)."""
    kind = getattr(model, "kind", "pose")
    weights = weights or weight_scheme(model)
    path, record = int8_location(model, weights)
    digest = record.split()[0]
    if out_path is not None:
        path = Path(out_path)
    if use_kept and synthetic is not True and ranges_for(model, method) is not None:
        try:
            return export_from_ranges(model, method, path, weights)
        except RangesMismatch:
            if not calibrate:
                raise
    if not calibrate:
        raise RangesMismatch("no calibration ranges kept for these weights")
    fp32 = cached_onnx(model)
    method = method or CALIB_METHOD
    inputs, where = calibration_inputs(kind, n, boxsize, synthetic)
    how = f"{where}, {method} calibration"
    target = ranges_location(model)
    if keep_ranges is None:
        keep_ranges = "synthetic" not in where
    keep = (keep_ranges and target is not None and cache_supported()
            and os.access(target.parent, os.W_OK))
    with tempfile.TemporaryDirectory(prefix="humanpose-ranges-") as tmp:
        raw = Path(tmp) / "ranges.json"
        _, signature = quantize_onnx(fp32, path, inputs, method,
                                     keep_ranges=raw if keep else None, weights=weights)
        write_sidecar(path, record)
        if keep:
            data = json.loads(raw.read_text(encoding="utf-8"))
            data["humanpose"] = {"weights_sha256": digest, "method": method, "calibration": how,
                                 "graph_sha256": signature}
            raw.write_text(json.dumps(data, indent=0, sort_keys=True), encoding="utf-8")
            replace_atomically(raw, target)
    return path, f"{how}, {weights} weights"
