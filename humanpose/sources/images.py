"""Single images and image folders."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from .base import Frame, FrameSource, SourceError
from .video import as_bgr

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pbm", ".pnm")


def natural_key(name: str) -> list:
    """Sort key comparing digit runs as numbers: frame2 < frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (not recursive, hidden files skipped), natural name order."""
    files = [p for p in folder.iterdir()
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_key(p.name))


def read_image(path: Path) -> np.ndarray | None:
    """Decode an image file to BGR uint8 (None when unreadable); works with non-ASCII paths."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return None if image is None else as_bgr(image)


class ImageListSource(FrameSource):
    """A single image or the images of a folder, one frame each.

    Folders get a nominal frame rate (``fps``, from ``source.camera_fps``) so timestamps are
    ``index / fps`` like a video; a single image has ``fps`` None and timestamp 0.
    Unreadable files inside a folder are skipped (the frame index keeps the file's position in
    the sorted list; :attr:`skipped` lists them).
    """

    def __init__(self, files: list[Path], name: str, fps: float | None) -> None:
        super().__init__()
        self.name = name
        self.files = list(files)
        self.fps = fps
        self.frame_count = len(self.files)
        self.seekable = True
        self.skipped: list[str] = []
        self._next = 0
        first = None
        for i, path in enumerate(self.files):
            first = read_image(path)
            if first is not None:
                self._next = i
                break
            self.skipped.append(str(path))
        if first is None:
            if len(self.files) == 1:
                raise SourceError(f"cannot read image {self.files[0]} (corrupt or not an image)")
            raise SourceError(f"none of the {len(self.files)} images in {name} can be read")
        self._pending: np.ndarray | None = first
        self.size = (first.shape[1], first.shape[0])

    def _read(self) -> Frame | None:
        while self._next < len(self.files):
            index = self._next
            path = self.files[index]
            if self._pending is not None:
                image, self._pending = self._pending, None
            else:
                image = read_image(path)
            self._next += 1
            if image is None:
                if str(path) not in self.skipped:
                    self.skipped.append(str(path))
                continue
            stamp = index / self.fps if self.fps else 0.0
            return Frame(index, stamp, image, name=path.name)
        return None

    def _seek(self, index: int) -> None:
        self._pending = None
        self._next = index
