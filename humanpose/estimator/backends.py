"""Inference backends: run a net on a float32 NCHW batch and return every stage's maps.

``make_backend(model, framework, device)`` with framework ``torch`` (PyTorch, cpu or cuda) or
``opencv`` (cv2.dnn on an ONNX export of the same weights, cpu or CUDA), device ``cpu``, ``cuda``
or ``auto`` (CUDA when available, else CPU with a one-time warning).  A backend is a callable
``backend(x) -> list[np.ndarray]`` with a ``name`` such as ``"torch/cpu"``.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

FRAMEWORKS = ("torch", "opencv")
DEVICES = ("cpu", "cuda", "auto")
CPU_FALLBACK_MESSAGE = "CUDA not available, using CPU"
_warned: set[str] = set()


class BackendError(RuntimeError):
    """A framework or device that cannot be used here."""


def _cuda_available(framework: str) -> bool:
    if framework == "torch":
        return torch.cuda.is_available()
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
        what = ("this PyTorch build has no CUDA or no GPU is visible" if framework == "torch"
                else "this OpenCV build has no CUDA support or no GPU is visible")
        raise BackendError(f"device cuda requested for framework {framework}, but {what}; "
                           "use device cpu or auto")
    note = CPU_FALLBACK_MESSAGE
    if framework not in _warned:
        _warned.add(framework)
        log.warning("%s (framework %s)", note, framework)
    return "cpu", note


class TorchBackend:
    def __init__(self, model: nn.Module, device: str, note: str | None = None):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.name = f"torch/{device}"
        self.note = note

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            out = self.model(t)
        return [o.float().cpu().numpy() for o in out]


class OpenCVBackend:
    def __init__(self, model: nn.Module, device: str, note: str | None = None):
        import cv2

        from .onnx_export import cached_onnx, export_onnx, stage_names

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
        self.note = note

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self.net.setInput(np.ascontiguousarray(x, dtype=np.float32))
        out = self.net.forward(self.outputs)
        return [np.asarray(o, dtype=np.float32) for o in out]


Backend = TorchBackend | OpenCVBackend


def make_backend(model: nn.Module, framework: str, device: str) -> Backend:
    """A callable running ``model`` on ``framework``/``device`` (see the module doc)."""
    dev, note = resolve_device(framework, device)
    if framework == "torch":
        return TorchBackend(model, dev, note)
    return OpenCVBackend(model, dev, note)
