"""Source session of the main window: opening a source (file choosers, camera, URL) and what the
camera thread says about it (opened, failed, lost, ended).

A mixin of :class:`~humanpose.gui.main_window.MainWindow`; it uses the window's ``camera``,
``cache``, ``controls``, ``playback``, ``settings`` and the other mixins' methods.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from ..sources import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ..sources.video import redact_url
from . import settings as remembered
from .start import recent_sources, remember_recent
from .camera_worker import SourceInfo


class SourceSession:
    """Opening sources and the camera thread's answers (mixin of MainWindow)."""

    def open_source(self, spec: str) -> None:
        """Open a video / image / folder / camera index / URL (errors end up in the window)."""
        if not spec:
            self.show_message("Give a source: a file, a folder, a camera index or a URL.", "error")
            return
        self.set_recording(False)
        self._stop_analysis(finished=False, resume=False)
        self.show_message(f"Opening {spec} …")
        self.camera.set_analysis(0)
        self.camera.open(spec, self.cfg.source)

    def _last_folder(self, path: str | None = None) -> str:
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
        path, _ = QFileDialog.getOpenFileName(self, title, self._last_folder(),
                                              f"{kind} ({patterns});;All files (*)")
        if path:
            self._last_folder(path)
            self.open_source(path)

    def choose_video(self) -> None:
        self._choose_file("Open video", "Videos", VIDEO_EXTENSIONS)

    def choose_image(self) -> None:
        self._choose_file("Open image", "Images", IMAGE_EXTENSIONS)

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open image folder", self._last_folder())
        if path:
            self._last_folder(path)
            self.open_source(path)

    def _focus_url(self) -> None:
        self.controls.setCurrentWidget(self.controls.widget(0))
        self.controls.source.url.setFocus()

    def _on_opened(self, info: SourceInfo) -> None:
        self.info = info
        self.latest = None
        seekable = info.seekable and bool(info.frame_count)
        self.status.opened(seekable)
        self.picture.setCurrentWidget(self.image_view)
        self.plot.set_data([], -1, self.cfg.estimator.joint_threshold)   # not the last clip's axis
        self._plot_version = -1
        self._seen_ids.clear()
        self._reset_person_choice()
        self.measured_fps = None
        self._describe_source()
        self.setWindowTitle(f"humanpose – {info.name}")
        p = self.playback
        p.seek.blockSignals(True)
        p.seek.setRange(0, max(0, (info.frame_count or 1) - 1))
        p.seek.setValue(0)
        p.seek.blockSignals(False)
        for w_ in (p.seek, p.back, p.forward, p.analyse, p.speed):
            w_.setEnabled(seekable)
        p.progress.setValue(0)
        p.progress.setVisible(seekable)      # a stream's share of frames cached is not known
        hint = " Space plays, ← and → step." if info.images and (info.frame_count or 0) > 1 else ""
        self.show_message(f"Opened {info.name}.{hint}", "ok")
        self._render_status()
        # the next start opens it again; not a camera index, nor a URL with a password in it
        # (the settings file is plain text)
        if info.spec and not info.spec.isdigit() and redact_url(info.spec) == info.spec \
                and self.settings is not None:
            remembered.remember(self.settings, "source.source", info.spec)
            remember_recent(self.settings, info.spec)
            self.start_page.set_recent(recent_sources(self.settings, self.cfg.source.source))

    def _describe_source(self, frame=None) -> None:
        """The info line under the source buttons: the source's name, the size of ``frame`` (the
        picture on show: each image of a folder has its own; None: the first frame's), the frame
        rate (a live source's as measured from its frames' timestamps, with what it claims) and
        the frame count."""
        info = self.info
        w, h = info.size if frame is None else (frame.image.shape[1], frame.image.shape[0])
        self._described = None if frame is None else (frame.image.shape, frame.name)
        if info.is_live:
            claim = f"{info.fps:.1f}" if info.fps else "nothing"
            fps = (f"{self.measured_fps:.1f} fps measured" if self.measured_fps
                   else "fps being measured") + f" (the source says {claim})"
        else:
            fps = f"{info.fps:.1f} fps" if info.fps else "fps unknown"
        n = info.frame_count
        frames = f", {n} frame{'s' if n != 1 else ''}" if n else ""
        kind = " live" if info.is_live else (" seekable" if info.seekable else "")
        name = f"\n{frame.name}" if frame is not None and frame.name and frame.name != info.name else ""
        self.controls.source.name.setText(f"{info.name}{name}\n{w}x{h}, {fps}{frames}{kind}")

    def source_fps(self) -> float | None:
        """Frames per second of the current source: a live one's as measured (once known)."""
        if self.info is None:
            return None
        return (self.measured_fps or self.info.fps) if self.info.is_live else self.info.fps

    def _on_rate(self, fps: float) -> None:
        if self.info is not None and self.info.is_live:
            self.measured_fps = fps
            self._describe_source(self._shown_frame())

    def _on_open_failed(self, message: str) -> None:
        # opening is a transaction (CameraWorker._cmd_open): the current source, its cache and
        # its plot are still there, only the message says what went wrong
        self.show_message(f"Cannot open the source: {message}", "error")

    def _on_lost(self, message: str) -> None:
        self._stop_analysis(finished=False, resume=False)
        self.set_recording(False)
        again = "seek back" if self.info is not None and self.info.seekable else "open it again"
        self.show_message(f"Source lost: {message}. Open another source or {again}.", "error")

    def _on_ended(self, last: int, run: int) -> None:
        if self.analysing:
            # an end of file queued before this run began (e.g. of the playback that was under way
            # when Analyse was pressed) must neither finish the run nor replace its message
            if run == self._analysis_run:
                # the camera is through; done once the estimator has the last frame too
                self._analysis_last = last
                self._maybe_finish_analysis()
            return
        self.status.end(last)
        self.show_message(f"End of file (frame {last}). Press Play to start again.", "info")
        self._render_status()
