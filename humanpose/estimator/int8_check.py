"""Does an int8 export give fp32's answer on *this* CPU?  The self-check of ``precision: auto``.

int8 kernels differ by CPU class (:mod:`.cpu`): an export that is exact on a VNNI / AMX machine
can lose two persons in three on AVX2 alone.  So before an int8 export runs, the fp32 and int8
nets see the same reference inputs, made from ``resources/int8_reference.jpg`` (a public-domain
NASA portrait, from scikit-image's sample data):

* person net: the photo as a webcam-like 4:3 frame and, small, beside grey: the centre-map
  peaks of fp32 (>= :data:`PEAK_STRONG`) must each have an int8 peak (>= :data:`PEAK_WEAK`)
  within :data:`TOLERANCE_CELLS` map cells, and the other way round, with peak values within
  :data:`VALUE_TOLERANCE`;
* pose net: the person's crop with its centre map: each joint fp32 scores >= :data:`PEAK_STRONG`
  must lie within :data:`TOLERANCE_CELLS` cells in int8, its score within
  :data:`VALUE_TOLERANCE` (all but :data:`MAX_BAD_JOINTS`).

Measured (the shipped nets, full 8-bit weights, under ``qemu-x86_64 -cpu Haswell``, i.e. AVX2
kernels): the person net's peak on the reference fell from 0.70 to 0.25 and the check failed;
with the 7-bit weights the int8 outputs are the same on AVX2 and AVX512-VNNI, and it passes.

The verdict is kept next to the export (``<export>.check.json``), keyed by the export's record
and :func:`.cpu.cpu_key` (CPU model, its int8 flags, onnxruntime's version), so a later start
costs nothing and another CPU checks again.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from . import maps
from .cpu import cpu_key, describe
from .crops import PAD_VALUE, normalise, pad_to_stride

REFERENCE = Path(__file__).resolve().parents[2] / "resources" / "int8_reference.jpg"
CHECK_SUFFIX = ".check.json"
PEAK_STRONG = 0.3
PEAK_WEAK = 0.15
TOLERANCE_CELLS = 1.5
VALUE_TOLERANCE = 0.2
MAX_BAD_JOINTS = 1      # one ambiguous joint may move (ARM and x86 kernels round differently)
BOXSIZE = 192

Runner = Callable[[np.ndarray], list]


def _reference() -> np.ndarray:
    img = cv2.imread(str(REFERENCE), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"the int8 reference image {REFERENCE} is missing or unreadable")
    return img


def reference_inputs(kind: str, boxsize: int = BOXSIZE,
                     centre_sigma: float = 0.06) -> list[np.ndarray]:
    """float32 (1, C, H, W) inputs for a ``kind`` ("person" | "pose") net."""
    img = _reference()
    if kind == "pose":              # the upper body at 0.6 of the crop, standing on its bottom
        patch = np.full((boxsize, boxsize, 3), PAD_VALUE, np.uint8)
        s = int(boxsize * 0.6)
        x0 = (boxsize - s) // 2
        patch[boxsize - s:, x0:x0 + s] = cv2.resize(img, (s, s), interpolation=cv2.INTER_AREA)
        cmap = maps.centre_map(boxsize, centre_sigma * boxsize)[None]
        return [np.concatenate([normalise(patch), cmap])[None].astype(np.float32)]
    h = boxsize
    w = int(round(h * 4 / 3))
    big = cv2.resize(img, (w, w), interpolation=cv2.INTER_AREA)[:h]     # head and chest
    small = np.full((h, w, 3), PAD_VALUE, np.uint8)
    s = int(h * 0.6)
    small[h - s:, w // 8:w // 8 + s] = cv2.resize(img, (s, s), interpolation=cv2.INTER_AREA)
    return [normalise(pad_to_stride(f, 32))[None].astype(np.float32) for f in (big, small)]


def _matched(a: np.ndarray, b: np.ndarray) -> bool:
    """Each strong peak of ``a`` has a weak peak of ``b`` near it with a close value."""
    for u, v, val in a[a[:, 2] >= PEAK_STRONG]:
        d = np.hypot(b[:, 0] - u, b[:, 1] - v) if len(b) else np.array([])
        near = d <= TOLERANCE_CELLS
        if not near.any() or np.abs(b[near, 2] - val).min() > VALUE_TOLERANCE:
            return False
    return True


def compare(kind: str, fp32: list[np.ndarray], int8: list[np.ndarray]) -> str | None:
    """None when the final-stage maps of one reference input agree, else what differs."""
    a, b = np.asarray(fp32[-1], np.float32)[0], np.asarray(int8[-1], np.float32)[0]
    if kind == "person":
        pa = maps.find_peaks(a[0], PEAK_WEAK, min_distance=2)
        pb = maps.find_peaks(b[0], PEAK_WEAK, min_distance=2)
        if not (_matched(pa, pb) and _matched(pb, pa)):
            strong = lambda p: int((p[:, 2] >= PEAK_STRONG).sum())  # noqa: E731
            return (f"person peaks fp32 {strong(pa)}, int8 {strong(pb)} "
                    f"(max {a[0].max():.2f} vs {b[0].max():.2f})")
        return None
    joints = a.shape[0] - 1          # the last map is the background
    bad = []
    for k in range(joints):
        ia = np.unravel_index(int(np.argmax(a[k])), a[k].shape)
        if a[k][ia] < PEAK_STRONG:
            continue
        ib = np.unravel_index(int(np.argmax(b[k])), b[k].shape)
        if (np.hypot(ia[0] - ib[0], ia[1] - ib[1]) > TOLERANCE_CELLS
                or abs(float(a[k][ia]) - float(b[k][ib])) > VALUE_TOLERANCE):
            bad.append(k)
    return (f"{len(bad)} of {joints} joints moved or changed score"
            if len(bad) > MAX_BAD_JOINTS else None)


def check(kind: str, run_fp32: Runner, run_int8: Runner) -> str | None:
    """Run both nets on the reference inputs: None when they agree, else why not."""
    for x in reference_inputs(kind):
        why = compare(kind, run_fp32(x), run_int8(x))
        if why:
            return why
    return None


def _verdict_path(export: Path) -> Path:
    return export.with_name(export.name + CHECK_SUFFIX)


def cached(export: Path, record: str) -> tuple[bool, str | None] | None:
    """(checked, why it disagreed or None) kept for this export and this CPU, or None."""
    try:
        data = json.loads(_verdict_path(export).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("record") != record or data.get("cpu") != cpu_key():
        return None
    why = data.get("disagreement")
    return True, why if isinstance(why, str) else None


def keep(export: Path, record: str, why: str | None) -> None:
    """Keep the verdict next to the export (silently not, where the folder is read-only)."""
    path = _verdict_path(export)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"record": record, "cpu": cpu_key(), "disagreement": why},
                                  indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def disagreement_note(why: str) -> str:
    """The backend note for an int8 export that failed the check."""
    return f"int8 disagreed with fp32 on this CPU, {describe()} ({why}); using fp32"
