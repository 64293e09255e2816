#!/usr/bin/env python3
"""Start the humanpose desktop application from this checkout.

Double-click this file, or run ``python run_humanpose.py [config.yml] [--source VIDEO]``.
Nothing needs to be installed beyond the requirements: the checkout is put on ``sys.path``.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def _missing(exc: ImportError) -> int:
    message = (f"humanpose cannot start: {exc}.\n"
               f"Install the requirements first:\n  {sys.executable} -m pip install -r "
               f"{os.path.join(HERE, 'requirements.txt')}")
    print(message, file=sys.stderr)
    try:  # started by double-click: there may be no console to read stderr
        import tkinter
        from tkinter import messagebox
        root = tkinter.Tk()
        root.withdraw()
        messagebox.showerror("humanpose", message)
    except Exception:  # noqa: BLE001
        pass
    return 1


if __name__ == "__main__":
    try:
        from humanpose.gui.app import run
        # what the window needs, loaded now: a missing package (or a Qt that cannot load its
        # system libraries) is the message above, not a traceback nobody sees after a double-click
        import cv2, numpy, pyqtgraph  # noqa: E401, F401  (torch: the window reports it)
        import PySide6.QtGui, PySide6.QtWidgets  # noqa: E401, F401
    except ImportError as exc:
        sys.exit(_missing(exc))
    sys.exit(run())
