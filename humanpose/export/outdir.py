"""The output folder of a run: a lock, a staging folder, an atomic swap, ``run.json``
(its content and the names it owns: :mod:`.manifest`).

A run never writes its results under their final names while it runs:

1. :meth:`OutputFolder.acquire` locks the folder (``.humanpose-run.lock``, an OS file lock that
   dies with its process, so a killed run never leaves the folder locked) and refuses when
   another run holds it (:class:`FolderBusy` names that run's process).  It then tidies what a
   killed run left (:meth:`OutputFolder.recover`): a whole result caught mid-swap
   (``.ready-*``) is swapped in, a staging folder of a run killed while it ran (``.partial-*``)
   is removed;
2. the writers write into the staging folder ``.partial-<pid>-<random>/`` inside the output
   folder (same file system: the renames below are atomic), where ``run.json``'s space is
   reserved at the start (a disk that fills up during the run still takes it);
3. :meth:`OutputFolder.finish` writes ``run.json`` into the staging folder (what the files hold,
   complete or not, why the run ended, the files it owns and those of the previous run it
   replaces), renames the staging folder to ``.ready-*`` (from here the new result is whole,
   and a killed process's next run finishes the swap), moves the previous run's files into it
   (``.old-<name>``), the new files into place (one rename each: ``annotated/`` moves as one
   folder) and ``run.json`` last, then removes the ready folder with the old files.

Only the files a previous run lists as its own (``owned`` in its ``run.json``) are replaced;
every other file in the folder is the user's and stays.  A result name taken by a user's file
is written beside it (``keypoints.humanpose.csv``, ``run.humanpose.json``...), and said so.
So at any moment the folder holds the previous result or the new one (complete or with
``"complete": false``), and the files beside a ``run.json`` are the ones it describes; only a
``kill -9`` in the few renames of the swap leaves it between the two, and the next run into
the folder completes that swap before it starts.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .manifest import (MANIFEST_NAME, alt_name, canonical_name, find_manifest, load_json,
                       owned_names)
from .writers import ExportError

LOCK_NAME = ".humanpose-run.lock"
STAGE_PREFIX = ".partial-"       # a run's files while it runs
READY_PREFIX = ".ready-"         # a whole new result, being swapped in
OLD_PREFIX = ".old-"             # inside a ready folder: the previous result's files
MANIFEST_RESERVE = 16384     # bytes of run.json written when the run starts: on a disk that fills
                             # up during the run, it is overwritten in place, needing no new space
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif _exists(path):
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


@dataclass
class Plan:
    """Where the staged files go: ``moves`` canonical -> final name (run.json last), the previous
    result's names they replace, and what to tell the user."""
    moves: dict[str, str]
    replaced: list[str]
    notes: list[str] = field(default_factory=list)

    def final(self, name: str) -> str:
        return self.moves.get(name, name)


class OutputFolder:
    """One run's hold on its output folder; see the module docstring for the protocol."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.stage: Path | None = None
        self.notes: list[str] = []           # what acquire / finish did that the user should know
        self._lock_fd: int | None = None
        self._created = False            # the folder did not exist before this run

    # ------------------------------------------------------------------------------ lock
    def acquire(self, source: str = "") -> "OutputFolder":
        """Lock the folder (creating it), finish or clear what a killed run left, and make the
        staging folder.  Raises FolderBusy when another run holds it, ExportError when it
        cannot be created or written."""
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
            self.recover()
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

    def recover(self) -> None:
        """(Locked.)  A ready folder left by a process killed mid-swap: finish the swap (it
        holds a whole result); staging folders of runs killed while they ran: remove."""
        for ready in sorted(self.path.glob(READY_PREFIX + "*")):
            if (ready / MANIFEST_NAME).exists():
                manifest = load_json(ready / MANIFEST_NAME) or {}
                finals = [n for n in manifest.get("owned") or [] if isinstance(n, str)]
                moves = {canonical_name(n): n for n in finals
                         if canonical_name(n) != MANIFEST_NAME}
                moves[MANIFEST_NAME] = next((n for n in finals if canonical_name(n) ==
                                             MANIFEST_NAME), MANIFEST_NAME)     # last
                self._swap(ready, Plan(moves, list(manifest.get("replaced") or [])))
                self.notes.append(f"finished moving into place the result of a run stopped "
                                  f"while it did so ({manifest.get('source', '?')}, "
                                  f"{manifest.get('frames_written', '?')} frame(s))")
            shutil.rmtree(ready, ignore_errors=True)
        for stale in self.path.glob(STAGE_PREFIX + "*"):   # a run killed while it ran
            _remove(stale)

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
            if self.stage.name.startswith(STAGE_PREFIX):   # never a whole result (.ready-)
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

    def previous(self) -> tuple[Path, dict] | None:
        """The previous run's manifest here, if any."""
        return find_manifest(self.path)

    def plan(self) -> Plan:
        """Where each staged file goes: its own name, unless a file there is not the previous
        run's (the user's): then beside it (``alt_name``).  Files the previous run wrote are
        replaced; the rest stay, and the plan's notes say so."""
        assert self.stage is not None, "acquire() first"
        previous = self.previous()
        owned: set[str] = set()
        if previous is not None:
            path, data = previous
            owned = {n for n in owned_names(data, path.name) if _exists(self.path / n)}
            images = data["files"].get("images")
            if images and images.rstrip("/") in owned and not self._untouched(
                    self.path / images.rstrip("/"), data):
                owned.discard(images.rstrip("/"))
        notes = []
        staged = sorted(p.name for p in self.stage.iterdir() if p.name != MANIFEST_NAME)
        moves: dict[str, str] = {}
        for name in staged + [MANIFEST_NAME]:
            final, taken = name, []
            while _exists(self.path / final) and final not in owned:
                taken.append(str(self.path / final))
                final = alt_name(name, len(taken))
            if taken:
                is_, it = ("is", "it") if len(taken) == 1 else ("are", "them")
                notes.append(f"{', '.join(taken)} {is_} not humanpose's: left {it}, and wrote "
                             f"{self.path / final} beside {it}")
            moves[name] = final
        theirs = sorted(p.name + ("/" if p.is_dir() else "") for p in self.path.iterdir()
                        if not p.name.startswith(".") and p.name not in owned
                        and p.name not in moves.values())
        if theirs:
            shown = ", ".join(theirs[:6]) + (", ..." if len(theirs) > 6 else "")
            notes.append(f"left {len(theirs)} file(s) in {self.path} that humanpose did not "
                         f"write: {shown}")
        return Plan(moves, sorted(owned), notes)

    @staticmethod
    def _untouched(folder: Path, manifest: dict) -> bool:
        """Whether a previous run's annotated-image folder holds only what it wrote (its images,
        as many as it wrote); a file the user put in makes the folder the user's."""
        try:
            entries = list(folder.iterdir())
        except OSError:
            return False
        expected = manifest.get("images_written", manifest.get("frames_written"))
        return all(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in entries) and \
            (expected is None or len(entries) <= int(expected))

    def finish(self, manifest: dict, plan: Plan | None = None) -> Path:
        """Write ``run.json`` and swap the staged files in for the previous run's (see the
        module docstring); returns the path of ``run.json``.  Raises ExportError."""
        assert self.stage is not None, "acquire() first"
        plan = plan or self.plan()
        manifest = dict(manifest, owned=sorted(plan.moves.values()), replaced=plan.replaced)
        staged_manifest = self.stage / MANIFEST_NAME
        data = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
        try:
            # over the reserved bytes (no new space needed on a full disk), then cut to size
            with open(staged_manifest, "r+b" if staged_manifest.exists() else "wb") as fh:
                fh.write(data)
                fh.truncate(len(data))
                fh.flush()
                os.fsync(fh.fileno())
            ready = self.path / (READY_PREFIX + self.stage.name[len(STAGE_PREFIX):])
            os.rename(self.stage, ready)           # from here: a whole result
            self.stage = ready
            _fsync_dir(self.path)
        except OSError as exc:
            raise ExportError(f"cannot finish the results in {self.path}: "
                              f"{exc.strerror or exc}") from None
        try:
            self._swap(ready, plan)
        except OSError as exc:
            undone = self._undo(ready, plan)
            raise ExportError(f"cannot move the results into {self.path}: "
                              f"{exc.strerror or exc}" + ("; the previous result stays"
                                                          if undone else "")) from None
        self.stage = None
        shutil.rmtree(ready, ignore_errors=True)   # the previous result's files
        self.notes.extend(plan.notes)
        return self.path / plan.final(MANIFEST_NAME)

    def _swap(self, ready: Path, plan: Plan) -> None:
        """The previous result's files into ``ready`` (as .old-<name>), the new ones out of it
        into place, run.json last.  Each step is one rename and is skipped when done, so a
        swap cut short by a kill is finished by running it again (:meth:`recover`)."""
        old_manifest = [n for n in plan.replaced if canonical_name(n) == MANIFEST_NAME]
        for name in old_manifest + [n for n in plan.replaced if n not in old_manifest]:
            kept = ready / (OLD_PREFIX + name)
            if _exists(self.path / name) and not _exists(kept):
                os.rename(self.path / name, kept)
        for name, final in plan.moves.items():     # run.json is the last of them
            if _exists(ready / name):
                os.rename(ready / name, self.path / final)
        _fsync_dir(self.path)

    def _undo(self, ready: Path, plan: Plan) -> bool:
        """A swap that failed half-way (a rename refused): the new files back into ``ready``
        (then removed) and the previous ones back into place.  True when that worked."""
        try:
            for name, final in plan.moves.items():
                if not _exists(ready / name) and _exists(self.path / final):
                    os.rename(self.path / final, ready / name)
            for name in plan.replaced:
                if _exists(ready / (OLD_PREFIX + name)) and not _exists(self.path / name):
                    os.rename(ready / (OLD_PREFIX + name), self.path / name)
            stage = self.path / (STAGE_PREFIX + ready.name[len(READY_PREFIX):])
            os.rename(ready, stage)                # no longer a result to finish: removed
            self.stage = stage
            return True
        except OSError:
            return False


def read_manifest(folder: str | Path) -> dict:
    """The ``run.json`` of a result folder (ExportError when missing or not JSON)."""
    found = find_manifest(folder)
    if found is not None:
        return found[1]
    path = Path(folder) / MANIFEST_NAME
    if list(Path(folder).glob(READY_PREFIX + "*")):
        raise ExportError(f"no {MANIFEST_NAME} in {folder}: a run was killed while it moved its "
                          "result into place; the next `humanpose run` into this folder "
                          "finishes that")
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"no {MANIFEST_NAME} in {folder} (not a humanpose result folder, or "
                          "its run was killed before it ended)") from None
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read {path}: {exc}") from None
    raise ExportError(f"{path} is not a humanpose run.json")
