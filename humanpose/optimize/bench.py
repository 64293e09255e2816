"""``humanpose bench``: milliseconds per step for several box sizes, compact net vs. cpm_vgg.

(``humanpose bench --webcam``: ms per frame of a one-person webcam sequence, see
:mod:`.webcam_bench`.)

For every architecture and box size the full pipeline (:class:`PoseEstimator`, configured
backend, device and tracking) runs on ``--frames`` frames after two warm-up frames; the table
gives median milliseconds of

* *person detection*: preprocessing + person net + peak finding (per frame);
* *pose estimation*: the pose net on one person crop (per person; independent of how many
  persons the person net happens to find);
* *full pipeline*: everything per frame, with the median number of persons found.

Weights: the compact column uses the configured weights (model.person_model / pose_model); if
they are missing it falls back to random weights FOR TIMING ONLY and says so.  cpm_vgg uses
converted official weights given with ``--vgg-person`` / ``--vgg-pose`` and otherwise random
weights (timing only; the table header says so).  Frames: ``--source`` (video or image), else
``../shared/media/street_people.avi`` when present, else a generated frame.
"""
from __future__ import annotations

import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from .. import config
from ..config import set_value
from ..estimator.backends import BackendError
from ..estimator.cpu import describe as describe_cpu
from ..estimator.crops import crop, crop_offset, normalise, scale_frame
from ..estimator.pipeline import PoseEstimator
from ..nets import build_model
from ..store import ModelError, load_model, load_named
from . import webcam_bench

DEFAULT_BOXSIZES = (96, 128, 192, 320)
DEFAULT_ARCHS = ("cpm_compact", "cpm_vgg")
RANDOM_NOTE = "random weights, timing only"
WARMUP = 2   # untimed runs per box size (allocator / kernel selection)


def add_arguments(parser) -> None:
    parser.add_argument("--config", default=None, help="config file (default: humanpose.yml)")
    parser.add_argument("--boxsizes", type=int, nargs="+", default=list(DEFAULT_BOXSIZES),
                        metavar="N", help="box sizes to time (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=10,
                        help="timed frames per box size (default: %(default)s)")
    parser.add_argument("--source", default=None,
                        help="video or image to time on (default: ../shared/media/street_people.avi "
                             "if present, else a generated frame)")
    parser.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS), choices=DEFAULT_ARCHS,
                        help="architectures to compare (default: %(default)s)")
    parser.add_argument("--models", nargs="+", default=None, metavar="PERSON,POSE",
                        help="compare these weight pairs (manifest names or files) side by side "
                             "instead of --archs, e.g. person_multipose,pose_mobilenet "
                             "person_compact,pose_compact")
    parser.add_argument("--vgg-person", default=None, help="converted cpm_vgg person weights")
    parser.add_argument("--vgg-pose", default=None, help="converted cpm_vgg pose weights")
    parser.add_argument("--framework", choices=("onnxruntime", "torch", "opencv"), default=None,
                        help="override model.framework")
    parser.add_argument("--webcam", action="store_true",
                        help="p50 / p95 ms per frame of a 640x480 one-person sequence: detector on "
                             "every frame vs tracking-driven crops, torch / onnxruntime fp32 / "
                             "int8, boxsizes 128 192 256 (--boxsizes, --frames, --source apply)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default=None,
                        help="override model.device")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch / OpenCV CPU threads (default: their own default)")


# ------------------------------------------------------------------------------- frames
def generated_frame(h: int = 480, w: int = 640) -> np.ndarray:
    """A textured frame with a few person-sized shapes (deterministic)."""
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3)
    for cx in (0.25, 0.5, 0.75):
        x = int(cx * w)
        cv2.circle(frame, (x, int(0.25 * h)), h // 16, (60, 90, 200), -1)
        cv2.rectangle(frame, (x - h // 12, int(0.32 * h)), (x + h // 12, int(0.62 * h)),
                      (40, 160, 40), -1)
        cv2.line(frame, (x, int(0.62 * h)), (x - h // 12, int(0.9 * h)), (150, 50, 50), h // 40)
        cv2.line(frame, (x, int(0.62 * h)), (x + h // 12, int(0.9 * h)), (150, 50, 50), h // 40)
    return frame


def load_frames(source: str | None, n: int) -> tuple[list[np.ndarray], str]:
    """Up to ``n`` frames and a description of where they come from."""
    path = Path(source) if source else config.shared_media() / "street_people.avi"
    if source is None and not path.exists():
        return [generated_frame()], "a generated 640x480 frame (no ../shared/media)"
    if not path.exists():
        raise FileNotFoundError(f"--source {path} not found")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.suffix.lower() not in (
        ".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".wmv") else None
    if img is not None:
        frames = [img]
    else:
        cap = cv2.VideoCapture(str(path))
        frames = []
        while len(frames) < max(n, 1):
            ok, f = cap.read()
            if not ok:
                break
            frames.append(f)
        cap.release()
        if not frames:
            raise ValueError(f"--source {path}: neither an image nor a readable video")
    h, w = frames[0].shape[:2]
    return frames, f"{len(frames)} frame(s) of {path.name} ({w}x{h})"


# ------------------------------------------------------------------------------- models
@dataclass
class Candidate:
    arch: str
    person: torch.nn.Module
    pose: torch.nn.Module
    weights: str                       # description for the table
    notes: list[str] = field(default_factory=list)
    random: bool = False


def _random(arch: str, kind: str) -> torch.nn.Module:
    torch.manual_seed(0)               # stable weights -> the ONNX cache entry is reused
    return build_model(arch, kind).eval()


def compact_candidate(cfg) -> Candidate:
    models_dir = cfg.resolve(cfg.model.models_dir)
    try:
        person = load_named(cfg.model.person_model, models_dir, "person")
        pose = load_named(cfg.model.pose_model, models_dir, "pose")
    except ModelError as exc:
        note = (f"NOTE: configured weights not usable ({exc}).\n"
                "      Timing cpm_compact with RANDOM weights - for timing only, no poses.")
        return Candidate("cpm_compact", _random("cpm_compact", "person"),
                         _random("cpm_compact", "pose"), RANDOM_NOTE, [note], random=True)
    arch = getattr(pose, "arch", "cpm_compact")
    return Candidate(arch, person, pose, f"{cfg.model.person_model} + {cfg.model.pose_model}")


def named_candidate(cfg, pair: str) -> Candidate:
    """A PERSON,POSE pair of manifest names or weight files (``--models``)."""
    names = pair.split(",")
    if len(names) != 2 or not all(names):
        raise ValueError(f"--models takes PERSON,POSE pairs, not {pair!r}")
    models_dir = cfg.resolve(cfg.model.models_dir)
    person = load_named(names[0], models_dir, "person")
    pose = load_named(names[1], models_dir, "pose")
    return Candidate(getattr(pose, "arch", "?"), person, pose, f"{names[0]} + {names[1]}")


def vgg_candidate(person_path: str | None, pose_path: str | None) -> Candidate:
    if bool(person_path) != bool(pose_path):
        raise ValueError("give both --vgg-person and --vgg-pose, or neither")
    if person_path:
        return Candidate("cpm_vgg", load_model(person_path, kind="person"),
                         load_model(pose_path, kind="pose"), f"{Path(person_path).name} + "
                         f"{Path(pose_path).name}")
    note = ("NOTE: cpm_vgg timed with RANDOM weights (no converted weights given with "
            "--vgg-person/--vgg-pose) - timing only.")
    return Candidate("cpm_vgg", _random("cpm_vgg", "person"), _random("cpm_vgg", "pose"),
                     RANDOM_NOTE, [note], random=True)


# ------------------------------------------------------------------------------- timing
def _median(xs) -> float:
    return statistics.median(xs) if xs else float("nan")


def time_candidate(cfg, cand: Candidate, frames: list[np.ndarray], boxsizes, n: int,
                   framework: str, device: str) -> tuple[dict, str]:
    """{boxsize: {"person", "pose", "total", "persons"}} and the backend name."""

    # the detector on every frame: this table times it (bench --webcam times the tracked path)
    est = PoseEstimator(set_value(cfg, "tracking.detect_every", 1), cand.person, cand.pose)
    est.set_backend(framework, device)
    rows = {}
    for b in boxsizes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b = est.set_boxsize(b)
        est.reset()
        for _ in range(WARMUP):
            est.estimate(frames[0])
        person, total, count = [], [], []
        for i in range(n):
            r = est.estimate(frames[i % len(frames)], frame_index=i, keep_maps=False)
            person.append(r.timings["preprocess"] + r.timings["person"])
            total.append(r.timings["total"])
            count.append(len(r.persons))
        # pose net on one crop at the frame centre (per person)
        scaled, _, _ = scale_frame(frames[0] if frames[0].ndim == 3 else
                                   cv2.cvtColor(frames[0], cv2.COLOR_GRAY2BGR), b)
        ox, oy = crop_offset(np.array([scaled.shape[1] / 2, scaled.shape[0] / 2]), b)
        x = np.concatenate([normalise(crop(scaled, ox, oy, b)), est.pose.centre_map(b)[None]])[None]
        for _ in range(WARMUP):
            est.pose.backend(x)
        pose = []
        for _ in range(n):
            t = time.perf_counter()
            est.pose.backend(x)
            pose.append((time.perf_counter() - t) * 1000.0)
        rows[b] = {"person": _median(person), "pose": _median(pose), "total": _median(total),
                   "persons": _median(count)}
    return rows, est.backend_name


def format_table(results: list[tuple[Candidate, dict]], boxsizes) -> str:
    def head(c: Candidate) -> str:
        return f"{c.arch} ({c.weights})"
    lines = ["| boxsize | step (median ms) | " + " | ".join(head(c) for c, _ in results) + " |",
             "|---:|---|" + "---:|" * len(results)]
    steps = (("person", "person detection (per frame)"), ("pose", "pose estimation (per person)"),
             ("total", "full pipeline (per frame; persons found)"))
    for b in boxsizes:
        for key, label in steps:
            cells = []
            for _, rows in results:
                r = rows[b]
                cell = f"{r[key]:.1f}"
                if key == "total":
                    cell += f" ({r['persons']:g})"
                cells.append(cell)
            lines.append(f"| {b} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(args) -> int:

    cfg = config.from_args(args)   # a ConfigError is reported by the cli
    framework = args.framework or cfg.model.framework
    device = args.device or cfg.model.device
    if args.frames < 1:
        print("error: --frames must be at least 1", file=sys.stderr)
        return 2
    bad = [b for b in args.boxsizes if not 64 <= b <= 640]
    if bad:
        print(f"error: boxsize {bad[0]} is outside the allowed range 64 to 640", file=sys.stderr)
        return 2
    if args.threads is not None:
        if args.threads < 1:
            print("error: --threads must be at least 1", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    boxsizes = list(dict.fromkeys(8 * round(b / 8) for b in args.boxsizes))
    if getattr(args, "webcam", False):
        given = args.boxsizes != list(DEFAULT_BOXSIZES)
        return webcam_bench.main(args, cfg, boxsizes if given else None,
                                 args.frames if args.frames != 10 else None)
    try:
        frames, where = load_frames(args.source, args.frames)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    results = []
    for arch in args.models or args.archs:
        try:
            cand = (named_candidate(cfg, arch) if args.models
                    else compact_candidate(cfg) if arch == "cpm_compact"
                    else vgg_candidate(args.vgg_person, args.vgg_pose))
        except (ModelError, ValueError, ImportError) as exc:
            print(f"error: {arch}: {exc}", file=sys.stderr)
            return 1
        for note in cand.notes:
            print(note)
        try:
            rows, backend = time_candidate(cfg, cand, frames, boxsizes, args.frames,
                                           framework, device)
        except BackendError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        results.append((cand, rows))

    print(f"\nhumanpose bench: backend {backend}, {torch.get_num_threads()} torch threads, "
          f"{args.frames} timed frame(s) per box size on {where}, tracking "
          f"{'on' if cfg.tracking.enabled else 'off'}; CPU {describe_cpu()}")
    if any(c.random for c, _ in results):
        print("Columns marked 'random weights, timing only' show speed, not accuracy.")
    print()
    print(format_table(results, boxsizes))
    return 0
