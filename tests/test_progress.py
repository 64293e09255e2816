"""Progress bars only on a terminal; a pipe or --no-progress gets one summary line."""
from __future__ import annotations

import io

from humanpose.progress import Progress, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_pipe_gets_one_summary_line_and_no_carriage_returns():
    out = io.StringIO()
    assert list(progress(range(300), desc="eval", file=out)) == list(range(300))
    text = out.getvalue()
    assert "\r" not in text
    assert text.count("\n") == 1 and text.startswith("eval: 300 it in ")


def test_a_terminal_gets_the_bar_and_no_progress_only_the_summary():
    tty = Terminal()
    with Progress(total=5, desc="train", file=tty) as bar:
        for _ in range(5):
            bar.update(1)
    assert "\r" in tty.getvalue() and "5/5" in tty.getvalue()
    quiet = Terminal()
    with Progress(total=5, desc="train", initial=2, enabled=False, file=quiet) as bar:
        bar.update(3)
    assert quiet.getvalue().startswith("train: 5/5 it in ") and "\r" not in quiet.getvalue()


def test_summary_false_leaves_the_summary_to_the_caller():
    out = io.StringIO()
    with Progress(total=3, desc="run", unit="frame", summary=False, file=out) as bar:
        bar.update(3)
    assert out.getvalue() == ""
