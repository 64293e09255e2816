"""The original CPM nets (cpm_vgg): Caffe layer names and shapes, stage wiring, Caffe pooling sizes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from humanpose.nets import build_model
from humanpose.nets.cpm_vgg import (
    CPMVGG, build_cpm_vgg, caffe_map_sizes, caffe_param_names, caffe_pool_size, layer_specs)

torch.set_num_threads(1)

# Convolution layers of the release prototxts, written out by hand from
# model/_trained_person_MPI/pose_deploy_copy_4sg_resize.prototxt and
# model/_trained_MPI/pose_deploy_resize.prototxt: name -> (num_output, input channels, kernel).
_VGG = {"conv1_1": (64, 3, 3), "conv1_2": (64, 64, 3), "conv2_1": (128, 64, 3),
        "conv2_2": (128, 128, 3), "conv3_1": (256, 128, 3), "conv3_2": (256, 256, 3),
        "conv3_3": (256, 256, 3), "conv3_4": (256, 256, 3), "conv4_1": (512, 256, 3),
        "conv4_2": (512, 512, 3)}


def _stages(first: int, last: int, cin: int, maps: int) -> dict:
    out = {}
    for t in range(first, last + 1):
        out[f"Mconv1_stage{t}"] = (128, cin, 7)
        for i in range(2, 6):
            out[f"Mconv{i}_stage{t}"] = (128, 128, 7)
        out[f"Mconv6_stage{t}"] = (128, 128, 1)
        out[f"Mconv7_stage{t}"] = (maps, 128, 1)
    return out


PERSON_LAYERS = {**_VGG, "conv4_3": (512, 512, 3), "conv4_4": (512, 512, 3),
                 "conv5_1": (512, 512, 3), "conv5_2_CPM": (128, 512, 3),
                 "conv6_1_CPM": (512, 128, 1), "conv6_2_CPM": (1, 512, 1),
                 **_stages(2, 4, 1 + 128, 1)}
POSE_LAYERS = {**_VGG, "conv4_3_CPM": (256, 512, 3), "conv4_4_CPM": (256, 256, 3),
               "conv4_5_CPM": (256, 256, 3), "conv4_6_CPM": (256, 256, 3),
               "conv4_7_CPM": (128, 256, 3), "conv5_1_CPM": (512, 128, 1),
               "conv5_2_CPM": (15, 512, 1), **_stages(2, 6, 15 + 128 + 1, 15)}


@pytest.fixture(scope="module")
def full_nets():
    return {k: build_model("cpm_vgg", k).eval() for k in ("person", "pose")}


@pytest.mark.parametrize("kind,expected", [("person", PERSON_LAYERS), ("pose", POSE_LAYERS)])
def test_parameters_are_the_caffe_layers(full_nets, kind, expected):
    model = full_nets[kind]
    state = model.state_dict()
    assert set(state) == {f"{n}.{p}" for n in expected for p in ("weight", "bias")}
    for name, (cout, cin, k) in expected.items():
        assert tuple(state[f"{name}.weight"].shape) == (cout, cin, k, k), name
        assert tuple(state[f"{name}.bias"].shape) == (cout,), name
        # 7x7 convs pad 3, 3x3 pad 1, 1x1 pad 0: "same" convolutions as in the prototxts
        assert getattr(model, name).padding == ((k - 1) // 2,) * 2
    mapping = caffe_param_names(model)
    assert list(mapping) == list(expected)          # prototxt order
    assert mapping["Mconv1_stage2"] == ("Mconv1_stage2.weight", "Mconv1_stage2.bias")
    assert model.kind == kind
    assert model.in_channels == (3 if kind == "person" else 4)
    assert model.num_maps == (1 if kind == "person" else 15)
    assert model.num_stages == (4 if kind == "person" else 6)


@pytest.mark.parametrize("kind", ["person", "pose"])
@pytest.mark.parametrize("h,w", [(64, 64), (72, 136)])
def test_full_net_output_shapes(full_nets, kind, h, w):
    model = full_nets[kind]
    x = torch.rand(1, model.in_channels, h, w) - 0.5
    with torch.no_grad():
        out = model(x)
    assert len(out) == model.num_stages
    for maps in out:
        assert maps.shape == (1, model.num_maps, h // 8, w // 8)
        assert torch.isfinite(maps).all()


def test_pool_size_formula_for_every_boxsize():
    # Caffe: out = ceil((in + 2 pad - k) / stride) + 1
    assert caffe_pool_size(368, 9, 8) == 46
    assert caffe_pool_size(7, 2, 2) == 4                     # ceil mode
    assert caffe_pool_size(5, 3, 2, pad=1) == 3
    for size in range(64, 641, 8):
        sizes = caffe_map_sizes(size, "pose")
        assert sizes == {"features": size // 8, "center": size // 8}, size
        # torch's pooling as used by the net gives exactly Caffe's sizes
        z = torch.zeros(1, 1, size, 704 - size)
        f = z
        for _ in range(3):
            f = CPMVGG.front_pool(f)
        c = CPMVGG.center_pool(z)
        assert f.shape[-2:] == c.shape[-2:] == (size // 8, (704 - size) // 8), size
        assert c.shape[-1] == caffe_pool_size(704 - size, 9, 8)


def _caffe_ave_pool(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """Caffe's AVE pooling, pad 0: ceil-mode output, divisor = window clipped to the input."""
    h, w = x.shape
    oh, ow = math.ceil((h - k) / s) + 1, math.ceil((w - k) / s) + 1
    out = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * s, j * s
            he, we = min(hs + k, h), min(ws + k, w)
            out[i, j] = x[hs:he, ws:we].sum() / ((he - hs) * (we - ws))
    return out


def test_center_pool_matches_caffe_average():
    rng = np.random.default_rng(1)
    x = rng.random((72, 48))
    got = CPMVGG.center_pool(torch.from_numpy(x)[None, None]).numpy()[0, 0]
    np.testing.assert_allclose(got, _caffe_ave_pool(x, 9, 8), rtol=1e-12)
    # the last window holds 8 of its 9 rows / columns and is averaged over those only
    assert got[-1, -1] == pytest.approx(x[64:, 40:].mean())


def test_width_scales_hidden_channels_only():
    model = build_cpm_vgg("pose", width=1 / 32)
    state = model.state_dict()
    assert state["conv1_1.weight"].shape == (2, 3, 3, 3)
    assert state["conv4_7_CPM.weight"].shape == (4, 8, 3, 3)
    assert state["Mconv1_stage2.weight"].shape == (4, 15 + 4 + 1, 7, 7)
    assert state["Mconv7_stage6.weight"].shape == (15, 4, 1, 1)
    out = model(torch.zeros(2, 4, 64, 80))
    assert len(out) == 6 and out[-1].shape == (2, 15, 8, 10)


def test_stage_beliefs_feed_the_next_stage():
    # zero every stage head but the first; stage 2's output then depends on stage 1's beliefs only
    # through the concat: changing conv6_2_CPM's bias must change stage 2's output
    torch.manual_seed(0)
    model = build_cpm_vgg("person", width=1 / 16).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, 0, 0.3)
    x = torch.rand(1, 3, 32, 32) - 0.5
    with torch.no_grad():
        a = model(x)
        model.conv6_2_CPM.bias += 1.0
        b = model(x)
    assert torch.allclose(a[0] + 1.0, b[0])
    assert not torch.allclose(a[1], b[1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        build_cpm_vgg("face")
    with pytest.raises(ValueError, match="width"):
        layer_specs("pose", width=0)
    model = build_cpm_vgg("pose", width=1 / 32)
    with pytest.raises(ValueError, match="4 input channels"):
        model(torch.zeros(1, 3, 64, 64))
