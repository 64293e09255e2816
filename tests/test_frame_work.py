"""The per-frame work around the nets: crops cut straight from the frame (one warp each) equal
the crops of the scaled frame within interpolation noise, and the batched Kalman smoothing
equals filterpy's filters (one per track and joint) on a track recorded from real video."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from filterpy.common import Q_continuous_white_noise
from filterpy.kalman import KalmanFilter
from scipy.optimize import linear_sum_assignment

from humanpose import config
from humanpose.estimator.crops import Crop, crop, crop_offset, cut, scale_frame, scaled_size
from humanpose.estimator.result import Person
from humanpose.estimator.kalman import INIT_SPEED
from humanpose.estimator.tracking import MAX_DT, MIN_DT, SCORE_DECAY, Tracker
from humanpose.skeleton import NUM_JOINTS

from conftest import shared_path


def video_frames(name: str, n: int, step: int = 1) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(shared_path("media", name)))
    frames = []
    while len(frames) < n:
        for _ in range(step):
            ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    assert frames, name
    return frames


# ---------------------------------------------------------------- crops
def scaled_frame_crop(bgr, centre, b):
    """The crop as it was cut before: the whole frame scaled to height b, then an integer crop."""
    scaled, sx, sy = scale_frame(bgr, b)
    ox, oy = crop_offset(centre, b)
    return crop(scaled, ox, oy, b)


@pytest.mark.parametrize("size, b", [((480, 640), 192), ((576, 768), 192), ((720, 1280), 256),
                                     ((240, 320), 256), ((480, 640), 128)])
def test_cut_crop_equals_the_scaled_frame_crop(size, b):
    """vtest frames at several sizes (down by 1.3 to 3.75, up by 1.07): the warped crop differs
    from the one of the scaled frame by interpolation noise only, also at the frame's edge."""
    for frame in video_frames("vtest.avi", 3, step=40):
        bgr = cv2.resize(frame, size[::-1], interpolation=cv2.INTER_AREA)
        scaled = scaled_size(bgr.shape, b)
        sx, sy, (sh, sw) = scaled
        for centre in (np.array([sw / 2 + 7.3, sh / 2 - 3.6]), np.array([10.2, 30.7]),
                       np.array([sw - 20.5, sh - 5.1])):
            ref = scaled_frame_crop(bgr, centre, b).astype(np.int16)
            cr = Crop.centred(bgr, centre, b, scaled)
            diff = np.abs(cr.image.astype(np.int16) - ref)
            assert diff.mean() < 4.0, (size, b, centre, diff.mean())
            assert np.percentile(diff, 99) < 40, (size, b, centre)
            # the same pixels are grey padding: those outside the scaled frame, a hard edge
            ox, oy = crop_offset(centre, b)
            inside = (((np.arange(b) + oy >= 0) & (np.arange(b) + oy < sh))[:, None]
                      & ((np.arange(b) + ox >= 0) & (np.arange(b) + ox < sw))[None, :])
            assert (cr.image[~inside] == 128).all() and (ref[~inside] == 128).all()
            assert not inside.all() or centre[0] > 100      # the corners do cut the frame
            # the blurred crops agree closely: what differs is detail at the pixel level
            blur = lambda im: cv2.GaussianBlur(im.astype(np.float32), (0, 0), 1.5)  # noqa: E731
            assert np.abs(blur(cr.image) - blur(ref)).mean() < 1.5


def test_cut_writes_into_the_given_buffer_and_an_exact_integer_scale_is_exact():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (300, 399, 3), dtype=np.uint8)
    out = np.empty((64, 64, 3), np.uint8)
    img = cut(bgr, 1.0, 1.0, 10.0, 20.0, 64, out)
    assert img is out or np.shares_memory(img, out)
    np.testing.assert_array_equal(out, bgr[20:84, 10:74])          # scale 1: a plain crop
    # down by exactly 3: the block average, as cv2.resize's INTER_AREA makes it
    small = cv2.resize(bgr, (133, 100), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(cut(bgr, 1 / 3, 1 / 3, 30.0, 12.0, 64), small[12:76, 30:94])
    # entirely outside the frame: grey
    assert (cut(bgr, 0.25, 0.25, 500.0, 500.0, 32) == 128).all()


def test_rescaled_crop_equals_the_resized_window():
    """Crop.rescaled (one warp) against the window cut and resized as before."""
    for frame in video_frames("vtest.avi", 2, step=60):
        for centre, side in (((300.4, 250.2), 150.0), ((380.0, 290.0), 520.0),
                             ((40.0, 500.0), 300.0)):
            cr = Crop.rescaled(frame, np.array(centre), side, 192)
            h = int(round(side))
            x0, y0 = crop_offset(np.array(centre), h)
            ref = cv2.resize(crop(frame, x0, y0, h), (192, 192),
                             interpolation=cv2.INTER_AREA if h > 192 else cv2.INTER_LINEAR)
            diff = np.abs(cr.image.astype(np.int16) - ref)
            assert diff.mean() < 4.0, (centre, side, diff.mean())


# ---------------------------------------------------------------- Kalman smoothing
class FilterpyTracker:
    """The reference: the tracker as it was, with one filterpy KalmanFilter per track centre
    and per joint (association, gating and reset exactly as in humanpose.estimator.tracking)."""

    def __init__(self, cfg):
        self.cfg, self.tracks, self.next_id = cfg, [], 0

    def _filter(self, xy):
        kf = KalmanFilter(dim_x=4, dim_z=2)
        kf.x = np.array([float(xy[0]), float(xy[1]), 0.0, 0.0])
        r = self.cfg.measurement_noise
        kf.P = np.diag([r, r, INIT_SPEED ** 2, INIT_SPEED ** 2])
        kf.H = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
        kf.R = np.eye(2) * r
        return kf

    def _model(self, dt):
        dt = round(dt, 6)
        F = np.eye(4)
        F[0, 2] = F[1, 3] = dt
        return F, Q_continuous_white_noise(dim=2, dt=dt, spectral_density=self.cfg.process_noise,
                                           block_size=2, order_by_dim=False)

    @staticmethod
    def _diag(box):
        return float(max(np.hypot(box[2] - box[0], box[3] - box[1]), 1.0))

    def update(self, persons, t):
        cfg = self.cfg
        pairs, new = [], list(range(len(persons)))
        if self.tracks and persons:
            cost = np.empty((len(self.tracks), len(persons)))
            dc = np.array([p.centre[:2] for p in persons])
            dd = np.array([self._diag(p.box) for p in persons])
            for ti, tr in enumerate(self.tracks):
                dt = min(max(t - tr["time"], MIN_DT), MAX_DT)
                x = tr["centre"].x
                c = np.array([x[0] + x[2] * dt, x[1] + x[3] * dt])
                cost[ti] = np.hypot(*(dc - c).T) / ((tr["diag"] + dd) / 2)
            cost[cost > cfg.max_distance] = 1e9
            rows, cols = linear_sum_assignment(cost)
            pairs = [(r, c) for r, c in zip(rows, cols) if cost[r, c] <= cfg.max_distance]
            new = [i for i in new if i not in {c for _, c in pairs}]
        for ti, pi in pairs:
            tr, p = self.tracks[ti], persons[pi]
            F, Q = self._model(min(max(t - tr["time"], MIN_DT), MAX_DT))
            tr["centre"].predict(F=F, Q=Q)
            tr["centre"].update(np.asarray(p.centre, np.float64)[:2])
            tr.update(diag=self._diag(p.box), time=t, missed=0)
            p.track_id = tr["id"]
            self._smooth(tr, p, F, Q)
        matched = {ti for ti, _ in pairs}
        survivors = []
        for ti, tr in enumerate(self.tracks):
            if ti not in matched:
                tr["missed"] += 1
                tr["joint_missed"] += 1
            if ti in matched or tr["missed"] <= cfg.max_missed:
                survivors.append(tr)
        self.tracks = survivors
        for pi in new:
            p = persons[pi]
            tr = dict(id=self.next_id, centre=self._filter(p.centre), diag=self._diag(p.box),
                      time=t, missed=0, joints=[None] * NUM_JOINTS,
                      joint_missed=np.zeros(NUM_JOINTS, np.int64), joint_score=np.zeros(NUM_JOINTS))
            self.next_id += 1
            self.tracks.append(tr)
            p.track_id = tr["id"]
            self._smooth(tr, p, None, None)

    def _smooth(self, tr, p, F, Q):
        cfg = self.cfg
        raw = np.asarray(p.joints)
        out = np.array(raw, copy=True)
        for j in range(NUM_JOINTS):
            x, y, score = raw[j]
            kf = tr["joints"][j]
            if score >= cfg.min_score and np.isfinite(x) and np.isfinite(y):
                if kf is None:
                    tr["joints"][j] = self._filter((x, y))
                else:
                    kf.predict(F=F, Q=Q)
                    kf.update(np.array([x, y], np.float64))
                    out[j, :2] = kf.x[:2]
                tr["joint_missed"][j] = 0
                tr["joint_score"][j] = score
            elif kf is not None:
                if F is not None:
                    tr["joint_missed"][j] += 1
                if tr["joint_missed"][j] > cfg.max_missed:
                    tr["joints"][j] = None
                    continue
                if F is not None:
                    kf.predict(F=F, Q=Q)
                out[j, :2] = kf.x[:2]
                out[j, 2] = tr["joint_score"][j] * SCORE_DECAY ** tr["joint_missed"][j]
        p.raw_joints, p.joints = raw, out


@pytest.fixture(scope="module")
def recorded_track():
    """Persons (centre, box, measured joints, crop scale) of 40 vtest frames (several walkers)
    as the shipped nets find them, detector on every frame, with their timestamps."""
    from humanpose.estimator.pipeline import PoseEstimator
    cfg = config.set_value(config.load(), "tracking.enabled", False)
    est = PoseEstimator(cfg)
    out = []
    for k, frame in enumerate(video_frames("vtest.avi", 40, step=2)):
        res = est.estimate(frame, timestamp=k * 2 / 30.0, frame_index=k, keep_maps=False)
        out.append((res.timestamp, [(p.centre.copy(), p.box.copy(), p.joints.copy(), p.crop_scale)
                                    for p in res.persons]))
    assert sum(len(ps) for _, ps in out) >= 80      # several people on most frames
    return out


def replay(tracker, recording, hide):
    """Fresh Person objects of the recording through ``tracker``; persons whose index is in
    ``hide(k)`` are left out of frame k (missed detections: tracks coast, then end)."""
    frames = []
    for k, (t, ps) in enumerate(recording):
        persons = [Person(centre=c.copy(), centre_score=0.9, box=b.copy(), joints=j.copy(),
                          crop_scale=s) for i, (c, b, j, s) in enumerate(ps) if i not in hide(k)]
        tracker.update(persons, t)
        frames.append(persons)
    return frames


@pytest.mark.parametrize("changes, gating", [
    ({}, False),                                          # the shipped settings
    ({"min_score": 0.6, "max_missed": 2}, True),          # many gated joints, filters reset
    ({"process_noise": 200.0, "measurement_noise": 30.0, "max_distance": 1.0}, False),
])
def test_batched_smoothing_equals_filterpy_on_a_recorded_track(recorded_track, changes, gating,
                                                               monkeypatch):
    # the filters, not the association: the reference has no identity gate (test_tracking's)
    from humanpose.estimator import tracking
    monkeypatch.setattr(tracking, "identity_jump", lambda *a, **k: False)
    cfg = dataclasses.replace(config.load().tracking, enabled=True, smoothing=True, **changes)
    ours, ref = Tracker(cfg), FilterpyTracker(cfg)
    hide = lambda k: {0} if 10 <= k < 14 else ({1, 2} if 20 <= k < 24 else set())  # noqa: E731
    a, b = replay(ours, recorded_track, hide), replay(ref, recorded_track, hide)
    gated = predicted = 0
    for pa, pb in zip(a, b):
        assert [p.track_id for p in pa] == [p.track_id for p in pb]
        for p, q in zip(pa, pb):
            np.testing.assert_allclose(p.joints, q.joints, rtol=0, atol=1e-6)
            np.testing.assert_array_equal(p.raw_joints, q.raw_joints)
            gated += int((p.raw_joints[:, 2] < cfg.min_score).sum())
            predicted += int((p.joints[:, 2] != p.raw_joints[:, 2]).sum())
    if gating:                                 # the gating and the decay were exercised
        assert gated > 20 and predicted > 10, (gated, predicted)
    assert ours.track_ids == [tr["id"] for tr in ref.tracks]
    # the predictions that cut the next frame's crops follow the same filters
    t = recorded_track[-1][0] + 1 / 15.0
    for (tid, _, xy, *_), tr in zip(ours.predicted(t), [r for r in ref.tracks if not r["missed"]]):
        dt = min(max(t - tr["time"], MIN_DT), MAX_DT)
        for j, kf in enumerate(tr["joints"]):
            if kf is not None:
                np.testing.assert_allclose(xy[j], kf.x[:2] + kf.x[2:4] * dt, atol=1e-6)


def test_argmax_subpixel_is_the_refined_maximum_of_every_map():
    """The vectorised decoding gives, for every map, exactly what refine() gives at its
    maximum (Gaussian peaks inside and at the edge, flat and negative maps)."""
    from humanpose.estimator import maps
    rng = np.random.default_rng(3)
    ys, xs = np.mgrid[0:24, 0:20]
    cx, cy = rng.uniform(-2, 22, (NUM_JOINTS, 1, 1)), rng.uniform(-2, 26, (NUM_JOINTS, 1, 1))
    gauss = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 4.0).astype(np.float32)
    for m in (gauss, gauss - 0.3, np.zeros_like(gauss), rng.random(gauss.shape, np.float32)):
        out = maps.argmax_subpixel(m)
        for n in range(len(m)):
            i, j = divmod(int(m[n].argmax()), m.shape[2])
            dx, dy = maps.refine(m[n], i, j)
            assert tuple(out[n]) == (j + dx, i + dy, float(m[n, i, j]))


def test_a_kept_crop_is_not_overwritten_by_the_next_frames():
    """The crops are cut into images reused from frame to frame; a result that keeps its maps
    keeps its own copy (the window shows it while the next frames are estimated)."""
    from humanpose.estimator.pipeline import PoseEstimator
    from humanpose.optimize.webcam_bench import webcam_frames
    est = PoseEstimator(config.set_value(config.load(), "tracking.detect_every", 5))
    frames, _ = webcam_frames(4)
    first = est.estimate(frames[0], timestamp=0.0, keep_maps=True)
    saved = [p.crop.copy() for p in first.persons]
    assert saved
    later = [est.estimate(f, timestamp=i / 30.0, frame_index=i, keep_maps=True)
             for i, f in enumerate(frames[1:], start=1)]
    assert any(r.path == "tracked" for r in later)        # crops cut from the tracks too
    assert not np.array_equal(later[-1].persons[0].crop, saved[0])   # the person moved
    for p, c in zip(first.persons, saved):
        np.testing.assert_array_equal(p.crop, c)
