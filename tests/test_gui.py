"""The desktop window, driven by pytest-qt under QT_QPA_PLATFORM=offscreen.

Tiny random-weight CompactCPM nets are injected through the estimator factory (the person net's
output bias is raised so it always finds persons), videos are generated small, so the whole
file runs in well under a minute on two busy cores.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("pytestqt")

from humanpose.config import from_dict  # noqa: E402
from humanpose.estimator.pipeline import PoseEstimator  # noqa: E402
from humanpose.export.readers import read_jsonl, read_keypoints_csv  # noqa: E402
from humanpose.gui.main_window import MainWindow  # noqa: E402
from humanpose.gui.settings import apply_settings, open_settings  # noqa: E402
from humanpose.gui.views import VIEWS, render  # noqa: E402
from humanpose.nets.compact import CompactCPM  # noqa: E402
from humanpose.skeleton import NUM_JOINTS  # noqa: E402
from humanpose.sources import Frame, FrameSource, open_source  # noqa: E402
from humanpose.store import ModelError  # noqa: E402

torch.set_num_threads(1)
N_FRAMES = 24
SIZE = (160, 120)
WAIT_MS = 20000


def shared_media(name: str) -> Path:
    try:
        from conftest import shared_path  # type: ignore
        p = Path(shared_path("media", name))
    except ImportError:
        p = Path(__file__).resolve().parents[1].parent / "shared" / "media" / name
    if not p.exists():
        pytest.skip(f"../shared/media absent: {p} not found")
    return p


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    person = CompactCPM("person", stages=2, feat=16).eval()
    with torch.no_grad():
        person.stages[-1].out.bias.add_(5.0)     # positive map everywhere: always a person
    pose = CompactCPM("pose", stages=2, feat=16).eval()
    return person, pose


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("media") / "walk.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, SIZE)
    assert writer.isOpened()
    for i in range(N_FRAMES):
        img = np.full((SIZE[1], SIZE[0], 3), 70, np.uint8)
        cv2.circle(img, (30 + 4 * i, 60), 14, (240, 240, 240), -1)
        cv2.rectangle(img, (26 + 4 * i, 74), (34 + 4 * i, 110), (200, 200, 255), -1)
        writer.write(img)
    writer.release()
    return path


def make_cfg(tmp_path: Path, **estimator):
    return from_dict({"model": {"framework": "torch", "device": "cpu"},
                      "estimator": {"boxsize": 64, "max_persons": 2,
                                    "min_pose_score": 0.0, **estimator},   # untrained nets: keep all
                      "gui": {"display_fps": 30.0},
                      "output": {"directory": str(tmp_path / "out")}})


class Recorder:
    """Counts estimator constructions and remembers the boxsize of every estimate."""

    def __init__(self, nets):
        self.nets = nets
        self.built = 0
        self.boxsizes: list[int] = []

    def __call__(self, cfg):
        self.built += 1
        est = PoseEstimator(cfg, *self.nets)
        inner = est.estimate

        def estimate(*a, **kw):
            res = inner(*a, **kw)
            self.boxsizes.append(res.boxsize)
            return res
        est.estimate = estimate
        return est


@pytest.fixture()
def open_window(qtbot, tmp_path, nets):
    windows = []

    def make(source="", factory=None, cfg=None, settings_path=None, opener=open_source,
             file_cfg=None):
        settings = open_settings(str(settings_path or tmp_path / "settings.ini"))
        cfg = cfg or make_cfg(tmp_path)
        win = MainWindow(cfg, estimator_factory=factory or Recorder(nets), settings=settings,
                         source=source, opener=opener, file_cfg=file_cfg)
        qtbot.addWidget(win)
        win.show()
        windows.append(win)
        return win

    yield make
    for win in windows:
        win.close()     # waits up to a second; a thread still busy then (a model being loaded on
        # a loaded machine) ends on its own, the application's process does not wait for it
        assert win.camera_thread.wait(WAIT_MS) and win.estimator_thread.wait(WAIT_MS)


def wait_result(qtbot, win, cond=lambda item, res: True, action=None, timeout=WAIT_MS):
    """Do ``action()``, then wait for the next result that satisfies ``cond``."""
    got = []

    def on_result(item, res, cached):
        if cond(item, res):
            got.append((item, res, cached))
    win.estimator.result.connect(on_result)
    try:
        if action is not None:
            action()
        qtbot.waitUntil(lambda: bool(got), timeout=timeout)
    finally:
        win.estimator.result.disconnect(on_result)
    # on_result ran in the estimator's thread: let the GUI thread catch up with the source
    # that produced this result (its queued "opened" signal) before the test looks at the window
    gen = got[0][0].generation
    qtbot.waitUntil(lambda: win.info is not None and win.info.generation >= gen, timeout=timeout)
    return got[0]


def analyse(qtbot, win):
    win.analyse_whole_file(True)
    qtbot.waitUntil(lambda: not win.analysing, timeout=WAIT_MS)
    assert win.message.startswith("Analysed"), win.message


# ------------------------------------------------------------------------------------ tests
def test_generated_video_views_cache_boxsize_export_plot_close(qtbot, open_window, video, tmp_path,
                                                              capfd):
    win = open_window(str(video))
    qtbot.waitUntil(lambda: win.info is not None, timeout=WAIT_MS)
    assert win.info.frame_count == N_FRAMES and win.info.seekable

    # analyse the whole file, recording the annotated video: every frame estimated once,
    # progress bar at 100 %
    win.controls.output.record.click()
    assert win.recorder is not None
    analyse(qtbot, win)
    win.controls.output.record.click()
    assert win.recorder is None and "Recorded" in win.message
    recorded = list((tmp_path / "out").glob("walk_annotated_*"))
    assert len(recorded) == 1
    cap = cv2.VideoCapture(str(recorded[0]))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= N_FRAMES
    ok, img = cap.read()
    cap.release()
    assert ok and img.shape[:2] == (SIZE[1], SIZE[0])
    assert len(win.cache) == N_FRAMES
    assert win.playback.progress.value() == 100
    assert win.estimator.estimate_calls >= N_FRAMES

    # seek back: the cached result comes back, nothing recomputed
    calls = win.estimator.estimate_calls
    item, res, cached = wait_result(qtbot, win, lambda i, r: i.frame.index == 5,
                                    action=lambda: win.seek(5))
    assert cached and res is win.cache.get(5) and res.frame_index == 5
    assert win.estimator.estimate_calls == calls
    qtbot.waitUntil(lambda: win.playback.seek.value() == 5, timeout=WAIT_MS)
    item, res, cached = wait_result(qtbot, win, lambda i, r: i.frame.index == 6,
                                    action=lambda: win.step(+1))
    assert cached and win.estimator.estimate_calls == calls

    # the three views, switched while the source is open
    shapes = {}
    for view in VIEWS:
        win.set_view(view)
        qtbot.waitUntil(lambda: win.image_view.bgr is not None and win.view == view, timeout=WAIT_MS)
        assert win.tabs.currentIndex() == VIEWS.index(view)
        shapes[view] = win.current_image().shape
        assert win.image_view.bgr.shape == shapes[view]
    assert shapes["single"][:2] == (SIZE[1], SIZE[0])
    assert len({s[:2] for s in shapes.values()}) == 3   # frame, 4x4 tiles, stage strip

    # the plot has one point per cached frame and a click seeks
    qtbot.waitUntil(lambda: win.plot.info.text().startswith(f"{N_FRAMES} frames"), timeout=WAIT_MS)
    xs, _ = next(iter(win.plot.curves.values())).getData()
    assert len(xs) == N_FRAMES
    win.plot.request_seek(12 / 25.0)
    qtbot.waitUntil(lambda: win.playback.seek.value() == 12, timeout=WAIT_MS)

    # export CSV and JSON lines, read them back
    csv_path = win.export_keypoints("csv")
    frames = read_keypoints_csv(csv_path)
    assert [f.frame for f in frames] == list(range(N_FRAMES))
    for f in frames:
        ref = win.cache.get(f.frame)
        assert len(f.persons) == len(ref.persons) >= 1
        got = np.stack([f.persons[k] for k in sorted(f.persons)])
        want = np.stack([p.joints for p in ref.persons])
        assert got.shape == (len(ref.persons), NUM_JOINTS, 3)
        np.testing.assert_allclose(got[..., :2], want[..., :2], atol=0.01)
    assert len(read_jsonl(win.export_keypoints("jsonl"))) == N_FRAMES

    # screenshot of the current view
    shot = win.save_screenshot()
    assert cv2.imread(str(shot)).shape == win.current_image().shape

    # the boxsize slider: the next estimate uses the new boxsize, ms/frame is shown
    win.set_view("single")
    item, res, cached = wait_result(
        qtbot, win, lambda i, r: r.boxsize == 96,
        action=lambda: win.controls.estimator.boxsize.setValue(100))   # snapped to 96
    assert win.controls.estimator.boxsize.value() == 96
    assert not cached and win.estimator.estimator.boxsize == 96
    assert win.cfg.estimator.boxsize == 96
    # ms/frame skips the first (warm-up) estimate after the change: shown from the next one on
    wait_result(qtbot, win, lambda i, r: r.boxsize == 96, action=lambda: win.step(+1))
    qtbot.waitUntil(lambda: "ms/frame" in win.controls.estimator.boxsize_label.text()
                    and "–" not in win.controls.estimator.boxsize_label.text(), timeout=WAIT_MS)
    assert win.controls.estimator.boxsize_label.text().startswith("96 px")

    # closing (while playing) ends both threads within a second and prints nothing
    win.play()
    qtbot.waitUntil(lambda: win.playing, timeout=WAIT_MS)
    capfd.readouterr()
    t0 = time.perf_counter()
    win.close()
    assert time.perf_counter() - t0 < 1.0
    assert win.camera_thread.isFinished() and win.estimator_thread.isFinished()
    qtbot.wait(100)
    out, err = capfd.readouterr()
    assert err == "" and out == ""



def test_scale_search_checkbox_keeps_the_zoom_of_humanpose_yml(qtbot, open_window, video, tmp_path):
    """Turning "Scale search" off and on again restores the zoom humanpose.yml set (0.25 here),
    not the 0.15 the box uses when the file sets none, also after a restart with it off."""
    win = open_window(str(video), cfg=make_cfg(tmp_path, scale_search=0.25))
    box = win.controls.estimator.scale_search
    assert box.isChecked()
    wait_result(qtbot, win)
    box.setChecked(False)
    qtbot.waitUntil(lambda: win.estimator.estimator.config.estimator.scale_search == 0.0,
                    timeout=5000)
    assert win.cfg.estimator.scale_search == 0.0
    box.setChecked(True)
    qtbot.waitUntil(lambda: win.estimator.estimator.config.estimator.scale_search == 0.25,
                    timeout=5000)
    assert win.cfg.estimator.scale_search == 0.25
    # next start: the remembered settings say off (0); humanpose.yml's zoom is still the one it turns on
    yml = make_cfg(tmp_path, scale_search=0.25)
    win2 = open_window(str(video), cfg=make_cfg(tmp_path, scale_search=0.0), file_cfg=yml)
    assert not win2.controls.estimator.scale_search.isChecked()
    win2.controls.estimator.scale_search.setChecked(True)
    assert win2.cfg.estimator.scale_search == 0.25

def test_boxsize_reaches_estimator_while_playing(qtbot, open_window, video, nets):
    rec = Recorder(nets)
    win = open_window(str(video), factory=rec)
    win.playback.speed.setCurrentIndex(win.playback.speed.findText("0.25x"))
    wait_result(qtbot, win)
    wait_result(qtbot, win, lambda i, r: r.boxsize == 128,
                action=lambda: win.controls.estimator.boxsize.setValue(128))
    assert rec.boxsizes[-1] == 128 and win.estimator.estimator.boxsize == 128
    assert rec.built == 1              # the same estimator, only its boxsize changed
    win.controls.estimator.flip.setChecked(True)
    qtbot.waitUntil(lambda: win.estimator.estimator.config.estimator.flip_test, timeout=5000)
    assert win.cfg.estimator.flip_test and rec.built == 1
    win.controls.estimator.scale_search.setChecked(True)
    qtbot.waitUntil(lambda: win.estimator.estimator.config.estimator.scale_search == 0.15,
                    timeout=5000)
    wait_result(qtbot, win)                       # frames still come with the zoomed crops
    assert win.cfg.estimator.scale_search == 0.15 and rec.built == 1
    was = win.estimator.estimator.config.estimator.rescale
    win.controls.estimator.rescale.setChecked(not was)
    qtbot.waitUntil(lambda: win.estimator.estimator.config.estimator.rescale is not was,
                    timeout=5000)
    assert win.cfg.estimator.rescale is not was and rec.built == 1
    win.controls.estimator.threshold.setValue(0.35)
    win.controls.estimator.pose_score.setValue(0.25)
    qtbot.waitUntil(lambda: win.estimator.estimator.config.estimator.min_pose_score == 0.25,
                    timeout=5000)
    assert win.estimator.estimator.config.estimator.person_threshold == 0.35
    assert win.cfg.estimator.min_pose_score == 0.25 and rec.built == 1


def test_street_people(qtbot, open_window, tmp_path):
    path = shared_media("street_people.avi")
    cfg = make_cfg(tmp_path)
    cfg.source.loop = True          # keeps playing however slow this machine is today
    win = open_window(str(path), cfg=cfg)
    qtbot.waitUntil(lambda: win.info is not None, timeout=WAIT_MS)
    assert win.info.size == (1280, 720) and win.info.frame_count > 100
    item, res, _ = wait_result(qtbot, win)
    assert res.frame_shape == (720, 1280) and res.persons
    for view in VIEWS:
        win.set_view(view)
        assert win.current_image().ndim == 3
    # Min joint score (display): 0 draws every joint of the walkers, 1 only those scored 1.0
    assert win.controls.display.joint_score.value() == pytest.approx(cfg.estimator.joint_threshold)
    win.controls.display.boxes.setChecked(False)
    frame = item.frame.image

    def pixels_drawn():
        return int((render("single", frame, res, win.view_options()) != frame).any(axis=2).sum())

    win.controls.display.joint_score.setValue(0.0)
    every = pixels_drawn()
    win.controls.display.joint_score.setValue(1.0)
    assert win.cfg.estimator.joint_threshold == 1.0
    assert every > 0 and pixels_drawn() < every
    qtbot.waitUntil(lambda: win.stats["camera_fps"] > 0 and win.stats["estimator_fps"] > 0,
                    timeout=WAIT_MS)
    assert "camera" in win.stats_label.text() and "latency" in win.stats_label.text()


def test_truncated_file_reports_and_window_stays_usable(qtbot, open_window, video, tmp_path):
    cut = tmp_path / "cut.avi"
    data = video.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.5)])
    win = open_window(str(cut))
    win.playback.speed.setCurrentIndex(win.playback.speed.findText("max"))
    qtbot.waitUntil(lambda: win.message.startswith("Source lost"), timeout=WAIT_MS)
    assert "truncated" in win.message
    assert "color: #ff6b6b" in win.message_label.styleSheet()
    # still usable: seek back within the readable part, then open another file
    wait_result(qtbot, win, lambda i, r: i.frame.index == 1, action=lambda: win.seek(1))
    g0 = win.info.generation
    wait_result(qtbot, win, lambda i, r: i.generation > g0, action=lambda: win.open_source(str(video)))
    assert win.info.name == str(video) and not win.message.startswith("Source lost")


def test_open_errors_are_shown_in_the_window(qtbot, open_window, video, tmp_path):
    win = open_window("")
    assert win.message == ""
    bad = tmp_path / "garbage.avi"
    bad.write_bytes(b"this is not a video" * 100)
    for spec, words in ((str(tmp_path / "missing.avi"), "not found"),
                        (str(bad), "cannot open video"),
                        ("63", "no camera at index 63")):
        win.open_source(spec)
        qtbot.waitUntil(lambda: win.message.startswith("Cannot open"), timeout=WAIT_MS)
        assert words in win.message, win.message
        win.show_message("")
    # ... and the window still works: end of a file is reported
    win.open_source(str(video))
    win.playback.speed.setCurrentIndex(win.playback.speed.findText("max"))
    qtbot.waitUntil(lambda: win.message.startswith("End of file"), timeout=WAIT_MS)


class UnpluggedCamera(FrameSource):
    """A live source that delivers ``n`` frames and then dies like an unplugged camera."""

    def __init__(self, n: int = 6):
        super().__init__()
        self.name, self.fps, self.size, self.is_live = "fake camera 0", 30.0, SIZE, True
        self.n, self.i = n, 0

    def _read(self):
        if self.i >= self.n:
            self.error = f"{self.name} stopped delivering frames after {self.i}"
            return None
        time.sleep(1 / 30)
        img = np.full((SIZE[1], SIZE[0], 3), 40 + 5 * self.i, np.uint8)
        self.i += 1
        return Frame(self.i - 1, time.monotonic(), img)


def test_camera_unplugged_mid_stream(qtbot, open_window, video):
    cameras = []

    def opener(spec, cfg):
        if spec == "0":
            cameras.append(UnpluggedCamera())
            return cameras[-1]
        return open_source(spec, cfg)
    win = open_window("0", opener=opener)
    qtbot.waitUntil(lambda: win.message.startswith("Source lost"), timeout=WAIT_MS)
    assert "stopped delivering frames" in win.message and cameras[0].closed
    assert not win.playback.seek.isEnabled()          # live: no seek bar
    assert win.image_view.bgr is not None              # last picture still shown
    g0 = win.info.generation
    wait_result(qtbot, win, lambda i, r: i.generation > g0, action=lambda: win.open_source(str(video)))
    assert win.info.name == str(video)


def test_missing_weights_shown_and_frames_still_play(qtbot, open_window, video, nets):
    weights_present = []

    def factory(cfg):
        if not weights_present:
            raise ModelError("weight file models/pose_compact.safetensors not found; re-download it")
        return PoseEstimator(cfg, *nets)
    win = open_window(str(video), factory=factory)
    qtbot.waitUntil(lambda: "pose estimator not available" in win.message, timeout=WAIT_MS)
    assert "pose_compact.safetensors" in win.message
    qtbot.waitUntil(lambda: win.camera.frames_read > 3, timeout=WAIT_MS)
    # frames are painted at display rate: the video's picture replaces the placeholder
    qtbot.waitUntil(lambda: win.image_view.bgr is not None
                    and win.image_view.bgr.shape[:2] == (SIZE[1], SIZE[0]), timeout=WAIT_MS)
    assert win.estimator.estimate_calls == 0
    # the user puts the weights back and presses "Reload models": estimates start
    weights_present.append(True)
    win.controls.estimator.reload.click()
    qtbot.waitUntil(lambda: win.message.startswith("Pose estimator ready"), timeout=WAIT_MS)
    wait_result(qtbot, win, action=lambda: win.seek(3))
    assert win.estimator.estimate_calls >= 1


def test_settings_are_remembered_between_runs(qtbot, open_window, video, tmp_path):
    ini = tmp_path / "remember.ini"
    win = open_window("", settings_path=ini)
    win.controls.estimator.boxsize.setValue(256)
    win.controls.estimator.threshold.setValue(0.55)
    win.controls.estimator.pose_score.setValue(0.3)
    win.controls.estimator.kalman.setChecked(False)
    win.controls.estimator.flip.setChecked(True)
    win.controls.estimator.scale_search.setChecked(True)
    win.controls.estimator.rescale.setChecked(False)
    win.controls.display.joint_score.setValue(0.45)
    win.set_view("heatmap")
    win.close()

    cfg = apply_settings(make_cfg(tmp_path), open_settings(str(ini)))
    assert cfg.estimator.boxsize == 256 and cfg.estimator.person_threshold == 0.55
    assert cfg.estimator.min_pose_score == 0.3 and cfg.estimator.joint_threshold == 0.45
    assert cfg.tracking.smoothing is False and cfg.gui.view == "heatmap"
    win2 = open_window("", cfg=cfg, settings_path=ini)
    assert win2.controls.estimator.boxsize.value() == 256
    assert win2.controls.estimator.threshold.value() == pytest.approx(0.55)
    assert win2.controls.estimator.pose_score.value() == pytest.approx(0.3)
    assert win2.controls.display.joint_score.value() == pytest.approx(0.45)
    assert not win2.controls.estimator.kalman.isChecked()
    assert cfg.estimator.flip_test and win2.controls.estimator.flip.isChecked()
    assert cfg.estimator.scale_search == 0.15 and win2.controls.estimator.scale_search.isChecked()
    assert cfg.estimator.rescale is False and not win2.controls.estimator.rescale.isChecked()
    assert win2.tabs.currentIndex() == VIEWS.index("heatmap")


def test_unavailable_backend_is_reported_and_the_previous_one_stays(qtbot, open_window, video):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: switching to it would succeed")
    win = open_window(str(video))
    qtbot.waitUntil(lambda: win.estimator.estimator is not None, timeout=WAIT_MS)
    win.controls.estimator.device.setCurrentText("cuda")
    qtbot.waitUntil(lambda: "cuda" in win.message.lower(), timeout=WAIT_MS)
    assert "color: #ff6b6b" in win.message_label.styleSheet()
    qtbot.waitUntil(lambda: win.controls.estimator.device.currentText() == "cpu", timeout=WAIT_MS)
    assert win.cfg.model.device == "cpu" and win.estimator.estimator.backend_name == "torch/cpu"
    # still estimating
    wait_result(qtbot, win, action=lambda: win.seek(2))


def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "shots"
    folder.mkdir()
    for i in range(3):
        img = np.full((SIZE[1], SIZE[0], 3), 50 + 40 * i, np.uint8)
        cv2.circle(img, (40 + 30 * i, 60), 12, (255, 255, 255), -1)
        cv2.imwrite(str(folder / f"img_{i}.png"), img)
    return folder


def test_image_and_folder_sources(qtbot, open_window, tmp_path):
    folder = image_folder(tmp_path)
    win = open_window("")
    # one image: shown and estimated once, nothing plays
    item, res, _ = wait_result(qtbot, win, action=lambda: win.open_source(str(folder / "img_1.png")))
    assert item.frame.index == 0 and res.frame_shape == (SIZE[1], SIZE[0])
    assert win.info.frame_count == 1 and not win.playing
    # a folder: a seekable sequence, analysed like a video
    g0 = win.info.generation
    wait_result(qtbot, win, lambda i, r: i.generation > g0, action=lambda: win.open_source(str(folder)))
    assert win.info.frame_count == 3 and win.playback.seek.isEnabled()
    analyse(qtbot, win)
    assert sorted(i for i, _ in win.cache.items()) == [0, 1, 2]


def test_end_of_playback_queued_before_analysis_does_not_end_it(qtbot, open_window, tmp_path):
    """The folder plays (Play pressed); its end of file may reach the GUI thread only after
    Analyse was pressed.  That stale end must neither finish the analysis nor replace its
    message."""
    folder = image_folder(tmp_path)
    win = open_window("")
    held = []
    win.camera.ended.disconnect(win.player.on_ended)
    win.camera.ended.connect(lambda *args: held.append(args))    # runs in the camera thread
    win.open_source(str(folder))
    qtbot.waitUntil(lambda: win.info is not None, timeout=WAIT_MS)
    win.play()
    qtbot.waitUntil(lambda: bool(held) and 2 in win.cache and win.info is not None
                    and win.info.frame_count == 3, timeout=WAIT_MS)
    win.camera.ended.connect(win.player.on_ended)
    win.analyse_whole_file(True)
    win.player.on_ended(*held[0])              # the playback's end, delivered late
    assert win.analysing
    qtbot.waitUntil(lambda: not win.analysing, timeout=WAIT_MS)
    assert win.message.startswith("Analysed"), win.message
    assert sorted(i for i, _ in win.cache.items()) == [0, 1, 2]


def test_a_bad_remembered_geometry_is_ignored_and_the_remembered_speed_is_used(qtbot, open_window,
                                                                                 tmp_path, caplog):
    ini = tmp_path / "hand_edited.ini"
    ini.write_text("[window]\ngeometry=garbage\n[playback]\nspeed=0.25x\n")
    win = open_window("", settings_path=ini)            # starts (it used to raise TypeError)
    assert "window/geometry" in caplog.text
    assert win.playback.speed.currentText() == "0.25x"
    qtbot.waitUntil(lambda: win.camera.speed == 0.25, timeout=WAIT_MS)


def test_a_seek_resets_tracking_even_when_its_frame_is_dropped(nets, video, tmp_path):
    """The latest-frame slot may overwrite the frame right after a seek with the next one: the
    estimator must still start new tracks there (the segment, not the dropped frame, tells)."""
    from humanpose.gui.slots import FrameSlot, ResultCache
    from humanpose.gui.camera_worker import CameraWorker
    from humanpose.gui.estimator_worker import EstimatorWorker
    cfg = make_cfg(tmp_path)
    slot, display = FrameSlot(), FrameSlot()
    worker = EstimatorWorker(slot, ResultCache(), lambda c: PoseEstimator(c, *nets), cfg)
    worker._build(cfg)
    resets = []
    inner = worker.estimator.reset
    worker.estimator.reset = lambda: (resets.append(True), inner())
    camera = CameraWorker(slot, display)                 # no threads: their steps are called here
    camera.on_generation = worker.new_source
    camera._cmd_open(str(video), cfg.source)            # reads frame 0
    worker._apply_pending()                              # the new source: a reset
    camera._read_one()
    first = slot.take(0)
    dropped = slot.dropped
    camera._cmd_seek(15)
    camera._read_one()                                   # frame 16 overwrites the seek's frame 15
    assert slot.dropped == dropped + 1
    after_seek = slot.take(0)
    assert (first.frame.index, after_seek.frame.index) == (1, 16)
    assert after_seek.segment != first.segment
    camera._read_one()
    then = slot.take(0)
    assert then.segment == after_seek.segment            # playing on: the same segment
    camera._close()

    worker._process(first)
    tracks = {p.track_id for p in worker.cache.get(1).persons}
    assert tracks and len(resets) == 2
    worker._process(after_seek)
    assert len(resets) == 3                              # new tracks after the seek
    worker._process(then)
    assert len(resets) == 3


def test_the_plot_follows_the_person_chosen_after_analysis(qtbot, open_window, video):
    win = open_window(str(video))
    qtbot.waitUntil(lambda: win.info is not None, timeout=WAIT_MS)
    analyse(qtbot, win)
    box = win.controls.display.person
    qtbot.waitUntil(lambda: box.count() > 1 and win.display.plot_version == win.cache.version,
                    timeout=WAIT_MS)                     # the plot is drawn; nothing changes now
    assert win.plot.person != box.itemData(box.count() - 1)
    box.setCurrentIndex(box.count() - 1)
    qtbot.waitUntil(lambda: win.plot.person == box.currentData(), timeout=WAIT_MS)


def test_a_setting_changed_during_analysis_analyses_the_file_again(qtbot, open_window, video, nets):
    slow = Recorder(nets)
    inner = slow.__call__

    def factory(cfg):
        est = inner(cfg)
        estimate = est.estimate
        est.estimate = lambda *a, **kw: (time.sleep(0.03), estimate(*a, **kw))[1]
        return est
    win = open_window(str(video), factory=factory)
    qtbot.waitUntil(lambda: win.info is not None, timeout=WAIT_MS)
    win.analyse_whole_file(True)
    qtbot.waitUntil(lambda: len(win.cache) >= 5, timeout=WAIT_MS)
    win.controls.estimator.threshold.setValue(0.35)     # empties the cache midway
    qtbot.waitUntil(lambda: not win.analysing, timeout=WAIT_MS)
    assert win.message.startswith("Analysed"), win.message
    assert len(win.cache) == N_FRAMES and win.playback.progress.value() == 100


def test_play_springs_back_without_a_source_and_a_failed_open_keeps_the_old_source_and_results(
        qtbot, open_window, video, tmp_path):
    win = open_window("")
    win.playback.play.click()
    assert win.playback.play.isChecked()                 # pressed ...
    qtbot.waitUntil(lambda: not win.playback.play.isChecked(), timeout=WAIT_MS)   # ... and back
    win.open_source(str(video))
    qtbot.waitUntil(lambda: win.info is not None, timeout=WAIT_MS)
    analyse(qtbot, win)
    win.open_source(str(tmp_path / "missing.avi"))
    g0 = win.info.generation
    qtbot.waitUntil(lambda: win.message.startswith("Cannot open"), timeout=WAIT_MS)
    qtbot.wait(300)                                      # a new generation would clear the cache
    # opening is a transaction: the video, its cache and its seek bar are still there
    assert win.info.generation == g0 and win.info.name == str(video)
    assert len(win.cache) == N_FRAMES and win.playback.seek.isEnabled()
    assert win.export_keypoints("csv") is not None
    wait_result(qtbot, win, lambda i, r: i.frame.index == 5, action=lambda: win.seek(5))


def test_frame_back_passes_an_unreadable_image(qtbot, open_window, tmp_path):
    folder = image_folder(tmp_path)
    (folder / "img_1.png").write_bytes(b"not an image")
    win = open_window("")
    wait_result(qtbot, win, action=lambda: win.open_source(str(folder)))
    win.pause()
    win.seek(2)
    qtbot.waitUntil(lambda: win.playback.seek.value() == 2, timeout=WAIT_MS)
    win.step(-1)                                         # img_1 is unreadable: img_0, not img_2
    qtbot.waitUntil(lambda: win.playback.seek.value() == 0, timeout=WAIT_MS)
    _, item = win.display_slot.peek()
    assert item.frame.name == "img_0.png"


def test_a_recording_keeps_the_pace_of_the_source(qtbot, open_window, video):
    """One written frame per source frame an estimate stands for (25 fps here), so a recording
    made while the estimator keeps up with every third frame plays as long as the source did."""
    win = open_window(str(video))
    item, res, _ = wait_result(qtbot, win)
    win.pause()
    qtbot.waitUntil(lambda: not win.playing, timeout=WAIT_MS)
    qtbot.wait(200)
    win.set_recording(True)
    for index in (3, 6, 7, 10, 99):                     # 99: a jump of 3.5 s, not held
        frame = dataclasses.replace(item.frame, index=index, timestamp=index / 25.0)
        win.output.record(dataclasses.replace(item, frame=frame), res)
    rec = win.recorder
    win.set_recording(False)
    cap = cv2.VideoCapture(str(rec.path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == rec.frames == 1 + 3 + 1 + 3 + 1
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
    cap.release()


def test_a_stream_url_with_a_password_is_not_remembered(qtbot, open_window, video, tmp_path):
    ini = tmp_path / "urls.ini"
    win = open_window("", settings_path=ini,
                      opener=lambda spec, cfg: open_source(str(video), cfg))   # any URL: the clip
    win.open_source("rtsp://cam.local/open")
    qtbot.waitUntil(lambda: win.info is not None, timeout=WAIT_MS)
    win.open_source("rtsp://user:secret@cam.local/live")
    qtbot.waitUntil(lambda: "secret" in win.info.spec, timeout=WAIT_MS)
    win.close()
    text = ini.read_text()
    assert "secret" not in text and "rtsp://cam.local/open" in text


def test_the_window_fits_1024_wide_and_every_action_has_a_shortcut(qtbot, open_window, video):
    win = open_window(str(video))
    win.resize(1024, 768)
    qtbot.wait(100)
    assert win.minimumSizeHint().width() <= 1024
    assert win.controls.minimumSizeHint().width() <= 400
    for tab in range(win.controls.count()):
        scroll = win.controls.widget(tab)
        assert not scroll.horizontalScrollBar().isVisible()
        assert scroll.widget().minimumSizeHint().width() <= scroll.viewport().width() + 1
    actions = [a for top in win.menuBar().actions() for a in top.menu().actions()
               if a.text() != "Forget remembered settings"]
    assert len(actions) >= 15
    assert [a.text() for a in actions if a.shortcut().isEmpty()] == []


def test_status_after_end_of_file_restart_and_seek(qtbot, open_window, video):
    win = open_window(str(video))
    win.playback.speed.setCurrentIndex(win.playback.speed.findText("max"))
    qtbot.waitUntil(lambda: win.message.startswith("End of file"), timeout=WAIT_MS)
    win.status_line.update_stats()
    assert win.stats_label.text().startswith("end of file") and "latency" not in win.stats_label.text()
    win.playback.speed.setCurrentIndex(win.playback.speed.findText("0.25x"))
    win.play()                                   # plays again from the start
    qtbot.waitUntil(lambda: win.playing, timeout=WAIT_MS)
    assert not win.message.startswith("End of file")
    win.status_line.update_stats()
    assert win.stats_label.text().startswith("playing") and "latency" in win.stats_label.text()
    win.pause()
    qtbot.waitUntil(lambda: not win.playing, timeout=WAIT_MS)
    win.seek(3)
    assert win.status.ms_per_frame != win.status.ms_per_frame     # reset (NaN) by the seek
    win.status_line.update_stats()
    assert win.stats_label.text().startswith("paused") and "latency" not in win.stats_label.text()


def test_cache_share_after_a_backend_switch_and_no_screenshot_without_a_source(qtbot, open_window,
                                                                              video):
    win = open_window("")
    assert win.save_screenshot() is None and "open a source first" in win.message
    win.open_source(str(video))
    qtbot.waitUntil(lambda: win.info is not None, timeout=WAIT_MS)
    analyse(qtbot, win)
    win.status_line.update_stats()
    assert f"cached {N_FRAMES}/{N_FRAMES} (100 %)" in win.stats_label.text()
    win.controls.estimator.device.setCurrentText("cpu")
    win.controls.estimator.framework.setCurrentText("opencv" if win.cfg.model.framework == "torch"
                                                    else "torch")
    qtbot.waitUntil(lambda: len(win.cache) < N_FRAMES, timeout=WAIT_MS)
    win.status_line.update_stats()
    assert win.playback.progress.value() < 100 and "(100 %)" not in win.stats_label.text()


class FastStream(FrameSource):
    """A live stream whose container claims 25 fps while its frames arrive at 50 fps (stamped as
    live sources stamp them: seconds since open, here exactly 1/50 apart)."""

    def __init__(self, n: int = 400):
        super().__init__()
        self.name, self.fps, self.size, self.is_live = "http://cam.local/mjpeg", 25.0, SIZE, True
        self.n, self.i = n, 0

    def _read(self):
        if self.i >= self.n:
            return None
        time.sleep(0.01)
        img = np.full((SIZE[1], SIZE[0], 3), 40 + self.i % 200, np.uint8)
        self.i += 1
        return Frame(self.i - 1, (self.i - 1) / 50.0, img)


def test_a_live_stream_fps_is_measured_from_its_frame_timestamps(qtbot, open_window):
    win = open_window("http://cam.local/mjpeg", opener=lambda spec, cfg: FastStream())
    name = win.controls.source.name
    qtbot.waitUntil(lambda: "fps measured" in name.text(), timeout=WAIT_MS)
    assert "50.0 fps measured (the source says 25.0)" in name.text() and "live" in name.text()
    assert win.source_fps() == pytest.approx(50.0)
    # the plot's cursor stands at the frame's own time, not at index / 25
    qtbot.waitUntil(lambda: win.camera.last_index >= 60 and len(win.cache) > 0, timeout=WAIT_MS)
    win.pause()
    qtbot.waitUntil(lambda: not win.playing, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: win.player.cursor_time is None, timeout=WAIT_MS)   # drawn by the plot timer
    assert win.plot.cursor.value() == pytest.approx(win.camera.last_index / 50.0)
    assert all(r.timestamp == pytest.approx(i / 50.0) for i, r in win.cache.items())
    # a recording runs at the measured rate
    win.set_recording(True)
    assert win.recorder.fps == pytest.approx(50.0)
    win.set_recording(False)
    # streams cannot seek: a lost one says to open it again
    win.session.on_lost("stream stopped")
    assert "open it again" in win.message and "seek" not in win.message


class SlowClockStream(FastStream):
    """A live stream whose frames are stamped a second apart (as if estimated once a second for
    minutes), delivered as fast as the estimator takes them."""

    def _read(self):
        if self.i >= self.n:
            return None
        time.sleep(0.015)
        img = np.full((SIZE[1], SIZE[0], 3), 40 + self.i % 200, np.uint8)
        cv2.circle(img, (30 + self.i % 100, 60), 14, (240, 240, 240), -1)
        self.i += 1
        return Frame(self.i - 1, float(self.i - 1), img)


def test_a_long_live_run_keeps_a_rolling_window_in_the_cache_and_the_plot(qtbot, open_window,
                                                                          tmp_path):
    """Fifteen minutes of a live stream (by its timestamps) through the window: the cache and the
    plot hold the newest LIVE_SECONDS only, the export says so; the memory stays bounded."""
    from humanpose.gui.slots import LIVE_BYTES, LIVE_MAPS_BYTES, LIVE_SECONDS
    n = 900
    win = open_window("http://cam.local/mjpeg", opener=lambda spec, cfg: SlowClockStream(n))
    seen, most = [], []

    def on_result(item, res, cached):
        seen.append(res.frame_index)
        most.append((len(win.cache), win.cache.span))
    win.estimator.result.connect(on_result)
    qtbot.waitUntil(lambda: win.camera.last_index >= n - 1 and len(seen) > 0
                    and win.estimator.slot.full is False, timeout=4 * WAIT_MS)
    qtbot.waitUntil(lambda: win.cache.items()[-1][0] == seen[-1], timeout=WAIT_MS)
    assert len(set(seen)) > len(win.cache) + 20     # more estimates than the window holds
    assert max(most) <= (LIVE_SECONDS + 1, LIVE_SECONDS)      # at every result
    items = win.cache.items()
    newest = items[-1][1].timestamp
    assert newest >= n - 30 and items[0][1].timestamp >= newest - LIVE_SECONDS
    assert [i for i, _ in items] == sorted(i for i in set(seen) if i >= items[0][0])
    # the maps within their few MB, the joints of all
    assert all(r.persons[0].joints is not None for _, r in items)
    assert 0 < win.cache.maps_bytes <= LIVE_MAPS_BYTES and win.cache.nbytes <= LIVE_BYTES
    # the plot shows that window, not the whole run
    win.plot.setVisible(True)
    win.display.plot_version = None
    win.display.update_plot()
    assert 0 < len(win.plot._items) <= LIVE_SECONDS + 1
    assert win.plot._items[0][0] >= items[0][0]
    for curve in win.plot.curves.values():
        assert len(curve.getData()[0]) <= LIVE_SECONDS + 1
    # the export writes the window and says it is one
    path = win.export_keypoints("csv", tmp_path / "live.csv")
    frames = {fk.frame for fk in read_keypoints_csv(path)}
    assert frames and min(frames) >= items[0][0] and max(frames) == items[-1][0]
    assert f"Exported {len(items)} frames (the newest" in win.message and "live source" in win.message


def test_the_info_line_follows_each_picture_of_a_folder(qtbot, open_window, tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    sizes = [(70, 160), (90, 120), (64, 64)]
    for i, (w, h) in enumerate(sizes):
        cv2.imwrite(str(folder / f"kid_{i}.png"), np.full((h, w, 3), 60 + 40 * i, np.uint8))
    win = open_window("")
    wait_result(qtbot, win, action=lambda: win.open_source(str(folder)))
    win.pause()
    qtbot.waitUntil(lambda: not win.playing, timeout=WAIT_MS)
    name = win.controls.source.name
    for i in (2, 0, 1):
        win.seek(i)
        w, h = sizes[i]
        qtbot.waitUntil(lambda: f"kid_{i}.png" in name.text() and f"\n{w}x{h}," in name.text(),
                        timeout=WAIT_MS)
        assert win.image_view.bgr.shape[:2] == (h, w)


def test_closing_does_not_wait_for_the_estimate_under_way(qtbot, open_window, video, nets):
    """The window closes while a net pass hangs: it goes without waiting for it, and the
    estimate ends after that pass (cancelled: no further pass, no result, no error)."""
    entered, gate = threading.Event(), threading.Event()
    built = []

    def factory(cfg):
        est = PoseEstimator(cfg, *nets)
        inner = est.pose.run

        def pose_pass(crops):
            if not entered.is_set():
                entered.set()
                gate.wait(60)                 # a pass that takes as long as the test wants
            return inner(crops)
        est.pose.run = pose_pass
        built.append(est)
        return est
    win = open_window(str(video), factory=factory)
    qtbot.waitUntil(entered.is_set, timeout=WAIT_MS)
    calls, results = win.estimator.estimate_calls, []
    win.estimator.result.connect(lambda *a: results.append(a))
    win.close()                               # returns with the pass still hanging
    assert win.isHidden() and not win.camera_thread.isRunning()
    assert win.estimator_thread.isRunning()
    gate.set()
    assert win.estimator_thread.wait(WAIT_MS)
    assert win.estimator.estimate_calls == calls and results == []
    assert "estimation failed" not in win.message


def test_a_stopped_analysis_says_how_far_it_got(qtbot, open_window, video, nets):
    gate, windows = threading.Event(), []

    def factory(cfg):
        est = PoseEstimator(cfg, *nets)
        estimate = est.estimate

        def held(*a, **kw):       # the analysis holds after 2 frames until the user stopped it
            if windows and windows[0].analysing and len(windows[0].cache) >= 2:
                gate.wait(60)
            return estimate(*a, **kw)
        est.estimate = held
        return est
    win = open_window(str(video), factory=factory)
    windows.append(win)
    qtbot.waitUntil(lambda: win.info is not None, timeout=WAIT_MS)
    win.pause()                                   # a few frames estimated while it played
    qtbot.waitUntil(lambda: not win.playing, timeout=WAIT_MS)
    win.analyse_whole_file(True)
    qtbot.waitUntil(lambda: len(win.cache) >= 2, timeout=WAIT_MS)
    win.playback.analyse.click()                  # "Stop analysis"
    gate.set()
    assert not win.analysing
    assert win.message.startswith("Analysis stopped: ") and f"of {N_FRAMES} frames" in win.message
