"""The new ops and prelude blocks against hand-written twins with torchvision's (and d2l's, and
the common PyTorch U-Net's) structure and names: the spec's state_dict loads into the twin
with strict=True and both compute the same outputs."""
from __future__ import annotations

import math
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

import netspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from twins_vision import (  # noqa: E402  (tests/ is not a package; the twins live with the zoo's)
    CNBlock, Conv2dNormActivation, D2LDenseBlock, InvertedResidualConfig, InvertedResidualV2, InvertedResidualV3, LayerNorm2d, MBConv,
    MBConvConfig, ShuffleUnit, SqueezeExcitation, StochasticDepth, Up, channel_shuffle, make_divisible,
)


def compiled(layers: list[dict[str, Any]], input_shape: tuple[int, ...]) -> nn.Module:
    text = yaml.safe_dump({"name": "t", "input": list(input_shape), "layers": layers}, sort_keys=False)
    return netspec.compile(netspec.build_graph(netspec.load("t.yaml", text=text)), seed=0)


def same(block: nn.Module, twin: nn.Module, input_shape: tuple[int, ...], prefix: str = "blk.") -> None:
    """The block's parameters and buffers (under `prefix`) load into the twin strictly; equal outputs."""
    state = {k[len(prefix):]: v for k, v in block.state_dict().items() if k.startswith(prefix)}
    twin.load_state_dict(state, strict=True)
    torch.manual_seed(0)
    x = torch.randn(3, *input_shape)
    block.eval(), twin.eval()
    torch.testing.assert_close(block(x), twin(x), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("activation,scale", [("relu", "sigmoid"), ("silu", "hardsigmoid")])
def test_squeeze_excitation_is_torchvisions(activation: str, scale: str) -> None:
    net = compiled([{"op": "squeeze_excitation", "name": "blk", "squeeze": 3, "activation": activation, "scale_activation": scale}], (8, 5, 5))
    twin = SqueezeExcitation(8, 3, nn.ReLU if activation == "relu" else nn.SiLU, nn.Sigmoid if scale == "sigmoid" else nn.Hardsigmoid)
    same(net, twin, (8, 5, 5))


@pytest.mark.parametrize("inp,oup,stride,ratio", [(8, 8, 1, 1), (8, 8, 1, 6), (8, 12, 2, 6), (6, 6, 1, 4)])
def test_inverted_residual_v2_is_mobilenet_v2s(inp: int, oup: int, stride: int, ratio: int) -> None:
    call = {"op": "inverted_residual", "name": "blk", "out": oup, "expanded": int(round(inp * ratio)), "stride": stride}
    same(compiled([call], (inp, 8, 8)), InvertedResidualV2(inp, oup, stride, ratio), (inp, 8, 8))


class InvertedResidualV2SE(nn.Module):
    """torchvision's MobileNetV2 InvertedResidual with a SqueezeExcitation after the depthwise conv
    (as MnasNet and MobileNetV3 place it): conv.0 expansion, conv.1 depthwise, conv.2 SE, conv.3-4 projection."""

    def __init__(self, inp: int, oup: int, stride: int, hidden: int, squeeze: int, activation: type[nn.Module]) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if hidden != inp:
            layers.append(Conv2dNormActivation(inp, hidden, kernel_size=1, activation_layer=nn.ReLU6))
        layers += [
            Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden, activation_layer=nn.ReLU6),
            SqueezeExcitation(hidden, squeeze, activation, nn.Sigmoid),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


@pytest.mark.parametrize("inp,oup,stride,hidden,squeeze,act", [(8, 8, 1, 48, 12, "relu"), (8, 12, 2, 8, 2, "silu")])
def test_inverted_residual_v2_takes_squeeze_excitation(inp, oup, stride, hidden, squeeze, act) -> None:
    """`se` in form v2 is not ignored: the SE sits after the depthwise conv, at conv's next position."""
    call = {"op": "inverted_residual", "name": "blk", "out": oup, "expanded": hidden, "stride": stride, "se": squeeze,
            "se_activation": act}
    net = compiled([call], (inp, 8, 8))
    se = "blk.conv.2" if hidden != inp else "blk.conv.1"
    assert f"{se}.fc1.weight" in net.state_dict()
    twin = InvertedResidualV2SE(inp, oup, stride, hidden, squeeze, nn.ReLU if act == "relu" else nn.SiLU)
    same(net, twin, (inp, 8, 8))


@pytest.mark.parametrize("cin,kernel,expanded,cout,use_se,act,stride", [
    (16, 3, 16, 16, True, "relu", 2), (16, 3, 64, 16, False, "relu", 1), (16, 5, 72, 24, True, "hardswish", 1),
    (24, 5, 96, 24, True, "hardswish", 1),
])
def test_inverted_residual_v3_is_mobilenet_v3s(cin, kernel, expanded, cout, use_se, act, stride) -> None:
    call = {"op": "inverted_residual", "name": "blk", "form": "v3", "out": cout, "expanded": expanded, "kernel": kernel,
            "stride": stride, "se": make_divisible(expanded // 4, 8) if use_se else 0, "activation": act,
            "se_scale": "hardsigmoid", "eps": 0.001, "momentum": 0.01}
    config = InvertedResidualConfig(cin, kernel, expanded, cout, use_se, "RE" if act == "relu" else "HS", stride, 1, 1.0)
    twin = InvertedResidualV3(config, partial(nn.BatchNorm2d, eps=0.001, momentum=0.01))
    same(compiled([call], (cin, 8, 8)), twin, (cin, 8, 8))


@pytest.mark.parametrize("cin,cout,ratio,kernel,stride,p", [(8, 8, 1, 3, 1, 0.0), (8, 16, 6, 5, 2, 0.1), (16, 16, 6, 3, 1, 0.2)])
def test_inverted_residual_v3_is_efficientnets_mbconv(cin, cout, ratio, kernel, stride, p) -> None:
    call = {"op": "inverted_residual", "name": "blk", "form": "v3", "out": cout, "expanded": make_divisible(cin * ratio, 8),
            "kernel": kernel, "stride": stride, "se": max(1, cin // 4), "activation": "silu", "se_activation": "silu",
            "drop_path": p}
    net = compiled([call], (cin, 8, 8))
    same(net, MBConv(MBConvConfig(ratio, kernel, stride, cin, cout, 1), p, nn.BatchNorm2d), (cin, 8, 8))
    assert (p > 0 and stride == 1 and cin == cout) == any(".stochastic_depth" in n for n, _ in net.named_modules())


def test_convnext_block_is_torchvisions_cnblock_with_its_layer_scale_name() -> None:
    net = compiled([{"op": "convnext_block", "name": "blk", "layer_scale": 0.5}], (8, 6, 6))
    assert "blk.layer_scale" in net.state_dict() and net.state_dict()["blk.layer_scale"].shape == (8, 1, 1)
    assert torch.equal(net.state_dict()["blk.layer_scale"], torch.full((8, 1, 1), 0.5))
    same(net, CNBlock(8, 0.5, 0.0), (8, 6, 6))


def test_layer_norm2d_is_torchvisions() -> None:
    net = compiled([{"op": "conv2d", "out": 6, "kernel": 1, "name": "c"}, {"op": "layer_norm2d", "name": "blk", "eps": 1e-6}], (3, 4, 5))
    with torch.no_grad():
        net.blk.weight.uniform_(), net.blk.bias.uniform_()
    twin = nn.Sequential(nn.Conv2d(3, 6, 1), LayerNorm2d(6, eps=1e-6))
    twin.load_state_dict({k.replace("c.", "0.").replace("blk.", "1."): v for k, v in net.state_dict().items()}, strict=True)
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(net(x), twin(x))


@pytest.mark.parametrize("inp,oup,stride", [(8, 8, 1), (4, 8, 2), (8, 16, 2)])
def test_shufflenet_unit_is_torchvisions(inp: int, oup: int, stride: int) -> None:
    same(compiled([{"op": "shufflenet_unit", "name": "blk", "out": oup, "stride": stride}], (inp, 6, 6)), ShuffleUnit(inp, oup, stride), (inp, 6, 6))


def test_dense_block_is_d2ls() -> None:
    same(compiled([{"op": "dense_block", "name": "blk", "convs": 3, "growth": 4}], (3, 6, 6)), D2LDenseBlock(3, 3, 4), (3, 6, 6))


def test_unet_up_takes_below_and_skip() -> None:
    layers = [{"op": "conv2d", "name": "skip", "out": 4, "kernel": 3, "padding": 1},
              {"op": "conv2d", "name": "below", "out": 8, "kernel": 2, "stride": 2},
              {"op": "unet_up", "name": "blk", "from": ["below", "skip"], "out": 4}]
    net = compiled(layers, (3, 8, 8)).eval()
    twin = Up(8, 4)
    twin.load_state_dict({k[4:]: v for k, v in net.state_dict().items() if k.startswith("blk.")}, strict=True)
    twin.eval()
    x = torch.randn(2, 3, 8, 8)
    skip = net.skip(x)
    torch.testing.assert_close(net(x), twin(net.below(skip), skip))


def test_chunk_split_and_shuffle_are_torchs() -> None:
    x = torch.randn(2, 7, 3, 3)
    for chunks in (2, 3, 4):
        for index, piece in enumerate(x.chunk(chunks, dim=1)):
            net = compiled([{"op": "chunk", "chunks": chunks, "index": index}], (7, 3, 3))
            assert torch.equal(net(x), piece)
    for index, piece in enumerate(x.split([2, 4, 1], dim=1)):
        assert torch.equal(compiled([{"op": "split", "sizes": [2, 4, 1], "index": index}], (7, 3, 3))(x), piece)
    y = torch.randn(2, 6, 2, 2)
    assert torch.equal(compiled([{"op": "channel_shuffle", "groups": 3}], (6, 2, 2))(y), channel_shuffle(y, 3))


def test_stochastic_depth_has_torchvisions_semantics() -> None:
    """Identity in eval; in training each row (or the whole batch) is zeroed with probability p
    and the rest divided by 1 - p, as torchvision's (whose noise comes from another generator)."""
    p = 0.3
    for mode in ("row", "batch"):
        x = torch.rand(4000 if mode == "row" else 8, 2, 1, 1) + 1
        net = compiled([{"op": "stochastic_depth", "p": p, "mode": mode}], (2, 1, 1))
        twin = StochasticDepth(p, mode)
        assert torch.equal(net.eval()(x), x) and torch.equal(twin.eval()(x), x)
        twin.train()
        net.train()
        torch.manual_seed(0)
        ours = [net(x) for _ in range(1 if mode == "row" else 400)]
        theirs = [twin(x) for _ in range(len(ours))]
        for outs in (ours, theirs):
            kept = torch.cat([(o != 0).all(dim=1).flatten() for o in outs]).float()
            for o in outs:
                dropped = (o == 0).all(dim=1).flatten()
                assert torch.allclose(o[~dropped], x[~dropped] / (1 - p))
                if mode == "batch":
                    assert dropped.all() or not dropped.any()
            assert abs(1 - kept.mean().item() - p) < 0.05  # 4000 rows or 400 batches: within ~2 standard deviations (seeded)


@pytest.mark.parametrize("h,k,s,p,op,d", [(5, 3, 2, 1, 1, 1), (4, 2, 2, 0, 0, 1), (3, 3, 1, 0, 0, 2), (7, 4, 3, 2, 2, 1)])
def test_conv_transpose_shapes_are_torchs(h, k, s, p, op, d) -> None:
    layer = {"op": "conv_transpose2d", "out": 2, "kernel": k, "stride": s, "padding": p, "output_padding": op, "dilation": d}
    graph = netspec.build_graph(netspec.load("t.yaml", text=yaml.safe_dump({"name": "t", "input": [3, h, h], "layers": [layer]})))
    real = nn.ConvTranspose2d(3, 2, k, s, p, op, dilation=d)(torch.zeros(1, 3, h, h)).shape[1:]
    assert graph.output_shape == tuple(real)


def test_conv_transpose_errors_show_the_formula() -> None:
    layer = {"op": "conv_transpose2d", "out": 2, "kernel": 1, "padding": 2}
    text = yaml.safe_dump({"name": "t", "input": [3, 2, 2], "layers": [layer]})
    with pytest.raises(netspec.SpecError, match=r"input 3×2×2 gives height \(2-1\)·1 - 2·2 \+ 1·\(1-1\) \+ 0 \+ 1 = -2"):
        netspec.build_graph(netspec.load("t.yaml", text=text))
    layer = {"op": "conv_transpose2d", "out": 2, "kernel": 3, "stride": 2, "output_padding": 2}
    with pytest.raises(netspec.SpecError, match="output_padding 2 must be smaller than stride 2 or dilation 1"):
        netspec.build_graph(netspec.load("t.yaml", text=yaml.safe_dump({"name": "t", "input": [3, 4, 4], "layers": [layer]})))


@pytest.mark.parametrize("size,scale", [(5, 1.5), (7, 0.5), (4, 3), (9, 1 / 3)])
def test_upsample_sizes_are_torchs(size: int, scale: float) -> None:
    for mode in ("nearest", "bilinear"):
        layer = {"op": "upsample", "scale": scale, "mode": mode}
        graph = netspec.build_graph(netspec.load("t.yaml", text=yaml.safe_dump({"name": "t", "input": [2, size, size], "layers": [layer]})))
        assert graph.output_shape == tuple(nn.Upsample(scale_factor=scale, mode=mode)(torch.zeros(1, 2, size, size)).shape[1:])


def test_mul_broadcast_errors_name_the_dimension() -> None:
    layers = [{"op": "conv2d", "name": "a", "out": 3, "kernel": 1}, {"op": "mul", "from": ["a", "input"]}]
    with pytest.raises(netspec.SpecError, match=r"mul needs shapes that broadcast .*got 3×4×4 · 2×4×4: dimension 1 is 3 vs 2"):
        netspec.build_graph(netspec.load("t.yaml", text=yaml.safe_dump({"name": "t", "input": [2, 4, 4], "layers": layers})))


def test_chunk_error_explains_torchs_pieces() -> None:
    text = yaml.safe_dump({"name": "t", "input": [5, 2, 2], "layers": [{"op": "chunk", "chunks": 4, "index": 3}]})
    with pytest.raises(netspec.SpecError, match=r"chunk of 5 channels into 4 gives 3 piece\(s\) of ceil\(5/4\) = 2 \(2, 2, 1\)"):
        netspec.build_graph(netspec.load("t.yaml", text=text))
    assert len(torch.zeros(1, 5).chunk(4, dim=1)) == 3
    assert math.ceil(5 / 4) == 2
