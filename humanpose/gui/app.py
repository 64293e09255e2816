"""``python -m humanpose gui [config]`` (and ``run_humanpose.py``): open the desktop application."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from ..config import DEFAULT_CONFIG, PROJECT_ROOT, ConfigError, check_pose_model, load, set_value

ICON = PROJECT_ROOT / "resources" / "humanpose.png"


def configure_environment(verbose: bool = False) -> None:
    """Environment for the window's process; must run before torch / OpenCV are imported.

    * ``OMP_WAIT_POLICY=PASSIVE``: the window always has busy threads besides torch's (camera
      decoding, painting); with OpenMP's default spin-waiting, torch's intra-op threads stall
      on each other whenever a core is taken, and on 2 cores an estimate went from ~100 ms to
      0.4-3.5 s.  Passive waiting keeps estimates steady (see the frame-rate table in the note).
      Not set when ``GOMP_SPINCOUNT`` is: a bounded spin the user asked for (docs/configuration.md).
    * OpenCV's and FFmpeg's own log lines (e.g. probing a missing camera, a damaged video) would
      only repeat on the terminal what the window already says: silent unless ``verbose``
      (:func:`humanpose.logs.quiet_native_logs`).
    """
    if "torch" not in sys.modules and "GOMP_SPINCOUNT" not in os.environ:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ..logs import quiet_native_logs
    quiet_native_logs(verbose)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", default=None,
                        help=f"YAML config (default: {DEFAULT_CONFIG.name} of this checkout)")
    parser.add_argument("--source", default=None,
                        help="source to open at start: video, image, folder, camera index or URL "
                             "(default: none; the start page offers a video, a folder, the "
                             "webcam and the recent sources)")
    parser.add_argument("--pose-model", metavar="NAME", default=None,
                        help="pose net for this run, e.g. pose_mobilenet (Fast) or "
                             "pose_mobilenet_accurate (Accurate); overrides model.pose_model "
                             "and the remembered choice")
    parser.add_argument("--verbose", action="store_true",
                        help="let OpenCV's and FFmpeg's own log lines through to the terminal")
    parser.add_argument("--no-settings", action="store_true",
                        help="ignore and do not change the remembered settings (QSettings)")
    parser.add_argument("--settings-file", default=None,
                        help="remember settings in this INI file instead of the user's settings")


def _can_show_dialog() -> bool:
    if os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] in ("offscreen", "minimal", "vnc"):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _fatal(message: str) -> int:
    """A start-up error: stderr, and a dialog (the app may have been started by double-click)."""
    print(f"humanpose: {message}", file=sys.stderr)
    if not _can_show_dialog():
        return 2
    try:
        from PySide6.QtWidgets import QApplication, QMessageBox
        app = QApplication.instance() or QApplication(sys.argv[:1])
        QMessageBox.critical(None, "humanpose", message)
        del app
    except Exception:  # noqa: BLE001 - no display: stderr is all we have
        pass
    return 2


def main(args: argparse.Namespace) -> int:
    pose_model = getattr(args, "pose_model", None)
    try:
        cfg = load(args.config)
        if pose_model is not None:
            check_pose_model(cfg, pose_model)
    except ConfigError as exc:
        return _fatal(str(exc))
    configure_environment(getattr(args, "verbose", False))

    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow
    from .settings import APPLICATION, ORGANISATION, apply_settings, open_settings

    QApplication.setOrganizationName(ORGANISATION)
    QApplication.setApplicationName(APPLICATION)
    QApplication.setDesktopFileName("humanpose")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    if ICON.exists():
        app.setWindowIcon(QIcon(str(ICON)))
    settings, file_cfg = None, cfg
    if not args.no_settings:
        settings = open_settings(args.settings_file)
        cfg = apply_settings(cfg, settings)
    if pose_model is not None:          # over humanpose.yml and the remembered choice
        cfg = set_value(cfg, "model.pose_model", pose_model)
    window = MainWindow(cfg, settings=settings, source=args.source, file_cfg=file_cfg)
    window.show()
    # Ctrl+C in the terminal closes the window cleanly (Python handles signals only when it
    # runs, so a timer lets it run now and then)
    signal.signal(signal.SIGINT, lambda *_: window.close())
    tick = QTimer()
    tick.timeout.connect(lambda: None)
    tick.start(250)
    code = int(app.exec())
    tick.stop()
    window.shutdown()          # closed already (closeEvent); quitting some other way: now
    end_process(code)
    return code     # not reached


def end_process(code: int) -> None:
    """End the application's process at once with ``code``.

    Everything the window writes is finished when its event loop returns (the recording closed,
    the remembered settings synced, exports and screenshots are written synchronously), but
    Python's own teardown with torch, ONNX Runtime and Qt loaded takes 1.5-3 s on two busy cores
    (module and Qt object destruction; ``tools/close_time.py``), and a worker thread blocked in
    a stream read would hold it longer.  So only the logs and the standard streams are flushed,
    then ``os._exit``."""
    import logging
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):   # closed or absent (pythonw)
            pass
    os._exit(code)


def run(argv: list[str] | None = None) -> int:
    """Entry point of run_humanpose.py: ``run_humanpose.py [config] [--source S] ...``."""
    parser = argparse.ArgumentParser(prog=Path(sys.argv[0]).name,
                                     description="humanpose desktop application")
    add_arguments(parser)
    return main(parser.parse_args(argv))
