"""``humanpose export-onnx``: the ONNX export of the configured nets
(:mod:`humanpose.estimator.onnx_export`) and, with ``--int8``, their int8 quantisation
(:mod:`.calibrate`)."""
from __future__ import annotations

import sys
from pathlib import Path

from .. import config as config_mod
from ..estimator.onnx_export import cached_onnx, export_onnx, onnx_location, write_sidecar
from ..store import ModelError, load_named
from .calibrate import CALIB_COUNT, export_int8


def add_arguments(parser) -> None:
    parser.add_argument("--config", default=None, help="config file (default: humanpose.yml)")
    parser.add_argument("--out", default=None,
                        help="output folder (default: next to each weight file, as <weights>.onnx)")
    parser.add_argument("--int8", action="store_true",
                        help="also write the statically quantised <weights>.int8.onnx that "
                             "model.precision: int8 runs (onnxruntime): from the calibration "
                             "ranges kept next to the weights (<weights>.int8-ranges.json) when "
                             "they are current, else calibrated on --calibration varied crops "
                             "of the LSP training images, whose ranges are then kept (generated "
                             "frames without ../shared, less accurate, not kept)")
    parser.add_argument("--calibration", type=int, default=None, metavar="N",
                        help="calibrate again on N crops / frames per net even when ranges are "
                             "kept (default: 300)")
    parser.add_argument("--calibration-method", choices=("minmax", "percentile", "entropy"),
                        default=None,
                        help="activation ranges (default: the kept ranges' method, else minmax; "
                             "percentile lost less PCK on pose_mobilenet, the shipped ranges' "
                             "method, but needs minutes and GBs of memory: too many for "
                             "the person nets on 23 GB)")
    parser.add_argument("--int8-weights", choices=("s7", "s8", "u8"), default=None,
                        help="int8 weight scheme (default, chosen for this CPU: s8 with VNNI / "
                             "AMX; without, s7 for the pose net and u8 for the person net, "
                             "which cannot saturate the AVX2 kernels as s8 does)")
    parser.add_argument("--synthetic", action="store_true",
                        help="calibrate on generated frames even when ../shared is present "
                             "(for tests; less accurate)")


def main(args) -> int:

    cfg = config_mod.from_args(args)   # a ConfigError is reported by the cli
    models_dir = cfg.resolve(cfg.model.models_dir)
    for name, kind in ((cfg.model.person_model, "person"), (cfg.model.pose_model, "pose")):
        try:
            model = load_named(name, models_dir, kind)
        except ModelError as exc:
            print(f"error: {kind} model: {exc}", file=sys.stderr)
            return 1
        try:
            if args.out:
                out = Path(args.out) / (Path(model.weights_path).name + ".onnx")
                export_onnx(model, out)
                write_sidecar(out, onnx_location(model)[1])
            else:
                out = cached_onnx(model)
        except OSError as exc:
            print(f"error: cannot write the {kind} model's ONNX file: {exc}", file=sys.stderr)
            return 1
        print(f"{kind} model {name} -> {out}")
        if args.int8:
            n = args.calibration or CALIB_COUNT
            if n < 1:
                print("error: --calibration must be at least 1", file=sys.stderr)
                return 2
            target = (Path(args.out) / (Path(model.weights_path).name + ".int8.onnx")
                      if args.out else None)
            try:
                q, how = export_int8(model, n, synthetic=True if args.synthetic else None,
                                     method=args.calibration_method, out_path=target,
                                     use_kept=args.calibration is None,
                                     weights=getattr(args, "int8_weights", None))
            except OSError as exc:
                print(f"error: cannot write the {kind} model's int8 file: {exc}", file=sys.stderr)
                return 1
            print(f"{kind} model {name} -> {q} (int8; {how})")
    return 0
