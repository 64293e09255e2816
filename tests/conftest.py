"""Shared test helpers: the ../shared data beside the checkout (skipped cleanly when absent)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# the offscreen windows stand on a laptop's 1024x768 screen (the smallest the window is made for)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if os.environ["QT_QPA_PLATFORM"] == "offscreen":
    os.environ["QT_QPA_PLATFORM"] = \
        f"offscreen:configfile={ROOT / 'tests' / 'fixtures' / 'screen_1024x768.json'}"
torch.set_num_threads(1)

SHARED = ROOT.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test (with the reason) when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} absent: ../shared (data and media for tests) is not beside this checkout")
    return p
