"""The pose net chosen live in the window (Fast / Accurate in the Estimator tab) and by
``--pose-model`` on the command line.

Real windows offscreen with the shipped nets (torch on the CPU), real frames of ../shared/media
(skipped when absent), a real settings file; the command line runs on a real picture and its
run.json is read back.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("pytestqt")

from conftest import shared_path  # noqa: E402

from humanpose.catalog import available_nets  # noqa: E402
from humanpose.config import from_dict, set_value  # noqa: E402
from humanpose.gui.main_window import MainWindow  # noqa: E402
from humanpose.gui.settings import apply_settings, open_settings  # noqa: E402

FAST, ACCURATE = "pose_mobilenet", "pose_mobilenet_accurate"
WAIT_MS = 120000          # real nets on two busy cores


def real_cfg(tmp_path: Path, models_dir: str | Path = "models"):
    return from_dict({"model": {"framework": "torch", "device": "cpu", "precision": "fp32",
                                "models_dir": str(models_dir)},
                      "output": {"directory": str(tmp_path / "out")}})


def need_nets(cfg, *names) -> None:
    missing = [n for n in names if n not in available_nets(cfg.resolve(cfg.model.models_dir), "pose")]
    if missing:
        pytest.skip(f"pose net(s) {', '.join(missing)} not in {cfg.model.models_dir}")


class Events:
    """The estimator thread's answers in the order it gave them: ("applied", dict) and
    ("result", pose net the estimator ran when the result came)."""

    def __init__(self, win) -> None:
        self.items: list[tuple[str, object]] = []
        win.estimator.applied.connect(lambda applied: self.items.append(("applied", applied)))
        win.estimator.result.connect(lambda item, res, cached: self.items.append(
            ("result", cached)))

    def results_after_switch_to(self, name: str) -> int:
        """How many estimated (not cached) results came after the switch to ``name``."""
        for n, (kind, what) in enumerate(self.items):
            if kind == "applied" and what.get("pose_model") == name:
                return sum(1 for k, cached in self.items[n + 1:] if k == "result" and not cached)
        return 0


@pytest.fixture()
def window(qtbot, tmp_path):
    windows = []

    def make(cfg, source=""):
        settings = open_settings(str(tmp_path / "settings.ini"))
        win = MainWindow(cfg, settings=settings, source=source)
        qtbot.addWidget(win)
        win.show()
        windows.append(win)
        return win

    yield make
    for win in windows:
        win.close()
        assert win.camera_thread.wait(WAIT_MS) and win.estimator_thread.wait(WAIT_MS)


def choose(win, name: str) -> None:
    """Pick the pose net as the user does: the Estimator tab's combo box."""
    box = win.controls.estimator.pose_net
    box.setCurrentIndex(box.findData(name))


def running_net(win) -> str | None:
    est = win.estimator.estimator
    return None if est is None else est.config.model.pose_model


def test_switch_fast_accurate_fast_on_a_still_image(qtbot, window, tmp_path):
    image = shared_path("media", "messi5.jpg")
    cfg = real_cfg(tmp_path)
    need_nets(cfg, FAST, ACCURATE)
    win = window(cfg, str(image))
    events = Events(win)
    box = win.controls.estimator.pose_net
    assert box.currentData() == FAST and box.currentText() == "Fast"
    assert box.model().item(box.findData(ACCURATE)).isEnabled()
    qtbot.waitUntil(lambda: running_net(win) == FAST and len(win.cache) == 1, timeout=WAIT_MS)
    fast_net = win.estimator.estimator.pose.model

    choose(win, ACCURATE)
    assert win.cfg.model.pose_model == ACCURATE                     # the config at once
    # the paused picture is estimated again, by the accurate net
    qtbot.waitUntil(lambda: events.results_after_switch_to(ACCURATE) >= 1, timeout=WAIT_MS)
    assert running_net(win) == ACCURATE and win.estimator.estimator.pose.model is not fast_net
    # the ms per frame beside the choice: the accurate net's one estimate of the picture
    label = win.controls.estimator.pose_net_label
    qtbot.waitUntil(lambda: re.match(r"Accurate: \d+ ms/frame", label.text()) is not None,
                    timeout=5000)
    assert "not available" not in win.controls.estimator.backend.text()

    choose(win, FAST)
    qtbot.waitUntil(lambda: events.results_after_switch_to(FAST) >= 1, timeout=WAIT_MS)
    assert running_net(win) == FAST and win.cfg.model.pose_model == FAST
    assert "Cannot" not in win.message
    # remembered: the next start runs the net chosen last
    win.close()
    settings = open_settings(str(tmp_path / "settings.ini"))
    assert apply_settings(real_cfg(tmp_path), settings).model.pose_model == FAST


def test_switch_while_a_video_plays(qtbot, window, tmp_path):
    video = shared_path("media", "vtest.avi")
    cfg = real_cfg(tmp_path)
    need_nets(cfg, FAST, ACCURATE)
    win = window(cfg, str(video))
    events = Events(win)
    label = win.controls.estimator.pose_net_label
    qtbot.waitUntil(lambda: win.playing and running_net(win) == FAST, timeout=WAIT_MS)
    # a measured ms per frame of the fast net (the warm-up estimate is not counted)
    qtbot.waitUntil(lambda: re.match(r"Fast: \d+\.\d ms/frame$", label.text()) is not None,
                    timeout=WAIT_MS)

    choose(win, ACCURATE)
    qtbot.waitUntil(lambda: events.results_after_switch_to(ACCURATE) >= 3, timeout=WAIT_MS)
    assert win.playing and running_net(win) == ACCURATE            # it kept playing
    assert win.cfg.model.pose_model == ACCURATE
    # the label measures the accurate net now, the fast net's figure kept beside it
    qtbot.waitUntil(lambda: re.match(r"Accurate: \d+\.\d ms/frame \(before: Fast \d+\.\d ms\)$",
                             label.text()) is not None, timeout=WAIT_MS)
    settings = open_settings(str(tmp_path / "settings.ini"))
    assert settings.value("model/pose_model") == ACCURATE


def test_a_missing_net_is_offered_disabled_and_the_app_keeps_running(qtbot, window, tmp_path):
    image = shared_path("media", "messi5.jpg")
    repo = real_cfg(tmp_path)
    need_nets(repo, FAST)
    # a models folder whose manifest lists the accurate net but lacks its weights
    src = repo.resolve("models")
    models = tmp_path / "models"
    models.mkdir()
    manifest = json.loads((src / "manifest.json").read_text())
    if not any(e["name"] == ACCURATE for e in manifest["models"]):
        manifest["models"].append({"name": ACCURATE, "kind": "pose",
                                   "file": f"{ACCURATE}.safetensors"})
    (models / "manifest.json").write_text(json.dumps(manifest))
    cfg = real_cfg(tmp_path, models)
    for name in (cfg.model.person_model, FAST):
        file = next(e["file"] for e in manifest["models"] if e["name"] == name)
        shutil.copy(src / file, models / file)
    assert not (models / f"{ACCURATE}.safetensors").exists()

    win = window(cfg, str(image))
    box = win.controls.estimator.pose_net
    i = box.findData(ACCURATE)
    assert not box.model().item(i).isEnabled()
    assert "Not available" in box.itemData(i, 3)                    # Qt.ToolTipRole
    qtbot.waitUntil(lambda: running_net(win) == FAST and len(win.cache) == 1, timeout=WAIT_MS)

    choose(win, ACCURATE)         # e.g. chosen before its file was deleted: said, not fatal
    qtbot.waitUntil(lambda: "Cannot switch to the pose net" in win.message, timeout=WAIT_MS)
    assert ACCURATE in win.message and "Still running pose_mobilenet" in win.message
    assert win.statusBar().currentMessage().startswith("Cannot switch")
    qtbot.waitUntil(lambda: box.currentData() == FAST and win.cfg.model.pose_model == FAST,
                    timeout=WAIT_MS)
    assert running_net(win) == FAST
    qtbot.waitUntil(lambda: win.controls.estimator.backend.text().startswith("torch"),
                    timeout=WAIT_MS)                  # not left at "switching…"
    # still estimating with the fast net
    calls = win.estimator.estimate_calls
    win.controls.estimator.boxsize.setValue(win.cfg.estimator.boxsize + 8)
    qtbot.waitUntil(lambda: win.estimator.estimate_calls > calls, timeout=WAIT_MS)
    win.close()

    # a start with that net (remembered, or in humanpose.yml) runs the fast one and says why
    win = window(set_value(cfg, "model.pose_model", ACCURATE))
    assert win.cfg.model.pose_model == FAST
    assert win.controls.estimator.pose_net.currentData() == FAST
    assert "weights of the pose net 'pose_mobilenet_accurate'" in win.message
    assert "Running pose_mobilenet" in win.message
    qtbot.waitUntil(lambda: running_net(win) == FAST, timeout=WAIT_MS)


def test_cli_pose_model_flag(tmp_path, capsys):
    from humanpose import cli
    image = shared_path("media", "messi5.jpg")
    need_nets(real_cfg(tmp_path), ACCURATE)
    out = tmp_path / "run"
    rc = cli.main(["run", str(image), "--pose-model", ACCURATE, "--framework", "torch",
                   "--device", "cpu", "--no-progress", "--no-video", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["models"]["pose"] == ACCURATE

    rc = cli.main(["run", str(image), "--pose-model", "pose_nonexistent", "--no-progress",
                   "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "pose_nonexistent" in err and "available:" in err and FAST in err
    assert "Traceback" not in err


def test_gui_launcher_rejects_an_unknown_pose_net(capsys):
    from humanpose import cli
    rc = cli.main(["gui", "--pose-model", "pose_nonexistent", "--no-settings"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "unknown pose net 'pose_nonexistent'" in err and FAST in err
