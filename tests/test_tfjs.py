"""The TF.js graph reader, the PyTorch rebuild of MoveNet's trunk and heads, and import-tfjs.

The synthetic graphs are written here (:func:`write_fake_movenet`); the real MoveNet files in
../shared are checked against reference outputs recorded once with TensorFlow.js
(tests/fixtures/movenet_reference.json, made by tests/fixtures/make_movenet_reference/).
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from humanpose.nets.mobilenet import (HEAD_NAMES, HEADS, MoveNet, MobileNetV2FPN, SamePadConv,
                                      decode_single, trunk_names)
from humanpose.nets.tfjs import TfjsError, read_graph

SHARED = Path(__file__).resolve().parents[2] / "shared"
MOVENET = SHARED / "teachers" / "movenet"
FIXTURE = Path(__file__).parent / "fixtures" / "movenet_reference.json"
P = "StatefulPartitionedCall/"
FE = P + "center_net_mobile_net_v2fpn_feature_extractor/"


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def write_graph(path: Path, weights: list[tuple[str, np.ndarray, str | None]], nodes=()) -> Path:
    """A TF.js graph model at ``path`` (+ ``.bin``): weights (name, array, quantisation dtype or
    None) in this manifest order."""
    specs, blobs = [], []
    for name, a, q in weights:
        spec = {"name": name, "shape": list(a.shape),
                "dtype": "int32" if a.dtype == np.int32 else "float32"}
        if q == "float16":
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blobs.append(a.astype("<f2").tobytes())
        elif q == "uint8":
            lo, hi = float(a.min()), float(a.max())
            scale = (hi - lo) / 255 or 1.0
            spec["quantization"] = {"dtype": "uint8", "min": lo, "scale": scale}
            blobs.append(np.round((a - lo) / scale).astype(np.uint8).tobytes())
        else:
            blobs.append(a.astype("<i4" if a.dtype == np.int32 else "<f4").tobytes())
        specs.append(spec)
    bin_path = path.with_suffix(".bin")
    bin_path.write_bytes(b"".join(blobs))
    doc = {"format": "graph-model", "generatedBy": "test",
           "modelTopology": {"node": [{"name": "input", "op": "Placeholder"}, *nodes]},
           "weightsManifest": [{"paths": [bin_path.name], "weights": specs}]}
    path.write_text(json.dumps(doc))
    return path


def _tf_layout(t: torch.Tensor, key: str, depthwise: bool) -> np.ndarray:
    a = t.detach().numpy()
    if key.endswith(".bias"):
        return a
    return a.transpose(2, 3, 0, 1) if depthwise else a.transpose(2, 3, 1, 0)   # OIHW -> HWIO


def write_fake_movenet(path: Path, alpha: float = 1.0, seed: int = 0) -> tuple[Path, MoveNet]:
    """A MoveNet-shaped TF.js graph with random weights (float16, as Google's files) and the
    PyTorch net holding the same (float16-rounded) weights."""
    torch.manual_seed(seed)
    net = MoveNet(alpha)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.half().float())
    weights = [(FE + tf, _tf_layout(net.trunk.state_dict()[key], key, dw), "float16")
               for key, tf, dw in trunk_names()]
    for n, (head, _) in enumerate(HEADS.items()):
        state = net.heads[head].state_dict()
        names = {"sep.depthwise.weight": f"separable_conv2d_{n + 3}/separable_conv2d/ReadVariableOp",
                 "sep.pointwise.weight": f"separable_conv2d_{n + 3}/separable_conv2d/ReadVariableOp_1",
                 "sep.pointwise.bias": f"separable_conv2d_{n + 3}/BiasAdd/ReadVariableOp",
                 "out.weight": f"conv2d_{n + 4}/Conv2D/ReadVariableOp",
                 "out.bias": f"conv2d_{n + 4}/BiasAdd/ReadVariableOp"}
        for key, _, dw in HEAD_NAMES:
            weights.append((f"{P}{head}/{names[key]}", _tf_layout(state[key], key, dw), "float16"))
    return write_graph(path, weights), net.eval()


def test_reader_dequantises_in_manifest_order(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    b = np.arange(5, dtype=np.int32)
    c = rng.normal(size=(7,)).astype(np.float32)
    d = rng.uniform(-2, 3, size=(4, 4)).astype(np.float32)
    node = {"name": "conv", "op": "_FusedConv2D", "input": ["input", "a", "c"],
            "attr": {"fused_ops": {"list": {"s": [_b64("BiasAdd"), _b64("Relu6")]}},
                     "padding": {"s": _b64("SAME")}, "strides": {"list": {"i": ["1", "2", "2", "1"]}},
                     "epsilon": {"f": 0.0}, "shape": {"shape": {"dim": [{"size": "1"}, {"size": "-1"}]}}}}
    path = write_graph(tmp_path / "m.json", [("a", a, "float16"), ("b", b, None), ("c", c, None),
                                             ("d", d, "uint8")], nodes=[node])
    g = read_graph(path)
    assert list(g.weights) == ["a", "b", "c", "d"]
    assert np.array_equal(g.weights["a"], a.astype(np.float16).astype(np.float32))
    assert g.weights["a"].dtype == np.float32 and g.weights["a"].shape == (3, 3, 2, 4)
    assert np.array_equal(g.weights["b"], b) and g.weights["b"].dtype == np.int32
    assert np.array_equal(g.weights["c"], c)                      # plain float32 follows float16
    assert np.abs(g.weights["d"] - d).max() <= (d.max() - d.min()) / 255 / 2 + 1e-6
    attr = g.nodes["conv"].attr
    assert attr["fused_ops"] == ["BiasAdd", "Relu6"] and attr["padding"] == "SAME"
    assert attr["strides"] == [1, 2, 2, 1] and attr["shape"] == [1, -1]
    assert g.nodes["conv"].inputs == ["input", "a", "c"]


def test_reader_errors(tmp_path):
    with pytest.raises(TfjsError, match="not found"):
        read_graph(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TfjsError, match="not a TF.js graph model JSON"):
        read_graph(tmp_path / "bad.json")
    (tmp_path / "layers.json").write_text(json.dumps({"modelTopology": {"class_name": "Sequential"},
                                                      "weightsManifest": []}))
    with pytest.raises(TfjsError, match="layers model"):
        read_graph(tmp_path / "layers.json")
    path = write_graph(tmp_path / "m.json", [("a", np.ones((4, 4), np.float32), "float16")])
    raw = path.with_suffix(".bin").read_bytes()
    path.with_suffix(".bin").write_bytes(raw[:-6])
    with pytest.raises(TfjsError, match="truncated"):
        read_graph(path)
    path.with_suffix(".bin").write_bytes(raw + b"\0\0")
    with pytest.raises(TfjsError, match="extra"):
        read_graph(path)
    path.with_suffix(".bin").unlink()
    with pytest.raises(TfjsError, match="cannot be read"):
        read_graph(path)


def _tf_same_conv_reference(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """TF's SAME convolution written out: pad total = max((ceil(n/s)-1)*s + k - n, 0), the
    smaller half before.  x (C, H, W), w (O, C, k, k)."""
    c, h, wd = x.shape
    k = w.shape[-1]
    out = []
    for n in (h, wd):
        m = -(-n // stride)
        total = max((m - 1) * stride + k - n, 0)
        out.append((m, total // 2))
    (oh, top), (ow, left) = out
    pad_h = max((oh - 1) * stride + k - h, 0)
    pad_w = max((ow - 1) * stride + k - wd, 0)
    xp = np.pad(x, ((0, 0), (top, pad_h - top), (left, pad_w - left)))
    y = np.zeros((w.shape[0], oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * stride:i * stride + k, j * stride:j * stride + k]
            y[:, i, j] = (w * patch[None]).sum((1, 2, 3))
    return y


@pytest.mark.parametrize("stride", [1, 2])
def test_same_padding_matches_tensorflow_on_even_inputs(stride):
    """A stride-2 SAME conv pads 0 before and 1 after (not 1 and 1): one pixel of difference at
    every stride-2 layer shifts every keypoint."""
    rng = np.random.default_rng(stride)
    x = rng.normal(size=(2, 10, 12)).astype(np.float32)
    conv = SamePadConv(2, 3, 3, stride, bias=False)
    with torch.no_grad():
        got = conv(torch.from_numpy(x)[None])[0].numpy()
    want = _tf_same_conv_reference(x, conv.weight.detach().numpy(), stride)
    assert got.shape == want.shape
    assert np.allclose(got, want, atol=1e-5)
    if stride == 2:   # symmetric padding would give something else
        sym = F.conv2d(torch.from_numpy(x)[None], conv.weight.detach(), stride=2, padding=1)[0].numpy()
        assert not np.allclose(sym[:, :want.shape[1], :want.shape[2]], want, atol=1e-3)


def test_trunk_and_heads_load_from_a_synthetic_graph(tmp_path):
    """Every weight of the rebuilt net is read from its TF name and layout (OIHW from HWIO,
    depthwise from H,W,C,1), float16 included: the loaded net computes what the source net does."""
    path, source = write_fake_movenet(tmp_path / "fake.json", alpha=1.0)
    net = MoveNet.from_graph(read_graph(path))
    for k, v in source.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    x = torch.rand(1, 3, 64, 96) * 255
    with torch.no_grad():
        a, b = net(x), source(x)
    for k in HEADS:
        assert a[k].shape == (1, HEADS[k], 16, 24) and torch.allclose(a[k], b[k], atol=1e-5)


def test_trunk_widths_of_the_three_movenets():
    """Keras' channel rounding gives the MultiPose (1.5) and Thunder (1.75) widths."""
    for alpha, first, c4 in ((1.0, 32, 24), (1.5, 48, 40), (1.75, 56, 40)):
        t = MobileNetV2FPN(alpha)
        assert t.stem.out_channels == first and t.lateral4.in_channels == c4


# ------------------------------------------------------------------------------------------------
# the real files (skipped without ../shared)

needs_movenet = pytest.mark.skipif(not (MOVENET / "movenet-lightning.json").exists(),
                                   reason="../shared/teachers/movenet is absent (MoveNet files)")


def _reference_input(size: int) -> np.ndarray:
    img = cv2.imread(str(SHARED / "media" / "messi5.jpg"))
    rgb = img[:, :, ::-1]
    h, w = rgb.shape[:2]
    sq = np.zeros((max(h, w), max(h, w), 3), np.uint8)
    sq[:h, :w] = rgb
    return cv2.resize(sq, (size, size), interpolation=cv2.INTER_AREA).astype(np.int32)


@needs_movenet
@pytest.mark.parametrize("name", ["lightning", "thunder", "multipose"])
def test_rebuilt_movenet_matches_tensorflow_js(name):
    """The rebuilt MoveNet on messi5 against TensorFlow.js: the heatmaps' maxima and their cells,
    and (SinglePose) the graph's own decode of the 17 keypoints to float32 rounding."""
    ref = json.loads(FIXTURE.read_text())["models"][name]
    inp = _reference_input(ref["input_size"][0])
    assert hashlib.sha256(inp.astype("<i4").tobytes()).hexdigest() == ref["input_sha256"]
    net = MoveNet.from_graph(read_graph(MOVENET / f"movenet-{name}.json"))
    with torch.no_grad():
        out = net(torch.from_numpy(inp.astype(np.float32)).permute(2, 0, 1)[None])
    centre = torch.sigmoid(out["center_0"][0, 0]).numpy()
    assert abs(centre.max() - ref["centre_heatmap"]["max"]) < 1e-5
    assert list(np.unravel_index(centre.argmax(), centre.shape)) == ref["centre_heatmap"]["argmax_rc"]
    heat = torch.sigmoid(out["kpt_heatmap_0"][0]).numpy()
    kh = ref["keypoint_heatmap"]
    assert np.allclose(heat.reshape(17, -1).max(1), kh["channel_max"], atol=1e-5)
    cells = [list(np.unravel_index(m.argmax(), m.shape)) for m in heat]
    assert cells == [list(c) for c in kh["channel_argmax_rc"]]
    if name != "multipose":
        kps = decode_single(out, net.centre_weight)
        want = np.array(ref["output"], np.float32).reshape(17, 3)
        assert np.abs(kps - want).max() < 1e-4          # 1e-4 of the input: 0.02 px


@needs_movenet
def test_import_tfjs_makes_a_net_that_starts_as_movenet(tmp_path, capsys):
    """`humanpose import-tfjs`: a cpm_mobilenet pose net whose stage 1 is MoveNet's keypoint head
    (its COCO keypoints on the 14 joints) and whose refinement stages start as the identity."""
    from humanpose.cli import main
    from humanpose.store import load_model
    out = tmp_path / "pose.safetensors"
    assert main(["import-tfjs", str(MOVENET / "movenet-lightning.json"), str(out), "--kind", "pose"]) == 0
    assert "cpm_mobilenet pose net" in capsys.readouterr().out
    net = load_model(out, kind="pose")
    mn = MoveNet.from_graph(read_graph(MOVENET / "movenet-lightning.json"))
    inp = _reference_input(192)
    bgr = inp[:, :, ::-1].astype(np.float32) / 256.0 - 0.5
    x = torch.from_numpy(np.concatenate([bgr, np.zeros((192, 192, 1), np.float32)], 2)).permute(2, 0, 1)[None]
    with torch.no_grad():
        stages = net(x)
        heat = torch.sigmoid(mn(torch.from_numpy(inp.astype(np.float32)).permute(2, 0, 1)[None])["kpt_heatmap_0"])
    assert len(stages) == 6 and stages[0].shape == (1, 15, 24, 24)
    assert all(torch.equal(s, stages[0]) for s in stages[1:])
    want = F.avg_pool2d(heat, 2)[0]
    # (humanpose.skeleton's order) r_shoulder is COCO's right shoulder (6), l_ankle its left
    # ankle (15), l_wrist its left wrist (9)
    from humanpose.skeleton import JOINT_INDEX
    for joint, coco in ((JOINT_INDEX["r_shoulder"], 6), (JOINT_INDEX["l_ankle"], 15),
                        (JOINT_INDEX["l_wrist"], 9)):
        assert torch.allclose(stages[-1][0, joint], want[coco], atol=1e-3)
    assert main(["import-tfjs", str(tmp_path / "none.json"), str(out), "--kind", "pose"]) == 2
    assert "not found" in capsys.readouterr().err


def test_tiny_fine_tuning_from_a_synthetic_trunk_lowers_the_loss(tmp_path):
    """import-tfjs on a synthetic MoveNet graph, then a tiny training run with the trunk frozen
    first and at a lower learning rate after: the loss goes down, the frozen steps leave the
    trunk as it was, and the trunk moves less than the stages."""
    from humanpose.cli import main
    from humanpose.store import load_model
    from humanpose.train.trainer import train
    from test_training import _tiny_pose_recipe
    path, _ = write_fake_movenet(tmp_path / "fake.json")
    init = tmp_path / "init.safetensors"
    assert main(["import-tfjs", str(path), str(init), "--kind", "pose", "--stages", "2",
                 "--width", "16"]) == 0
    cfg = _tiny_pose_recipe(tmp_path, arch="cpm_mobilenet", arch_kwargs={}, init=str(init),
                            steps=3, freeze_trunk_steps=3, trunk_lr=0.1, checkpoint_every=3,
                            val_every=3, lr=3e-3)
    train(cfg, progress=False)
    start, frozen = load_model(init), load_model(tmp_path / "run" / "final.safetensors")
    trunk = [k for k in start.state_dict() if k.startswith("trunk.")]
    assert all(torch.equal(start.state_dict()[k], frozen.state_dict()[k]) for k in trunk)
    assert not torch.equal(start.state_dict()["stages.0.out.weight"],
                           frozen.state_dict()["stages.0.out.weight"])
    cfg.steps = 30
    train(cfg, progress=False)
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[1]) for r in rows]
    assert losses[-1] < losses[0]
    end = load_model(tmp_path / "run" / "final.safetensors").state_dict()

    def moved(keys):
        return np.mean([float((end[k] - start.state_dict()[k]).abs().mean()
                              / (start.state_dict()[k].abs().mean() + 1e-8)) for k in keys])
    stages = [k for k in end if k.startswith("stage1.")]
    assert 0 < moved(trunk) < moved(stages)


@needs_movenet
def test_teacher_pck_tool_scores_movenet_on_the_limb_joints(capsys):
    """tools/teacher_pck.py with a MoveNet .json: the rebuilt net zero-shot on LSP crops, the
    COCO keypoints on the 12 limb joints (the zero-shot figure of the model card)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "teacher_pck", Path(__file__).resolve().parents[1] / "tools" / "teacher_pck.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(MOVENET / "movenet-lightning.json"), "--data", str(SHARED / "data" / "lsp"),
                      "--format", "lsp", "--limit", "8"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    limbs = next(v for v in lines if "12 limb joints" in v)
    assert float(limbs.split(":")[-1]) > 60          # MoveNet finds these LSP poses
    assert "head_top=0.0" in lines[0]                # COCO has no head top: scored as missed
