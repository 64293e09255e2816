"""How ``humanpose run`` stops: after the frame in progress on a signal, quietly when its
stdout is closed."""
from __future__ import annotations

import os
import signal
import sys
import threading

SIGNAL_NAMES = {int(getattr(signal, n)): n for n in ("SIGINT", "SIGTERM", "SIGHUP")
                if hasattr(signal, n)}


class StopOnSignal:
    """While active (main thread only): SIGINT, SIGTERM and SIGHUP ask the run to stop after
    the frame in progress (:attr:`signum`), so no file is cut mid-frame and the video is closed
    properly; a second signal stops at once (KeyboardInterrupt).  A signal the process was
    started to ignore (``nohup``) stays ignored.  :attr:`on_signal` (e.g. the source's
    ``interrupt``) is called on the first signal, so a read waiting on a stalled stream
    returns at once; while :attr:`critical` (the final swap of the result files) a second
    signal is only recorded: that swap is a few renames that must not be cut short."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.on_signal = None
        self.critical = False
        self._old: dict[int, object] = {}
        self._depth = 0                    # nested uses share one installation

    def _handle(self, signum, _frame) -> None:
        if self.signum is not None:
            if not self.critical:
                raise KeyboardInterrupt
            return
        self.signum = signum
        if self.on_signal is not None:
            self.on_signal()

    def __enter__(self) -> "StopOnSignal":
        self._depth += 1
        if self._depth == 1 and threading.current_thread() is threading.main_thread():
            for sig in SIGNAL_NAMES:
                try:
                    if signal.getsignal(sig) is not signal.SIG_IGN:
                        self._old[sig] = signal.signal(sig, self._handle)
                except (ValueError, OSError):
                    pass
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            for sig, old in self._old.items():
                signal.signal(sig, old)
            self._old.clear()


def quiet_stdout() -> None:
    """stdout's reader is gone: send what is left (and the interpreter's flush at exit) to
    /dev/null, so the run ends without a BrokenPipeError traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
