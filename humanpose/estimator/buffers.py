"""The estimator's reused per-frame arrays (:class:`Buffers`): the pose-net batch, the
detector input and the crop images, allocated once per shape and overwritten on every frame,
so that a frame allocates no image-sized array of its own."""
from __future__ import annotations

from typing import Callable

import numpy as np


class Buffers:
    """Reused inputs of the nets and images of the crops (one estimator, under its lock)."""

    def __init__(self, centre_map: Callable[[int], np.ndarray]):
        self._centre_map = centre_map
        self._batches: dict[tuple[int, int], np.ndarray] = {}
        self._detector: dict[tuple[int, int], np.ndarray] = {}
        self._crops: list[np.ndarray] = []
        self._used = 0

    def new_frame(self) -> None:
        """The crop images of the last frame may be overwritten from now on."""
        self._used = 0

    def crop(self, b: int) -> np.ndarray:
        """A (b, b, 3) uint8 image for the next crop of this frame (:func:`.crops.cut` writes
        into it): distinct for every crop of a frame, reused by the next frame (a crop kept in
        a result is a copy)."""
        if self._used < len(self._crops) and self._crops[self._used].shape[0] != b:
            del self._crops[self._used:]                     # another boxsize
        if self._used == len(self._crops):
            self._crops.append(np.empty((b, b, 3), np.uint8))
        self._used += 1
        return self._crops[self._used - 1]

    def batch(self, n: int, b: int) -> np.ndarray:
        """A float32 (n, 4, b, b) pose-net input whose 4th channel holds the centre map, kept
        for the next frames (a few shapes at most: the person count and boxsize change
        rarely).  The backends copy or only read it, so the next pass may overwrite it."""
        buf = self._batches.get((n, b))
        if buf is None:
            if len(self._batches) > 16:
                self._batches.clear()
            buf = self._batches[(n, b)] = np.empty((n, 4, b, b), np.float32)
            buf[:, 3] = self._centre_map(b)
        return buf

    def detector(self, det: np.ndarray) -> np.ndarray:
        """``det`` (H, W, 3 uint8, the detector's frame) normalised (x / 256 - 0.5) into a
        reused (1, 3, H, W) float32 input."""
        h, w = det.shape[:2]
        buf = self._detector.get((h, w))
        if buf is None:
            if len(self._detector) > 4:
                self._detector.clear()
            buf = self._detector[(h, w)] = np.empty((1, 3, h, w), np.float32)
        np.multiply(det.transpose(2, 0, 1), 1.0 / 256.0, out=buf[0], casting="unsafe")
        buf -= 0.5
        return buf
