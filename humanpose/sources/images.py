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


_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")
# frames of one video differ little from one to the next, photos a lot: the median over
# consecutive pairs of the mean absolute difference of 32x24 grey thumbnails (0..1), measured:
# vtest.avi every 1st / 5th / 10th / 25th frame 0.003 / 0.012 / 0.015 / 0.019,
# street_people.avi (moving camera) every 1st / 5th / 10th 0.010 / 0.028 / 0.043; photos of one
# size: COCO 0.252, LSP 0.228, LSPET 0.269 (no pair of them below 0.09); a tie is not a sequence
SEQUENCE_MAX_DIFFERENCE = 0.10
SEQUENCE_PAIRS = 8             # consecutive pairs compared at most, spread over the folder


def _thumbnail(path: Path) -> np.ndarray | None:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_4) if data.size else None
    if image is None:
        return None
    return cv2.resize(image, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32)


def _pair_differences(files: list[Path]):
    """The mean absolute difference (0..1) of the grey thumbnails of consecutive images, for at
    most :data:`SEQUENCE_PAIRS` pairs spread over the list (unreadable pairs left out)."""
    if len(files) < 2:
        return
    starts = np.unique(np.linspace(0, len(files) - 2, min(SEQUENCE_PAIRS, len(files) - 1))
                       .round().astype(int))
    thumbs: dict[int, np.ndarray | None] = {}
    for i in starts:
        for k in (i, i + 1):
            if k not in thumbs:
                thumbs[k] = _thumbnail(Path(files[k]))
        a, b = thumbs[i], thumbs[i + 1]
        if a is not None and b is not None:
            yield float(np.mean(np.abs(a - b))) / 255.0


def frame_difference(files: list[Path]) -> float | None:
    """The median of :func:`_pair_differences` (None without a readable pair)."""
    diffs = list(_pair_differences(files))
    return float(np.median(diffs)) if diffs else None


def _alike_as_video(files: list[Path]) -> bool:
    """Whether :func:`frame_difference` is below :data:`SEQUENCE_MAX_DIFFERENCE`, decided as
    soon as most pairs agree (a folder of 12-megapixel photos: ~45 ms a thumbnail)."""
    pairs = min(SEQUENCE_PAIRS, len(files) - 1)
    alike = differ = 0
    for d in _pair_differences(files):
        if d < SEQUENCE_MAX_DIFFERENCE:
            alike += 1
        else:
            differ += 1
        if alike > pairs / 2 or differ >= pairs / 2:
            break
    return alike > differ


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file header of a PNG, JPEG, BMP, GIF or PNM file without
    decoding it; other formats (and unreadable files) are decoded, None when that fails."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            if head[:2] == b"BM" and len(head) >= 26:
                return (int.from_bytes(head[18:22], "little", signed=True),
                        abs(int.from_bytes(head[22:26], "little", signed=True)))
            if head[:6] in (b"GIF87a", b"GIF89a"):
                return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
            if head[:2] == b"\xff\xd8":                     # JPEG: find the SOF marker
                fh.seek(2)
                while True:
                    marker = fh.read(2)
                    if len(marker) < 2 or marker[0] != 0xFF:
                        break
                    if marker[1] in (0xD8, 0x01) or 0xD0 <= marker[1] <= 0xD7:
                        continue
                    length = int.from_bytes(fh.read(2), "big")
                    if marker[1] in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA,
                                     0xCB, 0xCD, 0xCE, 0xCF):
                        data = fh.read(5)
                        return int.from_bytes(data[3:5], "big"), int.from_bytes(data[1:3], "big")
                    fh.seek(length - 2, 1)
            m = re.match(rb"P[1-6]\s+(?:#[^\n]*\n\s*)*(\d+)\s+(?:#[^\n]*\n\s*)*(\d+)", head)
            if m:
                return int(m[1]), int(m[2])
    except OSError:
        return None
    image = read_image(path)
    return None if image is None else (image.shape[1], image.shape[0])


def is_frame_sequence(files: list[Path]) -> bool:
    """Whether a folder's images are the frames of one sequence (a video saved as images) rather
    than unrelated pictures: at least two, every name numbered alike (one prefix, digits, one
    suffix: ``frame_0001.png``, ``frame_0002.png``...), the numbers counting up in one step (every
    frame, or every 5th...: at least 90 % of the gaps equal; a few dropped frames are fine),
    every readable image of one size, and consecutive images alike as a video's frames are
    (:func:`frame_difference` below :data:`SEQUENCE_MAX_DIFFERENCE`).  Tracking and smoothing
    then run across the images; otherwise each image is estimated alone.  (LSP's
    ``im0001.jpg``... are numbered alike but of many sizes; ``im0003``, ``im0010``, ``im0027``
    picked from it do not count up in one step; a camera's ``IMG_0001.jpg``... holiday photos
    of one size differ too much from one to the next: none is a sequence.)"""
    if len(files) < 2:
        return False
    parts = [_NUMBERED.match(Path(f).name) for f in files]
    if not all(parts) or len({(m[1], m[3].lower()) for m in parts}) != 1:
        return False
    gaps = np.diff(sorted(int(m[2]) for m in parts))
    if gaps.min() <= 0:                                  # f1 and f01: one number twice
        return False
    step = np.bincount(gaps).argmax()                    # the most common gap
    if (gaps != step).sum() > 0.1 * len(gaps):
        return False
    sizes = {image_size(Path(f)) for f in files} - {None}
    if len(sizes) != 1:
        return False
    return _alike_as_video(files)


class ImageListSource(FrameSource):
    """A single image or the images of a folder, one frame each.

    Folders get a nominal frame rate (``fps``, from ``source.camera_fps``) so timestamps are
    ``index / fps`` like a video; a single image has ``fps`` None and timestamp 0.
    Unreadable files inside a folder are skipped (the frame index keeps the file's position in
    the sorted list; :attr:`skipped` lists them).  :attr:`independent`: the images are unrelated
    pictures, not frames of one sequence (:func:`is_frame_sequence`), so tracking restarts on
    each one.
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
        self.independent = len(self.files) > 1 and not is_frame_sequence(self.files)

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
