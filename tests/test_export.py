"""Drawing (skeletons, heatmap tiles, stage strip) and result files written and read back."""
from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from humanpose.estimator import maps
from humanpose.estimator.result import Person, PoseResult
from humanpose.export.draw import (crop_coords, draw_result, drawing_sizes, heatmap_tiles,
                                   stage_strip, track_colour)
from humanpose.export.readers import read_jsonl, read_keypoints_csv
from humanpose.export.writers import (CSV_COLUMNS, ExportError, KeypointWriter, VideoWriter,
                                      write_image)
from humanpose.skeleton import JOINTS, LIMB_COLOURS, LIMBS, NUM_JOINTS

FH, FW, BOX = 240, 320, 192
# a stick figure in frame pixels (MPI order)
FIGURE = np.array([[160, 40], [160, 70], [130, 75], [115, 110], [105, 140], [190, 75], [205, 110],
                   [215, 140], [145, 140], [140, 180], [138, 220], [175, 140], [180, 180],
                   [182, 220]], dtype=np.float64)


def make_person(track_id=-1, dx=0.0, scores=None, with_maps=True, stages=3) -> Person:
    xy = FIGURE + (dx, 0)
    joints = np.c_[xy, np.full(NUM_JOINTS, 0.9) if scores is None else scores]
    box = np.array([64 + dx, 34, 64 + dx + BOX, 34 + BOX], dtype=np.float64)
    p = Person(centre=xy[[1, 8, 11]].mean(0), centre_score=0.8, box=box, joints=joints,
               raw_joints=joints.copy(), track_id=track_id, crop_scale=1.0)
    if with_maps:
        uv = maps.to_map(crop_coords(p, xy))
        g = maps.gaussian_maps(BOX // 8, BOX // 8, uv, 1.0)
        bg = np.zeros((1, BOX // 8, BOX // 8), np.float32)
        p.stage_maps = np.stack([np.concatenate([g * (k + 1) / stages, bg]) for k in range(stages)])
        p.crop = np.full((BOX, BOX, 3), 90, np.uint8)
    return p


def frame() -> np.ndarray:
    return np.full((FH, FW, 3), 90, np.uint8)


def limb_midpoint(j0, j1, dx=0):
    m = (FIGURE[j0] + FIGURE[j1]) / 2 + (dx, 0)
    return int(round(m[1])), int(round(m[0]))


def has_colour(img, rc, colour) -> bool:
    """Whether a pixel of the 3x3 neighbourhood of (row, col) has exactly ``colour``
    (anti-aliased lines blend their edges)."""
    r, c = rc
    patch = img[r - 1:r + 2, c - 1:c + 2].reshape(-1, 3)
    return bool((patch == np.array(colour, np.uint8)).all(1).any())


# ------------------------------------------------------------------------------ drawing
def test_draw_result_limbs_joints_boxes():
    img = frame()
    before = img.copy()
    res = PoseResult(0, 0.0, (FH, FW), BOX, [make_person(track_id=3)])
    out = draw_result(img, res, show_boxes=True)
    assert np.array_equal(img, before), "input frame must not be modified"
    assert out.shape == img.shape and out.dtype == np.uint8
    for k, (a, b) in enumerate(LIMBS):
        if k == 0:
            continue  # the head limb lies under the box label
        r, c = limb_midpoint(a, b)
        assert has_colour(out, (r, c), LIMB_COLOURS[k]), f"limb {k}"
    # the box edge is in the track colour
    assert has_colour(out, (150, 64), track_colour(3))
    # without boxes that pixel stays background
    plain = draw_result(img, res, show_boxes=False)
    assert tuple(plain[150, 64]) == (90, 90, 90)


def test_draw_result_threshold_and_track_colours():
    scores = np.full(NUM_JOINTS, 0.9)
    scores[4] = 0.05                      # R wrist below threshold: no elbow-wrist limb
    scores[10] = np.nan                   # R ankle NaN: no knee-ankle limb
    res = PoseResult(0, 0.0, (FH, FW), BOX,
                     [make_person(track_id=1, scores=scores), make_person(track_id=2, dx=0)])
    res.persons = res.persons[:1]
    out = draw_result(frame(), res, show_boxes=False, joint_threshold=0.1)
    assert (out[limb_midpoint(3, 4)] == 90).all()
    assert (out[limb_midpoint(9, 10)] == 90).all()
    assert has_colour(out, limb_midpoint(2, 3), LIMB_COLOURS[2])
    low = draw_result(frame(), res, show_boxes=False, joint_threshold=0.01)
    assert has_colour(low, limb_midpoint(3, 4), LIMB_COLOURS[3])
    by_track = draw_result(frame(), res, show_boxes=False, colour_by="track")
    assert has_colour(by_track, limb_midpoint(2, 3), track_colour(1))
    assert track_colour(1) != track_colour(2) and track_colour(-1) == (200, 200, 200)
    with pytest.raises(ValueError, match="colour_by"):
        draw_result(frame(), res, colour_by="rainbow")


def test_draw_scores_and_grayscale_frame():
    res = PoseResult(0, 0.0, (FH, FW), BOX, [make_person()])
    grey = np.full((FH, FW), 90, np.uint8)
    a = draw_result(grey, res, show_scores=False)
    b = draw_result(grey, res, show_scores=True)
    assert a.shape == (FH, FW, 3)
    assert (a != b).any(axis=2).sum() > 50   # score texts add pixels


def test_heatmap_tiles_layout_and_peaks():
    p = make_person()
    tiles = heatmap_tiles(p, blend=False)
    gap = 2
    assert tiles.shape == (4 * BOX + 3 * gap, 4 * BOX + 3 * gap, 3)
    for j in range(NUM_JOINTS):
        r, c = divmod(j, 4)
        tile = tiles[r * (BOX + gap): r * (BOX + gap) + BOX, c * (BOX + gap): c * (BOX + gap) + BOX]
        x, y = crop_coords(p, FIGURE[j])
        x, y = int(round(x)), int(round(y))
        # JET: the peak (value 1) is dark red, far from the peak it is dark blue
        assert tile[y, x, 2] > 100 and tile[y, x, 0] < 60, JOINTS[j]
        far = (y + 60) % BOX
        assert tile[far, x, 0] > 100 and tile[far, x, 2] < 60, JOINTS[j]
    blended = heatmap_tiles(p, blend=True, tile_size=96)
    assert blended.shape == (4 * 96 + 3 * gap, 4 * 96 + 3 * gap, 3)
    assert not np.array_equal(blended, cv2.resize(tiles, blended.shape[1::-1]))


def test_stage_strip():
    p = make_person(stages=4)
    strip = stage_strip(p, blend=False)
    assert strip.shape == (BOX, 5 * BOX + 4 * 2, 3)
    x, y = (int(round(v)) for v in crop_coords(p, FIGURE[12]))
    first, last_map = strip[y, x], strip[y, 3 * (BOX + 2) + x]
    # stage 1 peaks at 0.25 (JET: blue side), stage 4 at 1.0 (JET: dark red)
    assert first[0] > first[2], first
    assert last_map[2] >= 128 and last_map[0] < 40 and last_map[1] < 40, last_map
    # the last tile shows the crop with the skeleton in the skeleton palette
    last = strip[:, 4 * (BOX + 2):]
    r, c = limb_midpoint(2, 3)
    xc, yc = crop_coords(p, ((c, r)))
    assert has_colour(last, (int(round(yc)), int(round(xc))), LIMB_COLOURS[2])
    with pytest.raises(ValueError, match="keep_maps=True"):
        stage_strip(make_person(with_maps=False))
    no_crop = make_person()
    no_crop.crop = None
    assert heatmap_tiles(no_crop).shape == (4 * BOX + 6, 4 * BOX + 6, 3)


# ------------------------------------------------------------------------------ writers
def results() -> list[PoseResult]:
    tracked = make_person(track_id=7)
    tracked.joints[5] = (np.nan, np.nan, 0.0)   # a lost joint
    untracked = make_person(dx=20)
    return [
        PoseResult(0, 0.0, (FH, FW), BOX, [tracked, untracked], timings={"total": 12.5}),
        PoseResult(1, 0.1, (FH, FW), BOX, [], timings={"total": 3.0}),
        PoseResult(2, 0.2, (FH, FW), BOX, [make_person(track_id=7, dx=1)]),
    ]


def test_keypoints_csv_round_trip(tmp_path):
    path = tmp_path / "out" / "keypoints.csv"
    with KeypointWriter(csv_path=path) as w:
        for r in results():
            w.write(r)
    assert w.rows == 3 * NUM_JOINTS and w.frames == 3
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["frame", "time_s", "person", "joint", "x", "y", "score"]
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 1 + 3 * NUM_JOINTS
    assert rows[1][:4] == ["0", "0.0000", "7", "head_top"]
    assert rows[1 + 5][3:] == ["l_shoulder", "", "", "0.0000"]
    assert rows[1 + NUM_JOINTS][2] == "1"       # untracked: index within the frame
    back = read_keypoints_csv(path)
    assert [f.frame for f in back] == [0, 2]    # frame 1 had nobody
    f0 = back[0]
    assert set(f0.persons) == {7, 1} and f0.time_s == 0.0
    expect = results()[0].persons[0].joints
    np.testing.assert_allclose(f0.persons[7], expect, atol=0.006, equal_nan=True)
    np.testing.assert_allclose(f0.persons[1][:, 0], FIGURE[:, 0] + 20, atol=0.006)
    assert back[1].time_s == pytest.approx(0.2)


def test_keypoints_csv_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("frame,time,person,joint,x,y,score\n")
    with pytest.raises(ExportError, match="expected the columns frame,time_s,person"):
        read_keypoints_csv(bad)
    bad.write_text(",".join(CSV_COLUMNS) + "\n0,0.0,0,nose,1,2,0.5\n")
    with pytest.raises(ExportError, match=r"bad.csv:2: unknown joint 'nose'"):
        read_keypoints_csv(bad)
    bad.write_text(",".join(CSV_COLUMNS) + "\n0,0.0,zero,neck,1,2,0.5\n")
    with pytest.raises(ExportError, match="bad.csv:2: bad value"):
        read_keypoints_csv(bad)
    with pytest.raises(ExportError, match="not found"):
        read_keypoints_csv(tmp_path / "nope.csv")
    with pytest.raises(ExportError, match="cannot write"):
        KeypointWriter(csv_path=bad / "x.csv")   # a file used as a folder


def test_jsonl_round_trip(tmp_path):
    path = tmp_path / "keypoints.jsonl"
    with KeypointWriter(jsonl_path=path) as w:
        for r in results():
            w.write(r)
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    raw = json.loads(lines[0])                   # strict JSON (no NaN tokens)
    assert "NaN" not in lines[0]
    assert set(raw) == {"frame", "time_s", "persons", "timings"}
    assert set(raw["persons"][0]) >= {"id", "centre", "box", "score", "joints"}
    back = read_jsonl(path)
    assert [o["frame"] for o in back] == [0, 1, 2] and back[1]["persons"] == []
    p0 = back[0]["persons"][0]
    assert p0["id"] == 7 and back[0]["persons"][1]["id"] == 1
    assert p0["joints"].shape == (NUM_JOINTS, 3) and np.isnan(p0["joints"][5, 0])
    np.testing.assert_allclose(p0["box"], [64, 34, 256, 226])
    assert p0["score"] == pytest.approx(0.8) and back[0]["timings"]["total"] == 12.5
    path.write_text('{"frame": 0}\n')
    with pytest.raises(ExportError, match=":1: not a humanpose result line"):
        read_jsonl(path)


@pytest.mark.parametrize("name", ["annotated.mp4", "annotated.avi"])
def test_video_writer_readable(tmp_path, name):
    path = tmp_path / name
    with VideoWriter(path, fps=10) as w:
        for i in range(7):
            img = np.full((48, 64, 3), 30 * i, np.uint8)
            w.write(img if i != 3 else cv2.resize(img, (80, 60)))   # odd size is resized
    assert w.path == path and w.frames == 7
    cap = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        assert img.shape == (48, 64, 3)
        n += 1
    assert n == 7 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10)


def test_video_writer_fallback(tmp_path):
    w = VideoWriter(tmp_path / "out.mp4", fps=5, fourcc="ZZZZ")   # no such codec
    with pytest.warns(RuntimeWarning, match="writing MJPG"):
        w.write(np.zeros((32, 32, 3), np.uint8))
    w.close()
    assert w.path == tmp_path / "out.avi" and cv2.VideoCapture(str(w.path)).read()[0]


def test_mp4_is_h264_through_pyav(tmp_path):
    """The annotated MP4 holds H.264 (browsers and messaging apps play it), as PyAV reads it
    back; an odd frame size is made even (yuv420p)."""
    av = pytest.importorskip("av")
    from humanpose.export.writers import h264_available
    if not h264_available():
        pytest.skip("this PyAV has no libx264 encoder")
    path = tmp_path / "annotated.mp4"
    with VideoWriter(path, fps=12.5) as w:
        for i in range(9):
            w.write(np.full((49, 65, 3), 25 * i, np.uint8))
    assert w.codec == "h264" and w.frames == 9 and w.size == (64, 48) and w.path == path
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (64, 48)
        assert float(stream.average_rate) == pytest.approx(12.5)
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == 9
    # yuv420p (limited range) shifts grey levels by a few steps
    assert [int(round(f.mean())) for f in frames] == pytest.approx([25 * i for i in range(9)], abs=6)


def test_mp4_without_pyav_is_written_by_opencv(tmp_path, monkeypatch):
    import humanpose.export.writers as writers
    monkeypatch.setattr(writers, "h264_available", lambda: False)
    with VideoWriter(tmp_path / "annotated.mp4", fps=10) as w:
        for i in range(3):
            w.write(np.full((48, 64, 3), 60 * i, np.uint8))
    assert w.codec == "mp4v" and w.path == tmp_path / "annotated.mp4"
    cap = cv2.VideoCapture(str(w.path))
    assert cap.read()[0] and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_write_image(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    p = write_image(tmp_path / "ünï" / "a.png", img)
    assert np.array_equal(cv2.imdecode(np.fromfile(str(p), np.uint8), cv2.IMREAD_COLOR), img)
    with pytest.raises(ExportError, match="cannot encode"):
        write_image(tmp_path / "a.unknownext", img)


def test_drawing_scales_with_the_person_not_the_picture():
    """A folder of small pictures (70x160, one child each) and an HD frame: lines, joints and the
    box label take the same share of the person in both, within the minimum and maximum."""
    def scene(k: float, shape):
        xy = (FIGURE - FIGURE.min(0)) * k * 0.7 + 5 * k          # 126 px tall at k = 1
        p = Person(centre=xy.mean(0), centre_score=0.8,
                   box=np.r_[xy.min(0) - 4 * k, xy.max(0) + 4 * k], track_id=0, crop_scale=1.0,
                   joints=np.c_[xy, np.full(NUM_JOINTS, 0.9)])
        img = np.full(shape + (3,), 90, np.uint8)
        out = draw_result(img, PoseResult(0, 0.0, shape, BOX, [p]), show_boxes=True)
        drawn = np.abs(out.astype(int) - img).sum(2) > 120        # not the anti-aliased fringe
        return drawn.mean()                                       # share of the picture drawn on
    small, large = scene(1.0, (160, 70)), scene(4.0, (640, 280))
    assert 0.67 < small / large < 1.5      # before: 2 px lines and a 0.8 label in both (x 5.3)
    assert drawing_sizes(20)[:2] == (1, 0.3) and drawing_sizes(5000)[:2] == (8, 1.2)
