"""humanpose: real-time 2-D human pose estimation with Convolutional Pose Machines.

Python API (:mod:`humanpose.api`)::

    from humanpose import Estimator

    estimator = Estimator()                  # options as keywords: Estimator(boxsize=256)
    for person in estimator(frame):          # frame: a BGR numpy image, the next video frame
        person.joints, person.scores, person.box, person.track_id

``import humanpose`` stays light: the API (and torch) load on first use of its names.
"""
__version__ = "0.1.0"
__all__ = ["Estimator", "JOINTS", "Pose", "__version__"]


def __getattr__(name: str):
    if name in ("Estimator", "Pose"):
        from . import api                    # torch and the nets: only when asked for
        return getattr(api, name)
    if name == "JOINTS":
        from .skeleton import JOINTS
        return JOINTS
    raise AttributeError(f"module 'humanpose' has no attribute {name!r}")
