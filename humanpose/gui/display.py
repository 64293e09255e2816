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

:class:`Display` writes ``state.latest``; it says ``result_arrived(item, result)`` for every
result it takes (the recording and the analysis follow it).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
from PySide6.QtCore import QObject, Signal

from .camera_worker import Captured
from .views import AUTO, VIEWS, ViewOptions, render

MAX_PERSON_CHOICES = 64      # track ids offered in the person selector
PAIR_MAX_WAIT_S = 2.0        # a newest result this much older than the newest frame is not waited
                             # for: the frame is shown without a skeleton (a stalled estimator)
PLOT_LIVE_FRAMES = 3000      # a live source's plot shows its newest frames only (of the cache's window)


class Display(QObject):
    """Results, painting, views and the plot."""

    result_arrived = Signal(object, object)     # Captured, PoseResult: after it was taken in

    def __init__(self, state, config, cache, display_slot, status_line, session, person_box,
                 image_view, tabs, plot) -> None:
        super().__init__()
        self.state, self.config, self.cache, self.display_slot = state, config, cache, display_slot
        self.status_line, self.session, self.person_box = status_line, session, person_box
        self.image_view, self.tabs, self.plot = image_view, tabs, plot
        self.view = config.cfg.gui.view
        self.plot_version = -1       # the cache version the plot shows (-1: draw again)
        self._shown_key = None
        self._seen_ids: set[int] = set()
        tabs.setCurrentIndex(VIEWS.index(self.view))

    def on_opened(self, _info) -> None:
        self.state.latest = None
        self.plot.set_data([], -1, self.config.cfg.estimator.joint_threshold)  # not the last clip's
        self.plot_version = -1
        self._seen_ids.clear()
        self._reset_person_choice()

    def on_result(self, item: Captured, result, cached: bool) -> None:
        info, model, counts = self.state.info, self.status_line.model, self.status_line.counts
        if info is None or item.generation != info.generation:
            return
        self.state.latest = (item, result)
        counts["results"] += 1
        was = model.state
        if cached:
            model.cached()
        else:
            counts["estimates"] += 1
            model.estimate(result.timings.get("total", float("nan")),
                           (time.perf_counter() - item.captured) * 1000.0)
        if model.state != was:                   # e.g. playing on from the cache
            self.status_line.render()
        new_ids = {p.track_id for p in result.persons if p.track_id >= 0} - self._seen_ids
        if new_ids and len(self._seen_ids) < MAX_PERSON_CHOICES:
            self._seen_ids |= new_ids
            for tid in sorted(new_ids):
                self.person_box.addItem(f"track #{tid}", tid)
        self.result_arrived.emit(item, result)

    def on_person(self, _index: int) -> None:
        """The person the heatmap views and the plot follow."""
        self.force_redraw()
        self.replot()

    def replot(self) -> None:
        """Draw the plot again at the next plot tick (what it shows changed, not the cache)."""
        self.plot_version = -1

    def _reset_person_choice(self) -> None:
        box = self.person_box
        box.blockSignals(True)
        while box.count() > 1:
            box.removeItem(box.count() - 1)
        box.setCurrentIndex(0)
        box.blockSignals(False)

    def view_options(self) -> ViewOptions:
        cfg = self.config.cfg
        g = cfg.gui
        person = self.person_box.currentData()
        return ViewOptions(g.show_boxes, g.show_scores, cfg.estimator.joint_threshold,
                           g.heatmap_blend, AUTO if person is None else int(person))

    def shown(self) -> tuple[Captured | None, object]:
        """(frame item, result) to paint: the newest frame with its own result, else the frame
        of the newest result (or, in low-latency display, the newest frame with the newest
        result); see the module doc."""
        _, item = self.display_slot.peek()
        info, latest = self.state.info, self.state.latest
        if item is None or info is None or item.generation != info.generation:
            return None, None
        if latest is not None and latest[0].frame.index == item.frame.index:
            return item, latest[1]
        if info.seekable:
            cached = self.cache.get(item.frame.index)
            if cached is not None:
                return item, cached
        if latest is None or latest[0].generation != item.generation:
            return item, None
        if self.config.cfg.gui.low_latency_display:
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

    def refresh(self) -> None:
        """Paint the frame and result of :meth:`shown` (display timer)."""
        item, result = self.shown()
        if item is not None:
            self.session.describe_if_new(item.frame)   # each picture of a folder has its own size
        info = self.state.info
        key = (id(item), id(result), self.view, dataclasses.astuple(self.view_options()),
               info.generation if info else -1)
        if key == self._shown_key:
            return
        self._shown_key = key
        self.image_view.set_image(self.current_image())
        self.status_line.counts["shown"] += 1

    def force_redraw(self) -> None:
        self._shown_key = None

    def set_view(self, view: str) -> None:
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; known: {', '.join(VIEWS)}")
        self.view = view
        if self.tabs.currentIndex() != VIEWS.index(view):
            self.tabs.setCurrentIndex(VIEWS.index(view))   # re-enters once
            return
        self.config.set("gui.view", view)
        self.refresh()

    def update_plot(self) -> None:
        """The plot's series, when the cache changed (plot timer)."""
        if self.cache.version == self.plot_version or not self.plot.isVisible():
            return
        self.plot_version = self.cache.version
        person = self.person_box.currentData()
        items = self.cache.items()
        info = self.state.info
        if info is not None and info.is_live:
            items = items[-PLOT_LIVE_FRAMES:]      # all 20 000 kept would cost the GUI thread
        self.plot.set_data(items, AUTO if person is None else int(person),
                           self.config.cfg.estimator.joint_threshold)
