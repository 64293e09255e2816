"""``humanpose train CONFIG.yml``: train a compact (or any) CPM person or pose net.

Intermediate supervision (the loss summed over every stage), Gaussian targets at stride 8 plus a
background map, the centre-map input, heavy augmentation (see :mod:`.samples`).  Checkpoints go
to ``run_dir`` (outside git) every ``checkpoint_every`` steps and a run resumes from its last
checkpoint; ``best.safetensors`` there is the best validation result so far.
"""
from __future__ import annotations

import csv
import json
import queue
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..config import PROJECT_ROOT
from ..estimator.cpu import bf16_kernel, cpu_model
from ..estimator.maps import STRIDE
from ..nets import build_model
from ..skeleton import flip_permutation
from ..store import ModelError, load_model, read_metadata, save_weights
from .datasets import DatasetError, build_crop_cache, crop_cache_file, splits
from .packed import load_packed
from .samples import person_scene, pose_sample
# the recipe and the validation helpers live in recipe.py and validation.py; their names stay
# importable from here (the CLI, the tools and the tests import them from the trainer)
from .recipe import LIMB_GROUPS, TrainConfig  # noqa: F401
from .validation import (mirrored_limbs, predict_crops, relabel_mirrored_limbs,  # noqa: F401
                         validate_person, validate_pose)


def _path(p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (PROJECT_ROOT / q).resolve()


class Batches:
    """Augmented batches made beside the training loop: by one background thread (cv2 releases
    the GIL), or with ``cfg.loaders`` > 1 by that many worker processes (forked: they share the
    crop cache), each with its own random stream."""

    def __init__(self, cfg: TrainConfig, cache: dict, seed: int):
        self.cfg, self.cache, self.seed = cfg, cache, seed
        self.rng = np.random.default_rng(seed)
        self.stop = False
        if cfg.loaders > 1:
            loader = torch.utils.data.DataLoader(
                _BatchStream(self), batch_size=None, num_workers=cfg.loaders, prefetch_factor=4,
                multiprocessing_context="fork", worker_init_fn=_seed_worker)
            self.workers = iter(loader)
            return
        self.q: queue.Queue = queue.Queue(maxsize=4)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def make(self):
        cfg, rng, c = self.cfg, self.rng, self.cache
        size = int(rng.choice(cfg.sizes))
        n = len(c["images"])
        if cfg.kind == "pose":
            def neighbours():     # no random draw without neighbours: old recipes reproduce
                if not cfg.neighbour_prob or rng.random() >= cfg.neighbour_prob:
                    return None
                k = int(rng.integers(0, n))
                return [(c["images"][k], c["joints"][k])]

            xs, ts, ws, _ = zip(*(pose_sample(c["images"][i], c["joints"][i], size, rng,
                                          rotation=cfg.rotation, rotation_prob=cfg.rotation_prob,
                                          rotation_any_prob=cfg.rotation_any_prob,
                                          lowres_prob=cfg.lowres_prob,
                                          scale=tuple(cfg.pose_scale), zoom_prob=cfg.zoom_prob,
                                          cut_prob=cfg.cut_prob, cut_empty=cfg.cut_empty,
                                          translation=cfg.translation, neighbours=neighbours())
                                for i in rng.integers(0, n, cfg.batch_size)))
            return (torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ts)),
                    torch.from_numpy(np.stack(ws)))
        width = int(round(size * rng.uniform(1.0, 1.8) / STRIDE)) * STRIDE
        xs, ts, _ = zip(*(person_scene(c["images"], c["joints"], size, width, rng,
                                       person_scale=tuple(cfg.person_scale), rotation=cfg.rotation,
                                       rotation_prob=cfg.rotation_prob,
                                       rotation_any_prob=cfg.rotation_any_prob,
                                       cover_prob=cfg.cover_prob, cut_prob=cfg.cut_prob,
                                       distractor_prob=cfg.distractor_prob,
                                       companion_prob=cfg.neighbour_prob,
                                       extra_centres=c.get("pseudo"))
                          for _ in range(cfg.batch_size)))
        t = torch.from_numpy(np.stack(ts))
        return torch.from_numpy(np.stack(xs)), t, torch.ones(t.shape[:2])

    def _run(self):
        while not self.stop:
            try:
                item = self.make()
            except Exception as exc:      # hand it to the training loop instead of hanging it
                self.q.put(exc)
                return
            self.q.put(item)

    def get(self):
        if self.cfg.loaders > 1:
            try:
                return next(self.workers)
            except Exception as exc:      # a worker's error, re-raised here by the DataLoader
                raise RuntimeError(f"making a training batch failed: {exc!r}") from exc
        item = self.q.get()
        if isinstance(item, Exception):
            raise RuntimeError(f"making a training batch failed: {item!r}") from item
        return item

    def close(self):
        self.stop = True
        if self.cfg.loaders > 1:
            self.workers = None           # the DataLoader's iterator, dropped, ends its processes


class _BatchStream(torch.utils.data.IterableDataset):
    """Endless batches from one worker process (see :class:`Batches`)."""

    def __init__(self, batches: Batches):
        self.batches = batches

    def __iter__(self):
        while True:
            yield self.batches.make()


def _seed_worker(worker_id: int) -> None:
    """Worker k draws from its own stream (the run's seed, then k), not a copy of the parent's."""
    b = torch.utils.data.get_worker_info().dataset.batches
    b.rng = np.random.default_rng([b.seed, worker_id])


def stage_loss(outputs, target, weight, positive_weight: float = 0.0) -> torch.Tensor:
    """Weighted squared error summed over every stage (intermediate supervision).

    ``positive_weight`` > 0 weighs pixels near the joints more (1 + k * target), which gets a
    small net out of the "all maps zero" start much sooner; the background map keeps weight 1.
    """
    w = weight[:, :, None, None]
    if positive_weight:
        pos = target.clone()
        if target.shape[1] > 1:
            pos[:, -1] = 0.0
        w = w * (1.0 + positive_weight * pos)
    return sum(((o - target) ** 2 * w).mean() * target.shape[1] for o in outputs)


def _zoom(x: torch.Tensor, s: float) -> torch.Tensor:
    """``x`` (N, C, H, W) resampled from a window ``s`` times its size with the same centre
    (s > 1 zooms out, grey = 0 beyond the edge); align_corners=False puts map cell j at input
    pixel STRIDE j + OFFSET, as the nets do."""
    theta = torch.tensor([[s, 0.0, 0.0], [0.0, s, 0.0]], dtype=x.dtype, device=x.device)
    grid = torch.nn.functional.affine_grid(theta.expand(len(x), 2, 3), list(x.shape),
                                           align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, align_corners=False)


@torch.no_grad()
def teacher_maps(teacher, x: torch.Tensor, scale_search: float = 0.0) -> torch.Tensor:
    """The teacher's last-stage maps of batch ``x`` averaged with those of its mirror image
    (flipped back, left / right swapped: the estimator's flip test, ``decode.flip_averaged``)
    and, with ``scale_search`` d > 0, with those of the images zoomed by 1 - d and 1 + d, the
    centre map kept (``PoseStage.scale_search_pass``; beyond the crop's edge the images
    are grey, where the estimator sees the frame): the soft targets of distillation."""
    n, perm = len(x), flip_permutation()

    def mirrored(inp):
        last = teacher(torch.cat([inp, inp.flip(-1)]))[-1]
        return (last[:n] + last[n:, perm].flip(-1)) / 2.0

    total = mirrored(x)
    if not scale_search:
        return total
    weight = torch.ones_like(total[:, :1])
    for z in (1.0 - scale_search, 1.0 + scale_search):
        zoomed = torch.cat([_zoom(x[:, :3], 1.0 / z), x[:, 3:]], dim=1)
        total += _zoom(mirrored(zoomed), z)            # back onto the crop's grid ...
        weight += _zoom(torch.ones_like(weight), z)    # ... where the window covers it
    return total / weight


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
    defaults = {"front_blocks": 0}           # weights saved before front_blocks existed
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
