"""The one configuration object of humanpose, loaded from ``humanpose.yml``.

Every section is a dataclass; every field has a type and (where it matters) a list of allowed
values or a numeric range.  Unknown keys, wrong types and bad values raise :class:`ConfigError`
naming the key, the value and what is allowed.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import reprlib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .catalog import pose_net_problem

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def shared_media() -> Path:
    """``../shared/media`` beside this checkout (present for developers and CI only)."""
    return PROJECT_ROOT.parent / "shared" / "media"
DEFAULT_CONFIG = PROJECT_ROOT / "humanpose.yml"


class ConfigError(ValueError):
    """A bad configuration file, key or value."""


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 6, 6, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 60, 40


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to about 100 characters (nested values, long lists and strings
    shortened with ``...``): an error message that names a bad value stays one short line."""
    text = _REPR.repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


# the box size (person height in pixels a frame is scaled to): its range and step, here only
# (the config check, the estimator and the window's slider all use these)
BOXSIZE_MIN, BOXSIZE_MAX, BOXSIZE_STEP = 64, 640, 8


def snap_boxsize(value: float) -> int:
    """``value`` rounded to a multiple of BOXSIZE_STEP within BOXSIZE_MIN..BOXSIZE_MAX."""
    value = BOXSIZE_STEP * int(round(float(value) / BOXSIZE_STEP))
    return min(BOXSIZE_MAX, max(BOXSIZE_MIN, value))


def _opt(default, allowed=None, lo=None, hi=None, doc=""):
    return field(default=default, metadata={"allowed": allowed, "lo": lo, "hi": hi, "doc": doc})


@dataclass
class ModelConfig:
    framework: str = _opt("onnxruntime", allowed=("onnxruntime", "torch", "opencv"),
                          doc="onnxruntime (fastest on the CPU), torch (training, GPU) or "
                              "opencv (cv2.dnn); all run the same weights")
    device: str = _opt("auto", allowed=("cpu", "cuda", "auto"))
    precision: str = _opt("auto", allowed=("auto", "fp32", "bf16", "int8"),
                          doc="auto: int8 where it runs (onnxruntime on the CPU with an int8 "
                              "export, made on first use from the ranges kept with the shipped "
                              "nets), else fp32; int8: that, else fp32 with a note (`humanpose "
                              "export-onnx --int8`); bf16: torch where the CPU has native "
                              "bfloat16; else fp32 with a note")
    models_dir: str = _opt("models")
    person_model: str = _opt("person_multipose")
    pose_model: str = _opt("pose_mobilenet")


@dataclass
class EstimatorConfig:
    boxsize: int = _opt(192, lo=BOXSIZE_MIN, hi=BOXSIZE_MAX)
    person_threshold: float = _opt(0.2, lo=0.0, hi=1.0,
                                   doc="a person is a centre-map peak above this (centre-map "
                                       "person nets) or a MoveNet MultiPose person whose instance "
                                       "score is at least this (movenet_multipose)")
    detector_size: int = _opt(0, lo=0, hi=2048,
                              doc="the person detector sees the frame scaled so that its longer "
                                  "side is this many pixels (not the boxsize): larger finds "
                                  "smaller persons, for more detector time; 0 = follow the "
                                  "frame (a MultiPose net: two passes at 384 and 640 for frames of "
                                  "640 px or more, else 256; a centre-map net: 256)")
    person_check: float = _opt(0.1, lo=0.0, hi=1.0,
                               doc="with a MultiPose person net (movenet_multipose): keep a "
                                   "skeleton only where a MultiPose person of at least this "
                                   "instance score stands (0 = off; centre-map nets: no check)")
    max_persons: int = _opt(8, lo=1, hi=64)
    min_person_distance: float = _opt(0.15, lo=0.0, hi=1.0)
    centre_sigma: float = _opt(0.06, lo=0.005, hi=0.5)
    joint_threshold: float = _opt(0.3, lo=0.0, hi=1.0)
    min_pose_score: float = _opt(0.5, lo=0.0, hi=1.0,
                                 doc="a detected person whose best 7 joint scores average below "
                                     "this is dropped as a false detection; 0 keeps all")
    flip_test: bool = _opt(False, doc="also run the pose net on mirrored crops and average "
                                      "(more accurate, twice the pose time)")
    crop_levels: int = _opt(3, lo=1, hi=5,
                            doc="a newly detected person's first pose crop is the boxsize-high "
                                "frame and, for levels > 1, also 1/2, 1/4 ... of the frame height; "
                                "the best-scored is kept (finds small persons in large frames; "
                                "1 = the frame-high crop only, the least pose time)")
    rescale: bool = _opt(True, doc="re-estimate a person whose size is far from rescale_fraction "
                                   "of the box on a crop rescaled to fit (more accurate on small "
                                   "and large persons, up to twice the pose time)")
    rescale_fraction: float = _opt(0.65, lo=0.2, hi=1.0,
                                   doc="the person's size (larger side of the joints' box) "
                                       "as a fraction of the box that rescale aims at")
    scale_search: float = _opt(0.0, lo=0.0, hi=0.5,
                               doc="also estimate each person on crops zoomed by 1 - and 1 + "
                                   "this and average the belief maps (CPM's scale search; "
                                   "0 = off, three times the pose time)")


@dataclass
class TrackingConfig:
    enabled: bool = _opt(True, doc="give persons stable track ids across frames")
    smoothing: bool = _opt(True, doc="Kalman-smooth the joints of tracked persons")
    max_distance: float = _opt(0.5, lo=0.0, hi=10.0,
                               doc="association gate: centre distance in box diagonals")
    max_missed: int = _opt(10, lo=0, hi=1000,
                           doc="frames a track (or a joint filter) survives without a measurement")
    min_score: float = _opt(0.2, lo=0.0, hi=1.0,
                            doc="joints scored below this are predicted, not measured")
    process_noise: float = _opt(5000.0, lo=1e-6, hi=1e9,
                                doc="joint acceleration noise spectral density, px^2/s^3")
    measurement_noise: float = _opt(9.0, lo=1e-6, hi=1e9,
                                    doc="joint measurement noise variance, px^2 per axis")
    detect_every: int = _opt(10, lo=1, hi=1000,
                             doc="run the person detector on every N-th frame; on the frames "
                                 "between, while every track had a confident pose, each person "
                                 "is cropped from its Kalman-predicted joints (1 = detector on "
                                 "every frame)")


@dataclass
class SourceConfig:
    source: str = _opt("0")
    camera_fps: float = _opt(30.0, lo=1.0, hi=240.0)
    width: int = _opt(640, lo=0, hi=8192)
    height: int = _opt(480, lo=0, hi=8192)
    loop: bool = _opt(False)


@dataclass
class GuiConfig:
    view: str = _opt("single", allowed=("single", "heatmap", "multistage"))
    heatmap_blend: bool = _opt(True)
    show_boxes: bool = _opt(True)
    show_scores: bool = _opt(False)
    display_fps: float = _opt(30.0, lo=1.0, hi=240.0)
    low_latency_display: bool = _opt(False, doc="paint each camera frame at once with the newest "
                                                "pose (computed on an earlier frame); off: each "
                                                "pose is shown on its own frame")


@dataclass
class OutputConfig:
    directory: str = _opt("output")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    gui: GuiConfig = field(default_factory=GuiConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    path: str | None = None  # where it was loaded from (not a YAML key)

    def resolve(self, p: str | Path) -> Path:
        """A path from the config, relative to the project root when not absolute."""
        p = Path(p).expanduser()
        return p if p.is_absolute() else PROJECT_ROOT / p

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("path")
        return d


_SECTIONS = {f.name: f for f in dataclasses.fields(Config) if f.name != "path"}


def _check(section: str, f: dataclasses.Field, value: Any, hints: dict) -> Any:
    key = f"{section}.{f.name}"
    typ = hints[f.name]
    md = f.metadata
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: {short_repr(value)} is not allowed; expected true or false")
    elif typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: {short_repr(value)} is not allowed; expected an integer")
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{key}: {short_repr(value)} is not allowed; expected a finite number")
        value = float(value)
    elif typ is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # e.g. a webcam index written as 0
        if not isinstance(value, str):
            raise ConfigError(f"{key}: {short_repr(value)} is not allowed; expected a string")
    if md.get("allowed") and value not in md["allowed"]:
        raise ConfigError(f"{key}: {short_repr(value)} is not allowed; allowed: {', '.join(md['allowed'])}")
    lo, hi = md.get("lo"), md.get("hi")
    if lo is not None and value < lo or hi is not None and value > hi:
        raise ConfigError(f"{key}: {short_repr(value)} is not allowed; allowed range: {lo} to {hi}")
    return value


def from_dict(data: dict | None, base: Config | None = None) -> Config:
    """Build (or update ``base`` with) a validated Config from nested dicts."""
    cfg = dataclasses.replace(base) if base else Config()
    if data is None:
        return cfg
    if not isinstance(data, dict):
        raise ConfigError(f"the config must be a mapping of sections, not {type(data).__name__}")
    for name, values in data.items():
        if name not in _SECTIONS:
            raise ConfigError(f"unknown section {short_repr(name)}; allowed: {', '.join(_SECTIONS)}")
        current = getattr(cfg, name)
        cls = type(current)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{name}: expected a mapping of keys, not {short_repr(values)}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        updates = {}
        for key, value in values.items():
            if key not in fields:
                shown = key if isinstance(key, str) and len(key) <= 60 else short_repr(key)
                raise ConfigError(f"unknown key {name}.{shown}; allowed keys: "
                                  f"{', '.join(fields)}")
            updates[key] = _check(name, fields[key], value, hints)
        setattr(cfg, name, dataclasses.replace(current, **updates))
    return cfg


def set_value(cfg: Config, dotted: str, value: Any) -> Config:
    """Return a copy of ``cfg`` with ``section.key`` set (validated), e.g. from a CLI flag."""
    section, _, key = dotted.partition(".")
    return from_dict({section: {key: value}}, cfg)


def value_range(dotted: str) -> tuple[float | None, float | None]:
    """The allowed range (lo, hi) of a numeric key ``section.key``, as the config checks it
    (the window's spin boxes and sliders take theirs from here)."""
    section, _, key = dotted.partition(".")
    for f in dataclasses.fields(type(getattr(Config(), section))):
        if f.name == key:
            return f.metadata.get("lo"), f.metadata.get("hi")
    raise ConfigError(f"unknown key {dotted}")


def check_pose_model(cfg: Config, name: str) -> None:
    """ConfigError naming the available pose nets unless ``name`` is one of them or an
    existing weight file (:func:`humanpose.catalog.pose_net_problem`)."""
    problem = pose_net_problem(cfg.resolve(cfg.model.models_dir), name)
    if problem:
        raise ConfigError(f"model.pose_model: {problem}")


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last) and
    any alias (``*name``): a config or recipe has no use for them, and nested aliases expand
    exponentially (a "billion laughs" file of a few hundred bytes would hang a reader and
    fill the memory)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"the alias *{event.anchor} is not allowed (plain YAML only: no "
                "anchors and aliases; write the value out)", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:                 # an unhashable key: PyYAML's own error follows
                continue
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {short_repr(key)} (first on line {first})",
                    key_node.start_mark)
        return super().construct_mapping(node, deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: the problem and where (PyYAML's own text spans lines)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if "could not determine a constructor for the tag" in problem:
        problem = (f"the tag {problem.split('tag', 1)[1].strip()} is not allowed (plain YAML "
                   "only: no python objects)")
    mark = getattr(exc, "problem_mark", None)
    return problem + (f" (line {mark.line + 1}, column {mark.column + 1})" if mark else "")


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely (no tags that build objects, no duplicate keys); a problem is a
    one-line :class:`ConfigError` naming the file and the line."""
    path = Path(path)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None


def load(path: str | Path | None = None) -> Config:
    """Load and validate a YAML config (default: the project's humanpose.yml)."""
    path = Path(path) if path else DEFAULT_CONFIG
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = read_yaml(path)
    except UnicodeDecodeError as exc:   # a video or image given where the YAML belongs
        raise ConfigError(f"{path}: not a YAML text file (a config is UTF-8 text; to open a "
                          f"video or image, pass it as the source)") from exc
    except OSError as exc:              # a folder, no permission...
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        cfg = from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    cfg.path = str(path)
    return cfg


def add_estimator_arguments(parser: argparse.ArgumentParser) -> None:
    """The estimator overrides of a command line that :func:`from_args` applies: ``--boxsize``,
    ``--flip-test``, ``--scale-search``, ``--rescale / --no-rescale``, ``--detector-size``,
    ``--crop-levels`` (left at None when not given, so that the config file's value stands)."""
    parser.add_argument("--boxsize", type=int, metavar="N",
                        help="person height in pixels the frame is scaled to (estimator.boxsize)")
    parser.add_argument("--flip-test", action="store_true", default=None,
                        help="also estimate on mirrored crops and average (estimator.flip_test)")
    parser.add_argument("--scale-search", type=float, metavar="D",
                        help="also estimate on crops zoomed by 1 - D and 1 + D and average, e.g. "
                             "0.15 (estimator.scale_search; 0 = off)")
    parser.add_argument("--rescale", action=argparse.BooleanOptionalAction, default=None,
                        help="re-estimate persons much smaller or larger than the box on a crop "
                             "cut to fit them (estimator.rescale)")
    parser.add_argument("--detector-size", type=int, metavar="N",
                        help="longer side in pixels of the frame the person detector sees "
                             "(estimator.detector_size): larger finds smaller people")
    parser.add_argument("--crop-levels", type=int, metavar="N",
                        help="a new person's first pose crop: the frame height and 1/2, 1/4 ... "
                             "of it, the best-scored kept (estimator.crop_levels; 1 = the "
                             "frame height only)")
    parser.add_argument("--pose-model", metavar="NAME",
                        help="pose net by manifest name, e.g. pose_mobilenet (fast, the default) "
                             "or pose_mobilenet_accurate (model.pose_model)")


def from_args(args) -> Config:
    """The config of a command: ``args.config``, else humanpose.yml when present, else the
    defaults; then the command-line overrides ``--boxsize``, ``--flip-test``,
    ``--scale-search``, ``--rescale / --no-rescale``, ``--detector-size``, ``--crop-levels``,
    ``--pose-model``, ``--framework``, ``--device`` where the command has them (validated
    like the file; an unknown pose net is a ConfigError naming the available ones)."""
    path = getattr(args, "config", None)
    cfg = load(path) if path or DEFAULT_CONFIG.exists() else Config()
    for key, value in (("estimator.boxsize", getattr(args, "boxsize", None)),
                       ("estimator.flip_test", getattr(args, "flip_test", None)),
                       ("estimator.scale_search", getattr(args, "scale_search", None)),
                       ("estimator.rescale", getattr(args, "rescale", None)),
                       ("estimator.detector_size", getattr(args, "detector_size", None)),
                       ("estimator.crop_levels", getattr(args, "crop_levels", None)),
                       ("model.framework", getattr(args, "framework", None)),
                       ("model.device", getattr(args, "device", None)),
                       ("model.pose_model", getattr(args, "pose_model", None))):
        if value is not None:
            cfg = set_value(cfg, key, value)
    if getattr(args, "pose_model", None) is not None:
        check_pose_model(cfg, args.pose_model)
    return cfg
