"""``humanpose train CONFIG.yml``: train a compact (or any) CPM person or pose net.

Intermediate supervision (the loss summed over every stage, :mod:`.losses`), Gaussian targets at
stride 8 plus a background map, the centre-map input, heavy augmentation (:mod:`.samples`,
:mod:`.scenes`) made beside the training loop (:mod:`.batches`).  The recipe is a
:class:`~.recipe.TrainConfig`; validation during training is in :mod:`.validation`.  Checkpoints
go to ``run_dir`` (outside git) every ``checkpoint_every`` steps and a run resumes from its last
checkpoint; ``best.safetensors`` there is the best validation result so far.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..config import PROJECT_ROOT
from ..estimator.cpu import bf16_kernel, cpu_model
from ..nets import build_model
from ..store import ModelError, load_model, read_metadata, save_weights
from .batches import Batches
from .datasets import DatasetError, build_crop_cache, crop_cache_file, splits
from .losses import stage_loss, teacher_maps
from .packed import load_packed
from .recipe import LIMB_GROUPS, TrainConfig
from .validation import relabel_mirrored_limbs, validate_person, validate_pose


def _path(p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (PROJECT_ROOT / q).resolve()


def initial_model(cfg: TrainConfig) -> tuple[torch.nn.Module, dict]:
    """The net to train and its architecture kwargs: new (random), or the ``init`` weights.

    With ``init`` the net is the init file's architecture; a recipe whose ``arch_kwargs`` ask
    for a bigger ``cpm_compact`` net of the same design grows it without changing what it
    computes: more ``stages`` (:meth:`CompactCPM.grown`: added stages start as copies of the
    last one), more ``feat`` channels (:meth:`CompactCPM.widened`, Net2WiderNet) and / or more
    ``front_blocks`` (:meth:`CompactCPM.deepened`: residual blocks that start as the identity).
    Any other difference between the recipe's arch_kwargs and the init's is an error naming the
    key.
    """
    if not cfg.init:
        return build_model(cfg.arch, cfg.kind, **cfg.arch_kwargs), dict(cfg.arch_kwargs)
    model = load_model(_path(cfg.init), kind=cfg.kind)
    meta = read_metadata(_path(cfg.init))
    have = json.loads(meta.get("kwargs", "{}"))
    if not cfg.arch_kwargs:
        return model, have
    want = dict(have, **cfg.arch_kwargs)
    growable = ("stages", "feat", "front_blocks")
    defaults = {"front_blocks": 0}           # weights without the key have none
    differ = sorted(k for k in want if want[k] != have.get(k) and k not in growable)
    if differ:
        theirs = {k: have.get(k) for k in differ}
        raise ValueError(f"arch_kwargs {differ} differ from the init weights' ({theirs}); "
                         "only 'stages', 'feat' and 'front_blocks' can grow")
    if all(want.get(k, defaults.get(k)) == have.get(k, defaults.get(k)) for k in growable):
        return model, have
    if meta["arch"] != "cpm_compact":
        raise ValueError(f"arch_kwargs: stages / feat / front_blocks can only be grown on a "
                         f"cpm_compact net, not {meta['arch']}")
    try:
        if "feat" in want:
            model = model.widened(int(want["feat"]), seed=cfg.seed)
        if "front_blocks" in want:
            model = model.deepened(int(want["front_blocks"]))
        return model.grown(int(want.get("stages", model.num_stages))), want
    except ValueError as exc:
        raise ValueError(f"arch_kwargs: {exc}") from exc


def training_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """The precision a run uses for ``precision`` on ``device`` and a line saying why: bf16 only
    where the device computes it natively (emulated bf16 is slower than fp32)."""
    if precision != "bf16":
        return "fp32", "precision: fp32"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", f"precision: bf16 autocast on {torch.cuda.get_device_name(device)}"
        return "fp32", (f"note: precision bf16 asked, but {torch.cuda.get_device_name(device)} "
                        "has no native bf16; training in fp32")
    kernel = bf16_kernel()
    if kernel:
        return "bf16", f"precision: bf16 autocast on {cpu_model()} ({kernel})"
    return "fp32", (f"note: precision bf16 asked, but {cpu_model()} has no native bf16 "
                    "(AVX512-BF16 or AMX); training in fp32")


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    from ..progress import Progress
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available()
                          else "cpu")
    if cfg.device == "cuda" and device.type != "cuda":
        raise RuntimeError("device: cuda requested but CUDA is not available")
    for key in ("init", "relabel_with", "distill_from"):
        if getattr(cfg, key) and not _path(getattr(cfg, key)).is_file():
            raise FileNotFoundError(f"{key}: weight file {getattr(cfg, key)} not found")
    model, arch_kwargs = initial_model(cfg)   # before anything is written: a bad net stops here
    precision, why = training_precision(cfg.precision, device)
    print(why)
    run_dir = _path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))

    if cfg.packed:
        caches = load_packed([_path(p) for p in cfg.packed])
        train_cache, val_cache, val_set = caches["train"], caches["val"], None
        if cfg.max_train_images:
            train_cache = {k: v[:cfg.max_train_images] for k, v in train_cache.items()}
    else:
        train_set, val_set = splits(_path(cfg.data), cfg.val_images)
        if cfg.max_train_images:
            train_set = train_set.subset(np.arange(min(cfg.max_train_images, len(train_set))))
        cache_dir = _path(cfg.cache_dir)
        train_cache = build_crop_cache(train_set, crop_cache_file(cache_dir, "train", train_set),
                                       progress)
        val_cache = build_crop_cache(val_set, crop_cache_file(cache_dir, "val", val_set), progress)
    if cfg.pseudo_labels:
        if cfg.kind != "person" or cfg.packed:
            raise ValueError("pseudo_labels: only for person recipes on ../shared data (not packed)")
        from .pseudo import load_or_make
        train_cache["pseudo"] = load_or_make(
            train_cache, crop_cache_file(cache_dir, "train", train_set), progress=progress)
        found = np.isfinite(train_cache["pseudo"][..., 0])
        print(f"pseudo-labels: {int(found.sum())} more persons in {int(found.any(1).sum())} of "
              f"{len(found)} crops")
    if cfg.relabel_with:
        flags = relabel_mirrored_limbs(train_cache, _path(cfg.relabel_with), cfg.val_boxsize,
                                       device, run_dir / "relabelled.json", cfg.relabel_groups)
        counts = " and ".join(f"{n} {g}" for g, n in zip(LIMB_GROUPS, flags.sum(0))
                              if g in cfg.relabel_groups)
        print(f"relabelled: left and right exchanged on {counts} of {len(flags)} persons "
              f"({cfg.relabel_with})")

    teacher = None
    if cfg.distill_from:
        teacher = load_model(_path(cfg.distill_from), kind="pose")
        teacher.to(device, memory_format=torch.channels_last).eval()
        print(f"distilling from {cfg.distill_from} (weight {cfg.distill_weight}, scale search "
              f"{cfg.distill_scale_search})")

    # channels-last: the same maths, about 1.3-1.6x faster convolutions on the CPU (measured)
    model.to(device, memory_format=torch.channels_last).train()
    trunk = getattr(model, "trunk", None)
    if (cfg.trunk_lr != 1.0 or cfg.freeze_trunk_steps) and trunk is None:
        raise ValueError(f"trunk_lr / freeze_trunk_steps: a {cfg.arch} net has no pretrained trunk")
    trunk_ids = {id(p) for p in trunk.parameters()} if trunk is not None else set()
    groups = [{"params": [p for p in model.parameters() if id(p) in trunk_ids], "scale": cfg.trunk_lr},
              {"params": [p for p in model.parameters() if id(p) not in trunk_ids], "scale": 1.0}]
    opt = torch.optim.Adam([g for g in groups if g["params"]], lr=cfg.lr,
                           weight_decay=cfg.weight_decay)
    step, best, elapsed = 0, -1.0, 0.0
    last = run_dir / "last.pt"
    if last.exists():
        ck = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, best, elapsed = int(ck["step"]), float(ck["best"]), float(ck.get("elapsed", 0.0))
        print(f"resumed {last} at step {step} (best {best:.2f})")
    def lr_at(s: int) -> float:  # cosine decay to 2 % of the base rate
        return float(cfg.lr * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * min(s, cfg.steps) / cfg.steps))))

    log_path = run_dir / "log.csv"
    new_log = not log_path.exists()
    log = open(log_path, "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["step", "loss", "lr", "elapsed_s", "val"])
    batches = Batches(cfg, train_cache, cfg.seed + step)
    metric = "val_pck" if cfg.kind == "pose" else "val_recall"
    result = {"step": step, "best": best}
    t0 = time.time() - elapsed
    bar = Progress(total=cfg.steps, initial=step, desc=f"train {cfg.kind}", enabled=progress)
    running = None

    def save_checkpoint():
        tmp = run_dir / "last.pt.tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "best": float(best), "elapsed": float(time.time() - t0)}, tmp)
        tmp.replace(last)

    try:
        while step < cfg.steps:
            if trunk is not None and cfg.freeze_trunk_steps:
                trunk.requires_grad_(step >= cfg.freeze_trunk_steps)
            x, t, w = (a.to(device) for a in batches.get())
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                outputs = model(x)
            outputs = [o.float() for o in outputs]    # the loss in fp32
            loss = stage_loss(outputs, t, w, cfg.positive_weight)
            if teacher is not None and cfg.distill_weight:   # every joint, missing and cut-off too
                soft = stage_loss(outputs, teacher_maps(teacher, x, cfg.distill_scale_search),
                                  torch.ones_like(w), cfg.positive_weight)
                loss = (1.0 - cfg.distill_weight) * loss + cfg.distill_weight * soft
            for group in opt.param_groups:
                group["lr"] = lr_at(step) * group.get("scale", 1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}")
            val = {}
            if step % cfg.val_every == 0 or step == cfg.steps:
                model.eval()
                val = (validate_pose(model, val_cache, cfg.val_boxsize, device) if cfg.kind == "pose"
                       else validate_person(model, val_set, cfg.val_detector_size, device))
                model.train()
                val["train_hours"] = round((time.time() - t0) / 3600, 3)
                if val[metric] > best:
                    best = val[metric]
                    save_weights(model, run_dir / "best.safetensors", cfg.arch,
                                 extra={"step": step, metric: best, "train_hours": val["train_hours"]},
                                 kwargs=arch_kwargs)
                if step == cfg.steps:    # the end of the schedule (lr at its floor), whatever best is
                    save_weights(model, run_dir / "final.safetensors", cfg.arch,
                                 extra={"step": step, metric: val[metric],
                                        "train_hours": val["train_hours"]}, kwargs=arch_kwargs)
                bar.write(f"step {step}: {val} (best {best})")
            if step % 20 == 0 or val:
                writer.writerow([step, f"{running:.5f}", f"{lr_at(step):.6f}",
                                 f"{time.time() - t0:.1f}", json.dumps(val) if val else ""])
                log.flush()
            if step % cfg.checkpoint_every == 0:
                save_checkpoint()
    finally:
        batches.close()
        save_checkpoint()
        log.close()
        bar.close()
    result.update(step=step, best=best, loss=running)
    return result


def add_arguments(p) -> None:
    p.add_argument("config", help="training YAML (see train/*.yml)")
    p.add_argument("--steps", type=int, help="override the number of steps")
    p.add_argument("--no-progress", action="store_true")


def main(args) -> int:
    import sys
    try:
        cfg = TrainConfig.load(args.config)
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.steps:
        cfg.steps = args.steps
    try:
        res = train(cfg, progress=not args.no_progress)
    except (OSError, ValueError, DatasetError, ModelError, RuntimeError) as exc:  # data, init, CUDA
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run_dir = _path(cfg.run_dir)
    final = run_dir / "final.safetensors"
    print(f"trained {cfg.kind} to step {res['step']}; best validation: {res['best']}; "
          f"weights: {run_dir / 'best.safetensors'}"
          + (f" (and at the last step: {final})" if res["step"] >= cfg.steps and final.exists() else ""))
    return 0
