#!/usr/bin/env python3
"""Screenshots of the three views from a real window (X11; under Xvfb when there is no display).

    python tools/screenshots.py [--source VIDEO] [--frame 60] [--out resources]
    python tools/screenshots.py --source ../shared/media/vtest.avi --frame 300 \
        --analyse-seconds 240 --sizes 1280x720,1920x1080      # the README's two pictures

Opens the desktop window on ``--source`` (default ``../shared/media/street_people.avi``),
analyses the whole file (so the plot panel is filled), seeks to ``--frame`` and saves
``screenshot_single.png``, ``screenshot_heatmap.png`` and ``screenshot_multistage.png`` in
``--out``: each is the whole window grabbed from the X server's window (``QScreen.grabWindow``),
with ``QWidget.grab`` as fallback.  Without ``$DISPLAY`` the script starts its own ``Xvfb``
(``apt-get install xvfb``) and runs under it; with ``QT_QPA_PLATFORM=offscreen`` it needs no X
server at all and saves ``QWidget.grab`` images (the window's contents, without its frame).

Weights: those of the config (models/manifest.json); ``--person/--pose`` give other files;
``--random-weights`` uses untrained nets (timing / layout only: the title says so).
It also prints the frame rates the window sustained (camera, estimator, display).

    python tools/screenshots.py --layout 1024x768,1280x720 --out /tmp/shots

``--layout`` shows how the window lays itself out on small screens: for each screen size it
runs its own Xvfb of that size with the ``openbox`` window manager (when installed), lets the
window size itself, and saves the whole screen: ``WxH_start.png`` (the window as first opened,
no source), ``WxH_tab_<tab>.png`` (each tab of the control panel, a video open and partly
analysed) and ``WxH_recording.png`` (playing and recording).
"""
from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VIEWS = ("single", "heatmap", "multistage")


def spin_events(app, seconds: float, until=lambda: False) -> bool:
    """Process Qt events for up to ``seconds``; whether ``until()`` came true."""
    end = time.time() + seconds
    while time.time() < end:
        app.processEvents()
        if until():
            return True
        time.sleep(0.005)
    return until()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default=str(ROOT.parent / "shared" / "media" / "street_people.avi"))
    p.add_argument("--frame", type=int, default=60, help="frame shown in the screenshots")
    p.add_argument("--out", default=str(ROOT / "resources"))
    p.add_argument("--config", default=None, help="YAML config (default humanpose.yml)")
    p.add_argument("--boxsize", type=int, default=None)
    p.add_argument("--person", default=None, help="person net weight file")
    p.add_argument("--pose", default=None, help="pose net weight file")
    p.add_argument("--random-weights", action="store_true", help="untrained nets (layout only)")
    p.add_argument("--no-analyse", action="store_true", help="do not analyse the whole file")
    p.add_argument("--size", default="1400x900", help="window size WxH")
    p.add_argument("--name", default=None,
                   help="save only the single view, as NAME.png (e.g. screenshot_1280x720)")
    p.add_argument("--sizes", default=None, metavar="WxH,WxH,...",
                   help="save only the single view, at each of these window sizes, as "
                        "screenshot_WxH.png")
    p.add_argument("--analyse-seconds", type=float, default=900.0,
                   help="stop the analysis after this long (the plot shows what it reached)")
    p.add_argument("--fps", default=None, metavar="B1,B2,...",
                   help="instead of screenshots: play the source (looped, at its own rate) and "
                        "print the frame rates the window sustains at each of these boxsizes")
    p.add_argument("--seconds", type=float, default=8.0, help="measuring time per boxsize (--fps)")
    p.add_argument("--layout", default=None, metavar="WxH,WxH,...",
                   help="instead: whole-screen shots of the window on screens of these sizes "
                        "(first opened, each tab, while recording); see the module doc")
    p.add_argument("--screen", default="1920x1200", help=argparse.SUPPRESS)   # Xvfb's size
    p.add_argument("--folder", default=None,
                   help="--layout: also an image folder as it opens (WxH_folder.png)")
    return p.parse_args(argv)


def with_display(argv, screen: str = "1920x1200", force: bool = False) -> int | None:
    """Re-run this script under a private Xvfb (``screen`` WxH, with openbox when installed)
    when there is no X display (``force``: always); None = go on here."""
    if os.environ.get("HUMANPOSE_SCREENSHOT_CHILD") or (not force and (
            os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM") == "offscreen")):
        return None
    xvfb = shutil.which("Xvfb")
    if not xvfb:
        sys.exit("no $DISPLAY and no Xvfb: install it (apt-get install -y xvfb), run under X, or "
                 "set QT_QPA_PLATFORM=offscreen")
    for n in range(90, 120):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            break
    server = subprocess.Popen([xvfb, f":{n}", "-screen", "0", f"{screen}x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wm = None
    try:
        for _ in range(50):
            if Path(f"/tmp/.X11-unix/X{n}").exists():
                break
            time.sleep(0.1)
        env = dict(os.environ, DISPLAY=f":{n}", QT_QPA_PLATFORM="xcb", HUMANPOSE_SCREENSHOT_CHILD="1")
        if force and shutil.which("openbox"):
            wm = subprocess.Popen(["openbox"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        return subprocess.call([sys.executable, str(Path(__file__).resolve()), *argv], env=env)
    finally:
        for proc in (wm, server):
            if proc is not None:
                proc.terminate()
                proc.wait(5)


def build_factory(args):
    from humanpose.estimator.pipeline import PoseEstimator
    if args.random_weights:
        import torch
        from humanpose.nets.compact import CompactCPM
        torch.manual_seed(0)
        nets = CompactCPM("person").eval(), CompactCPM("pose").eval()
        return lambda cfg: PoseEstimator(cfg, *nets)
    if args.person or args.pose:
        from humanpose.store import load_model
        cache = {}

        def factory(cfg):
            if not cache:
                cache["nets"] = (load_model(args.person, kind="person") if args.person else None,
                                 load_model(args.pose, kind="pose") if args.pose else None)
            return PoseEstimator(cfg, *cache["nets"])
        return factory
    return None   # the window's default: the weights named in the config


def measure(win, spin, boxsizes, seconds: float) -> int:
    """Frame rates while playing at the source's own rate, per boxsize (a Markdown table)."""
    import os as _os
    load = _os.getloadavg()[0] if hasattr(_os, "getloadavg") else float("nan")
    print(f"source {win.info.name} ({win.info.size[0]}x{win.info.size[1]}, {win.info.fps:g} fps), "
          f"backend {win.estimator.estimator.backend_name}, {_os.cpu_count()} CPUs, "
          f"load average {load:.1f} at start")
    print("| boxsize | camera fps | estimator fps | display fps | ms/frame (estimate) | latency ms "
          "| results from the cache |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for b in boxsizes:
        win.options.set_boxsize(b)
        spin(2.0)                                   # new boxsize in effect, warm
        ms, lat, from_cache = [], [], []

        def on_result(item, res, cached, ms=ms, lat=lat, from_cache=from_cache):
            if cached:      # a looped file comes round again: its frames were estimated before
                from_cache.append(item)
            elif res.boxsize == b:
                ms.append(res.timings.get("total", float("nan")))
                lat.append((time.perf_counter() - item.captured) * 1000.0)
        win.estimator.result.connect(on_result)
        counts = win.status_line.counts
        f0, e0, d0, t0 = (win.camera.frames_read, counts["estimates"], counts["shown"],
                          time.perf_counter())
        spin(seconds)
        counts = win.status_line.counts
        f1, e1, d1, t1 = (win.camera.frames_read, counts["estimates"], counts["shown"],
                          time.perf_counter())
        win.estimator.result.disconnect(on_result)
        dt = t1 - t0
        med = lambda v: sorted(v)[len(v) // 2] if v else float("nan")  # noqa: E731
        print(f"| {b} | {(f1 - f0) / dt:.1f} | {(e1 - e0) / dt:.1f} | {(d1 - d0) / dt:.1f} | "
              f"{med(ms):.0f} | {med(lat):.0f} | {len(from_cache)} |")
        if from_cache:
            print("  (the source looped while measuring: results from the cache are not estimates, "
                  "so the estimator fps is low; use a source longer than --seconds + 2 s per boxsize)")
    win.close()
    return 0


def layout_shots(args) -> int:
    """The window as it lays itself out on this screen (see the module doc)."""
    from humanpose.gui.app import configure_environment
    configure_environment()
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication

    from humanpose.config import load, set_value
    from humanpose.gui.main_window import MainWindow

    cfg = set_value(load(args.config), "output.directory", str(Path(args.out).resolve()))
    if args.boxsize:
        cfg = set_value(cfg, "estimator.boxsize", args.boxsize)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setWindowIcon(QIcon(str(ROOT / "resources" / "humanpose.png")))
    win = MainWindow(cfg, estimator_factory=build_factory(args), settings=None)
    win.show()
    screen = QGuiApplication.primaryScreen()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    spin = functools.partial(spin_events, app)

    def shot(name: str) -> None:
        spin(1.0)
        image = screen.grabWindow(0)            # the whole screen: the window's place on it
        path = out / f"{args.layout}_{name}.png"
        image.save(str(path))
        g = win.frameGeometry()
        print(f"wrote {path}: screen {screen.availableGeometry().width()}x"
              f"{screen.availableGeometry().height()}, window frame {g.x()},{g.y()} "
              f"{g.width()}x{g.height()}, panel {win.controls.width()} px")

    spin(2.0)
    shot("start")
    win.open_source(args.source)
    if not spin(120, lambda: win.info is not None and win.estimator.estimator is not None):
        print(f"cannot open {args.source}: {win.message}", file=sys.stderr)
        return 1
    win.pause()
    spin(0.5)
    win.seek(min(args.frame, (win.info.frame_count or 1) - 1))
    spin(2.0)
    if not args.no_analyse:       # from --frame: the window comes back to it afterwards
        win.analyse_whole_file(True)
        spin(args.analyse_seconds, lambda: not win.analysing)
        if win.analysing:
            win.analyse_whole_file(False)
        spin(2.0)
    for tab in range(win.controls.count()):
        win.controls.setCurrentIndex(tab)
        shot(f"tab_{win.controls.tabText(tab).lower()}")
    win.controls.setCurrentIndex(1)             # the Estimator tab, the widest page
    win.play()
    win.set_recording(True)
    spin(6.0)
    shot("recording")
    rec = win.recorder
    win.set_recording(False)
    print(f"recorded {rec.frames} frames, codec {rec.codec}: {rec.path}")
    if args.folder:
        win.controls.setCurrentIndex(0)
        gen = win.info.generation
        win.open_source(args.folder)
        spin(60, lambda: win.info.generation > gen and win.state.latest is not None
             and win.state.latest[0].generation == win.info.generation)
        spin(2.0)
        shot("folder")
    win.close()
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.layout and "," in args.layout:      # one Xvfb per screen size
        for size in args.layout.split(","):
            code = main([*argv, "--layout", size])
            if code:
                return code
        return 0
    code = with_display(argv, args.layout or args.screen, force=bool(args.layout))
    if code is not None:
        return code
    if args.layout:
        return layout_shots(args)
    from humanpose.gui.app import configure_environment
    configure_environment()          # as the app does (OMP_WAIT_POLICY, before torch loads)

    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication

    from humanpose.config import load, set_value
    from humanpose.gui.main_window import MainWindow

    cfg = load(args.config)
    if args.boxsize:
        cfg = set_value(cfg, "estimator.boxsize", args.boxsize)
    cfg = set_value(cfg, "source.loop", bool(args.fps))
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setWindowIcon(QIcon(str(ROOT / "resources" / "humanpose.png")))
    win = MainWindow(cfg, estimator_factory=build_factory(args), settings=None, source=args.source)
    w, h = (int(v) for v in (args.sizes or args.size).split(",")[0].lower().split("x"))
    win.resize(w, h)
    win.show()

    spin = functools.partial(spin_events, app)

    if not spin(60, lambda: win.info is not None or win.message.startswith("Cannot")) or win.info is None:
        print(f"cannot open {args.source}: {win.message}", file=sys.stderr)
        return 1
    if not spin(120, lambda: win.estimator.estimator is not None or "not available" in win.message) \
            or win.estimator.estimator is None:
        print(win.message, file=sys.stderr)
        return 1
    if args.random_weights:
        win.setWindowTitle(win.windowTitle() + "  [random weights: layout only]")

    if args.fps:
        return measure(win, spin, [int(b) for b in args.fps.split(",")], args.seconds)

    spin(4)   # live playback at the video's own rate: what the window sustains
    live = dict(win.stats)
    print(f"playing {win.info.name} at boxsize {cfg.estimator.boxsize}: "
          f"camera {live['camera_fps']:.1f} fps, estimator {live['estimator_fps']:.1f} fps, "
          f"display {live['display_fps']:.1f} fps, latency {live['latency_ms']:.0f} ms")
    if not args.no_analyse and win.info.seekable:
        win.analyse_whole_file(True)
        if not spin(args.analyse_seconds, lambda: not win.analysing):
            win.analyse_whole_file(False)
            print(f"analysis stopped after {args.analyse_seconds:g} s: {len(win.cache)} frames")
        print(win.message)
    win.pause()
    target = min(args.frame, (win.info.frame_count or 1) - 1)
    win.seek(target)
    spin(30, lambda: win.state.latest is not None and win.state.latest[0].frame.index == target)
    spin(1.0)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    screen = QGuiApplication.primaryScreen()
    shots = [("single", None, args.name)] if args.name else \
        [("single", size, f"screenshot_{size}") for size in args.sizes.split(",")] if args.sizes \
        else [(view, None, f"screenshot_{view}") for view in VIEWS]
    for view, size, name in shots:
        if size:
            win.resize(*(int(v) for v in size.lower().split("x")))
        win.set_view(view)
        spin(1.5)
        image = screen.grabWindow(win.winId()) if screen is not None else None
        if image is None or image.isNull() or image.width() < 100:
            image = win.grab()
        path = out / f"{name}.png"
        if not image.save(str(path)):
            print(f"cannot write {path}", file=sys.stderr)
            return 1
        print(f"wrote {path} ({image.width()}x{image.height()})")
    win.close()
    win.deleteLater()
    QCoreApplication.processEvents()
    win = image = None                # the window goes before the application does
    return 0


if __name__ == "__main__":
    sys.exit(main())
