"""The pose stage of the pipeline (:class:`PoseStage`): the pose net on boxsize x boxsize crops,
and the joints of each crop mapped back to the frame.

* every crop goes through the pose net in ONE batch (:meth:`PoseStage.run`): the crop image
  normalised to x / 256 - 0.5 straight into the reused batch, plus the Gaussian centre map as
  4th channel (:meth:`PoseStage.centre_map`); with ``estimator.flip_test`` the maps are averaged
  with those of the mirrored crops (:func:`.decode.flip_averaged`);
* *crop levels* (:meth:`PoseStage.first_pass`, ``estimator.crop_levels`` = L > 1): a new person
  whose pose in its frame-high crop is small (under LEVEL_EXTENT of the crop) or unsure (under
  LEVEL_SCORE) is also cut as windows of 1/2 ... 1/2^(L-1) of the frame height, scaled to
  boxsize, in one more batch, and of its crops the one whose :func:`.decode.pose_score` is best
  is kept (the detector gives no size: a walker a sixth of the frame high is a few cells of a
  frame-high crop);
* *rescale* (:meth:`PoseStage.rescale_pass`, ``estimator.rescale``): a person whose size (the
  larger side of the box around its joints) is off ``rescale_fraction`` x boxsize in its crop by
  more than RESCALE_TOLERANCE is cut again from the full frame, a window of size / fraction frame
  pixels centred on its joints resized to boxsize (:meth:`.crops.Crop.rescaled`), and estimated
  again (one more batch): the nets are trained on persons of 0.3 to 0.95 of the crop;
* *scale search* (:meth:`PoseStage.scale_search_pass`, ``estimator.scale_search`` = d > 0): every
  crop estimated again zoomed by 1 - d and 1 + d (windows of the frame with the same centre),
  the maps resampled onto its grid (:func:`.crops.zoomed_onto`) and averaged with its own;
* *joints* (:meth:`PoseStage.joints`): each joint is the sub-cell maximum of its last-stage map
  over the cells inside the frame, mapped crop -> frame pixels (:meth:`.crops.Crop.joints`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from torch import nn

from ..config import EstimatorConfig
from ..skeleton import NUM_JOINTS
from . import maps
from .backends import check_kind
from .buffers import Buffers
from .crops import RESCALE_TOLERANCE, Crop, zoomed_onto
from .decode import flip_averaged, person_extent, pose_score

LEVEL_EXTENT = 0.35        # crop levels: a new person whose joints' box is under this part of the
LEVEL_SCORE = 0.6          # frame-high crop, or whose pose scores under this, is also cut smaller;
LEVEL_KEEP_SCORE = 0.7     # a smaller crop is kept only when its pose scores this much
                           # (vtest: walkers 0.73-0.86; tripod, bollard, jacket on grass 0.61-0.69)


class PoseStage:
    """The pose net, its backend and the passes of the pose step (see the module doc).
    ``settings`` gives the estimator options of the moment; ``check`` raises when the
    estimate is cancelled (called before every net pass)."""

    def __init__(self, model: nn.Module, settings: Callable[[], EstimatorConfig],
                 check: Callable[[], None]):
        self.model = check_kind(model, "pose")
        self.backend = None                  # set by the estimator (make_backend)
        self._settings = settings
        self._check = check
        self._centre_maps: dict[int, np.ndarray] = {}
        self.buffers = Buffers(self.centre_map)     # reused net inputs and crop images

    def centre_map(self, boxsize: int | None = None) -> np.ndarray:
        est = self._settings()
        b = boxsize or est.boxsize
        m = self._centre_maps.get(b)
        if m is None:
            m = self._centre_maps[b] = maps.centre_map(b, est.centre_sigma * b)
        return m

    def run(self, crops: list[Crop]) -> list[np.ndarray] | None:
        """Stage maps (each (N, 15, h, w)) of the crops, in one batch; None if no crop."""
        if not crops:
            return None
        self._check()
        b = crops[0].image.shape[0]
        batch = self.buffers.batch(len(crops), b)   # reused: no allocation per frame
        for k, c in enumerate(crops):     # normalise() written straight into the batch
            np.multiply(c.image.transpose(2, 0, 1), 1.0 / 256.0, out=batch[k, :3],
                        casting="unsafe")
        batch[:, :3] -= 0.5
        if self._settings().flip_test:
            return flip_averaged(self.backend, batch)
        return self.backend(batch)

    @staticmethod
    def joints(crops: list[Crop], stage_maps: list[np.ndarray],
               shape: tuple[int, int]) -> list[np.ndarray]:
        """The (14, 3) joints of every crop in frame pixels, from the last stage's maps."""
        last = stage_maps[-1]
        return [cr.joints(last[n, :NUM_JOINTS], shape) for n, cr in enumerate(crops)]

    def first_pass(self, bgr: np.ndarray, scaled: tuple, tracked: list[Crop],
                   centres: np.ndarray, levels: int, sides: np.ndarray | None = None):
        """The crops of the tracked persons and of the new ``centres`` (scaled-frame pixels) and
        their stage maps.  A new person's crop is the boxsize-high frame around its centre, in
        one batch with the tracks' crops.  With ``levels`` > 1, a new person whose pose there
        is small (its joints' box under LEVEL_EXTENT of the crop) or unsure (pose score under
        LEVEL_SCORE) is also cut at 1/2, 1/4 ... of the frame height (a second batch) and the
        crop whose pose scores best is kept, a smaller one only when it scores at least
        LEVEL_KEEP_SCORE (cut small, street furniture can look like a person): the detector
        gives no size, and a walker a fifth of the frame high is a few map cells of a
        frame-high crop, where the pose net joins the limbs of several people
        (``../shared/media/vtest.avi``).  A person who fills the frame, as at a webcam, costs
        no second batch.  ``sides`` (sized detections, MultiPose): each new person cut at its
        size at once.  The rescale pass then fits the kept crop."""
        b = self._settings().boxsize
        buffers = self.buffers
        if sides is not None:
            sx, sy, _ = scaled
            frame_centres = (np.asarray(centres).reshape(-1, 2) + 0.5) / (sx, sy) - 0.5
            crops = tracked + [Crop.rescaled(bgr, c, s, b, buffers.crop(b))
                               for c, s in zip(frame_centres, sides)]
            return crops, self.run(crops)
        crops = tracked + [Crop.centred(bgr, c, b, scaled, buffers.crop(b)) for c in centres]
        stage_maps = self.run(crops)
        if stage_maps is None or levels <= 1 or not len(centres):
            return crops, stage_maps
        shape, n0, fh = bgr.shape[:2], len(tracked), bgr.shape[0]
        sx, sy, _ = scaled

        def rated(cr: Crop, beliefs: np.ndarray) -> tuple[float, float]:
            joints = cr.joints(beliefs[:NUM_JOINTS], shape)
            return pose_score(joints), person_extent(joints)[1] * cr.ky / b
        first = [rated(crops[n0 + i], stage_maps[-1][n0 + i]) for i in range(len(centres))]
        todo = [i for i, (score, extent) in enumerate(first)
                if score < LEVEL_SCORE or extent < LEVEL_EXTENT]
        extra = [Crop.rescaled(bgr, (centres[i] + 0.5) / (sx, sy) - 0.5, fh / 2 ** k, b,
                               buffers.crop(b))
                 for i in todo for k in range(1, levels)]
        second = self.run(extra)
        if second is None:
            return crops, stage_maps
        stage_maps = [s.copy() for s in stage_maps]
        for t, i in enumerate(todo):
            rows = range(t * (levels - 1), (t + 1) * (levels - 1))
            scores = [first[i][0]] + [rated(extra[r], second[-1][r])[0] for r in rows]
            best = int(np.argmax(scores))
            if best and scores[best] >= LEVEL_KEEP_SCORE:
                r = rows[best - 1]
                crops[n0 + i] = extra[r]
                for s, s2 in zip(stage_maps, second):
                    s[n0 + i] = s2[r]
        return crops, stage_maps

    def rescale_pass(self, bgr: np.ndarray, crops: list[Crop], stage_maps: list[np.ndarray],
                     skip: int = 0):
        """Second pose pass on the persons whose size (the box of their first-pass joints)
        is off the ``rescale_fraction`` of the box by more than RESCALE_TOLERANCE: their crop
        is cut again from the full frame so that they fill that fraction, and re-estimated.
        The first ``skip`` crops (cut from tracks, already at that fraction) are left alone.
        Returns (crops, stage maps, indices of the rescaled persons)."""
        est = self._settings()
        b = est.boxsize
        todo, new = [], []
        for n, cr in enumerate(crops):
            if n < skip:
                continue
            joints = cr.joints(stage_maps[-1][n, :NUM_JOINTS], bgr.shape[:2])
            centre, size = person_extent(joints)
            ratio = size * cr.ky / (est.rescale_fraction * b)
            if ratio <= 0 or abs(np.log(ratio)) <= np.log(RESCALE_TOLERANCE):
                continue
            todo.append(n)
            new.append(Crop.rescaled(bgr, centre, size / est.rescale_fraction, b,
                                     self.buffers.crop(b)))
        if not todo:
            return crops, stage_maps, []
        second = self.run(new)
        crops = list(crops)
        stage_maps = [s.copy() for s in stage_maps]
        for i, n in enumerate(todo):
            crops[n] = new[i]
            for s, s2 in zip(stage_maps, second):
                s[n] = s2[i]
        return crops, stage_maps, todo

    def scale_search_pass(self, bgr: np.ndarray, crops: list[Crop],
                          stage_maps: list[np.ndarray]) -> list[np.ndarray]:
        """Every crop estimated again zoomed by 1 - d and 1 + d (d = ``scale_search``), on
        windows of the frame with the same centre (one batch); their maps are resampled onto
        the crop's grid and averaged with its own where they cover it (:func:`zoomed_onto`)."""
        d = self._settings().scale_search
        b = crops[0].image.shape[0]
        extra = []
        for cr in crops:
            x0, y0, x1, y1 = cr.box()
            centre = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
            for z in (1.0 - d, 1.0 + d):
                extra.append(Crop.rescaled(bgr, centre, b / (z * cr.ky), b,
                                           self.buffers.crop(b)))
        more = np.stack(self.run(extra), axis=1)                    # (2N, stages, C, h, w)
        total = np.stack(stage_maps, axis=1).astype(np.float32, copy=False)  # (N, stages, C, h, w)
        weight = np.ones((len(crops),) + total.shape[3:], np.float32)
        for n, cr in enumerate(crops):
            for k in (2 * n, 2 * n + 1):       # every stage's maps resampled in one warp
                maps_k, cover = zoomed_onto(more[k].reshape(-1, *more.shape[3:]), extra[k], cr)
                total[n] += maps_k.reshape(more.shape[1:])
                weight[n] += cover
        total /= weight[:, None, None]
        return [total[:, i] for i in range(total.shape[1])]
