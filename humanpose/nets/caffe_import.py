"""Read the official CPM Caffe weights into the cpm_vgg nets -- no Caffe, no protobuf classes.

``humanpose convert-caffe PROTOTXT CAFFEMODEL OUT [--kind person|pose]`` (:mod:`humanpose.store`)
saves what :func:`caffe_model` builds as a humanpose weight file.

A ``.caffemodel`` is a serialized ``caffe.NetParameter``; :mod:`.caffe_proto` reads (and writes)
its protobuf wire format directly.

The prototxt (text format) is parsed just enough to know the input channels and the Convolution
layers (name, num_output, kernel_size, pad).  From it the net kind (person: 3 input channels, 1 map;
pose: 4 input channels, 15 maps) and the channel width are decided, :mod:`humanpose.nets.cpm_vgg`
is built, and every convolution weight and bias is copied by Caffe layer name after checking shapes.
A missing, extra or mis-shaped layer raises :class:`CaffeImportError` naming the layer.

:func:`cpm_prototxt` writes a deploy prototxt of the cpm_vgg nets (any width).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .caffe_proto import CaffeImportError, CaffeLayer, read_caffemodel

if TYPE_CHECKING:          # torch is imported only when a net is built
    import torch


# ------------------------------------------------------------------------------------------------
# prototxt (protobuf text format, the subset Caffe nets use)

_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}:\[\],;<>]|[^\s{}:\[\],;<>"\'#]+')


def parse_prototxt(text: str, source: str = "prototxt") -> list[tuple[str, object]]:
    """Text-format message -> list of (key, value); nested messages are such lists, scalars str."""
    tokens = [t for t in _TOKEN.findall(text) if t.strip() and not t.startswith("#")]
    pos = 0

    def message(closing: str | None):
        nonlocal pos
        items: list[tuple[str, object]] = []
        while pos < len(tokens):
            tok = tokens[pos]
            if tok in ("}", ">"):
                if closing is None:
                    raise CaffeImportError(f"{source}: unexpected {tok!r}")
                pos += 1
                return items
            if tok in (",", ";"):
                pos += 1
                continue
            key = tok
            pos += 1
            if pos < len(tokens) and tokens[pos] == ":":
                pos += 1
            if pos >= len(tokens):
                raise CaffeImportError(f"{source}: field {key!r} has no value")
            tok = tokens[pos]
            if tok in ("{", "<"):
                pos += 1
                items.append((key, message(tok)))
            elif tok == "[":
                pos += 1
                while pos < len(tokens) and tokens[pos] != "]":
                    if tokens[pos] != ",":
                        items.append((key, _scalar(tokens[pos], source)))
                    pos += 1
                pos += 1
            else:
                items.append((key, _scalar(tok, source)))
                pos += 1
        if closing is not None:
            raise CaffeImportError(f"{source}: unbalanced braces (missing '}}')")
        return items

    return message(None)


def _scalar(tok: str, source: str) -> str:
    if tok[:1] in "\"'":
        try:
            return bytes(tok[1:-1], "utf-8").decode("unicode_escape")
        except UnicodeDecodeError as exc:
            raise CaffeImportError(f"{source}: bad escape in the string {tok[:40]} ({exc.reason})") from exc
    return tok


def _get(msg, key, default=None):
    for k, v in msg:
        if k == key:
            return v
    return default


def _all(msg, key):
    return [v for k, v in msg if k == key]


@dataclass
class ProtoConv:
    name: str
    num_output: int
    kernel: int
    pad: int


@dataclass
class ProtoNet:
    path: Path
    input_channels: int | None
    layers: list[tuple[str, str]]          # (name, type) of every layer
    convs: dict[str, ProtoConv]


def _int(v, what: str, source: str) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        raise CaffeImportError(f"{source}: {what} is not an integer ({v!r})") from None


def read_prototxt(path: str | Path) -> ProtoNet:
    path = Path(path)
    if not path.is_file():
        raise CaffeImportError(f"prototxt not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CaffeImportError(f"prototxt {path} is not text (swapped PROTOTXT and CAFFEMODEL?)") \
            from None
    net = parse_prototxt(text, str(path))
    src = str(path)
    channels = None
    dims = _all(net, "input_dim")
    if len(dims) >= 2:
        channels = _int(dims[1], "input_dim", src)
    shape = _get(net, "input_shape")
    if channels is None and isinstance(shape, list):
        sd = _all(shape, "dim")
        if len(sd) >= 2:
            channels = _int(sd[1], "input_shape dim", src)
    layers, convs = [], {}
    for key in ("layer", "layers"):
        for msg in _all(net, key):
            if not isinstance(msg, list):
                continue
            name, ltype = str(_get(msg, "name", "")), str(_get(msg, "type", ""))
            layers.append((name, ltype))
            if ltype.lower() == "input" and channels is None:
                ip = _get(msg, "input_param", [])
                sd = _all(_get(ip, "shape", []) or [], "dim")
                if len(sd) >= 2:
                    channels = _int(sd[1], f"layer {name!r} input dim", src)
            if ltype.lower() == "convolution":
                cp = _get(msg, "convolution_param")
                if not isinstance(cp, list):
                    raise CaffeImportError(f"{src}: Convolution layer {name!r} has no "
                                           "convolution_param")
                ks = _get(cp, "kernel_size", _get(cp, "kernel_h"))
                convs[name] = ProtoConv(
                    name, _int(_get(cp, "num_output"), f"layer {name!r} num_output", src),
                    _int(ks, f"layer {name!r} kernel_size", src),
                    _int(_get(cp, "pad", _get(cp, "pad_h", 0)), f"layer {name!r} pad", src))
    if not layers:
        raise CaffeImportError(f"prototxt {path} has no layers (not a Caffe net definition?)")
    return ProtoNet(path, channels, layers, convs)


def cpm_prototxt(kind: str, width: float = 1.0, size: int = 368) -> str:
    """A deploy prototxt of the cpm_vgg ``kind`` net (same layer names and graph as the release)."""
    from .cpm_vgg import CENTER_POOL, IN_CHANNELS, POOL, PERSON_FRONT, POSE_FRONT, layer_specs
    specs = layer_specs(kind, width)
    by_name = {s.name: s for s in specs}
    data = "data" if kind == "pose" else "image"
    lines = [f'input: "{data}"', "input_dim: 1", f"input_dim: {IN_CHANNELS[kind]}",
             f"input_dim: {size}", f"input_dim: {size}"]

    def conv(name, bottom):
        s = by_name[name]
        lines.append(f'layer {{\n  name: "{name}"\n  type: "Convolution"\n  bottom: "{bottom}"\n'
                     f'  top: "{name}"\n  convolution_param {{\n    num_output: {s.cout}\n'
                     f'    pad: {s.pad}\n    kernel_size: {s.kernel}\n  }}\n}}')
        if s.relu:
            lines.append(f'layer {{\n  name: "relu_{name}"\n  type: "ReLU"\n  bottom: "{name}"\n'
                         f'  top: "{name}"\n}}')
        return name

    def pool(name, bottom, method, k, s):
        lines.append(f'layer {{\n  name: "{name}"\n  type: "Pooling"\n  bottom: "{bottom}"\n'
                     f'  top: "{name}"\n  pooling_param {{\n    pool: {method}\n'
                     f'    kernel_size: {k}\n    stride: {s}\n  }}\n}}')
        return name

    if kind == "pose":
        lines.append('layer {\n  name: "image"\n  type: "Slice"\n  bottom: "data"\n  top: "image"\n'
                     '  top: "center_map"\n  slice_param {\n    slice_point: 3\n    axis: 1\n  }\n}')
        pool(CENTER_POOL["name"], "center_map", "AVE", CENTER_POOL["kernel"], CENTER_POOL["stride"])
    top, npool = "image", 0
    for item in (PERSON_FRONT if kind == "person" else POSE_FRONT):
        if item == POOL:
            npool += 1
            top = pool(f"pool{npool}_stage1", top, "MAX", 2, 2)
        else:
            top = conv(item[0], top)
    feats = top
    stage_specs = [s for s in specs if s.stage >= 1]
    for s in stage_specs:
        if s.name.startswith("Mconv1_"):
            bottoms = [top, feats] + ([CENTER_POOL["name"]] if kind == "pose" else [])
            cat = f"concat_stage{s.stage}"
            lines.append(f'layer {{\n  name: "{cat}"\n  type: "Concat"\n'
                         + "".join(f'  bottom: "{b}"\n' for b in bottoms)
                         + f'  top: "{cat}"\n  concat_param {{\n    axis: 1\n  }}\n}}')
            top = cat
        top = conv(s.name, top)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# conversion

def _kind_from_proto(proto: ProtoNet) -> str | None:
    by_channels = {3: "person", 4: "pose"}.get(proto.input_channels)
    last = None
    stage_heads = [c for n, c in proto.convs.items() if re.fullmatch(r"Mconv7_stage\d+", n)]
    if stage_heads:
        last = max(stage_heads, key=lambda c: int(c.name.rsplit("stage", 1)[1])).num_output
    by_maps = {1: "person", 15: "pose"}.get(last)
    if by_channels and by_maps and by_channels != by_maps:
        raise CaffeImportError(
            f"prototxt {proto.path}: {proto.input_channels} input channels mean a "
            f"{by_channels} net but {last} output maps mean a {by_maps} net")
    return by_channels or by_maps


def _strip_ones(shape) -> tuple[int, ...]:
    shape = list(shape)
    while len(shape) > 1 and shape[0] == 1:
        shape.pop(0)
    return tuple(shape)


def caffe_model(prototxt: str | Path, caffemodel: str | Path,
                kind: str | None = None) -> tuple["torch.nn.Module", dict, str]:
    """The cpm_vgg net of an official CPM ``prototxt`` + ``caffemodel`` with its weights (eval
    mode), its ``kwargs`` for the weight file and where it came from (``caffe:<file name>``);
    :func:`humanpose.store.convert_caffe` saves it as a humanpose weight file."""
    import torch

    from .cpm_vgg import build_cpm_vgg, caffe_param_names

    proto = read_prototxt(prototxt)
    found = _kind_from_proto(proto)
    if kind is not None:
        if kind not in ("person", "pose"):
            raise CaffeImportError(f"--kind must be 'person' or 'pose', not {kind!r}")
        if found is not None and found != kind:
            raise CaffeImportError(f"prototxt {proto.path} describes a {found} net, not a {kind} "
                                   "net (drop --kind or pass the matching prototxt)")
    kind = kind or found
    if kind is None:
        raise CaffeImportError(f"cannot tell from {proto.path} whether it is the person or the "
                               "pose net (no input dims, no Mconv7_stage* layer); pass --kind")
    if "conv1_1" not in proto.convs:
        raise CaffeImportError(f"prototxt {proto.path} lacks layer 'conv1_1' of the cpm_vgg "
                               f"{kind} net")
    width = proto.convs["conv1_1"].num_output / 64
    if width <= 0:
        raise CaffeImportError(f"prototxt {proto.path}: layer 'conv1_1' has num_output "
                               f"{proto.convs['conv1_1'].num_output}; expected 64 (or a width x 64)")
    model = build_cpm_vgg(kind, width=width)
    specs = {s.name: s for s in model.specs}

    # the prototxt must describe exactly this net
    for name, s in specs.items():
        c = proto.convs.get(name)
        if c is None:
            raise CaffeImportError(f"prototxt {proto.path} lacks Convolution layer {name!r} of the "
                                   f"cpm_vgg {kind} net")
        if (c.num_output, c.kernel, c.pad) != (s.cout, s.kernel, s.pad):
            raise CaffeImportError(
                f"prototxt {proto.path}: layer {name!r} has num_output {c.num_output}, kernel "
                f"{c.kernel}, pad {c.pad}; the cpm_vgg {kind} net needs {s.cout}, {s.kernel}, "
                f"{s.pad}")
    for name in proto.convs:
        if name not in specs:
            raise CaffeImportError(f"prototxt {proto.path} has Convolution layer {name!r} that the "
                                   f"cpm_vgg {kind} net does not have")

    layers = read_caffemodel(caffemodel)
    cm = Path(caffemodel)
    with_blobs: dict[str, CaffeLayer] = {}
    for layer in layers:
        if not layer.blobs:
            continue
        if layer.name in with_blobs:
            raise CaffeImportError(f"caffemodel {cm} holds layer {layer.name!r} twice")
        with_blobs[layer.name] = layer
    for name in with_blobs:
        if name not in specs:
            raise CaffeImportError(f"caffemodel {cm} has weights for layer {name!r} that the "
                                   f"cpm_vgg {kind} net does not have (wrong prototxt?)")
    state = {}
    for name, (wname, bname) in caffe_param_names(model).items():
        layer = with_blobs.get(name)
        if layer is None:
            raise CaffeImportError(f"caffemodel {cm} lacks weights for layer {name!r} of the "
                                   f"cpm_vgg {kind} net")
        if len(layer.blobs) != 2:
            raise CaffeImportError(f"caffemodel {cm}: layer {name!r} has {len(layer.blobs)} blobs, "
                                   "expected 2 (weight, bias)")
        s = specs[name]
        for blob, tname, want in ((layer.blobs[0], wname, (s.cout, s.cin, s.kernel, s.kernel)),
                                  (layer.blobs[1], bname, (s.cout,))):
            if _strip_ones(blob.shape) != _strip_ones(want):
                raise CaffeImportError(
                    f"caffemodel {cm}: layer {name!r} {tname.rsplit('.', 1)[1]} has shape "
                    f"{tuple(blob.shape)}, the cpm_vgg {kind} net needs {want}")
            state[tname] = torch.from_numpy(np.ascontiguousarray(blob, np.float32).reshape(want))
    model.load_state_dict(state, strict=True)
    kwargs = {"width": width} if width != 1.0 else {}
    return model.eval(), kwargs, f"caffe:{cm.name}"
