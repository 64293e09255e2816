"""The protobuf wire format of Caffe's ``.caffemodel`` files, read and written without Caffe or
protobuf classes (varints, length-delimited fields, packed floats).

* ``NetParameter``: ``layer`` (field 100, ``LayerParameter``) and the legacy ``layers`` (field 2,
  ``V1LayerParameter``);
* ``LayerParameter``: name (1), type (2, string), blobs (7); ``V1LayerParameter``: name (4),
  type (5, enum), blobs (6);
* ``BlobProto``: shape (7, ``BlobShape`` with packed int64 ``dim`` 1), the legacy num / channels /
  height / width (1-4), data (5, packed float) or double_data (8, packed double).

:func:`read_caffemodel` gives the layers with their blobs; :func:`write_caffemodel` encodes the
same format (used by the tests; handy for fixtures).  :mod:`.caffe_import` builds the nets.
"""
from __future__ import annotations

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
