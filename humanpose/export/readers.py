"""Result files read back: the keypoints CSV and the JSON-lines file that
:class:`.writers.KeypointWriter` writes (their formats: :mod:`.writers`).  A file in another
format raises :class:`.writers.ExportError` naming the file and line.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..skeleton import JOINT_INDEX, JOINTS, NUM_JOINTS
from .writers import CSV_COLUMNS, ExportError


@dataclass
class FrameKeypoints:
    frame: int
    time_s: float
    persons: dict[int, np.ndarray] = field(default_factory=dict)  # person -> (14, 3), NaN = absent


def _float(text: str) -> float:
    return float(text) if text.strip() else float("nan")


def read_keypoints_csv(path: str | Path) -> list[FrameKeypoints]:
    """Read a keypoints CSV back: one :class:`FrameKeypoints` per frame with rows, frame order.

    Raises :class:`ExportError` (naming the file and line) on wrong columns or bad values.
    """
    path = Path(path)
    if not path.exists():
        raise ExportError(f"keypoints file not found: {path}")
    frames: dict[int, FrameKeypoints] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != CSV_COLUMNS:
            raise ExportError(f"{path}: expected the columns {','.join(CSV_COLUMNS)}, "
                              f"found {','.join(header or []) or 'nothing'}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(CSV_COLUMNS):
                raise ExportError(f"{path}:{line}: expected {len(CSV_COLUMNS)} fields, "
                                  f"found {len(row)}")
            try:
                frame, t, pid = int(row[0]), _float(row[1]), int(row[2])
                x, y, s = _float(row[4]), _float(row[5]), _float(row[6])
            except ValueError as exc:
                raise ExportError(f"{path}:{line}: bad value ({exc})") from exc
            if row[3] not in JOINT_INDEX:
                raise ExportError(f"{path}:{line}: unknown joint {row[3]!r}; "
                                  f"known: {', '.join(JOINTS)}")
            fk = frames.setdefault(frame, FrameKeypoints(frame, t))
            arr = fk.persons.get(pid)
            if arr is None:
                arr = fk.persons[pid] = np.full((NUM_JOINTS, 3), np.nan)
            arr[JOINT_INDEX[row[3]]] = (x, y, s)
    return [frames[k] for k in sorted(frames)]


def _nan_array(values, shape) -> np.ndarray:
    arr = np.array([[np.nan if v is None else v for v in r] if isinstance(r, list)
                    else (np.nan if r is None else r) for r in values], dtype=np.float64)
    return arr.reshape(shape)


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSON-lines result file: a list of per-frame dicts; each person's ``centre`` (2,),
    ``box`` (4,) and ``joints`` (14, 3) become float arrays (null -> NaN)."""
    path = Path(path)
    if not path.exists():
        raise ExportError(f"JSON lines file not found: {path}")
    out = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                for p in obj["persons"]:
                    p["centre"] = _nan_array(p["centre"], (2,))
                    p["box"] = _nan_array(p["box"], (4,))
                    p["joints"] = _nan_array(p["joints"], (NUM_JOINTS, 3))
                    if p.get("score") is None:
                        p["score"] = float("nan")
                if obj.get("time_s") is None:
                    obj["time_s"] = float("nan")
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ExportError(f"{path}:{line_no}: not a humanpose result line ({exc!r})") \
                    from exc
            out.append(obj)
    return out
