"""Training throughput of a recipe on this machine: steps/s of the optimiser step (forward,
backward, Adam) in fp32 and bf16 autocast, channels-last or not, and how fast one background
thread makes the batches, side by side in one run.

    python tools/train_speed.py train/pose_mobilenet.yml train/pose_mobilenet_accurate.yml \
        --steps 12

The batch maker runs in its own thread beside the training loop (batches.Batches), so a run's
rate is about min(net steps/s, batches/s); the table says which one bounds it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humanpose.estimator.cpu import bf16_kernel, cpu_model  # noqa: E402
from humanpose.train.datasets import build_crop_cache, crop_cache_file, splits  # noqa: E402
from humanpose.train.batches import make_batch  # noqa: E402
from humanpose.train.losses import stage_loss  # noqa: E402
from humanpose.train.recipe import TrainConfig  # noqa: E402
from humanpose.train.trainer import _path, initial_model  # noqa: E402


def net_rate(cfg: TrainConfig, batches: list, precision: str, channels_last: bool) -> float:
    """Steps/s of forward + backward + Adam over ``batches`` (the first two are warm-up)."""
    torch.manual_seed(0)
    model, _ = initial_model(cfg)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    times = []
    for x, t, w in batches:
        x = x.contiguous(memory_format=fmt)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            outputs = model(x)
        loss = stage_loss([o.float() for o in outputs], t, w, cfg.positive_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return 1.0 / float(np.median(times[2:]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recipes", nargs="+")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--size", type=int, default=0, help="one crop size for every batch "
                    "(default: the recipe's largest)")
    args = ap.parse_args()
    torch.set_num_threads(TrainConfig.load(args.recipes[0]).threads)
    print(f"CPU: {cpu_model()}; native bf16: {bf16_kernel() or 'none'}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")
    print("| recipe | crop | batches/s (1 thread) | fp32 | fp32 channels-last | bf16 channels-last "
          "| bf16 / fp32 channels-last |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for recipe in args.recipes:
        cfg = TrainConfig.load(recipe)
        cfg.sizes = [args.size or max(cfg.sizes)]
        train_set, _ = splits(_path(cfg.data), cfg.val_images)
        cache = build_crop_cache(train_set, crop_cache_file(_path(cfg.cache_dir), "train",
                                                            train_set), progress=False)
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        batches = [make_batch(cfg, cache, rng) for _ in range(args.steps)]     # one thread's rate
        make_rate = args.steps / (time.perf_counter() - t0)
        rates = {(p, cl): net_rate(cfg, batches, p, cl)
                 for p, cl in (("fp32", False), ("fp32", True), ("bf16", True))}
        print(f"| {Path(recipe).stem} | {cfg.sizes[0]} | {make_rate:.2f} | "
              f"{rates['fp32', False]:.2f} | {rates['fp32', True]:.2f} | {rates['bf16', True]:.2f} | "
              f"{rates['bf16', True] / rates['fp32', True]:.2f} x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
