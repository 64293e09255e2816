"""The estimator worker of the window, living in its own QThread.

:class:`EstimatorWorker` always takes the newest frame (from the slot the camera worker,
:mod:`.camera_worker`, fills), looks it up in the per-frame result cache (seekable sources) or
runs the :class:`~humanpose.estimator.pipeline.PoseEstimator`, and emits the result by signal.
Setting changes from the GUI are queued and applied right before the next frame, so they take
effect on the next estimate.

It runs a loop in its thread (started by ``QThread.started``); the GUI talks to it through
thread-safe request methods and it answers with Qt signals (queued to the GUI thread).
``stop()`` ends the loop within one poll interval (50 ms) plus the net pass in progress
(:meth:`~humanpose.estimator.pipeline.PoseEstimator.cancel`).
"""
from __future__ import annotations

import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from .camera_worker import POLL_S, Captured
from .slots import FrameSlot, ResultCache


def _backend_text(est) -> str:
    """What runs, for the window: backend, each net's precision, the CPU, and any note."""
    text = getattr(est, "backend_summary", None) or est.backend_name
    note = getattr(est, "backend_note", None)
    return text + (f" ({note})" if note else "")


class EstimatorWorker(QObject):
    ready = Signal(str)          # backend name (plus a note) once the estimator is built
    failed = Signal(str)         # estimator could not be built (missing weights...) or a step failed
    result = Signal(object, object, bool)   # Captured, PoseResult, from the cache?
    applied = Signal(object)     # dict of the settings that were just applied
    finished = Signal()

    def __init__(self, slot: FrameSlot, cache: ResultCache, factory: Callable, cfg) -> None:
        super().__init__()
        self.slot = slot
        self.cache = cache
        self.factory = factory        # factory(cfg) -> PoseEstimator
        self.cfg = cfg
        self.estimator = None
        self.estimate_calls = 0       # real estimates (cache hits do not count)
        self.generation = 0
        self.use_cache = False
        self._pending: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last_error = None
        self._segment = None          # segment of the last estimated frame

    # ---------------------------------------------------------------- requests (any thread)
    def _request(self, **changes: Any) -> None:
        with self._lock:
            self._pending.update(changes)

    def update(self, **changes: Any) -> None:
        """Estimator options to change before the next frame, e.g. ``update(boxsize=128)``; names
        and values as :meth:`~humanpose.estimator.pipeline.PoseEstimator.configure` takes them.
        Changes requested before they are applied are merged (the newest value wins)."""
        with self._lock:
            self._pending.setdefault("options", {}).update(changes)

    def set_pose_model(self, name: str) -> None:
        """Switch the pose net to ``name`` (a manifest name) before the next frame; the person
        net, the backend and the tracks stay.  ``applied`` has ``pose_model`` (the cache was
        emptied) or ``pose_model_failed`` (the current net stays; ``failed`` says why)."""
        self._request(pose_model=str(name))

    def new_source(self, generation: int, seekable: bool) -> None:
        self._request(source=(generation, seekable))

    def rebuild(self, cfg) -> None:
        """Build the estimator again (e.g. after the user fixed the weights)."""
        self._request(rebuild=cfg)

    def stop(self) -> None:
        self._stop.set()        # and the estimate under way stops before its next net pass
        cancel = getattr(self.estimator, "cancel", None)
        if cancel is not None:
            cancel()

    # ---------------------------------------------------------------- the loop (worker thread)
    def run(self) -> None:
        try:
            self._build(self.cfg)
            while not self._stop.is_set():
                item = self.slot.take(POLL_S)
                try:
                    self._apply_pending()
                    if item is None or self._stop.is_set() or item.generation != self.generation:
                        continue
                    self._process(item)
                except Exception as exc:  # noqa: BLE001 - report and go on with the next frame
                    traceback.print_exc()
                    self.failed.emit(f"estimator thread error: {exc}")
        finally:
            self.estimator = None
            self.finished.emit()

    def _build(self, cfg) -> None:
        try:
            self.cfg = cfg
            self.estimator = self.factory(cfg)
        except Exception as exc:  # noqa: BLE001 - ModelError, BackendError, ...: shown in the window
            self.estimator = None
            self.failed.emit(f"pose estimator not available: {exc}")
            return
        self.ready.emit(_backend_text(self.estimator))

    def _process(self, item: Captured) -> None:
        index = item.frame.index
        if self.use_cache:
            cached = self.cache.get(index)
            if cached is not None:
                self.result.emit(item, cached, True)
                return
        if self.estimator is None:
            return
        # tracks and filters do not survive a jump in time; the segment (not a flag on the frame
        # after a seek) tells, because the latest-frame slot may drop that very frame
        if item.segment != self._segment:
            self.estimator.reset()
            self._segment = item.segment
        try:
            res = self.estimator.estimate(item.frame.image, item.frame.timestamp, index,
                                          keep_maps=True)
        except Exception as exc:  # noqa: BLE001
            if self._stop.is_set():          # cancelled by stop(): nothing to report
                return
            message = f"estimation failed on frame {index}: {exc}"
            if message != self._last_error:      # do not flood the window with one error
                self._last_error = message
                traceback.print_exc()
                self.failed.emit(message)
            return
        self.estimate_calls += 1
        if item.generation == self.generation:
            self.cache.put(res)
            self.result.emit(item, res, False)

    def _apply_pending(self) -> None:
        with self._lock:
            if not self._pending:
                return
            pending, self._pending = self._pending, {}
        applied: dict[str, Any] = {}
        if "rebuild" in pending:
            self._build(pending.pop("rebuild"))
            self.cache.clear()
            applied["rebuild"] = self.estimator is not None
        if "source" in pending:
            self.generation, self.use_cache = pending.pop("source")
            self.cache.clear()
            self.cache.set_live(not self.use_cache)   # a live source: a rolling window
            pending["reset"] = True
        changed = False
        if "pose_model" in pending and self.estimator is not None:
            changed = self._switch_pose_model(pending.pop("pose_model"), applied) or changed
        options = pending.get("options") or {}
        if self.estimator is not None and options:
            # the backend first, on its own: when it is not available the other changes still apply
            backend = {k: options.pop(k) for k in ("framework", "device", "precision")
                       if k in options}
            for key, group in (("backend", backend), ("options", options)):
                if not group:
                    continue
                try:
                    self._configure(group, announce=key == "backend")
                    applied.update(group)
                    changed = True
                except Exception as exc:  # noqa: BLE001 - e.g. BackendError: the previous one stays
                    applied[key + "_failed"] = str(exc)
                    self.failed.emit(str(exc))
        if self.estimator is not None and pending.get("reset"):
            self.estimator.reset()
        if changed:
            self.cache.clear()     # cached results were made with other settings
        if applied:
            self.applied.emit(applied)

    def _switch_pose_model(self, name: str, applied: dict) -> bool:
        """Switch the pose net; True when it changed.  Either way ``ready`` says what runs."""
        est = self.estimator
        current = est.config.model.pose_model
        try:
            if name == current:      # e.g. chosen and chosen back before it was applied
                return False
            est.set_pose_model(name)
        except Exception as exc:  # noqa: BLE001 - ModelError, BackendError...: the net stays
            applied["pose_model_failed"] = str(exc)
            self.failed.emit(f"Cannot switch to the pose net {name}: {exc}. Still running "
                             f"{current}.")
            return False
        finally:
            self.ready.emit(_backend_text(est))
        applied["pose_model"] = name
        return True

    def _configure(self, changes: dict, announce: bool) -> None:
        """Apply ``changes`` to the estimator; with ``announce``, say which backend runs now
        (after a success or a failure alike)."""
        est = self.estimator
        try:
            est.configure(**changes)
        finally:
            if announce:
                self.ready.emit(_backend_text(est))
