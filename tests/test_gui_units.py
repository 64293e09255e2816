"""The GUI's Qt-free parts and helpers: latest-frame slot, result cache, settings, desktop entry,
plot series, views, command line."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from humanpose.config import from_dict  # noqa: E402
from humanpose.estimator.result import Person, PoseResult  # noqa: E402
from humanpose.gui import desktop  # noqa: E402
from humanpose.config import snap_boxsize  # noqa: E402
from humanpose.gui.controls import noise_to_strength, strength_to_noise  # noqa: E402
from humanpose.gui.slots import FrameSlot, ResultCache  # noqa: E402
from humanpose.skeleton import ANGLES, NUM_JOINTS, NUM_MAPS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def person(x0: float = 0.0, track_id: int = -1, score: float = 0.9, maps: bool = True) -> Person:
    joints = np.zeros((NUM_JOINTS, 3))
    joints[:, 0] = x0 + np.arange(NUM_JOINTS)
    joints[:, 1] = 10.0
    joints[:, 2] = 0.8
    return Person(centre=np.array([x0, 10.0]), centre_score=score, box=np.array([x0, 0, x0 + 64, 64]),
                  joints=joints, track_id=track_id,
                  stage_maps=np.random.rand(2, NUM_MAPS, 8, 8).astype(np.float32) if maps else None,
                  crop=np.zeros((64, 64, 3), np.uint8) if maps else None, crop_scale=1.0)


def result(i: int, persons=None) -> PoseResult:
    return PoseResult(frame_index=i, timestamp=i / 25.0, frame_shape=(120, 160), boxsize=64,
                      persons=[person()] if persons is None else persons,
                      person_map=np.zeros((8, 20), np.float32), timings={"total": 5.0})


# ----------------------------------------------------------------------------- FrameSlot
def test_slot_keeps_only_the_newest_item_and_counts_drops():
    slot = FrameSlot()
    assert slot.take(timeout=0.01) is None
    for i in range(5):
        slot.put(i)
    assert slot.dropped == 4 and slot.seq == 5 and slot.peek() == (5, 4)
    assert slot.take() == 4 and slot.take(timeout=0.01) is None
    assert slot.peek() == (5, None)      # peek after take: nothing left


def test_slot_hands_over_between_threads_without_growing():
    slot, got = FrameSlot(), []

    def consumer():
        while True:
            item = slot.take(timeout=1.0)
            if item is None or item == "end":
                return
            got.append(item)
            time.sleep(0.002)            # slower than the producer
    t = threading.Thread(target=consumer)
    t.start()
    for i in range(300):
        slot.put(i)
    slot.wait_empty(1.0)
    slot.put("end")
    t.join(2.0)
    assert not t.is_alive()
    assert got == sorted(got) and got[-1] == 299 or got[-1] >= 290
    assert len(got) + slot.dropped == 300   # every frame either processed or counted dropped


def test_wait_empty_is_back_pressure():
    slot = FrameSlot()
    slot.put(1)
    assert slot.wait_empty(0.01) is False
    threading.Timer(0.05, slot.take).start()
    assert slot.wait_empty(1.0) is True


# ---------------------------------------------------------------------------- ResultCache
def test_cache_strips_the_oldest_maps_over_budget_but_keeps_joints():
    one = result(0)
    nbytes = one.person_map.nbytes + one.persons[0].stage_maps.nbytes + one.persons[0].crop.nbytes
    cache = ResultCache(maps_budget_bytes=int(2.5 * nbytes))
    first = result(0)
    cache.put(first)
    for i in range(1, 4):
        cache.put(result(i))
    assert len(cache) == 4 and cache.maps_bytes <= cache.budget
    assert cache.get(0).persons[0].stage_maps is None and cache.get(0).persons[0].joints is not None
    np.testing.assert_array_equal(cache.get(0).persons[0].joints, first.persons[0].joints)
    assert first.persons[0].stage_maps is not None    # a copy was stripped, not the original
    assert cache.get(3).persons[0].stage_maps is not None
    assert [i for i, _ in cache.items()] == [0, 1, 2, 3]
    v = cache.version
    cache.clear()
    assert len(cache) == 0 and cache.maps_bytes == 0 and cache.version > v


def test_cache_replaces_an_entry_without_leaking_bytes():
    cache = ResultCache()
    cache.put(result(7))
    before = cache.maps_bytes
    cache.put(result(7))
    assert len(cache) == 1 and cache.maps_bytes == before


def test_a_live_sources_cache_keeps_the_newest_results_only():
    cache = ResultCache()
    cache.max_entries = 3
    for i in range(5):
        cache.put(result(i))
    assert [i for i, _ in cache.items()] == [2, 3, 4]
    assert cache.maps_bytes == sum(cache.get(i).person_map.nbytes + sum(
        p.stage_maps.nbytes + p.crop.nbytes for p in cache.get(i).persons) for i in (2, 3, 4))


def test_a_live_sources_cache_is_a_rolling_window_of_time_count_and_maps():
    from humanpose.gui.slots import LIVE_FRAMES, LIVE_MAPS_BYTES, LIVE_SECONDS
    for fps, n in ((50.0, 5000), (2.0, 1000)):        # the count binds, then the time
        cache = ResultCache()
        cache.set_live(True)
        for i in range(n):
            r = result(i)
            r.timestamp = i / fps
            r.persons[0].stage_maps = np.ones((6, NUM_MAPS, 24, 24), np.float32)   # boxsize 192
            cache.put(r)
            assert len(cache) <= LIVE_FRAMES and cache.span <= LIVE_SECONDS
        kept = [i for i, _ in cache.items()]
        assert kept[-1] == n - 1 and kept == list(range(kept[0], n))
        assert len(kept) == min(LIVE_FRAMES, int(LIVE_SECONDS * fps) + 1)
        assert cache.maps_bytes <= LIVE_MAPS_BYTES and cache.get(kept[0]).persons[0].stage_maps is None
        assert cache.get(kept[0]).persons[0].joints is not None
    cache.set_live(False)                              # a video file: every frame stays
    cache.clear()
    for i in range(5000):
        cache.put(result(i))
    assert len(cache) == 5000


# ------------------------------------------------------------------------------- controls
def test_boxsize_snapping_and_strength_mapping():
    assert [snap_boxsize(v) for v in (10, 64, 99, 100, 101, 639, 1000)] == [64, 64, 96, 96, 104, 640, 640]
    for s in (0, 25, 48, 100):
        assert noise_to_strength(strength_to_noise(s)) == s
    assert strength_to_noise(0) == pytest.approx(0.1) and strength_to_noise(100) == pytest.approx(1000)


# ------------------------------------------------------------------------------- settings
def test_settings_override_yaml_and_bad_entries_are_ignored(tmp_path, caplog):
    from humanpose.gui.settings import apply_settings, open_settings, remember
    s = open_settings(str(tmp_path / "s.ini"))
    remember(s, "estimator.boxsize", 320)
    remember(s, "tracking.smoothing", False)
    remember(s, "gui.view", "multistage")
    s.setValue("model/device", "quantum")          # invalid: must be skipped
    s.sync()
    with pytest.raises(KeyError):
        remember(s, "estimator.nonsense", 1)
    cfg = apply_settings(from_dict({"estimator": {"boxsize": 128}}), open_settings(str(tmp_path / "s.ini")))
    assert cfg.estimator.boxsize == 320 and cfg.tracking.smoothing is False
    assert cfg.gui.view == "multistage" and cfg.model.device == "auto"
    assert "model.device" in caplog.text


# -------------------------------------------------------------------------- desktop entry
def read_entry(path: Path) -> dict:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:] if "=" in line)


def test_install_desktop_writes_an_entry_for_this_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    from humanpose.cli import main
    assert main(["install-desktop"]) == 0
    path = tmp_path / "data" / "applications" / "humanpose.desktop"
    entry = read_entry(path)
    assert entry["Type"] == "Application" and entry["Name"] == "humanpose"
    assert entry["Terminal"] == "false"
    launcher = ROOT / "run_humanpose.py"
    assert str(launcher) in entry["Exec"] and sys.executable in entry["Exec"]
    assert Path(entry["Icon"]) == ROOT / "resources" / "humanpose.png" and Path(entry["Icon"]).exists()
    assert Path(entry["Path"]) == ROOT
    assert os.access(path, os.X_OK)


def test_install_desktop_makes_the_python_path_absolute_and_wants_an_existing_config(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my env").mkdir()
    shutil.copy(sys.executable, tmp_path / "my env" / "py")
    from humanpose.cli import main
    assert main(["install-desktop", "--python", "my env/py"]) == 0
    entry = read_entry(tmp_path / "data" / "applications" / "humanpose.desktop")
    assert entry["Exec"].startswith(desktop.quote_exec_arg(str(tmp_path / "my env" / "py")))
    assert main(["install-desktop", "--python", "no/such/python"]) == 1
    assert "no such interpreter" in capsys.readouterr().err
    assert main(["install-desktop", "--config", "missing.yml"]) == 1
    assert "--config missing.yml: no such file" in capsys.readouterr().err


def test_exec_quoting_follows_the_desktop_entry_spec():
    assert desktop.quote_exec_arg("/usr/bin/python3") == "/usr/bin/python3"
    # a space -> quoted; a backslash / $ -> escaped twice (quoting rule + file-format escape)
    assert desktop.quote_exec_arg("/home/a b/x.py") == '"/home/a b/x.py"'
    assert desktop.quote_exec_arg("/a$b") == '"/a\\\\$b"'
    assert desktop.quote_exec_arg("/100%") == "/100%%"


def test_launcher_is_executable_with_a_python_shebang(tmp_path):
    launcher = ROOT / "run_humanpose.py"
    assert os.access(launcher, os.X_OK)
    assert launcher.read_text(encoding="utf-8").startswith("#!/usr/bin/env python3\n")
    out = subprocess.run([sys.executable, str(launcher), "--help"], capture_output=True, text=True,
                         cwd="/", timeout=60)
    assert out.returncode == 0 and "config" in out.stdout and "--source" in out.stdout
    # a package the window needs is missing: the install hint, not a traceback
    block = tmp_path / "block"
    block.mkdir()
    (block / "pyqtgraph.py").write_text("raise ImportError(\"No module named 'pyqtgraph'\")\n")
    env = {**os.environ, "PYTHONPATH": str(block), "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, str(launcher), "--no-settings"], capture_output=True,
                         text=True, cwd="/", timeout=60, env=env)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "humanpose cannot start: No module named 'pyqtgraph'" in out.stderr
    assert "pip install -r" in out.stderr


def test_gui_and_install_desktop_commands_have_help():
    for cmd in ("gui", "install-desktop"):
        out = subprocess.run([sys.executable, "-m", "humanpose", cmd, "--help"], capture_output=True,
                             text=True, cwd=str(ROOT), timeout=60)
        assert out.returncode == 0 and "usage:" in out.stdout, out.stderr


def test_gui_command_reports_a_bad_config(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("estimator:\n  boxsize: 12\n")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-m", "humanpose", "gui", str(bad)], capture_output=True,
                         text=True, cwd=str(ROOT), env=env, timeout=60,
                         input="")
    assert out.returncode == 2 and "estimator.boxsize" in out.stderr


# ---------------------------------------------------------------------------- plot, views
def test_plot_series_angles_and_coordinates():
    from humanpose.gui.plot import series
    items = []
    for i in range(3):
        p = person()
        # right elbow (3) at the origin, shoulder (2) to the right, wrist (4) above: 90 degrees
        p.joints[2, :2], p.joints[3, :2], p.joints[4, :2] = (10, 0), (0, 0), (0, -10 - i)
        items.append((i, result(i, [p])))
    items.append((3, result(3, [])))                 # nobody in frame 3
    low = person()
    low.joints[3, 2] = 0.01                          # elbow below the joint threshold
    items.append((4, result(4, [low])))
    t, data = series(items, "angles", ["R elbow"], joint_threshold=0.1)
    np.testing.assert_allclose(t, np.arange(5) / 25.0)
    np.testing.assert_allclose(data["R elbow"][:3], 90.0)
    assert np.isnan(data["R elbow"][3]) and np.isnan(data["R elbow"][4])
    t, data = series(items, "coordinates", ["R wrist"])
    assert set(data) == {"R wrist x", "R wrist y"}
    np.testing.assert_allclose(data["R wrist y"][:3], [-10, -11, -12])
    assert set(ANGLES) >= {"R elbow", "L elbow", "R knee", "L knee", "R hip", "L hip"}


def test_plot_follows_the_main_track_not_the_most_confident_person_of_each_frame(qtbot):
    from humanpose.gui.plot import PlotPanel, main_track, series
    items = []
    for i in range(5):
        walker, passer = person(0, track_id=3, score=0.6), person(50, track_id=7, score=0.1)
        walker.joints[4, 1] = 100 + i                # R wrist y: 100, 101, ...
        passer.joints[4, 1] = 500.0
        if i == 2:
            passer.centre_score = 0.9                # the most confident person in frame 2 only
        items.append((i, result(i, [walker, passer] if i != 4 else [passer])))
    assert main_track(items) == 3                    # 4 x 0.6 against 1.3
    _, data = series(items, "coordinates", ["R wrist"])
    np.testing.assert_allclose(data["R wrist y"][:4], [100, 101, 102, 103])
    assert np.isnan(data["R wrist y"][4])            # the main person is not in frame 4
    _, data = series(items, "coordinates", ["R wrist"], person=7)
    np.testing.assert_allclose(data["R wrist y"], 500.0)
    # untracked persons (tracking off): the most confident person of each frame, as the views
    untracked = [(i, result(i, [person(0, score=0.2), person(50, score=0.3 * (i % 2))]))
                 for i in range(4)]
    assert main_track(untracked) is None
    _, data = series(untracked, "coordinates", ["R wrist"])
    np.testing.assert_allclose(data["R wrist x"], [4, 54, 4, 54])
    panel = PlotPanel()
    qtbot.addWidget(panel)
    panel.set_data(items)
    assert panel.info.text() == "5 frames · #3"


def test_plot_curves_on_show_never_share_a_colour(qtbot):
    from humanpose.gui.plot import DEFAULT_ANGLES, PlotPanel
    panel = PlotPanel()
    qtbot.addWidget(panel)
    panel.set_data([(i, result(i)) for i in range(3)])

    def colours():
        return [c.opts["pen"].color().getRgb()[:3] for c in panel.curves.values()]
    assert len(colours()) == len(DEFAULT_ANGLES) == len(set(colours()))
    panel.set_chosen([n for n in DEFAULT_ANGLES if n != "R elbow"] + ["R shoulder"])
    assert len(colours()) == len(DEFAULT_ANGLES) == len(set(colours()))


def test_person_selection_and_view_rendering():
    from humanpose.gui.views import ViewOptions, render, select_person
    a, b = person(0, track_id=3, score=0.5), person(50, track_id=7, score=0.9)
    res = result(0, [a, b])
    assert select_person(res) is b and select_person(res, 3) is a and select_person(res, 9) is None
    frame = np.full((120, 160, 3), 90, np.uint8)
    single = render("single", frame, res, ViewOptions())
    assert single.shape == frame.shape and not np.array_equal(single, frame)
    heat = render("heatmap", frame, res, ViewOptions(person=7))
    strip = render("multistage", frame, res, ViewOptions())
    assert heat.shape[0] > 2 * 64 and strip.shape[1] == 3 * 64 + 2 * 2   # 2 stages + result
    # no maps kept / nobody: a message image, not an exception
    assert render("heatmap", frame, result(0, [person(maps=False)]), ViewOptions()).ndim == 3
    assert render("multistage", frame, result(0, []), ViewOptions()).ndim == 3
    assert render("single", None, None, ViewOptions()).ndim == 3
    with pytest.raises(ValueError, match="unknown view"):
        render("3d", frame, res, ViewOptions())


# -------------------------------------------------------------------------------- refguard
def test_refguard_keeps_none_and_bools_alive_through_many_qt_calls(qtbot):
    """Some PySide6 builds steal a reference to None on every void call (fatal on Python 3.11
    after ~60 000 calls); with the guard installed the counts are back at its floor after
    every check, whatever was stolen in between."""
    from PySide6.QtWidgets import QApplication, QWidget
    from humanpose.gui import refguard
    guard = refguard.install(QApplication.instance())
    widget = QWidget()
    qtbot.addWidget(widget)
    calls = 3000
    if guard is None:
        assert not refguard.has_refcount_bug()
        return
    assert refguard.has_refcount_bug()           # installed only where the bug is
    for _ in range(20):
        for _ in range(calls // 20):
            widget.update()
            widget.setObjectName("w")
        guard.check()
        for obj in (None, True, False):
            assert sys.getrefcount(obj) >= refguard.FLOOR - 10   # back at the floor every check


def test_plot_angles_match_the_skeleton_definition():
    from humanpose.gui.plot import series
    from humanpose.skeleton import joint_angle
    rng = np.random.default_rng(1)
    items = []
    for i in range(20):
        p = person()
        p.joints[:, :2] = rng.uniform(0, 100, (NUM_JOINTS, 2))
        if i == 3:
            p.joints[6, :2] = p.joints[5, :2]        # zero-length limb: undefined angle
        items.append((i, result(i, [p])))
    _, data = series(items, "angles", list(ANGLES))
    for name in ANGLES:
        want = [joint_angle(r.persons[0].joints, name) for _, r in items]
        np.testing.assert_allclose(data[name], want, atol=1e-9, equal_nan=True)
    assert np.isnan(data["L shoulder"][3]) and np.isnan(data["L elbow"][3])


def test_make_icon_writes_where_it_is_told_and_help_writes_nothing(tmp_path):
    tool = ROOT / "tools" / "make_icon.py"
    shipped = {p: p.stat().st_mtime_ns for p in (ROOT / "resources").glob("humanpose.*")}
    out = subprocess.run([sys.executable, str(tool), "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "--out" in out.stdout
    out = subprocess.run([sys.executable, str(tool), "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["humanpose.ico", "humanpose.png", "humanpose.svg"]
    assert (tmp_path / "humanpose.svg").read_text() == (ROOT / "resources" / "humanpose.svg").read_text()
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "resources").glob("humanpose.*")} == shipped


def test_plot_shows_gaps_not_jumps_where_the_track_goes_over_to_someone_else(qtbot):
    """vtest.avi's crowd: a track that passes from one walker to another (or is lost for a while)
    must not draw a line across; the title names the person plotted."""
    from humanpose.gui.plot import PlotPanel, identity_breaks
    rng = np.random.default_rng(0)
    figure = rng.uniform(0, 100, (NUM_JOINTS, 2))          # a person 100 px tall

    def at(x: float, t: float, scale: float = 1.0):
        p = person(track_id=3)
        p.joints[:, :2] = figure * scale + (x, 50)
        r = result(0, [p])
        r.timestamp = t
        return r
    # walks 10 px per 0.1 s, then the track jumps to a walker 300 px away (frame 5), then to a
    # child half as large in the same place (frame 8), then nobody is estimated for 2 s
    times = [0.1 * i for i in range(10)] + [3.0, 3.1]
    xs = [10 * i for i in range(5)] + [350 + 10 * i for i in range(7)]
    items = [(i, at(x, t, 0.5 if 8 <= i <= 9 else 1.0)) for i, (x, t) in enumerate(zip(xs, times))]
    assert np.flatnonzero(identity_breaks(items)).tolist() == [5, 8, 10]
    panel = PlotPanel()
    qtbot.addWidget(panel)
    panel.set_chosen(["R elbow"])
    panel.set_data(items)
    joined = panel.curves["R elbow"].opts["connect"]
    assert joined.tolist() == [True] * 4 + [False] + [True] * 2 + [False] + [True] + [False] + \
        [True, False]
    assert panel.plot.plotItem.titleLabel.text.startswith("person #3: the one seen most")
    panel.set_data(items, person=3)
    assert panel.plot.plotItem.titleLabel.text == "person #3 (chosen under Display)"
