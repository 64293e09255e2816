"""The training recipe (``train/*.yml``): :class:`TrainConfig`, its defaults and its validation
(:meth:`TrainConfig.load`: one line naming the key for an unknown key, a wrong type or a value out
of range).  :mod:`.trainer` trains what it describes.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from ..estimator.maps import STRIDE
from ..skeleton import FLIP_PAIRS

# The limb groups whose left/right labels relabelling may exchange (pairs of FLIP_PAIRS):
# the arms (shoulder, elbow, wrist) and the legs (hip, knee, ankle).
LIMB_GROUPS = {"arms": FLIP_PAIRS[:3], "legs": FLIP_PAIRS[3:]}


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
                                           # person, the scene's bottom edge (scenes.person_scene)
    cut_empty: bool = False                # pose: the joints below the cut trained to empty maps
                                           # (scored low) instead of left untrained
    neighbour_prob: float = 0.0            # pose: another person pasted beside the centred one
                                           # (a walker's companion), the targets unchanged;
                                           # person: a companion beside each pasted upright
                                           # person, a second target (scenes._paste_companion)
    pseudo_labels: bool = False            # person: the other people in the training crops,
                                           # found by the configured nets (train/pseudo.py), are
                                           # targets too where a crop is a scene's background
    translation: float = 0.04              # pose: sd of the person's offset from the crop centre,
                                           # a fraction of the crop side
    person_scale: list = field(default_factory=lambda: [0.25, 0.9])   # person: a person's size
                                           # as a fraction of the scene height, uniform in this range
    cover_prob: float = 0.0                # person: scenes on a background that covers them (scenes)
    distractor_prob: float = 0.0           # person: scenes with person-free distractors (scenes)
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
    precision: str = "fp32"                # fp32 | bf16: forward and backward under bfloat16
                                           # autocast where the device has native bf16 (CPU:
                                           # AVX512-BF16 or AMX; CUDA: Ampere+), else fp32 with a
                                           # note (the master weights and the loss stay fp32)
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
        from ..config import read_yaml, short_repr   # one-line errors, no duplicate keys
        data = read_yaml(path)
        if not isinstance(data, dict) or not data:
            # an empty recipe would otherwise start a long run with every default
            raise ValueError(f"{path}: a recipe is a YAML mapping of settings (at least `kind: pose` "
                             f"or `kind: person`), not {type(data).__name__ if data else 'empty'}")
        known = {f.name for f in fields(cls)}
        bad = set(data) - known
        if bad:
            raise ValueError(f"{path}: unknown key(s) {short_repr(sorted(map(str, bad)))}; "
                             f"allowed: {sorted(known)}")
        cfg = cls(**data)
        if cfg.kind not in ("pose", "person"):
            raise ValueError(f"{path}: kind {short_repr(cfg.kind)} is not allowed; allowed: pose, "
                             "person")
        for key, hi, what in (("rotation", 180.0, "0..180 degrees"),
                              ("rotation_prob", 1.0, "a probability in 0..1"),
                              ("rotation_any_prob", 1.0, "a probability in 0..1"),
                              ("cover_prob", 1.0, "a probability in 0..1"),
                              ("distractor_prob", 1.0, "a probability in 0..1"),
                              ("lowres_prob", 1.0, "a probability in 0..1"),
                              ("zoom_prob", 1.0, "a probability in 0..1"),
                              ("cut_prob", 1.0, "a probability in 0..1"),
                              ("neighbour_prob", 1.0, "a probability in 0..1"),
                              ("translation", 0.5, "a fraction of the crop in 0..0.5"),
                              ("distill_weight", 1.0, "a share of the loss in 0..1"),
                              ("distill_scale_search", 0.5, "a zoom fraction in 0..0.5")):
            value = getattr(cfg, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= hi:
                raise ValueError(f"{path}: {key} must be {what}, not {short_repr(value)}")
        for key, lo, what in (("lr", 0.0, "a number > 0"), ("weight_decay", 0.0, "a number >= 0"),
                              ("positive_weight", 0.0, "a number >= 0"),
                              ("trunk_lr", 0.0, "a number >= 0")):
            value = getattr(cfg, key)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not (value > lo if key == "lr" else value >= lo)):
                hint = (" (YAML reads 1e-3 as text: write 1.0e-3)"
                        if isinstance(value, str) and "e" in value.lower() else "")
                raise ValueError(f"{path}: {key} must be {what}, not {short_repr(value)}{hint}")
        for key, lo in (("freeze_trunk_steps", 0), ("steps", 1), ("batch_size", 1),
                        ("val_every", 1), ("checkpoint_every", 1), ("val_detector_size", 64),
                        ("val_images", 1), ("threads", 1), ("max_train_images", 0)):
            value = getattr(cfg, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(f"{path}: {key} must be a whole number >= {lo}, "
                                 f"not {short_repr(value)}")
        if (not isinstance(cfg.sizes, list) or not cfg.sizes
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 64 and v % STRIDE == 0
                           for v in cfg.sizes + [cfg.val_boxsize])):
            raise ValueError(f"{path}: sizes and val_boxsize must be crop sides >= 64 and multiples of "
                             f"{STRIDE}, not {short_repr(cfg.sizes)} / {short_repr(cfg.val_boxsize)}")
        for key in ("person_scale", "pose_scale"):
            ps = getattr(cfg, key)
            if (not isinstance(ps, list) or len(ps) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ps)
                    or not 0.0 < ps[0] <= ps[1] <= 1.0):
                raise ValueError(f"{path}: {key} must be [low, high] with 0 < low <= high <= 1, "
                                 f"not {short_repr(ps)}")
        if not isinstance(cfg.cut_empty, bool):
            raise ValueError(f"{path}: cut_empty must be true or false, not {short_repr(cfg.cut_empty)}")
        if cfg.precision not in ("fp32", "bf16"):
            raise ValueError(f"{path}: precision {short_repr(cfg.precision)} is not allowed; "
                             "allowed: fp32, bf16")
        if isinstance(cfg.loaders, bool) or not isinstance(cfg.loaders, int) or cfg.loaders < 1:
            raise ValueError(f"{path}: loaders must be a whole number >= 1, not {short_repr(cfg.loaders)}")
        if (not isinstance(cfg.packed, list)
                or not all(isinstance(p, str) and p for p in cfg.packed)):
            raise ValueError(f"{path}: packed must be a list of paths (parts or folders of "
                             f"them), not {short_repr(cfg.packed)}")
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
                             f"{list(LIMB_GROUPS)}, not {short_repr(groups)}")
        if "relabel_groups" in data and not cfg.relabel_with:
            raise ValueError(f"{path}: relabel_groups names the limbs that relabel_with's net may "
                             "relabel; without relabel_with it would do nothing")
        return cfg
