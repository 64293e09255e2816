"""Person tracking and joint smoothing (humanpose.estimator.tracking) on synthetic trajectories."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from humanpose.config import TrackingConfig
from humanpose.estimator.result import Person
from humanpose.estimator.tracking import SCORE_DECAY, Tracker
from humanpose.skeleton import NUM_JOINTS

FPS = 30.0
SIGMA = 3.0          # px, measurement noise of the synthetic joints


def cfg(**kw) -> TrackingConfig:
    base = dict(process_noise=5000.0, measurement_noise=SIGMA ** 2, max_missed=5,
                min_score=0.2, max_distance=0.5)
    base.update(kw)
    return TrackingConfig(**base)


def make_person(centre, rng=None, sigma=SIGMA, score=0.9, size=(200.0, 400.0)) -> Person:
    """A person whose joints are spread around ``centre`` (fixed offsets) plus Gaussian noise."""
    centre = np.asarray(centre, np.float64)
    offsets = np.stack([np.linspace(-60, 60, NUM_JOINTS), np.linspace(-150, 150, NUM_JOINTS)], 1)
    joints = np.zeros((NUM_JOINTS, 3))
    joints[:, :2] = centre + offsets
    if rng is not None:
        joints[:, :2] += rng.normal(0.0, sigma, (NUM_JOINTS, 2))
    joints[:, 2] = score
    w, h = size
    box = np.array([centre[0] - w / 2, centre[1] - h / 2, centre[0] + w / 2, centre[1] + h / 2])
    return Person(centre=centre.copy(), centre_score=0.9, box=box, joints=joints)


def truth_joints(centre) -> np.ndarray:
    return make_person(centre).joints[:, :2]


def test_still_joint_jitter_drops_3x():
    rng = np.random.default_rng(0)
    tracker = Tracker(cfg(process_noise=1000.0))
    truth = truth_joints((320, 240))
    out, raw = [], []
    for k in range(120):
        p = make_person((320, 240), rng)
        tracker.update([p], k / FPS)
        out.append(p.joints[:, :2] - truth)
        raw.append(p.raw_joints[:, :2] - truth)
    out, raw = np.array(out[15:]), np.array(raw[15:])
    jitter_raw = np.diff(raw, axis=0).std()
    jitter_out = np.diff(out, axis=0).std()
    assert jitter_out * 3 <= jitter_raw, (jitter_out, jitter_raw)
    # and closer to the truth, not just smoother
    assert np.abs(out).std() * 1.5 <= np.abs(raw).std()


def test_default_config_smooths_a_still_joint():
    rng = np.random.default_rng(1)
    tracker = Tracker(dataclasses.replace(TrackingConfig(), measurement_noise=SIGMA ** 2))
    truth = truth_joints((320, 240))
    out, raw = [], []
    for k in range(90):
        p = make_person((320, 240), rng)
        tracker.update([p], k / FPS)
        out.append(p.joints[:, :2] - truth)
        raw.append(p.raw_joints[:, :2] - truth)
    assert np.diff(out[15:], axis=0).std() * 2.5 <= np.diff(raw[15:], axis=0).std()


def test_constant_velocity_followed_without_lag():
    rng = np.random.default_rng(2)
    tracker = Tracker(cfg())
    v = np.array([150.0, -60.0])  # px/s
    errs, raw_errs, along = [], [], []
    for k in range(90):
        c = np.array([100.0, 400.0]) + v * k / FPS
        p = make_person(c, rng)
        tracker.update([p], k / FPS)
        if k >= 30:  # converged after one second
            d = p.joints[:, :2] - truth_joints(c)
            errs.append(np.hypot(*d.T))
            raw_errs.append(np.hypot(*(p.raw_joints[:, :2] - truth_joints(c)).T))
            along.append(d @ (v / np.linalg.norm(v)))
    mean_err, mean_raw = np.mean(errs), np.mean(raw_errs)
    assert mean_err < 3.0 and mean_err < 0.8 * mean_raw, (mean_err, mean_raw)
    # a constant-velocity model has no systematic lag behind constant motion
    assert abs(np.mean(along)) < 1.0, np.mean(along)


def test_first_measurement_starts_the_filter():
    tracker = Tracker(cfg())
    p = make_person((500, 300), np.random.default_rng(3))
    raw = p.joints.copy()
    tracker.update([p], 12.5)
    np.testing.assert_array_equal(p.joints, raw)
    np.testing.assert_array_equal(p.raw_joints, raw)
    assert p.track_id == 0


def test_crossing_people_keep_their_ids():
    """Two people walk towards each other and cross; while they overlap the one behind is not
    detected.  Only the velocity prediction can tell who is who afterwards."""
    rng = np.random.default_rng(4)
    tracker = Tracker(cfg(max_missed=10))
    ids = {"a": set(), "b": set()}
    hidden = 0
    for k in range(45):
        t = k / FPS
        xa, xb = 100 + 400 * t, 700 - 400 * t      # they meet at t = 0.75 s
        a = make_person((xa, 300), rng)
        b = make_person((xb, 310), rng)
        a.tag, b.tag = "a", "b"
        persons = [a] if abs(xa - xb) < 60 else [a, b]   # b occluded by a
        hidden += len(persons) == 1
        if rng.random() < 0.5:
            persons.reverse()                      # list order must not matter
        tracker.update(persons, t)
        for p in persons:
            ids[p.tag].add(p.track_id)
            # the smoothed joints stay on their own person
            centre = p.raw_joints[:, :2].mean(0)
            assert np.abs(p.joints[:, :2].mean(0) - centre).max() < 10
    assert hidden >= 3
    assert len(ids["a"]) == 1 and len(ids["b"]) == 1, ids
    assert ids["a"] != ids["b"]


def test_people_side_by_side_keep_ids():
    rng = np.random.default_rng(5)
    tracker = Tracker(cfg())
    seen = {0: set(), 1: set()}
    for k in range(45):
        t = k / FPS
        xs = (300 + 80 * np.sin(2 * t), 520 + 80 * np.sin(2 * t + 1))  # 0.5-1.2 diagonals apart
        persons = [make_person((x, 300), rng) for x in xs]
        tracker.update(persons, t)
        for i, p in enumerate(persons):
            seen[i].add(p.track_id)
    assert seen == {0: {0}, 1: {1}}


def test_disappearing_person_keeps_id_up_to_max_missed_then_gets_new_one():
    rng = np.random.default_rng(6)
    max_missed = 5
    tracker = Tracker(cfg(max_missed=max_missed))
    k = 0

    def show(n):
        nonlocal k
        got = set()
        for _ in range(n):
            p = make_person((300 + 2 * k, 300), rng)
            tracker.update([p], k / FPS)
            got.add(p.track_id)
            k += 1
        return got

    def hide(n):
        nonlocal k
        for _ in range(n):
            assert tracker.update([], k / FPS) == []
            k += 1

    assert show(10) == {0}
    hide(max_missed)                 # gone for exactly max_missed frames: still tracked
    assert tracker.track_ids == [0]
    assert show(5) == {0}
    hide(max_missed + 1)             # one frame more: the track is dropped
    assert tracker.track_ids == []
    assert show(3) == {1}


def test_far_detection_is_a_new_person():
    tracker = Tracker(cfg(max_distance=0.5))
    a = make_person((200, 300))
    tracker.update([a], 0.0)
    # box diagonal ~447 px: 300 px away is beyond the 0.5-diagonal gate
    b = make_person((500, 300))
    tracker.update([b], 1 / FPS)
    assert (a.track_id, b.track_id) == (0, 1)
    assert tracker.track_ids == [0, 1]   # the old track is missed, not dropped yet


def test_low_confidence_joints_are_predicted_then_reset():
    rng = np.random.default_rng(7)
    max_missed = 4
    tracker = Tracker(cfg(max_missed=max_missed, min_score=0.3))
    j = 4  # r_wrist
    k = 0
    for _ in range(30):
        p = make_person((300, 300), rng)
        tracker.update([p], k / FPS)
        k += 1
    good = p.joints[j].copy()
    # the net now puts the wrist somewhere else with a low score: not a measurement
    for miss in range(1, max_missed + 1):
        p = make_person((300, 300), rng)
        p.joints[j] = (600.0, 50.0, 0.1)
        tracker.update([p], k / FPS)
        k += 1
        assert np.hypot(*(p.joints[j, :2] - good[:2])) < 5, p.joints[j]
        assert p.joints[j, 2] == pytest.approx(0.9 * SCORE_DECAY ** miss)
        np.testing.assert_array_equal(p.raw_joints[j], (600.0, 50.0, 0.1))
        # the other joints are measured as usual
        assert np.all(p.joints[np.arange(NUM_JOINTS) != j, 2] == 0.9)
    # one more skipped measurement than max_missed: the filter is dropped, raw passes through
    p = make_person((300, 300), rng)
    p.joints[j] = (600.0, 50.0, 0.1)
    tracker.update([p], k / FPS)
    k += 1
    np.testing.assert_array_equal(p.joints[j], (600.0, 50.0, 0.1))
    # a good measurement far away starts a fresh filter there (no sliding from the old place)
    p = make_person((300, 300), rng)
    p.joints[j] = (450.0, 120.0, 0.8)
    tracker.update([p], k / FPS)
    np.testing.assert_array_equal(p.joints[j], (450.0, 120.0, 0.8))
    assert p.track_id == 0


def test_irregular_timestamps():
    rng = np.random.default_rng(8)
    v = np.array([200.0, 50.0])
    dts = rng.uniform(0.01, 0.12, 120)
    dts[50] = 0.0          # a repeated timestamp
    times = np.cumsum(dts)
    errs = []
    tracker = Tracker(cfg())
    for k, t in enumerate(times):
        c = np.array([100.0, 200.0]) + v * t
        p = make_person(c, rng)
        tracker.update([p], float(t))
        assert np.all(np.isfinite(p.joints)) and p.track_id == 0
        if k >= 30:
            errs.append(np.hypot(*(p.joints[:, :2] - truth_joints(c)).T).mean())
    # a filter that assumed a fixed frame period would lag or overshoot by several pixels here
    assert np.mean(errs) < 3.0, np.mean(errs)


def test_timestamps_going_backwards_do_not_break():
    tracker = Tracker(cfg())
    for t in (1.0, 1.0, 0.5, 0.6):
        p = make_person((300, 300))
        tracker.update([p], t)
        assert p.track_id == 0 and np.all(np.isfinite(p.joints))


def test_reset_forgets_tracks_and_restarts_ids():
    rng = np.random.default_rng(9)
    tracker = Tracker(cfg())
    for k in range(10):
        persons = [make_person((200, 300), rng), make_person((600, 300), rng)]
        tracker.update(persons, k / FPS)
    assert [p.track_id for p in persons] == [0, 1]
    tracker.reset()
    assert tracker.track_ids == []
    p = make_person((600, 300), rng)
    raw = p.joints.copy()
    tracker.update([p], 0.0)
    assert p.track_id == 0
    np.testing.assert_array_equal(p.joints, raw)  # smoothing restarted at the measurement


def test_disabled_passes_through():
    tracker = Tracker(cfg(enabled=False))
    p = make_person((300, 300), np.random.default_rng(10))
    joints = p.joints
    assert tracker.update([p], 0.0) == [p]
    assert p.track_id == -1 and p.joints is joints and p.raw_joints is None


def test_without_smoothing_only_ids():
    rng = np.random.default_rng(11)
    tracker = Tracker(cfg(smoothing=False))
    for k in range(5):
        p = make_person((300 + k, 300), rng)
        joints = p.joints
        tracker.update([p], k / FPS)
        assert p.track_id == 0 and p.joints is joints and p.raw_joints is None


def test_bad_joint_shape_is_named():
    p = make_person((300, 300))
    p.joints = np.zeros((17, 3))
    with pytest.raises(ValueError, match=r"person 0 has joints of shape \(17, 3\)"):
        Tracker(cfg()).update([p], 0.0)


# ---------------------------------------------------------------- one identity per track
CROP = 3.0      # the pipeline's crops are about 3 x a walker's height: the centre gate is loose


def walker(x: float, y: float, rng, h: float = 100.0) -> Person:
    """A walker h tall centred at (x, y), joints with 2 px noise, its crop as the box."""
    offsets = np.stack([np.linspace(-0.2 * h, 0.2 * h, NUM_JOINTS), np.linspace(-h / 2, h / 2, NUM_JOINTS)], 1)
    joints = np.zeros((NUM_JOINTS, 3))
    joints[:, :2] = (x, y) + offsets + rng.normal(0.0, 2.0, (NUM_JOINTS, 2))
    joints[:, 2] = 0.9
    half = CROP * h / 2
    return Person(centre=np.array([x, y]), centre_score=0.9, box=np.array([x - half, y - half, x + half, y + half]),
                  joints=joints)


def _owners(frames: list[list[tuple[str, Person]]]) -> dict[int, set[str]]:
    """track id -> the walkers whose joints it carried."""
    out: dict[int, set[str]] = {}
    for persons in frames:
        for who, p in persons:
            out.setdefault(p.track_id, set()).add(who)
    return out


@pytest.mark.parametrize("gate", [True, False])
def test_crossing_walkers_never_share_an_id(gate, monkeypatch):
    """Two walkers cross at 10 fps, B nearer the camera (lower in the frame).  On the three
    frames before they meet, the crop cut for A (at A's place, so the detection's centre is
    A's) shows B: the pose is B's, and B's own crop, the same pose, is dropped as its duplicate.
    Without the identity gate A's id goes over to B (checked: the case is a real one); with it,
    no id ever carries both walkers' joints, each keeps its id, and the plot of A's id shows a
    gap on those frames, never B's joints."""
    from humanpose.estimator import tracking
    from humanpose.estimator.result import PoseResult
    from humanpose.gui.plot import identity_breaks, series
    if not gate:
        monkeypatch.setattr(tracking, "identity_jump", lambda *a, **k: False)
    rng = np.random.default_rng(11)
    tracker = Tracker(cfg(max_missed=10))
    frames, results = [], []
    xs = lambda k: (200.0 + 10 * k, 500.0 - 10 * k)    # noqa: E731  (they meet at k = 15)
    for k in range(30):
        t = k / 10.0
        xa, xb = xs(k)
        if 12 <= k <= 14:                            # A's crop slid onto B
            slid = walker(xb, 360, rng)
            slid.centre = np.array([xa, 300.0])
            persons = [("b", slid)]
        else:
            persons = [("a", walker(xa, 300, rng)), ("b", walker(xb, 360, rng))]
        tracker.update([p for _, p in persons], t, (480, 854))
        frames.append(persons)
        results.append((k, PoseResult(frame_index=k, timestamp=t, frame_shape=(480, 854),
                                      boxsize=368, persons=[p for _, p in persons])))
    owners = _owners(frames)
    first_a = frames[0][0][1].track_id
    if not gate:
        assert owners[first_a] == {"a", "b"}         # the failure the gate is there for
        return
    assert all(len(who) == 1 for who in owners.values()), owners
    assert len(owners) == 2
    # the plot follows A's id: a gap where A was not seen, its wrist never at B's place
    _, curves = series(results, "coordinates", ["R wrist"], person=first_a)
    x = curves["R wrist x"]
    wrist = -20.0 + 40.0 * 4 / 13                    # walker(): the R wrist's offset (h = 100)
    truth = np.array([xs(k)[0] for k in range(30)]) + wrist
    seen = np.isfinite(x)
    assert (~seen).nonzero()[0].tolist() == [12, 13, 14]
    assert np.abs(x[seen] - truth[seen]).max() < 10
    assert not identity_breaks(results, first_a).any()


def test_walker_leaving_at_an_edge_and_another_entering_there_get_two_ids(monkeypatch):
    """A walks out at the right edge; half a second later B comes in there, walking left.  The
    crop-sized boxes put B within the centre gate of A's coasting track; A's track ends when A
    has walked out of the frame (and B is off where A's velocity would have taken A), so B gets
    a new id."""
    rng = np.random.default_rng(12)
    tracker = Tracker(cfg(max_missed=10))
    ids = {"a": set(), "b": set()}
    w = 640
    for k in range(20):
        t = k / 10.0
        persons = []
        if k <= 9:                                   # A: 530 -> 620, walking right
            persons.append(("a", walker(530 + 10 * k, 300, rng)))
        if k >= 14:                                  # B: in at 620, walking left
            persons.append(("b", walker(620 - 10 * (k - 14), 300, rng)))
        tracker.update([p for _, p in persons], t, (480, w))
        for who, p in persons:
            ids[who].add(p.track_id)
    assert len(ids["a"]) == 1 and len(ids["b"]) == 1 and ids["a"] != ids["b"], ids
    # without the frame's size, the gate alone tells them apart: B is where A's velocity is not
    rng = np.random.default_rng(12)
    tracker = Tracker(cfg(max_missed=10))
    ids = {"a": set(), "b": set()}
    for k in range(20):
        persons = ([("a", walker(530 + 10 * k, 300, rng))] if k <= 9 else []) + \
                  ([("b", walker(620 - 10 * (k - 14), 300, rng))] if k >= 14 else [])
        tracker.update([p for _, p in persons], k / 10.0)
        for who, p in persons:
            ids[who].add(p.track_id)
    assert len(ids["a"]) == 1 and len(ids["b"]) == 1 and ids["a"] != ids["b"], ids
