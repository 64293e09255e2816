"""Augmented training batches made beside the training loop: by one background thread (cv2
releases the GIL), or with ``loaders`` > 1 by worker processes; pose samples from
:mod:`.samples`, person scenes from :mod:`.scenes`.
"""
from __future__ import annotations

import queue
import threading

import numpy as np
import torch

from ..estimator.maps import STRIDE
from .recipe import TrainConfig
from .samples import pose_sample
from .scenes import person_scene


def make_batch(cfg: TrainConfig, c: dict, rng: np.random.Generator):
    """One augmented batch (inputs, targets, weights) of the recipe ``cfg`` from the crop cache
    ``c``, drawn with ``rng``."""
    size = int(rng.choice(cfg.sizes))
    n = len(c["images"])
    if cfg.kind == "pose":
        def neighbours():     # no random draw without neighbours (batches reproduce)
            if not cfg.neighbour_prob or rng.random() >= cfg.neighbour_prob:
                return None
            k = int(rng.integers(0, n))
            return [(c["images"][k], c["joints"][k])]

        xs, ts, ws, _ = zip(*(pose_sample(c["images"][i], c["joints"][i], size, rng,
                                      rotation=cfg.rotation, rotation_prob=cfg.rotation_prob,
                                      rotation_any_prob=cfg.rotation_any_prob,
                                      lowres_prob=cfg.lowres_prob,
                                      scale=tuple(cfg.pose_scale), zoom_prob=cfg.zoom_prob,
                                      cut_prob=cfg.cut_prob, cut_empty=cfg.cut_empty,
                                      translation=cfg.translation, neighbours=neighbours())
                            for i in rng.integers(0, n, cfg.batch_size)))
        return (torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ts)),
                torch.from_numpy(np.stack(ws)))
    width = int(round(size * rng.uniform(1.0, 1.8) / STRIDE)) * STRIDE
    xs, ts, _ = zip(*(person_scene(c["images"], c["joints"], size, width, rng,
                                   person_scale=tuple(cfg.person_scale), rotation=cfg.rotation,
                                   rotation_prob=cfg.rotation_prob,
                                   rotation_any_prob=cfg.rotation_any_prob,
                                   cover_prob=cfg.cover_prob, cut_prob=cfg.cut_prob,
                                   distractor_prob=cfg.distractor_prob,
                                   companion_prob=cfg.neighbour_prob,
                                   extra_centres=c.get("pseudo"))
                      for _ in range(cfg.batch_size)))
    t = torch.from_numpy(np.stack(ts))
    return torch.from_numpy(np.stack(xs)), t, torch.ones(t.shape[:2])


class Batches:
    """Augmented batches made beside the training loop: by one background thread (cv2 releases
    the GIL), or with ``cfg.loaders`` > 1 by that many worker processes (forked: they share the
    crop cache), each with its own random stream."""

    def __init__(self, cfg: TrainConfig, cache: dict, seed: int):
        self.cfg, self.cache, self.seed = cfg, cache, seed
        self.rng = np.random.default_rng(seed)
        self.stop = False
        if cfg.loaders > 1:
            loader = torch.utils.data.DataLoader(
                _BatchStream(self), batch_size=None, num_workers=cfg.loaders, prefetch_factor=4,
                multiprocessing_context="fork", worker_init_fn=_seed_worker)
            self.workers = iter(loader)
            return
        self.q: queue.Queue = queue.Queue(maxsize=4)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def make(self):
        return make_batch(self.cfg, self.cache, self.rng)

    def _run(self):
        while not self.stop:
            try:
                item = self.make()
            except Exception as exc:      # hand it to the training loop instead of hanging it
                self.q.put(exc)
                return
            self.q.put(item)

    def get(self):
        if self.cfg.loaders > 1:
            try:
                return next(self.workers)
            except Exception as exc:      # a worker's error, re-raised here by the DataLoader
                raise RuntimeError(f"making a training batch failed: {exc!r}") from exc
        item = self.q.get()
        if isinstance(item, Exception):
            raise RuntimeError(f"making a training batch failed: {item!r}") from item
        return item

    def close(self):
        self.stop = True
        if self.cfg.loaders > 1:
            self.workers = None           # the DataLoader's iterator, dropped, ends its processes


class _BatchStream(torch.utils.data.IterableDataset):
    """Endless batches from one worker process (see :class:`Batches`)."""

    def __init__(self, batches: Batches):
        self.batches = batches

    def __iter__(self):
        while True:
            yield self.batches.make()


def _seed_worker(worker_id: int) -> None:
    """Worker k draws from its own stream (the run's seed, then k), not a copy of the parent's."""
    b = torch.utils.data.get_worker_info().dataset.batches
    b.rng = np.random.default_rng([b.seed, worker_id])
