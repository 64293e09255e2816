"""Fine-tune the MultiPose person net by distilling its own outputs on real frames, with real
negatives (resumable; checkpoints outside git).

    python -m humanpose import-tfjs ../shared/teachers/movenet/movenet-multipose.json \\
        /work/ckpt49/multipose_raw.safetensors --kind multipose
    nice -n 5 python tools/distil_multipose.py --init /work/ckpt49/multipose_raw.safetensors \\
        --out /work/ckpt49/distil --minutes 25

* teacher: the imported net, frozen; student: the same weights, its MobileNetV2 backbone frozen
  (its features are computed once for both), the FPN and the six heads trained;
* positives: whole training images (LSP-extended minus the 500 validation images, seed 0, + LSP
  im0001-1000), the longer side scaled to 160..SIZE px and placed at random on a grey SIZE x SIZE
  canvas; targets: the teacher's six outputs (sigmoid centre and keypoint maps as soft BCE
  targets; regression and box outputs weighted by the teacher's centre map, offsets by its
  keypoint maps, smooth L1);
* real negatives: background windows of the same images away from the annotated person (its
  joint box grown by half its size on every side); a window in which the teacher (its own
  decode) finds no person of instance score NEG_SCORE or more is a negative: its centre target
  is 0 everywhere, and its loss adds the student's own strongest centre cells (hard negatives:
  the student's false peaks, top HARD_CELLS of each negative); a window where the teacher does
  find someone is used as a positive;
* writes ``OUT/last.safetensors`` (humanpose weight file) + ``OUT/state.pt`` (optimiser, step;
  ``torch.load(weights_only=True)``) every --save-every steps; rerun the same command to resume.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from humanpose.estimator.crops import PAD_VALUE  # noqa: E402
from humanpose.nets.mobilenet import _up2  # noqa: E402
from humanpose.nets.multipose import MAP_STRIDE, OUTPUTS, decode  # noqa: E402
from humanpose.store import load_model, save_weights  # noqa: E402
from humanpose.train.datasets import person_box, splits  # noqa: E402

NEG_SCORE = 0.05
HARD_CELLS = 8
HARD_WEIGHT = 0.2         # of the hard-negative term against the soft centre target (--hard-weight)
MIN_WINDOW = 64


def backbone(trunk, x):
    """The frozen MobileNetV2 part: (stride-32 output, taps at strides 4, 8, 16)."""
    return trunk.backbone(x)


def fpn_heads(net, x, taps):
    t = net.trunk
    x4, x8, x16 = taps
    top = t.lateral32(F.relu6(t.last(x)))
    f16 = t.smooth16(_up2(top) + t.lateral16(x16))
    f8 = t.smooth8(_up2(f16) + t.lateral8(x8))
    f4 = t.smooth4(_up2(f8) + t.lateral4(x4))
    return [net.heads[k](f4) for k, _ in OUTPUTS]


def place(img, size, rng):
    """``img`` scaled to a longer side of 160..size, at a random place on a grey canvas; returns
    (canvas, scale, x0, y0)."""
    h, w = img.shape[:2]
    side = rng.integers(160, size + 1)
    s = side / max(h, w)
    nw, nh = max(8, int(round(w * s))), max(8, int(round(h * s)))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    y0, x0 = rng.integers(0, size - nh + 1), rng.integers(0, size - nw + 1)
    canvas[y0:y0 + nh, x0:x0 + nw] = small
    return canvas, nw / w, int(x0), int(y0)


def background(img, joints, rng):
    """A window of ``img`` away from the annotated person, or None."""
    h, w = img.shape[:2]
    c, s = person_box(joints)
    lo, hi = c - s, c + s                      # the joint box grown by half its size
    for _ in range(10):
        side = int(rng.integers(MIN_WINDOW, max(MIN_WINDOW + 1, min(h, w))))
        if side > min(h, w):
            continue
        x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        if x0 + side < lo[0] or x0 > hi[0] or y0 + side < lo[1] or y0 > hi[1]:
            return img[y0:y0 + side, x0:x0 + side]
    return None


def batch(data, n, size, neg_share, rng):
    """(images, negative flags, the annotated person's (centre x, y, size) in map cells or NaN)."""
    imgs, neg, people = [], [], []
    while len(imgs) < n:
        i = int(rng.integers(len(data)))
        img = cv2.imread(str(data.images[i]))
        if img is None:
            continue
        person = np.full(3, np.nan)
        if rng.random() < neg_share:
            win = background(img, data.joints[i], rng)
            if win is None:
                continue
            img, is_neg = win, True
        else:
            is_neg = False
            (cx, cy), extent = person_box(data.joints[i])
            person = np.array([cx, cy, extent])
        if rng.random() < 0.5:
            img = img[:, ::-1]
            person[0] = img.shape[1] - 1 - person[0]
        canvas, s, x0, y0 = place(np.ascontiguousarray(img), size, rng)
        imgs.append(canvas)
        neg.append(is_neg)
        people.append((person * s + (x0, y0, 0)) / MAP_STRIDE)
    x = torch.from_numpy(np.stack(imgs).astype(np.float32) / 256.0 - 0.5).permute(0, 3, 1, 2)
    return x.contiguous(), np.array(neg), np.array(people)


def label_centres(people, shape) -> torch.Tensor:
    """(N, 1, h, w) Gaussians at the annotated persons' centres (sigma: a twelfth of their size,
    at least a cell); zero where an image has none."""
    n, h, w = len(people), shape[-2], shape[-1]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros((n, 1, h, w), np.float32)
    for k, (cx, cy, extent) in enumerate(people):
        if np.isfinite(cx):
            sigma = max(1.0, extent / 12)
            out[k, 0] = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))
    return torch.from_numpy(out)


def losses(student, teacher, neg, labels=None, hard_weight=HARD_WEIGHT):
    cen_s, heat_s, reg_s, off_s, bs_s, bo_s = student
    cen_t, heat_t, reg_t, off_t, bs_t, bo_t = (torch.sigmoid(t) if k < 2 else t
                                               for k, t in enumerate(teacher))
    target = cen_t.clone() if labels is None else torch.maximum(cen_t, labels)
    target[torch.from_numpy(neg)] = 0.0
    bce = F.binary_cross_entropy_with_logits(cen_s, target, reduction="none").flatten(1)
    centre = bce.mean()
    if neg.any():   # hard negatives: the student's strongest centre cells on the negatives
        top = cen_s.flatten(1)[torch.from_numpy(neg)].topk(HARD_CELLS, dim=1).values
        centre = centre + hard_weight * F.binary_cross_entropy_with_logits(
            top, torch.zeros_like(top))
    heat = F.binary_cross_entropy_with_logits(heat_s, heat_t)
    wc = cen_t / cen_t.sum().clamp(min=1e-6)
    reg = (F.smooth_l1_loss(reg_s, reg_t, reduction="none") * wc).sum() / reg_s.shape[1]
    box = ((F.smooth_l1_loss(bs_s, bs_t, reduction="none")
            + F.smooth_l1_loss(bo_s, bo_t, reduction="none")) * wc).sum() / 2
    wk = heat_t.repeat_interleave(2, dim=1)
    off = (F.smooth_l1_loss(off_s, off_t, reduction="none") * wk).sum() / wk.sum().clamp(min=1e-6)
    return {"centre": centre, "heat": heat, "reg": 0.1 * reg, "box": 0.1 * box, "off": off}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--init", required=True, help="imported MultiPose (import-tfjs --kind multipose)")
    p.add_argument("--out", required=True, help="checkpoint folder (outside git)")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--steps", type=int, default=100000)
    p.add_argument("--minutes", type=float, default=25.0, help="stop after this much wall time")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--neg-share", type=float, default=0.35)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--label-weight", type=float, default=0.0,
                   help="centre target = max(teacher, this x a Gaussian at the annotated "
                        "person's centre) on positives (0 = the teacher alone)")
    p.add_argument("--hard-weight", type=float, default=HARD_WEIGHT)
    p.add_argument("--save-every", type=int, default=25)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    teacher = load_model(a.init, kind="person").eval()
    student = copy.deepcopy(teacher)
    for q in teacher.parameters():
        q.requires_grad_(False)
    frozen = list(student.trunk.stem.parameters()) + list(student.trunk.blocks.parameters())
    for q in frozen:
        q.requires_grad_(False)
    params = [q for q in student.parameters() if q.requires_grad]
    opt = torch.optim.Adam(params, lr=a.lr)
    step, seconds = 0, 0.0
    if (out / "state.pt").exists():
        state = torch.load(out / "state.pt", weights_only=True)
        student.load_state_dict(load_model(out / "last.safetensors").state_dict())
        opt.load_state_dict(state["optimizer"])
        step, seconds = int(state["step"]), float(state["seconds"])
        print(f"resumed at step {step} ({seconds / 60:.1f} min trained)", flush=True)
    train, _ = splits(a.data)
    rng = np.random.default_rng(a.seed + step)
    student.train()
    t_start, log = time.perf_counter(), out / "log.jsonl"
    while step < a.steps and (time.perf_counter() - t_start) / 60 < a.minutes:
        t0 = time.perf_counter()
        x, neg, people = batch(train, a.batch, a.size, a.neg_share, rng)
        mp_in = (torch.flip(x, dims=(1,)) + 0.5) * (256.0 * 0.007843017578125) - 1.0
        with torch.no_grad():
            top, taps = backbone(teacher.trunk, mp_in)
            t_out = fpn_heads(teacher, top, taps)
            for k in np.where(neg)[0]:       # a window where the teacher finds a person: positive
                if max(i.score for i in decode(t_out, int(k))) >= NEG_SCORE:
                    neg[k] = False
        s_out = fpn_heads(student, top, taps)
        labels = (a.label_weight * label_centres(people, s_out[0].shape)
                  if a.label_weight > 0 else None)
        parts = losses(s_out, t_out, neg, labels, a.hard_weight)
        loss = sum(parts.values())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        seconds += time.perf_counter() - t0
        rec = {"step": step, "loss": round(float(loss.detach()), 5), "negatives": int(neg.sum()),
               **{k: round(float(v.detach()), 5) for k, v in parts.items()},
               "s_per_step": round(time.perf_counter() - t0, 2)}
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        if step % 10 == 0:
            print(json.dumps(rec), flush=True)
        if step % a.save_every == 0:
            save(student, opt, step, seconds, out, a)
    save(student, opt, step, seconds, out, a)
    print(f"stopped at step {step}, {seconds / 60:.1f} min of training in all", flush=True)
    return 0


def save(student, opt, step, seconds, out, a):
    student.eval()
    save_weights(student, out / "last.safetensors", "movenet_multipose",
                 kwargs={"alpha": student.alpha},
                 extra={"source": "MoveNet MultiPose Lightning v1 (Apache-2.0), distilled",
                        "step": str(step), "train_seconds": f"{seconds:.0f}",
                        "recipe": json.dumps({k: v for k, v in vars(a).items()})})
    torch.save({"optimizer": opt.state_dict(), "step": step, "seconds": seconds},
               out / "state.pt")
    student.train()


if __name__ == "__main__":
    sys.exit(main())
