"""The report of ``humanpose eval`` (:mod:`.evaluate`): its text, and its comparison with an
earlier ``--json`` report on the same images (``--compare``: the difference in both modes with
its 95 % interval from a paired bootstrap over the images).
"""
from __future__ import annotations

from pathlib import Path

from ..skeleton import JOINT_LABELS, NUM_JOINTS
from .metrics import from_codes, paired_difference, read_json_report


def format_report(rep: dict) -> str:
    """The report as text: per-joint PCK in both modes, the breakdowns, the PCK line last."""
    pct = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    lines = [f"{'joint':<12} {'end-to-end':>10} {'gt-centre':>10}"]
    for j in JOINT_LABELS:
        lines.append(f"{j:<12} {pct(rep['per_joint_end_to_end'][j]):>10} "
                     f"{pct(rep['per_joint_gt_centre'][j]):>10}")
    lines.append("by torso orientation (persons) end-to-end / gt-centre:  " + "  ".join(
        f"{k} ({v['persons']}) {pct(v['pck'])} / {pct(rep['by_orientation_gt_centre'][k]['pck'])}"
        for k, v in rep["by_orientation_end_to_end"].items()))
    if "detector_recall_by_orientation" in rep:
        lines.append("detector recall by torso orientation:  " + "  ".join(
            f"{k} {pct(v['rate'])} %" for k, v in rep["detector_recall_by_orientation"].items()))
    if "persons_scored" in rep:
        lines.append(f"persons scored: {rep['persons_scored']} of {rep['n_images']} (the others lack "
                     f"the left shoulder or the right hip); scored by the other diagonal where "
                     f"those lack: {rep['persons_scored_either_diagonal']}, PCK@0.2 end-to-end "
                     f"{pct(rep['pck_end_to_end_either_diagonal'])} / gt-centre "
                     f"{pct(rep['pck_gt_centre_either_diagonal'])}")
    if "pck_gt_centre_mirror_tolerant" in rep:
        lines.append(f"left / right: gt-centre PCK@0.2 {pct(rep['pck_gt_centre_mirror_tolerant'])} "
                     f"when each image may also be scored against its labels with left and right "
                     f"exchanged; {pct(rep['images_read_mirrored'])} % of the images fit the "
                     f"exchanged labels better (mirrored annotations or poses read mirrored)")
    if "correct_joints_hidden" in rep:
        cut = (f", joints cut off by the frame drawn anyway: {rep['cut_off_joints_drawn']:.1f} % "
               f"of {rep['cut_off_joints']}" if "cut_off_joints" in rep else "")
        lines.append(f"joints drawn (score >= {rep['joint_threshold']:g}): correct ones hidden "
                     f"{rep['correct_joints_hidden']:.1f} %{cut}")
    lines.append(f"images: {rep['n_images']}  detector recall: {rep['detector_recall']:.1f} % "
                 f"({rep['detections_per_image']:.2f} detections/image at threshold "
                 f"{rep['person_threshold']:g}; pose found for {rep['found_end_to_end']:.1f} %)  "
                 f"s/image: {rep['seconds_per_image_end_to_end']:.3f} (end-to-end)  "
                 f"boxsize: {rep['boxsize']}{'  flip test' if rep.get('flip_test') else ''}"
                 f"{'  scale search %g' % rep['scale_search'] if rep.get('scale_search') else ''}"
                 f"{'  rescale' if rep.get('rescale') else ''}"
                 f"{'  shrink %g' % rep['shrink'] if rep.get('shrink', 1.0) < 1.0 else ''}"
                 f"{'  waist-up' if rep.get('framing') == 'waist-up' else ''}  "
                 f"backend: {rep['backend']}{_ran(rep)}")
    lines.append(f"PCK@0.2 end-to-end: {rep['pck_end_to_end']:.1f}  gt-centre: {rep['pck_gt_centre']:.1f}")
    return "\n".join(lines)


def _ran(rep: dict) -> str:
    """" (person int8, pose int8 on AMD EPYC, AVX512-VNNI)" from a report that has it."""
    prec, cpu = rep.get("precision"), rep.get("cpu")
    if not prec or not cpu:
        return ""
    return (f" (person {prec['person']}, pose {prec['pose']} on {cpu['model']}, "
            f"{cpu['int8_kernel']})")


MODES = (("end-to-end", "per_image_end_to_end"), ("gt-centre", "per_image_gt_centre"))
SAME = ("n_images", "data", "shrink", "framing")   # what two reports must share to be compared
REQUIRED = SAME[:3]              # (data: by name; a report without framing is of whole images)


def _same(key: str, rep: dict):
    if key == "framing":
        return rep.get(key, "whole")
    return Path(rep.get(key, "")).name if key == "data" else rep.get(key)


def read_baseline(path) -> dict:
    """A report written by ``eval --json``, checked to hold the per-image results."""
    rep = read_json_report(path)
    missing = [k for k in REQUIRED + tuple(key for _, key in MODES) if k not in rep]
    if missing:
        raise ValueError(f"--compare: {path} lacks {', '.join(missing)}: write it with "
                         f"`humanpose eval --json`, which keeps the per-image results")
    for _, key in MODES:
        try:
            codes = from_codes(rep[key])
        except ValueError as exc:
            raise ValueError(f"--compare: {path}: {key}: {exc}") from None
        if codes.shape != (rep["n_images"], NUM_JOINTS):
            raise ValueError(f"--compare: {path}: {key} holds {codes.shape[0]} images x "
                             f"{codes.shape[-1]} joints, not {rep['n_images']} x {NUM_JOINTS}")
    return rep


def comparison_lines(base: dict, rep: dict, name: str) -> list[str]:
    """Lines saying how ``rep`` differs from ``base`` in both modes (paired bootstrap)."""
    differ = [k for k in SAME if _same(k, base) != _same(k, rep)]
    if differ:
        return [f"not compared with {name}: its {', '.join(differ)} differ from this run's "
                f"({', '.join(f'{_same(k, base)} vs {_same(k, rep)}' for k in differ)})"]
    parts = []
    for label, key in MODES:
        try:
            d, lo, hi = paired_difference(from_codes(base[key]), from_codes(rep[key]))
        except ValueError as exc:    # e.g. other images under the same name
            return [f"not compared with {name}: {exc}"]
        parts.append(f"{label} {d:+.2f} (95 % interval {lo:+.2f} to {hi:+.2f})")
    return [f"against {name} ({base['n_images']} images, paired bootstrap): " + "  ".join(parts)]
