#!/usr/bin/env python3
"""Copy a trained weight file into models/ and record it in models/manifest.json.

    python tools/ship_weights.py ~/.cache/humanpose/runs/pose_compact/best.safetensors \
        pose_compact --data "LSP-extended (9500) + LSP im0001-1000" --metrics '{"val_pck": 70.1}'

The manifest entry holds name, architecture, kind, file, sha256, joints, data and metrics; the
model card (models/NAME.md) is written by hand from the training log and `humanpose eval`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from humanpose import skeleton, store  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights")
    p.add_argument("name")
    p.add_argument("--data", default="")
    p.add_argument("--metrics", default="{}", help="JSON object")
    p.add_argument("--half", action="store_true",
                   help="store the weights as float16 (half the file; they load as float32)")
    args = p.parse_args()
    try:
        metrics = json.loads(args.metrics)
    except json.JSONDecodeError:
        metrics = None
    if not isinstance(metrics, dict):
        p.error(f"--metrics must be a JSON object such as '{{\"val_pck\": 70.1}}', not {args.metrics!r}")
    model = store.load_model(args.weights)             # refuses broken files
    meta = store.read_metadata(args.weights)
    models = ROOT / "models"
    dest = models / f"{args.name}.safetensors"
    if args.half:
        extra = {k: v for k, v in meta.items() if k not in ("arch", "kind", "kwargs", "format")}
        store.save_weights(model.half(), dest, meta["arch"], extra=dict(extra, stored="float16"),
                           kwargs=json.loads(meta.get("kwargs", "{}")))
        model = store.load_model(dest)
    elif Path(args.weights).resolve() != dest.resolve():   # (re-recording a shipped file's entry)
        shutil.copyfile(args.weights, dest)
    entry = {"name": args.name, "architecture": meta["arch"], "kind": meta["kind"],
             "arch_kwargs": json.loads(meta.get("kwargs", "{}")),
             "file": dest.name, "sha256": store.sha256(dest), "bytes": dest.stat().st_size,
             "parameters": sum(p.numel() for p in model.parameters()),
             "joints": list(skeleton.JOINTS) if meta["kind"] == "pose" else ["person_centre"],
             "data": args.data, "metrics": metrics,
             "card": f"{args.name}.md"}
    entries = [e for e in store.read_manifest(models) if e["name"] != args.name] + [entry]
    store.write_manifest(models, sorted(entries, key=lambda e: e["name"]))
    print(json.dumps(entry, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
