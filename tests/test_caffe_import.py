"""Caffe weight import: wire-format reader/writer, conversion, forward pass vs a Caffe-graph
reference, and every error case (missing / extra / mis-shaped layer, truncated file, bad CLI use)."""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch
from safetensors import safe_open

from humanpose import cli
from humanpose.nets.caffe_import import cpm_prototxt, parse_prototxt, read_prototxt
from humanpose.nets.caffe_proto import CaffeImportError, read_caffemodel, write_caffemodel
from humanpose.nets.cpm_vgg import layer_specs
from humanpose.store import convert_caffe, load_model

torch.set_num_threads(1)
WIDTH = 1 / 32          # conv1_1: 2 channels, ..., 512 -> 16, stages 128 -> 4


def make_blobs(kind: str, seed: int = 0, width: float = WIDTH) -> dict[str, list[np.ndarray]]:
    """Random Caffe blobs (weight N x C x k x k, bias N) for every conv of the small net."""
    rng = np.random.default_rng(seed)
    blobs = {}
    for s in layer_specs(kind, width):
        fan_in = s.cin * s.kernel * s.kernel
        w = (rng.standard_normal((s.cout, s.cin, s.kernel, s.kernel)) * (2 / fan_in) ** 0.5)
        blobs[s.name] = [w.astype(np.float32), (rng.standard_normal(s.cout) * 0.1).astype(np.float32)]
    return blobs


def caffe_layers(kind: str, blobs: dict, legacy: bool = False) -> list:
    """Layers in prototxt order, with weightless layers in between like a real caffemodel."""
    layers = [("data", "Data", [])] if not legacy else []
    for name, b in blobs.items():
        layers.append((name, "Convolution", b))
        layers.append((f"relu_{name}", "ReLU", []))
    return layers


@pytest.fixture
def files(tmp_path):
    def make(kind: str, legacy: bool = False, blobs: dict | None = None, layers=None):
        blobs = make_blobs(kind) if blobs is None else blobs
        proto = tmp_path / f"{kind}.prototxt"
        proto.write_text(cpm_prototxt(kind, WIDTH), encoding="utf-8")
        model = write_caffemodel(tmp_path / f"{kind}.caffemodel",
                                 layers if layers is not None else caffe_layers(kind, blobs, legacy),
                                 legacy=legacy)
        return proto, model, blobs
    return make


# -- a tiny Caffe interpreter for the prototxt graph (numpy pooling with Caffe's semantics) ---------

def _caffe_pool(x: np.ndarray, method: str, k: int, s: int) -> np.ndarray:
    c, h, w = x.shape
    oh, ow = math.ceil((h - k) / s) + 1, math.ceil((w - k) / s) + 1
    out = np.zeros((c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * s, j * s
            win = x[:, hs:min(hs + k, h), ws:min(ws + k, w)]
            out[:, i, j] = win.max(axis=(1, 2)) if method == "MAX" else win.mean(axis=(1, 2))
    return out


def run_caffe_graph(prototxt: str, blobs: dict, x: np.ndarray) -> dict[str, np.ndarray]:
    """Execute a deploy prototxt (Slice, Pooling, Convolution, ReLU, Concat) on one image."""
    net = parse_prototxt(prototxt)
    tops = {dict(net)["input"]: x.astype(np.float64)}
    for key, layer in net:
        if key != "layer":
            continue
        d = dict(layer)
        bottoms = [v for k, v in layer if k == "bottom"]
        names = [v for k, v in layer if k == "top"]
        t = d["type"]
        if t == "Slice":
            point = int(dict(d["slice_param"])["slice_point"])
            src = tops[bottoms[0]]
            tops[names[0]], tops[names[1]] = src[:point], src[point:]
        elif t == "Pooling":
            p = dict(d["pooling_param"])
            tops[names[0]] = _caffe_pool(tops[bottoms[0]], p["pool"], int(p["kernel_size"]),
                                         int(p["stride"]))
        elif t == "Convolution":
            p = dict(d["convolution_param"])
            w, b = blobs[d["name"]]
            y = torch.nn.functional.conv2d(torch.from_numpy(tops[bottoms[0]])[None],
                                           torch.from_numpy(w.astype(np.float64)),
                                           torch.from_numpy(b.astype(np.float64)),
                                           padding=int(p["pad"]))
            tops[names[0]] = y[0].numpy()
        elif t == "ReLU":
            tops[names[0]] = np.maximum(tops[bottoms[0]], 0)
        elif t == "Concat":
            tops[names[0]] = np.concatenate([tops[b] for b in bottoms], axis=0)
        else:
            raise AssertionError(f"unexpected layer type {t}")
    return tops


# -- the generated prototxt has the release's graph -----------------------------------------------

def test_generated_prototxt_has_the_release_graph():
    def concat_bottoms(text, stage):
        for key, layer in parse_prototxt(text):
            if key == "layer" and dict(layer)["name"] == f"concat_stage{stage}":
                return [v for k, v in layer if k == "bottom"]
    pose, person = cpm_prototxt("pose"), cpm_prototxt("person")
    # as in pose_deploy_resize.prototxt / pose_deploy_copy_4sg_resize.prototxt
    assert concat_bottoms(pose, 2) == ["conv5_2_CPM", "conv4_7_CPM", "pool_center_lower"]
    assert concat_bottoms(pose, 6) == ["Mconv7_stage5", "conv4_7_CPM", "pool_center_lower"]
    assert concat_bottoms(person, 2) == ["conv6_2_CPM", "conv5_2_CPM"]
    assert concat_bottoms(person, 4) == ["Mconv7_stage3", "conv5_2_CPM"]
    layers = dict((dict(l)["name"], l) for k, l in parse_prototxt(pose) if k == "layer")
    pool = dict(dict(layers["pool_center_lower"])["pooling_param"])
    assert (pool["pool"], pool["kernel_size"], pool["stride"]) == ("AVE", "9", "8")
    assert not any(f"relu_{n}" in layers for n in ("conv5_2_CPM", "Mconv7_stage2"))


@pytest.mark.parametrize("kind", ["person", "pose"])
def test_full_size_prototxt_parses_to_the_model(kind, tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text(cpm_prototxt(kind), encoding="utf-8")
    proto = read_prototxt(path)
    assert proto.input_channels == (3 if kind == "person" else 4)
    specs = layer_specs(kind)
    assert list(proto.convs) == [s.name for s in specs]
    for s in specs:
        c = proto.convs[s.name]
        assert (c.num_output, c.kernel, c.pad) == (s.cout, s.kernel, s.pad)


# -- conversion ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,legacy", [("pose", False), ("person", True)])
def test_convert_copies_every_tensor_and_matches_caffe_forward(files, tmp_path, kind, legacy):
    proto, caffemodel, blobs = files(kind, legacy=legacy)
    out = convert_caffe(proto, caffemodel, tmp_path / "out" / "cpm.safetensors")
    assert out.exists()
    with safe_open(str(out), framework="pt") as fh:
        meta = fh.metadata()
    assert meta["arch"] == "cpm_vgg" and meta["kind"] == kind
    assert meta["source"] == f"caffe:{kind}.caffemodel"
    model = load_model(out)
    state = model.state_dict()
    assert len(state) == 2 * len(blobs)
    for name, (w, b) in blobs.items():
        assert torch.equal(state[f"{name}.weight"], torch.from_numpy(w)), name
        assert torch.equal(state[f"{name}.bias"], torch.from_numpy(b)), name

    rng = np.random.default_rng(5)
    h, w = 64, 48
    x = rng.random((model.in_channels, h, w)).astype(np.float32) - 0.5
    if kind == "pose":                                    # a Gaussian centre map
        yy, xx = np.mgrid[:h, :w]
        x[3] = np.exp(-((yy - 30) ** 2 + (xx - 20) ** 2) / (2 * 21.0 ** 2))
    with torch.no_grad():
        got = model(torch.from_numpy(x)[None])
    tops = run_caffe_graph(proto.read_text(), blobs, x)
    heads = [s.name for s in layer_specs(kind, WIDTH) if not s.relu]
    assert len(got) == len(heads) == model.num_stages
    for maps, head in zip(got, heads):
        ref = tops[head]
        assert maps.shape[1:] == ref.shape == (model.num_maps, h // 8, w // 8)
        np.testing.assert_allclose(maps[0].numpy(), ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    assert np.abs(tops[heads[-1]]).max() > 1e-3          # not a trivially zero comparison


def test_reader_decodes_legacy_and_modern_blobs(tmp_path):
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) / 7
    b = np.array([1.5, -2.25], np.float32)
    for legacy in (False, True):
        path = write_caffemodel(tmp_path / f"m{legacy}.caffemodel",
                                [("c", "Convolution", [w, b]), ("r", "ReLU", [])], legacy=legacy)
        layers = read_caffemodel(path)
        assert [(l.name, l.type, len(l.blobs)) for l in layers] == [("c", "Convolution", 2),
                                                                     ("r", "ReLU", 0)]
        assert np.array_equal(layers[0].blobs[0], w)
        assert layers[0].blobs[1].shape == ((1, 1, 1, 2) if legacy else (2,))
        assert np.array_equal(layers[0].blobs[1].ravel(), b)


def test_reader_decodes_unpacked_floats_and_double_data(tmp_path):
    # hand-encoded: layer{name:"c" blobs{shape{dim:2} data:1.5 data:-2 (unpacked fixed32)}
    #                      blobs{num:1 channels:1 height:1 width:2 double_data:[0.25, 4] (packed)}}
    def ld(fnum, payload):
        return bytes([fnum << 3 | 2, len(payload)]) + payload
    blob1 = ld(7, ld(1, bytes([2]))) + b"".join(bytes([5 << 3 | 5]) + struct.pack("<f", v)
                                                for v in (1.5, -2.0))
    blob2 = bytes([1 << 3, 1, 2 << 3, 1, 3 << 3, 1, 4 << 3, 2]) + ld(8, struct.pack("<2d", 0.25, 4))
    layer = ld(1, b"c") + ld(2, b"Convolution") + ld(7, blob1) + ld(7, blob2)
    path = tmp_path / "hand.caffemodel"
    key = bytes([(802 & 0x7F) | 0x80, 802 >> 7])                 # varint of 100 << 3 | 2
    path.write_bytes(key + bytes([len(layer)]) + layer)
    (c,) = read_caffemodel(path)
    assert c.name == "c" and c.type == "Convolution"
    assert np.array_equal(c.blobs[0], [1.5, -2.0])
    assert c.blobs[1].shape == (1, 1, 1, 2) and np.array_equal(c.blobs[1].ravel(), [0.25, 4.0])


# -- errors --------------------------------------------------------------------------------------

def test_missing_layer_is_named(files, tmp_path):
    blobs = make_blobs("pose")
    del blobs["Mconv3_stage4"]
    proto, caffemodel, _ = files("pose", blobs=blobs)
    with pytest.raises(CaffeImportError, match="lacks weights for layer 'Mconv3_stage4'"):
        convert_caffe(proto, caffemodel, tmp_path / "o.safetensors")
    assert not (tmp_path / "o.safetensors").exists()


def test_extra_layer_is_named(files, tmp_path):
    blobs = make_blobs("person")
    blobs["conv9_9"] = [np.zeros((2, 2, 3, 3), np.float32), np.zeros(2, np.float32)]
    proto, caffemodel, _ = files("person", blobs=blobs)
    with pytest.raises(CaffeImportError, match="layer 'conv9_9' that the cpm_vgg person net"):
        convert_caffe(proto, caffemodel, tmp_path / "o.safetensors")


def test_misshaped_layer_is_named(files, tmp_path):
    blobs = make_blobs("pose")
    w, b = blobs["Mconv1_stage3"]
    blobs["Mconv1_stage3"] = [w[:, :-1].copy(), b]           # forgot the centre-map channel
    proto, caffemodel, _ = files("pose", blobs=blobs)
    with pytest.raises(CaffeImportError, match=r"layer 'Mconv1_stage3' weight has shape \(4, 19, 7, 7\)"):
        convert_caffe(proto, caffemodel, tmp_path / "o.safetensors")
    blobs = make_blobs("pose")
    blobs["conv2_1"] = blobs["conv2_1"][:1]                     # weight without bias
    proto, caffemodel, _ = files("pose", blobs=blobs)
    with pytest.raises(CaffeImportError, match="layer 'conv2_1' has 1 blobs"):
        convert_caffe(proto, caffemodel, tmp_path / "o.safetensors")


def test_truncated_file_names_file_and_layer(files, tmp_path):
    proto, caffemodel, _ = files("pose")
    data = caffemodel.read_bytes()
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(CaffeImportError, match=r"cut\.caffemodel is truncated.*layer #\d+ \('\w+'\)"):
        convert_caffe(proto, cut, tmp_path / "o.safetensors")
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    with pytest.raises(CaffeImportError, match="empty"):
        read_caffemodel(empty)
    garbage = tmp_path / "garbage.caffemodel"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(CaffeImportError, match="garbage.caffemodel is truncated or corrupt"):
        read_caffemodel(garbage)


def test_prototxt_errors(files, tmp_path):
    proto, caffemodel, _ = files("pose")
    with pytest.raises(CaffeImportError, match="describes a pose net, not a person net"):
        convert_caffe(proto, caffemodel, tmp_path / "o.safetensors", kind="person")
    with pytest.raises(CaffeImportError, match="prototxt not found"):
        convert_caffe(tmp_path / "nope.prototxt", caffemodel, tmp_path / "o.safetensors")
    with pytest.raises(CaffeImportError, match="caffemodel not found"):
        convert_caffe(proto, tmp_path / "nope.caffemodel", tmp_path / "o.safetensors")
    with pytest.raises(CaffeImportError, match="not text|no layers"):
        convert_caffe(caffemodel, proto, tmp_path / "o.safetensors")        # swapped
    # a prototxt of the wrong net: the 6-stage pose caffemodel with a person prototxt
    person_proto = tmp_path / "person.prototxt"
    person_proto.write_text(cpm_prototxt("person", WIDTH), encoding="utf-8")
    with pytest.raises(CaffeImportError, match="layer '(conv4_3_CPM|conv4_3)'"):
        convert_caffe(person_proto, caffemodel, tmp_path / "o.safetensors")
    # a prototxt whose layer differs from the architecture
    bad = tmp_path / "bad.prototxt"
    bad.write_text(proto.read_text().replace("kernel_size: 7", "kernel_size: 5", 1), encoding="utf-8")
    with pytest.raises(CaffeImportError, match="layer 'Mconv1_stage2' has num_output 4, kernel 5"):
        convert_caffe(bad, caffemodel, tmp_path / "o.safetensors")
    text = proto.read_text()
    bad.write_text(text.replace('name: "conv1_1"', r'name: "conv1_1\x"', 1), encoding="utf-8")
    with pytest.raises(CaffeImportError, match=r"bad.prototxt: bad escape in the string"):
        convert_caffe(bad, caffemodel, tmp_path / "o.safetensors")
    start = text.index('name: "conv1_1"')
    num = text.index("num_output:", start)
    end = text.index("\n", num)
    bad.write_text(text[:num] + "num_output: 0" + text[end:], encoding="utf-8")
    with pytest.raises(CaffeImportError, match="'conv1_1' has num_output 0"):
        convert_caffe(bad, caffemodel, tmp_path / "o.safetensors")


def test_cli_converts_and_reports_errors(files, tmp_path, capsys):
    proto, caffemodel, _ = files("person")
    out = tmp_path / "person.safetensors"
    assert cli.main(["convert-caffe", str(proto), str(caffemodel), str(out), "--kind", "person"]) == 0
    printed = capsys.readouterr().out
    assert "person net" in printed and "4 stages" in printed and str(out) in printed
    assert load_model(out, kind="person").num_stages == 4
    assert cli.main(["convert-caffe", str(proto), str(tmp_path / "x.caffemodel"), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "x.caffemodel" in err
    (tmp_path / "taken").mkdir()                       # OUT cannot be written: a folder
    assert cli.main(["convert-caffe", str(proto), str(caffemodel), str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and "taken" in err and "Traceback" not in err
