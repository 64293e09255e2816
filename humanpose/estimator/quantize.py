"""int8 ONNX exports: static QDQ quantisation calibrated on varied training crops.

``humanpose export-onnx --int8`` writes, next to each fp32 export (:func:`.onnx_export.cached_onnx`),
``<weights>.int8.onnx`` with the same sha256 side-car (the weight file's digest): a changed
weight file makes the int8 export stale, and the onnxruntime backend then says so and runs fp32.

Quantisation (onnxruntime.quantization): QDQ format, weights int8 per output channel,
activations uint8 per tensor, ranges from :data:`CALIB_METHOD` over the calibration inputs.

Calibration inputs (:func:`calibration_inputs`), ``n`` of them, deterministic (seed 0):

* pose net: boxsize x boxsize crops of the LSP / LSP-extended *training* images (never the
  validation split) cut like the pipeline cuts them (the person's joint box centred with a
  random shift of up to 15 % of the box, its larger side 0.3 to 1.0 of the box, half of them
  mirrored), normalised, plus the Gaussian centre map;
* person net: whole training images, letterboxed onto a 4:3 grey canvas (a webcam's frame)
  and scaled to height ``boxsize`` and padded to a multiple of 32;
* without ``../shared`` (or with ``synthetic=True``, for tests): generated textured frames with
  person-like shapes (:func:`synthetic_images`).

Calibration ranges (``<weights>.int8-ranges.json``, onnxruntime's calibration cache plus the
weights' sha256 and how they were calibrated): an export calibrated on the LSP crops keeps its
activation ranges next to the weights, and the shipped nets carry theirs, so that the default
``model.precision: auto`` (and ``int8``) can make the int8 export on a user's machine on first
use, without ``../shared`` and without calibration inference (:func:`ranges_for`): the same
ranges, the same int8 net (seconds, not the 30 s of a calibration).  Ranges of other weights,
of another calibration method, or made on another ONNX graph (another exporter's tensor names)
are ignored.
"""
from __future__ import annotations

import inspect
import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
from torch import nn

from . import cpu

CALIB_METHOD = "minmax"           # minmax | percentile | entropy (measured: README / model card)
CALIB_METHODS = ("minmax", "percentile", "entropy")
CALIB_COUNT = 300                 # crops or frames
CALIB_BOXSIZE = 192
# int8 weights, chosen for this CPU at run time (:func:`weight_scheme`): "s8" = the full signed
# 8-bit range per output channel, exact where the CPU has VNNI or AMX (products accumulate in 32
# bits); elsewhere "s7" (reduce_range: 7-bit values, so that the u8 x s8 products of two
# neighbours fit the 16-bit intermediate of the AVX2 kernels, where 8-bit weights saturate) for
# the pose net and "u8" (unsigned 8-bit weights: the u8 x u8 kernels widen before multiplying)
# for the person net.  The activation ranges are the same for each.  Measured by paired
# validation runs against fp32 (docs/configuration.md, "int8 and your CPU").
NO_VNNI_SCHEME = {"person": "u8", "pose": "s7"}
WEIGHT_SCHEMES = ("s7", "s8", "u8")
INT8_SUFFIX = ".int8.onnx"
RANGES_SUFFIX = ".int8-ranges.json"
FRAME_ASPECT = 4 / 3


def weight_scheme(model: nn.Module) -> str:
    """The int8 weight scheme for ``model`` on this CPU: "s8" with VNNI / AMX, else
    :data:`NO_VNNI_SCHEME` by the net's kind (also where the CPU's flags are unknown)."""
    if cpu.has_vnni():
        return "s8"
    return NO_VNNI_SCHEME.get(getattr(model, "kind", "pose"), "s7")


def int8_location(model: nn.Module, scheme: str | None = None) -> tuple[Path, str]:
    """Where the int8 export of ``model`` lives and the record it must carry: the weights'
    digest and the weight scheme (an export of another scheme is made again)."""
    from .onnx_export import onnx_location
    scheme = scheme or weight_scheme(model)
    fp32, digest = onnx_location(model)
    return (fp32.with_name(fp32.name[:-len(".onnx")] + INT8_SUFFIX),
            f"{digest} weights={scheme}")


def ranges_location(model: nn.Module) -> Path | None:
    """Where the calibration ranges of ``model``'s weight file live (next to it), or None for a
    model without one."""
    from .onnx_export import _weights_file
    weights = _weights_file(model)
    return None if weights is None else weights.with_name(weights.name + RANGES_SUFFIX)


def ranges_for(model: nn.Module, method: str | None = None) -> tuple[Path, str, str] | None:
    """(path, how they were calibrated, method) of the calibration ranges kept for exactly these
    weights (with ``method``; None: whichever), or None."""
    from .onnx_export import onnx_location
    path = ranges_location(model)
    if path is None or not path.is_file() or not _cache_supported():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("humanpose", {})
    except (OSError, ValueError, AttributeError):
        return None
    kept = meta.get("method")
    if (meta.get("weights_sha256") != onnx_location(model)[1] or kept not in CALIB_METHODS
            or method not in (None, kept)):
        return None
    return path, str(meta.get("calibration", "kept ranges")), kept


def _cache_supported() -> bool:
    """Whether this onnxruntime's quantize_static takes a calibration cache (1.2x and newer)."""
    from onnxruntime.quantization import quantize_static
    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def int8_path(model: nn.Module) -> Path | None:
    """The current int8 export of exactly these weights, or None when there is none."""
    from .onnx_export import _is_current
    path, digest = int8_location(model)
    return path if _is_current(path, digest) else None


# ------------------------------------------------------------------------ calibration data
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


def _lsp_images(n: int, seed: int = 0):
    """``n`` (image, person centre, person size) of the LSP / LSP-extended training split."""
    from ..train.datasets import person_box, splits
    from ..config import shared_media
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
    from ..config import shared_media
    d = shared_media().parent / "data"
    return (d / "lsp" / "joints.mat").exists() and (d / "lspet" / "joints.mat").exists()


def calibration_inputs(kind: str, n: int = CALIB_COUNT, boxsize: int = CALIB_BOXSIZE,
                       synthetic: bool | None = None, seed: int = 0,
                       centre_sigma: float = 0.06) -> tuple[list[np.ndarray], str]:
    """(inputs, where from): ``n`` float32 arrays (1, C, H, W) to calibrate a ``kind`` net on."""
    from . import maps
    from .crops import PAD_VALUE, crop, normalise, pad_to_stride
    if synthetic is None:
        synthetic = not shared_data_available()
    if synthetic:
        people, where = synthetic_images(n, seed=seed), f"{n} generated frames (synthetic)"
    else:
        people, where = _lsp_images(n, seed), f"{n} LSP / LSP-extended training images"
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


# ------------------------------------------------------------------------ quantisation
def _graph_signature(model) -> str:
    """sha256 of the quantiser's view of a graph: its node outputs in order (ranges are keyed
    by these names, so ranges fit a graph only when they are the same)."""
    import hashlib
    names = "\n".join(o for n in model.graph.node for o in n.output)
    return hashlib.sha256(names.encode("utf-8")).hexdigest()


class RangesMismatch(ValueError):
    """Kept calibration ranges that do not fit this export (another exporter's names)."""


def quantize_onnx(fp32_path: str | Path, out_path: str | Path, inputs: list[np.ndarray],
                  method: str = CALIB_METHOD, exclude_last: bool = False,
                  ranges: str | Path | None = None,
                  keep_ranges: str | Path | None = None,
                  weights: str = "s7") -> tuple[Path, str]:
    """Statically quantise ``fp32_path`` (QDQ, weights per channel) calibrated on ``inputs``, or
    on the kept ``ranges`` (no calibration inference; :class:`RangesMismatch` if they were made
    on another graph); written atomically to ``out_path``.  ``keep_ranges``: also write the
    ranges computed here there (onnxruntime's calibration cache).  ``exclude_last`` keeps each
    stage's output conv in fp32.  ``weights``: the weight scheme (:data:`WEIGHT_SCHEMES`; the
    activation ranges are the same for each).  Returns (out_path, the graph's signature)."""
    if weights not in WEIGHT_SCHEMES:
        raise ValueError(f"unknown int8 weight scheme {weights!r}; allowed: "
                         f"{', '.join(WEIGHT_SCHEMES)}")
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name):
            self.it = iter(inputs)
            self.name = name

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {self.name: x}

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="humanpose-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        except Exception:   # noqa: BLE001 - pre-processing is an optimisation only
            pre = Path(fp32_path)
        model = onnx.load(str(pre))
        signature = _graph_signature(model)
        cache = {}
        if ranges is not None:
            meta = json.loads(Path(ranges).read_text(encoding="utf-8")).get("humanpose", {})
            if meta.get("graph_sha256") != signature:
                raise RangesMismatch(f"{ranges} was calibrated on another ONNX graph")
            cache = {"calibration_cache_path": str(ranges)}
        elif keep_ranges is not None:
            cache = {"calibration_cache_path": str(Path(tmp) / "ranges.json")}
        name = model.graph.input[0].name
        exclude = []
        if exclude_last:
            outs = {o.name for o in model.graph.output}
            exclude = [n.name for n in model.graph.node if set(n.output) & outs]
        calib = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                 "entropy": CalibrationMethod.Entropy}[method]
        extra = {"CalibPercentile": 99.999} if method == "percentile" else {}
        q = Path(tmp) / "q.onnx"
        quantize_static(str(pre), str(q), Reader(name), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QUInt8 if weights == "u8" else QuantType.QInt8,
                        reduce_range=weights == "s7", calibrate_method=calib,
                        nodes_to_exclude=exclude, extra_options=extra, **cache)
        _replace_atomically(q, out_path)
        if ranges is None and keep_ranges is not None:
            _replace_atomically(Path(cache["calibration_cache_path"]), Path(keep_ranges))
    return out_path, signature


def _replace_atomically(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` (readable by all) so that ``dst`` is never half written."""
    fd, part = tempfile.mkstemp(prefix=dst.name + ".", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        os.replace(src, part)
        os.chmod(part, 0o644)
        os.replace(part, dst)
    except Exception:
        Path(part).unlink(missing_ok=True)
        raise


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
    from .onnx_export import _write_sidecar, cached_onnx
    kind = getattr(model, "kind", "pose")
    weights = weights or weight_scheme(model)
    path, record = int8_location(model, weights)
    digest = record.split()[0]
    if out_path is not None:
        path = Path(out_path)
    fp32 = cached_onnx(model)
    kept = ranges_for(model, method) if use_kept and synthetic is not True else None
    if kept is not None:
        try:
            quantize_onnx(fp32, path, [], kept[2], ranges=kept[0], weights=weights)
            _write_sidecar(path, record)
            return path, f"the ranges kept in {kept[0].name} ({kept[1]}), {weights} weights"
        except RangesMismatch:
            if not calibrate:
                raise
    if not calibrate:
        raise RangesMismatch("no calibration ranges kept for these weights")
    method = method or CALIB_METHOD
    inputs, where = calibration_inputs(kind, n, boxsize, synthetic)
    how = f"{where}, {method} calibration"
    target = ranges_location(model)
    if keep_ranges is None:
        keep_ranges = "synthetic" not in where
    keep = (keep_ranges and target is not None and _cache_supported()
            and os.access(target.parent, os.W_OK))
    with tempfile.TemporaryDirectory(prefix="humanpose-ranges-") as tmp:
        raw = Path(tmp) / "ranges.json"
        _, signature = quantize_onnx(fp32, path, inputs, method,
                                     keep_ranges=raw if keep else None, weights=weights)
        _write_sidecar(path, record)
        if keep:
            data = json.loads(raw.read_text(encoding="utf-8"))
            data["humanpose"] = {"weights_sha256": digest, "method": method, "calibration": how,
                                 "graph_sha256": signature}
            raw.write_text(json.dumps(data, indent=0, sort_keys=True), encoding="utf-8")
            _replace_atomically(raw, target)
    return path, f"{how}, {weights} weights"
