"""``humanpose run SOURCE``: headless pose estimation on a video, image, folder, camera or stream.

Writes into the output folder (default ``<output.directory>/<source stem>``):

* ``keypoints.csv`` (frame,time_s,person,joint,x,y,score) and ``keypoints.jsonl``;
* ``annotated.mp4`` for videos, cameras and streams, or ``annotated/<file name>`` for images
  and folders (unless ``--no-video``).

It ends with one summary line, e.g. ``frames: 205  persons found: 412 (tracks: 5)  fps: 12.3``
(persons found = person detections summed over frames; tracks = distinct track ids).  Bad
sources, missing weights and bad configs print ``error: ...`` and exit with status 2;
Ctrl-C stops cleanly with every file closed and complete up to the last frame (status 130).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .. import config as config_mod
from ..config import Config, ConfigError, add_estimator_arguments
from ..sources import FrameSource, SourceError, open_source, source_stem
from .draw import draw_result
from .writers import ExportError, KeypointWriter, VideoWriter, write_image

IMAGE_OUT_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class RunSummary:
    frames: int = 0
    persons: int = 0                      # person detections summed over frames
    track_ids: set[int] = field(default_factory=set)
    seconds: float = 0.0
    tracking: bool = True
    out_dir: Path | None = None
    csv_path: Path | None = None
    jsonl_path: Path | None = None
    video_path: Path | None = None        # annotated video (videos, cameras, streams)
    images_dir: Path | None = None        # annotated images (images, folders)
    interrupted: bool = False
    source_error: str | None = None       # the source ended abnormally (e.g. truncated video)
    notes: list[str] = field(default_factory=list)

    @property
    def tracks(self) -> int:
        return len(self.track_ids)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        tracks = f" (tracks: {self.tracks})" if self.tracking else ""
        return f"frames: {self.frames}  persons found: {self.persons}{tracks}  fps: {self.fps:.1f}"


def _image_name(name: str) -> str:
    """The annotated image's file name: the source's, + .png where its format cannot be written
    (d.ppm -> d.ppm.png: unique, as the folder's names are; d.png would overwrite d.png's)."""
    return name if Path(name).suffix.lower() in IMAGE_OUT_SUFFIXES else name + ".png"


def run(source: str | int | FrameSource, cfg: Config, out_dir: str | Path | None = None, *,
        write_video: bool = True, max_frames: int | None = None, person_model=None,
        pose_model=None, progress: bool = True) -> RunSummary:
    """Estimate poses on every frame of ``source`` and write the result files.

    ``source``: a spec for :func:`humanpose.sources.open_source` or an open FrameSource (closed
    on return).  ``person_model`` / ``pose_model``: networks to use instead of the configured
    weights.  Raises SourceError, ModelError, BackendError, ConfigError or ExportError before
    anything is written when the run cannot start; a Ctrl-C ends the run early
    (``summary.interrupted``) with all files closed.
    """
    src = source if isinstance(source, FrameSource) else open_source(source, cfg.source)
    kps = video = None
    bar = None
    summary = RunSummary(tracking=cfg.tracking.enabled)
    try:
        src.loop = False                  # a headless run must end
        from ..estimator.pipeline import PoseEstimator   # torch: only once the source is fine
        estimator = PoseEstimator(cfg, person_model, pose_model)
        if estimator.backend_note:
            summary.notes.append(estimator.backend_note)
        stem = source_stem(source) if not isinstance(source, FrameSource) else \
            source_stem(src.name) if src.name else "source"
        out = Path(out_dir) if out_dir is not None else cfg.resolve(cfg.output.directory) / stem
        summary.out_dir = out
        summary.csv_path, summary.jsonl_path = out / "keypoints.csv", out / "keypoints.jsonl"
        kps = KeypointWriter(summary.csv_path, summary.jsonl_path)

        total = src.frame_count
        if max_frames is not None:
            total = min(total, max_frames) if total else max_frames
        from ..progress import Progress    # a bar on a terminal only; run prints its own summary
        bar = Progress(total=total, unit="frame", enabled=progress, file=sys.stderr,
                       summary=False, dynamic_ncols=True, leave=False)
        gui = cfg.gui
        t0 = time.perf_counter()
        try:
            while max_frames is None or summary.frames < max_frames:
                frame = src.read()
                if frame is None:
                    break
                result = estimator.estimate(frame.image, timestamp=frame.timestamp,
                                            frame_index=frame.index, keep_maps=False)
                kps.write(result)
                summary.frames += 1
                summary.persons += len(result.persons)
                summary.track_ids.update(p.track_id for p in result.persons if p.track_id >= 0)
                if write_video:
                    annotated = draw_result(frame.image, result, show_boxes=gui.show_boxes,
                                            show_scores=gui.show_scores,
                                            joint_threshold=cfg.estimator.joint_threshold)
                    if frame.name is not None:
                        summary.images_dir = out / "annotated"
                        write_image(summary.images_dir / _image_name(frame.name), annotated)
                    else:
                        if video is None:
                            video = VideoWriter(out / "annotated.mp4",
                                                src.fps or cfg.source.camera_fps)
                        video.write(annotated)
                        summary.video_path = video.path
                bar.update(1)
                bar.set_postfix(persons=len(result.persons), refresh=False)
        except KeyboardInterrupt:
            summary.interrupted = True
        summary.seconds = time.perf_counter() - t0
        summary.source_error = src.error
        skipped = getattr(src, "skipped", None)     # unreadable files of an image folder
        if skipped:
            names = ", ".join(Path(f).name for f in skipped[:5]) + (", …" if len(skipped) > 5 else "")
            summary.notes.append(f"{len(skipped)} unreadable image(s) skipped: {names}")
    finally:
        if bar is not None:
            bar.close()
        for closable in (video, kps, src):
            if closable is not None:
                closable.close()
    return summary


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="video file, image, image folder, camera index (0) or "
                                       "stream URL (rtsp://, http://...)")
    parser.add_argument("--config", metavar="YAML", help="config file (default: humanpose.yml)")
    parser.add_argument("--out", metavar="DIR",
                        help="output folder (default: <output.directory>/<source name>)")
    add_estimator_arguments(parser)
    parser.add_argument("--no-video", action="store_true",
                        help="write only the keypoint files, no annotated video / images")
    parser.add_argument("--max-frames", type=_positive_int, metavar="N",
                        help="stop after N frames (needed to end a camera or live stream "
                             "without Ctrl-C)")
    parser.add_argument("--framework", metavar="NAME", help="torch or opencv (model.framework)")
    parser.add_argument("--device", metavar="NAME", help="cpu, cuda or auto (model.device)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a user-facing error (bad source, weights, backend, config, output) that
    deserves one ``error:`` line rather than a traceback.  The torch-side modules are looked up
    only when loaded, so a bad source or config fails fast without importing torch."""
    kinds: list[type] = [SourceError, ConfigError, ExportError]
    for module, name in (("humanpose.store", "ModelError"),
                         ("humanpose.estimator.backends", "BackendError")):
        if module in sys.modules:
            kinds.append(getattr(sys.modules[module], name))
    return isinstance(exc, tuple(kinds))


def main(args: argparse.Namespace) -> int:
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            cfg = config_mod.from_args(args)
            summary = run(args.source, cfg, args.out, write_video=not args.no_video,
                          max_frames=args.max_frames, progress=not args.no_progress)
        except Exception as exc:
            if not user_error(exc):
                raise
            print(f"error: {exc}", file=sys.stderr)
            return 2
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    if summary.source_error:
        print(f"warning: {summary.source_error}", file=sys.stderr)
    if summary.interrupted:
        print("interrupted: files closed after the last complete frame", file=sys.stderr)
    print(f"keypoints: {summary.csv_path}, {summary.jsonl_path}")
    if summary.video_path:
        print(f"annotated video: {summary.video_path}")
    if summary.images_dir:
        print(f"annotated images: {summary.images_dir}")
    print(summary.line())
    return 130 if summary.interrupted else 0
