"""OpenCV's and FFmpeg's own log lines, quiet unless asked for.

Lines such as ``[ WARN:0@0.1] global cap_v4l.cpp ... can't open camera by index`` or
``[mov,mp4,m4a,3gp,3g2,mj2 @ 0x...] moov atom not found`` only repeat, in another form, what
the window's message line and the commands' own error lines already say; ``--verbose`` lets
them through (for a bug report).  A level the user set in the environment is kept.
"""
from __future__ import annotations

import os
import sys


def quiet_native_logs(verbose: bool = False) -> None:
    """Silence OpenCV's and FFmpeg's logging (``verbose``: leave both at their defaults).

    Takes effect for OpenCV at once (also when it is already imported) and for FFmpeg before
    the first video is opened."""
    if verbose:
        return
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")     # AV_LOG_QUIET
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and os.environ["OPENCV_LOG_LEVEL"].upper() == "SILENT":
        try:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        except AttributeError:       # a build without cv2.utils.logging: the variable still works
            pass
