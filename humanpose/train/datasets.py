"""Readers for the Leeds Sports Pose (LSP) and LSP-extended layouts, splits and a crop cache.

Both layouts are ``images/*.jpg`` (name order) + ``joints.mat``.  They differ:

* LSP: ``joints`` is (3, 14, N); the third row is 1 = *occluded*;
* LSP-extended: ``joints`` is (14, 3, N); the third row is 1 = *visible*; missing joints have
  x or y near 0 or negative.

Readers return joints in the skeleton's MPI order as (N, 14, 2) float64 with NaN for missing
joints, plus a (N, 14) visibility mask.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy.io as sio

from ..skeleton import LSP_TO_MPI, NUM_JOINTS

CACHE_SIZE = 288        # side of the cached person-centred crops
CACHE_PERSON = 128      # person size (max side of the joint box) in the cached crops


@dataclass
class PoseSet:
    images: list[Path]
    joints: np.ndarray      # (N, 14, 2) MPI order, NaN = missing
    visible: np.ndarray     # (N, 14) bool
    fmt: str

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx) -> "PoseSet":
        idx = np.asarray(idx)
        return PoseSet([self.images[i] for i in idx], self.joints[idx], self.visible[idx], self.fmt)

    def concat(self, other: "PoseSet") -> "PoseSet":
        return PoseSet(self.images + other.images, np.concatenate([self.joints, other.joints]),
                       np.concatenate([self.visible, other.visible]), self.fmt + "+" + other.fmt)


class DatasetError(ValueError):
    pass


def read_lsp_dir(directory: str | Path, fmt: str | None = None) -> PoseSet:
    """Read an LSP (``fmt="lsp"``) or LSP-extended (``"lspet"``) directory; ``None`` = by shape."""
    directory = Path(directory)
    mat = directory / "joints.mat"
    if not mat.exists():
        raise DatasetError(f"{mat} not found: expected an LSP layout (images/*.jpg + joints.mat)")
    images = sorted((directory / "images").glob("*.jpg"))
    if not images:
        raise DatasetError(f"no images/*.jpg in {directory}")
    raw = np.asarray(sio.loadmat(str(mat))["joints"], dtype=np.float64)
    if fmt is None:
        fmt = "lsp" if raw.shape[:2] == (3, NUM_JOINTS) else "lspet"
    if fmt == "lsp":
        if raw.shape[:2] != (3, NUM_JOINTS):
            raise DatasetError(f"{mat}: LSP joints must be 3x14xN, got {raw.shape}")
        arr = raw.transpose(2, 1, 0)                  # N, 14, 3
        visible = arr[:, :, 2] < 0.5                  # flag 1 = occluded
    elif fmt == "lspet":
        if raw.shape[:2] != (NUM_JOINTS, 3):
            raise DatasetError(f"{mat}: LSP-extended joints must be 14x3xN, got {raw.shape}")
        arr = raw.transpose(2, 0, 1)
        visible = arr[:, :, 2] > 0.5                  # flag 1 = visible
    else:
        raise DatasetError(f"unknown format {fmt!r}; allowed: lsp, lspet")
    if arr.shape[0] != len(images):
        raise DatasetError(f"{directory}: {len(images)} images but {arr.shape[0]} annotations")
    xy = arr[:, :, :2].copy()
    missing = (xy[:, :, 0] <= 1) | (xy[:, :, 1] <= 1)
    xy[missing] = np.nan
    visible &= ~missing
    xy, visible = xy[:, LSP_TO_MPI], visible[:, LSP_TO_MPI]
    return PoseSet(images, xy, visible, fmt)


def person_box(joints: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (2,) of the annotated joints' bounding box and its larger side."""
    p = joints[np.isfinite(joints[:, 0])]
    lo, hi = p.min(0), p.max(0)
    return (lo + hi) / 2.0, float(max(hi - lo))


SPLIT_SEED = 0          # the validation split never depends on a training run's seed


def splits(shared_data: str | Path, n_val: int = 500) -> tuple[PoseSet, PoseSet]:
    """train = LSP-extended minus ``n_val`` images (seed :data:`SPLIT_SEED`) + LSP im0001-1000;
    val = those ``n_val`` images."""
    shared_data = Path(shared_data)
    lspet = read_lsp_dir(shared_data / "lspet", "lspet")
    lsp = read_lsp_dir(shared_data / "lsp", "lsp")
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(lspet))
    val_idx = np.sort(perm[:n_val])
    train_idx = np.sort(perm[n_val:])
    return lspet.subset(train_idx).concat(lsp), lspet.subset(val_idx)


def build_crop_cache(data: PoseSet, cache_file: str | Path, progress: bool = True) -> dict:
    """Person-centred crops (CACHE_SIZE², person scaled to CACHE_PERSON px), cached as .npz.

    Returns dict(images uint8 (N,S,S,3), joints float32 (N,14,2) NaN missing, visible bool).
    The cache file name should include a key of the data (see ``crop_cache_file``).
    """
    cache_file = Path(cache_file)
    if cache_file.exists():
        with np.load(cache_file) as z:
            return {k: z[k] for k in z.files}
    n = len(data)
    images = np.zeros((n, CACHE_SIZE, CACHE_SIZE, 3), np.uint8)
    joints = np.full((n, NUM_JOINTS, 2), np.nan, np.float32)
    keep = np.zeros(n, bool)
    from ..progress import progress as progress_bar
    for i in progress_bar(range(n), desc="crop cache", enabled=progress):
        j = data.joints[i]
        if np.isfinite(j[:, 0]).sum() < 4:
            continue
        img = cv2.imread(str(data.images[i]), cv2.IMREAD_COLOR)
        if img is None:
            continue
        c, size = person_box(j)
        s = CACHE_PERSON / max(size, 8.0)
        m = np.array([[s, 0.0, 0.0], [0.0, s, 0.0]])
        m[:, 2] = (CACHE_SIZE - 1) / 2.0 - s * c   # person centre -> crop centre
        images[i] = cv2.warpAffine(img, m, (CACHE_SIZE, CACHE_SIZE), flags=cv2.INTER_AREA
                                   if s < 1 else cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
        joints[i] = j * s + m[:, 2]
        keep[i] = True
    out = {"images": images[keep], "joints": joints[keep], "visible": data.visible[keep]}
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(cache_file)
    return out


def crop_cache_file(cache_dir: str | Path, split: str, data: PoseSet) -> Path:
    """Where :func:`build_crop_cache` keeps the crops of ``data`` (``split``: "train" / "val")."""
    return Path(cache_dir) / f"{split}_{cache_key(data)}.npz"


def cache_key(data: PoseSet) -> str:
    """A key of the data and of how the crops are cut (another CACHE_SIZE: another cache)."""
    h = hashlib.sha1(f"{CACHE_SIZE}/{CACHE_PERSON}".encode())
    for p in data.images:
        h.update(str(p).encode())
    h.update(np.nan_to_num(data.joints).tobytes())
    return h.hexdigest()[:12]
