"""Tools that make the runtime faster or measure it, above the estimator: the ``export-onnx``
command and int8 calibration on the training images (:mod:`.export_cmd`, :mod:`.calibrate`),
and the ``bench`` command (:mod:`.bench`, :mod:`.webcam_bench`).  They may import the estimator
and ``train``; neither imports them."""
