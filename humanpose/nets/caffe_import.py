"""Read the official CPM Caffe weights into the cpm_vgg nets -- no Caffe, no protobuf classes.

``humanpose convert-caffe PROTOTXT CAFFEMODEL OUT [--kind person|pose]`` (:mod:`humanpose.store`)
saves what :func:`caffe_model` builds as a humanpose weight file.

A ``.caffemodel`` is a serialized ``caffe.NetParameter``; this module reads its protobuf wire format
directly (varints, length-delimited fields, packed floats):

* ``NetParameter``: ``layer`` (field 100, ``LayerParameter``) and the legacy ``layers`` (field 2,
  ``V1LayerParameter``);
* ``LayerParameter``: name (1), type (2, string), blobs (7); ``V1LayerParameter``: name (4),
  type (5, enum), blobs (6);
* ``BlobProto``: shape (7, ``BlobShape`` with packed int64 ``dim`` 1), the legacy num / channels /
  height / width (1-4), data (5, packed float) or double_data (8, packed double).

The prototxt (text format) is parsed just enough to know the input channels and the Convolution
layers (name, num_output, kernel_size, pad).  From it the net kind (person: 3 input channels, 1 map;
pose: 4 input channels, 15 maps) and the channel width are decided, :mod:`humanpose.nets.cpm_vgg`
is built, and every convolution weight and bias is copied by Caffe layer name after checking shapes.
A missing, extra or mis-shaped layer raises :class:`CaffeImportError` naming the layer.

:func:`write_caffemodel` encodes the same wire format (used by the tests; handy for fixtures), and
:func:`cpm_prototxt` writes a deploy prototxt of the cpm_vgg nets (any width).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# ------------------------------------------------------------------------------------------------
# errors


class CaffeImportError(ValueError):
    """A prototxt or caffemodel that cannot be converted (names the file and / or the layer)."""


# ------------------------------------------------------------------------------------------------
# protobuf wire format

WT_VARINT, WT_I64, WT_LEN, WT_I32 = 0, 1, 2, 5

# NetParameter / LayerParameter / V1LayerParameter / BlobProto field numbers (caffe.proto)
NET_LAYERS_V1, NET_LAYER = 2, 100
LAYER_NAME, LAYER_TYPE, LAYER_BLOBS = 1, 2, 7
V1_NAME, V1_TYPE, V1_BLOBS = 4, 5, 6
BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH = 1, 2, 3, 4
BLOB_DATA, BLOB_SHAPE, BLOB_DOUBLE_DATA = 5, 7, 8
SHAPE_DIM = 1

# V1LayerParameter.LayerType values for the layer types that matter here (caffe.proto)
V1_TYPES = {0: "None", 3: "Concat", 4: "Convolution", 5: "Data", 6: "Dropout", 14: "InnerProduct",
            15: "LRN", 17: "Pooling", 18: "ReLU", 20: "Softmax", 22: "Split", 33: "Slice",
            7: "EuclideanLoss", 39: "Deconvolution"}
V1_CODES = {v: k for k, v in V1_TYPES.items()}


class _Truncated(Exception):
    pass


def _read_varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise _Truncated("varint runs past the end")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise _Truncated("varint longer than 10 bytes")


def iter_fields(buf, start: int = 0, end: int | None = None):
    """Yield (field number, wire type, value) of one message; LEN values are memoryviews."""
    view = memoryview(buf)
    end = len(view) if end is None else end
    pos = start
    while pos < end:
        key, pos = _read_varint(view, pos, end)
        fnum, wtype = key >> 3, key & 7
        if fnum == 0:
            raise _Truncated("field number 0")
        if wtype == WT_VARINT:
            value, pos = _read_varint(view, pos, end)
        elif wtype == WT_LEN:
            n, pos = _read_varint(view, pos, end)
            if pos + n > end:
                raise _Truncated(f"field {fnum} claims {n} bytes, only {end - pos} left")
            value = view[pos:pos + n]
            pos += n
        elif wtype == WT_I32:
            if pos + 4 > end:
                raise _Truncated("fixed32 runs past the end")
            value = view[pos:pos + 4]
            pos += 4
        elif wtype == WT_I64:
            if pos + 8 > end:
                raise _Truncated("fixed64 runs past the end")
            value = view[pos:pos + 8]
            pos += 8
        else:
            raise _Truncated(f"unsupported wire type {wtype} (field {fnum})")
        yield fnum, wtype, value


def _packed_varints(wtype: int, value) -> list[int]:
    if wtype == WT_VARINT:
        return [value]
    out, pos, end = [], 0, len(value)
    while pos < end:
        v, pos = _read_varint(value, pos, end)
        out.append(v)
    return out


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


@dataclass
class CaffeLayer:
    """A layer of a caffemodel: name, type and its blobs (float32 arrays in Caffe's shapes)."""
    name: str
    type: str
    blobs: list[np.ndarray] = field(default_factory=list)


def _decode_blob(buf) -> np.ndarray:
    dims: list[int] = []
    legacy = {}
    chunks: list[np.ndarray] = []
    for fnum, wtype, value in iter_fields(buf):
        if fnum == BLOB_SHAPE and wtype == WT_LEN:
            for f2, w2, v2 in iter_fields(value):
                if f2 == SHAPE_DIM:
                    dims.extend(_signed64(d) for d in _packed_varints(w2, v2))
        elif fnum in (BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH) and wtype == WT_VARINT:
            legacy[fnum] = value
        elif fnum == BLOB_DATA:
            if wtype not in (WT_LEN, WT_I32) or len(value) % 4:
                raise _Truncated("float data of a blob is malformed")
            chunks.append(np.frombuffer(value, dtype="<f4"))
        elif fnum == BLOB_DOUBLE_DATA:
            if wtype not in (WT_LEN, WT_I64) or len(value) % 8:
                raise _Truncated("double data of a blob is malformed")
            chunks.append(np.frombuffer(value, dtype="<f8").astype(np.float32))
    data = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if not dims and legacy:
        dims = [legacy.get(k, 1) for k in (BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH)]
    if not dims:
        dims = [data.size]
    if int(np.prod(dims)) != data.size:
        raise _Truncated(f"blob shape {tuple(dims)} needs {int(np.prod(dims))} values, "
                         f"data holds {data.size}")
    return data.reshape(dims)


def _decode_layer(buf, v1: bool) -> CaffeLayer:
    name_f, type_f, blobs_f = (V1_NAME, V1_TYPE, V1_BLOBS) if v1 else (LAYER_NAME, LAYER_TYPE,
                                                                      LAYER_BLOBS)
    layer = CaffeLayer("", "")
    blob_bufs = []
    for fnum, wtype, value in iter_fields(buf):
        if fnum == name_f and wtype == WT_LEN:
            layer.name = bytes(value).decode("utf-8", "replace")
        elif fnum == type_f:
            if v1 and wtype == WT_VARINT:
                layer.type = V1_TYPES.get(value, f"V1:{value}")
            elif wtype == WT_LEN:
                layer.type = bytes(value).decode("utf-8", "replace")
        elif fnum == blobs_f and wtype == WT_LEN:
            blob_bufs.append(value)
    try:
        layer.blobs = [_decode_blob(b) for b in blob_bufs]
    except _Truncated as exc:
        raise _Truncated(f"layer {layer.name!r}: {exc}") from None
    return layer


def _partial_name(buf, v1: bool) -> str:
    """Best effort: the name of a layer whose bytes are cut short (names come first)."""
    want = V1_NAME if v1 else LAYER_NAME
    try:
        for fnum, wtype, value in iter_fields(buf):
            if fnum == want and wtype == WT_LEN:
                return bytes(value).decode("utf-8", "replace")
    except _Truncated:
        pass
    return "?"


def read_caffemodel(path: str | Path) -> list[CaffeLayer]:
    """All layers (V2 ``layer`` and legacy ``layers``) of a .caffemodel, in file order."""
    path = Path(path)
    if not path.is_file():
        raise CaffeImportError(f"caffemodel not found: {path}")
    data = path.read_bytes()
    if not data:
        raise CaffeImportError(f"caffemodel {path} is empty")
    view = memoryview(data)
    layers: list[CaffeLayer] = []
    pos, end = 0, len(view)
    while pos < end:
        # walk the top-level fields by hand so a cut-short layer can be named
        try:
            key, p = _read_varint(view, pos, end)
            fnum, wtype = key >> 3, key & 7
            if fnum == 0 or wtype not in (WT_VARINT, WT_I64, WT_LEN, WT_I32):
                raise _Truncated(f"bad field key at byte {pos}")
            if wtype == WT_LEN:
                n, p = _read_varint(view, p, end)
                if p + n > end:
                    v1 = fnum == NET_LAYERS_V1
                    if fnum in (NET_LAYER, NET_LAYERS_V1):
                        name = _partial_name(view[p:end], v1)
                        raise _Truncated(f"layer #{len(layers) + 1} ({name!r}) is cut short: "
                                         f"needs {n} bytes, {end - p} left")
                    raise _Truncated(f"field {fnum} needs {n} bytes, {end - p} left")
                if fnum in (NET_LAYER, NET_LAYERS_V1):
                    layers.append(_decode_layer(view[p:p + n], fnum == NET_LAYERS_V1))
                pos = p + n
            elif wtype == WT_VARINT:
                _, pos = _read_varint(view, p, end)
            else:
                pos = p + (4 if wtype == WT_I32 else 8)
                if pos > end:
                    raise _Truncated("fixed-size field runs past the end")
        except _Truncated as exc:
            raise CaffeImportError(f"caffemodel {path} is truncated or corrupt: {exc}") from None
    if not layers:
        raise CaffeImportError(f"caffemodel {path} holds no layers (not a caffemodel?)")
    return layers


# -- writer ---------------------------------------------------------------------------------------

def _varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(fnum: int, wtype: int) -> bytes:
    return _varint((fnum << 3) | wtype)


def _len_field(fnum: int, payload: bytes) -> bytes:
    return _key(fnum, WT_LEN) + _varint(len(payload)) + payload


def _encode_blob(arr: np.ndarray, legacy: bool) -> bytes:
    arr = np.asarray(arr, dtype="<f4")
    out = b""
    if legacy:
        dims = [1] * (4 - arr.ndim) + list(arr.shape)
        if len(dims) != 4:
            raise ValueError(f"legacy blobs are 4-D at most, got shape {arr.shape}")
        for fnum, d in zip((BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH), dims):
            out += _key(fnum, WT_VARINT) + _varint(int(d))
    out += _len_field(BLOB_DATA, arr.tobytes())
    if not legacy:
        dims = b"".join(_varint(int(d)) for d in arr.shape)
        out += _len_field(BLOB_SHAPE, _len_field(SHAPE_DIM, dims))
    return out


def write_caffemodel(path: str | Path, layers, legacy: bool = False, name: str = "CPM") -> Path:
    """Write ``layers`` = [(name, type, [arrays]), ...] as a .caffemodel (NetParameter).

    ``legacy=True`` writes V1 ``layers`` with num/channels/height/width blobs (old caffemodels).
    """
    path = Path(path)
    out = bytearray(_len_field(1, name.encode()))
    for lname, ltype, blobs in layers:
        blobs_b = [_encode_blob(b, legacy) for b in blobs]
        if legacy:
            if ltype not in V1_CODES:
                raise ValueError(f"no V1 layer type code for {ltype!r}")
            body = (_len_field(V1_NAME, lname.encode()) + _key(V1_TYPE, WT_VARINT)
                    + _varint(V1_CODES[ltype]) + b"".join(_len_field(V1_BLOBS, b) for b in blobs_b))
            out += _len_field(NET_LAYERS_V1, body)
        else:
            body = (_len_field(LAYER_NAME, lname.encode()) + _len_field(LAYER_TYPE, ltype.encode())
                    + b"".join(_len_field(LAYER_BLOBS, b) for b in blobs_b))
            out += _len_field(NET_LAYER, body)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


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
