"""``python -m humanpose install-desktop``: a freedesktop launcher for this checkout.

Writes ``$XDG_DATA_HOME/applications/humanpose.desktop`` (default ``~/.local/share``) from the
template ``resources/humanpose.desktop.in``, with ``Exec`` running this checkout's
``run_humanpose.py`` with the Python interpreter that ran this command (the one that has the
requirements), and the icon from ``resources/``.  No Qt needed; no root needed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from ..config import PROJECT_ROOT

TEMPLATE = PROJECT_ROOT / "resources" / "humanpose.desktop.in"
ICON = PROJECT_ROOT / "resources" / "humanpose.png"
LAUNCHER = PROJECT_ROOT / "run_humanpose.py"
FILE_NAME = "humanpose.desktop"


def applications_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "applications"


def quote_exec_arg(arg: str) -> str:
    """Quote one Exec argument per the Desktop Entry spec (double quotes; escape " ` $ \\)."""
    arg = arg.replace("%", "%%")   # % starts a field code in Exec
    if arg and not any(c in arg for c in ' \t\n"\'\\><~|&;$*?#()`='):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    # the .desktop file format itself unescapes backslashes once more
    return '"' + escaped.replace("\\", "\\\\") + '"'


def _interpreter(python: str | None) -> str:
    """The launcher's Python as an absolute path (a desktop starts it from another folder): a
    path as given, made absolute; a bare name looked up on PATH; None: this interpreter."""
    if not python:
        return sys.executable
    if os.sep in python or (os.altsep and os.altsep in python):
        found = os.path.abspath(os.path.expanduser(python))
    else:
        found = shutil.which(python)
    if not found or not os.path.isfile(found):
        raise FileNotFoundError(f"--python {python}: no such interpreter")
    return found


def render_entry(python: str | None = None, config: str | None = None) -> str:
    """The text of the .desktop file for this checkout."""
    if not TEMPLATE.exists():
        raise FileNotFoundError(f"desktop entry template missing: {TEMPLATE}")
    args = [_interpreter(python), str(LAUNCHER)] + ([str(Path(config).resolve())] if config else [])
    return TEMPLATE.read_text(encoding="utf-8").format(
        exec=" ".join(quote_exec_arg(a) for a in args),
        icon=str(ICON),
        path=str(PROJECT_ROOT),
    )


def install(python: str | None = None, config: str | None = None) -> Path:
    if config and not Path(config).is_file():
        raise FileNotFoundError(f"--config {config}: no such file")
    target = applications_dir() / FILE_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_entry(python, config), encoding="utf-8")
    target.chmod(0o755)   # some desktops only start "trusted" (executable) launchers
    return target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None,
                        help="YAML config the launcher opens (default: humanpose.yml of the checkout)")
    parser.add_argument("--python", default=None,
                        help=f"Python interpreter for the launcher (default: {sys.executable})")


def main(args: argparse.Namespace) -> int:
    try:
        path = install(args.python, args.config)
    except (OSError, FileNotFoundError) as exc:
        print(f"install-desktop: {exc}", file=sys.stderr)
        return 1
    print(f"installed {path}")
    print("humanpose now appears in the applications menu (log out and in if it does not).")
    return 0
