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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from ..config import PROJECT_ROOT
from ..estimator.maps import STRIDE, argmax_subpixel, find_peaks, from_map
from ..estimator.pipeline import detector_frame, normalise
from ..nets import build_model
from ..skeleton import FLIP_PAIRS, NUM_JOINTS, flip_permutation
from ..store import ModelError, load_model, read_metadata, save_weights, sha256
from .datasets import DatasetError, build_crop_cache, crop_cache_file, person_box, splits
from .metrics import pck_correct, pck_summary
from .packed import load_packed
from .samples import person_scene, pose_sample


@dataclass
class TrainConfig:
    kind: str = "pose"                     # pose | person
    arch: str = "cpm_compact"
    arch_kwargs: dict = field(default_factory=dict)
    data: str = "../shared/data"           # holds lsp/ and lspet/
    packed: list = field(default_factory=list)   # pose: instead of data, the crop parts of
                                           # `humanpose pack-crops` (files or folders), e.g. on a
                                           # lent GPU machine without ../shared (train/packed.py)
    val_images: int = 500
    seed: int = 0                          # augmentation and init only (the split is fixed)
    steps: int = 20000                     # total optimiser steps (resume continues to this)
    batch_size: int = 16
    sizes: list = field(default_factory=lambda: [128, 160, 192])
    lr: float = 1e-3
    weight_decay: float = 0.0
    positive_weight: float = 0.0           # extra loss weight on target peaks: w = 1 + k * target
    rotation: float = 40.0                 # rotate a person by up to ± this many degrees ...
    rotation_prob: float = 0.6             # ... with this probability
    rotation_any_prob: float = 0.0         # or, with this probability, by any angle (±180)
    lowres_prob: float = 0.0               # pose: blur a sample to low resolution (small, far people)
    pose_scale: list = field(default_factory=lambda: [0.3, 0.95])   # pose: a person's size as a
                                           # fraction of the crop, uniform in this range, ...
    zoom_prob: float = 0.2                 # ... or with this probability 1.1-2.0 (waist-up framing)
    cut_prob: float = 0.0                  # frame a person as a webcam does, cut below the hips:
                                           # pose, grey below the line (samples.pose_sample);
                                           # person, the scene's bottom edge (samples.person_scene)
    cut_empty: bool = False                # pose: the joints below the cut trained to empty maps
                                           # (scored low) instead of left untrained
    translation: float = 0.04              # pose: sd of the person's offset from the crop centre,
                                           # a fraction of the crop side
    person_scale: list = field(default_factory=lambda: [0.25, 0.9])   # person: a person's size
                                           # as a fraction of the scene height, uniform in this range
    cover_prob: float = 0.0                # person: scenes on a background that covers them (samples)
    distractor_prob: float = 0.0           # person: scenes with person-free distractors (samples)
    relabel_with: str = ""                 # pose: a pose net's weights; before training, an arm or
                                           # a leg whose left/right labels it fits far better
                                           # exchanged is relabelled (relabel_mirrored_limbs)
    relabel_groups: list = field(default_factory=lambda: ["arms", "legs"])   # which limbs it may
                                           # relabel (LIMB_GROUPS; only with relabel_with); the
                                           # judge rates all of them
    distill_from: str = ""                 # pose: a teacher net's weights; its mirror-averaged last
                                           # stage on each training batch is a second target
                                           # (soft targets, every joint; teacher_maps)
    distill_weight: float = 0.5            # the teacher's share of the loss (only with distill_from)
    distill_scale_search: float = 0.0      # d > 0: the teacher's maps also averaged with those of
                                           # the batch zoomed out and in by d (the estimator's
                                           # scale search; 3x the teacher's time)
    trunk_lr: float = 1.0                  # the pretrained trunk's learning rate as a fraction of lr
                                           # (nets with a ``trunk``, e.g. cpm_mobilenet)
    freeze_trunk_steps: int = 0            # the trunk is frozen (no gradient) for these first steps
    threads: int = 2
    loaders: int = 1                       # batch makers: 1 = a background thread (CPU runs, where
                                           # the net is the bottleneck); N > 1 = N worker processes
                                           # (a GPU waits for batches otherwise)
    device: str = "auto"                   # cpu | cuda | auto
    run_dir: str = "~/.cache/humanpose/runs/pose"
    cache_dir: str = "~/.cache/humanpose/cache"
    init: str = ""                         # weight file to start from (e.g. the shipped weights);
                                           # arch_kwargs may then only add stages (initial_model)
    checkpoint_every: int = 200
    val_every: int = 1000
    val_boxsize: int = 192
    val_detector_size: int = 256           # person: validation frames' longer side (detector_size)
    max_train_images: int = 0              # 0 = all (small values for smoke tests)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        from ..config import read_yaml      # one-line errors, no duplicate keys
        data = read_yaml(path)
        if not isinstance(data, dict) or not data:
            # an empty recipe would otherwise start a long run with every default
            raise ValueError(f"{path}: a recipe is a YAML mapping of settings (at least `kind: pose` "
                             f"or `kind: person`), not {type(data).__name__ if data else 'empty'}")
        known = {f.name for f in fields(cls)}
        bad = set(data) - known
        if bad:
            raise ValueError(f"{path}: unknown key(s) {sorted(bad)}; allowed: {sorted(known)}")
        cfg = cls(**data)
        if cfg.kind not in ("pose", "person"):
            raise ValueError(f"{path}: kind {cfg.kind!r} is not allowed; allowed: pose, person")
        for key, hi, what in (("rotation", 180.0, "0..180 degrees"),
                              ("rotation_prob", 1.0, "a probability in 0..1"),
                              ("rotation_any_prob", 1.0, "a probability in 0..1"),
                              ("cover_prob", 1.0, "a probability in 0..1"),
                              ("distractor_prob", 1.0, "a probability in 0..1"),
                              ("lowres_prob", 1.0, "a probability in 0..1"),
                              ("zoom_prob", 1.0, "a probability in 0..1"),
                              ("cut_prob", 1.0, "a probability in 0..1"),
                              ("translation", 0.5, "a fraction of the crop in 0..0.5"),
                              ("distill_weight", 1.0, "a share of the loss in 0..1"),
                              ("distill_scale_search", 0.5, "a zoom fraction in 0..0.5")):
            value = getattr(cfg, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= hi:
                raise ValueError(f"{path}: {key} must be {what}, not {value!r}")
        for key, lo, what in (("lr", 0.0, "a number > 0"), ("weight_decay", 0.0, "a number >= 0"),
                              ("positive_weight", 0.0, "a number >= 0"),
                              ("trunk_lr", 0.0, "a number >= 0")):
            value = getattr(cfg, key)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not (value > lo if key == "lr" else value >= lo)):
                hint = (" (YAML reads 1e-3 as text: write 1.0e-3)"
                        if isinstance(value, str) and "e" in value.lower() else "")
                raise ValueError(f"{path}: {key} must be {what}, not {value!r}{hint}")
        for key, lo in (("freeze_trunk_steps", 0), ("steps", 1), ("batch_size", 1),
                        ("val_every", 1), ("checkpoint_every", 1), ("val_detector_size", 64),
                        ("val_images", 1), ("threads", 1), ("max_train_images", 0)):
            value = getattr(cfg, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(f"{path}: {key} must be a whole number >= {lo}, not {value!r}")
        if (not isinstance(cfg.sizes, list) or not cfg.sizes
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 64 and v % STRIDE == 0
                           for v in cfg.sizes + [cfg.val_boxsize])):
            raise ValueError(f"{path}: sizes and val_boxsize must be crop sides >= 64 and multiples of "
                             f"{STRIDE}, not {cfg.sizes!r} / {cfg.val_boxsize!r}")
        for key in ("person_scale", "pose_scale"):
            ps = getattr(cfg, key)
            if (not isinstance(ps, list) or len(ps) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ps)
                    or not 0.0 < ps[0] <= ps[1] <= 1.0):
                raise ValueError(f"{path}: {key} must be [low, high] with 0 < low <= high <= 1, "
                                 f"not {ps!r}")
        if not isinstance(cfg.cut_empty, bool):
            raise ValueError(f"{path}: cut_empty must be true or false, not {cfg.cut_empty!r}")
        if isinstance(cfg.loaders, bool) or not isinstance(cfg.loaders, int) or cfg.loaders < 1:
            raise ValueError(f"{path}: loaders must be a whole number >= 1, not {cfg.loaders!r}")
        if (not isinstance(cfg.packed, list)
                or not all(isinstance(p, str) and p for p in cfg.packed)):
            raise ValueError(f"{path}: packed must be a list of paths (parts or folders of "
                             f"them), not {cfg.packed!r}")
        if cfg.packed and cfg.kind != "pose":
            raise ValueError(f"{path}: packed crops are for pose recipes (the person net trains "
                             "on whole scenes made from the images)")
        if cfg.distill_from and cfg.kind != "pose":
            raise ValueError(f"{path}: distill_from is for pose recipes (a teacher's belief maps "
                             "are the soft targets of a pose net)")
        for key in ("distill_weight", "distill_scale_search"):
            if key in data and not cfg.distill_from:
                raise ValueError(f"{path}: {key} sets how distill_from's teacher is used; "
                                 "without distill_from it would do nothing")
        if cfg.relabel_with and cfg.kind != "pose":
            raise ValueError(f"{path}: relabel_with is for pose recipes (a person map has no "
                             "left and right)")
        groups = cfg.relabel_groups
        if (not isinstance(groups, list) or not groups or len(set(groups)) != len(groups)
                or not all(isinstance(g, str) and g in LIMB_GROUPS for g in groups)):
            raise ValueError(f"{path}: relabel_groups must be a list of distinct names from "
                             f"{list(LIMB_GROUPS)}, not {groups!r}")
        if "relabel_groups" in data and not cfg.relabel_with:
            raise ValueError(f"{path}: relabel_groups names the limbs that relabel_with's net may "
                             "relabel; without relabel_with it would do nothing")
        return cfg


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
            xs, ts, ws, _ = zip(*(pose_sample(c["images"][i], c["joints"][i], size, rng,
                                          rotation=cfg.rotation, rotation_prob=cfg.rotation_prob,
                                          rotation_any_prob=cfg.rotation_any_prob,
                                          lowres_prob=cfg.lowres_prob,
                                          scale=tuple(cfg.pose_scale), zoom_prob=cfg.zoom_prob,
                                          cut_prob=cfg.cut_prob, cut_empty=cfg.cut_empty,
                                          translation=cfg.translation)
                                for i in rng.integers(0, n, cfg.batch_size)))
            return (torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ts)),
                    torch.from_numpy(np.stack(ws)))
        width = int(round(size * rng.uniform(1.0, 1.8) / STRIDE)) * STRIDE
        xs, ts, _ = zip(*(person_scene(c["images"], c["joints"], size, width, rng,
                                       person_scale=tuple(cfg.person_scale), rotation=cfg.rotation,
                                       rotation_prob=cfg.rotation_prob,
                                       rotation_any_prob=cfg.rotation_any_prob,
                                       cover_prob=cfg.cover_prob, cut_prob=cfg.cut_prob,
                                       distractor_prob=cfg.distractor_prob)
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
    (flipped back, left / right swapped: the estimator's flip test, ``pipeline.flip_averaged``)
    and, with ``scale_search`` d > 0, with those of the images zoomed by 1 - d and 1 + d, the
    centre map kept (``PoseEstimator._scale_search_pass``; beyond the crop's edge the images
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


@torch.inference_mode()
def predict_crops(model, cache: dict, boxsize: int, device) -> tuple[np.ndarray, np.ndarray]:
    """The model's joints on every cached crop (person at 0.65 of the crop, no augmentation)
    and the ground truth in the same pixels: two (N, 14, 2) arrays."""
    rng = np.random.default_rng(0)
    preds, gts = [], []
    for s in range(0, len(cache["images"]), 32):
        items = [pose_sample(cache["images"][i], cache["joints"][i], boxsize, rng, augment=False)
                 for i in range(s, min(s + 32, len(cache["images"])))]
        x = torch.from_numpy(np.stack([it[0] for it in items])).to(device)
        out = model(x)[-1][:, :14].float().cpu().numpy()
        for o, it in zip(out, items):
            preds.append(from_map(argmax_subpixel(o)[:, :2]))
            gts.append(it[3])
    return np.array(preds), np.array(gts)


def validate_pose(model, cache: dict, boxsize: int, device) -> dict:
    """Fast gt-centre PCK@0.2 on the validation crops."""
    pck, _ = pck_summary(pck_correct(*predict_crops(model, cache, boxsize, device)))
    return {"val_pck": round(float(pck), 2)}


# The limb groups whose left/right labels relabelling may exchange (pairs of FLIP_PAIRS):
# the arms (shoulder, elbow, wrist) and the legs (hip, knee, ankle).
LIMB_GROUPS = {"arms": FLIP_PAIRS[:3], "legs": FLIP_PAIRS[3:]}


def mirrored_limbs(pred: np.ndarray, gt: np.ndarray, min_gain: int = 2) -> np.ndarray:
    """(N, 2) bool: where the predicted arms / legs (``LIMB_GROUPS``) fit the labels with left
    and right exchanged by at least ``min_gain`` more joints within PCK@0.2 than as given."""
    perm = flip_permutation()[:NUM_JOINTS]
    as_given, exchanged = pck_correct(pred, gt), pck_correct(pred[:, perm], gt)
    out = np.zeros((len(gt), len(LIMB_GROUPS)), bool)
    for g, pairs in enumerate(LIMB_GROUPS.values()):
        idx = [j for pair in pairs for j in pair]
        gain = np.nansum(exchanged[:, idx], 1) - np.nansum(as_given[:, idx], 1)
        out[:, g] = gain >= min_gain
    return out


def relabel_mirrored_limbs(cache: dict, weights: str | Path, boxsize: int, device,
                           record: Path, groups=tuple(LIMB_GROUPS)) -> np.ndarray:
    """Exchange, in ``cache`` (in place), the left/right labels of the limbs of ``groups`` (names
    of ``LIMB_GROUPS``) that the pose net ``weights`` fits far better mirrored
    (``mirrored_limbs``); returns the (N, len(LIMB_GROUPS)) flags of the limbs exchanged.

    LSP-extended was labelled by crowd workers, who sometimes named the limbs from the viewer's
    side: on the validation split the shipped net and an MPII-trained teacher both fit the
    mirrored labels better on about one person in eight.  A fixed judge (not the net being
    trained: a loss that forgives either side lets the net drift to the viewer's side, which
    cost 6 points of validation PCK in 1000 steps) relabels them once.  The flags are kept in
    ``record`` (JSON, with the judge's sha256: the verdict of other weights is an error) and read
    back on a resume.
    """
    digest = sha256(weights)
    if record.exists():
        try:
            data = json.loads(record.read_text())
            flags, judged_by = np.array(data["flags"], bool), data["sha256"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{record} is not a relabelling record ({exc!r}): delete it to "
                             "judge again") from exc
        if judged_by != digest:
            raise ValueError(f"{record} holds the verdict of other weights (sha256 "
                             f"{str(judged_by)[:12]}..., not {weights}'s {digest[:12]}...): delete "
                             "it to judge again")
    else:
        judge = load_model(weights, kind="pose").to(device)
        flags = mirrored_limbs(*predict_crops(judge, cache, boxsize, device))
        record.write_text(json.dumps({"weights": str(weights), "sha256": digest,
                                      "groups": list(LIMB_GROUPS), "judged": flags.sum(0).tolist(),
                                      "flags": flags.astype(int).tolist()}))
    if flags.shape != (len(cache["joints"]), len(LIMB_GROUPS)):
        raise ValueError(f"{record} does not match the training set ({flags.shape[0]} persons, "
                         f"not {len(cache['joints'])}): delete it to judge again")
    flags = flags & np.isin(list(LIMB_GROUPS), list(groups))
    for g, pairs in enumerate(LIMB_GROUPS.values()):
        rows = np.flatnonzero(flags[:, g])
        for a, b in pairs:
            for key in ("joints", "visible"):
                cache[key][rows, a], cache[key][rows, b] = cache[key][rows, b], cache[key][rows, a]
    return flags


@torch.inference_mode()
def validate_person(model, val, detector_size: int, device, threshold: float = 0.2) -> dict:
    """Detector recall on the validation images seen as the pipeline's detector sees them
    (:func:`~humanpose.estimator.pipeline.detector_frame`, longer side ``detector_size``): a
    peak above ``threshold`` (the config's default) within 0.3 x person size of the centre."""
    hits, peaks = 0, 0
    for path, joints in zip(val.images, val.joints):
        det, sx, sy = detector_frame(cv2.imread(str(path)), detector_size)
        x = torch.from_numpy(normalise(det)[None]).to(device)
        m = model(x)[-1][0, 0].float().cpu().numpy()
        pk = find_peaks(m, threshold, min_distance=0.15 * detector_size * 0.75 / STRIDE)
        peaks += len(pk)
        c, size = person_box(joints)
        if len(pk):
            d = np.linalg.norm((from_map(pk[:, :2]) + 0.5) / (sx, sy) - 0.5 - c, axis=1).min()
            hits += d <= 0.3 * size
    return {"val_recall": round(100.0 * hits / len(val), 2),
            "val_peaks_per_image": round(peaks / len(val), 3)}


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
            outputs = model(x)
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
