"""A run's ``run.json`` (the manifest) and the names of the files it owns: where a folder's
manifest is (``run.humanpose.json``... beside a user's ``run.json``), which files it says its run
wrote, the names a result takes beside a user's file of the same name, and the config hash it
records.  How a run writes it into its folder: :mod:`.outdir`.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

MANIFEST_NAME = "run.json"
ALT_INFIX = ".humanpose"     # keypoints.csv taken by a user's file: keypoints.humanpose.csv


def config_hash(cfg) -> str:
    """sha256 of the config's values (keys sorted): two runs with one hash used one config."""
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def alt_name(name: str, k: int) -> str:
    """The k-th name beside ``name`` (k >= 1): keypoints.humanpose.csv, keypoints.humanpose-2.csv;
    annotated.humanpose for a folder."""
    stem, dot, suffix = name.partition(".")
    return f"{stem}{ALT_INFIX}{'' if k == 1 else f'-{k}'}{dot}{suffix}"


def canonical_name(name: str) -> str:
    """The name a run stages a file under: ``alt_name``'s inverse."""
    return re.sub(rf"^([^.]*){re.escape(ALT_INFIX)}(?:-\d+)?(?=\.|$)", r"\1", name)


def _is_manifest(data) -> bool:
    return isinstance(data, dict) and "humanpose_version" in data and \
        isinstance(data.get("files"), dict)


def load_json(path: Path):
    try:
        if path.is_file() and path.stat().st_size < (4 << 20):
            return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    return None


def find_manifest(folder: str | Path) -> tuple[Path, dict] | None:
    """The humanpose ``run.json`` of a folder (``run.humanpose.json``... where the user has a
    run.json of their own), as (path, its data); None when there is none."""
    folder = Path(folder)
    for name in [MANIFEST_NAME] + [alt_name(MANIFEST_NAME, k) for k in range(1, 10)]:
        data = load_json(folder / name)
        if _is_manifest(data):
            return folder / name, data
    return None


def owned_names(manifest: dict, manifest_name: str = MANIFEST_NAME) -> list[str]:
    """The names in its folder a run's manifest says that run wrote (a manifest without
    ``owned``: its ``files``)."""
    owned = manifest.get("owned")
    if not isinstance(owned, list):
        owned = [str(v).rstrip("/") for v in manifest["files"].values()] + [manifest_name]
    return [n for n in owned if isinstance(n, str) and n and "/" not in n
            and not n.startswith(".")]
