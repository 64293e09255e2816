"""Model store: the weight format, the manifest in ``models/``, safe loading, and the
``humanpose convert-caffe`` command (official CPM Caffe weights -> a humanpose weight file).

A weight file is a safetensors file whose metadata holds ``arch``, ``kind`` and ``kwargs``
(JSON), so it rebuilds its own network.  ``models/manifest.json`` lists the shipped models with
their sha256.  Nothing here unpickles arbitrary objects; no user-facing path silently falls back
to random weights.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file, safe_open

from .nets import build_model

MANIFEST = "manifest.json"
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "models"   # the checkout's models/


def how_to_get(path: str | Path) -> str:
    """What the user can do about a missing or broken weight file ``path``."""
    path = Path(path)
    fixes = ["retrain it (see the model cards in models/)",
             "convert official CPM weights with `humanpose convert-caffe`"]
    if path.resolve().parent == SHIPPED_DIR:      # a shipped file: it is in the repository
        fixes.insert(0, f"restore it with `git checkout -- models/{path.name}`")
    return ", ".join(fixes[:-1]) + " or " + fixes[-1]


class ModelError(RuntimeError):
    """A missing, truncated, corrupt or mismatched weight file."""


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _umask() -> int:
    try:                                   # Linux: read it without changing it
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)                 # elsewhere: the only way to read it is to set it
    os.umask(mask)
    return mask


def default_mode(path: str | Path) -> None:
    """Give a file the mode a plain ``open()`` gives (0666 less the umask): safetensors and
    ``tempfile.mkstemp`` create files readable by their owner only (0600)."""
    os.chmod(path, 0o666 & ~_umask())


def save_weights(model: torch.nn.Module, path: str | Path, arch: str, extra: dict | None = None,
                 kwargs: dict | None = None) -> Path:
    """Save ``model`` in the project's weight format (safetensors + metadata)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"arch": arch, "kind": model.kind, "kwargs": json.dumps(kwargs or {}),
            "format": "humanpose-1"}
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=meta)
    default_mode(path)
    return path


def _foreign_format(path: Path) -> str | None:
    """What a file that is not safetensors looks like it is, from its first bytes (or None)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a pickle?"
    if head[:4] == b"PK\x03\x04":
        return "a zip archive: a torch.save / PyTorch .pt / .pth file?"
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return "an HDF5 (Keras) file?"
    return None


def read_metadata(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ModelError(f"weight file not found: {path}; " + how_to_get(path))
    if not path.is_file():
        raise ModelError(f"weight file {path} is not a file (a folder?); name a .safetensors file")
    kind = _foreign_format(path)
    if kind:
        raise ModelError(f"weight file {path} is not a safetensors file ({kind}; humanpose does "
                         "not unpickle weights): " + how_to_get(path))
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"weight file {path} is truncated or corrupt ({exc}); "
                         + how_to_get(path)) from exc
    if "arch" not in meta or "kind" not in meta:
        raise ModelError(f"weight file {path} has no humanpose metadata (arch, kind)")
    return meta


def load_model(path: str | Path, expected_sha256: str | None = None,
               kind: str | None = None) -> torch.nn.Module:
    """Build the network described by a weight file and load its weights (eval mode)."""
    path = Path(path)
    meta = read_metadata(path)
    if expected_sha256 and sha256(path) != expected_sha256:
        raise ModelError(f"weight file {path} does not match its sha256 in the manifest "
                         f"(corrupt or replaced); " + how_to_get(path))
    if kind and meta["kind"] != kind:
        raise ModelError(f"weight file {path} holds a {meta['kind']} net, expected a {kind} net")
    model = build_model(meta["arch"], meta["kind"], **json.loads(meta.get("kwargs", "{}")))
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"weight file {path} is truncated or corrupt ({exc}); "
                         + how_to_get(path)) from exc
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        raise ModelError(f"weight file {path} does not fit architecture {meta['arch']}: "
                         f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"weight file {path}: {exc}") from exc
    model.arch = meta["arch"]
    model.weights_path = str(path)
    return model.eval()


def read_manifest(models_dir: str | Path) -> list[dict]:
    path = Path(models_dir) / MANIFEST
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from exc
    models = data.get("models", []) if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ModelError(f"{path}: expected {{\"models\": [entries]}}, not {str(data)[:80]}")
    for entry in models:
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)
                and isinstance(entry.get("file"), str)):
            raise ModelError(f"{path}: every entry needs a \"name\" and a \"file\" (strings); "
                             f"bad entry: {str(entry)[:80]}")
    return models


def write_manifest(models_dir: str | Path, entries: list[dict]) -> Path:
    path = Path(models_dir) / MANIFEST
    path.write_text(json.dumps({"models": entries}, indent=2) + "\n", encoding="utf-8")
    return path


def resolve_model(name_or_path: str, models_dir: str | Path) -> tuple[Path, str | None]:
    """A manifest name or a file path -> (file, expected sha256 or None)."""
    models_dir = Path(models_dir)
    for entry in read_manifest(models_dir):
        if entry["name"] == name_or_path:
            return models_dir / entry["file"], entry.get("sha256")
    p = Path(name_or_path).expanduser()
    if not p.is_absolute() and not p.exists():
        p = models_dir / p
    if p.exists():
        # a file given by path: its manifest entry (here or beside it) still has its checksum
        for folder in dict.fromkeys((models_dir, p.parent)):
            for entry in read_manifest(folder):
                if (folder / entry["file"]).resolve() == p.resolve():
                    return p, entry.get("sha256")
        return p, None
    names = [e["name"] for e in read_manifest(models_dir)]
    raise ModelError(f"model {name_or_path!r} is neither in {models_dir / MANIFEST} "
                     f"(known: {', '.join(names) or 'none'}) nor an existing file; "
                     "train one (`humanpose train`), convert official weights "
                     "(`humanpose convert-caffe`) or fix model.person_model / model.pose_model")


def load_named(name_or_path: str, models_dir: str | Path, kind: str) -> torch.nn.Module:
    """Load a model by manifest name or path, checked against its sha256 where a manifest
    lists the file; a file no manifest lists is loaded with a warning giving its sha256."""
    path, digest = resolve_model(name_or_path, models_dir)
    model = load_model(path, digest, kind)
    if digest is None:                    # said once it loaded: a broken file says why instead
        warnings.warn(f"{kind} weights {path} are in no manifest.json: loaded without a checksum "
                      f"(sha256 {sha256(path)})", UserWarning, stacklevel=2)
    return model


def convert_caffe(prototxt: str | Path, caffemodel: str | Path, out: str | Path,
                  kind: str | None = None) -> Path:
    """Convert an official CPM ``prototxt`` + ``caffemodel`` to a humanpose weight file ``out``
    (:func:`humanpose.nets.caffe_import.caffe_model`; raises
    :class:`humanpose.nets.caffe_proto.CaffeImportError`)."""
    from .nets.caffe_import import caffe_model
    model, kwargs, source = caffe_model(prototxt, caffemodel, kind)
    return save_weights(model, out, arch="cpm_vgg", kwargs=kwargs, extra={"source": source})


# ------------------------------------------------------------------------------------------------
# command line: humanpose convert-caffe

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prototxt", metavar="PROTOTXT",
                   help="deploy prototxt, e.g. model/_trained_MPI/pose_deploy_resize.prototxt")
    p.add_argument("caffemodel", metavar="CAFFEMODEL",
                   help="trained weights, e.g. model/_trained_MPI/pose_iter_320000.caffemodel")
    p.add_argument("out", metavar="OUT", help="output weight file (.safetensors)")
    p.add_argument("--kind", choices=("person", "pose"), default=None,
                   help="net kind (default: decided from the prototxt)")


def main(args: argparse.Namespace) -> int:
    from .nets.caffe_proto import CaffeImportError
    try:
        path = convert_caffe(args.prototxt, args.caffemodel, args.out, kind=args.kind)
    except (CaffeImportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SafetensorError as exc:     # writing OUT failed (not an OSError)
        print(f"error: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
    model = load_model(path)
    n = sum(p.numel() for p in model.parameters())
    print(f"converted {args.caffemodel} -> {path}: cpm_vgg {model.kind} net, "
          f"{model.num_stages} stages, {model.num_maps} maps, {len(model.specs)} conv layers, "
          f"{n:,} parameters")
    return 0
