"""PoseEstimator: input formats, geometry of crop / scale / mapping back, batching, settings."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from humanpose.config import Config, from_dict
from humanpose.estimator import maps
from humanpose.estimator.crops import Crop, crop, crop_offset, detector_frame, to_bgr
from humanpose.estimator.decode import duplicates, pose_score
from humanpose.estimator.pipeline import PoseEstimator
from humanpose.nets.compact import CompactCPM
from humanpose.skeleton import NUM_JOINTS, NUM_MAPS
from humanpose.store import ModelError

torch.set_num_threads(1)


def shared_media(name: str) -> Path:
    try:
        from conftest import shared_path  # type: ignore
        p = shared_path("media", name)
    except ImportError:
        p = Path(__file__).resolve().parents[1].parent / "shared" / "media" / name
    if not p.exists():
        pytest.skip(f"../shared/media absent: {p} not found")
    return p


def make_cfg(**estimator) -> Config:
    return from_dict({"model": {"framework": "torch", "device": "cpu"},
                      "estimator": {"boxsize": 64, "rescale": False,
                                    "min_pose_score": 0.0,    # untrained nets: keep all
                                    "crop_levels": 1,         # the oracles' offsets are in the
                                    **estimator},             # frame-high crop's pixels
                      "tracking": {"enabled": False}})


def tiny(kind: str, bias: float | None = None, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = CompactCPM(kind, stages=2, feat=16).eval()
    if bias is not None:  # force the last stage's output: zero weights, constant bias
        with torch.no_grad():
            m.stages[-1].out.weight.zero_()
            m.stages[-1].out.bias.fill_(bias)
    return m


def busy_person_net() -> nn.Module:
    """A random person net whose map is positive everywhere: always finds persons."""
    m = tiny("person")
    with torch.no_grad():
        m.stages[-1].out.bias.add_(5.0)
    return m


# ---------------------------------------------------------------- oracle nets
def _paraboloid(h: int, w: int, uv: np.ndarray, radius: float = 3.0) -> np.ndarray:
    """1 - d²/r², clipped at 0: the quadratic sub-cell refinement recovers its peak exactly."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.clip(1.0 - ((xs - uv[0]) ** 2 + (ys - uv[1]) ** 2) / radius ** 2, 0, None)


def _blobs(img: np.ndarray) -> list[np.ndarray]:
    """Weighted centroids (x, y) of the bright blobs of a normalised (H, W) image; grey padding
    (0.0) and black background (-0.5) weigh nothing."""
    w = np.clip(img - 0.05, 0, None)
    labels, n = ndimage.label(w > 0)
    return [np.array(ndimage.center_of_mass(w, labels, i + 1))[::-1] for i in range(n)]


class OraclePerson(nn.Module):
    """Person 'net': a peak at every bright blob of the input (one per SHIFTS entry, that many
    cells away from the blob, each 0.1 weaker than the one before)."""
    kind, in_channels, num_maps, num_stages = "person", 3, 1, 2
    SHIFTS = ((0.0, 0.0),)

    def forward(self, x):
        n, _, h, w = x.shape
        out = np.zeros((n, 1, h // 8, w // 8), np.float32)
        for i in range(n):
            for c in _blobs(x[i].mean(0).numpy()):
                for k, shift in enumerate(self.SHIFTS):
                    peak = _paraboloid(h // 8, w // 8, maps.to_map(c) + shift)
                    out[i, 0] = np.maximum(out[i, 0], (1 - 0.1 * k) * peak)
        t = torch.from_numpy(out)
        return (t * 0.5, t)


class OraclePose(nn.Module):
    """Pose 'net': joint j at the blob nearest the crop centre + OFFSETS[j] crop pixels."""
    kind, in_channels, num_maps, num_stages = "pose", 4, NUM_MAPS, 2
    OFFSETS = np.stack([np.linspace(-20, 20, NUM_JOINTS), np.linspace(15, -25, NUM_JOINTS)], 1)

    def __init__(self):
        super().__init__()
        self.batches: list[int] = []
        self.centre_channels: list[np.ndarray] = []

    def forward(self, x):
        n, _, h, w = x.shape
        self.batches.append(n)
        out = np.zeros((n, NUM_MAPS, h // 8, w // 8), np.float32)
        mid = np.array([(w - 1) / 2, (h - 1) / 2])
        for i in range(n):
            self.centre_channels.append(x[i, 3].numpy().copy())
            blobs = _blobs(x[i, :3].mean(0).numpy())
            c = min(blobs, key=lambda b: np.hypot(*(b - mid)))
            for j in range(NUM_JOINTS):
                out[i, j] = 0.9 * _paraboloid(h // 8, w // 8, maps.to_map(c + self.OFFSETS[j]))
        t = torch.from_numpy(out)
        return (t * 0.5, t)


def blob_frame(h: int, w: int, centres, sigma: float = 6.0, channels: int = 3) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w))
    for cx, cy in centres:
        img = np.maximum(img, np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma ** 2)))
    g = np.round(img * 255).astype(np.uint8)
    return g if channels == 1 else np.repeat(g[:, :, None], channels, 2)


# ---------------------------------------------------------------- geometry (the key test)
@pytest.mark.parametrize("h, w, boxsize, centres", [
    (360, 500, 128, [(250.3, 180.6)]),                  # shrink (scale 0.36)
    (100, 150, 192, [(71.2, 48.7)]),                     # enlarge (scale 1.92)
    (240, 333, 96, [(20.4, 200.2), (300.7, 30.1)]),      # two persons near edges: crops padded
    (200, 200, 200, [(101.5, 99.25)]),                   # no resize, 200 -> 200
])
def test_pipeline_recovers_known_joints_and_centres_in_frame_pixels(h, w, boxsize, centres):
    pose = OraclePose()
    cfg = make_cfg(boxsize=boxsize, person_threshold=0.5, min_person_distance=0.2)
    est = PoseEstimator(cfg, OraclePerson(), pose)
    sigma = 3.0 * h / boxsize    # a blob of 3 px after scaling
    res = est.estimate(blob_frame(h, w, centres, sigma))
    assert res.frame_shape == (h, w) and res.boxsize == boxsize
    assert len(res.persons) == len(centres)
    scale = boxsize / h
    for (cx, cy) in centres:
        p = min(res.persons, key=lambda q: np.hypot(q.centre[0] - cx, q.centre[1] - cy))
        cerr = np.hypot(p.centre[0] - cx, p.centre[1] - cy)
        # within 1 frame px, and within 0.2 px of the scaled frame the nets see (this catches
        # half-pixel slips in the resize / map conventions even when scaling up)
        assert cerr < 1.0 and cerr * scale < 0.2, (p.centre, (cx, cy))
        expected = np.array([cx, cy]) + OraclePose.OFFSETS / scale
        inside = ((expected[:, 0] >= 0) & (expected[:, 0] <= w - 1)
                  & (expected[:, 1] >= 0) & (expected[:, 1] <= h - 1))
        assert inside.sum() >= NUM_JOINTS // 2
        err = np.hypot(*(p.joints[inside, :2] - expected[inside]).T)
        assert err.max() < 1.0 and err.max() * scale < 0.2, (err.max(), p.joints[inside][:3],
                                                              expected[inside][:3])
        # joints whose belief peak is in the grey padding are searched / clipped inside the frame
        assert (p.joints[:, 0] >= -0.5).all() and (p.joints[:, 0] <= w - 0.5).all()
        assert (p.joints[:, 1] >= -0.5).all() and (p.joints[:, 1] <= h - 0.5).all()
        # score = the map's value at the peak cell (<= half a cell from the true peak)
        sc = p.joints[inside, 2]
        assert ((sc > 0.9 * (1 - 0.5 / 9)) & (sc <= 0.9 + 1e-6)).all()
        # the box is the crop, boxsize/scale frame pixels wide, centred on the person
        assert p.box[2] - p.box[0] == pytest.approx(boxsize / scale, rel=0.01)
        assert abs((p.box[0] + p.box[2]) / 2 - cx) <= 0.6 / scale + 1e-6
        assert p.crop.shape == (boxsize, boxsize, 3) and p.crop.dtype == np.uint8
        assert p.stage_maps.shape == (2, NUM_MAPS, boxsize // 8, boxsize // 8)
        assert p.crop_scale == pytest.approx(scale)
    assert pose.batches == [len(centres)]     # all persons in ONE batch
    # the 4th channel is the centre map of the configured sigma
    np.testing.assert_allclose(pose.centre_channels[0],
                               maps.centre_map(boxsize, cfg.estimator.centre_sigma * boxsize))


def test_crop_is_exact_and_padded_with_grey():
    img = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    c = crop(img, -2, 5, 8)
    assert c.shape == (8, 8, 3)
    np.testing.assert_array_equal(c[:5, 2:], img[5:10, 0:6])
    assert (c[:, :2] == 128).all() and (c[5:] == 128).all()
    # the crop's centre pixel (size-1)/2 is within half a pixel of the requested centre
    ox, oy = crop_offset(np.array([30.2, 17.8]), 64)
    assert abs(ox + 31.5 - 30.2) <= 0.5 and abs(oy + 31.5 - 17.8) <= 0.5


# ---------------------------------------------------------------- rescale (second pass)
@pytest.mark.parametrize("centre, side", [
    ((200.3, 150.7), 60.0),     # zoom in: 60 frame px -> 128 crop px
    ((200.3, 150.7), 301.0),    # zoom out: 301 -> 128 (INTER_AREA)
    ((12.2, 290.6), 90.0),      # at the frame's corner: grey padding
])
def test_rescaled_crop_maps_frame_pixels_to_crop_pixels_and_back(centre, side):
    frame = blob_frame(300, 400, [centre], sigma=max(2.0, side / 40))
    cr = Crop.rescaled(frame, np.array(centre), side, 128)
    assert cr.image.shape == (128, 128, 3) and cr.kx == cr.ky == pytest.approx(128 / round(side))
    # the blob's centroid in the crop (above the grey 128, symmetric cut) is the mapped centre
    w = np.clip(cr.image[:, :, 0].astype(np.float64) - 140, 0, None)
    v, u = ndimage.center_of_mass(w)
    back = (np.array([u, v]) + (cr.ox, cr.oy) + 0.5) / cr.kx - 0.5
    np.testing.assert_allclose(back, centre, atol=0.1 / cr.kx + 0.02)
    # the window is `side` frame pixels, centred on `centre` within half a frame pixel
    x0, y0, x1, y1 = cr.box()
    assert x1 - x0 == pytest.approx(round(side)) and y1 - y0 == pytest.approx(round(side))
    assert abs((x0 + x1) / 2 - centre[0]) <= 0.5 and abs((y0 + y1) / 2 - centre[1]) <= 0.5
    if centre[0] < side / 2:
        assert (cr.image[:, 0] == 128).all()          # left of the frame: grey
    # a (Gaussian) belief peak at that crop pixel decodes to the same frame point
    uv = maps.to_map(np.array([u, v]))
    ys, xs = np.mgrid[0:16, 0:16]
    beliefs = np.stack([np.exp(-((xs - uv[0]) ** 2 + (ys - uv[1]) ** 2) / 2.0)] * NUM_JOINTS)
    joints = cr.joints(beliefs, frame.shape[:2])
    np.testing.assert_allclose(joints[:, :2], np.broadcast_to(back, (NUM_JOINTS, 2)), atol=1e-6)


class ScaledOraclePose(nn.Module):
    """Pose 'net' for one Gaussian blob: joint j at the blob's centroid + OFFSETS[j] x its sigma
    / 8, sigma from the second moments, so that the joints scale with the person like real
    ones (the first pass sees a small blurred person, the second a large sharp one)."""
    kind, in_channels, num_maps, num_stages = "pose", 4, NUM_MAPS, 2
    OFFSETS = OraclePose.OFFSETS

    def __init__(self):
        super().__init__()
        self.batches: list[int] = []

    def forward(self, x):
        n, _, h, w = x.shape
        self.batches.append(n)
        out = np.zeros((n, NUM_MAPS, h // 8, w // 8), np.float32)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        for i in range(n):
            wt = x[i, :3].mean(0).numpy().astype(np.float64) + 0.5
            c = np.array([(wt * xs).sum(), (wt * ys).sum()]) / wt.sum()
            var = (wt * ((xs - c[0]) ** 2 + (ys - c[1]) ** 2)).sum() / wt.sum() / 2
            for j in range(NUM_JOINTS):
                uv = maps.to_map(c + self.OFFSETS[j] * np.sqrt(var) / 8)
                out[i, j] = 0.9 * _paraboloid(h // 8, w // 8, uv)
        t = torch.from_numpy(out)
        return (t * 0.5, t)


def test_rescale_re_estimates_a_small_person_on_a_crop_that_fits_it():
    centre, sigma = (321.3, 238.6), 6.0        # a person of 5 sigma = 30 px in a 480 px frame
    frame = blob_frame(480, 640, [centre], sigma=sigma)
    expected = np.array(centre) + ScaledOraclePose.OFFSETS * sigma / 8
    size = 40 * sigma / 8                      # the OFFSETS' box is 40 x 40 at sigma 8
    out = {}
    for rescale in (False, True):
        pose = ScaledOraclePose()
        est = PoseEstimator(make_cfg(boxsize=128, rescale=rescale), tiny("person"), pose)
        p = est.estimate(frame, centres=[centre]).persons[0]
        out[rescale] = (p, np.hypot(*(p.joints[:, :2] - expected).T).max())
        assert pose.batches == ([1, 1] if rescale else [1])
    plain, err_plain = out[False]
    p, err = out[True]
    assert not plain.rescaled and p.rescaled
    # 1 crop pixel of the first pass is 3.75 frame pixels, of the second (128 pixels over
    # size / 0.65 = 46 frame pixels) 0.36: a half-pixel slip in either mapping shows here
    assert err < 0.25 and err < err_plain / 2
    side = p.box[2] - p.box[0]
    assert side == pytest.approx(size / 0.65, rel=0.1) and p.crop_scale == pytest.approx(128 / side)
    # centred on the box of the joints (not on the detected centre)
    box_centre = (expected.min(0) + expected.max(0)) / 2
    assert np.hypot(*((p.box[:2] + p.box[2:]) / 2 - box_centre)) < 1.0
    assert p.crop.shape == (128, 128, 3) and p.stage_maps.shape == (2, NUM_MAPS, 16, 16)
    np.testing.assert_allclose(p.centre, plain.centre)      # the detected centre is kept


def test_scale_search_maps_zoomed_crops_back_onto_the_person():
    """scale_search: each person estimated again on crops zoomed by 1 -/+ d (one more batch of
    two per person, after rescale's); their maps, resampled onto the crop's grid, put the joints
    where the crop alone puts them (the oracle's joints scale with the person, so a zoom or an
    offset mapped wrongly by as little as a cell moves them by 8 crop pixels)."""
    centre, sigma = (321.3, 238.6), 6.0        # small: rescale's crop and the zooms stay inside
    frame = blob_frame(480, 640, [centre], sigma=sigma)
    expected = np.array(centre) + ScaledOraclePose.OFFSETS * sigma / 8
    err = {}
    for d in (0.0, 0.25):
        pose = ScaledOraclePose()
        est = PoseEstimator(make_cfg(boxsize=128, rescale=True, scale_search=d), tiny("person"),
                            pose)
        p = est.estimate(frame, centres=[centre]).persons[0]
        err[d] = np.hypot(*(p.joints[:, :2] - expected).T).max()
        assert pose.batches == ([1, 1, 2] if d else [1, 1]) and p.rescaled
        assert p.stage_maps.shape == (2, NUM_MAPS, 16, 16)
    px = 1 / p.crop_scale                       # frame pixels per crop pixel (0.36)
    assert err[0.0] < px and err[0.25] < px, err


def test_zoomed_onto_moves_a_peak_to_the_same_frame_place():
    """A belief peak in a zoomed crop lands, on the other crop's grid, on the cell of the same
    frame pixel; a crop onto itself is the identity and covers everything."""
    from humanpose.estimator.crops import Crop, zoomed_onto
    img = np.zeros((300, 400, 3), np.uint8)
    base = Crop.rescaled(img, np.array([200.0, 150.0]), 192, 192)
    m = maps.gaussian_maps(24, 24, np.array([[14.0, 10.0]]), 1.5)   # smooth: resampled exactly
    same, cover = zoomed_onto(m, base, base)
    np.testing.assert_allclose(same, m, atol=1e-6)
    assert cover.min() == 1.0
    for zoom in (0.75, 1.25):
        src = Crop.rescaled(img, np.array([190.0, 160.0]), 192 / zoom, 192)
        moved, cover = zoomed_onto(m, src, base)
        frame_xy = (maps.from_map(np.array([14.0, 10.0])) + (src.ox, src.oy) + 0.5) / src.kx - 0.5
        want = maps.to_map((frame_xy + 0.5) * base.kx - 0.5 - (base.ox, base.oy))
        ys, xs = np.mgrid[0:24, 0:24]
        got = np.array([(moved[0] * xs).sum(), (moved[0] * ys).sum()]) / moved[0].sum()
        np.testing.assert_allclose(got, want, atol=0.05)
        assert (cover[0, 0] == 0.0) == (zoom > 1)    # a zoomed-in crop covers less of the base


def test_rescale_leaves_a_person_of_the_right_size_alone():
    sigma = 0.65 * 128 * (480 / 128) / 5      # 5 sigma = 0.65 of the box in the scaled frame
    frame = blob_frame(480, 640, [(320.0, 240.0)], sigma=sigma)
    pose = ScaledOraclePose()
    est = PoseEstimator(make_cfg(boxsize=128, rescale=True), tiny("person"), pose)
    p = est.estimate(frame, centres=[(320.0, 240.0)]).persons[0]
    assert not p.rescaled and pose.batches == [1]
    assert p.box[3] - p.box[1] == pytest.approx(480.0)     # the first-pass crop


class TwoPeakPerson(OraclePerson):
    """Person 'net' that sees every blob twice, 2 cells right and 4 cells left of its centre (a
    tall person giving two centre peaks)."""
    SHIFTS = ((2.0, 0.0), (-4.0, 0.0))


def test_two_detections_of_one_person_give_one_person_the_better_placed():
    h, w, boxsize = 240, 400, 96
    # the detector sees the frame at the scale of the pose crops' frame (longer side 400 x 0.4)
    cfg = make_cfg(boxsize=boxsize, person_threshold=0.5, min_person_distance=0.1,
                   detector_size=round(w * boxsize / h))
    est = PoseEstimator(cfg, TwoPeakPerson(), OraclePose())
    scale = boxsize / h
    frame = blob_frame(h, w, [(120.0, 130.0), (290.0, 100.0)], 3.0 / scale)
    res = est.estimate(frame)
    assert len(res.persons) == 2                   # 4 peaks, 2 persons
    for p, cx in zip(sorted(res.persons, key=lambda q: q.centre[0]), (120.0, 290.0)):
        # the kept detection is the one 2 cells (16 scaled px) right of the blob, nearer the
        # centre of its joints' box than the one 4 cells left
        assert p.centre[0] == pytest.approx(cx + 16 / scale, abs=1.0)
    # given centres (eval's gt-centre mode) are never merged: each asks for a pose
    res = est.estimate(frame, centres=[(120.0, 130.0), (125.0, 130.0)])
    assert len(res.persons) == 2


def test_duplicates_only_merges_coinciding_poses():
    rng = np.random.default_rng(0)
    a = np.column_stack([rng.uniform(0, 100, NUM_JOINTS), rng.uniform(0, 200, NUM_JOINTS)])
    size = np.ptp(a, axis=0).max()                 # the larger side of the box of joints
    near = a + 0.1 * size / np.sqrt(2)             # every joint 0.1 x size away: same person
    far = a + 0.2 * size / np.sqrt(2)              # 0.2 x size away: another person
    centre = (a.min(0) + a.max(0)) / 2
    assert duplicates([a, near], np.array([centre + 50, centre])) == {0}
    assert duplicates([a, near], np.array([centre, centre + 50])) == {1}
    assert duplicates([a, far], np.array([centre, centre])) == set()
    assert duplicates([a, near, a + 1000], np.array([centre, centre + 5, centre + 1000])) == {1}
    assert duplicates([], np.zeros((0, 2))) == set()
    # a second skeleton that shares five joints (legs, one arm) with a and stretches the other
    # nine 0.5 x size further out is a wrong one: the smaller (a) is kept, whichever centre is
    # better placed; sharing four joints (two persons holding hands) is two persons
    for shared, dropped in ((5, {1}), (4, set())):
        other = a.copy()
        other[shared:] = centre + 2.0 * (a[shared:] - centre)
        other[:shared] += 0.05 * size
        for centres in (np.array([centre, centre + 5]), np.array([centre + 50, centre])):
            assert duplicates([a, other], centres) == dropped
            assert duplicates([other, a], centres[::-1]) == {1 - n for n in dropped}
    # with joint scores the surer skeleton is kept, whatever its size (messi5.jpg: the whole
    # lunging player, 0.68, over a detection on his upper body whose legs fall outside its
    # crop, 0.62); equal scores fall back to the smaller one
    other = a.copy()
    other[5:] = centre + 2.0 * (a[5:] - centre)
    centres = np.array([centre, centre + 5])
    def scored(j, s):
        return np.column_stack([j, np.full(NUM_JOINTS, s)])
    assert duplicates([scored(a, 0.62), scored(other, 0.68)], centres) == {0}
    assert duplicates([scored(other, 0.68), scored(a, 0.62)], centres[::-1]) == {1}
    assert duplicates([scored(a, 0.7), scored(other, 0.6)], centres) == {1}
    assert duplicates([scored(a, 0.65), scored(other, 0.65)], centres) == {1}


# ---------------------------------------------------------------- input formats
@pytest.mark.parametrize("rescale", [False, True])
@pytest.mark.parametrize("shape", [(120, 160, 3), (97, 203, 3), (300, 90, 3), (64, 64, 3),
                                   (150, 100), (80, 120, 1), (90, 130, 4)])
def test_frames_of_any_size_and_format(shape, rescale):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, size=shape, dtype=np.uint8)
    est = PoseEstimator(make_cfg(person_threshold=0.0, max_persons=3, rescale=rescale),
                        busy_person_net(), tiny("pose"))
    res = est.estimate(frame, frame_index=3)
    h, w = shape[:2]
    assert res.frame_shape == (h, w)
    assert 1 <= len(res.persons) <= 3
    from humanpose.estimator.persons import CENTRE_NET_SIDE   # detector_size 0: a centre-map net
    det, dsx, _ = detector_frame(to_bgr(frame),                 # sees 256
                                 est.config.estimator.detector_size or CENTRE_NET_SIDE)
    assert max(det.shape[:2]) == 256 and det.shape[0] % 32 == 0 and det.shape[1] % 32 == 0
    assert res.person_map.shape == (det.shape[0] // 8, det.shape[1] // 8)   # the detector's input
    for p in res.persons:
        assert p.joints.shape == (NUM_JOINTS, 3)
        assert np.isfinite(p.joints).all()
        # a joint lies inside its crop; the crop overlaps the frame
        assert (p.joints[:, 0] >= p.box[0]).all() and (p.joints[:, 0] <= p.box[2]).all()
        assert (p.joints[:, 1] >= p.box[1]).all() and (p.joints[:, 1] <= p.box[3]).all()
        assert (p.joints[:, 1] >= -0.5).all() and (p.joints[:, 1] <= h - 0.5).all()
        assert -0.5 <= p.centre[0] <= w + 32 / dsx and -0.5 <= p.centre[1] <= h + 32 / dsx
        assert ((p.joints[:, 2] >= 0) & (p.joints[:, 2] <= 1)).all()
    for key in ("preprocess", "person", "pose", "post", "track", "total"):
        assert res.timings[key] >= 0
    assert res.timestamp == pytest.approx(3 / 30)


def test_bad_frames_raise_clear_errors():
    est = PoseEstimator(make_cfg(), tiny("person"), tiny("pose"))
    with pytest.raises(ValueError, match="uint8"):
        est.estimate(np.zeros((50, 50, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        est.estimate(np.zeros((50, 50, 2), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        est.estimate(np.zeros((0, 50, 3), np.uint8))


def test_no_person_is_a_normal_result():
    pose = OraclePose()
    est = PoseEstimator(make_cfg(), tiny("person", bias=-1.0), pose)
    res = est.estimate(np.full((100, 140, 3), 200, np.uint8))
    assert res.persons == []
    # 140 x 100 seen by the detector at longer side 256 (183 rows padded to 192): 24 x 32 cells
    assert res.person_map.shape == (24, 32) and (res.person_map < 0).all()
    assert pose.batches == []   # the pose net is not run at all


def test_keep_maps_false_drops_maps_and_crops():
    est = PoseEstimator(make_cfg(person_threshold=0.0), busy_person_net(), tiny("pose"))
    res = est.estimate(np.zeros((64, 64, 3), np.uint8), keep_maps=False)
    assert res.persons and all(p.stage_maps is None and p.crop is None for p in res.persons)


# ---------------------------------------------------------------- settings
@pytest.mark.filterwarnings("error::UserWarning")
def test_boxsize_rounding_warning_and_range_error():
    est = PoseEstimator(make_cfg(), tiny("person"), tiny("pose"))
    with pytest.warns(UserWarning, match="boxsize 99 is not a multiple of 8; using 96"):
        assert est.set_boxsize(99) == 96
    assert est.boxsize == 96 and est.config.estimator.boxsize == 96
    with pytest.warns(UserWarning, match="using 128"):
        est.set_boxsize(131)
    assert est.boxsize == 128
    est.set_boxsize(640)  # in range and a multiple of 8: no warning (filterwarnings=error below)
    for bad in (32, 63, 641, 1000):
        with pytest.raises(ValueError, match=rf"{bad}.*64 to 640"):
            est.set_boxsize(bad)
    assert est.boxsize == 640
    est.set_boxsize(128)
    res = est.estimate(np.zeros((50, 70, 3), np.uint8))
    assert res.boxsize == 128
    assert res.person_map.shape == (24, 32)     # the detector's input does not follow the boxsize


def test_config_boxsize_not_multiple_of_8_is_rounded():
    with pytest.warns(UserWarning):
        est = PoseEstimator(make_cfg(boxsize=70), tiny("person"), tiny("pose"))
    assert est.boxsize == 72


def test_wrong_model_kinds_are_rejected():
    with pytest.raises(ValueError, match="person"):
        PoseEstimator(make_cfg(), tiny("pose"), tiny("pose"))


def test_missing_weights_raise_model_error_not_random(tmp_path):
    cfg = from_dict({"model": {"models_dir": str(tmp_path), "person_model": "nope_person",
                               "pose_model": "nope_pose"}})
    with pytest.raises(ModelError, match="nope_person"):
        PoseEstimator(cfg)


def test_weights_loaded_from_config(tmp_path):
    from humanpose.store import save_weights
    person, pose = tiny("person", seed=1), tiny("pose", seed=2)
    save_weights(person, tmp_path / "p.safetensors", "cpm_compact", kwargs={"stages": 2, "feat": 16})
    save_weights(pose, tmp_path / "q.safetensors", "cpm_compact", kwargs={"stages": 2, "feat": 16})
    cfg = from_dict({"model": {"models_dir": str(tmp_path), "person_model": "p.safetensors",
                               "pose_model": "q.safetensors", "device": "cpu"},
                     "estimator": {"boxsize": 64}})
    est = PoseEstimator(cfg)
    for a, b in zip(est.pose_model.state_dict().values(), pose.state_dict().values()):
        assert torch.equal(a, b)
    assert est.backend_name == "onnxruntime/cpu"      # the default framework


def test_tracking_ids_and_reset():
    frame = blob_frame(120, 160, [(80, 60)], sigma=6)
    cfg = from_dict({"model": {"framework": "torch", "device": "cpu"},
                     "estimator": {"boxsize": 64},
                     "tracking": {"enabled": True, "smoothing": True}})
    est = PoseEstimator(cfg, OraclePerson(), OraclePose())
    ids = [est.estimate(frame, frame_index=i).persons[0].track_id for i in range(3)]
    assert ids == [0, 0, 0]
    r = est.estimate(frame, frame_index=3)
    assert r.persons[0].raw_joints is not None and r.timings["track"] >= 0
    est.reset()
    est.set_tracking(True, False, strength=20.0)
    assert est.config.tracking.measurement_noise == 20.0 and not est.config.tracking.smoothing
    assert est.estimate(frame, timestamp=5.0).persons[0].track_id == 0
    est.set_tracking(False, False)
    assert est.estimate(frame, timestamp=5.1).persons[0].track_id == -1


def test_a_frame_of_another_size_starts_new_tracks():
    """A folder of unrelated pictures: the person of the next picture is not the last one's."""
    cfg = from_dict({"model": {"framework": "torch", "device": "cpu"},
                     "estimator": {"boxsize": 64},
                     "tracking": {"enabled": True}})
    est = PoseEstimator(cfg, OraclePerson(), OraclePose())
    small = blob_frame(120, 160, [(80, 60)], sigma=6)
    assert [est.estimate(small, frame_index=i).persons[0].track_id for i in range(2)] == [0, 0]
    other = blob_frame(240, 320, [(280, 200)], sigma=12)   # far off: no match, a new track
    assert est.estimate(other, frame_index=2).persons[0].track_id == 0
    assert est.tracks.tracker.track_ids == [0]                    # the small picture's track is gone


def test_real_frame_through_the_pipeline():
    cap = cv2.VideoCapture(str(shared_media("street_people.avi")))
    ok, frame = cap.read()
    cap.release()
    assert ok, "could not read a frame of street_people.avi"
    est = PoseEstimator(make_cfg(boxsize=96, person_threshold=0.0, max_persons=4),
                        busy_person_net(), tiny("pose"))
    res = est.estimate(frame, timestamp=0.02, frame_index=1)
    assert res.frame_shape == frame.shape[:2] == (720, 1280)
    assert 1 <= len(res.persons) <= 4
    for p in res.persons:
        assert p.crop.shape == (96, 96, 3)
        assert (p.joints[:, 1] >= -0.5).all() and (p.joints[:, 1] <= 719.5).all()


def test_flip_test_makes_the_estimate_mirror_symmetric():
    """With flip_test the estimator is exactly left/right equivariant: the joints of a mirrored
    frame are the mirrored joints with left and right swapped.  A random pose net is far from
    equivariant on its own, so a wrong flip axis or joint swap breaks this."""
    from humanpose.skeleton import flip_permutation
    rng = np.random.default_rng(3)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (96, 160, 3), dtype=np.uint8), (7, 7), 2)
    mirror = np.ascontiguousarray(frame[:, ::-1])
    centre = np.array([[63.5, 47.5]])            # mirrored: 160 - 1 - 63.5 = 95.5, same rounding
    perm = flip_permutation()[:NUM_JOINTS]
    pose = tiny("pose", seed=4)

    def joints(img, c, flip):
        est = PoseEstimator(make_cfg(boxsize=96, flip_test=flip), tiny("person"), pose)
        return est.estimate(img, centres=c).persons[0].joints

    plain, plain_m = joints(frame, centre, False), joints(mirror, [[95.5, 47.5]], False)
    flip, flip_m = joints(frame, centre, True), joints(mirror, [[95.5, 47.5]], True)
    back = flip_m[perm].copy()
    back[:, 0] = 160 - 1 - back[:, 0]
    np.testing.assert_allclose(back[:, :2], flip[:, :2], atol=0.05)
    np.testing.assert_allclose(back[:, 2], flip[:, 2], atol=1e-4)
    plain_back = plain_m[perm].copy()
    plain_back[:, 0] = 160 - 1 - plain_back[:, 0]
    assert np.abs(plain_back[:, :2] - plain[:, :2]).max() > 1.0   # the test is not vacuous


def test_pose_score_is_the_mean_of_the_best_half_of_the_joints():
    """A person framed down to the hips (7 joints in view, scored 0.8, the 7 cut off scored 0.1)
    scores as one seen whole; a detection scored evenly low stays low, whatever the order."""
    joints = np.zeros((14, 3))
    joints[:, 2] = [0.1] * 7 + [0.8] * 7
    assert pose_score(joints) == pytest.approx(0.8)
    assert pose_score(joints[::-1]) == pytest.approx(0.8)
    assert joints[:, 2].mean() == pytest.approx(0.45)        # the 14-joint mean before 2026-12-04
    joints[:, 2] = 0.35
    assert pose_score(joints) == pytest.approx(0.35)
    joints[:, 2] = np.linspace(0.0, 0.65, 14)                # best 7: 0.35 .. 0.65
    assert pose_score(joints) == pytest.approx(0.5)


def test_cancel_stops_an_estimate_between_net_passes():
    """A window that closes cancels the estimate under way: the pass in progress ends, the next
    one (here the scale-search pass after the first pose pass) is not run."""
    from humanpose.estimator.pipeline import Cancelled
    est = PoseEstimator(make_cfg(person_threshold=0.0, scale_search=0.15), busy_person_net(),
                        tiny("pose"))
    frame = np.zeros((64, 96, 3), np.uint8)
    passes = []
    inner = est.pose.run

    def pose_pass(crops):
        out = inner(crops)
        passes.append(len(crops))
        if len(passes) == 3:
            est.cancel()                 # the user closes the window during the third pass
        return out
    est.pose.run = pose_pass
    assert est.estimate(frame).persons and len(passes) == 2     # pose + scale-search pass
    with pytest.raises(Cancelled):
        est.estimate(frame)
    assert len(passes) == 3                                     # no scale-search pass after it
    with pytest.raises(Cancelled):                              # and for good
        est.estimate(frame)
    assert len(passes) == 3
