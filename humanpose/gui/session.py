"""The source session of the window: opening a source (file choosers, camera, URL) and what the
camera thread says about it (opened, failed, lost, rate); the info line under the source
buttons.

:class:`SourceSession` writes ``state.info`` and ``state.measured_fps``; it says ``interrupted``
before a source is replaced or lost (the recording and the analysis end) and ``opened(info)``
once a new one is open (the other parts start over).
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog

from ..sources import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ..sources.video import redact_url
from . import settings as remembered
from .camera_worker import SourceInfo
from .start import recent_sources, remember_recent


class SourceSession(QObject):
    """Opening sources and the camera thread's answers about them."""

    opened = Signal(object)      # SourceInfo: a new source is open
    interrupted = Signal()       # the source is being replaced or was lost

    def __init__(self, state, camera, config, status_line, controls, start_page,
                 dialog_parent=None) -> None:
        super().__init__()
        self.state, self.camera, self.config, self.status_line = state, camera, config, status_line
        self.settings = config.settings
        self.controls, self.start_page, self.dialog_parent = controls, start_page, dialog_parent
        self._described = None       # (shape, name) of the frame the info line describes
        self._described_frame = None

    def open_source(self, spec: str) -> None:
        """Open a video / image / folder / camera index / URL (errors end up in the window)."""
        if not spec:
            self.status_line.show_message("Give a source: a file, a folder, a camera index or a URL.",
                                     "error")
            return
        self.interrupted.emit()
        self.status_line.show_message(f"Opening {spec} …")
        self.camera.set_analysis(0)
        self.camera.open(spec, self.config.cfg.source)

    def open_camera(self) -> None:
        self.open_source(str(self.controls.source.camera_index.value()))

    def open_url(self) -> None:
        self.open_source(self.controls.source.url.text().strip())

    def last_folder(self, path: str | None = None) -> str:
        """The folder the file dialogs start in: the last one used (remembered), else ""."""
        if path:
            folder = str(Path(path).parent if Path(path).is_file() else Path(path))
            if self.settings is not None:
                self.settings.setValue("dialogs/folder", folder)
            return folder
        folder = self.settings.value("dialogs/folder") if self.settings is not None else None
        return folder if isinstance(folder, str) and Path(folder).is_dir() else ""

    def _choose_file(self, title: str, kind: str, extensions) -> None:
        """A file dialog starting in the last folder used; the chosen file is opened."""
        patterns = " ".join("*" + e for e in extensions)
        path, _ = QFileDialog.getOpenFileName(self.dialog_parent, title, self.last_folder(),
                                              f"{kind} ({patterns});;All files (*)")
        if path:
            self.last_folder(path)
            self.open_source(path)

    def choose_video(self) -> None:
        self._choose_file("Open video", "Videos", VIDEO_EXTENSIONS)

    def choose_image(self) -> None:
        self._choose_file("Open image", "Images", IMAGE_EXTENSIONS)

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self.dialog_parent, "Open image folder",
                                                self.last_folder())
        if path:
            self.last_folder(path)
            self.open_source(path)

    def focus_url(self) -> None:
        self.controls.setCurrentWidget(self.controls.widget(0))
        self.controls.source.url.setFocus()

    # ---------------------------------------------------------------- the camera thread's answers
    def on_opened(self, info: SourceInfo) -> None:
        self.state.info = info
        self.state.measured_fps = None
        self.status_line.model.opened(info.seekable and bool(info.frame_count))
        self.opened.emit(info)
        self.describe_source()
        hint = " Space plays, ← and → step." if info.images and (info.frame_count or 0) > 1 else ""
        self.status_line.show_message(f"Opened {info.name}.{hint}", "ok")
        self.status_line.render()
        # the next start opens it again; not a camera index, nor a URL with a password in it
        # (the settings file is plain text)
        if info.spec and not info.spec.isdigit() and redact_url(info.spec) == info.spec \
                and self.settings is not None:
            remembered.remember(self.settings, "source.source", info.spec)
            remember_recent(self.settings, info.spec)
            self.start_page.set_recent(recent_sources(self.settings, self.config.cfg.source.source))

    def describe_if_new(self, frame) -> None:
        """Describe ``frame`` when its size or name differs from the one described (each
        picture of a folder has its own size)."""
        if (frame.image.shape, frame.name) != self._described:
            self.describe_source(frame)

    def describe_source(self, frame=None) -> None:
        """The info line under the source buttons: the source's name, the size of ``frame`` (the
        picture on show: each image of a folder has its own; None: the first frame's), the frame
        rate (a live source's as measured from its frames' timestamps, with what it claims) and
        the frame count."""
        info, measured = self.state.info, self.state.measured_fps
        w, h = info.size if frame is None else (frame.image.shape[1], frame.image.shape[0])
        self._described = None if frame is None else (frame.image.shape, frame.name)
        self._described_frame = frame
        if info.is_live:
            claim = f"{info.fps:.1f}" if info.fps else "nothing"
            fps = (f"{measured:.1f} fps measured" if measured
                   else "fps being measured") + f" (the source says {claim})"
        else:
            fps = f"{info.fps:.1f} fps" if info.fps else "fps unknown"
        n = info.frame_count
        frames = f", {n} frame{'s' if n != 1 else ''}" if n else ""
        kind = " live" if info.is_live else (" seekable" if info.seekable else "")
        name = f"\n{frame.name}" if frame is not None and frame.name and frame.name != info.name else ""
        self.controls.source.name.setText(f"{info.name}{name}\n{w}x{h}, {fps}{frames}{kind}")

    def on_rate(self, fps: float) -> None:
        if self.state.info is not None and self.state.info.is_live:
            self.state.measured_fps = fps
            self.describe_source(self._described_frame)

    def on_open_failed(self, message: str) -> None:
        # opening is a transaction (CameraWorker._cmd_open): the current source, its cache and
        # its plot are still there, only the message says what went wrong
        self.status_line.show_message(f"Cannot open the source: {message}", "error")

    def on_lost(self, message: str) -> None:
        self.interrupted.emit()
        info = self.state.info
        again = "seek back" if info is not None and info.seekable else "open it again"
        self.status_line.show_message(f"Source lost: {message}. Open another source or {again}.",
                                 "error")
