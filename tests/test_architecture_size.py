"""The package stays readable in pieces: no module of humanpose/ is over MAX_LINES lines."""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "humanpose"
MAX_LINES = 400


def line_count(path: Path) -> int:
    with open(path, encoding="utf-8") as fh:
        return sum(1 for _ in fh)


def test_line_count_counts_the_lines_of_a_file(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("a = 1\n\nb = 2\n" + "# x\n" * 400, encoding="utf-8")
    assert line_count(f) == 403
    f.write_text("a = 1", encoding="utf-8")           # no newline at the end: still a line
    assert line_count(f) == 1


def test_no_module_over_400_lines():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 20                           # the package was found
    over = [f"{p.relative_to(PACKAGE.parent)} ({n} lines)"
            for p in modules if (n := line_count(p)) > MAX_LINES]
    assert not over, (f"modules over {MAX_LINES} lines (split them by responsibility): "
                      + ", ".join(over))
