"""One headless run: every frame of a source through the estimator into the result files of an
output folder (:mod:`.outdir`), and a :class:`RunSummary` of what happened.  The command line
around it (arguments, messages, exit status): :mod:`.run_cmd`.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from ..config import Config
from ..sources import FrameSource, open_source, source_stem
from .draw import draw_result
from .manifest import config_hash, find_manifest
from .outdir import FolderBusy, OutputFolder
from .stopping import SIGNAL_NAMES, StopOnSignal
from .writers import ExportError, KeypointWriter, VideoWriter, write_image

IMAGE_OUT_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


# exit codes of `humanpose run` (the README's table)
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INCOMPLETE = 0, 1, 2, 3


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
    video_codec: str | None = None        # its codec: "h264" (PyAV), else OpenCV's "mp4v" / "MJPG"
    images_dir: Path | None = None        # annotated images (images, folders)
    manifest_path: Path | None = None     # run.json
    backend: dict | None = None           # what ran: backend, precision per net, the CPU
    interrupted: bool = False
    signal: int | None = None             # the signal that interrupted the run (None: Ctrl-C)
    source_error: str | None = None       # the source ended abnormally (e.g. truncated video)
    failed: str | None = None             # a write error (disk full...) that stopped the run
    frames_expected: int | None = None    # None: a live source without --max-frames
    sequence: bool | None = None          # folders: frames of one sequence (tracked) or not
    skipped: list[str] = field(default_factory=list)   # unreadable images of a folder
    kept_previous: Path | None = None     # stopped before its first frame: the old result stays
    notes: list[str] = field(default_factory=list)

    @property
    def tracks(self) -> int:
        return len(self.track_ids)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        return not (self.interrupted or self.failed or self.source_error or self.skipped)

    @property
    def signal_name(self) -> str:
        return SIGNAL_NAMES.get(self.signal, "SIGINT") if self.signal else "SIGINT (Ctrl-C)"

    @property
    def exit_code(self) -> int:
        if self.failed:
            return EXIT_FAILED
        if self.interrupted:
            return 128 + (self.signal or int(signal.SIGINT))
        return EXIT_INCOMPLETE if self.source_error or self.skipped else EXIT_OK

    @property
    def reason(self) -> str:
        if self.failed:
            return f"failed: {self.failed}"
        if self.interrupted:
            return f"interrupted by {self.signal_name}"
        if self.source_error:
            return f"source ended early: {self.source_error}"
        if self.skipped:
            return f"skipped {self.skipped_text}"
        return "complete"

    @property
    def skipped_text(self) -> str:
        names = ", ".join(Path(f).name for f in self.skipped[:5]) + \
            (", ..." if len(self.skipped) > 5 else "")
        return f"{len(self.skipped)} unreadable image(s): {names}"

    def line(self) -> str:
        tracks = f" (tracks: {self.tracks})" if self.tracking else ""
        return f"frames: {self.frames}  persons found: {self.persons}{tracks}  fps: {self.fps:.1f}"


def _image_name(name: str) -> str:
    """The annotated image's file name: the source's, + .png where its format cannot be written
    (d.ppm -> d.ppm.png: unique, as the folder's names are; d.png would overwrite d.png's)."""
    return name if Path(name).suffix.lower() in IMAGE_OUT_SUFFIXES else name + ".png"


def _claim_folder(out_dir, cfg: Config, stem: str, source_desc: str,
                  notes: list[str]) -> OutputFolder:
    """Lock the output folder.  ``--out`` given and busy: FolderBusy.  The default folder
    ``<output.directory>/<stem>`` busy: the first free ``<stem>-2``, ``<stem>-3``... (noted)."""
    if out_dir is not None:
        return OutputFolder(out_dir).acquire(source_desc)
    base = cfg.resolve(cfg.output.directory)
    busy = None
    for k in range(1, 100):
        path = base / (stem if k == 1 else f"{stem}-{k}")
        try:
            folder = OutputFolder(path).acquire(source_desc)
        except FolderBusy as exc:
            busy = busy or exc
            continue
        if busy is not None:
            notes.append(f"{busy.folder} is in use by another run (pid "
                         f"{busy.holder.get('pid', '?')}); writing to {path} instead")
        return folder
    raise busy


def run(source: str | int | FrameSource, cfg: Config, out_dir: str | Path | None = None, *,
        write_video: bool = True, max_frames: int | None = None, person_model=None,
        pose_model=None, progress: bool = True, sequence: bool | None = None) -> RunSummary:
    """Estimate poses on every frame of ``source`` and write the result files.

    ``source``: a spec for :func:`humanpose.sources.open_source` or an open FrameSource (closed
    on return).  ``person_model`` / ``pose_model``: networks to use instead of the configured
    weights.  ``sequence``: whether a folder's images are frames of one sequence (tracked and
    smoothed across images) or unrelated pictures (each estimated alone); None decides from
    the folder (:func:`humanpose.sources.images.is_frame_sequence`).

    Raises SourceError, ModelError, BackendError, ConfigError or ExportError (FolderBusy: the
    folder is locked by another run) before anything is written when the run cannot start.
    Once started, the results are written into a staging folder and moved into place when
    the run ends (see :mod:`.outdir`), with ``run.json``; a Ctrl-C / SIGTERM / SIGHUP
    (``summary.interrupted``), a source that ends early (``summary.source_error``) or a write
    error (``summary.failed``, e.g. a full disk) end the run early with every file closed,
    complete up to the last frame, and ``"complete": false`` in run.json.
    """
    src = source if isinstance(source, FrameSource) else open_source(source, cfg.source)
    kps = video = folder = None
    bar = None
    summary = RunSummary(tracking=cfg.tracking.enabled)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    stop = StopOnSignal().__enter__()    # a signal while the nets load: stop before writing
    stop.on_signal = src.interrupt        # a read waiting on a stalled stream returns
    try:
        src.loop = False                  # a headless run must end
        from ..estimator.pipeline import PoseEstimator   # torch: only once the source is fine
        estimator = PoseEstimator(cfg, person_model, pose_model)
        summary.backend = estimator.backend_report
        if estimator.backend_note:
            summary.notes.append(estimator.backend_note)
        stem = source_stem(source) if not isinstance(source, FrameSource) else \
            source_stem(src.name) if src.name else "source"
        independent = False               # reset tracking before every frame
        if getattr(src, "files", None) is not None and len(src.files) > 1:   # a folder
            summary.sequence = not src.independent if sequence is None else sequence
            independent = not summary.sequence
            if independent:
                summary.tracking = False  # ids restart on every image: no tracks to count
        source_desc = src.name or str(source)
        if stop.signum is not None:       # nothing written: the previous result stays
            summary.interrupted, summary.signal = True, stop.signum
            found = find_manifest(out_dir if out_dir is not None else
                                  cfg.resolve(cfg.output.directory) / stem)
            summary.kept_previous = found[0] if found is not None else None
            return summary
        folder = _claim_folder(out_dir, cfg, stem, source_desc, summary.notes)
        out = summary.out_dir = folder.path
        summary.csv_path, summary.jsonl_path = out / "keypoints.csv", out / "keypoints.jsonl"
        kps = KeypointWriter(folder.staged("keypoints.csv"), folder.staged("keypoints.jsonl"))

        total = src.frame_count
        if max_frames is not None:
            total = min(total, max_frames) if total else max_frames
        summary.frames_expected = total
        from ..progress import Progress    # a bar on a terminal only; run prints its own summary
        bar = Progress(total=total, unit="frame", enabled=progress, file=sys.stderr,
                       summary=False, dynamic_ncols=True, leave=False)
        gui = cfg.gui
        t0 = time.perf_counter()
        with stop:
            try:
                while max_frames is None or summary.frames < max_frames:
                    if stop.signum is not None:
                        break
                    frame = src.read()
                    if frame is None:
                        break
                    if independent:
                        estimator.reset()
                    result = estimator.estimate(frame.image, timestamp=frame.timestamp,
                                                frame_index=frame.index, keep_maps=False)
                    if stop.signum is not None and summary.frames == 0:
                        break     # stopped before its first frame: the old result stays
                    kps.write(result)
                    if write_video:
                        annotated = draw_result(frame.image, result, show_boxes=gui.show_boxes,
                                                show_scores=gui.show_scores,
                                                joint_threshold=cfg.estimator.joint_threshold)
                        try:
                            if frame.name is not None:
                                summary.images_dir = out / "annotated"
                                write_image(folder.staged("annotated") /
                                            _image_name(frame.name), annotated)
                            else:
                                if video is None:
                                    video = VideoWriter(folder.staged("annotated.mp4"),
                                                        src.fps or cfg.source.camera_fps)
                                summary.video_path = out / video.path.name
                                video.write(annotated)
                                summary.video_path = out / video.path.name   # .avi fallback
                                summary.video_codec = video.codec
                        except ExportError:
                            kps.drop_last()       # the keypoint files end where the images do
                            raise
                    summary.frames += 1
                    summary.persons += len(result.persons)
                    summary.track_ids.update(p.track_id for p in result.persons
                                             if p.track_id >= 0)
                    bar.update(1)
                    bar.set_postfix(persons=len(result.persons), refresh=False)
            except KeyboardInterrupt:
                summary.interrupted = True
            except ExportError as exc:    # a write error: disk full, I/O error
                # named by the final path the user knows, not the hidden staging folder's
                summary.failed = str(exc).replace(str(folder.stage), str(folder.path))
            if stop.signum is not None:
                summary.interrupted, summary.signal = True, stop.signum
            summary.seconds = time.perf_counter() - t0
            summary.source_error = src.error
            summary.skipped = list(getattr(src, "skipped", None) or [])   # a folder's unreadable
            # close before promoting: a video is playable only once closed
            bar.close()
            bar = None
            for closable in (video, kps):
                if closable is not None:
                    closable.close()
            previous = folder.previous()
            if summary.frames == 0 and not summary.complete and (
                    summary.interrupted or previous is not None):
                # stopped before its first frame: nothing to replace the previous result with
                summary.kept_previous = previous[0] if previous is not None else None
                summary.out_dir = None
                folder.abandon()
                return summary
            stop.critical = True          # the swap's few renames are not cut short
            _finish(folder, summary, src, source_desc, cfg, started,
                    video.frames if video is not None else None)
            summary.notes.extend(folder.notes)
    except BaseException:
        if folder is not None and folder.stage is not None and kps is None:
            folder.abandon()
        raise
    finally:
        stop.__exit__()
        if bar is not None:
            bar.close()
        for closable in (video, kps, src):
            if closable is not None:
                try:
                    closable.close()
                except Exception:  # noqa: BLE001 - the run's own error matters more
                    pass
        if folder is not None:
            folder.release()
    return summary


def _finish(folder: OutputFolder, summary: RunSummary, src: FrameSource, source_desc: str,
            cfg: Config, started: str, video_frames: int | None) -> None:
    """run.json and the staged files into place; a failure there fails the run."""
    from .. import __version__

    def manifest(plan) -> dict:
        files = {"csv": plan.final("keypoints.csv"), "jsonl": plan.final("keypoints.jsonl")}
        if summary.video_path is not None:
            files["video"] = plan.final(summary.video_path.name)
        if summary.images_dir is not None:
            files["images"] = plan.final("annotated") + "/"
        return {
            "source": source_desc,
            "frames_expected": summary.frames_expected,
            "frames_written": summary.frames,
            "video_frames": video_frames,
            "video_codec": summary.video_codec if summary.video_path is not None else None,
            "complete": summary.complete,
            "exit_reason": summary.reason,
            "exit_code": summary.exit_code,
            "sequence": summary.sequence,
            "skipped": [Path(f).name for f in summary.skipped],
            "images_written": summary.frames if summary.images_dir is not None else None,
            "persons": summary.persons,
            "tracks": summary.tracks if summary.tracking else None,
            "files": files,
            "config_sha256": config_hash(cfg),
            "config_file": cfg.path,
            "models": {"person": cfg.model.person_model, "pose": cfg.model.pose_model},
            "backend": summary.backend,
            "humanpose_version": __version__,
            "started": started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "pid": os.getpid(),
        }

    if summary.failed and summary.video_path is not None:
        staged = folder.staged(summary.video_path.name)   # a full disk: no moov atom...
        cap = cv2.VideoCapture(str(staged))
        playable = cap.isOpened() and cap.read()[0]
        cap.release()
        if not playable:
            staged.unlink(missing_ok=True)
            summary.notes.append("the annotated video could not be finished; not kept")
            summary.video_path = None
            video_frames = None
    try:
        plan = folder.plan()
        summary.manifest_path = folder.finish(manifest(plan), plan)
    except (ExportError, OSError) as exc:
        if not summary.failed:
            summary.failed = str(exc)
        return
    out = folder.path           # the names the files have now (beside a user's file of theirs)
    summary.csv_path = out / plan.final("keypoints.csv")
    summary.jsonl_path = out / plan.final("keypoints.jsonl")
    if summary.video_path is not None:
        summary.video_path = out / plan.final(summary.video_path.name)
    if summary.images_dir is not None:
        summary.images_dir = out / plan.final("annotated")
