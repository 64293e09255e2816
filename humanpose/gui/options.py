"""The Estimator and Display controls of the window, driven by one table.

:data:`CONTROLS` maps each control to the config key it sets (and is loaded from) and the
estimator option it changes (:meth:`~humanpose.gui.estimator_worker.EstimatorWorker.update`,
None: display only); :data:`KINDS` says how a kind of control reads and shows its value.
:class:`EstimatorOptions` loads every control from the config and connects each one to the
same handler: the value goes into the config (remembered in the settings) and, where the
control has an option, to the estimator thread.  The few controls that do more (the box size
snaps to its step, the backend rebuilds a missing estimator, the pose net is switched by
:meth:`~humanpose.gui.estimator_worker.EstimatorWorker.set_pose_model`, the smoothing strength
follows the Kalman box) say so in :meth:`EstimatorOptions._after` and :meth:`EstimatorOptions._send`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt

from ..catalog import available_nets
from ..config import (Config, ConfigError, ModelConfig, check_pose_model, set_value,
                      snap_boxsize, value_range)
from .controls import noise_to_strength, strength_to_noise


@dataclass(frozen=True)
class Control:
    page: str                  # the ControlPanel page: "estimator" or "display"
    widget: str                # the widget's attribute on that page
    key: str                   # config key it sets and is loaded from
    option: str | None = None  # estimator option it changes (None: display only)
    kind: str = "check"        # how it reads and shows its value (KINDS)


CONTROLS: tuple[Control, ...] = (
    Control("estimator", "boxsize", "estimator.boxsize", "boxsize", "slider"),
    Control("estimator", "pose_net", "model.pose_model", "pose_model", "net"),
    Control("estimator", "framework", "model.framework", "framework", "choice"),
    Control("estimator", "device", "model.device", "device", "choice"),
    Control("estimator", "threshold", "estimator.person_threshold", "person_threshold", "score"),
    Control("estimator", "pose_score", "estimator.min_pose_score", "min_pose_score", "score"),
    Control("estimator", "flip", "estimator.flip_test", "flip_test"),
    Control("estimator", "scale_search", "estimator.scale_search", "scale_search", "zoom"),
    Control("estimator", "rescale", "estimator.rescale", "rescale"),
    Control("estimator", "tracking", "tracking.enabled", "tracking"),
    Control("estimator", "kalman", "tracking.smoothing", "smoothing"),
    Control("estimator", "strength", "tracking.measurement_noise", "measurement_noise",
            "strength"),
    Control("display", "joint_score", "estimator.joint_threshold", None, "score"),
    Control("display", "boxes", "gui.show_boxes"),
    Control("display", "scores", "gui.show_scores"),
    Control("display", "blend", "gui.heatmap_blend"),
    Control("display", "low_latency", "gui.low_latency_display"),
)


@dataclass(frozen=True)
class Kind:
    signal: str                              # the widget's signal of a change
    read: Callable[[Any, Any], Any]          # (widget, options) -> config value
    show: Callable[[Any, Any, Any], None]    # (widget, value, options): show a config value


def _show_net(w, name, _o) -> None:
    if w.findData(name) < 0:                 # a net humanpose.yml names that is not offered
        w.addItem(name, name)
    w.setCurrentIndex(w.findData(name))


KINDS: dict[str, Kind] = {
    "check": Kind("toggled", lambda w, o: bool(w.isChecked()), lambda w, v, o: w.setChecked(v)),
    "slider": Kind("valueChanged", lambda w, o: int(w.value()), lambda w, v, o: w.setValue(v)),
    "score": Kind("valueChanged", lambda w, o: round(float(w.value()), 2),
                  lambda w, v, o: w.setValue(v)),
    "choice": Kind("currentTextChanged", lambda w, o: w.currentText(),
                   lambda w, v, o: w.setCurrentText(v)),
    "zoom": Kind("toggled", lambda w, o: o.scale_zoom if w.isChecked() else 0.0,
                 lambda w, v, o: w.setChecked(v > 0)),
    "strength": Kind("valueChanged", lambda w, o: round(strength_to_noise(w.value()), 4),
                     lambda w, v, o: w.setValue(noise_to_strength(v))),
    "net": Kind("currentIndexChanged", lambda w, o: w.currentData(), _show_net),
}
BACKEND_OPTIONS = ("framework", "device")


def usable_pose_net(cfg: Config) -> tuple[Config, str]:
    """``cfg``, or, when its pose net is not available (a remembered choice whose weights are
    gone), ``cfg`` with the default net and a message saying so."""
    default = ModelConfig().pose_model
    try:
        check_pose_model(cfg, cfg.model.pose_model)
    except ConfigError as exc:
        if cfg.model.pose_model != default:
            return set_value(cfg, "model.pose_model", default), f"{exc}. Running {default}."
    return cfg, ""


class EstimatorOptions(QObject):
    """The estimator and display settings: the controls of :data:`CONTROLS`, Reload models,
    Forget remembered settings, and what the estimator thread answers."""

    def __init__(self, state, config, estimator, controls, status_line, display, player,
                 estimator_slot, display_slot, scale_zoom: float) -> None:
        super().__init__()
        self.state, self.config, self.estimator, self.controls = state, config, estimator, controls
        self.status_line, self.display, self.player = status_line, display, player
        self.estimator_slot, self.display_slot = estimator_slot, display_slot
        self.scale_zoom = scale_zoom     # the zoom "Scale search" turns on
        self._offer_nets()
        for c in CONTROLS:
            w = self.widget(c)
            if c.kind == "score":
                w.setRange(*value_range(c.key))
            self.show(c)
            getattr(w, KINDS[c.kind].signal).connect(lambda *_, c=c: self.changed(c))
        e = controls.estimator
        e.strength.setEnabled(config.cfg.tracking.smoothing)
        e.reload.clicked.connect(self.reload_models)

    def widget(self, c: Control):
        return getattr(getattr(self.controls, c.page), c.widget)

    def control(self, widget: str) -> Control:
        return next(c for c in CONTROLS if c.widget == widget)

    def show(self, c: Control) -> None:
        """The control shows the config's value (without reacting to it)."""
        section, _, name = c.key.partition(".")
        w = self.widget(c)
        w.blockSignals(True)
        KINDS[c.kind].show(w, getattr(getattr(self.config.cfg, section), name), self)
        w.blockSignals(False)

    def _offer_nets(self) -> None:
        """The pose nets not available (weights missing) are offered disabled, saying why."""
        box = self.controls.estimator.pose_net
        folder = self.config.cfg.resolve(self.config.cfg.model.models_dir)
        have = available_nets(folder, "pose")
        for i in range(box.count()):
            item = box.model().item(i)
            if box.itemData(i) not in have:
                item.setEnabled(False)
                box.setItemData(i, f"Not available: {box.itemData(i)} is not among the nets of "
                                   f"{folder} (its weights or its manifest.json entry are "
                                   "missing)", Qt.ItemDataRole.ToolTipRole)

    # ---------------------------------------------------------------- one handler for all
    def changed(self, c: Control) -> None:
        """A control changed: its value into the config, then to the estimator thread."""
        value = KINDS[c.kind].read(self.widget(c), self)
        if c.widget == "boxsize" and snap_boxsize(value) != value:
            self.widget(c).setValue(snap_boxsize(value))   # re-enters with the snapped value
            return
        self.config.set(c.key, value)
        if c.option is not None:
            self._send(c, value)
        self._after(c, value)

    def _send(self, c: Control, value) -> None:
        e = self.controls.estimator
        if c.option == "pose_model":
            e.backend.setText("switching…")
            self.estimator.set_pose_model(value)
        elif c.option in BACKEND_OPTIONS:
            e.backend.setText("switching…")
            if self.status_line.estimator_error:   # no estimator yet (e.g. built for a missing device)
                self.reload_models()
            else:
                self.estimator.update(**{c.option: value})
        else:
            self.estimator.update(**{c.option: value})

    def _after(self, c: Control, value) -> None:
        """What a control does besides setting its value."""
        e = self.controls.estimator
        if c.widget in ("boxsize", "pose_net"):
            self.status_line.model.reset()     # ms per frame of the new box size / net from now on
            self.status_line.update_ms_labels()
        elif c.widget == "kalman":
            e.strength.setEnabled(value)
        elif c.widget == "strength":
            e.strength.setToolTip(f"Smoothing strength: measurement noise {value:g} px²")
        elif c.widget == "joint_score":
            self.display.replot()         # the plot leaves out the joints below it too

    def set_boxsize(self, value: int) -> None:
        self.controls.estimator.boxsize.setValue(value)

    # ---------------------------------------------------------------- menu actions
    def forget_settings(self) -> None:
        self.config.forget()
        self.status_line.show_message("Remembered settings forgotten; humanpose.yml applies at the "
                                 "next start.")

    def reload_models(self) -> None:
        self.controls.estimator.backend.setText("loading…")
        self.estimator.rebuild(self.config.cfg)

    # ---------------------------------------------------------------- the estimator thread's answers
    def on_estimator_ready(self, backend: str) -> None:
        self.controls.estimator.backend.setText(backend)
        if self.status_line.estimator_error:
            self.status_line.estimator_error = ""
            self.status_line.show_message(f"Pose estimator ready ({backend}).", "ok")

    def on_estimator_failed(self, message: str) -> None:
        if message.startswith("pose estimator not available"):
            self.status_line.estimator_error = message + " (fix it, then press Reload models)"
            self.controls.estimator.backend.setText("not available")
            self.status_line.render_message()
        else:
            self.status_line.show_message(message, "error")

    def on_applied(self, applied: dict) -> None:
        est = self.estimator.estimator
        if est is not None:
            # a change that failed: the estimator keeps what it had; the controls show it and
            # the config remembers it
            model = est.config.model
            for failed, keys in (("backend_failed", ("framework", "device")),
                                 ("pose_model_failed", ("pose_net",))):
                if failed in applied:
                    for name in keys:
                        c = self.control(name)
                        self.config.set(c.key, getattr(model, c.key.partition(".")[2]))
                        self.show(c)
        if any(not key.endswith("_failed") for key in applied):
            self.status_line.model.reset()   # other settings: the counters start again (warm-up skipped)
            if self.state.analysing:
                # the change emptied the cache: the frames analysed so far are analysed again
                self.player.restart_analysis()
                return
        # paused: estimate the frame on screen again so the change shows at once
        if not self.state.playing:
            _, item = self.display_slot.peek()
            info = self.state.info
            if item is not None and info is not None and item.generation == info.generation:
                self.estimator_slot.put(item)
