"""ONNX export of the nets (for the onnxruntime and OpenCV-DNN backends) and its cache.

``export_onnx(model, path)`` writes an opset-13 ONNX file with dynamic batch, height and width;
its outputs are ``stage1 .. stageK`` (every stage's maps, in order).

``cached_onnx(model)`` returns an up-to-date export of exactly the weights of ``model``:

* a model loaded from a weight file (``model.weights_path``, set by :func:`humanpose.store.load_model`)
  is exported next to it as ``<weights>.onnx`` with ``<weights>.onnx.sha256`` holding the sha256
  of the weight file; a changed weight file gives a fresh export;
* when that folder is not writable, or the model has no weight file (e.g. random test models),
  the export goes to the cache folder (``$HUMANPOSE_CACHE`` or ``~/.cache/humanpose``, else a
  temporary folder) under ``onnx/<digest>.onnx``, the digest being the weight file's sha256 or a
  hash of the state dict.

The command ``humanpose export-onnx`` (:mod:`humanpose.optimize.export_cmd`) exports the
configured nets; with ``--int8`` also their int8 quantisation (:mod:`.int8`).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..store import default_mode, sha256

OPSET = 13
SIDECAR_SUFFIX = ".sha256"


def stage_names(model: nn.Module) -> list[str]:
    return [f"stage{i + 1}" for i in range(_count_stages(model))]


def _count_stages(model: nn.Module) -> int:
    n = getattr(model, "num_stages", None)
    if isinstance(n, int) and n > 0:
        return n
    with torch.inference_mode():
        return len(model(_dummy(model)))


def _dummy(model: nn.Module) -> torch.Tensor:
    cin = getattr(model, "in_channels", 4 if getattr(model, "kind", "") == "pose" else 3)
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    return torch.zeros(1, cin, 64, 64, device=device)


def export_onnx(model: nn.Module, path: str | Path) -> Path:
    """Export ``model`` (eval mode) to ONNX at ``path``; written atomically.  Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = stage_names(model)
    dynamic = {"input": {0: "n", 2: "h", 3: "w"}}
    dynamic.update({n: {0: "n", 2: "h8", 3: "w8"} for n in names})
    was_training = model.training
    model.eval()
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer warnings
            torch.onnx.export(model, (_dummy(model),), tmp, dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=names, dynamic_axes=dynamic)
        default_mode(tmp)                  # mkstemp's 0600 would hide the cache from others
        os.replace(tmp, path)
    except Exception:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        model.train(was_training)
    return path


def state_digest(model: nn.Module) -> str:
    """sha256 over the architecture description and every tensor of the state dict."""
    h = hashlib.sha256()
    h.update(f"{type(model).__module__}.{type(model).__qualname__}/{getattr(model, 'kind', '')}/"
             f"{getattr(model, 'arch', '')}".encode())
    for name, t in model.state_dict().items():
        arr = t.detach().cpu().contiguous().numpy()
        h.update(f"{name}:{arr.dtype}:{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def cache_dir() -> Path:
    """Writable cache folder: $HUMANPOSE_CACHE, ~/.cache/humanpose or a temporary folder."""
    candidates = []
    if os.environ.get("HUMANPOSE_CACHE"):
        candidates.append(Path(os.environ["HUMANPOSE_CACHE"]).expanduser())
    candidates.append(Path.home() / ".cache" / "humanpose")
    candidates.append(Path(tempfile.gettempdir()) / "humanpose-cache")
    for c in candidates:
        try:
            c.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(c, os.W_OK):
            return c
    raise OSError(f"no writable cache folder among {', '.join(map(str, candidates))}")


def weights_file(model: nn.Module) -> Path | None:
    p = getattr(model, "weights_path", None)
    if p and Path(p).is_file():
        return Path(p)
    return None


def is_current(onnx_path: Path, digest: str) -> bool:
    side = onnx_path.with_name(onnx_path.name + SIDECAR_SUFFIX)
    try:
        return onnx_path.is_file() and side.read_text(encoding="utf-8").strip() == digest
    except OSError:
        return False


def write_sidecar(onnx_path: Path, digest: str) -> None:
    side = onnx_path.with_name(onnx_path.name + SIDECAR_SUFFIX)
    tmp = side.with_name(side.name + f".{os.getpid()}.tmp")
    tmp.write_text(digest + "\n", encoding="utf-8")
    os.replace(tmp, side)


def onnx_location(model: nn.Module) -> tuple[Path, str]:
    """Where the export of ``model`` lives and the digest it must be recorded with."""
    weights = weights_file(model)
    if weights is not None:
        digest = sha256(weights)
        if os.access(weights.parent, os.W_OK):
            return weights.with_name(weights.name + ".onnx"), digest
        return cache_dir() / "onnx" / f"{weights.stem}-{digest[:16]}.onnx", digest
    digest = state_digest(model)
    return cache_dir() / "onnx" / f"{getattr(model, 'kind', 'net')}-{digest[:16]}.onnx", digest


def cached_onnx(model: nn.Module) -> Path:
    """An ONNX export of exactly these weights, reused when current, (re)built otherwise."""
    path, digest = onnx_location(model)
    if not is_current(path, digest):
        export_onnx(model, path)
        write_sidecar(path, digest)
    return path
