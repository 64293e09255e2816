"""What the window's parts share about the moment (:class:`WindowState`): one plain object,
passed to each part that reads it; each field is written by one part only."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..export.writers import VideoWriter
    from .camera_worker import Captured, SourceInfo


@dataclass
class WindowState:
    info: SourceInfo | None = None          # the open source (written by SourceSession)
    measured_fps: float | None = None       # a live source's frame rate, as measured (SourceSession)
    playing: bool = False                   # (Player)
    analysing: bool = False                 # "Analyse whole file" under way (Player)
    recorder: VideoWriter | None = None     # the recording under way (Output)
    latest: tuple[Captured, object] | None = None   # newest (frame, result) pair (Display)

    def source_fps(self) -> float | None:
        """Frames per second of the current source: a live one's as measured (once known)."""
        if self.info is None:
            return None
        return (self.measured_fps or self.info.fps) if self.info.is_live else self.info.fps
