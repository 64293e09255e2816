"""The window's two worker threads: the camera worker and the estimator worker, each moved to
its own QThread, started together and stopped together within a deadline."""
from __future__ import annotations

import logging
import time

from PySide6.QtCore import Qt, QThread

log = logging.getLogger(__name__)

UNFINISHED: list[tuple] = []    # (thread, worker) that did not stop when their window closed


class WorkerThreads:
    """``camera`` and ``estimator`` (workers with ``run``, ``stop`` and ``finished``) in the
    QThreads :attr:`camera_thread` and :attr:`estimator_thread` (children of ``parent``)."""

    def __init__(self, camera, estimator, parent) -> None:
        self.pairs = []
        for worker, name in ((camera, "humanpose-camera"), (estimator, "humanpose-estimator")):
            thread = QThread(parent)
            thread.setObjectName(name)
            worker.moveToThread(thread)
            thread.started.connect(worker.run)
            # QThread.quit is thread-safe: call it directly from the worker thread (a queued
            # call would wait for the GUI thread, which may itself be waiting in stop())
            worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
            self.pairs.append((thread, worker))
        self.camera_thread, self.estimator_thread = (t for t, _ in self.pairs)

    def start(self) -> None:
        for thread, _ in self.pairs:
            thread.start()

    def running(self) -> bool:
        return any(thread.isRunning() for thread, _ in self.pairs)

    def stop(self, timeout_ms: int) -> bool:
        """Stop both workers, waiting at most ``timeout_ms`` for their threads; True when they
        ended.  A thread that did not end (a stream read that blocks) is left running, kept
        from destruction in :data:`UNFINISHED`."""
        for thread, worker in self.pairs:
            worker.stop()
        for thread, _ in self.pairs:
            thread.quit()   # leaves the thread's event loop as soon as the worker loop returns
        deadline = time.perf_counter() + timeout_ms / 1000.0
        ok = True
        for thread, worker in self.pairs:
            left = max(1, int((deadline - time.perf_counter()) * 1000))
            if not thread.wait(left):
                ok = False
                log.warning("%s did not stop within %d ms; not waiting for it",
                            thread.objectName(), timeout_ms)
                # a running QThread (and its worker) must not be destroyed with the window
                thread.setParent(None)
                UNFINISHED.append((thread, worker))
        return ok
