"""Reader for TensorFlow.js graph models (``model.json`` + weight shards), without TensorFlow.

A graph model is ``{"modelTopology": {"node": [...]}, "weightsManifest": [{"paths": [...],
"weights": [{"name", "shape", "dtype", "quantization"?}]}]}``: the shards named in ``paths``,
concatenated in order, hold every weight in manifest order.  A quantised weight is stored as
``quantization.dtype`` (float16, or uint8 / uint16 with ``scale`` and ``min``) and read back as
its ``dtype`` (float32).  :func:`read_graph` returns the nodes (name -> op, inputs, attributes
decoded to plain Python) and the weights as numpy arrays; nothing here runs the graph.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "float16": np.float16,
           "uint8": np.uint8, "uint16": np.uint16, "int8": np.int8, "int16": np.int16}


class TfjsError(ValueError):
    """A graph-model file that cannot be read: missing, malformed, or shards of the wrong size."""


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    attr: dict = field(default_factory=dict)


@dataclass
class Graph:
    path: Path
    nodes: dict[str, Node]
    weights: dict[str, np.ndarray]
    source: str = ""

    def weight(self, name: str) -> np.ndarray:
        try:
            return self.weights[name]
        except KeyError:
            raise TfjsError(f"{self.path}: no weight {name!r} in the graph") from None

    def find(self, suffix: str) -> np.ndarray:
        """The one weight whose name ends with ``suffix``."""
        hits = [k for k in self.weights if k.endswith(suffix)]
        if len(hits) != 1:
            raise TfjsError(f"{self.path}: {len(hits)} weights end with {suffix!r} (expected 1)")
        return self.weights[hits[0]]


def _attr_value(v: dict):
    """A TF AttrValue in JSON form -> Python (strings base64-decoded)."""
    if "s" in v:
        return base64.b64decode(v["s"]).decode("utf-8", "replace")
    if "i" in v:
        return int(v["i"])
    if "f" in v:
        return float(v["f"])
    if "b" in v:
        return bool(v["b"])
    if "type" in v:
        return v["type"]
    if "list" in v:
        lst = v["list"]
        if "s" in lst:
            return [base64.b64decode(s).decode("utf-8", "replace") for s in lst["s"]]
        if "i" in lst:
            return [int(i) for i in lst["i"]]
        if "f" in lst:
            return [float(f) for f in lst["f"]]
        return []
    if "shape" in v:
        return [int(d.get("size", -1)) for d in v["shape"].get("dim", [])]
    return v


def _dequantise(raw: bytes, spec: dict, count: int) -> np.ndarray:
    q = spec.get("quantization")
    out_dtype = _DTYPES.get(spec.get("dtype", "float32"))
    if out_dtype is None:
        raise TfjsError(f"weight {spec['name']!r}: unsupported dtype {spec.get('dtype')!r}")
    if not q:
        return np.frombuffer(raw, dtype=out_dtype, count=count).copy()
    qdtype = q.get("dtype")
    if qdtype == "float16":
        return np.frombuffer(raw, dtype="<f2", count=count).astype(out_dtype)
    if qdtype in ("uint8", "uint16"):
        values = np.frombuffer(raw, dtype=_DTYPES[qdtype], count=count).astype(np.float32)
        return (values * np.float32(q["scale"]) + np.float32(q["min"])).astype(out_dtype)
    raise TfjsError(f"weight {spec['name']!r}: unsupported quantization {qdtype!r}")


def read_graph(json_path: str | Path) -> Graph:
    """Read a TF.js graph model (its JSON and weight shards beside it)."""
    path = Path(json_path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TfjsError(f"graph model not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TfjsError(f"{path} is not a TF.js graph model JSON ({exc})") from exc
    topo = doc.get("modelTopology") if isinstance(doc, dict) else None
    manifest = doc.get("weightsManifest") if isinstance(doc, dict) else None
    if not isinstance(topo, dict) or not isinstance(topo.get("node"), list) or not isinstance(manifest, list):
        raise TfjsError(f"{path}: not a TF.js graph model (needs modelTopology.node and "
                        "weightsManifest; a layers model is not supported)")
    nodes = {}
    for n in topo["node"]:
        nodes[n["name"]] = Node(n["name"], n["op"], list(n.get("input", [])),
                                {k: _attr_value(v) for k, v in n.get("attr", {}).items()})
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        blobs = []
        for shard in group.get("paths", []):
            shard_path = path.parent / shard
            try:
                blobs.append(shard_path.read_bytes())
            except OSError as exc:
                raise TfjsError(f"{path}: weight shard {shard_path} cannot be read ({exc})") from exc
        data = b"".join(blobs)
        offset = 0
        for spec in group.get("weights", []):
            shape = [int(d) for d in spec.get("shape", [])]
            count = int(np.prod(shape)) if shape else 1
            q = spec.get("quantization")
            stored = _DTYPES.get(q["dtype"] if q else spec.get("dtype", "float32"))
            if stored is None:
                raise TfjsError(f"{path}: weight {spec.get('name')!r} has an unsupported dtype")
            nbytes = count * np.dtype(stored).itemsize
            if offset + nbytes > len(data):
                raise TfjsError(f"{path}: the weight shards end at byte {len(data)}, but weight "
                                f"{spec['name']!r} needs bytes {offset}..{offset + nbytes} "
                                "(a truncated .bin?)")
            weights[spec["name"]] = _dequantise(data[offset:offset + nbytes], spec, count).reshape(shape)
            offset += nbytes
        if offset != len(data):
            raise TfjsError(f"{path}: the weight shards hold {len(data)} bytes, the manifest "
                            f"describes {offset} (wrong or extra .bin?)")
    return Graph(path, nodes, weights, source=str(doc.get("generatedBy", "")))
