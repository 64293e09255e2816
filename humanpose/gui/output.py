"""Recording and export of the window: the annotated video, keypoints CSV / JSON lines and
screenshots, all into ``output.directory``.  :class:`Output` writes ``state.recorder``.
"""
from __future__ import annotations

import time
from pathlib import Path

from ..export.draw import draw_result
from ..export.writers import ExportError, KeypointWriter, VideoWriter, write_image
from ..sources import source_stem
from .camera_worker import Captured

RECORD_MAX_HOLD_S = 2.0      # longest gap in the source's time a recorded frame is held for


class Output:
    """Record, export, screenshot."""

    def __init__(self, state, config, cache, status_line, display, record_button) -> None:
        self.state, self.config, self.cache, self.status_line = state, config, cache, status_line
        self.display, self.record_button = display, record_button
        self._record_t0: float | None = None   # source time of the recording's first frame

    @property
    def output_dir(self) -> Path:
        cfg = self.config.cfg
        return cfg.resolve(cfg.output.directory)

    def _stem(self) -> str:
        info = self.state.info
        return source_stem(info.spec) if info else "humanpose"

    def show_message(self, text: str, kind: str = "info") -> None:
        self.status_line.show_message(text, kind)

    def set_recording(self, on: bool) -> None:
        """Start / stop recording the annotated frames to the output folder (each result held for
        the source frames it stands for: see :meth:`_record`)."""
        button, state = self.record_button, self.state
        if on and state.recorder is None:
            if state.info is None:
                self.show_message("Nothing to record: open a source first.", "error")
                on = False
            else:
                path = self.output_dir / f"{self._stem()}_annotated_{time.strftime('%Y%m%d-%H%M%S')}.mp4"
                state.recorder = VideoWriter(path, state.source_fps()
                                             or self.status_line.stats["estimator_fps"] or 10.0)
                self._record_t0 = None
                self.show_message(f"Recording to {path} …")
        elif not on and state.recorder is not None:
            rec, state.recorder = state.recorder, None
            rec.close()
            if rec.close_error:
                self.show_message(rec.close_error, "error")
            elif rec.frames:
                self.show_message(f"Recorded {rec.frames} frames to {rec.path}.", "ok")
            else:
                self.show_message("Recording stopped; no frame was estimated meanwhile.", "info")
        button.blockSignals(True)
        button.setChecked(state.recorder is not None)
        button.setText("Stop recording" if state.recorder is not None else "Record video")
        button.blockSignals(False)

    def on_result(self, item: Captured, result) -> None:
        """A result arrived: recorded while recording."""
        if self.state.recorder is not None:
            self.record(item, result)

    def record(self, item: Captured, result) -> None:
        """Write the annotated frame once per 1/fps of the source's time it stands for: an estimate
        that took several source frames is held for them, so the recording plays at the real pace
        (a jump back or a gap over RECORD_MAX_HOLD_S, a pause or a seek, is not held)."""
        rec, t = self.state.recorder, item.frame.timestamp
        if self._record_t0 is None:
            self._record_t0 = t
        copies = int(round((t - self._record_t0) * rec.fps)) + 1 - rec.frames
        if not 1 <= copies <= rec.fps * RECORD_MAX_HOLD_S:
            copies, self._record_t0 = 1, t - rec.frames / rec.fps
        try:
            cfg = self.config.cfg
            image = draw_result(item.frame.image, result, cfg.gui.show_boxes, cfg.gui.show_scores,
                                cfg.estimator.joint_threshold, colour_by="track")
            for _ in range(copies):
                rec.write(image)
        except ExportError as exc:
            self.set_recording(False)
            self.show_message(str(exc), "error")

    def export_keypoints(self, fmt: str = "csv", path: str | Path | None = None) -> Path | None:
        """Write every cached result (sorted by frame) as keypoints CSV or JSON lines."""
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"format must be 'csv' or 'jsonl', not {fmt!r}")
        items = self.cache.items()
        if not items:
            self.show_message("Nothing to export yet: no frame has been estimated.", "error")
            return None
        path = Path(path) if path else self.output_dir / f"{self._stem()}_keypoints.{fmt}"
        try:
            kw = {"csv_path": path} if fmt == "csv" else {"jsonl_path": path}
            with KeypointWriter(**kw) as writer:
                for _, result in items:
                    writer.write(result)
        except ExportError as exc:
            self.show_message(str(exc), "error")
            return None
        span = ""
        if self.state.info is not None and self.state.info.is_live:   # a rolling window
            span = f" (the newest {self.cache.span:.0f} s kept of a live source)"
        self.show_message(f"Exported {len(items)} frames{span} to {path}.", "ok")
        return path

    def save_screenshot(self, path: str | Path | None = None) -> Path | None:
        """Save the current view (full resolution) as PNG; refused while nothing is open."""
        if self.state.info is None:
            self.show_message("Nothing to save: open a source first.", "error")
            return None
        image = self.display.current_image()
        path = Path(path) if path else self.output_dir / \
            f"{self._stem()}_{self.display.view}_{time.strftime('%Y%m%d-%H%M%S')}.png"
        try:
            write_image(path, image)
        except ExportError as exc:
            self.show_message(str(exc), "error")
            return None
        self.show_message(f"Screenshot saved to {path}.", "ok")
        return path
