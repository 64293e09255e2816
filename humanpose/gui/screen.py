"""Where the window opens: its first geometry on the screen it is shown on.

A laptop's screen (1024x768, 1280x720) is used whole; a larger one to 85 %, at most
:data:`LARGEST`; the window's frame (title bar) is kept inside the screen's available area
(the screen without panels and docks).
"""
from __future__ import annotations

import logging

from PySide6.QtCore import QByteArray, QRect, QSize

log = logging.getLogger(__name__)

FULL_SCREEN_BELOW = QSize(1400, 900)   # a smaller screen's whole available area is used
LARGEST = QSize(1600, 1000)            # on larger screens: 85 % of it, at most this
PLOT_MIN_HEIGHT = 190        # the plot panel's first height: its 14 joints unscrolled
TITLE_BAR = 32               # room left for the window manager's frame until it is known


def fit_geometry(available: QRect, minimum: QSize, frame: QSize = QSize(0, TITLE_BAR)) -> QRect:
    """The window's first geometry (its client area) on a screen whose ``available`` area (the
    screen without panels and docks) is given: all of it on a small screen (a laptop's
    1024x768 or 1280x720), else 85 % of it up to :data:`LARGEST`, centred; never smaller than
    ``minimum``; ``frame``: the window manager's frame (its width and height together; the
    height taken to be the title bar above the client area)."""
    room = QSize(available.width() - frame.width(), available.height() - frame.height())
    w = room.width() if available.width() < FULL_SCREEN_BELOW.width() \
        else min(LARGEST.width(), int(room.width() * 0.85))
    h = room.height() if available.height() < FULL_SCREEN_BELOW.height() \
        else min(LARGEST.height(), int(room.height() * 0.85))
    w, h = max(w, minimum.width()), max(h, minimum.height())
    x = available.x() + frame.width() // 2 + max(0, (available.width() - w - frame.width()) // 2)
    y = available.y() + frame.height() + max(0, (available.height() - h - frame.height()) // 2)
    return QRect(x, y, w, h)


def keep_inside(window, available: QRect) -> None:
    """Move (and if need be shrink) ``window`` so that its frame lies inside the screen's
    ``available`` area: a remembered geometry from a larger screen, a window manager that
    placed it off the edge."""
    frame = window.frameGeometry()
    if available.contains(frame):
        return
    extra = frame.size() - window.geometry().size()
    minimum = window.minimumSizeHint()
    w = max(minimum.width(), min(window.width(), available.width() - extra.width()))
    h = max(minimum.height(), min(window.height(), available.height() - extra.height()))
    window.resize(w, h)
    x = min(max(frame.x(), available.x()), available.right() + 1 - w - extra.width())
    y = min(max(frame.y(), available.y()), available.bottom() + 1 - h - extra.height())
    window.move(max(available.x(), x), max(available.y(), y))


def restore_geometry(window, settings) -> bool:
    """Apply the remembered ``window/geometry`` of ``settings`` (None: nothing); True when one
    was.  A stale or hand-edited entry is ignored with a warning (settings.py's rule), never a
    failed start."""
    geometry = settings.value("window/geometry") if settings is not None else None
    if geometry is None:
        return False
    if isinstance(geometry, (QByteArray, bytes)) and window.restoreGeometry(geometry):
        return True
    log.warning("ignoring remembered setting window/geometry=%r", geometry)
    return False
