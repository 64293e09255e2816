"""Estimator options of the main window: the Estimator and Display controls change the config
(remembered in the settings) and reach the estimator thread as one change
(:meth:`~humanpose.gui.estimator_worker.EstimatorWorker.update`).

A mixin of :class:`~humanpose.gui.main_window.MainWindow`.
"""
from __future__ import annotations

from ..config import set_value
from . import settings as remembered
from ..config import snap_boxsize
from .controls import strength_to_noise


class EstimatorOptions:
    """The estimator and display settings (mixin of MainWindow)."""

    def _set_cfg(self, key: str, value) -> None:
        self.cfg = set_value(self.cfg, key, value)
        if self.settings is not None and key in remembered.REMEMBERED:
            remembered.remember(self.settings, key, value)
        self._force_redraw()

    def forget_settings(self) -> None:
        if self.settings is not None:
            self.settings.clear()
            self.settings.sync()
        self.show_message("Remembered settings forgotten; humanpose.yml applies at the next start.")

    def _on_boxsize(self, value: int) -> None:
        snapped = snap_boxsize(value)
        if snapped != value:
            self.controls.estimator.boxsize.setValue(snapped)   # re-enters with the snapped value
            return
        self._set_cfg("estimator.boxsize", snapped)
        self.estimator.update(boxsize=snapped)
        self.status.reset()
        self._update_boxsize_label()

    def set_boxsize(self, value: int) -> None:
        self.controls.estimator.boxsize.setValue(value)

    def _on_backend(self, _text: str) -> None:
        e = self.controls.estimator
        fw, dev = e.framework.currentText(), e.device.currentText()
        self._set_cfg("model.framework", fw)
        self._set_cfg("model.device", dev)
        e.backend.setText("switching…")
        if self.estimator_error:     # no estimator yet (e.g. it was built for a missing device)
            self.reload_models()
        else:
            self.estimator.update(framework=fw, device=dev)

    def _on_threshold(self, value: float) -> None:
        self._set_cfg("estimator.person_threshold", round(float(value), 2))
        self.estimator.update(person_threshold=round(float(value), 2))

    def _on_pose_score(self, value: float) -> None:
        self._set_cfg("estimator.min_pose_score", round(float(value), 2))
        self.estimator.update(min_pose_score=round(float(value), 2))

    def _on_flip(self, on: bool) -> None:
        self._set_cfg("estimator.flip_test", bool(on))
        self.estimator.update(flip_test=bool(on))

    def _on_scale_search(self, on: bool) -> None:
        d = self.scale_zoom if on else 0.0
        self._set_cfg("estimator.scale_search", d)
        self.estimator.update(scale_search=d)

    def _on_rescale(self, on: bool) -> None:
        self._set_cfg("estimator.rescale", bool(on))
        self.estimator.update(rescale=bool(on))

    def _on_tracking(self, *_args) -> None:
        e = self.controls.estimator
        enabled, smoothing = e.tracking.isChecked(), e.kalman.isChecked()
        noise = round(strength_to_noise(e.strength.value()), 4)
        e.strength.setEnabled(smoothing)
        e.strength.setToolTip(f"Smoothing strength: measurement noise {noise:g} px²")
        self._set_cfg("tracking.enabled", enabled)
        self._set_cfg("tracking.smoothing", smoothing)
        self._set_cfg("tracking.measurement_noise", noise)
        self.estimator.update(tracking=enabled, smoothing=smoothing, measurement_noise=noise)

    def reload_models(self) -> None:
        self.controls.estimator.backend.setText("loading…")
        self.estimator.rebuild(self.cfg)

    def _on_estimator_ready(self, backend: str) -> None:
        self.controls.estimator.backend.setText(backend)
        if self.estimator_error:
            self.estimator_error = ""
            self.show_message(f"Pose estimator ready ({backend}).", "ok")

    def _on_estimator_failed(self, message: str) -> None:
        if message.startswith("pose estimator not available"):
            self.estimator_error = message + " (fix it, then press Reload models)"
            self.controls.estimator.backend.setText("not available")
            self._render_message()
        else:
            self.show_message(message, "error")

    def _on_applied(self, applied: dict) -> None:
        if "backend_failed" in applied and self.estimator.estimator is not None:
            # the previous backend stays: show it in the selectors and remember it
            model = self.estimator.estimator.config.model
            e = self.controls.estimator
            for box, value in ((e.framework, model.framework), (e.device, model.device)):
                box.blockSignals(True)
                box.setCurrentText(value)
                box.blockSignals(False)
            self._set_cfg("model.framework", model.framework)
            self._set_cfg("model.device", model.device)
        if any(not key.endswith("_failed") for key in applied):
            self.status.reset()        # other settings: the counters start again (warm-up skipped)
        if self.analysing and any(not key.endswith("_failed") for key in applied):
            # the change emptied the cache: the frames analysed so far must be analysed again
            self._analysis_run += 1
            self._analysis_last = None
            self.playback.progress.setValue(0)
            self.camera.set_analysis(self._analysis_run)
            self.camera.seek(0)
            self.camera.play()
            self.show_message(f"Settings changed: analysing {self.info.name} again from the start …")
            return
        # paused: estimate the frame on screen again so the change shows at once
        if not self.playing:
            _, item = self.display_slot.peek()
            if item is not None and self.info is not None and item.generation == self.info.generation:
                self.estimator_slot.put(item)

    def _on_joint_score(self, value: float) -> None:
        """Which joints are drawn and plotted (display only: the estimator is not involved)."""
        self._set_cfg("estimator.joint_threshold", round(float(value), 2))
        self._plot_version = -1          # the plot leaves out the joints below it too

    def _on_person(self, _index: int) -> None:
        """The person the heatmap views and the plot follow."""
        self._force_redraw()
        self._plot_version = -1
