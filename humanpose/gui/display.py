"""Display of the main window: results arriving from the estimator thread, the frame painted at
display rate with its result, the views and the plot.

Each pose is drawn on its own frame (:meth:`Display.shown`): the window paints the newest camera
frame when its own result is known (the estimate of that very frame, or the cache of a file),
else the frame that the newest result was computed from, so that during playback the picture
trails the camera by the estimator's latency but the skeleton always stands on its person.  With
``gui.low_latency_display`` ("Low latency display", off by default) the newest camera frame is
painted at once with the newest result, which may be several frames older (a walker's skeleton
trails behind).  Screenshots take what is shown; the recording always pairs each result with
its own frame.

A mixin of :class:`~humanpose.gui.main_window.MainWindow`.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from .views import AUTO, VIEWS, ViewOptions, render
from .camera_worker import Captured

MAX_PERSON_CHOICES = 64      # track ids offered in the person selector
PAIR_MAX_WAIT_S = 2.0        # a newest result this much older than the newest frame is not waited
                             # for: the frame is shown without a skeleton (a stalled estimator)
PLOT_LIVE_FRAMES = 3000      # a live source's plot shows its newest frames only (of the cache's window)


class Display:
    """Results, painting, views and the plot (mixin of MainWindow)."""

    def _on_result(self, item: Captured, result, cached: bool) -> None:
        if self.info is None or item.generation != self.info.generation:
            return
        self.latest = (item, result)
        self._counts["results"] += 1
        was = self.status.state
        if cached:
            self.status.cached()
        else:
            self._counts["estimates"] += 1
            self.status.estimate(result.timings.get("total", float("nan")),
                                 (time.perf_counter() - item.captured) * 1000.0)
        if self.status.state != was:             # e.g. playing on from the cache
            self._render_status()
        new_ids = {p.track_id for p in result.persons if p.track_id >= 0} - self._seen_ids
        if new_ids and len(self._seen_ids) < MAX_PERSON_CHOICES:
            self._seen_ids |= new_ids
            for tid in sorted(new_ids):
                self.controls.display.person.addItem(f"track #{tid}", tid)
        if self.recorder is not None:
            self._record(item, result)
        if self.analysing and self.info.frame_count:
            self.playback.progress.setValue(int(100 * len(self.cache) / self.info.frame_count))
            self._maybe_finish_analysis()

    def _reset_person_choice(self) -> None:
        box = self.controls.display.person
        box.blockSignals(True)
        while box.count() > 1:
            box.removeItem(box.count() - 1)
        box.setCurrentIndex(0)
        box.blockSignals(False)

    def view_options(self) -> ViewOptions:
        g = self.cfg.gui
        person = self.controls.display.person.currentData()
        return ViewOptions(g.show_boxes, g.show_scores, self.cfg.estimator.joint_threshold,
                           g.heatmap_blend, AUTO if person is None else int(person))

    def shown(self) -> tuple[Captured | None, object]:
        """(frame item, result) to paint: the newest frame with its own result, else the frame
        of the newest result (or, in low-latency display, the newest frame with the newest
        result); see the module doc."""
        _, item = self.display_slot.peek()
        if item is None or self.info is None or item.generation != self.info.generation:
            return None, None
        if self.latest is not None and self.latest[0].frame.index == item.frame.index:
            return item, self.latest[1]
        if self.info.seekable:
            cached = self.cache.get(item.frame.index)
            if cached is not None:
                return item, cached
        latest = self.latest
        if latest is None or latest[0].generation != item.generation:
            return item, None
        if self.cfg.gui.low_latency_display:
            return item, latest[1]
        if item.captured - latest[0].captured > PAIR_MAX_WAIT_S:
            return item, None
        return latest

    def current_image(self) -> np.ndarray:
        """The BGR image of the current view (what is on screen)."""
        item, result = self.shown()
        if item is None:
            return render(self.view, None, None, self.view_options())
        return render(self.view, item.frame.image, result, self.view_options())

    def _shown_frame(self):
        """The Frame on show (None without a source)."""
        item, _ = self.shown()
        return None if item is None else item.frame

    def refresh(self) -> None:
        """Paint the frame and result of :meth:`shown` (display timer)."""
        item, result = self.shown()
        if item is not None and (item.frame.image.shape, item.frame.name) != self._described:
            self._describe_source(item.frame)     # each picture of a folder has its own size
        key = (id(item), id(result), self.view, dataclasses.astuple(self.view_options()),
               self.info.generation if self.info else -1)
        if key == self._shown_key:
            return
        self._shown_key = key
        self.image_view.set_image(self.current_image())
        self._counts["shown"] += 1

    def _force_redraw(self) -> None:
        self._shown_key = None

    def set_view(self, view: str) -> None:
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; known: {', '.join(VIEWS)}")
        self.view = view
        if self.tabs.currentIndex() != VIEWS.index(view):
            self.tabs.setCurrentIndex(VIEWS.index(view))   # re-enters once
            return
        self._set_cfg("gui.view", view)
        self.refresh()

    def _update_plot(self) -> None:
        if self._cursor_time is not None and self.plot.isVisible():
            self.plot.set_cursor(self._cursor_time)
            self._cursor_time = None
        if self.cache.version == self._plot_version or not self.plot.isVisible():
            return
        self._plot_version = self.cache.version
        person = self.controls.display.person.currentData()
        items = self.cache.items()
        if self.info is not None and self.info.is_live:
            items = items[-PLOT_LIVE_FRAMES:]      # all 20 000 kept would cost the GUI thread
        self.plot.set_data(items, AUTO if person is None else int(person),
                           self.cfg.estimator.joint_threshold)
