#!/usr/bin/env python3
"""Average the parameters of weight files of one architecture into a new weight file.

    python tools/average_weights.py OUT.safetensors models/pose_compact.safetensors \
        ~/.cache/humanpose/runs/pose_compact_cut/final.safetensors

Every input must be a humanpose weight file with the same arch, kind and arch_kwargs; floating
tensors are averaged (BatchNorm running statistics too), integer ones (BatchNorm's batch
counter) are taken from the last file.  The output keeps what names the net (format, arch, kind,
kwargs) and records the inputs' sha256 under ``averaged``; the inputs' training metadata (step,
validation score, hours) does not describe the average and is left out: measure it with
``python -m humanpose eval``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from humanpose import store  # noqa: E402


def average(paths: list[str], out: str) -> Path:
    from safetensors.torch import load_file, save_file
    metas = [store.read_metadata(p) for p in paths]     # refuses missing or broken files
    same = ("arch", "kind", "kwargs")
    for p, m in zip(paths[1:], metas[1:]):
        if any(m.get(k) != metas[0].get(k) for k in same):
            raise ValueError(f"{p} is not the same net as {paths[0]} "
                             f"({', '.join(f'{k} {m.get(k)} vs {metas[0].get(k)}' for k in same)})")
    states = [load_file(p) for p in paths]
    if any(set(s) != set(states[0]) for s in states[1:]):
        raise ValueError("the weight files hold different tensors")
    avg = {}
    for k, v in states[-1].items():
        avg[k] = (sum(s[k].double() for s in states) / len(states)).to(v.dtype) \
            if v.is_floating_point() else v
    meta = {k: v for k, v in metas[-1].items() if k in ("format", "arch", "kind", "kwargs")}
    meta["averaged"] = json.dumps([store.sha256(p) for p in paths])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_file(avg, out, metadata=meta)
    return Path(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("weights", nargs="+")
    args = p.parse_args()
    if len(args.weights) < 2:
        print("error: give at least two weight files to average", file=sys.stderr)
        return 2
    try:
        average(args.weights, args.out)
    except (store.ModelError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}, the average of {len(args.weights)} weight files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
