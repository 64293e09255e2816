"""humanpose: real-time 2-D human pose estimation with Convolutional Pose Machines."""
__version__ = "0.1.0"
