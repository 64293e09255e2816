"""``humanpose bench --webcam``: p50 / p95 milliseconds per frame of a 640x480 one-person
sequence, for every combination of

* path: the person detector on every frame (``tracking.detect_every: 1``) or tracking-driven
  crops (``tracking.detect_every`` of the config, 10 by default);
* backend: torch fp32, onnxruntime fp32, onnxruntime int8 (when ``export-onnx --int8`` has made
  the int8 file; otherwise the row says so);
* boxsize: 128, 192, 256 (``--boxsizes``).

Every variant has its own :class:`PoseEstimator` (own tracks) and they take turns frame by frame
(round robin), so that a busy neighbour or a slower minute disturbs them all alike.  Each frame
is timed from the call of ``estimate`` to its return (preprocessing, nets, decoding, tracking);
the first ``WARMUP`` frames of each variant are not counted.  Beside p50 / p95 the table gives
where the time goes: the mean milliseconds per frame of each step of ``PoseResult.timings``
(:data:`STEPS`: preprocess, person, pose, post, track; the person detector's time spread over
all frames, as it runs on some only).

Frames (:func:`webcam_frames`): ``--source`` (a video, its first frames resized to 640x480),
else a window moving over an LSP image of one upright person (``../shared/data/lsp``; the person
about 70 % of the frame height, panning +-100 px and zooming +-8 % like a person moving in front
of a webcam), else generated frames of a moving figure.
"""
from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import config
from ..config import set_value
from ..estimator.backends import BackendError, ort_threads
from ..estimator.cpu import describe as describe_cpu
from ..estimator.pipeline import PoseEstimator
from ..store import ModelError, load_named
from ..train.datasets import read_lsp_dir
from .calibrate import synthetic_images

FRAME_W, FRAME_H = 640, 480
DEFAULT_FRAMES = 60
DEFAULT_BOXSIZES = (128, 192, 256)
BACKENDS = (("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"),
            ("onnxruntime", "auto"))       # auto: the default (int8 pose net, fp32 detector)
WARMUP = 3
STEPS = ("preprocess", "person", "pose", "post", "track")


def _pick_lsp_person(lsp_dir: Path):
    """(image, joints, name) of the LSP image whose upright, fully annotated person (hands below
    the neck) leaves the most room for the moving 640x480 window around it (its edge pixels
    are repeated beyond the image, never mirrored: one person in view)."""
    data = read_lsp_dir(lsp_dir, "lsp")
    best, best_size = None, -1.0
    for i in range(len(data)):
        j = data.joints[i]
        if not np.isfinite(j).all() or not data.visible[i].all():
            continue
        head, neck, hips, ankles = j[0], j[1], (j[8] + j[11]) / 2, (j[10] + j[13]) / 2
        if not (head[1] < neck[1] < hips[1] < ankles[1]):
            continue       # upright only
        if abs(hips[0] - neck[0]) > 0.3 * (hips[1] - neck[1]) or j[[4, 7], 1].min() < neck[1]:
            continue       # no strong lean, hands below the neck
        lo, hi = j.min(0), j.max(0)
        size = float((hi - lo).max())
        hdr = cv2.imread(str(data.images[i]), cv2.IMREAD_REDUCED_GRAYSCALE_8)
        if hdr is None:
            continue
        ih, iw = hdr.shape[0] * 8, hdr.shape[1] * 8
        c = (lo + hi) / 2
        # how much of the moving window ((640 + 2 x 100) x (480 + 2 x 12) at 0.7 x 480 / size)
        # the image fills (the rest is its edge pixels repeated)
        half_w, half_h = 420 / 336 * size, 252 / 336 * size
        fill = ((min(c[0] + half_w, iw) - max(c[0] - half_w, 0)) *
                (min(c[1] + half_h, ih) - max(c[1] - half_h, 0))) / (4 * half_w * half_h)
        score = fill * min(size / 200.0, 1.0)
        if score > best_size:
            best, best_size = i, score
    if best is None:
        return None
    img = cv2.imread(str(data.images[best]), cv2.IMREAD_COLOR)
    return img, data.joints[best], data.images[best].name


def _moving_window(img: np.ndarray, centre: np.ndarray, size: float, n: int) -> list[np.ndarray]:
    frames = []
    for t in range(n):
        phase = 2 * np.pi * t / 60.0
        s = 0.7 * FRAME_H / size * (1.0 + 0.08 * np.sin(phase * 0.7))
        cx = centre[0] + 100.0 / s * np.sin(phase)
        cy = centre[1] + 12.0 / s * np.sin(phase * 1.3)
        m = np.array([[s, 0.0, FRAME_W / 2 - s * cx], [0.0, s, FRAME_H / 2 - s * cy]])
        frames.append(cv2.warpAffine(img, m, (FRAME_W, FRAME_H), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE))
    return frames


def webcam_frames(n: int = DEFAULT_FRAMES, source: str | None = None) -> tuple[list[np.ndarray], str]:
    """``n`` 640x480 BGR frames of one person and where they come from (see the module doc)."""
    if source:
        cap = cv2.VideoCapture(str(source))
        frames = []
        while len(frames) < n:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(cv2.resize(f, (FRAME_W, FRAME_H), interpolation=cv2.INTER_AREA))
        cap.release()
        if not frames:
            img = cv2.imread(str(source), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"--source {source}: neither a readable video nor an image")
            frames = [cv2.resize(img, (FRAME_W, FRAME_H))] * n
        return frames, f"{len(frames)} frames of {Path(source).name} resized to 640x480"
    lsp = config.shared_media().parent / "data" / "lsp"
    picked = _pick_lsp_person(lsp) if (lsp / "joints.mat").exists() else None
    if picked is not None:
        img, joints, name = picked
        lo, hi = joints.min(0), joints.max(0)
        return (_moving_window(img, (lo + hi) / 2, float((hi - lo).max()), n),
                f"{n} 640x480 frames: a window moving over LSP {name} (one person, ~70 % of the "
                "frame height)")
    img, c, size = synthetic_images(1, 480, 640, seed=3)[0]
    return (_moving_window(img, c, size, n),
            f"{n} 640x480 frames: a window moving over a generated figure (no ../shared)")


@dataclass
class Variant:
    path: str          # "detect every frame" | "tracking-driven"
    framework: str
    precision: str
    boxsize: int
    estimator: object = None
    times: list = None
    steps: dict = None         # step -> sum of its milliseconds over the timed frames
    tracked: int = 0
    persons: int = 0
    skip: str | None = None

    @property
    def backend(self) -> str:
        if self.precision == "auto" and self.estimator is not None:   # what auto chose here
            p = self.estimator.backend_report["precision"]
            return f"{self.framework} auto (pose {p['pose']}, person {p['person']})"
        return f"{self.framework} {self.precision}"


def make_variants(cfg, person, pose, boxsizes, backends=BACKENDS, paths=("every", "tracked")):
    out = []
    every = max(cfg.tracking.detect_every, 2)
    for b in boxsizes:
        for framework, precision in backends:
            for path in paths:
                v = Variant("detect every frame" if path == "every" else
                            f"tracking-driven (detector every {every})", framework, precision, b,
                            times=[], steps={})
                c = set_value(cfg, "model.framework", framework)
                c = set_value(c, "model.precision", precision)
                c = set_value(c, "model.device", "cpu")
                c = set_value(c, "estimator.boxsize", b)
                c = set_value(c, "tracking.enabled", True)
                c = set_value(c, "tracking.detect_every", 1 if path == "every" else every)
                try:
                    est = PoseEstimator(c, person, pose)
                except BackendError as exc:
                    v.skip = str(exc)
                    out.append(v)
                    continue
                if precision not in ("fp32", "auto") and not est.backend_name.endswith(precision):
                    v.skip = est.backend_note or f"{precision} not available"
                v.estimator = est
                out.append(v)
    return out


def run_variants(variants, frames, warmup: int = WARMUP) -> None:
    """Round robin: frame i goes through every variant before frame i + 1."""
    live = [v for v in variants if v.skip is None]
    for v in live:
        for f in frames[:warmup]:
            v.estimator.estimate(f, keep_maps=False)
        v.estimator.reset()
    fps = 30.0
    for i, f in enumerate(frames):
        for v in live:
            t = time.perf_counter()
            r = v.estimator.estimate(f, timestamp=i / fps, frame_index=i, keep_maps=False)
            v.times.append((time.perf_counter() - t) * 1000.0)
            for k in STEPS:
                v.steps[k] = v.steps.get(k, 0.0) + r.timings.get(k, 0.0)
            v.persons += len(r.persons)
            v.tracked += bool(r.timings.get("tracked", 0.0))


def percentile(xs, q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def format_table(variants) -> str:
    """The markdown table: p50 / p95 and the mean ms per frame of every step (STEPS)."""
    lines = ["| boxsize | backend | path | p50 ms | p95 ms | fps (p50) | "
             + " | ".join(STEPS) + " | persons/frame | tracked frames |",
             "|---:|---|---|---:|---:|---:|" + "---:|" * len(STEPS) + "---:|---:|"]
    for v in variants:
        if v.skip is not None:
            lines.append(f"| {v.boxsize} | {v.backend} | {v.path} | - | - | - | "
                         + "- | " * len(STEPS) + f"- | ({v.skip}) |")
            continue
        n = len(v.times)
        p50 = statistics.median(v.times)
        steps = " | ".join(f"{(v.steps or {}).get(k, 0.0) / n:.2f}" for k in STEPS)
        lines.append(f"| {v.boxsize} | {v.backend} | {v.path} | {p50:.1f} | "
                     f"{percentile(v.times, 95):.1f} | {1000.0 / p50:.0f} | {steps} | "
                     f"{v.persons / n:.2f} | {v.tracked}/{n} |")
    return "\n".join(lines)


def main(args, cfg, boxsizes=None, frames=None) -> int:
    """``bench --webcam`` (``boxsizes`` / ``frames`` None: the defaults of this module)."""
    import torch

    models_dir = cfg.resolve(cfg.model.models_dir)
    try:
        person = load_named(cfg.model.person_model, models_dir, "person")
        pose = load_named(cfg.model.pose_model, models_dir, "pose")
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    boxsizes = list(boxsizes or DEFAULT_BOXSIZES)
    try:
        frames, where = webcam_frames(frames or DEFAULT_FRAMES, args.source)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    backends = BACKENDS
    if args.framework:
        backends = [b for b in BACKENDS if b[0] == args.framework] or [(args.framework, "fp32")]
    variants = make_variants(cfg, person, pose, boxsizes, backends)
    run_variants(variants, frames)
    print(f"\nhumanpose bench --webcam: {cfg.model.person_model} + {cfg.model.pose_model}, "
          f"{where}; {torch.get_num_threads()} torch thread(s), onnxruntime "
          f"{ort_threads()} intra-op thread(s), CPU {describe_cpu()}; round robin over the "
          f"variants; p50 / p95 of {len(frames)} frames each after {WARMUP} warm-up frames, and "
          f"the mean ms per frame of each step ({', '.join(STEPS)}; the detector's time spread "
          f"over all frames)\n")
    print(format_table(variants))
    notes = {v.estimator.backend_note for v in variants
             if v.estimator is not None and v.estimator.backend_note}
    for n in sorted(notes):
        print(f"note: {n}")
    return 0
