"""Inference backends: run a net on a float32 NCHW batch and return every stage's maps.

``make_backend(model, framework, device, precision)`` with framework

* ``onnxruntime`` (the default on the CPU): ONNX Runtime on the ONNX export of the same weights
  (:mod:`.onnx_export`), session options tuned for few cores (:func:`ort_session_options`);
  precision ``int8`` runs the statically quantised export (:mod:`.int8`), made on first use
  from the calibration ranges kept with the weights or by ``humanpose export-onnx --int8``;
* ``torch`` (PyTorch, cpu or cuda; the training and GPU path); precision ``bf16`` runs it in
  bfloat16 autocast, BatchNorm folded and channels-last, where the CPU has native bf16
  (:func:`cpu_bf16_support`);
* ``opencv`` (cv2.dnn on the same ONNX export, cpu or CUDA);

device ``cpu``, ``cuda`` or ``auto`` (CUDA when available, else CPU with a one-time warning).
A precision a backend cannot run falls back to fp32 and says why in ``backend.note``; precision
``auto`` (the default) is int8 for the pose net where it can run (onnxruntime on the CPU, an int8
export there or makeable from kept ranges) and agrees with fp32 on this CPU (the self-check of
:mod:`.int8_check`), else fp32: without a note, except when the check failed.  The person net
runs int8 under ``auto`` only where the CPU has VNNI / AMX (:func:`auto_int8`).  A backend
is a callable ``backend(x) -> list[np.ndarray]`` with a ``name`` such as ``"onnxruntime/cpu"``
(``"onnxruntime/cpu/int8"`` for a precision other than fp32) and a ``note`` (None or text).
"""
from __future__ import annotations

import copy
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import int8, int8_check
from .cpu import cpu_flags, has_vnni
from .onnx_export import cached_onnx, export_onnx, stage_names

log = logging.getLogger(__name__)

FRAMEWORKS = ("onnxruntime", "torch", "opencv")
DEVICES = ("cpu", "cuda", "auto")
PRECISIONS = ("auto", "fp32", "bf16", "int8")

# Measured on 2 busy cores (docs/configuration.md, "Threads"): one intra-op thread per core (2
# beat 1), no spinning: spinning threads collapse when another process takes a core.
ORT_MAX_THREADS = 4
CPU_FALLBACK_MESSAGE = "CUDA not available, using CPU"
_warned: set[str] = set()


def auto_int8(model: nn.Module) -> bool:
    """Whether precision auto runs ``model`` in int8 on this CPU.  Measured on the validation
    split against fp32 (docs/configuration.md, "int8 and your CPU"): with VNNI / AMX, 8-bit
    weights cost neither net anything measurable; without, the pose net's 7-bit weights cost
    nothing measurable, while each scheme that holds there cost the detector about a point."""
    return getattr(model, "kind", "pose") == "pose" or bool(has_vnni())


def check_kind(model: nn.Module, kind: str) -> nn.Module:
    """``model`` in eval mode; ValueError when it is not a ``kind`` ("person" / "pose") net."""
    if getattr(model, "kind", None) != kind:
        raise ValueError(f"the {kind} model is a {getattr(model, 'kind', 'unknown')!r} "
                         f"net, expected a {kind!r} net")
    return model.eval()


class BackendError(RuntimeError):
    """A framework or device that cannot be used here."""


def _cuda_available(framework: str) -> bool:
    if framework == "torch":
        return torch.cuda.is_available()
    if framework == "onnxruntime":
        import onnxruntime as ort
        return "CUDAExecutionProvider" in ort.get_available_providers()
    import cv2
    try:
        return cv2.cuda.getCudaEnabledDeviceCount() > 0
    except (AttributeError, cv2.error):
        return False


def resolve_device(framework: str, device: str) -> tuple[str, str | None]:
    """(cpu|cuda, note) for a requested device; ``note`` says why auto fell back to CPU."""
    if framework not in FRAMEWORKS:
        raise BackendError(f"unknown framework {framework!r}; allowed: {', '.join(FRAMEWORKS)}")
    if device not in DEVICES:
        raise BackendError(f"unknown device {device!r}; allowed: {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu", None
    if _cuda_available(framework):
        return "cuda", None
    if device == "cuda":
        what = {"torch": "this PyTorch build has no CUDA or no GPU is visible",
                "onnxruntime": "this onnxruntime build has no CUDAExecutionProvider (pip "
                               "install onnxruntime-gpu, or use framework torch)",
                }.get(framework, "this OpenCV build has no CUDA support or no GPU is visible")
        raise BackendError(f"device cuda requested for framework {framework}, but {what}; "
                           "use device cpu or auto")
    note = CPU_FALLBACK_MESSAGE
    if framework == "onnxruntime" and torch.cuda.is_available():
        note += " for onnxruntime (set model.framework: torch to use the GPU)"
    if framework not in _warned:
        _warned.add(framework)
        log.warning("%s (framework %s)", note, framework)
    return "cpu", note


def cpu_bf16_support() -> str | None:
    """The CPU's native bfloat16 instructions ("AMX" or "AVX512-BF16"), or None."""
    flags = cpu_flags()
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    if not native:
        return None
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return None if flags else "oneDNN bf16"


def _join(*notes: str | None) -> str | None:
    text = "; ".join(n for n in notes if n)
    return text or None


def _fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each BatchNorm folded into the conv before it (fx), or the model
    itself when it cannot be traced."""
    try:
        from torch.fx.experimental.optimization import fuse
        return fuse(copy.deepcopy(model).eval())
    except Exception:   # noqa: BLE001 - not fx-traceable: run it unfolded
        return model


class TorchBackend:
    def __init__(self, model: nn.Module, device: str, note: str | None = None,
                 precision: str = "fp32"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.precision = "fp32"
        extra = None
        if precision == "int8":
            extra = "int8 runs in onnxruntime only (model.framework: onnxruntime); using fp32"
        elif precision == "bf16":
            native = cpu_bf16_support() if device == "cpu" else "CUDA"
            if native is None:
                extra = "bf16 requested but this CPU has no native bfloat16; using fp32"
            else:
                self.precision = "bf16"
                extra = f"bf16 on {native}"
        if self.device.type == "cpu":     # BN folded, channels-last: pose_mobilenet 19.0 -> 15.6 ms
            self.model = _fold_batchnorm(self.model).to(memory_format=torch.channels_last)
        self.name = f"torch/{device}" + ("" if self.precision == "fp32" else f"/{self.precision}")
        self.note = _join(note, extra)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        if self.device.type == "cpu":
            t = t.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.precision == "bf16":
                with torch.autocast(self.device.type, dtype=torch.bfloat16):
                    out = self.model(t)
            else:
                out = self.model(t)
        return [o.float().cpu().numpy() for o in out]


def ort_session_options(threads: int = 0, spinning: bool = False, optimization: str = "all"):
    """ONNX Runtime session options: ``threads`` intra-op threads (0 = onnxruntime's own choice,
    one per core), spinning of the waiting threads, graph optimisation level (``basic`` |
    ``extended`` | ``all``)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}[optimization]
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


def ort_threads() -> int:
    """Intra-op threads of an onnxruntime session: $HUMANPOSE_ORT_THREADS, else one per usable
    core, at most ORT_MAX_THREADS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    default = max(1, min(cores, ORT_MAX_THREADS))
    try:
        return max(0, int(os.environ.get("HUMANPOSE_ORT_THREADS", default)))
    except ValueError:
        return default


def _int8_export(model: nn.Module) -> tuple[Path | None, str | None]:
    """(the int8 export of exactly these weights, a note): made here on first use from the
    calibration ranges kept with the weights (the shipped nets have theirs; seconds, no
    calibration data needed), else (None, how to make it: fp32 runs)."""
    path = int8.int8_path(model)
    if path is not None:
        return path, None
    how = ("no int8 export of these weights (make it with `humanpose export-onnx --int8`); "
           "using fp32")
    if int8.ranges_for(model) is None:
        return None, how
    t0 = time.perf_counter()
    try:
        path, _ = int8.export_from_ranges(model)
    except int8.RangesMismatch:    # kept for another exporter's graph: nothing calibrated here
        return None, how
    except Exception as exc:   # noqa: BLE001 - onnx / onnxruntime / OS errors: fp32 still runs
        log.warning("cannot make the int8 export of %s: %s", getattr(model, "weights_path", "?"),
                    exc)
        return None, f"cannot make the int8 export ({exc}); using fp32"
    log.info("made the int8 export %s from its kept calibration ranges in %.1f s", path,
             time.perf_counter() - t0)
    return path, None


def checked_int8(model: nn.Module) -> tuple["OnnxRuntimeBackend | None", str | None, bool]:
    """(the int8 backend of ``model`` when its export agrees with fp32 on this CPU, else None;
    a note; whether it ran and disagreed).  The export is made on first use (:func:`_int8_export`),
    then checked against fp32 on reference inputs (:mod:`.int8_check`); the verdict is kept
    with the export for this CPU, so later starts skip the check."""
    path, note = _int8_export(model)
    if path is None:
        return None, note, False
    record = int8.int8_location(model)[1]
    verdict = int8_check.cached(path, record)
    if verdict is not None and verdict[1]:        # disagreed on this CPU before: not loaded
        return None, int8_check.disagreement_note(verdict[1]), True
    quantised = OnnxRuntimeBackend(model, "cpu", precision="int8", onnx_path=path)
    if verdict is None:
        t0 = time.perf_counter()
        try:
            why = int8_check.check(getattr(model, "kind", "pose"),
                                   OnnxRuntimeBackend(model, "cpu", precision="fp32"), quantised)
        except FileNotFoundError as exc:     # a damaged install: int8 unchecked, so not run
            return None, f"cannot check int8 against fp32 ({exc}); using fp32", False
        int8_check.keep(path, record, why)
        log.info("int8 self-check of %s on %s: %s (%.2f s)", path.name, int8_check.describe(),
                 why or "agrees with fp32", time.perf_counter() - t0)
    else:
        why = verdict[1]
    if why:
        return None, int8_check.disagreement_note(why), True
    return quantised, None, False


class OnnxRuntimeBackend:
    """ONNX Runtime on the cached ONNX export (fp32) or its int8 quantisation."""

    def __init__(self, model: nn.Module, device: str, note: str | None = None,
                 precision: str = "fp32", threads: int | None = None, spinning: bool = False,
                 optimization: str = "all", onnx_path: str | Path | None = None):
        import onnxruntime as ort

        model = model.eval()
        self.precision = "fp32"
        extra = None
        if onnx_path is None:
            if precision == "int8" and device != "cpu":
                extra = f"int8 runs on the CPU only; using fp32 on {device}"
            elif precision == "int8":
                backend, extra, _ = checked_int8(model)
                if backend is not None:
                    onnx_path, self.precision = backend.onnx_path, "int8"
            elif precision == "bf16":
                extra = ("bf16: onnxruntime has no bfloat16 CPU kernels; using fp32 "
                         "(bf16 runs with model.framework: torch"
                         + (f" on this CPU's {cpu_bf16_support()})" if cpu_bf16_support()
                            else ", where the CPU supports it)"))
        else:
            self.precision = precision
        self.onnx_path = Path(onnx_path) if onnx_path is not None else cached_onnx(model)
        self.outputs = stage_names(model)
        providers = (["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda"
                     else ["CPUExecutionProvider"])
        self.threads = ort_threads() if threads is None else threads
        opts = ort_session_options(self.threads, spinning, optimization)
        try:
            self.session = ort.InferenceSession(str(self.onnx_path), opts, providers=providers)
        except Exception as exc:   # noqa: BLE001 - onnxruntime raises its own types
            if self.precision != "fp32":
                raise BackendError(f"onnxruntime cannot load {self.onnx_path}: {exc}") from exc
            log.warning("onnxruntime cannot load the cached %s (%s); exporting it again",
                        self.onnx_path, exc)
            export_onnx(model, self.onnx_path)
            try:
                self.session = ort.InferenceSession(str(self.onnx_path), opts,
                                                    providers=providers)
            except Exception as exc2:  # noqa: BLE001
                raise BackendError(f"onnxruntime cannot load {self.onnx_path}: {exc2}") from exc2
        self.input = self.session.get_inputs()[0].name
        self.name = f"onnxruntime/{device}" + ("" if self.precision == "fp32"
                                                else f"/{self.precision}")
        self.note = _join(note, extra)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.outputs,
                                {self.input: np.ascontiguousarray(x, dtype=np.float32)})


class OpenCVBackend:
    def __init__(self, model: nn.Module, device: str, note: str | None = None,
                 precision: str = "fp32"):
        import cv2

        model = model.eval()
        self.onnx_path = cached_onnx(model)
        self.outputs = stage_names(model)
        # OpenCV 5's new DNN engine runs on the CPU only; CUDA needs the classic engine
        engine = getattr(cv2.dnn, "ENGINE_CLASSIC" if device == "cuda" else "ENGINE_AUTO", None)
        path = str(self.onnx_path)
        for attempt in range(2):
            try:
                self.net = (cv2.dnn.readNetFromONNX(path) if engine is None
                            else cv2.dnn.readNetFromONNX(path, engine))
                break
            except cv2.error as exc:
                if attempt:
                    raise BackendError(f"OpenCV-DNN cannot read {path}: {exc}") from exc
                log.warning("OpenCV-DNN cannot read the cached %s; exporting it again", path)
                export_onnx(model, self.onnx_path)    # a damaged cache file: made again once
        if device == "cuda":
            self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_CUDA)
            self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CUDA)
        self.name = f"opencv/{device}"
        self.precision = "fp32"
        self.note = _join(note, None if precision == "fp32" else
                          f"{precision} is not available with OpenCV-DNN; using fp32")

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self.net.setInput(np.ascontiguousarray(x, dtype=np.float32))
        out = self.net.forward(self.outputs)
        return [np.asarray(o, dtype=np.float32) for o in out]


Backend = OnnxRuntimeBackend | TorchBackend | OpenCVBackend


def make_backend(model: nn.Module, framework: str, device: str,
                 precision: str = "fp32") -> Backend:
    """A callable running ``model`` on ``framework``/``device`` at ``precision`` (see the
    module doc)."""
    if precision not in PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    dev, note = resolve_device(framework, device)
    if precision == "auto" and not auto_int8(model):
        precision = "fp32"
    if precision in ("auto", "int8") and framework == "onnxruntime" and dev == "cpu":
        backend, why, disagreed = checked_int8(model)
        if backend is not None:
            backend.note = _join(note, backend.note)
            return backend
        # auto: fp32 without a note where no int8 export can be made, with one where the
        # export disagreed with fp32 on this CPU; int8: fp32, always saying why
        return OnnxRuntimeBackend(model, dev, _join(
            note, why if precision == "int8" or disagreed else None), "fp32")
    if precision == "auto":
        precision = "fp32"
    if framework == "onnxruntime":
        return OnnxRuntimeBackend(model, dev, note, precision)
    if framework == "torch":
        return TorchBackend(model, dev, note, precision)
    return OpenCVBackend(model, dev, note, precision)
