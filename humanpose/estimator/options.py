"""The options of a running :class:`~humanpose.estimator.pipeline.PoseEstimator` that can change
between two frames, as one typed change.

``PoseEstimator.configure(boxsize=128, flip_test=True)`` validates every value against the config
(:func:`configured`), then applies them all at once, or none when one is bad.  The window's
estimator thread passes the user's changes through unchanged
(:meth:`humanpose.gui.estimator_worker.EstimatorWorker.update`), so a new option needs one entry here and
one control in the window, not a setter in each layer.
"""
from __future__ import annotations

from typing import Any

from ..config import Config, from_dict

# option name -> config key (section.key)
OPTIONS: dict[str, str] = {
    "framework": "model.framework",
    "device": "model.device",
    "precision": "model.precision",
    "boxsize": "estimator.boxsize",
    "person_threshold": "estimator.person_threshold",
    "min_pose_score": "estimator.min_pose_score",
    "flip_test": "estimator.flip_test",
    "scale_search": "estimator.scale_search",
    "rescale": "estimator.rescale",
    "detector_size": "estimator.detector_size",
    "person_check": "estimator.person_check",
    "crop_levels": "estimator.crop_levels",
    "tracking": "tracking.enabled",
    "smoothing": "tracking.smoothing",
    "measurement_noise": "tracking.measurement_noise",
}


def configured(cfg: Config, **changes: Any) -> Config:
    """A copy of ``cfg`` with the options in ``changes`` set; TypeError for an unknown option,
    :class:`~humanpose.config.ConfigError` (naming the key) for a bad value."""
    unknown = sorted(set(changes) - set(OPTIONS))
    if unknown:
        raise TypeError(f"unknown estimator option(s) {', '.join(unknown)}; "
                        f"known: {', '.join(OPTIONS)}")
    data: dict[str, dict[str, Any]] = {}
    for name, value in changes.items():
        section, _, key = OPTIONS[name].partition(".")
        data.setdefault(section, {})[key] = value
    return from_dict(data, cfg)
