"""How long the desktop application takes from closing its window to the end of its process.

Each run starts ``python -m humanpose gui --source SOURCE --no-settings`` in a child process
(``QT_QPA_PLATFORM`` as set, offscreen by default), lets it estimate ``--estimates`` frames, closes
the window the way the close button does (``QWidget.close``), and measures from that call to the
moment the child process has exited (as the parent sees it: interpreter and Qt teardown
included).  Prints one line per run and the median:

    python tools/close_time.py ../shared/media/vtest.avi --runs 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from humanpose.gui import app as gui_app
from humanpose.gui.main_window import MainWindow

estimates = int(sys.argv[1])
qapp = QApplication(sys.argv[:1])

def poll():
    wins = [w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
    if wins and wins[0]._counts["estimates"] >= estimates:
        busy = wins[0].estimator.estimator is not None
        print(json.dumps({"close": time.time(), "estimates": wins[0]._counts["estimates"],
                          "estimator": busy}), flush=True)
        wins[0].close()
        return
    QTimer.singleShot(20, poll)

QTimer.singleShot(0, poll)
parser = gui_app.argparse.ArgumentParser()
gui_app.add_arguments(parser)
sys.exit(gui_app.main(parser.parse_args(sys.argv[2:])))
"""


def one_run(source: str, estimates: int, config: str | None, timeout: float) -> dict:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    args = [sys.executable, "-c", CHILD, str(estimates)] + ([config] if config else []) + \
        ["--source", source, "--no-settings"]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err,
                                text=True)
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout)
            err.seek(0)
            raise SystemExit(f"the window never closed: {err.read()[-2000:]}")
        return _timed(proc, json.loads(line), timeout)


def _timed(proc: subprocess.Popen, info: dict, timeout: float) -> dict:
    code = proc.wait(timeout)
    info["exit_s"] = time.time() - info["close"]
    info["code"] = code
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="what the window opens (video, image, folder, URL)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--estimates", type=int, default=5,
                        help="close once the window has shown this many estimates")
    parser.add_argument("--config", default=None, help="humanpose.yml to use")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    times = []
    for n in range(args.runs):
        info = one_run(args.source, args.estimates, args.config, args.timeout)
        times.append(info["exit_s"])
        print(f"run {n + 1}: close -> exit {info['exit_s']:.2f} s (exit code {info['code']}, "
              f"after {info['estimates']} estimates)", flush=True)
    print(f"median close -> exit: {statistics.median(times):.2f} s over {len(times)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
