"""The start page: what the window shows while no source is open (open a video, an image
folder, the webcam, or a recent file), instead of opening a camera nobody asked for.

The recent sources are remembered in the settings (``recent/sources``, newest first); only
files and folders that still exist are offered.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QVBoxLayout, QWidget

RECENT_KEY = "recent/sources"
MAX_RECENT = 5


def recent_sources(settings: QSettings | None, also: str = "") -> list[str]:
    """The remembered sources that are still files or folders, newest first; ``also`` (the
    config's ``source.source``) after them when it is a file or folder not among them."""
    value = settings.value(RECENT_KEY) if settings is not None else None
    if isinstance(value, str):           # QSettings gives a one-item list back as a string
        value = [value]
    if not isinstance(value, list):
        value = []
    out = [v for v in value if isinstance(v, str) and v and Path(v).exists()][:MAX_RECENT]
    if also and not also.isdigit() and Path(also).exists() and \
            str(Path(also).resolve()) not in out and len(out) < MAX_RECENT:
        out.append(str(Path(also).resolve()))
    return out


def remember_recent(settings: QSettings | None, spec: str) -> None:
    """Put ``spec`` (a file or folder) first in the recent sources."""
    if settings is None or not Path(spec).exists():
        return
    spec = str(Path(spec).resolve())
    value = settings.value(RECENT_KEY)
    old = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    settings.setValue(RECENT_KEY, [spec] + [v for v in old if v != spec][:MAX_RECENT - 1])


class StartPage(QWidget):
    """Big buttons for the first step; ``open_requested(spec)`` for a recent source."""

    open_requested = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("start")
        title = QLabel("<h2>humanpose</h2>Open something to estimate poses on:")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.open_video = QPushButton("Open a video…")
        self.open_folder = QPushButton("Open an image folder…")
        self.open_image = QPushButton("Open an image…")
        self.open_camera = QPushButton("Webcam")
        for b in (self.open_video, self.open_folder, self.open_image, self.open_camera):
            b.setMinimumHeight(34)
        grid = QGridLayout()
        grid.addWidget(self.open_video, 0, 0)
        grid.addWidget(self.open_folder, 0, 1)
        grid.addWidget(self.open_image, 1, 0)
        grid.addWidget(self.open_camera, 1, 1)
        self.recent_title = QLabel("Recent:")
        self.recent_box = QVBoxLayout()
        self.recent_buttons: list[QPushButton] = []
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(title)
        layout.addLayout(grid)
        layout.addWidget(self.recent_title)
        layout.addLayout(self.recent_box)
        layout.addStretch(2)
        layout.setContentsMargins(24, 12, 24, 12)

    def set_recent(self, specs: list[str]) -> None:
        for b in self.recent_buttons:
            self.recent_box.removeWidget(b)
            b.deleteLater()
        self.recent_buttons = []
        for spec in specs:
            path = Path(spec)
            b = QPushButton(f"{path.name}  ({path.parent})" if path.name else spec)
            b.setToolTip(spec)
            b.setStyleSheet("text-align: left; padding: 4px 8px;")
            b.clicked.connect(lambda _=False, s=spec: self.open_requested.emit(s))
            self.recent_box.addWidget(b)
            self.recent_buttons.append(b)
        self.recent_title.setVisible(bool(specs))
