"""Training data: readers, splits, targets, augmentation, PCK arithmetic, a tiny training run, eval."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io as sio
import torch

from humanpose import cli, skeleton as sk
from humanpose.estimator.maps import argmax_subpixel, from_map
from humanpose.train import metrics
from humanpose.train.datasets import DatasetError, read_lsp_dir
from humanpose.train.samples import flip_joints, pose_sample, pose_targets
from humanpose.train.scenes import person_scene

from conftest import shared_path


def _fake_lsp(tmp_path, n=6, fmt="lsp", seed=0):
    """A tiny LSP-layout directory: grey images with a stick figure and joints.mat."""
    import cv2
    rng = np.random.default_rng(seed)
    (tmp_path / "images").mkdir(parents=True)
    joints_lsp = np.zeros((n, 14, 3))
    for i in range(n):
        img = np.full((160, 120, 3), 90, np.uint8)
        base = np.array([[45, 140], [47, 110], [50, 85], [70, 85], [72, 110], [74, 140],
                         [35, 80], [40, 62], [48, 45], [72, 45], [80, 62], [86, 80],
                         [60, 40], [60, 15]], float) + rng.normal(0, 2, (14, 2))
        for x, y in base:
            cv2.circle(img, (int(x), int(y)), 3, (255, 255, 255), -1)
        cv2.imwrite(str(tmp_path / "images" / f"im{i + 1:04d}.jpg"), img)
        joints_lsp[i, :, :2] = base
        joints_lsp[i, :, 2] = 0 if fmt == "lsp" else 1
    joints_lsp[0, 5, 2] = 1 if fmt == "lsp" else 0       # R-... occluded / invisible flag
    if fmt == "lsp":
        mat = joints_lsp.transpose(2, 1, 0)              # 3 x 14 x N
    else:
        joints_lsp[1, 0, :2] = -1                        # a missing joint in LSP-extended
        mat = joints_lsp.transpose(1, 2, 0)              # 14 x 3 x N
    sio.savemat(str(tmp_path / "joints.mat"), {"joints": mat})
    return joints_lsp


def test_reader_lsp_flags_and_order(tmp_path):
    raw = _fake_lsp(tmp_path, fmt="lsp")
    data = read_lsp_dir(tmp_path)
    assert data.fmt == "lsp" and data.joints.shape == (6, 14, 2) and len(data) == 6
    # MPI head-top is LSP joint 13
    assert np.allclose(data.joints[:, 0], raw[:, 13, :2])
    # LSP flag 1 = occluded: LSP joint 5 (L-ankle) of image 0 is not visible
    assert not data.visible[0, sk.JOINT_INDEX["l_ankle"]] and data.visible[1].all()


def test_reader_lspet_flags_and_missing(tmp_path):
    raw = _fake_lsp(tmp_path, fmt="lspet")
    data = read_lsp_dir(tmp_path)
    assert data.fmt == "lspet"
    assert np.allclose(data.joints[2, sk.JOINT_INDEX["r_ankle"]], raw[2, 0, :2])
    assert not data.visible[0, sk.JOINT_INDEX["l_ankle"]]           # flag 0 = invisible
    assert np.isnan(data.joints[1, sk.JOINT_INDEX["r_ankle"]]).all()  # x <= 0 -> missing


def test_reader_errors(tmp_path):
    with pytest.raises(DatasetError, match="joints.mat not found"):
        read_lsp_dir(tmp_path)
    _fake_lsp(tmp_path)
    with pytest.raises(DatasetError, match="LSP-extended joints must be 14x3xN"):
        read_lsp_dir(tmp_path, "lspet")


def test_shared_readers_shapes():
    lsp = read_lsp_dir(shared_path("data", "lsp"), "lsp")
    assert len(lsp) == 1000 and lsp.joints.shape == (1000, 14, 2)
    # in LSP most joints are not occluded; head-top is above the ankles
    assert 0.8 < lsp.visible.mean() < 1.0
    assert np.nanmean(lsp.joints[:, 0, 1] < lsp.joints[:, 10, 1]) > 0.8


def test_targets_peak_at_joints_and_background():
    joints = np.full((14, 2), np.nan)
    joints[0] = (100.0, 60.0)
    joints[4] = (20.0, 150.0)
    joints[7] = (500.0, 10.0)                 # outside the crop
    t, w = pose_targets(joints, 192)
    assert t.shape == (15, 24, 24)
    peaks = from_map(argmax_subpixel(t[[0, 4]])[:, :2])
    assert np.allclose(peaks, joints[[0, 4]], atol=0.05)
    assert t[7].max() < 1e-3 and w[7] == 1 and w[1] == 0      # outside: empty; missing: masked
    assert np.allclose(t[14], 1 - t[:14].max(0))


def test_flip_swaps_left_and_right():
    joints = np.zeros((14, 2))
    joints[:, 0] = np.arange(14)
    f = flip_joints(joints, 100)
    r, l = sk.JOINT_INDEX["r_wrist"], sk.JOINT_INDEX["l_wrist"]
    assert f[r, 0] == 99 - joints[l, 0] and f[l, 0] == 99 - joints[r, 0]
    assert f[0, 0] == 99 - joints[0, 0]


def test_augmented_sample_targets_follow_the_image():
    """A bright dot drawn at each joint stays under its target peak after augmentation."""
    import cv2
    img = np.zeros((288, 288, 3), np.uint8)
    joints = np.array([[144 + 40 * np.cos(a), 144 + 60 * np.sin(a)]
                       for a in np.linspace(0, 2 * np.pi, 14, endpoint=False)])
    rng = np.random.default_rng(3)
    for n in range(6):
        x, t, w, j = pose_sample(img, joints, 160, rng, augment=False)
        assert x.shape == (4, 160, 160) and t.shape == (15, 20, 20)
    for n in range(10):
        canvas = img.copy()
        k = n % 14
        cv2.circle(canvas, tuple(int(v) for v in joints[k]), 4, (255, 255, 255), -1)
        x, t, w, j = pose_sample(canvas, joints, 160, rng, augment=True)
        if not (0 <= j[:, 0].min() and j[:, 0].max() < 160 and 0 <= j[:, 1].min() and j[:, 1].max() < 160):
            continue
        bright = x[:3].mean(0)
        # the target of some joint peaks where the dot ended up (a flip may rename it)
        yy, xx = np.unravel_index(bright.argmax(), bright.shape)
        d = np.linalg.norm(j - (xx, yy), axis=1).min()
        assert d < 6


def test_rotation_augmentation_settings():
    """Default ±40°: an upright person never ends upside down; rotation_any_prob=1 turns some
    over; rotation_prob=0 keeps the torso's angle."""
    img = np.zeros((288, 288, 3), np.uint8)
    joints = np.full((14, 2), 144.0)
    joints[:, 1] = np.linspace(60, 230, 14)            # head at the top, ankles at the bottom
    joints[:, 0] += np.linspace(-20, 20, 14)

    def angles(**kw):
        rng = np.random.default_rng(1)
        return np.array([metrics.torso_angle(pose_sample(img, joints, 128, rng, **kw)[3][None])[0]
                         for _ in range(60)])
    upright = metrics.torso_angle(joints[None])[0]
    assert angles().max() <= upright + 40 + 1e-6
    assert angles(rotation_any_prob=1.0).max() > 120
    assert np.allclose(angles(rotation_prob=0.0), upright)


def test_recipe_keys_are_checked(tmp_path):
    """A bad augmentation / relabelling value or a recipe that is not a mapping is a ValueError
    naming the key; good values load."""
    from humanpose.train.recipe import TrainConfig

    def _recipe(text: str):
        (tmp_path / "recipe.yml").write_text(text)
        return tmp_path / "recipe.yml"
    bad = [("kind: pose\nrotation_any_prob: 1.5\n", "rotation_any_prob"),
           ("kind: pose\nrotation: 270\n", "rotation must be"),
           ("kind: pose\nrotation_prob: often\n", "rotation_prob must be a probability"),
           ("kind: person\nperson_scale: [0.5, 0.2]\n", "person_scale must be"),
           ("kind: person\nperson_scale: 0.5\n", "person_scale must be"),
           ("kind: pose\npose_scale: [0.4, 1.3]\n", "pose_scale must be"),
           ("kind: pose\nzoom_prob: 1.2\n", "zoom_prob must be a probability"),
           ("kind: pose\nlowres_prob: -0.1\n", "lowres_prob must be a probability"),
           ("kind: pose\ncut_prob: 1.5\n", "cut_prob must be a probability"),
           ("kind: pose\ncut_empty: 1\n", "cut_empty must be true or false"),
           ("kind: pose\ntranslation: 0.8\n", "translation must be a fraction of the crop"),
           ("kind: person\ncover_prob: 2\n", "cover_prob must be a probability"),
           ("kind: person\ndistractor_prob: yes\n", "distractor_prob must be a probability"),
           ("kind: person\nrelabel_with: models/pose_compact.safetensors\n", "relabel_with is for pose"),
           ("kind: pose\nrelabel_groups: [arms, hands]\n", "relabel_groups must be .* not \\['arms', 'hands'\\]"),
           ("kind: pose\nrelabel_groups: []\n", "relabel_groups must be"),
           ("kind: pose\nrelabel_groups: [legs, legs]\n", "relabel_groups must be"),
           ("kind: pose\nrelabel_groups: arms\n", "relabel_groups must be a list"),
           ("kind: pose\nrelabel_groups: [arms]\n", "without relabel_with it would do nothing"),
           ("kind: person\ndistill_from: models/pose_compact.safetensors\n", "distill_from is for pose"),
           ("kind: pose\ndistill_weight: 0.3\n", "without distill_from it would do nothing"),
           ("kind: pose\ndistill_scale_search: 0.15\n", "without distill_from it would do nothing"),
           ("kind: pose\ndistill_from: t.safetensors\ndistill_scale_search: 0.8\n",
            "distill_scale_search must be a zoom fraction"),
           ("kind: pose\ndistill_from: t.safetensors\ndistill_weight: 1.5\n", "distill_weight must be a share"),
           ("kind: pose\nprecision: fp16\n", "precision 'fp16' is not allowed; allowed: fp32, bf16"),
           ("kind: pose\nloaders: 0\n", "loaders must be a whole number >= 1, not 0"),
           ("kind: pose\npacked: crops/\n", "packed must be a list of paths"),
           ("kind: person\npacked: [crops/]\n", "packed crops are for pose recipes"),
           ("kind: pose\nloaders: 2.5\n", "loaders must be a whole number"),
           ("kind: pose\nlr: 1e-3\n", "lr must be a number > 0, not '1e-3' .*write 1.0e-3"),
           ("kind: pose\npositive_weight: -5\n", "positive_weight must be a number >= 0"),
           ("kind: pose\nval_every: 0\n", "val_every must be a whole number >= 1, not 0"),
           ("kind: pose\nbatch_size: 0\n", "batch_size must be a whole number >= 1"),
           ("kind: pose\nsizes: [100, 0]\n", "sizes and val_boxsize must be crop sides"),
           ("# only a comment\n", "a recipe is a YAML mapping .* not empty"),
           ("- kind: pose\n", "a recipe is a YAML mapping .* not list")]
    for text, message in bad:
        with pytest.raises(ValueError, match=message):
            TrainConfig.load(_recipe(text))
    assert TrainConfig.load(_recipe("kind: pose\nrotation_any_prob: 0.25\n")).rotation_any_prob == 0.25
    cfg = TrainConfig.load(_recipe("kind: pose\nrelabel_with: judge.safetensors\nrelabel_groups: [arms]\n"))
    assert cfg.relabel_groups == ["arms"]
    cfg = TrainConfig.load(_recipe("kind: pose\ndistill_from: t.safetensors\ndistill_weight: 0.25\n"))
    assert cfg.distill_weight == 0.25
    cfg = TrainConfig.load(_recipe("kind: person\nperson_scale: [0.12, 0.9]\ncover_prob: 0.5\n"))
    assert cfg.person_scale == [0.12, 0.9] and cfg.cover_prob == 0.5


def test_every_recipe_in_train_loads():
    """Every recipe the model cards and the docs cite exists in train/, and every recipe there
    passes the same checks as a new one: no unknown key, no bad value, and its net can be built
    (a typo would surface only when someone reruns a recipe hours later).  The training log
    cites removed recipes by the commit that holds them, so it is not checked."""
    import re

    from humanpose.nets import build_model
    from humanpose.train.recipe import TrainConfig
    root = Path(__file__).resolve().parents[1]
    citing = [*root.glob("models/*.md"), root / "README.md",
              *(p for p in root.glob("docs/*.md") if p.name != "training-log.md")]

    def recipes_in(text: str) -> set[str]:
        names = set(re.findall(r"train/([\w-]+\.yml)", text))
        # a shell loop: for r in c d e; do ... train/pose_compact_$r.yml; done
        for _, values, stem in re.findall(r"for (\w+) in ([\w ]+); do[^\n]*train/([\w-]*)\$\1\.yml",
                                          text):
            names.update(f"{stem}{v}.yml" for v in values.split())
        return names
    cited = set().union(*(recipes_in(p.read_text()) for p in citing))
    cards = set().union(*(recipes_in(p.read_text()) for p in root.glob("models/*.md")))
    assert len(cards) >= 5                  # the cards say which recipes made the shipped weights
    recipes = sorted((root / "train").glob("*.yml"))
    missing = sorted(cited - {p.name for p in recipes})
    assert not missing, f"cited but not in train/: {missing}"
    for path in recipes:
        cfg = TrainConfig.load(path)
        assert cfg.kind in ("person", "pose"), path.name
        assert build_model(cfg.arch, cfg.kind, **cfg.arch_kwargs).kind == cfg.kind, path.name


def test_pose_sample_scale_and_zoom_ranges():
    """The person's size in the crop follows pose_scale, or zoom_prob's 1.1-2.0."""
    img = np.full((288, 288, 3), 90, np.uint8)
    joints = np.column_stack([np.full(14, 144.0), np.linspace(60, 230, 14)])   # 170 px tall
    rng = np.random.default_rng(0)

    def sizes(**kw):
        out = []
        for _ in range(200):
            j = pose_sample(img, joints, 160, rng, rotation_prob=0.0, **kw)[3]
            out.append(np.ptp(j, axis=0).max() / 160)
        return np.array(out)
    default, narrow = sizes(zoom_prob=0.0), sizes(scale=(0.45, 0.9), zoom_prob=0.0)
    assert default.min() >= 0.3 - 1e-6 and default.max() <= 0.95 + 1e-6 and default.min() < 0.4
    assert narrow.min() >= 0.45 - 1e-6 and narrow.max() <= 0.9 + 1e-6 and np.ptp(narrow) > 0.35
    assert sizes(zoom_prob=1.0).min() >= 1.1 - 1e-6
    assert 0.1 < (sizes() > 1.0).mean() < 0.3                       # zoom_prob 0.2 by default


def test_pose_sample_translation_moves_the_person_off_the_centre_map():
    """translation: sd of the person's offset from the crop centre (where the centre map is),
    as a fraction of the crop side; 0 keeps the person's box centred."""
    img = np.full((288, 288, 3), 90, np.uint8)
    joints = np.column_stack([np.linspace(130, 158, 14), np.linspace(60, 230, 14)])
    rng = np.random.default_rng(0)

    def offsets(t):
        out = []
        for _ in range(300):
            x, _, _, j = pose_sample(img, joints, 160, rng, rotation_prob=0.0, zoom_prob=0.0,
                                     translation=t)
            assert np.unravel_index(x[3].argmax(), x[3].shape) in ((79, 79), (79, 80), (80, 79), (80, 80))
            out.append((j.min(0) + j.max(0)) / 2 - 79.5)
        return np.array(out) / 160
    assert np.abs(offsets(0.0)).max() < 1e-3
    for t in (0.04, 0.12):
        sd = offsets(t).std(0)
        assert np.all(np.abs(sd - t) < 0.2 * t), (t, sd)


def test_pose_sample_low_resolution_blurs_the_input_not_the_targets():
    import cv2
    img = (np.indices((288, 288)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, 2)
    joints = np.full((14, 2), 144.0)
    joints[:, 1] = np.linspace(60, 230, 14)

    def sample(p):
        return pose_sample(img, joints, 128, np.random.default_rng(5), lowres_prob=p)
    sharp, blurred = sample(0.0), sample(1.0)
    detail = [cv2.Laplacian(s[0][0], cv2.CV_32F).var() for s in (sharp, blurred)]
    assert detail[1] < 0.2 * detail[0]
    assert np.array_equal(sharp[1], blurred[1]) and np.allclose(sharp[3], blurred[3])
    assert np.array_equal(sharp[0][3], blurred[0][3])              # the centre map too


def test_pose_sample_neighbour_is_pasted_beside_the_person_and_not_a_target():
    """A dark person (narrow joint box) on a mid-grey crop, a bright neighbour: the bright
    pixels land to its left or right, off its own joints, and the targets stay its own."""
    img = np.full((288, 288, 3), 100, np.uint8)
    joints = np.full((14, 2), 144.0)
    joints[:, 0] += np.where(np.arange(14) % 2, 12.0, -12.0)
    joints[:, 1] = np.linspace(80, 208, 14)
    img[76:212, 128:160] = 20                                     # the person
    other = np.full((288, 288, 3), 100, np.uint8)
    other[76:212, 128:160] = 250                                  # the neighbour, as tall
    for seed in range(6):
        alone = pose_sample(img, joints, 128, np.random.default_rng(seed), augment=False)
        pair = pose_sample(img, joints, 128, np.random.default_rng(seed), augment=False,
                           neighbours=[(other, joints)])
        assert np.array_equal(alone[1], pair[1]) and np.array_equal(alone[2], pair[2])
        bright = (pair[0][0] + 0.5) * 256 > 200
        assert bright.sum() > 200                                 # it is there
        cols = np.nonzero(bright.any(0))[0]
        j = pair[3]
        mid, half = j[:, 0].mean(), np.ptp(j[:, 0]) / 2
        assert abs(cols.mean() - mid) > 1.3 * half                # beside it, not on it ...
        core = slice(int(mid - 0.3 * half), int(mid + 0.3 * half) + 1)
        assert np.array_equal(alone[0][:, :, core], pair[0][:, :, core])   # ... its middle free


def test_person_scene_companions_add_a_second_target_beside_pasted_people():
    rng_imgs = np.random.default_rng(1)
    imgs = rng_imgs.integers(60, 200, (4, 288, 288, 3)).astype(np.uint8)
    joints = np.tile(np.array([[130.0, 80.0], [158.0, 208.0]]), (4, 7, 1))   # upright, 128 tall

    def scenes(p, seed=0):
        rng = np.random.default_rng(seed)
        return [person_scene(imgs, joints, 160, 288, rng, person_scale=(0.3, 0.5),
                             companion_prob=p) for _ in range(30)]
    plain, default = scenes(0.0), [person_scene(imgs, joints, 160, 288, r, person_scale=(0.3, 0.5))
                                   for r in [np.random.default_rng(0)] for _ in range(30)]
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(plain, default))   # no draw when off
    pairs = scenes(1.0)
    assert np.mean([len(c) for *_, c in pairs]) > 1.4 * np.mean([len(c) for *_, c in plain])
    side_by_side = 0
    for x, t, c in pairs:
        d = c[:, None] - c[None]
        side_by_side += np.any((np.abs(d[..., 0]) > 0.3 * 48) & (np.abs(d[..., 1]) < 0.1 * 80))
        for cx, cy in c:                                      # every centre is a target peak
            assert t[0, int(cy // 8), int(cx // 8)] > 0.5
    assert side_by_side >= 15


def test_person_scene_pseudo_labelled_people_become_targets_where_their_crop_is_the_background():
    imgs = np.full((2, 288, 288, 3), 100, np.uint8)
    joints = np.tile(np.array([[130.0, 80.0], [158.0, 208.0]]), (2, 7, 1))
    extra = np.full((2, 4, 2), np.nan, np.float32)
    extra[:, 0] = (60.0, 150.0)                        # one more person left of each one
    counts = {}
    for name, e in (("without", None), ("with", extra)):
        rng = np.random.default_rng(3)
        scenes = [person_scene(imgs, joints, 160, 256, rng, cover_prob=1.0, max_people=1,
                               extra_centres=e) for _ in range(20)]
        counts[name] = sum(len(c) for *_, c in scenes)
        for x, t, c in scenes:
            for cx, cy in c:
                assert t[0, int(cy // 8), int(cx // 8)] > 0.5
    assert counts["with"] > counts["without"]


def test_person_scene_targets():
    rng = np.random.default_rng(0)
    imgs = np.full((3, 288, 288, 3), 100, np.uint8)
    joints = np.tile(np.array([[120.0, 80.0], [168.0, 210.0]]), (3, 7, 1))
    x, t, centres = person_scene(imgs, joints, 128, 192, rng)
    assert x.shape == (3, 128, 192) and t.shape == (1, 16, 24)
    assert len(centres) >= 1
    for c in centres:
        u = from_map(argmax_subpixel(t[:, int(c[1] // 8):int(c[1] // 8) + 1, :])[:, :2])
        assert np.isfinite(u).all()
    assert t.max() > 0.9


def test_person_scene_centres_stay_on_rotated_small_and_covering_people():
    """Every target centre lies on its person: each cached person is a red disc at the centre
    of its joint box on grey, and the scene must be red at every returned centre, whether the
    person was rotated, shrunk to 0.12 of the scene or enlarged as the covering background."""
    import cv2
    imgs = np.full((4, 288, 288, 3), 100, np.uint8)
    joints = np.tile(np.array([[120.0, 80.0], [168.0, 210.0]]), (4, 7, 1))   # centre (144, 145)
    for im in imgs:
        cv2.circle(im, (144, 145), 40, (0, 0, 255), -1)
    rng = np.random.default_rng(1)
    seen = 0
    for _ in range(60):
        x, t, centres = person_scene(imgs, joints, 128, 192, rng, person_scale=(0.12, 0.9),
                                     rotation=40.0, rotation_prob=0.5, rotation_any_prob=0.5,
                                     cover_prob=0.5)
        img = ((x.transpose(1, 2, 0) + 0.5) * 256.0).astype(int)
        for cx, cy in centres:
            b, g, r = img[int(round(cy)), int(round(cx))]
            assert r > g + 40 and r > b + 40, (cx, cy, (b, g, r))
            seen += 1
        for cx, cy in centres:        # and the target peaks there
            assert t[0, int(cy // 8), int(cx // 8)] > 0.5
    assert seen > 90


def _red_person_cache(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Cached "people": a red disc at the centre (144, 145) of each joint box, on grey."""
    imgs = np.full((n, 288, 288, 3), 100, np.uint8)
    joints = np.tile(np.array([[120.0, 80.0], [168.0, 210.0]]), (n, 7, 1))
    for im in imgs:
        cv2.circle(im, (144, 145), 40, (0, 0, 255), -1)
    return imgs, joints


def test_distractors_paint_only_their_mask_and_scramble_the_body():
    from humanpose.train import distractors
    imgs, joints = _red_person_cache()
    scene = np.full((128, 192, 3), (30, 160, 60), np.uint8)    # green: unlike any cached pixel
    for seed in range(20):
        rng = np.random.default_rng(seed)
        for paint, mask in (distractors._tape(scene, rng), distractors._panel_box(scene, 60.0, rng)):
            assert set(np.unique(mask)) <= {0, 255} and (mask > 0).any()
            assert (paint[mask > 0] != scene[mask > 0]).any(1).mean() > 0.5   # painted in the mask
        tape = distractors._tape(scene, rng)[1]
        assert 0 < (tape > 0).mean() < 0.12                       # a thin line, not a block
        narrow = np.full((128, 96, 3), 100, np.uint8)             # a box wider than the scene
        assert (distractors._panel_box(narrow, 115.0, rng)[1] > 0).any()
        paint, mask = distractors._shuffled_person(scene, 80.0, imgs, joints, rng)
        ys, xs = np.nonzero(mask)
        cy, cx = np.nonzero((paint != scene).any(2))              # painted: the patch's rectangle,
        assert len(ys) and ys.min() - 3 <= cy.min() and cy.max() <= ys.max() + 3   # which the
        assert xs.min() - 3 <= cx.min() and cx.max() <= xs.max() + 3              # mask spans
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        middle = paint[ys.min() + h // 3: ys.min() + 2 * h // 3, xs.min() + w // 3: xs.min() + 2 * w // 3]
        red = (middle[..., 2] > 200) & (middle[..., 0] < 50)
        assert red.mean() < 0.8                  # the body's red middle tile moved away ...
        assert ((paint[..., 2] > 200) & (paint[..., 0] < 50)).sum() > 0.25 * red.size   # ... not lost


def test_person_scene_distractors_are_never_targets_and_hide_people():
    """Distractors add no target, and a person is dropped only where one covers its centre."""
    from humanpose.train import distractors
    imgs, joints = _red_person_cache()
    dropped = 0
    for seed in range(80):
        rng = np.random.default_rng(seed)
        scene = np.full((128, 192, 3), (30, 160, 60), np.uint8)
        c = np.array([96.0, 64.0])
        out, centres = distractors._paste_distractors(scene, [c], imgs, joints, rng, (0.2, 0.9))
        changed = bool((out[64, 96] != scene[64, 96]).any())
        if not centres:
            assert changed            # only a distractor over the centre drops it
            dropped += 1
    assert dropped >= 5
    rng = np.random.default_rng(2)
    for _ in range(40):
        x, t, centres = person_scene(imgs, joints, 128, 192, rng, person_scale=(0.12, 0.9),
                                     distractor_prob=1.0)
        peaks = np.argwhere(t[0] > 0.5)
        for cy, cx in peaks:          # every target peak belongs to a returned centre
            assert np.min(np.hypot(centres[:, 0] / 8 - cx, centres[:, 1] / 8 - cy)) < 2.5


def test_pck_arithmetic():
    gt = np.zeros((2, 14, 2))
    gt[:, sk.JOINT_INDEX["l_shoulder"]] = (0, 0)
    gt[:, sk.JOINT_INDEX["r_hip"]] = (30, 40)           # torso 50 -> threshold 10 px
    pred = gt.copy()
    pred[0, 0] += (6, 8)                                 # exactly 10 px: correct
    pred[0, 1] += (0, 10.5)                              # wrong
    pred[1, 2] = np.nan                                  # no prediction: wrong
    gt[1, 3] = np.nan                                    # no ground truth: not counted
    c = metrics.pck_correct(pred, gt)
    assert c[0, 0] == 1 and c[0, 1] == 0 and c[1, 2] == 0 and np.isnan(c[1, 3])
    mean, per_joint = metrics.pck_summary(c)
    assert mean == pytest.approx(100 * 25 / 27)       # 27 counted, 2 wrong
    assert per_joint[0] == 100 and per_joint[1] == 50
    # no left shoulder: not scored, or scored by the other diagonal (right shoulder to left hip)
    gt[1, sk.JOINT_INDEX["l_shoulder"]] = np.nan
    gt[1, sk.JOINT_INDEX["r_shoulder"]] = (0, 0)
    gt[1, sk.JOINT_INDEX["l_hip"]] = (60, 80)         # torso 100 -> threshold 20 px
    pred[1] = gt[1] + (0, 15)
    assert np.isnan(metrics.pck_correct(pred, gt)[1]).all()
    either = metrics.pck_correct(pred, gt, either_diagonal=True)
    np.testing.assert_array_equal(either[0], c[0])     # the first diagonal wins where it exists
    counted = np.isfinite(gt[1, :, 0])
    assert (either[1, counted] == 1).all() and np.isnan(either[1, ~counted]).all()
    pred[1, 0] = gt[1, 0] + (0, 21)
    assert metrics.pck_correct(pred, gt, either_diagonal=True)[1, 0] == 0


def test_mirror_tolerant_pck_scores_a_mirrored_annotation_and_marks_it():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 200, (3, 14, 2))
    pred = gt.copy()
    perm = sk.flip_permutation()[:14]
    pred[1] = gt[1][perm]                     # read (or annotated) with left and right exchanged
    pred[2, :3] += 500                        # three joints simply wrong
    straight = metrics.pck_correct(pred, gt)
    ok, swapped = metrics.pck_mirror_tolerant(pred, gt)
    assert swapped.tolist() == [False, True, False]
    assert np.nansum(straight[1]) < 14 and (ok[1] == 1).all()      # all right once exchanged
    np.testing.assert_array_equal(ok[[0, 2]], straight[[0, 2]])    # the others as they were
    assert metrics.pck_summary(ok)[0] == pytest.approx(100 * 39 / 42)


def test_a_failing_batch_stops_training_with_its_error_instead_of_hanging():
    """The batch thread hands its exception to the training loop (it used to die silently
    and leave the loop waiting for ever)."""
    import threading
    from humanpose.train.batches import Batches
    from humanpose.train.recipe import TrainConfig
    cfg = TrainConfig(kind="pose", batch_size=2, sizes=[64])
    empty = {"images": np.zeros((0, 96, 96, 3), np.uint8), "joints": np.zeros((0, 14, 2))}
    batches = Batches(cfg, empty, seed=0)
    raised: list[BaseException] = []

    def get():
        try:
            batches.get()
        except Exception as exc:
            raised.append(exc)
    waiter = threading.Thread(target=get, daemon=True)
    waiter.start()
    waiter.join(30)
    assert not waiter.is_alive(), "the training loop still waits for a batch"
    assert len(raised) == 1 and "making a training batch failed: ValueError" in str(raised[0])


def test_worker_processes_make_distinct_batches_and_report_errors():
    """``loaders: N`` (N > 1): N forked processes make the batches, each from its own random
    stream (two workers copying one stream would feed the net every batch twice), and a
    worker's failure stops training with its error, as the thread's does."""
    import multiprocessing
    from humanpose.train.batches import Batches
    from humanpose.train.recipe import TrainConfig
    rng = np.random.default_rng(0)
    cache = {"images": rng.integers(0, 255, (6, 96, 96, 3), dtype=np.uint8),
             "joints": np.tile(np.linspace(30, 66, 14)[:, None], (6, 1, 2)).astype(np.float32)}
    cfg = TrainConfig(kind="pose", batch_size=3, sizes=[64], loaders=2)
    batches = Batches(cfg, cache, seed=0)
    try:
        got = [batches.get() for _ in range(4)]
        assert len(multiprocessing.active_children()) == 2
    finally:
        batches.close()
    assert not multiprocessing.active_children()        # closing ends the processes
    x, t, w = got[0]
    assert x.shape == (3, 4, 64, 64) and t.shape == (3, 15, 8, 8) and w.shape == (3, 15)
    assert not torch.equal(got[0][0], got[1][0])     # worker 0's first batch, worker 1's first
    empty = {"images": np.zeros((0, 96, 96, 3), np.uint8), "joints": np.zeros((0, 14, 2))}
    batches = Batches(cfg, empty, seed=0)
    with pytest.raises(RuntimeError, match="making a training batch failed"):
        batches.get()
    batches.close()


def _tiny_pose_recipe(tmp_path, **changes):
    """A tiny pose recipe (2 stages, 16 channels, 64-pixel crops) on generated LSP data in
    ``tmp_path / "data"``, writing to ``tmp_path / "run"``."""
    from humanpose.train.recipe import TrainConfig
    root = tmp_path / "data"
    _fake_lsp(root / "lsp", n=12, fmt="lsp")
    _fake_lsp(root / "lspet", n=12, fmt="lspet", seed=1)
    settings = dict(kind="pose", arch_kwargs={"stages": 2, "feat": 16}, data=str(root),
                    val_images=4, steps=40, batch_size=4, sizes=[64], lr=3e-3, threads=1,
                    device="cpu", run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
                    checkpoint_every=20, val_every=20)
    return TrainConfig(**dict(settings, **changes))


def test_tiny_training_lowers_loss(tmp_path):
    """A real (tiny) training run on generated LSP data: the loss goes down, checkpoints resume."""
    from humanpose.train.trainer import train
    cfg = _tiny_pose_recipe(tmp_path)
    res = train(cfg, progress=False)
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[1]) for r in rows]
    assert res["step"] == 40 and losses[-1] < losses[0]
    assert (tmp_path / "run" / "best.safetensors").exists()
    from humanpose.store import load_model, read_metadata
    final = tmp_path / "run" / "final.safetensors"      # the weights at the schedule's last step
    assert int(read_metadata(final)["step"]) == 40
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    for k, v in load_model(final).state_dict().items():
        assert torch.equal(v, ck["model"][k]), k
    cfg.steps, cfg.loaders = 44, 2                       # the rest with two worker processes
    assert train(cfg, progress=False)["step"] == 44      # resumed from last.pt, not from 0
    assert int(read_metadata(final)["step"]) == 44


def test_bf16_training_where_the_cpu_has_it_and_fp32_with_a_note_where_not(tmp_path, capsys):
    """``precision: bf16`` trains under bfloat16 autocast where this CPU computes bf16 natively
    (AVX512-BF16 / AMX) and says so; elsewhere it trains in fp32 and says why.  Either way the
    loss goes down and the saved weights stay fp32."""
    from humanpose.estimator.cpu import bf16_kernel
    from humanpose.store import load_model
    from humanpose.train.trainer import train, training_precision
    chosen, why = training_precision("bf16", torch.device("cpu"))
    assert chosen == ("bf16" if bf16_kernel() else "fp32")
    assert (bf16_kernel() in why) if bf16_kernel() else why.startswith("note: precision bf16 asked")
    assert training_precision("fp32", torch.device("cpu"))[0] == "fp32"
    cfg = _tiny_pose_recipe(tmp_path)
    cfg.precision = "bf16"
    train(cfg, progress=False)
    assert why in capsys.readouterr().out
    losses = [float(r.split(",")[1]) for r in (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]]
    assert losses[-1] < losses[0]
    assert all(v.dtype == torch.float32 for v in load_model(tmp_path / "run" / "final.safetensors")
               .state_dict().values() if v.is_floating_point())


def test_teacher_maps_are_the_flip_test_of_the_teacher():
    """Distillation's soft targets: the teacher's last stage averaged with its mirrored view, so
    they mirror with the input (left / right swapped) and are not the plain output."""
    from humanpose.nets import build_model
    from humanpose.train.losses import teacher_maps
    torch.manual_seed(0)
    teacher = build_model("cpm_compact", "pose", stages=2, feat=16).eval()
    x = torch.rand(2, 4, 64, 64)
    x[1] = x[0].flip(-1)                                  # the second crop mirrors the first
    soft = teacher_maps(teacher, x)
    assert soft.shape == (2, sk.NUM_JOINTS + 1, 8, 8)
    perm = sk.flip_permutation()
    assert torch.allclose(soft[1], soft[0, perm].flip(-1), atol=1e-5)
    with torch.no_grad():
        plain = teacher(x)[-1]
    assert not torch.allclose(soft, plain, atol=1e-3)
    assert torch.allclose(soft[0], (plain[0] + plain[1, perm].flip(-1)) / 2, atol=1e-5)
    searched = teacher_maps(teacher, x, scale_search=0.15)   # zooming keeps the mirror symmetry
    assert torch.allclose(searched[1], searched[0, perm].flip(-1), atol=1e-5)


def test_teacher_scale_search_puts_the_zoomed_maps_back_where_they_belong():
    """The zoom of distillation's scale search: a dot moves towards the centre by the zoom, and a
    teacher whose maps follow the image (8 x 8 means) gives back its own maps and peak."""
    from humanpose.estimator.maps import argmax_subpixel
    from humanpose.train.losses import _zoom, teacher_maps
    img = torch.zeros(1, 1, 64, 64)
    img[0, 0, 40, 20] = 1.0                               # pixel x 20, y 40; centre 32, 32
    i = int(_zoom(img, 1.25)[0, 0].argmax())              # a window 1.25x as large
    assert (i % 64, i // 64) == (22, 38)                  # 32 + (20.5 - 32) / 1.25 - 0.5 = 22.3

    class MeanTeacher(torch.nn.Module):
        def forward(self, x):
            return [torch.nn.functional.avg_pool2d(x[:, :1], 8).expand(-1, 15, -1, -1)]
    b = 128
    yy, xx = torch.meshgrid(torch.arange(b) + 0.5, torch.arange(b) + 0.5, indexing="ij")
    x = torch.zeros(1, 4, b, b)                           # a blob away from the centre
    x[:, :3] = torch.exp(-((xx - 0.35 * b) ** 2 + (yy - 0.6 * b) ** 2) / (2 * (0.1 * b) ** 2))
    plain = teacher_maps(MeanTeacher(), x)
    searched = teacher_maps(MeanTeacher(), x, scale_search=0.15)
    assert (searched - plain).abs().max() < 0.06          # bilinear blur of 16 x 16 maps
    peak, found = (argmax_subpixel(m[0, :1].numpy())[0, :2] for m in (plain, searched))
    assert np.abs(found - peak).max() < 0.05              # the maps put back with the image's
                                                          # zoom instead: 0.17 cells off


def test_tiny_distillation_learns_the_teachers_maps(tmp_path):
    """A tiny run that learns from a teacher alone (distill_weight 1) whose maps are 0.5
    everywhere, far from any ground-truth map (near 0, background near 1): the student ends up
    predicting them, and writes its log and weights as any run."""
    from humanpose.nets import build_model
    from humanpose.store import load_model, save_weights
    from humanpose.train.trainer import train
    torch.manual_seed(1)
    teacher = build_model("cpm_compact", "pose", stages=2, feat=16)
    with torch.no_grad():
        last = teacher.stages[-1].out
        last.weight.zero_()
        last.bias.fill_(0.5)
    save_weights(teacher, tmp_path / "teacher.safetensors", "cpm_compact",
                 kwargs={"stages": 2, "feat": 16})
    cfg = _tiny_pose_recipe(tmp_path, steps=60, distill_weight=1.0,
                            distill_from=str(tmp_path / "teacher.safetensors"))
    assert train(cfg, progress=False)["step"] == 60
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]
    assert float(rows[-1].split(",")[1]) < float(rows[0].split(",")[1])
    student = load_model(tmp_path / "run" / "final.safetensors").eval()
    with torch.no_grad():
        maps = student(torch.rand(2, 4, 64, 64))[-1]
    assert maps.mean().item() > 0.3     # towards the teacher's 0.5 (0.09 from the ground truth)


def test_packed_crops_travel_in_parts_and_train_a_pose_net(tmp_path, capsys):
    """`humanpose pack-crops` writes the crop caches as WebP parts of a size limit; the parts
    read back give the same joints and nearly the same pixels, a missing part is an error that
    says so, and a pose recipe trains from them without the dataset (`packed:`)."""
    from humanpose.train.datasets import DatasetError
    from humanpose.train.packed import load_packed
    from humanpose.train.recipe import TrainConfig
    from humanpose.train.trainer import train
    root = tmp_path / "data"
    _fake_lsp(root / "lsp", n=6, fmt="lsp")
    _fake_lsp(root / "lspet", n=8, fmt="lspet", seed=1)
    out = tmp_path / "packed"
    assert cli.main(["pack-crops", str(out), "--data", str(root), "--val-images", "3",
                     "--cache-dir", str(tmp_path / "cache"), "--part-mb", "0.005",
                     "--no-progress"]) == 0
    parts = sorted(out.glob("*.npz"))
    assert len([f for f in parts if f.name.startswith("train-")]) >= 2      # split by size
    assert all(str(f) in capsys.readouterr().out for f in parts[:1])
    caches = load_packed([out])
    raw = {k: dict(np.load(next((tmp_path / "cache").glob(f"{k}_*.npz")))) for k in ("train", "val")}
    for split in ("train", "val"):
        got, want = caches[split], raw[split]
        assert got["images"].shape == want["images"].shape == (len(want["joints"]), 288, 288, 3)
        np.testing.assert_array_equal(got["joints"], want["joints"])
        np.testing.assert_array_equal(got["visible"], want["visible"])
        assert np.abs(got["images"].astype(int) - want["images"]).mean() < 2.0   # lossy, close
    assert len(caches["train"]["joints"]) == 5 + 6 and len(caches["val"]["joints"]) == 3
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for f in parts[1:]:                            # the first train part did not arrive
        f.rename(moved / f.name)
    with pytest.raises(DatasetError, match="train crops 0..[0-9]+ are missing"):
        load_packed([moved])
    (moved / parts[0].name).write_bytes(parts[0].read_bytes())
    cfg = TrainConfig(kind="pose", arch_kwargs={"stages": 2, "feat": 8}, packed=[str(moved)],
                      data=str(tmp_path / "no_data"), steps=3, batch_size=2, sizes=[64],
                      threads=1, device="cpu", run_dir=str(tmp_path / "run"), val_every=3)
    assert train(cfg, progress=False)["step"] == 3
    assert (tmp_path / "run" / "best.safetensors").exists()
    assert cli.main(["pack-crops", str(out), "--data", str(tmp_path / "no_data")]) == 2
    assert "error: " in capsys.readouterr().err


def test_split_is_fixed_whatever_the_training_seed(tmp_path):
    """The held-out images never depend on a run's seed: two runs with other seeds build the
    same validation cache (and so never train on each other's validation images)."""
    from humanpose.train.datasets import splits
    from humanpose.train.recipe import TrainConfig
    from humanpose.train.trainer import train
    root = tmp_path / "data"
    _fake_lsp(root / "lsp", n=4, fmt="lsp")
    _fake_lsp(root / "lspet", n=10, fmt="lspet", seed=1)
    train_set, val_set = splits(root, n_val=3)
    assert len(val_set) == 3 and len(train_set) == 7 + 4
    assert not set(map(str, val_set.images)) & set(map(str, train_set.images))
    for seed in (0, 5):
        train(TrainConfig(kind="pose", arch_kwargs={"stages": 2, "feat": 8}, data=str(root),
                          val_images=3, steps=1, batch_size=2, sizes=[64], threads=1, seed=seed,
                          device="cpu", run_dir=str(tmp_path / f"run{seed}"),
                          cache_dir=str(tmp_path / "cache"), val_every=1), progress=False)
    caches = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len([c for c in caches if c.startswith("val_")]) == 1, caches
    assert len([c for c in caches if c.startswith("train_")]) == 1, caches


def test_missing_init_weights_is_an_error(tmp_path, capsys):
    from humanpose.train.recipe import TrainConfig
    from humanpose.train.trainer import train
    cfg = TrainConfig(init=str(tmp_path / "nope.safetensors"), run_dir=str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()        # nothing written, nothing started
    recipe = tmp_path / "r.yml"                   # the command says so in one line, exit code 2
    recipe.write_text(f"kind: pose\ninit: {tmp_path / 'nope.safetensors'}\nrun_dir: {tmp_path / 'run'}\n")
    assert cli.main(["train", str(recipe), "--no-progress"]) == 2
    assert "init: weight file" in capsys.readouterr().err
    cfg = TrainConfig(relabel_with=str(tmp_path / "judge.safetensors"), run_dir=str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match="relabel_with: weight file .*judge.safetensors"):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()
    cfg = TrainConfig(distill_from=str(tmp_path / "teacher.safetensors"), run_dir=str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match="distill_from: weight file .*teacher.safetensors"):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()
    recipe.write_text(f"kind: pose\ndata: {tmp_path / 'no_data'}\nrun_dir: {tmp_path / 'run'}\n")
    assert cli.main(["train", str(recipe), "--no-progress"]) == 2
    assert "error: " in capsys.readouterr().err


def test_eval_cli_end_to_end(tmp_path, capsys):
    """`humanpose eval` on an LSP-layout directory with tiny weights: the report's form."""
    from humanpose.nets import build_model
    from humanpose.store import save_weights
    _fake_lsp(tmp_path / "lsp", n=3)
    models = tmp_path / "models"
    for kind in ("person", "pose"):
        save_weights(build_model("cpm_compact", kind, stages=2, feat=16), models / f"{kind}.safetensors",
                     "cpm_compact", kwargs={"stages": 2, "feat": 16})
    (tmp_path / "cfg.yml").write_text(
        f"model:\n  models_dir: {models}\n  person_model: person.safetensors\n"
        f"  pose_model: pose.safetensors\n  framework: torch\n  device: cpu\n"
        "estimator:\n  boxsize: 128\n  person_threshold: 0.0\n")
    out = tmp_path / "rep.json"
    rc = cli.main(["eval", "--data", str(tmp_path / "lsp"), "--config", str(tmp_path / "cfg.yml"),
                   "--json", str(out), "--no-progress", "--flip-test", "--no-rescale"])
    assert rc == 0
    printed = capsys.readouterr().out.strip().splitlines()
    last = printed[-1]
    assert last.startswith("PCK@0.2 end-to-end: ") and "gt-centre: " in last
    rep = json.loads(out.read_text())
    for key in ("pck_end_to_end", "pck_gt_centre", "per_joint_end_to_end", "n_images",
                "detector_recall", "found_end_to_end", "pck_end_to_end_peak_match",
                "by_orientation_end_to_end", "by_orientation_gt_centre",
                "detector_recall_by_orientation", "shrink",
                "detections_per_image", "seconds_per_image_end_to_end"):
        assert key in rep
    assert rep["n_images"] == 3 and 0 <= rep["pck_gt_centre"] <= 100
    assert rep["detections_per_image"] >= rep["detector_recall"] / 100   # threshold 0: always one
    # which joints the app would draw: nothing is cut off by the frame of a whole image
    assert rep["joint_threshold"] == 0.3 and 0 <= rep["correct_joints_hidden"] <= 100
    assert "cut_off_joints" not in rep and printed[-3].startswith("joints drawn (score >= 0.3)")
    assert rep["persons_scored"] <= rep["persons_scored_either_diagonal"] <= 3
    assert printed[-5].startswith(f"persons scored: {rep['persons_scored']} of 3")
    assert printed[-4].startswith("left / right: gt-centre PCK@0.2 ")
    assert rep["pck_gt_centre_mirror_tolerant"] >= rep["pck_gt_centre"]
    assert 0 <= rep["images_read_mirrored"] <= 100
    assert rep["flip_test"] is True and "flip test" in printed[-2]
    assert rep["rescale"] is False and rep["rescaled_fraction_end_to_end"] == 0
    assert "rescale" not in printed[-2]
    # which joints were right, per image, agrees with the mean
    codes = metrics.from_codes(rep["per_image_gt_centre"])
    assert codes.shape == (3, sk.NUM_JOINTS)
    assert np.nanmean(codes) * 100 == pytest.approx(rep["pck_gt_centre"], abs=0.01)

    # --compare: the same run again is no different; the PCK line stays the last one
    args = ["eval", "--data", str(tmp_path / "lsp"), "--config", str(tmp_path / "cfg.yml"),
            "--no-progress", "--flip-test", "--no-rescale", "--compare", str(out)]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == last
    assert printed[-2] == (f"against {out} (3 images, paired bootstrap): end-to-end +0.00 (95 % "
                           "interval +0.00 to +0.00)  gt-centre +0.00 (95 % interval +0.00 to +0.00)")
    # ... on other images (here shrunk ones) it says so and is not compared; the report is printed
    other = dict(rep, shrink=0.5)
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert cli.main(args[:-1] + [str(tmp_path / "other.json")]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-2].startswith("not compared with ") and "shrink differ" in printed[-2]
    assert printed[-1] == last
    # --waist-up: the upright stick figures cut below the hips; not comparable with whole images
    assert cli.main(args[:-1] + [str(out), "--waist-up", "--json", str(tmp_path / "wu.json")]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert "waist-up" in printed[-3] and "its framing differ" in printed[-2]
    assert printed[-2].endswith("(whole vs waist-up)")
    wu = json.loads((tmp_path / "wu.json").read_text())
    assert wu["framing"] == "waist-up" and wu["waist_up_index"] == [0, 1, 2] and rep["framing"] == "whole"
    codes = metrics.from_codes(wu["per_image_gt_centre"])
    ankles = [sk.JOINT_INDEX["r_ankle"], sk.JOINT_INDEX["l_ankle"]]
    assert np.isnan(codes[:, ankles]).all() and np.isfinite(codes[:, :8]).all()
    assert wu["per_joint_gt_centre"]["R ankle"] is None and "-" in printed[sk.JOINT_INDEX["r_ankle"] + 1]
    assert ("cut_off_joints" in wu) == (wu["found_end_to_end"] > 0)   # counted on matched poses
    # a baseline that cannot be compared stops before the evaluation, naming what is wrong
    old = {k: v for k, v in rep.items() if not k.startswith("per_image")}
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "bad.json").write_text(json.dumps(dict(rep, per_image_gt_centre=["1x"] * 3)))
    (tmp_path / "text.json").write_text("PCK@0.2 end-to-end: 50.0")
    for name, message in (("missing.json", "missing.json not found"),
                          ("old.json", "lacks per_image_end_to_end, per_image_gt_centre"),
                          ("bad.json", "per_image_gt_centre: per-image codes must be strings"),
                          ("text.json", "is not a JSON report")):
        assert cli.main(args[:-1] + [str(tmp_path / name)]) == 2
        captured = capsys.readouterr()
        assert message in captured.err and "PCK@0.2" not in captured.out


def test_drawn_joints_counts_hidden_correct_and_drawn_cut_off_joints():
    """eval's joints-drawn figures on a hand-made case: 3 images, the second without a matched
    pose (its joints count nowhere), two joints of the third cut off by the frame."""
    from humanpose.train import evaluate as ev
    scores = np.full((3, sk.NUM_JOINTS), 0.8)
    scores[1] = np.nan
    scores[0, :3] = 0.05                     # three weak joints in image 0, two of them correct
    scores[2, 12:] = (0.3, 0.05)             # the cut-off joints of image 2: one drawn, one not
    correct = np.zeros((3, sk.NUM_JOINTS))   # as metrics.pck_correct: 1, 0, NaN unannotated
    correct[0, :2] = correct[0, 5:9] = 1     # 6 correct in image 0, 2 of them weak
    correct[0, 10] = np.nan
    correct[1] = 1                           # no pose matched: not counted
    correct[2, :2] = 1                       # 2 correct in image 2
    cut_off = np.zeros((3, sk.NUM_JOINTS), bool)
    cut_off[2, 12:] = True
    cut_off[1, 12:] = True                   # no pose matched: not counted
    out = ev.drawn_joints(scores, correct, cut_off, 0.1)
    assert out == {"joint_threshold": 0.1, "correct_joints_hidden": 25.0,    # 2 of 8
                   "cut_off_joints": 2, "cut_off_joints_drawn": 50.0}
    out = ev.drawn_joints(scores, correct, np.zeros_like(cut_off), 0.9)      # all hidden
    assert out == {"joint_threshold": 0.9, "correct_joints_hidden": 100.0}


def test_eval_waist_up_counts_the_cut_off_joints_the_app_would_draw(tmp_path):
    """evaluate() on waist-up frames with an estimator that returns the annotated joints in view
    (score 0.9) and puts each joint cut off by the frame on its bottom edge, the ankles at 0.5 and
    the knees at 0.2: at joint_threshold 0.3 the ankles count as drawn, the knees as hidden."""
    from humanpose.config import Config, set_value
    from humanpose.estimator.result import Person, PoseResult
    from humanpose.train import evaluate as ev
    from humanpose.train.datasets import read_lsp_dir
    from humanpose.train.eval_report import format_report
    ANKLES = [sk.JOINT_INDEX["r_ankle"], sk.JOINT_INDEX["l_ankle"]]
    _fake_lsp(tmp_path / "lsp", n=3)
    data = read_lsp_dir(tmp_path / "lsp", "lsp")
    framed = [ev.waist_up(cv2.imread(str(f)), j)[1] for f, j in zip(data.images, data.joints)]

    class InViewEstimator:
        config = set_value(Config(), "estimator.joint_threshold", 0.3)
        backend_name = "in-view oracle"

        def estimate(self, img, frame_index=0, keep_maps=False, centres=None):
            gt = framed[frame_index]
            joints = np.column_stack([gt, np.full(sk.NUM_JOINTS, 0.9)])
            cut = ~np.isfinite(gt[:, 0])
            joints[cut, :2] = (img.shape[1] / 2, img.shape[0] - 1)
            ankle = np.isin(np.arange(sk.NUM_JOINTS), ANKLES)
            joints[cut, 2] = np.where(ankle[cut], 0.5, 0.2)
            centre = np.nanmean(gt, 0)
            return PoseResult(frame_index, 0.0, img.shape[:2], 192, [Person(
                centre=centre, centre_score=1.0, box=np.zeros(4), joints=joints)])

    cut = ~np.isfinite(np.array(framed)[:, :, 0])
    knees = [sk.JOINT_INDEX["r_knee"], sk.JOINT_INDEX["l_knee"]]
    assert cut.sum() > 6 and cut[:, knees].all()            # ankles and knees cut off, maybe more
    rep = ev.evaluate(InViewEstimator(), data, progress=False, waist_up_framing=True)
    assert rep["n_images"] == 3 and rep["found_end_to_end"] == rep["pck_end_to_end"] == 100.0
    assert rep["cut_off_joints"] == cut.sum() and rep["correct_joints_hidden"] == 0.0
    assert rep["cut_off_joints_drawn"] == round(100.0 * 6 / cut.sum(), 2)   # the 6 ankles
    assert "cut off by the frame drawn anyway: " in format_report(rep)


def test_paired_difference_of_two_results():
    """The PCK difference of two results on the same images, with a paired-bootstrap interval."""
    rng = np.random.default_rng(0)
    base = (rng.random((400, sk.NUM_JOINTS)) < 0.6).astype(float)
    base[:, 3] = np.nan                                     # a joint never annotated
    same = metrics.paired_difference(base, base)
    assert same == (0.0, 0.0, 0.0)
    better = base.copy()
    better[:40, 0] = 1 - better[:40, 0]                     # 40 joints flipped ...
    won = (better[:40, 0] == 1).sum() - (better[:40, 0] == 0).sum()
    d, lo, hi = metrics.paired_difference(base, better)
    assert d == pytest.approx(100 * won / (400 * 13))       # ... exactly their net gain counted
    assert lo <= d <= hi
    gain = base.copy()
    gain[:, 0] = 1.0                                        # a gain on every wrong joint 0: sure
    d, lo, hi = metrics.paired_difference(base, gain)
    assert d > 0 and lo > 0
    noise = base.copy()
    flip = rng.random(400) < 0.1                            # as many joints won as lost: unsure
    noise[flip, 1] = 1 - noise[flip, 1]
    d, lo, hi = metrics.paired_difference(base, noise)
    assert lo < 0 < hi and abs(d) < hi - lo
    with pytest.raises(ValueError, match="not on the same images"):
        metrics.paired_difference(base, base[:-1])
    codes = metrics.correct_codes(base[:2])
    assert len(codes[0]) == sk.NUM_JOINTS and codes[0][3] == "-"
    assert np.array_equal(metrics.from_codes(codes), base[:2], equal_nan=True)
    with pytest.raises(ValueError, match="differ in length"):
        metrics.from_codes(["10", "1"])


def test_pck_by_torso_orientation():
    """Upright, sideways and upside-down persons fall in their buckets; PCK counted per bucket."""
    base = np.full((sk.NUM_JOINTS, 2), np.nan)
    neck, r_hip, l_hip = sk.JOINT_INDEX["neck"], sk.JOINT_INDEX["r_hip"], sk.JOINT_INDEX["l_hip"]
    gt = np.stack([base.copy() for _ in range(4)])
    for n, (dx, dy) in enumerate([(0, 50), (50, 5), (-3, -50), (30, 30)]):
        gt[n, neck] = (100, 100)
        gt[n, r_hip] = (100 + dx - 5, 100 + dy)
        gt[n, l_hip] = (100 + dx + 5, 100 + dy)
    gt[3, l_hip] = np.nan                          # one hip missing: the other one is used
    ang = metrics.torso_angle(gt)
    assert ang[0] == pytest.approx(0) and 80 < ang[1] < 90 and ang[2] > 170
    assert 30 < ang[3] < 60
    correct = np.full((4, sk.NUM_JOINTS), np.nan)
    correct[:, [neck, r_hip]] = [[1, 1], [1, 0], [0, 0], [1, 1]]
    rep = metrics.pck_by_orientation(correct, gt)
    assert rep["upright"] == {"persons": 1, "pck": 100.0}
    assert rep["sideways"] == {"persons": 1, "pck": 50.0}
    assert rep["inverted"] == {"persons": 1, "pck": 0.0}
    assert rep["tilted"] == {"persons": 1, "pck": 100.0}


def _person(peak, joints_centre, half=50.0):
    from humanpose.estimator.result import Person
    joints = np.zeros((sk.NUM_JOINTS, 3))
    joints[:, 0] = np.linspace(-half, half, sk.NUM_JOINTS) + joints_centre[0]
    joints[:, 1] = np.linspace(-2 * half, 2 * half, sk.NUM_JOINTS) + joints_centre[1]
    return Person(centre=np.array(peak, float), centre_score=1.0, box=np.zeros(4), joints=joints)


def test_eval_matches_the_person_by_its_pose_and_reports_the_peak_match_apart():
    """End-to-end matching: the person whose joints lie nearest the annotated ones (median
    distance within 0.3 x size); the detector peak is judged on its own (detector_recall)."""
    from humanpose.train.datasets import person_box
    from humanpose.train.evaluate import match
    gt = _person((0, 0), (300, 200)).joints[:, :2]
    gt[3] = np.nan                                                # a missing joint is ignored
    centre, size = person_box(gt)
    off_peak = _person(centre + (0, 0.4 * size), centre + 2)      # right pose, peak 0.4 x size off
    assert match([off_peak], gt) == (0, None)
    wild = _person(centre, centre)
    wild.joints[:4, :2] += 3 * size                               # 4 wild joints: box moves, median not
    assert match([wild], gt) == (0, 0)
    other = _person(centre, centre + (0.35 * size, 0))            # peak right, pose elsewhere
    assert match([other], gt) == (None, 0)
    assert match([other, off_peak], gt) == (1, 0)
    assert match([], gt) == (None, None)


def test_eval_cli_errors(tmp_path, capsys):
    assert cli.main(["eval", "--data", str(tmp_path)]) == 2
    assert "joints.mat not found" in capsys.readouterr().err
    _fake_lsp(tmp_path / "lsp", n=2)
    assert cli.main(["eval", "--data", str(tmp_path / "lsp"), "--shrink", "0"]) == 2
    assert "--shrink must be in (0, 1], not 0.0" in capsys.readouterr().err


def test_eval_shrink_moves_the_joints_with_the_picture():
    """--shrink: the image scaled into a grey canvas, the annotation following it."""
    import cv2
    from humanpose.train.evaluate import shrunk
    from humanpose.train.metrics import rate_by_orientation
    img = np.zeros((200, 300, 3), np.uint8)
    joints = np.array([[40.0, 30.0], [250.0, 170.0], [150.0, 100.0]] + [[np.nan, np.nan]] * 11)
    for x, y in joints[:3]:
        cv2.circle(img, (int(x), int(y)), 6, (255, 255, 255), -1)
    out, moved = shrunk(img, joints, 0.4, np.random.default_rng(3))
    assert out.shape == img.shape and np.isnan(moved[3:]).all()
    for x, y in moved[:3]:
        assert out[int(round(y)), int(round(x))].min() > 200
    assert (out == 128).all(-1).mean() > 0.8                  # the rest is the grey canvas
    box = moved[:3].max(0) - moved[:3].min(0)
    assert box == pytest.approx((joints[:3].max(0) - joints[:3].min(0)) * 0.4, abs=1.0)
    # detector recall split by orientation: upright found, inverted missed
    gt = np.full((2, 14, 2), np.nan)
    gt[:, sk.JOINT_INDEX["neck"]] = (0, 0)
    gt[0, sk.JOINT_INDEX["r_hip"]] = (0, 50)
    gt[1, sk.JOINT_INDEX["r_hip"]] = (0, -50)
    rep = rate_by_orientation(np.array([True, False]), gt)
    assert rep["upright"] == {"persons": 1, "rate": 100.0}
    assert rep["inverted"] == {"persons": 1, "rate": 0.0} and rep["tilted"]["rate"] is None


def test_eval_waist_up_frames_an_upright_person_as_a_webcam_does():
    """--waist-up: upright persons only, the image cut from a little above the upper body to a
    little below the hips, 4:3 around the upper body; the joints cut off are not evaluated."""
    from humanpose.train import evaluate as ev
    j = {"head_top": (300, 100), "neck": (300, 150), "r_shoulder": (270, 160), "l_shoulder": (330, 160),
         "r_elbow": (250, 210), "l_elbow": (350, 210), "r_wrist": (240, 255), "l_wrist": (360, 255),
         "r_hip": (285, 250), "l_hip": (315, 252), "r_knee": (285, 330), "l_knee": (315, 330),
         "r_ankle": (285, 410), "l_ankle": (315, 410)}
    joints = np.array([j[name] for name in sk.JOINTS], float)
    img = np.zeros((480, 800, 3), np.uint8)
    img[:, :, 0] = np.arange(800) % 256
    img[:, :, 1] = np.arange(480)[:, None] % 256
    torso = np.linalg.norm(joints[[8, 11]].mean(0) - joints[1])
    assert ev.waist_up_eligible(joints)
    x0, y0, x1, y1 = ev.waist_up_window(joints, img.shape)
    assert y0 == round(100 - 0.4 * torso) and y1 == round(252 + 0.3 * torso)
    assert x1 - x0 == round(4 / 3 * (y1 - y0)) and abs((x0 + x1) / 2 - 300) <= 1
    cut, moved = ev.waist_up(img, joints)
    assert cut.shape == (y1 - y0, x1 - x0, 3)
    assert cut[0, 0, 0] == x0 % 256 and cut[0, 0, 1] == y0 % 256       # the image's pixels, moved
    lower = [sk.JOINT_INDEX[n] for n in ("r_knee", "l_knee", "r_ankle", "l_ankle")]
    assert np.isnan(moved[lower]).all()
    kept = [n for n in range(sk.NUM_JOINTS) if n not in lower]
    assert np.allclose(moved[kept], joints[kept] - (x0, y0))
    # near the image's edge the window stays inside it (and no wider than the image)
    x0, y0, x1, y1 = ev.waist_up_window(joints - (280, 0), img.shape)
    assert x0 == 0 and x1 == round(4 / 3 * (y1 - y0))
    assert ev.waist_up_window(joints, (480, 200))[::2] == (0, 200)
    # upside down, lying, or without a hip: not framed waist-up
    assert not ev.waist_up_eligible(joints * (1, -1))
    lying = joints.copy()
    lying[:, 0], lying[:, 1] = joints[:, 1], joints[:, 0]
    assert not ev.waist_up_eligible(lying)
    no_hip = joints.copy()
    no_hip[sk.JOINT_INDEX["l_hip"]] = np.nan
    assert not ev.waist_up_eligible(no_hip)


def test_pose_sample_frame_edge_cut():
    """cut_prob: an upright person framed as a webcam frames one, grey below a line under the
    hips, the joints there untrained; other persons are sampled as before."""
    from humanpose.train.samples import CUT_RANGE, pose_sample
    img = np.random.default_rng(0).integers(0, 256, (288, 288, 3)).astype(np.uint8)   # textured
    joints = np.column_stack([np.full(14, 144.0), np.zeros(14)])
    for name, y in (("head_top", 40), ("neck", 70), ("r_shoulder", 75), ("l_shoulder", 75),
                    ("r_elbow", 110), ("l_elbow", 110), ("r_wrist", 140), ("l_wrist", 140),
                    ("r_hip", 150), ("l_hip", 150), ("r_knee", 200), ("l_knee", 200),
                    ("r_ankle", 250), ("l_ankle", 250)):
        joints[sk.JOINT_INDEX[name], 1] = y
    joints[:, 0] += np.linspace(-10, 10, 14)
    rng = np.random.default_rng(1)
    neck, hips = sk.JOINT_INDEX["neck"], [sk.JOINT_INDEX["r_hip"], sk.JOINT_INDEX["l_hip"]]
    below = []
    for _ in range(40):
        x, t, w, j = pose_sample(img, joints, 160, rng, rotation_prob=0.0, cut_prob=1.0,
                                 lowres_prob=0.0)
        flat = x[:3].std(axis=2).max(0) < 1e-6                 # rows of one colour: the cut's grey
        flat[:int(j[neck, 1]) + 1] = False                     # (or the border above the head)
        edge = int(np.argmax(flat)) if flat.any() else 160     # first grey row below the neck
        assert flat[edge:].all()                               # grey down to the bottom
        cut = ~np.isfinite(j[:, 0])
        assert np.array_equal(w[:sk.NUM_JOINTS], (~cut).astype(np.float32))
        assert not cut[:8].any() and cut[[sk.JOINT_INDEX["r_ankle"], sk.JOINT_INDEX["l_ankle"]]].all()
        assert (j[~cut, 1] < edge + 0.5).all()
        scale = (j[neck, 1] - j[sk.JOINT_INDEX["head_top"], 1]) / 30.0   # crop px per source px
        hip_y = j[neck, 1] + 80 * scale                                  # the hips, in the crop
        assert cut[hips].all() == (hip_y > edge - 0.5 + 1e-6)
        below.append((edge - 0.5 - hip_y) / (80 * scale))              # torso lengths
    below = np.array(below)
    assert below.min() > CUT_RANGE[0] - 0.1 and below.max() < CUT_RANGE[1] + 0.1
    assert np.ptp(below) > 0.4
    # an upside-down person is never cut; without cut_prob the rng draws as before
    flipped = joints * (1, -1) + (0, 288)
    for seed in range(10):
        x, _, w, j = pose_sample(img, flipped, 160, np.random.default_rng(seed), cut_prob=1.0)
        assert w.all() and not (x[:3].std(axis=2).max(0)[100:] < 1e-6).all()
    a = pose_sample(img, joints, 160, np.random.default_rng(3))
    b = pose_sample(img, joints, 160, np.random.default_rng(3), cut_prob=0.0)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # cut_empty: the same samples, but the joints below the cut are trained to empty maps
    hidden_seen = 0
    for seed in range(20):
        x, t, w, j = pose_sample(img, joints, 160, np.random.default_rng(seed), rotation_prob=0.0,
                                 cut_prob=1.0)
        xe, te, we, je = pose_sample(img, joints, 160, np.random.default_rng(seed),
                                     rotation_prob=0.0, cut_prob=1.0, cut_empty=True)
        assert np.array_equal(x, xe) and np.array_equal(t, te)      # empty maps already
        assert np.array_equal(j, je, equal_nan=True)
        cut = ~np.isfinite(j[:, 0])
        assert we.all() and not (t[:sk.NUM_JOINTS][cut] > 0).any()
        assert np.array_equal(w[:sk.NUM_JOINTS], (~cut).astype(np.float32))
        hidden_seen += cut.sum()
    assert hidden_seen > 20
    # an uneven cut (right knee low, left knee high): the joint cut off is the one trained empty,
    # in mirrored samples too (its left/right swap moves the mask with it)
    uneven = joints.copy()
    uneven[sk.JOINT_INDEX["l_knee"], 1] = 160
    knees = [sk.JOINT_INDEX["r_knee"], sk.JOINT_INDEX["l_knee"]]
    uneven_seen = 0
    for seed in range(40):
        _, t, w, j = pose_sample(img, uneven, 160, np.random.default_rng(seed), rotation_prob=0.0,
                                 cut_prob=1.0, cut_empty=True)
        cut = ~np.isfinite(j[:, 0])
        assert w.all() and not (t[:sk.NUM_JOINTS][cut] > 0).any()
        uneven_seen += cut[knees[0]] != cut[knees[1]]
    assert uneven_seen > 5
    # any-angle rotation asked for too: a cut view is not turned over (the grey would take the head)
    top = [sk.JOINT_INDEX[n] for n in ("head_top", "neck", "r_shoulder", "l_shoulder")]
    for seed in range(30):
        _, _, _, j = pose_sample(img, joints, 160, np.random.default_rng(seed), cut_prob=1.0,
                                 rotation_any_prob=1.0)
        assert np.isfinite(j[top, 0]).all()
    # an annotation that is missing (not cut off) stays untrained with cut_empty
    gap = joints.copy()
    gap[sk.JOINT_INDEX["l_elbow"]] = np.nan
    _, _, w, _ = pose_sample(img, gap, 160, np.random.default_rng(0), cut_prob=1.0, cut_empty=True)
    assert w[sk.JOINT_INDEX["l_elbow"]] == 0 and w.sum() == sk.NUM_MAPS - 1


def test_person_scene_webcam_frame():
    """cut_prob in person scenes: one upright person cut by the scene's bottom edge below the
    hips, the target at the centre of its joints in view; no upright person, no such scene."""
    from humanpose.train.scenes import CUT_FILL, _cut_scene, person_scene
    imgs = np.random.default_rng(0).integers(0, 256, (2, 288, 288, 3)).astype(np.uint8)
    joints = np.zeros((2, sk.NUM_JOINTS, 2))
    joints[:, :, 0] = 144 + np.linspace(-20, 20, sk.NUM_JOINTS)
    for name, y in (("head_top", 40), ("neck", 70), ("r_shoulder", 75), ("l_shoulder", 75),
                    ("r_elbow", 110), ("l_elbow", 110), ("r_wrist", 140), ("l_wrist", 140),
                    ("r_hip", 150), ("l_hip", 150), ("r_knee", 200), ("l_knee", 200),
                    ("r_ankle", 250), ("l_ankle", 250)):
        joints[:, sk.JOINT_INDEX[name], 1] = y
    rng = np.random.default_rng(4)
    for _ in range(20):
        x, t, c = person_scene(imgs, joints, 128, 192, rng, cut_prob=1.0)
        assert x.shape == (3, 128, 192) and c.shape == (1, 2)
        peak = np.unravel_index(t[0].argmax(), t[0].shape)
        assert np.hypot(peak[1] * 8 + 3.5 - c[0, 0], peak[0] * 8 + 3.5 - c[0, 1]) < 8
    # where the hips land: a marker painted on them in the crop is seen CUT_RANGE torso lengths
    # (80 px here, times the scale) above the scene's bottom edge
    marked = np.full_like(imgs, 100)
    marked[:, 146:155, 140:149] = (0, 0, 255)
    seen = 0
    for seed in range(20):
        scene, centre = _cut_scene(marked, joints, 128, 192, np.random.default_rng(seed))
        red = (scene[..., 2] > 200) & (scene[..., :2].max(-1) < 60)
        ys = np.nonzero(red)[0]
        # the hips lie `below` (-8..64 source px) above the edge, times the scale, which makes
        # the view (head top at 40 to the cut at 150 + below) CUT_FILL of the height: at most
        # 1.1 x 128 x 64 / 174 px above the bottom edge
        assert len(ys) == 0 or 127.5 - CUT_FILL[1] * 128 * 64 / 174 - 2 <= ys.mean() < 128 + 2
        seen += len(ys) > 0                                  # (below < 0: the hips are cut off)
    assert seen >= 15
    # no upright person among the crops: no webcam frame (the usual scene is made instead)
    upside_down = joints * (1, -1) + (0, 288)
    assert _cut_scene(imgs, upside_down, 128, 192, np.random.default_rng(4)) is None
    x, t, c = person_scene(imgs, upside_down, 128, 192, np.random.default_rng(4), cut_prob=1.0)
    assert x.shape == (3, 128, 192) and len(c) >= 1


def test_stage_loss_sums_stages_and_weighs_peaks():
    from humanpose.train.losses import stage_loss
    t = torch.zeros(1, 2, 4, 4)
    t[0, 0, 1, 1] = 1.0                                   # a joint peak; channel 1 = background
    w = torch.ones(1, 2)
    miss_peak = torch.zeros(1, 2, 4, 4)                   # predicts nothing at the peak
    one = stage_loss((miss_peak,), t, w)
    assert stage_loss((miss_peak, miss_peak), t, w) == pytest.approx(2 * one.item())
    assert stage_loss((miss_peak,), t, w, positive_weight=10.0) == pytest.approx(11 * one.item())
    assert stage_loss((miss_peak,), t, torch.tensor([[0.0, 1.0]])) == 0   # masked joint


def test_mirrored_limbs_finds_arms_and_legs_labelled_from_the_other_side():
    from humanpose.train.validation import mirrored_limbs
    J = sk.JOINT_INDEX
    gt = np.zeros((4, 14, 2))
    gt[:, :, 0] = np.arange(14) * 40.0                    # joints 40 px apart in a row (mirror
    gt[:, J["l_shoulder"], 1] = 100.0                     # partners 120 px), a torso of 156 px:
    gt[:, J["r_hip"], 1] = 200.0                          # PCK@0.2 radius 31 px

    def mirrored(p, parts):
        q = p.copy()
        for a, b in sk.FLIP_PAIRS:
            if sk.JOINTS[a][2:] in parts:
                q[[a, b]] = p[[b, a]]
        return q
    pred = gt.copy()
    pred[1] = mirrored(gt[1], ("shoulder", "elbow", "wrist"))       # both arms the other way round
    pred[2] = mirrored(gt[2], ("hip", "knee", "ankle", "wrist"))     # legs, and the wrists only
    pred[3] = mirrored(gt[3], ("wrist",))                            # one pair: not enough
    assert mirrored_limbs(pred, gt).tolist() == [[False, False], [True, False], [False, True],
                                                 [False, False]]
    gt[1, [J["r_elbow"], J["l_elbow"]]] = np.nan          # missing labels cannot vote
    assert mirrored_limbs(pred, gt, min_gain=4)[1].tolist() == [True, False]
    assert mirrored_limbs(pred, gt, min_gain=5)[1].tolist() == [False, False]


def test_relabelling_swaps_the_judged_limbs_and_keeps_the_verdict(tmp_path):
    """relabel_with: a pose net judges every training person once; the arms / legs it fits far
    better mirrored get their left and right labels exchanged (joints and visibility)."""
    from humanpose.nets import build_model
    from humanpose.store import save_weights, sha256
    from humanpose.train.recipe import LIMB_GROUPS
    from humanpose.train.validation import relabel_mirrored_limbs
    rng = np.random.default_rng(0)
    joints = np.column_stack([np.full(14, 144.0), np.linspace(60, 230, 14)]) + rng.normal(0, 20, (14, 2))
    cache = {"images": rng.integers(0, 255, (3, 288, 288, 3), dtype=np.uint8),
             "joints": np.repeat(joints[None], 3, 0).astype(np.float32),
             "visible": np.ones((3, 14), bool)}
    cache["visible"][:, sk.JOINT_INDEX["r_wrist"]] = False
    torch.manual_seed(0)
    judge = save_weights(build_model("cpm_compact", "pose", stages=2, feat=16),
                         tmp_path / "judge.safetensors", "cpm_compact", kwargs={"stages": 2, "feat": 16})
    record = tmp_path / "relabelled.json"
    first = {k: v.copy() for k, v in cache.items()}
    flags = relabel_mirrored_limbs(first, judge, 64, torch.device("cpu"), record)
    written = json.loads(record.read_text())
    assert flags.shape == (3, 2) and written["groups"] == list(LIMB_GROUPS)
    assert written["sha256"] == sha256(judge)
    # a given verdict (the record, read back on a resume: the judge is not run again)
    record.write_text(json.dumps({"sha256": sha256(judge), "flags": [[1, 0], [0, 1], [1, 1]]}))
    out = {k: v.copy() for k, v in cache.items()}
    assert relabel_mirrored_limbs(out, judge, 64, torch.device("cpu"),
                                  record).tolist() == [[True, False], [False, True], [True, True]]
    perm = sk.flip_permutation()
    arms, legs = perm[:8] + list(range(8, 14)), list(range(8)) + perm[8:14]
    assert np.array_equal(out["joints"][0], cache["joints"][0][arms])
    assert np.array_equal(out["visible"][0], cache["visible"][0][arms])
    assert not out["visible"][0, sk.JOINT_INDEX["l_wrist"]] and out["visible"][0, sk.JOINT_INDEX["r_wrist"]]
    assert np.array_equal(out["joints"][1], cache["joints"][1][legs])
    assert np.array_equal(out["joints"][2], cache["joints"][2][perm[:14]])
    # relabel_groups: [arms]: the legs keep their labels whatever the verdict
    arms_only = {k: v.copy() for k, v in cache.items()}
    assert relabel_mirrored_limbs(arms_only, judge, 64, torch.device("cpu"), record,
                                  ["arms"]).tolist() == [[True, False], [False, False], [True, False]]
    assert np.array_equal(arms_only["joints"][0], cache["joints"][0][arms])
    assert np.array_equal(arms_only["joints"][1], cache["joints"][1])
    assert np.array_equal(arms_only["joints"][2], cache["joints"][2][arms])
    # the verdict of other weights is not reused
    other = save_weights(build_model("cpm_compact", "pose", stages=2, feat=16),
                         tmp_path / "other.safetensors", "cpm_compact", kwargs={"stages": 2, "feat": 16})
    with pytest.raises(ValueError, match="verdict of other weights .*delete it"):
        relabel_mirrored_limbs(out, other, 64, torch.device("cpu"), record)
    record.write_text(json.dumps({"sha256": sha256(judge), "flags": [[1, 0]]}))
    with pytest.raises(ValueError, match="does not match the training set"):
        relabel_mirrored_limbs(out, judge, 64, torch.device("cpu"), record)
    for text in ('{"sha256": "x", "flags": [[1, 0], [0', json.dumps({"flags": [[1, 0]] * 3})):
        record.write_text(text)                            # cut short / no judge checksum
        with pytest.raises(ValueError, match="not a relabelling record"):
            relabel_mirrored_limbs(out, judge, 64, torch.device("cpu"), record)


def test_teacher_pck_tool(tmp_path, capsys):
    """tools/teacher_pck.py: a third-party teacher on LSP crops (reference for distillation)."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(
        "teacher_pck", Path(__file__).resolve().parents[1] / "tools" / "teacher_pck.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(tmp_path / "none.pb"), "--data", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    teacher = shared_path("teachers", "efficientpose", "EfficientPoseRT.pb")
    lsp = shared_path("data", "lsp")
    if not hasattr(cv2.dnn, "readNetFromTensorflow"):      # OpenCV 5: a clear error, no crash
        assert tool.main([str(teacher), "--data", str(lsp), "--format", "lsp"]) == 2
        assert "OpenCV 4" in capsys.readouterr().err
        pytest.skip(f"OpenCV {cv2.__version__} has no TensorFlow importer (the tool needs OpenCV 4)")
    assert tool.main([str(teacher), "--data", str(lsp), "--format", "lsp", "--limit", "3"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("teacher PCK@0.2 gt-centre: ")
    assert float(last.split(":")[-1]) > 50      # it finds these (training-half) LSP poses


def test_init_grows_more_stages_from_the_last_one(tmp_path, capsys):
    """A recipe asking for more stages than its init keeps the init's weights (the earlier
    stages' beliefs unchanged) and starts each added stage as a copy of the last one."""
    from humanpose.nets import build_model
    from humanpose.store import save_weights
    from humanpose.train.recipe import TrainConfig
    from humanpose.train.trainer import initial_model
    torch.manual_seed(0)
    small = build_model("cpm_compact", "pose", stages=3, feat=16).eval()
    init = save_weights(small, tmp_path / "small.safetensors", "cpm_compact",
                        kwargs={"stages": 3, "feat": 16})
    grown, kwargs = initial_model(TrainConfig(init=str(init), arch_kwargs={"stages": 5}))
    assert kwargs == {"stages": 5, "feat": 16} and grown.num_stages == 5
    grown.eval()
    x = torch.rand(2, 4, 64, 64) - 0.5
    with torch.no_grad():
        before, after = small(x), grown(x)
    assert len(after) == 5
    for b, a in zip(before, after[:3]):
        assert torch.equal(a, b)
    for i in (2, 3):                                  # stages 4 and 5 = copies of stage 3
        for (ka, va), (kb, vb) in zip(grown.stages[i].state_dict().items(),
                                      small.stages[1].state_dict().items()):
            assert ka == kb and torch.equal(va, vb)
    assert not torch.equal(after[3], after[2])        # ...fed stage 3's beliefs, not stage 2's
    same, kw = initial_model(TrainConfig(init=str(init), arch_kwargs={"stages": 3, "feat": 16}))
    assert same.num_stages == 3 and kw == {"stages": 3, "feat": 16}
    for bad, match in (({"feat": 8}, "cannot be widened"), ({"stages": 2}, "cannot be grown"),
                       ({"width": 2}, "width")):
        with pytest.raises(ValueError, match=match):
            initial_model(TrainConfig(init=str(init), arch_kwargs=bad))
    recipe = tmp_path / "r.yml"                      # the command: one line, exit 2, nothing written
    recipe.write_text(f"kind: pose\ninit: {init}\narch_kwargs: {{width: 2}}\n"
                      f"run_dir: {tmp_path / 'run'}\n")
    assert cli.main(["train", str(recipe), "--no-progress"]) == 2
    assert "only 'stages', 'feat' and 'front_blocks' can grow" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _trained_small_init(tmp_path):
    """A small 3-stage pose net whose BatchNorm statistics are not 0 / 1 (one training-mode
    pass), in eval mode, its input batch, and its weights saved as an init file."""
    from humanpose.nets import build_model
    from humanpose.store import save_weights
    torch.manual_seed(0)
    small = build_model("cpm_compact", "pose", stages=3, feat=16)
    x = torch.rand(4, 4, 64, 64) - 0.5
    small.train()
    with torch.no_grad():
        small(x)
    small.eval()
    init = save_weights(small, tmp_path / "small.safetensors", "cpm_compact",
                        kwargs={"stages": 3, "feat": 16})
    return small, x, init


def test_init_deepens_the_front_keeping_what_the_net_computes(tmp_path):
    """A recipe asking for ``front_blocks`` adds residual blocks to the init's front that start
    as the identity (the same beliefs in eval and training mode, saved weights kept), then learn:
    one gradient step moves their BatchNorm scale off 0; fewer blocks than the init is an error."""
    from humanpose.nets.compact import ResBlock
    from humanpose.store import load_model, save_weights
    from humanpose.train.recipe import TrainConfig
    from humanpose.train.trainer import initial_model
    small, x, init = _trained_small_init(tmp_path)
    deep, kwargs = initial_model(TrainConfig(init=str(init), arch_kwargs={"front_blocks": 2}))
    assert kwargs == {"stages": 3, "feat": 16, "front_blocks": 2} and deep.front_blocks == 2
    blocks = [m for m in deep.front.body if isinstance(m, ResBlock)]
    assert [b.conv.dilation for b in blocks] == [(1, 1), (2, 2)]
    for mode in ("eval", "train"):
        small.train(mode == "train"), deep.train(mode == "train")
        with torch.no_grad():
            for b, a in zip(small(x), deep(x)):
                assert torch.equal(a, b), mode
    deep.train()
    deep(x)[-1].pow(2).mean().backward()
    assert all(b.bn.weight.grad.abs().sum() > 0 for b in blocks)
    saved = save_weights(deep, tmp_path / "deep.safetensors", "cpm_compact", kwargs=kwargs)
    again = load_model(saved, kind="pose").eval()
    deep.eval()
    with torch.no_grad():
        assert torch.equal(again(x)[-1], deep(x)[-1])
    more, kw = initial_model(TrainConfig(init=str(saved), arch_kwargs={"front_blocks": 3}))
    assert kw["front_blocks"] == 3 and more.front_blocks == 3
    with pytest.raises(ValueError, match="front_blocks 1 cannot be grown"):
        initial_model(TrainConfig(init=str(saved), arch_kwargs={"front_blocks": 1}))


def test_init_widens_feat_keeping_what_the_net_computes(tmp_path):
    """A recipe asking for more ``feat`` channels than its init widens the net (Net2WiderNet):
    the same beliefs in eval and in training mode, the old channels' weights kept, and a
    gradient step that no longer moves a channel and its copy alike."""
    from humanpose.train.recipe import TrainConfig
    from humanpose.train.trainer import initial_model
    small, x, init = _trained_small_init(tmp_path)
    wide, kwargs = initial_model(TrainConfig(init=str(init), arch_kwargs={"feat": 24, "stages": 4}))
    assert kwargs == {"stages": 4, "feat": 24} and wide.num_stages == 4
    assert wide.front.body[-1][0].out_channels == 24
    assert all(s.body[0][0].out_channels == 24 and s.out.in_channels == 24
               for s in [wide.stage1, *wide.stages])
    assert torch.equal(wide.front.body[-1][0].weight[:16], small.front.body[-1][0].weight)
    wide.eval()
    with torch.no_grad():
        before, after = small(x), wide(x)
    for b, a in zip(before, after[:3]):
        assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(after[3], after[2])   # the added stage refines stage 3's beliefs
    small.train(), wide.train()
    a, b = small(x)[-1], wide(x)[2]
    assert torch.allclose(a, b, atol=1e-5)
    b.pow(2).mean().backward()                       # copies of a channel get different gradients
    grad = wide.front.body[-1][0].weight.grad
    src = [c for c in range(16) if torch.equal(wide.front.body[-1][0].weight[16].detach(),
                                               small.front.body[-1][0].weight[c].detach())]
    assert len(src) == 1 and not torch.allclose(grad[16], grad[src[0]])


def test_average_weights_tool(tmp_path):
    """tools/average_weights.py: the mean of two nets of one architecture; other nets refused."""
    import importlib.util
    from humanpose.nets import build_model
    from humanpose.store import load_model, read_metadata, save_weights, sha256
    spec = importlib.util.spec_from_file_location(
        "average_weights", __import__("pathlib").Path(__file__).resolve().parents[1] / "tools" / "average_weights.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    kw = {"stages": 2, "feat": 16}
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(str(save_weights(build_model("cpm_compact", "pose", **kw),
                                      tmp_path / f"w{seed}.safetensors", "cpm_compact", kwargs=kw,
                                      extra={"step": 100 * (seed + 1), "val_pck": 50.0 + seed})))
    out = tmp_path / "avg.safetensors"
    assert tool.average(paths, str(out)) == out
    a, b, m = (load_model(p).state_dict() for p in paths + [str(out)])
    for k, v in m.items():
        if v.is_floating_point():
            assert torch.allclose(v, (a[k] + b[k]) / 2, atol=1e-6)
    meta = read_metadata(out)
    assert json.loads(meta["averaged"]) == [sha256(p) for p in paths]
    assert "val_pck" not in meta and "step" not in meta     # the inputs' scores are not the average's
    other = save_weights(build_model("cpm_compact", "pose", stages=3, feat=16),
                         tmp_path / "other.safetensors", "cpm_compact", kwargs={"stages": 3, "feat": 16})
    with pytest.raises(ValueError, match="is not the same net"):
        tool.average([paths[0], str(other)], str(tmp_path / "bad.safetensors"))
    assert not (tmp_path / "bad.safetensors").exists()


def test_the_crop_cache_name_follows_how_the_crops_are_cut(tmp_path, monkeypatch):
    """A cache cut at another CACHE_SIZE / CACHE_PERSON is another file, never silently reused."""
    from humanpose.train import datasets
    _fake_lsp(tmp_path / "lsp", n=2)
    data = read_lsp_dir(tmp_path / "lsp", "lsp")
    name = datasets.crop_cache_file(tmp_path, "val", data)
    assert datasets.crop_cache_file(tmp_path, "val", data) == name
    monkeypatch.setattr(datasets, "CACHE_PERSON", datasets.CACHE_PERSON + 8)
    assert datasets.crop_cache_file(tmp_path, "val", data) != name
