"""Network architectures.  Contract shared by every architecture:

* ``model.kind`` is ``"person"`` (input: 3-channel image) or ``"pose"`` (input: 4 channels,
  image + Gaussian centre map), the image being BGR / 256 - 0.5 with height and width
  multiples of 8;
* ``model(x)`` returns a tuple with the belief maps of every stage, each of shape
  (N, num_maps, ceil(H/8), ceil(W/8)); the last stage is the answer;
* ``model.num_stages``, ``model.num_maps``, ``model.in_channels`` describe it.

``movenet_multipose`` (MoveNet MultiPose as a person net, :mod:`.multipose`) keeps the input
contract but returns its six raw head outputs at stride 4 (``model.decoder == "multipose"``:
decoded by :func:`.multipose.decode`).
"""
from __future__ import annotations

from torch import nn

from .compact import CompactCPM

ARCHITECTURES = ("cpm_mobilenet", "cpm_compact", "cpm_vgg", "movenet_multipose")


def build_model(arch: str, kind: str, **kwargs) -> nn.Module:
    """Build an architecture by name (random weights)."""
    if arch == "cpm_compact":
        return CompactCPM(kind, **kwargs)
    if arch == "cpm_mobilenet":
        from .cpm_mobilenet import MobileNetCPM
        return MobileNetCPM(kind, **kwargs)
    if arch == "cpm_vgg":
        from .cpm_vgg import build_cpm_vgg
        return build_cpm_vgg(kind, **kwargs)
    if arch == "movenet_multipose":
        from .multipose import MultiPoseNet
        return MultiPoseNet(kind, **kwargs)
    raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
