"""Command line: ``python -m humanpose COMMAND ...`` (also the ``humanpose`` console script).

Each command lives in its own module exposing ``add_arguments(parser)`` and ``main(args) -> int``;
only the chosen command's module is imported, so ``--help`` stays fast.  A ``ConfigError`` that
a command lets through (a bad config file or override) is printed as ``error: ...``, exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("humanpose.export.run_cmd", "estimate poses on a video, image, folder, webcam or stream"),
    "bench": ("humanpose.optimize.bench", "time person detection, pose estimation and the full pipeline"),
    "convert-caffe": ("humanpose.store", "convert official CPM Caffe weights (no Caffe needed)"),
    "import-tfjs": ("humanpose.import_tfjs", "turn MoveNet TF.js files into a net to fine-tune (a cpm_mobilenet pose net, or --kind multipose)"),
    "export-onnx": ("humanpose.optimize.export_cmd", "export the configured weights to ONNX (onnxruntime, OpenCV-DNN; --int8 quantises)"),
    "train": ("humanpose.train.trainer", "train a person or pose net from a training YAML"),
    "eval": ("humanpose.train.evaluate", "PCK@0.2 evaluation on LSP / LSP-extended, or persons found on COCO photos"),
    "pack-crops": ("humanpose.train.packed", "pack the pose training crops to train elsewhere (a GPU)"),
    "gui": ("humanpose.gui.app", "open the desktop application"),
    "install-desktop": ("humanpose.gui.desktop", "install a freedesktop launcher for this checkout"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="humanpose",
        description="Real-time 2-D human pose estimation with Convolutional Pose Machines.",
        epilog="Run `humanpose COMMAND --help` for the options of a command.")
    parser.add_argument("--verbose", action="store_true",
                        help="let OpenCV's and FFmpeg's own log lines through (quiet by default)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that spin-wait stall the estimator when the cores are busy (the GUI's
    # threads, other programs): must be set before torch is imported by a command module.
    if "GOMP_SPINCOUNT" not in os.environ:      # a bounded spin asked for: leave it to that
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    # OpenCV's and FFmpeg's own log lines ("[ WARN:0@...]", "[mov,mp4...] moov atom not found")
    # only repeat what the commands say in their own error / warning lines (as the window does);
    # --verbose (before or after the command) lets them through
    verbose = "--verbose" in argv
    argv = [a for a in argv if a != "--verbose"]
    from .logs import quiet_native_logs
    quiet_native_logs(verbose)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is not None and command not in COMMANDS:
        build_parser().error(f"unknown command {command!r}; choose from {', '.join(COMMANDS)}")
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(COMMANDS[args.command][0])
    from .config import ConfigError
    try:
        return int(module.main(args) or 0)
    except ConfigError as exc:   # a bad config file or override, whichever command reads it
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def console_main() -> None:  # entry point of the `humanpose` console script
    sys.exit(main())
