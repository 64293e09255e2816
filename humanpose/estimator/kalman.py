"""Batched constant-velocity Kalman filters (:class:`ConstantVelocity`): the rows of one track
(its centre and its 14 joints), state (x, y, vx, vy) in frame pixels, measured (x, y).

The equations are filterpy's ``KalmanFilter`` (predict: x = F x, P = F P F' + Q; update with
the Joseph form P = (I - K H) P (I - K H)' + K R K'), written for a batch of rows in numpy, so
that a frame costs a few array operations instead of 15 filter objects each with its own
matrix inverse.  H picks (x, y), R = ``measurement_noise`` I, so S = P[:2, :2] + R is inverted
in closed form.
"""
from __future__ import annotations

import numpy as np

INIT_SPEED = 200.0   # px/s; prior standard deviation of the speed of a new filter
_I4 = np.eye(4)


class ConstantVelocity:
    """``n`` independent constant-velocity filters; ``on[i]`` says whether row i has one.

    ``rows`` arguments are integer index arrays (or lists) of the rows to advance."""

    __slots__ = ("x", "P", "on", "r")

    def __init__(self, n: int, measurement_noise: float):
        self.x = np.zeros((n, 4))
        self.P = np.zeros((n, 4, 4))
        self.on = np.zeros(n, bool)
        self.r = float(measurement_noise)

    def start(self, rows, xy) -> None:
        """New filters at the measured ``xy`` (k, 2) (not at 0), velocity unknown (0 with
        INIT_SPEED standard deviation)."""
        rows = np.asarray(rows, np.intp)
        if not len(rows):
            return
        self.x[rows, :2] = xy
        self.x[rows, 2:] = 0.0
        self.P[rows] = np.diag([self.r, self.r, INIT_SPEED ** 2, INIT_SPEED ** 2])
        self.on[rows] = True

    def stop(self, rows) -> None:
        self.on[np.asarray(rows, np.intp)] = False

    def predict(self, rows, F: np.ndarray, Q: np.ndarray) -> None:
        """Advance ``rows`` by the transition F and process noise Q (both 4 x 4)."""
        rows = np.asarray(rows, np.intp)
        if not len(rows):
            return
        self.x[rows] = self.x[rows] @ F.T
        self.P[rows] = F @ self.P[rows] @ F.T + Q

    def update(self, rows, z) -> None:
        """Correct ``rows`` with the measurements ``z`` (k, 2)."""
        rows = np.asarray(rows, np.intp)
        if not len(rows):
            return
        x, P, r = self.x[rows], self.P[rows], self.r
        pht = P[:, :, :2]                                   # P H'
        a, b = pht[:, 0, 0] + r, pht[:, 0, 1]               # S = H P H' + R
        c, d = pht[:, 1, 0], pht[:, 1, 1] + r
        det = a * d - b * c
        si = np.empty((len(rows), 2, 2))
        si[:, 0, 0], si[:, 0, 1] = d / det, -b / det
        si[:, 1, 0], si[:, 1, 1] = -c / det, a / det
        K = pht @ si                                        # (k, 4, 2)
        y = np.asarray(z, np.float64).reshape(-1, 2) - x[:, :2]
        self.x[rows] = x + (K @ y[:, :, None])[:, :, 0]
        i_kh = np.broadcast_to(_I4, P.shape).copy()
        i_kh[:, :, :2] -= K                                 # I - K H
        self.P[rows] = i_kh @ P @ i_kh.transpose(0, 2, 1) + r * (K @ K.transpose(0, 2, 1))
