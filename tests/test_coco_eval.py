"""`humanpose eval --format coco`: the verdicts on hand-made skeletons, and the real command with
the shipped nets on three COCO photos (one with nobody) written to a tmp directory."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from humanpose import cli
from humanpose import skeleton as sk
from humanpose.train import coco_eval as ce
from humanpose.train.metrics import from_codes

from conftest import shared_path

KEYPOINTS = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
             "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
             "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"]


def _standing(x: float, y: float, h: float) -> np.ndarray:
    """(17, 3) COCO keypoints of an upright person h tall whose head is at (x, y), all visible."""
    rel = {"nose": (0, .06), "left_eye": (.02, .05), "right_eye": (-.02, .05), "left_ear": (.04, .06),
           "right_ear": (-.04, .06), "left_shoulder": (.1, .18), "right_shoulder": (-.1, .18),
           "left_elbow": (.14, .35), "right_elbow": (-.14, .35), "left_wrist": (.15, .5),
           "right_wrist": (-.15, .5), "left_hip": (.07, .52), "right_hip": (-.07, .52),
           "left_knee": (.08, .75), "right_knee": (-.08, .75), "left_ankle": (.08, .97),
           "right_ankle": (-.08, .97)}
    return np.array([(x + h * rel[k][0], y + h * rel[k][1], 2) for k in KEYPOINTS], np.float64)


def _write_coco(root: Path, images: list[tuple[str, np.ndarray]], persons: list[dict],
                extra_boxes: list[dict] = ()) -> None:
    (root / "images").mkdir(parents=True)
    meta = []
    for k, (name, img) in enumerate(images):
        cv2.imwrite(str(root / "images" / name), img)
        meta.append({"id": k + 1, "file_name": name, "height": img.shape[0], "width": img.shape[1]})
    cats = [{"id": 1, "name": "person", "keypoints": KEYPOINTS}]
    (root / "person_keypoints_train2017.json").write_text(json.dumps(
        {"images": meta, "annotations": persons, "categories": cats}))
    (root / "instances_train2017.json").write_text(json.dumps(
        {"images": meta, "annotations": persons + list(extra_boxes), "categories": cats}))


def _person(image_id: int, kp: np.ndarray, crowd: int = 0) -> dict:
    lo, hi = kp[:, :2].min(0), kp[:, :2].max(0)
    return {"image_id": image_id, "category_id": 1, "iscrowd": crowd, "keypoints": kp.ravel().tolist(),
            "num_keypoints": int((kp[:, 2] > 0).sum()), "bbox": [*lo, *(hi - lo)]}


def _skeleton(kp: np.ndarray, score: float = 0.9) -> np.ndarray:
    """(14, 3) humanpose joints on the COCO keypoints' limb joints, head top and neck above."""
    out = np.full((sk.NUM_JOINTS, 3), score)
    for name, j in ce.COCO_TO_JOINT.items():
        out[j, :2] = kp[KEYPOINTS.index(name), :2]
    out[sk.JOINT_INDEX["neck"], :2] = kp[5:7, :2].mean(0)
    out[sk.JOINT_INDEX["head_top"], :2] = kp[0, :2] - (0, 10)
    return out


def test_judge_image_on_hand_made_skeletons(tmp_path):
    """Two persons side by side, a crowd box and a box without keypoints; skeletons: one on the
    left person, one spanning both (the right person's joints 0.1 x its height off on the left
    side, exact on the right side), one in the crowd box, one on nothing, one not drawn."""
    a, b = _standing(100, 50, 200), _standing(220, 50, 200)
    half = b.copy()
    half[5::2, 0] -= 50        # its 6 left limb joints 50 px off: beyond 0.2 x its box (184 px)
    crowd = {"image_id": 1, "category_id": 1, "iscrowd": 1, "bbox": [400, 0, 100, 100]}
    small = {"image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [500, 300, 20, 40]}
    _write_coco(tmp_path, [("one.jpg", np.zeros((480, 640, 3), np.uint8))],
                [_person(1, a), _person(1, b)], [crowd, small])
    data = ce.read_coco_dir(tmp_path)
    assert len(data.keypoints[0]) == 2 and len(data.boxes[0]) == 4 and data.crowd[0].tolist() == [0, 0, 1, 0]
    on_crowd = _skeleton(_standing(450, 5, 80))
    on_nothing = _skeleton(_standing(560, 100, 100))
    undrawn = _skeleton(_standing(600, 10, 50), score=0.05)
    skel = np.stack([_skeleton(half), _skeleton(a), on_crowd, on_nothing, undrawn])
    centres = np.array([[220, 150], [100, 150], [450, 40], [610, 420], [510, 320]], np.float64)
    v = ce.judge_image(skel, centres, data, 0, threshold=0.3)
    assert v["found"].tolist() == [True, True]     # the right person by the half-right skeleton
    assert np.nansum(v["hits"][0]) == 12 and np.nansum(v["hits"][1]) == 6
    assert np.isnan(v["hits"][:, [0, 1]]).all()   # COCO has no head top or neck
    assert v["drawn"] == 4 and v["off"] == 1        # only the skeleton on nothing
    # recall: the two persons and the small box, one centre each; the crowd box is not counted
    assert v["box_hit"].tolist() == [True, True, True] and len(v["box_heights"]) == 3
    assert v["det_correct"].tolist() == [True, True, True, False, True]
    # one skeleton spanning both persons (its left joints on the right one's) finds one at most
    span = _skeleton(a)
    left = [sk.JOINT_INDEX[f"l_{part}"] for part in ce.LIMBS]
    span[left] = _skeleton(b)[left]
    v = ce.judge_image(span[None], centres[:1], data, 0, threshold=0.3)
    assert v["found"].sum() == 1 and np.nansum(v["hits"]) == 6
    assert v["off"] == 1                         # its joints' mean lies between the two


def test_eval_coco_command_on_three_photos(tmp_path, capsys):
    """The real command with the shipped nets on two COCO photos with people (one holding a crowd
    box) and one with nobody: the report's counts agree with the annotations and with the
    estimator run directly on the person-free photo; --compare with itself differs by nothing."""
    src = shared_path("data", "coco_dev")
    kp = json.loads((src / "person_keypoints_train2017.json").read_text())
    inst = json.loads((src / "instances_train2017.json").read_text())
    names = ["000000442450.jpg", "000000433998.jpg", "000000420862.jpg"]   # 2 persons, crowd, nobody
    ims = [next(im for im in kp["images"] if im["file_name"] == n) for n in names]
    ids = {im["id"] for im in ims}
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    for n in names:
        shutil.copy(src / "images" / n, root / "images" / n)
    for name, full in (("person_keypoints_train2017.json", kp), ("instances_train2017.json", inst)):
        (root / name).write_text(json.dumps(dict(full, images=ims, annotations=[
            a for a in full["annotations"] if a["image_id"] in ids])))
    persons = [a for a in kp["annotations"] if a["image_id"] in ids and not a["iscrowd"]
               and a["num_keypoints"] >= 8]
    boxes = [a for a in inst["annotations"] if a["image_id"] in ids and a["category_id"] == 1]
    out = tmp_path / "rep.json"
    assert cli.main(["eval", "--format", "coco", str(root), "--json", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    rep = json.loads(out.read_text())
    assert rep["format"] == "coco" and rep["n_images"] == 3 and rep["n_person_free_images"] == 1
    assert rep["n_persons"] == len(persons) >= 3 and rep["n_person_boxes"] == len(boxes)
    assert any(a["iscrowd"] for a in boxes)
    assert sum(r["persons"] for r in rep["detector_recall_by_height"].values()) == \
        sum(not a["iscrowd"] for a in boxes) == len(rep["per_box_recalled"])
    # found persons: those with at least half their labelled limb joints hit; the others none
    hits = from_codes(rep["per_person_joints"])
    found = np.array([c == "1" for c in rep["per_person_found"]])
    assert (np.nanmean(hits[found], 1) >= 0.5).all() and np.nansum(hits[~found]) == 0
    assert rep["persons_found"] == found.sum() >= 1          # two people 190 px tall, side by side
    assert np.isnan(hits[:, :2]).all()                      # no head top, no neck in COCO
    # every skeleton drawn on the person-free photo is on no person: count them directly
    from humanpose.config import load, set_value
    from humanpose.estimator.pipeline import PoseEstimator
    est = PoseEstimator(set_value(load(Path(cli.__file__).parents[1] / "humanpose.yml"),
                                  "tracking.enabled", False))
    res = est.estimate(cv2.imread(str(root / "images" / names[2])), keep_maps=False)
    drawn = sum((p.joints[:, 2] >= rep["joint_threshold"]).any() for p in res.persons)
    assert rep["per_image_on_no_person"][2] == rep["on_no_person_person_free"] == drawn
    assert rep["skeletons_on_no_person"] == sum(rep["per_image_on_no_person"])
    assert printed[-1].startswith(f"persons found: {rep['persons_found']} / {len(persons)} ")
    assert f"{drawn} on person-free images" in printed[-1]
    # --compare with itself: no difference; the summary stays the last line
    assert cli.main(["eval", "--format", "coco", str(root), "--no-progress", "--compare", str(out)]) == 0
    again = capsys.readouterr().out.strip().splitlines()
    assert again[-1] == printed[-1]
    assert again[-2].startswith(f"against {out} (3 images, paired bootstrap): found +0.00 pp")
    assert "on no person +0.00 per image" in again[-2]
    # another set of images is not compared; a report of the LSP eval is refused before running
    (tmp_path / "other.json").write_text(json.dumps(dict(rep, n_images=4)))
    assert cli.main(["eval", "--format", "coco", str(root), "--no-progress", "--limit", "1",
                     "--compare", str(tmp_path / "other.json")]) == 0
    assert "not compared with" in capsys.readouterr().out
    (tmp_path / "lsp.json").write_text(json.dumps({"n_images": 3, "per_image_end_to_end": []}))
    assert cli.main(["eval", "--format", "coco", str(root), "--compare", str(tmp_path / "lsp.json")]) == 2
    assert "not a report of `eval --format coco --json`" in capsys.readouterr().err


def test_eval_coco_errors(tmp_path, capsys):
    assert cli.main(["eval", "--format", "coco", str(tmp_path / "nope")]) == 2
    assert "nope is not a directory" in capsys.readouterr().err
    assert cli.main(["eval", "--format", "coco", str(tmp_path)]) == 2
    assert "no person_keypoints*.json" in capsys.readouterr().err
    (tmp_path / "person_keypoints_x.json").write_text("{not json")
    assert cli.main(["eval", "--format", "coco", str(tmp_path)]) == 2
    assert "is not a COCO annotation file" in capsys.readouterr().err
    _write_coco(tmp_path / "c", [("a.jpg", np.zeros((8, 8, 3), np.uint8))], [])
    (tmp_path / "c" / "images" / "a.jpg").unlink()
    assert cli.main(["eval", "--format", "coco", str(tmp_path / "c")]) == 2
    assert "1 annotated images missing (a.jpg)" in capsys.readouterr().err
    assert cli.main(["eval", "--format", "coco", str(tmp_path / "c"), "--shrink", "0.5"]) == 2
    assert "--shrink is for LSP-layout directories" in capsys.readouterr().err
    assert cli.main(["eval", "--format", "coco"]) == 2
    assert "name the data directory" in capsys.readouterr().err
