#!/usr/bin/env python3
"""PCK@0.2 of a third-party teacher net (../shared/teachers) on LSP-layout data.

A reference point, and the check that decides whether distilling from it can help:

    python tools/teacher_pck.py ../shared/teachers/efficientpose/EfficientPoseRT.pb \
        --data ../shared/data/lspet --split val --limit 80
    python tools/teacher_pck.py ../shared/teachers/movenet/movenet-lightning.json \
        --data ../shared/data/lspet --split val --margin 1.25

MoveNet (a TF.js ``.json``) runs as humanpose's PyTorch rebuild (:mod:`humanpose.nets.mobilenet`)
with its own single-pose decode, on RGB crops of 192 (Lightning) or 256 (Thunder) pixels; its
COCO keypoints map onto the 12 limb joints by name (shoulders, elbows, wrists, hips, knees,
ankles; COCO's left is the person's own left, as LSP's) and the neck is the shoulders' midpoint;
COCO has no head top, so the PCK of MoveNet is reported on the 12 limb joints (``limbs``), the
figure that compares across the two skeletons.

Each person is cut out around the annotated joints' box (side = ``--margin`` x its larger side,
black outside the image), resized to the teacher's input (224 RT, 256 I; RGB, ImageNet
normalisation), and each joint is the argmax of the teacher's full-resolution belief map
(MPII order, mapped to the skeleton's; MPII "upper neck" = neck).  Same PCK as ``humanpose
eval`` (torso = left shoulder to right hip), so the number compares with its gt-centre mode.
The teacher files are never part of this project; this tool only reads them.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from humanpose.skeleton import JOINTS  # noqa: E402
from humanpose.train.datasets import DatasetError, person_box, read_lsp_dir, splits  # noqa: E402
from humanpose.train.metrics import pck_correct, pck_summary  # noqa: E402

# EfficientPose's own output order (teachers/README.md): 0 head-top, 1 upper-neck, 2 R-shoulder...
EFFICIENTPOSE = ("head_top", "neck", "r_shoulder", "r_elbow", "r_wrist", "thorax",
                 "l_shoulder", "l_elbow", "l_wrist", "pelvis", "r_hip", "r_knee", "r_ankle",
                 "l_hip", "l_knee", "l_ankle")
TO_SKELETON = [EFFICIENTPOSE.index(j) for j in JOINTS]
OUTPUT = "upscaled_confs/conv2d_transpose"
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def teacher_joints(net, img: np.ndarray, centre: np.ndarray, size: float, side: int,
                   margin: float) -> np.ndarray:
    """(14, 2) joints (frame pixels, skeleton order) of the person at ``centre``."""
    k = side / (margin * size)
    a = np.array([[k, 0, side / 2 - k * centre[0]], [0, k, side / 2 - k * centre[1]]])
    crop = cv2.warpAffine(img, a, (side, side), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    x = ((crop[:, :, ::-1] / 255.0 - MEAN) / STD).astype(np.float32).transpose(2, 0, 1)[None]
    net.setInput(x)
    beliefs = net.forward(OUTPUT)[0]
    out = np.empty((len(JOINTS), 2))
    for j, m in enumerate(TO_SKELETON):
        yy, xx = np.unravel_index(int(np.argmax(beliefs[m])), beliefs[m].shape)
        out[j] = ((xx - a[0, 2]) / k, (yy - a[1, 2]) / k)
    return out


COCO = ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow",
        "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle")
LIMB_JOINTS = [j for j, name in enumerate(JOINTS) if name not in ("head_top", "neck")]


class MoveNetTeacher:
    """The rebuilt MoveNet on one crop: :func:`teacher_joints`' ``setInput`` / ``forward``."""

    def __init__(self, path: Path):
        import torch
        from humanpose.nets.mobilenet import MoveNet
        from humanpose.nets.tfjs import read_graph
        self.torch = torch
        self.net = MoveNet.from_graph(read_graph(path))
        self.side = 256 if self.net.trunk.alpha > 1.0 else 192

    def joints(self, crop_rgb: np.ndarray) -> np.ndarray:
        """(14, 2) crop pixels, skeleton order (head top NaN, neck = mid-shoulders)."""
        from humanpose.nets.mobilenet import decode_single
        with self.torch.inference_mode():
            x = self.torch.from_numpy(crop_rgb.astype(np.float32)).permute(2, 0, 1)[None]
            kps = decode_single(self.net(x), self.net.centre_weight)
        out = np.full((len(JOINTS), 2), np.nan)
        for j, name in enumerate(JOINTS):
            if name in COCO:
                y, x, _ = kps[COCO.index(name)]
                out[j] = (x * self.side, y * self.side)
        sh = [COCO.index("l_shoulder"), COCO.index("r_shoulder")]
        out[JOINTS.index("neck")] = kps[sh, 1::-1].mean(0) * self.side
        return out


def movenet_joints(teacher: MoveNetTeacher, img: np.ndarray, centre: np.ndarray, size: float,
                   margin: float) -> np.ndarray:
    side = teacher.side
    k = side / (margin * size)
    a = np.array([[k, 0, side / 2 - k * centre[0]], [0, k, side / 2 - k * centre[1]]])
    crop = cv2.warpAffine(img, a, (side, side), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    j = teacher.joints(crop[:, :, ::-1])
    return np.stack([(j[:, 0] - a[0, 2]) / k, (j[:, 1] - a[1, 2]) / k], 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("teacher", help="EfficientPoseRT.pb, EfficientPoseI.pb or movenet-*.json")
    p.add_argument("--data", required=True, help="LSP-layout directory (images/*.jpg + joints.mat)")
    p.add_argument("--format", choices=("lsp", "lspet"), default=None)
    p.add_argument("--split", choices=("all", "val"), default="all",
                   help="val: the 500 validation images (--data must be the lspet directory)")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--margin", type=float, default=1.3, help="crop side / person size")
    args = p.parse_args(argv)
    teacher = Path(args.teacher)
    if not teacher.is_file():
        print(f"error: teacher file {teacher} not found", file=sys.stderr)
        return 2
    movenet = teacher.suffix == ".json"
    if not movenet and not hasattr(cv2.dnn, "readNetFromTensorflow"):
        print(f"error: OpenCV {cv2.__version__} cannot read TensorFlow graphs (OpenCV 5 dropped "
              "the importer); run this tool with OpenCV 4: "
              "pip install 'opencv-python-headless>=4.9,<5'", file=sys.stderr)
        return 2
    from humanpose.nets.tfjs import TfjsError
    try:
        data = (splits(Path(args.data).parent)[1] if args.split == "val"
                else read_lsp_dir(args.data, args.format))
        net = MoveNetTeacher(teacher) if movenet else cv2.dnn.readNetFromTensorflow(str(teacher))
    except (DatasetError, OSError, cv2.error, TfjsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    side = 224 if "RT" in teacher.name else 256
    n = min(args.limit or len(data), len(data))
    pred = np.full((n, len(JOINTS), 2), np.nan)
    t0 = time.perf_counter()
    for i in range(n):
        img = cv2.imread(str(data.images[i]), cv2.IMREAD_COLOR)
        if img is None:
            print(f"error: cannot read image {data.images[i]}", file=sys.stderr)
            return 2
        centre, size = person_box(data.joints[i])
        pred[i] = (movenet_joints(net, img, centre, size, args.margin) if movenet
                   else teacher_joints(net, img, centre, size, side, args.margin))
    correct = pck_correct(pred, data.joints[:n])
    pck, per = pck_summary(correct)
    print(" ".join(f"{j}={v:.1f}" for j, v in zip(JOINTS, per)))
    print(f"teacher PCK@0.2 gt-centre, 12 limb joints: {pck_summary(correct[:, LIMB_JOINTS])[0]:.1f}")
    print(f"images: {n}  s/crop: {(time.perf_counter() - t0) / max(n, 1):.3f}  margin: {args.margin:g}")
    print(f"teacher PCK@0.2 gt-centre: {pck:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
