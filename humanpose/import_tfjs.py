"""``humanpose import-tfjs MODEL.json OUT.safetensors``: MoveNet's TF.js files -> a humanpose
weight file (a ``cpm_mobilenet`` net whose trunk and first stage are MoveNet's) that training
recipes start from (``init:``).  The raw MoveNet files stay where they are (never in the project).
"""
from __future__ import annotations

import argparse
import sys

from .nets.movenet_import import cpm_from_movenet
from .nets.tfjs import TfjsError, read_graph
from .store import save_weights


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL.json",
                   help="a MoveNet TF.js graph model, e.g. ../shared/teachers/movenet/movenet-lightning.json")
    p.add_argument("out", metavar="OUT", help="output weight file (.safetensors)")
    p.add_argument("--kind", choices=("pose", "person", "multipose"), required=True,
                   help="pose: the keypoint head starts stage 1 (SinglePose Lightning / Thunder); "
                        "person: the person-centre head does (MultiPose); multipose: the whole "
                        "MultiPose net with its own decode as a person net (movenet_multipose)")
    p.add_argument("--stages", type=int, default=None, help="stages (default: pose 6, person 3)")
    p.add_argument("--width", type=int, default=48, help="channels of the refinement stages")


def main(args: argparse.Namespace) -> int:
    stages = args.stages or (6 if args.kind == "pose" else 3)
    if stages < 1 or args.width < 1:
        print("error: --stages and --width must be at least 1", file=sys.stderr)
        return 2
    arch = "movenet_multipose" if args.kind == "multipose" else "cpm_mobilenet"
    try:
        graph = read_graph(args.model)
        if args.kind == "multipose":
            from .nets.multipose import MultiPoseNet
            net = MultiPoseNet.from_graph(graph)
            kwargs, stages = {"alpha": net.alpha}, net.num_stages
        else:
            net, kwargs = cpm_from_movenet(graph, args.kind, stages=stages, width=args.width)
    except TfjsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        path = save_weights(net, args.out, arch, kwargs=kwargs,
                            extra={"source": f"{graph.source or args.model} (TF.js, import-tfjs)"})
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
    n = sum(p.numel() for p in net.parameters())
    what = ("movenet_multipose person net" if arch == "movenet_multipose"
            else f"cpm_mobilenet {args.kind} net")
    print(f"imported {args.model} -> {path}: {what} (alpha {kwargs['alpha']}), "
          f"{stages} {'outputs' if arch == 'movenet_multipose' else 'stages'}, {n:,} parameters")
    return 0
