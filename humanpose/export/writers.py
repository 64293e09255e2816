"""Result files written: keypoints CSV, JSON lines, annotated video and images (read back by
:mod:`.readers`).

CSV (one row per joint of every person of every frame; frames without persons have no rows)::

    frame,time_s,person,joint,x,y,score

``person`` is the track id when tracked (>= 0), else the person's index within its frame;
``joint`` is a :data:`humanpose.skeleton.JOINTS` name; x, y are frame pixels; a non-finite
value is written as an empty field.

JSON lines (one object per frame, also for frames without persons)::

    {"frame": 0, "time_s": 0.0, "persons": [{"id": 0, "track_id": -1, "centre": [x, y],
     "box": [x0, y0, x1, y1], "score": 0.93, "joints": [[x, y, s], ...14]}], "timings": {...}}

Non-finite numbers are written as ``null`` (strict JSON) and read back as NaN.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import warnings
from pathlib import Path

import cv2
import numpy as np

from ..estimator.result import PoseResult
from ..skeleton import JOINTS, NUM_JOINTS

CSV_COLUMNS = ("frame", "time_s", "person", "joint", "x", "y", "score")


class ExportError(RuntimeError):
    """A result file that cannot be written, or read back in the expected format."""


def person_ids(result: PoseResult) -> list[int]:
    """The ``person`` column of each person: its track id if tracked, else its index."""
    return [p.track_id if p.track_id >= 0 else k for k, p in enumerate(result.persons)]


def _num(v: float, digits: int) -> str:
    v = float(v)
    return f"{v:.{digits}f}" if math.isfinite(v) else ""


def _json_num(v: float, digits: int = 3) -> float | None:
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


def _open_for_writing(path: Path):
    """A raw (unbuffered) binary file: every write reaches the OS at once, so a failed write
    is seen where it happens and the file can be cut back to its last complete frame."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "wb", buffering=0)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _write_all(fh, data: bytes) -> None:
    """Write all of ``data`` to a raw file (a raw write may write less than asked)."""
    view = memoryview(data)
    while view:
        n = fh.write(view)
        if not n:
            raise OSError(errno.EIO, "the file system accepted no more bytes")
        view = view[n:]


def write_failed(path: Path, exc: OSError) -> ExportError:
    """The one-line error of a failed write (a full disk says so)."""
    why = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        why += " (the disk or your quota is full)"
    return ExportError(f"cannot write {path}: {why}")


class KeypointWriter:
    """Writes :class:`PoseResult` s to a keypoints CSV and/or a JSON-lines file.

    Each :meth:`write` sends one frame's rows to the OS in one go, so the files are complete up
    to the last frame even when the run is interrupted.  A failed write (disk full, I/O error)
    raises :class:`ExportError`; the files are then cut back to the last complete frame (no
    half row).  Use as a context manager or call :meth:`close`.
    """

    def __init__(self, csv_path: str | Path | None = None,
                 jsonl_path: str | Path | None = None) -> None:
        if csv_path is None and jsonl_path is None:
            raise ValueError("KeypointWriter needs a csv_path, a jsonl_path or both")
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self.jsonl_path = Path(jsonl_path) if jsonl_path is not None else None
        self._csv_file = self._jsonl = None
        self._good = {}          # file -> its size after the last complete frame
        self.frames = 0
        self.rows = 0
        try:
            if self.csv_path is not None:
                self._csv_file = _open_for_writing(self.csv_path)
                self._good[self._csv_file] = 0
                self._append(self._csv_file, self.csv_path,
                             (",".join(CSV_COLUMNS) + "\n").encode())
                self._commit()
            if self.jsonl_path is not None:
                self._jsonl = _open_for_writing(self.jsonl_path)
                self._good[self._jsonl] = 0
        except ExportError:
            self.close()
            raise

    def _append(self, fh, path: Path, data: bytes) -> None:
        """Write ``data``; on any failure cut every file back to its last complete frame."""
        try:
            _write_all(fh, data)
        except BaseException as exc:      # also a second Ctrl-C mid-write
            self._cut_back()
            if isinstance(exc, OSError):
                raise write_failed(path, exc) from None
            raise

    def _commit(self) -> None:
        """The files as they are now end with a complete frame."""
        self._before_last = dict(self._good)
        for fh in self._good:
            self._good[fh] = fh.tell()

    def drop_last(self) -> None:
        """Take the last frame out again (its annotated frame could not be written)."""
        if self.frames:
            self._good = self._before_last
            self._cut_back()
            self.frames -= 1

    def _cut_back(self) -> None:
        """Cut every file back to its last complete frame (a failed write may leave half a
        row, or one file a frame ahead of the other)."""
        for fh, size in self._good.items():
            try:
                os.ftruncate(fh.fileno(), size)
                fh.seek(size)
            except (OSError, ValueError):
                pass

    def write(self, result: PoseResult) -> None:
        ids = person_ids(result)
        if self._csv_file is not None:
            t = _num(result.timestamp, 4)
            buf = io.StringIO()
            rows = csv.writer(buf, lineterminator="\n")
            n = 0
            for pid, person in zip(ids, result.persons):
                for j in range(NUM_JOINTS):
                    x, y, s = person.joints[j]
                    rows.writerow((result.frame_index, t, pid, JOINTS[j],
                                   _num(x, 2), _num(y, 2), _num(s, 4)))
                    n += 1
            self._append(self._csv_file, self.csv_path, buf.getvalue().encode("utf-8"))
            rows_written = n
        else:
            rows_written = 0
        if self._jsonl is not None:
            obj = {
                "frame": int(result.frame_index),
                "time_s": _json_num(result.timestamp, 4),
                "persons": [{
                    "id": int(pid), "track_id": int(p.track_id),
                    "centre": [_json_num(v, 2) for v in p.centre[:2]],
                    "box": [_json_num(v, 2) for v in p.box[:4]],
                    "score": _json_num(p.centre_score, 4),
                    "joints": [[_json_num(x, 2), _json_num(y, 2), _json_num(s, 4)]
                               for x, y, s in np.asarray(p.joints, dtype=np.float64)],
                } for pid, p in zip(ids, result.persons)],
                "timings": {k: _json_num(v, 3) for k, v in result.timings.items()},
            }
            self._append(self._jsonl, self.jsonl_path,
                         (json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8"))
        self._commit()
        self.rows += rows_written
        self.frames += 1

    def close(self) -> None:
        """Close the files (never raises: every frame was already written in :meth:`write`)."""
        for f in (self._csv_file, self._jsonl):
            if f is not None and not f.closed:
                try:
                    f.close()
                except OSError:
                    pass

    def __enter__(self) -> "KeypointWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------ video / images
FOURCCS = {".mp4": "mp4v", ".avi": "MJPG", ".mov": "mp4v", ".mkv": "MJPG"}
H264_SUFFIXES = (".mp4", ".mov", ".mkv")
H264_OPTIONS = {"crf": "20", "preset": "veryfast"}   # real time on a laptop, near-lossless look


def h264_available() -> bool:
    """True when PyAV (the ``av`` package) is installed with an H.264 encoder (libx264)."""
    try:
        import av
    except ImportError:
        return False
    return "libx264" in av.codecs_available


class _H264:
    """H.264 (libx264, yuv420p) through PyAV: the MP4 that browsers and messaging apps play."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import av
        from fractions import Fraction
        self._av = av
        self.container = av.open(str(path), mode="w")
        try:
            self.stream = self.container.add_stream(
                "libx264", rate=Fraction(int(round(fps * 1000)), 1000).limit_denominator(1001))
            self.stream.width, self.stream.height = size
            self.stream.pix_fmt = "yuv420p"
            self.stream.options = dict(H264_OPTIONS)
        except Exception:
            self.container.close()
            raise

    def write(self, image: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(image, format="bgr24")
        self.container.mux(self.stream.encode(frame))

    def release(self) -> None:
        try:
            self.container.mux(self.stream.encode(None))     # the frames still in the encoder
        finally:
            self.container.close()


class VideoWriter:
    """Annotated-video output, opened on the first frame.

    ``.mp4`` (``.mov``, ``.mkv``) is H.264 through PyAV (``pip install av``) where it is
    installed: the file plays in browsers and messaging apps.  Without PyAV, or when it cannot
    open the file, ``cv2.VideoWriter`` writes it: ``.mp4`` with the mp4v codec (MPEG-4 Part 2),
    ``.avi`` MJPG (both work with opencv-python-headless); an explicit ``fourcc`` always goes to
    OpenCV.  When that cannot be opened either, it falls back to MJPG ``.avi`` beside it with a
    warning (:attr:`path` then names the file actually written); when that fails too it raises
    :class:`ExportError`.  :attr:`codec` names the codec written ("h264", "mp4v", "MJPG").
    Frames of another size than the first are resized (to an even size for H.264).
    """

    def __init__(self, path: str | Path, fps: float | None, fourcc: str | None = None) -> None:
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.fourcc = fourcc or FOURCCS.get(self.path.suffix.lower(), "mp4v")
        self._h264 = fourcc is None and self.path.suffix.lower() in H264_SUFFIXES
        self.codec: str | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.close_error: str | None = None
        self._writer = None

    def _open(self, size: tuple[int, int]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot write video {self.path}: {exc.strerror or exc}") from exc
        if self._h264 and h264_available():
            even = (max(2, size[0] - size[0] % 2), max(2, size[1] - size[1] % 2))
            try:
                self._writer = _H264(self.path, self.fps, even)
                self.size, self.codec = even, "h264"
                return
            except Exception as exc:  # noqa: BLE001 - any PyAV / FFmpeg failure: OpenCV instead
                warnings.warn(f"cannot write H.264 video {self.path} ({exc}); writing "
                              f"{self.fourcc} with OpenCV instead", RuntimeWarning, stacklevel=3)
        tries = [(self.path, self.fourcc)]
        if (self.path.suffix.lower(), self.fourcc) != (".avi", "MJPG"):
            tries.append((self.path.with_suffix(".avi"), "MJPG"))
        for path, fourcc in tries:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), self.fps, size)
            if writer.isOpened():
                if path != self.path or fourcc != self.fourcc:
                    warnings.warn(f"cannot write {self.fourcc} video {self.path}; "
                                  f"writing {fourcc} {path} instead", RuntimeWarning, stacklevel=3)
                self._writer, self.path, self.fourcc, self.size = writer, path, fourcc, size
                self.codec = fourcc
                return
            writer.release()
        raise ExportError(f"cannot write video {self.path} (codec {self.fourcc}, "
                          "nor MJPG .avi); check the folder is writable")

    def write(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        if self._writer is None:
            self._open((w, h))
        if (w, h) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        image = np.ascontiguousarray(image)
        if isinstance(self._writer, _H264):
            try:
                self._writer.write(image)
            except OSError as exc:          # PyAV's FFmpeg errors carry errno (ENOSPC...)
                raise write_failed(self.path, exc) from None
            except Exception as exc:  # noqa: BLE001 - another FFmpeg error: say which
                raise ExportError(f"cannot write frame {self.frames} to {self.path}: {exc}") \
                    from None
            self.frames += 1
            return
        ok = self._writer.write(image)
        if ok is False:          # OpenCV >= 5 says so (older ones return None and only log)
            raise ExportError(f"cannot write frame {self.frames} to {self.path} (FFmpeg failed "
                              "to write it: is the disk full?)")
        self.frames += 1

    def close(self) -> None:
        """Finish the file; never raises (a failure to write its last frames, a full disk, is
        kept in :attr:`close_error` and warned about)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.release()
            except Exception as exc:  # noqa: BLE001 - e.g. a full disk while flushing H.264
                self.close_error = (str(write_failed(self.path, exc)) if isinstance(exc, OSError)
                                    else f"cannot finish {self.path}: {exc}")
                warnings.warn(self.close_error, RuntimeWarning, stacklevel=2)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an image (format from the suffix; works with non-ASCII paths)."""
    path = Path(path)
    try:
        ok, data = cv2.imencode(path.suffix or ".png", image)
    except cv2.error:
        ok = False
    if not ok:
        raise ExportError(f"cannot encode image {path} (unsupported image type {path.suffix!r})")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # not ndarray.tofile: its C stdio buffer is flushed at fclose, whose failure (a full
        # disk) it ignores, leaving a short file with no error
        with open(path, "wb") as fh:
            fh.write(data.tobytes())
    except OSError as exc:
        try:
            path.unlink(missing_ok=True)      # no short image left behind
        except OSError:
            pass
        raise write_failed(path, exc) from None
    return path
