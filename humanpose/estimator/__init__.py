"""The estimator: frame -> persons with 14 joints each.  Imports go one way, bottom to top:

* nets on a backend: :mod:`.cpu` (what this CPU can run), :mod:`.onnx_export` (the cached ONNX
  export), :mod:`.int8` (its int8 quantisation from kept ranges), :mod:`.int8_check` (int8 vs
  fp32 on this CPU), :mod:`.backends` (``make_backend``: onnxruntime, torch or OpenCV-DNN);
* frames and maps: :mod:`.maps` (heatmaps, peaks), :mod:`.crops` (frames and crops),
  :mod:`.decode` (joints, pose score, duplicates), :mod:`.buffers` (reused net inputs),
  :mod:`.result` (``Person``, ``PoseResult``), :mod:`.options` (the live options);
* the steps: :mod:`.persons` and :mod:`.detector` (where the persons stand),
  :mod:`.pose_stage` (the pose net on crops), :mod:`.kalman`, :mod:`.tracking` and
  :mod:`.tracked` (track ids, smoothing, tracking-driven crops);
* on top, :mod:`.pipeline` (``PoseEstimator``), which composes them.

The Python API (:mod:`humanpose.api`) wraps the pipeline; calibration, benchmarks and the
export-onnx command live in :mod:`humanpose.optimize`.
"""
