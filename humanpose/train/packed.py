"""``humanpose pack-crops``: the pose training crops, packed small enough to travel.

A GPU machine lent for a few minutes (the ``device`` tool) receives at most 64 MiB a call and has
no ``../shared``; the crop cache of :func:`.datasets.build_crop_cache` is 2.7 GB raw.  Packed,
each crop is a WebP image (about 8 KB at quality 85) in parts of at most ``--part-mb``; the
parts can go in separate calls, and a pose recipe trains from them with ``packed: [DIR, ...]``
instead of ``data`` (:func:`load_packed`).  The parts of one split must all be there: a missing
one is an error naming what is missing.

A part is an ``.npz`` (no pickle) with ``split`` ("train" / "val"), ``n_total`` (crops in that
split), ``index`` (which crops of the split it holds), ``offsets`` / ``blob`` (the WebP bytes of
crop k are ``blob[offsets[k]:offsets[k + 1]]``), ``joints`` and ``visible``.
"""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from .datasets import DatasetError

SPLITS = ("train", "val")


def pack(cache: dict, split: str, out_dir: str | Path, part_mb: float = 40.0,
         quality: int = 85) -> list[Path]:
    """Write ``cache`` (images (N, S, S, 3) uint8, joints, visible) as WebP parts
    ``OUT/SPLIT-000.npz``, ... of at most ``part_mb`` MB of image bytes each."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be 1..100, not {quality}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = cache["images"]
    with ThreadPoolExecutor() as pool:
        encoded = list(pool.map(lambda im: _encode(im, quality), images))
    limit = part_mb * 1e6
    parts, start, size = [], 0, 0
    for k, data in enumerate(encoded + [None]):
        if data is None or (size + len(data) > limit and k > start):
            parts.append(_write_part(out_dir / f"{split}-{len(parts):03d}.npz", split, cache,
                                     encoded, start, k))
            start, size = k, 0
        if data is not None:
            size += len(data)
    return parts


def _encode(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a crop as WebP")
    return buf.tobytes()


def _write_part(path: Path, split: str, cache: dict, encoded: list[bytes], a: int, b: int) -> Path:
    lengths = np.array([len(e) for e in encoded[a:b]], np.int64)
    np.savez(path, split=np.array(split), n_total=np.array(len(encoded)),
             index=np.arange(a, b, dtype=np.int64),
             offsets=np.concatenate([[0], np.cumsum(lengths)]),
             blob=np.frombuffer(b"".join(encoded[a:b]), np.uint8),
             joints=cache["joints"][a:b], visible=cache["visible"][a:b])
    return path


def load_packed(paths) -> dict[str, dict]:
    """{"train": cache, "val": cache} from the parts in ``paths`` (files or folders of them)."""
    files: list[Path] = []
    for p in paths:
        p = Path(p).expanduser()
        if p.is_dir():
            files += sorted(p.glob("*.npz"))
        elif p.is_file():
            files.append(p)
        else:
            raise DatasetError(f"packed: {p} not found")
    if not files:
        raise DatasetError(f"packed: no .npz parts in {[str(p) for p in paths]}")
    parts: dict[str, list] = {s: [] for s in SPLITS}
    for f in files:
        try:
            with np.load(f, allow_pickle=False) as z:
                part = {k: z[k] for k in ("split", "n_total", "index", "offsets", "blob",
                                          "joints", "visible")}
        except (OSError, ValueError, KeyError) as exc:
            raise DatasetError(f"packed: {f} is not a crop part ({exc})") from exc
        split = str(part["split"])
        if split not in parts:
            raise DatasetError(f"packed: {f} holds split {split!r}, not one of {SPLITS}")
        parts[split].append((f, part))
    return {split: _assemble(split, found) for split, found in parts.items()}


def _assemble(split: str, found: list) -> dict:
    if not found:
        raise DatasetError(f"packed: no parts of the {split} split")
    n = int(found[0][1]["n_total"])
    have = np.zeros(n, bool)
    for f, part in found:
        if int(part["n_total"]) != n:
            raise DatasetError(f"packed: {f} belongs to another packing ({int(part['n_total'])} "
                               f"{split} crops, not {n})")
        have[part["index"]] = True
    if not have.all():
        missing = np.flatnonzero(~have)
        raise DatasetError(f"packed: {split} crops {missing[0]}..{missing[-1]} are missing "
                           f"({len(missing)} of {n}); copy all of that split's parts")
    first = _decode(found[0][1], 0)
    images = np.empty((n, *first.shape), np.uint8)
    joints = np.empty((n, *found[0][1]["joints"].shape[1:]), np.float32)
    visible = np.empty((n, *found[0][1]["visible"].shape[1:]), bool)
    with ThreadPoolExecutor() as pool:
        for _, part in found:
            idx = part["index"]
            for k, im in enumerate(pool.map(lambda k: _decode(part, k), range(len(idx)))):
                images[idx[k]] = im
            joints[idx] = part["joints"]
            visible[idx] = part["visible"]
    return {"images": images, "joints": joints, "visible": visible}


def _decode(part: dict, k: int) -> np.ndarray:
    a, b = part["offsets"][k], part["offsets"][k + 1]
    image = cv2.imdecode(part["blob"][a:b], cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"packed: crop {int(part['index'][k])} does not decode")
    return image


def add_arguments(p) -> None:
    p.add_argument("out", help="folder for the parts (train-000.npz, ..., val-000.npz)")
    p.add_argument("--data", default="../shared/data", help="holds lsp/ and lspet/ (default: "
                   "%(default)s)")
    p.add_argument("--val-images", type=int, default=500, help="held-out LSP-extended images "
                   "(as the recipes' val_images; default: %(default)s)")
    p.add_argument("--cache-dir", default="~/.cache/humanpose/cache",
                   help="the crop caches, built there first if missing (default: %(default)s)")
    p.add_argument("--part-mb", type=float, default=40.0,
                   help="image bytes per part at most (default: %(default)s)")
    p.add_argument("--quality", type=int, default=85, help="WebP quality (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true")


def main(args) -> int:
    from .datasets import build_crop_cache, crop_cache_file, splits
    try:
        train_set, val_set = splits(Path(args.data).expanduser(), args.val_images)
        cache_dir = Path(args.cache_dir).expanduser()
        written = []
        for split, data in (("train", train_set), ("val", val_set)):
            cache = build_crop_cache(data, crop_cache_file(cache_dir, split, data),
                                     not args.no_progress)
            written += pack(cache, split, args.out, args.part_mb, args.quality)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for f in written:
        print(f"{f}  {f.stat().st_size / 1e6:.1f} MB")
    return 0
