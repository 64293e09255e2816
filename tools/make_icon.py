#!/usr/bin/env python3
"""Write resources/humanpose.svg (a stick figure in the skeleton palette) and render it to
resources/humanpose.png (256x256, freedesktop launcher and window icon) and
resources/humanpose.ico (64x64, for a Windows shortcut) with QtSvg.  Run once after changing
the drawing."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from humanpose.skeleton import JOINT_COLOURS, LIMB_COLOURS, LIMBS  # noqa: E402

# a person in a walking pose, joints in MPI order, on a 256 x 256 canvas
JOINTS = [(128, 36), (128, 72), (100, 76), (82, 112), (70, 146), (156, 76), (178, 108),
          (196, 138), (110, 140), (98, 184), (84, 226), (146, 140), (162, 184), (180, 224)]


def hexcolour(bgr) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


def svg() -> str:
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256">',
             '<rect x="8" y="8" width="240" height="240" rx="44" fill="#1d2430"/>',
             '<circle cx="128" cy="128" r="104" fill="none" stroke="#2f3b4e" stroke-width="6"/>']
    for (a, b), colour in zip(LIMBS, LIMB_COLOURS):
        (x0, y0), (x1, y1) = JOINTS[a], JOINTS[b]
        parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="{hexcolour(colour)}" '
                     'stroke-width="12" stroke-linecap="round"/>')
    for (x, y), colour in zip(JOINTS, JOINT_COLOURS):
        parts.append(f'<circle cx="{x}" cy="{y}" r="9" fill="{hexcolour(colour)}" '
                     'stroke="#0b0f14" stroke-width="3"/>')
    parts.append('<circle cx="128" cy="36" r="16" fill="#ffd84a" stroke="#0b0f14" stroke-width="3"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "resources"),
                        help="folder to write the three files to (default: resources/)")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QByteArray, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])   # QImage and SVG need it
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = svg()
    (out / "humanpose.svg").write_text(text, encoding="utf-8")
    image = QImage(256, 256, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(QByteArray(text.encode())).render(painter)
    painter.end()
    if not image.save(str(out / "humanpose.png")):
        raise SystemExit("cannot write humanpose.png")
    small = image.scaled(64, 64, Qt.AspectRatioMode.KeepAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)
    if not small.save(str(out / "humanpose.ico"), "ICO"):
        raise SystemExit("cannot write humanpose.ico")
    print(f"wrote {out / 'humanpose.svg'}, {out / 'humanpose.png'} and {out / 'humanpose.ico'}")
    del app                                 # held until the files are written
    return 0


if __name__ == "__main__":
    sys.exit(main())
