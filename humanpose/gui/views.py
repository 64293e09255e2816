"""The three views (single, heatmap, multi-stage) as images, and the widget that shows them.

Rendering is pure OpenCV (:mod:`humanpose.export.draw`); :class:`ImageView` only scales the
finished BGR image into the widget keeping its aspect ratio.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from ..config import EstimatorConfig
from ..export.draw import draw_result, heatmap_tiles, label, stage_strip

VIEWS = ("single", "heatmap", "multistage")
VIEW_TITLES = {"single": "Single", "heatmap": "Heatmap", "multistage": "Multi-stage"}
AUTO = -1   # person selection: the most confident person


@dataclass
class ViewOptions:
    show_boxes: bool = True
    show_scores: bool = False
    joint_threshold: float = EstimatorConfig.joint_threshold
    heatmap_blend: bool = True
    person: int = AUTO       # track id (or index when untracked), AUTO = highest centre score


def select_person(result, person: int = AUTO):
    """The selected person of a result (by track id, else by position), or None."""
    if result is None or not result.persons:
        return None
    if person != AUTO:
        for p in result.persons:
            if p.track_id == person:
                return p
        if all(p.track_id < 0 for p in result.persons) and 0 <= person < len(result.persons):
            return result.persons[person]
        return None
    return max(result.persons, key=lambda p: p.centre_score)


def _message_image(text: str, width: int = 640, height: int = 360) -> np.ndarray:
    image = np.full((height, width, 3), 40, np.uint8)
    for n, line in enumerate(text.split("\n")):
        label(image, line, (12, 12 + 26 * n), scale=0.6, background=(40, 40, 40))
    return image


def render(view: str, frame: np.ndarray | None, result, options: ViewOptions) -> np.ndarray:
    """The BGR image of ``view`` for one frame and its (possibly one frame older) result."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; known: {', '.join(VIEWS)}")
    if frame is None:
        return _message_image("No source.\nOpen a video, image, folder, camera or stream.")
    if view == "single":
        if result is None:
            return frame
        return draw_result(frame, result, options.show_boxes, options.show_scores,
                           options.joint_threshold, colour_by="track")
    if result is None:
        return _message_image("Waiting for the first estimate ...")
    person = select_person(result, options.person)
    if person is None:
        what = "no person found" if not result.persons else f"person {options.person} not in this frame"
        return _message_image(f"Frame {result.frame_index}: {what}.")
    if person.stage_maps is None:
        return _message_image(f"Frame {result.frame_index}: the belief maps of this frame were\n"
                              "not kept (memory budget); play or step to see them.")
    if view == "heatmap":
        return heatmap_tiles(person, options.heatmap_blend, tile_size=_tile(person, 4))
    return stage_strip(person, options.heatmap_blend, tile_size=_tile(person, person.stage_maps.shape[0] + 1))


def _tile(person, columns: int) -> int:
    """Tile size: the crop size, but the whole view at most ~1400 px wide."""
    size = person.crop.shape[1] if person.crop is not None else 8 * person.stage_maps.shape[-1]
    return int(max(64, min(size, 1400 // columns)))


def to_qimage(bgr: np.ndarray) -> QImage:
    """A QImage sharing nothing with ``bgr`` (safe after the array is gone)."""
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class ImageView(QWidget):
    """Shows a BGR image scaled to fit, centred, aspect ratio kept."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self.bgr: np.ndarray | None = None     # the last image shown (screenshots)
        self.setMinimumSize(320, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def set_image(self, bgr: np.ndarray) -> None:
        self.bgr = bgr
        self._image = to_qimage(bgr)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt name
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(24, 24, 24))
        if self._image is not None and not self._image.isNull():
            iw, ih = self._image.width(), self._image.height()
            scale = min(self.width() / iw, self.height() / ih)
            w, h = iw * scale, ih * scale
            target = QRectF(QPointF((self.width() - w) / 2, (self.height() - h) / 2), QRectF(0, 0, w, h).size())
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, scale < 1)
            painter.drawImage(target, self._image)
        painter.end()
