"""Which nets a models folder offers, read from its manifest.json without loading any net
(the window's pose net choice, ``--pose-model``)."""
from __future__ import annotations

import json
from pathlib import Path


def manifest_entries(models_dir: str | Path) -> list[dict]:
    """The entries of ``models_dir``/manifest.json (none when it cannot be read)."""
    try:
        entries = json.loads((Path(models_dir) / "manifest.json").read_text()).get("models", [])
        return [e for e in entries if isinstance(e, dict) and "name" in e and "file" in e]
    except (OSError, ValueError, AttributeError):
        return []


def available_nets(models_dir: str | Path, kind: str) -> list[str]:
    """The names of the ``kind`` ("person" or "pose") nets the manifest lists and whose weight
    files are there."""
    return [e["name"] for e in manifest_entries(models_dir) if e.get("kind") == kind
            and (Path(models_dir) / e["file"]).is_file()]


def pose_net_problem(models_dir: str | Path, name: str) -> str | None:
    """Why ``name`` cannot be the pose net (naming the available ones), or None when it is an
    available net or an existing weight file."""
    models_dir = Path(models_dir)
    available = available_nets(models_dir, "pose")
    path = Path(name).expanduser()
    if name in available or path.suffix and (path.is_file() or (models_dir / path).is_file()):
        return None
    listed = {e["name"]: e["file"] for e in manifest_entries(models_dir) if e.get("kind") == "pose"}
    what = (f"the weights of the pose net {name!r} ({models_dir / listed[name]}) are missing"
            if name in listed else f"unknown pose net {name!r}")
    return f"{what}; available: {', '.join(available) or 'none'} (in {models_dir})"
