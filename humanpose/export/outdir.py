"""The output folder of a run: a lock, a staging folder, promotion into place, ``run.json``.

A run never writes its results under their final names while it runs:

1. :meth:`OutputFolder.acquire` locks the folder (``.humanpose-run.lock``, an OS file lock that
   dies with its process, so a killed run never leaves the folder locked) and refuses when
   another run holds it (:class:`FolderBusy` names that run's process).  Staging folders left by
   a killed run (``.partial-*``) are removed;
2. the writers write into the staging folder ``.partial-<pid>-<random>/`` inside the output
   folder (same file system: the renames below are atomic), where ``run.json``'s space is
   reserved at the start (a disk that fills up during the run still takes it);
3. :meth:`OutputFolder.finish` writes ``run.json`` (what the files hold, complete or not, why
   the run ended), removes the previous run's result files (``RESULT_NAMES``: a rerun leaves no
   stale annotated image behind) and renames the staged files into place, ``run.json`` last.

So the previous result stays whole until the new run ends (killed with ``kill -9``, the staging
folder is all that is lost), and the files beside a ``run.json`` are always the ones it
describes.  A run that ends early (Ctrl-C, SIGTERM, a truncated video, a write error) is
promoted too, with ``"complete": false`` in its ``run.json``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from .writers import ExportError

LOCK_NAME = ".humanpose-run.lock"
STAGE_PREFIX = ".partial-"
MANIFEST_NAME = "run.json"
MANIFEST_RESERVE = 16384     # bytes of run.json written when the run starts: on a disk that fills
                             # up during the run, it is overwritten in place, needing no new space
# everything a run writes into its folder (other files there are left alone)
RESULT_NAMES = ("keypoints.csv", "keypoints.jsonl", "annotated.mp4", "annotated.avi",
                "annotated", MANIFEST_NAME)

try:                         # POSIX
    import fcntl
except ImportError:          # pragma: no cover - Windows
    fcntl = None
    import msvcrt


class FolderBusy(ExportError):
    """Another run holds the output folder's lock."""

    def __init__(self, folder: Path, holder: dict) -> None:
        who = f"pid {holder.get('pid', '?')}"
        if holder.get("source"):
            who += f", source {holder['source']}"
        if holder.get("started"):
            who += f", since {holder['started']}"
        super().__init__(f"output folder {folder} is in use by another humanpose run ({who}); "
                         "wait for it to end or choose another --out")
        self.folder, self.holder = folder, holder


def config_hash(cfg) -> str:
    """sha256 of the config's values (keys sorted): two runs with one hash used one config."""
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:          # pragma: no cover - Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class OutputFolder:
    """One run's hold on its output folder; see the module docstring for the protocol."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.stage: Path | None = None
        self._lock_fd: int | None = None
        self._created = False            # the folder did not exist before this run

    # ------------------------------------------------------------------------------ lock
    def acquire(self, source: str = "") -> "OutputFolder":
        """Lock the folder (creating it) and make the staging folder.  Raises FolderBusy when
        another run holds it, ExportError when it cannot be created or written."""
        try:
            self._created = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
            lock = self.path / LOCK_NAME
            while True:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
                if not self._try_lock(fd):
                    holder = self._read_holder(fd)
                    os.close(fd)
                    raise FolderBusy(self.path, holder)
                # the holder before us may have removed the lock file after we opened it:
                # then our lock is on a dead file, and another run may lock the new one
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(lock))
                except FileNotFoundError:
                    same = False
                if same or fcntl is None:
                    break
                os.close(fd)
            self._lock_fd = fd
            info = json.dumps({"pid": os.getpid(), "source": source, "started": _now()})
            os.ftruncate(fd, 0)
            os.write(fd, info.encode("utf-8"))
            for stale in self.path.glob(STAGE_PREFIX + "*"):   # left by a killed run
                _remove(stale)
            self.stage = Path(tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-",
                                               dir=self.path))
            with open(self.stage / MANIFEST_NAME, "wb") as fh:     # its space, reserved
                fh.write(b" " * (MANIFEST_RESERVE - 1) + b"\n")
        except FolderBusy:
            self._cleanup_created()
            raise
        except OSError as exc:
            self.release()
            raise ExportError(f"cannot write into the output folder {self.path}: "
                              f"{exc.strerror or exc}") from None
        return self

    @staticmethod
    def _try_lock(fd: int) -> bool:
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:                                          # pragma: no cover - Windows
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    @staticmethod
    def _read_holder(fd: int) -> dict:
        try:
            data = os.pread(fd, 4096, 0) if hasattr(os, "pread") else b""
            holder = json.loads(data.decode("utf-8"))
            return holder if isinstance(holder, dict) else {}
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        """Remove the staging folder if still there, and unlock (removing the lock file)."""
        if self.stage is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            self.stage = None
        if self._lock_fd is not None:
            if fcntl is not None:         # removed while still locked: see acquire
                try:
                    (self.path / LOCK_NAME).unlink()
                except OSError:
                    pass
            os.close(self._lock_fd)
            self._lock_fd = None

    def abandon(self) -> None:
        """The run wrote nothing: release, and remove the folder if this run created it."""
        self.release()
        self._cleanup_created()

    def _cleanup_created(self) -> None:
        if self._created:
            try:
                self.path.rmdir()            # only when empty
            except OSError:
                pass

    # --------------------------------------------------------------------------- results
    def staged(self, name: str) -> Path:
        assert self.stage is not None, "acquire() first"
        return self.stage / name

    def final(self, name: str) -> Path:
        return self.path / name

    def finish(self, manifest: dict) -> Path:
        """Write ``run.json`` and move the staged files into place (replacing the previous
        run's result files); returns the path of ``run.json``.  Raises ExportError."""
        assert self.stage is not None, "acquire() first"
        staged_manifest = self.stage / MANIFEST_NAME
        data = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
        try:
            # over the reserved bytes (no new space needed on a full disk), then cut to size
            with open(staged_manifest, "r+b" if staged_manifest.exists() else "wb") as fh:
                fh.write(data)
                fh.truncate(len(data))
                fh.flush()
                os.fsync(fh.fileno())
            # the old run.json goes first: a crash below never leaves it describing new files
            for name in (MANIFEST_NAME,) + RESULT_NAMES[:-1]:
                _remove(self.path / name)
            for item in sorted(self.stage.iterdir()):
                if item.name != MANIFEST_NAME:
                    os.replace(item, self.path / item.name)
            os.replace(staged_manifest, self.path / MANIFEST_NAME)
            self.stage.rmdir()
            self.stage = None
            _fsync_dir(self.path)
        except OSError as exc:
            raise ExportError(f"cannot finish the results in {self.path}: "
                              f"{exc.strerror or exc}") from None
        return self.path / MANIFEST_NAME


def read_manifest(folder: str | Path) -> dict:
    """The ``run.json`` of a result folder (ExportError when missing or not JSON)."""
    path = Path(folder) / MANIFEST_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"no {MANIFEST_NAME} in {folder} (not a humanpose result folder, or "
                          "its run was killed before it ended)") from None
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read {path}: {exc}") from None
