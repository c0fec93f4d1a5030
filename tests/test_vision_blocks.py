"""The new ops and prelude blocks against hand-written twins with torchvision's (and d2l's, and
the common PyTorch U-Net's) structure and names: the spec's state_dict loads into the twin
with strict=True and both compute the same outputs."""
from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import yaml
from torch import nn

import netspec


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


# ---------------------------------------------------------------- torchvision's modules, hand-written
def make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class Conv2dNormActivation(nn.Sequential):
    def __init__(self, cin, cout, kernel=3, stride=1, groups=1, act=nn.ReLU, eps=1e-5, momentum=0.1):
        layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout, eps=eps, momentum=momentum)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, cin, squeeze, activation=nn.ReLU, scale_activation=nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(cin, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, cin, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class InvertedResidualV2(nn.Module):
    """torchvision.models.mobilenetv2.InvertedResidual."""

    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden, 1, act=nn.ReLU6))
        layers += [Conv2dNormActivation(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class InvertedResidualV3(nn.Module):
    """torchvision.models.mobilenetv3.InvertedResidual (no dilation)."""

    def __init__(self, cin, kernel, expanded, cout, use_se, act, stride):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        kw = {"eps": 0.001, "momentum": 0.01}
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(Conv2dNormActivation(cin, expanded, 1, act=act, **kw))
        layers.append(Conv2dNormActivation(expanded, expanded, kernel, stride, groups=expanded, act=act, **kw))
        if use_se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4, 8), scale_activation=nn.Hardsigmoid))
        layers.append(Conv2dNormActivation(expanded, cout, 1, act=None, **kw))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        result = self.block(x)
        return result + x if self.use_res_connect else result


def stochastic_depth(x: torch.Tensor, p: float, mode: str, training: bool = True) -> torch.Tensor:
    """torchvision.ops.stochastic_depth."""
    if not training or p == 0.0:
        return x
    survival_rate = 1.0 - p
    size = [x.shape[0]] + [1] * (x.ndim - 1) if mode == "row" else [1] * x.ndim
    noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival_rate)
    if survival_rate > 0.0:
        noise.div_(survival_rate)
    return x * noise


class MBConv(nn.Module):
    """torchvision.models.efficientnet.MBConv (eval: stochastic depth is the identity)."""

    def __init__(self, cin, cout, expand_ratio, kernel, stride, p):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        expanded = make_divisible(cin * expand_ratio, 8)
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(Conv2dNormActivation(cin, expanded, 1, act=nn.SiLU))
        layers.append(Conv2dNormActivation(expanded, expanded, kernel, stride, groups=expanded, act=nn.SiLU))
        layers.append(SqueezeExcitation(expanded, max(1, cin // 4), activation=nn.SiLU))
        layers.append(Conv2dNormActivation(expanded, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.p = p

    def forward(self, x):
        result = self.block(x)
        if self.use_res_connect:
            result = stochastic_depth(result, self.p, "row", self.training) + x
        return result


class LayerNorm2d(nn.LayerNorm):
    """torchvision.models.convnext.LayerNorm2d."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return torch.permute(x, self.dims)


class CNBlock(nn.Module):
    """torchvision.models.convnext.CNBlock (eval)."""

    def __init__(self, dim, layer_scale):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True), Permute([0, 2, 3, 1]),
            nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), Permute([0, 3, 1, 2]),
        )
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * layer_scale)

    def forward(self, x):
        return self.layer_scale * self.block(x) + x


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """torchvision.models.shufflenetv2.channel_shuffle."""
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, w)


class ShuffleUnit(nn.Module):
    """torchvision.models.shufflenetv2.InvertedResidual."""

    def __init__(self, inp, oup, stride):
        super().__init__()
        self.stride = stride
        bf = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(inp, inp, 3, stride, 1, bias=False, groups=inp), nn.BatchNorm2d(inp),
                nn.Conv2d(inp, bf, 1, 1, 0, bias=False), nn.BatchNorm2d(bf), nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else bf, bf, 1, 1, 0, bias=False), nn.BatchNorm2d(bf), nn.ReLU(inplace=True),
            nn.Conv2d(bf, bf, 3, stride, 1, bias=False, groups=bf), nn.BatchNorm2d(bf),
            nn.Conv2d(bf, bf, 1, 1, 0, bias=False), nn.BatchNorm2d(bf), nn.ReLU(inplace=True),
        )

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


def d2l_conv_block(cin, channels):
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, channels, kernel_size=3, padding=1))


class DenseBlock(nn.Module):
    """d2l's DenseBlock (written with explicit input channels instead of Lazy modules)."""

    def __init__(self, num_convs, cin, channels):
        super().__init__()
        self.net = nn.Sequential(*[d2l_conv_block(cin + i * channels, channels) for i in range(num_convs)])

    def forward(self, x):
        for blk in self.net:
            x = torch.cat((x, blk(x)), dim=1)
        return x


class DoubleConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.double_conv(x)


class Up(nn.Module):
    """The common PyTorch U-Net's Up (transposed conv, inputs of matching sizes)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x1, x2):
        return self.conv(torch.cat([x2, self.up(x1)], dim=1))


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


@pytest.mark.parametrize("cin,kernel,expanded,cout,use_se,act,stride", [
    (16, 3, 16, 16, True, "relu", 2), (16, 3, 64, 16, False, "relu", 1), (16, 5, 72, 24, True, "hardswish", 1),
    (24, 5, 96, 24, True, "hardswish", 1),
])
def test_inverted_residual_v3_is_mobilenet_v3s(cin, kernel, expanded, cout, use_se, act, stride) -> None:
    call = {"op": "inverted_residual", "name": "blk", "form": "v3", "out": cout, "expanded": expanded, "kernel": kernel,
            "stride": stride, "se": make_divisible(expanded // 4, 8) if use_se else 0, "activation": act,
            "se_scale": "hardsigmoid", "eps": 0.001, "momentum": 0.01}
    twin = InvertedResidualV3(cin, kernel, expanded, cout, use_se, nn.ReLU if act == "relu" else nn.Hardswish, stride)
    same(compiled([call], (cin, 8, 8)), twin, (cin, 8, 8))


@pytest.mark.parametrize("cin,cout,ratio,kernel,stride,p", [(8, 8, 1, 3, 1, 0.0), (8, 16, 6, 5, 2, 0.1), (16, 16, 6, 3, 1, 0.2)])
def test_inverted_residual_v3_is_efficientnets_mbconv(cin, cout, ratio, kernel, stride, p) -> None:
    call = {"op": "inverted_residual", "name": "blk", "form": "v3", "out": cout, "expanded": make_divisible(cin * ratio, 8),
            "kernel": kernel, "stride": stride, "se": max(1, cin // 4), "activation": "silu", "se_activation": "silu",
            "drop_path": p}
    net = compiled([call], (cin, 8, 8))
    same(net, MBConv(cin, cout, ratio, kernel, stride, p), (cin, 8, 8))
    assert (p > 0 and stride == 1 and cin == cout) == any(".stochastic_depth" in n for n, _ in net.named_modules())


def test_convnext_block_is_torchvisions_cnblock_with_its_layer_scale_name() -> None:
    net = compiled([{"op": "convnext_block", "name": "blk", "layer_scale": 0.5}], (8, 6, 6))
    assert "blk.layer_scale" in net.state_dict() and net.state_dict()["blk.layer_scale"].shape == (8, 1, 1)
    assert torch.equal(net.state_dict()["blk.layer_scale"], torch.full((8, 1, 1), 0.5))
    same(net, CNBlock(8, 0.5), (8, 6, 6))


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
    same(compiled([{"op": "dense_block", "name": "blk", "convs": 3, "growth": 4}], (3, 6, 6)), DenseBlock(3, 3, 4), (3, 6, 6))


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
        assert torch.equal(net.eval()(x), x) and torch.equal(stochastic_depth(x, p, mode, training=False), x)
        net.train()
        torch.manual_seed(0)
        ours = [net(x) for _ in range(1 if mode == "row" else 400)]
        theirs = [stochastic_depth(x, p, mode) for _ in range(len(ours))]
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
