"""Guard against a reference-count bug of some PySide6 builds on Python < 3.12.

Some PySide6 / shiboken6 builds (seen with 6.12.0 on CPython 3.11) return ``None`` from every
void C++ method, and ``True``/``False`` from ``Signal.emit``, *without* taking a reference.  Each
call then steals one reference from the singleton; a window calling ``update()``, ``setText()``
or emitting signals a thousand times a second drains the ~60 000 references of ``None`` within
a minute and CPython aborts with ``Fatal Python error: none_dealloc`` (or ``bool_dealloc``).

From Python 3.12 on these singletons are immortal and the bug is harmless.  Before that,
:func:`install` checks whether the running PySide6 has the bug (a few hundred void calls, watching
``sys.getrefcount(None)``) and, only then, lifts each singleton's count to at least
:data:`FLOOR` and starts a timer that puts the stolen references back (``Py_IncRef``) whenever
a count falls below that floor again.  Over-counting a singleton is harmless (it is never
freed), under-counting is fatal, so the guard only ever adds.  At the leak rates of the window
(a few thousand per second) a floor of 100 000 checked every 100 ms leaves a wide margin.
"""
from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, QTimer, Signal

INTERVAL_MS = 100
FLOOR = 100_000
SINGLETONS = (None, True, False)
_py_incref = ctypes.pythonapi.Py_IncRef
_py_incref.argtypes = [ctypes.py_object]
_py_incref.restype = None

_guard: "RefGuard | None" = None


class _Probe(QObject):
    ping = Signal()


def has_refcount_bug(calls: int = 200) -> bool:
    """True when void PySide6 calls or signal emits steal references from None / True."""
    if sys.version_info >= (3, 12):
        return False
    probe = _Probe()
    none0, true0 = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(calls):
        probe.setObjectName("probe")    # a void C++ method
        probe.ping.emit()               # returns a bool
    lost = max(none0 - sys.getrefcount(None), true0 - sys.getrefcount(True))
    restore({None: none0, True: true0})
    return lost >= calls // 2


def restore(levels: dict) -> int:
    """Add references until every singleton is back at its level; returns how many were added."""
    added = 0
    for obj, level in levels.items():
        # getrefcount counts its own argument: compare like with like
        missing = level - sys.getrefcount(obj)
        for _ in range(max(0, missing)):
            _py_incref(obj)
        added += max(0, missing)
    return added


class RefGuard(QObject):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.levels = {obj: max(FLOOR, sys.getrefcount(obj)) for obj in SINGLETONS}
        self.restored = 0
        restore(self.levels)       # lift to the floor now (not counted as restored)
        self.timer = QTimer(self)
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self.check)
        self.timer.start()

    def check(self) -> None:
        self.restored += restore(self.levels)


def install(app: QObject) -> RefGuard | None:
    """Start the guard (once per process) if this PySide6 needs it; returns it or None."""
    global _guard
    if _guard is not None:
        return _guard
    if not has_refcount_bug():
        return None
    _guard = RefGuard(app)
    return _guard


def guard() -> RefGuard | None:
    return _guard
