"""int8 ONNX exports at run time: static QDQ quantisation on kept calibration ranges.

``<weights>.int8.onnx`` lives next to each fp32 export (:func:`.onnx_export.cached_onnx`) with
the same sha256 side-car (the weight file's digest) plus the weight scheme: a changed weight file
makes the int8 export stale, and the onnxruntime backend then says so and runs fp32.

Quantisation (onnxruntime.quantization, :func:`quantize_onnx`): QDQ format, weights int8 per
output channel, activations uint8 per tensor, ranges from :data:`CALIB_METHOD` over calibration
inputs, or from kept ranges.

Calibration ranges (``<weights>.int8-ranges.json``, onnxruntime's calibration cache plus the
weights' sha256 and how they were calibrated): an export calibrated on the LSP crops
(:mod:`humanpose.optimize.calibrate`, ``humanpose export-onnx --int8``) keeps its activation
ranges next to the weights, and the shipped nets carry theirs, so that the default
``model.precision: auto`` (and ``int8``) makes the int8 export on a user's machine on first use
(:func:`export_from_ranges`), without ``../shared`` and without calibration inference: the same
ranges, the same int8 net (seconds, not the 30 s of a calibration).  Ranges of other weights,
of another calibration method, or made on another ONNX graph (another exporter's tensor names)
are ignored.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from torch import nn

from . import cpu
from .onnx_export import cached_onnx, is_current, onnx_location, weights_file, write_sidecar

CALIB_METHOD = "minmax"           # minmax | percentile | entropy (measured: README / model card)
CALIB_METHODS = ("minmax", "percentile", "entropy")
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


def weight_scheme(model: nn.Module) -> str:
    """The int8 weight scheme for ``model`` on this CPU: "s8" with VNNI / AMX, else
    :data:`NO_VNNI_SCHEME` by the net's kind (also where the CPU's flags are unknown)."""
    if cpu.has_vnni():
        return "s8"
    return NO_VNNI_SCHEME.get(getattr(model, "kind", "pose"), "s7")


def int8_location(model: nn.Module, scheme: str | None = None) -> tuple[Path, str]:
    """Where the int8 export of ``model`` lives and the record it must carry: the weights'
    digest and the weight scheme (an export of another scheme is made again)."""
    scheme = scheme or weight_scheme(model)
    fp32, digest = onnx_location(model)
    return (fp32.with_name(fp32.name[:-len(".onnx")] + INT8_SUFFIX),
            f"{digest} weights={scheme}")


def ranges_location(model: nn.Module) -> Path | None:
    """Where the calibration ranges of ``model``'s weight file live (next to it), or None for a
    model without one."""
    weights = weights_file(model)
    return None if weights is None else weights.with_name(weights.name + RANGES_SUFFIX)


def ranges_for(model: nn.Module, method: str | None = None) -> tuple[Path, str, str] | None:
    """(path, how they were calibrated, method) of the calibration ranges kept for exactly these
    weights (with ``method``; None: whichever), or None."""
    path = ranges_location(model)
    if path is None or not path.is_file() or not cache_supported():
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


def cache_supported() -> bool:
    """Whether this onnxruntime's quantize_static takes a calibration cache (1.2x and newer)."""
    from onnxruntime.quantization import quantize_static
    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def int8_path(model: nn.Module) -> Path | None:
    """The current int8 export of exactly these weights, or None when there is none."""
    path, digest = int8_location(model)
    return path if is_current(path, digest) else None


# ------------------------------------------------------------------------ quantisation
def graph_signature(model) -> str:
    """sha256 of the quantiser's view of a graph: its node outputs in order (ranges are keyed
    by these names, so ranges fit a graph only when they are the same)."""
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
        signature = graph_signature(model)
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
        replace_atomically(q, out_path)
        if ranges is None and keep_ranges is not None:
            replace_atomically(Path(cache["calibration_cache_path"]), Path(keep_ranges))
    return out_path, signature


def replace_atomically(src: Path, dst: Path) -> None:
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


def export_from_ranges(model: nn.Module, method: str | None = None,
                       out_path: str | Path | None = None,
                       weights: str | None = None) -> tuple[Path, str]:
    """Quantise the fp32 export of ``model`` (made first if needed) on the ranges kept for
    exactly these weights (:func:`ranges_for`; with ``method``, of that method): no calibration
    inference, no data.  :class:`RangesMismatch` when none fit.  ``weights``: the weight scheme
    (default: :func:`weight_scheme`).  Returns (path, note)."""
    weights = weights or weight_scheme(model)
    path, record = int8_location(model, weights)
    if out_path is not None:
        path = Path(out_path)
    kept = ranges_for(model, method)
    if kept is None:
        raise RangesMismatch("no calibration ranges kept for these weights")
    quantize_onnx(cached_onnx(model), path, [], kept[2], ranges=kept[0], weights=weights)
    write_sidecar(path, record)
    return path, f"the ranges kept in {kept[0].name} ({kept[1]}), {weights} weights"
