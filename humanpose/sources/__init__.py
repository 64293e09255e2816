"""Frame sources: video files, images, image folders, cameras and network streams.

``open_source(spec, cfg)`` picks the right one; every source has the :class:`FrameSource` API
(``read() -> Frame | None``, ``fps``, ``frame_count``, ``seekable``, ``seek``, ``is_live``,
``name``, ``size``, ``error``, ``close()``, context manager).  See :mod:`.base` for the error
policy: opening failures raise :class:`SourceError`; a source that dies midway ends with
``read() -> None`` and a message in ``source.error``.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..config import SourceConfig
from .base import Frame, FrameSource, SourceError
from .images import IMAGE_EXTENSIONS, ImageListSource, list_images
from .video import CameraSource, CaptureSource, redact_url

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                    ".flv", ".ts", ".mts", ".m2ts", ".3gp", ".ogv", ".gif", ".mjpg", ".mjpeg")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")

__all__ = ["Frame", "FrameSource", "SourceError", "open_source", "source_kind", "source_stem",
           "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS"]


def source_kind(spec: str | int) -> str:
    """Classify a source spec without opening it: camera, stream, folder, image, video or unknown."""
    if isinstance(spec, int):
        return "camera"
    s = str(spec).strip()
    if s.isdigit():
        return "camera"
    if _URL.match(s) and not s.lower().startswith("file://"):
        return "stream"
    p = Path(s[7:] if s.lower().startswith("file://") else s).expanduser()
    if p.is_dir():
        return "folder"
    suffix = p.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return "unknown"


def source_stem(spec: str | int) -> str:
    """A short file-system-safe name for a source (output folder names): file stem, camera0, ..."""
    kind = source_kind(spec)
    s = str(spec).strip()
    if kind == "camera":
        return f"camera{int(s)}"
    if kind == "stream":
        rest = redact_url(s).split("://", 1)[1].replace("***@", "")
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", rest).strip("_.")
        return ("stream_" + stem)[:80] or "stream"
    p = Path(s[7:] if s.lower().startswith("file://") else s).expanduser()
    return (p.name if kind == "folder" else p.stem) or "source"


def open_source(spec: str | int, cfg: SourceConfig | None = None) -> FrameSource:
    """Open a video file, image file, image folder, camera index ("0" or 0) or stream URL.

    Raises :class:`SourceError` with a message naming the source when it cannot be opened.
    ``cfg`` gives camera width/height/fps, the nominal rate of image folders (``camera_fps``)
    and ``loop`` (seekable sources restart at the end).
    """
    cfg = cfg or SourceConfig()
    kind = source_kind(spec)
    s = str(spec).strip()
    if kind == "camera":
        try:
            source: FrameSource = CameraSource(int(s), cfg.width, cfg.height, cfg.camera_fps)
        except SourceError as exc:
            if Path(s).exists():     # digits name a camera; a file or folder so named needs ./
                raise SourceError(f"{exc} (to open the {'folder' if Path(s).is_dir() else 'file'} "
                                  f"{s!r}, write ./{s})") from exc
            raise
    elif kind == "stream":
        source = CaptureSource(s, redact_url(s), is_url=True)
    else:
        if s == "":
            raise SourceError("no source given (a video, image, folder, camera index or URL)")
        path = Path(s[7:] if s.lower().startswith("file://") else s).expanduser()
        if not path.exists():
            raise SourceError(f"file or folder not found: {path}")
        if kind == "folder":
            files = list_images(path)
            if not files:
                raise SourceError(f"folder {path} contains no images "
                                  f"(looked for {', '.join(IMAGE_EXTENSIONS)})")
            source = ImageListSource(files, str(path), cfg.camera_fps)
        elif kind == "image":
            source = ImageListSource([path], str(path), None)
        elif kind == "video":
            source = CaptureSource(str(path), str(path))
        else:
            raise SourceError(f"unsupported file type {path.suffix or '(no extension)'!r} for "
                              f"{path}; expected a video ({', '.join(VIDEO_EXTENSIONS)}) or an "
                              f"image ({', '.join(IMAGE_EXTENSIONS)})")
    source.loop = bool(cfg.loop) and source.seekable
    return source
