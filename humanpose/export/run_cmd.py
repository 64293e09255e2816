"""``humanpose run SOURCE``: headless pose estimation on a video, image, folder, camera or stream.

Writes into the output folder (default ``<output.directory>/<source stem>``; ``<stem>-2``... when
another run holds that one):

* ``keypoints.csv`` (frame,time_s,person,joint,x,y,score) and ``keypoints.jsonl``;
* ``annotated.mp4`` for videos, cameras and streams, or ``annotated/<file name>`` for images
  and folders (unless ``--no-video``);
* ``run.json``: source, frames expected / written, ``complete``, ``exit_reason``, config hash,
  humanpose version.

The run itself is :func:`.runner.run`.  The files are written into a staging folder and swapped
into place when the run ends (:mod:`.outdir`): the previous result stays whole until then (and
untouched by a run stopped before its first frame), only the files a previous run wrote are replaced (a file of the
user's with a result name gets the result beside it), and a second run into a folder in use is
refused.  It ends with one summary line, e.g. ``frames: 205  persons found: 412
(tracks: 5)  fps: 12.3`` (persons found = person detections summed over frames; tracks =
distinct track ids).  Exit status (:attr:`.runner.RunSummary.exit_code`): 0 complete; 1 failed (a write
error such as a full disk: one ``error:`` line); 2 bad source, weights, config or output folder
(``error: ...``, nothing written); 3 incomplete (a truncated video, a lost stream, unreadable
images skipped); 130 / 143 / 129 interrupted by Ctrl-C / SIGTERM / SIGHUP, every file closed
and complete up to the last frame (before the first frame: nothing written, the previous
result untouched).
"""
from __future__ import annotations

import argparse
import gc
import logging
import sys
import warnings

from .. import config as config_mod
from ..config import ConfigError, add_estimator_arguments
from ..sources import SourceError
from .runner import EXIT_BAD_INPUT, EXIT_INCOMPLETE, run
from .stopping import SIGNAL_NAMES, quiet_stdout
from .writers import ExportError

CPU_FALLBACK_MESSAGE = "CUDA not available, using CPU"   # estimator.backends' note


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
    parser.add_argument("--framework", metavar="NAME", help="onnxruntime, torch or opencv (model.framework)")
    parser.add_argument("--device", metavar="NAME", help="cpu, cuda or auto (model.device)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--sequence", action=argparse.BooleanOptionalAction, default=None,
                        help="a folder's images are frames of one sequence: tracked and "
                             "smoothed across images (default: when their names are numbered "
                             "alike, their sizes equal and consecutive images alike as a "
                             "video's frames; --no-sequence: each image alone)")


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
    """Exit status: 0 complete, 1 failed (a write error), 2 bad input / config / output folder
    (nothing written), 3 incomplete (the source ended early), 128 + signal when interrupted
    (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP)."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=sys.stderr)

    class LogLine(logging.Handler):       # the modules' log warnings as one line each
        def emit(self, record):
            message = record.getMessage()
            # the backend note is printed once, as a note, with the results
            if not message.startswith(CPU_FALLBACK_MESSAGE):
                print(f"warning: {message}", file=sys.stderr)

    handler = LogLine(logging.WARNING)
    logger = logging.getLogger("humanpose")
    logger.addHandler(handler)
    try:
        code = _main(args, show)
    finally:
        logger.removeHandler(handler)
    if code in (128 + int(s) for s in SIGNAL_NAMES):
        # stopped by a signal (a service manager waits for the exit): the results are written;
        # the interpreter's last garbage collections over torch's objects would take ~1 s more
        gc.collect()
        gc.freeze()
    return code


def _main(args: argparse.Namespace, show) -> int:
    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            cfg = config_mod.from_args(args)
            summary = run(args.source, cfg, args.out, write_video=not args.no_video,
                          max_frames=args.max_frames, progress=not args.no_progress,
                          sequence=getattr(args, "sequence", None))
        except Exception as exc:
            if not user_error(exc):
                raise
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    if summary.failed:
        kept = "run.json: complete: false" if summary.manifest_path else "nothing kept"
        print(f"error: {summary.failed}; the run stopped after {summary.frames} frame(s) "
              f"({kept})", file=sys.stderr)
    if summary.source_error:
        print(f"warning: {summary.source_error} (run.json: complete: false, exit status "
              f"{EXIT_INCOMPLETE})", file=sys.stderr)
    if summary.skipped:
        print(f"warning: skipped {summary.skipped_text} (run.json: complete: false, exit "
              f"status {EXIT_INCOMPLETE})", file=sys.stderr)
    kept = f"; the previous result stays ({summary.kept_previous})" \
        if summary.kept_previous else ""
    if summary.interrupted and summary.out_dir is None:
        print(f"interrupted by {summary.signal_name} before the first frame: nothing "
              f"written{kept}", file=sys.stderr)
    elif summary.kept_previous:
        print(f"no frame written: nothing replaced{kept}", file=sys.stderr)
    elif summary.interrupted:
        print(f"interrupted by {summary.signal_name}: files closed after the last complete "
              f"frame ({summary.frames}; run.json: complete: false)", file=sys.stderr)
    try:
        if summary.manifest_path is not None:
            print(f"keypoints: {summary.csv_path}, {summary.jsonl_path}")
            if summary.video_path:
                print(f"annotated video: {summary.video_path}")
            if summary.images_dir:
                print(f"annotated images: {summary.images_dir}")
        print(summary.line())
        sys.stdout.flush()
    except BrokenPipeError:       # `run ... | head`: the reader left; the result is written
        quiet_stdout()
    return summary.exit_code
