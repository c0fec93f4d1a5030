"""Generated parameters for the new ops with shape formulas: netspec refuses exactly what torch
refuses, and otherwise infers the shape torch's forward produces (hypothesis)."""
from __future__ import annotations

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import netspec
from netspec.errors import SpecError

SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])


def inferred(layer: dict, shape: list[int]) -> tuple[int, ...] | None:
    text = yaml.safe_dump({"name": "t", "input": shape, "layers": [layer]})
    try:
        return netspec.build_graph(netspec.load("t.yaml", text=text)).output_shape
    except SpecError:
        return None


def real(module: nn.Module, shape: list[int]) -> tuple[int, ...] | None:
    try:
        out = module(torch.zeros(1, *shape))
    except (RuntimeError, ValueError):
        return None
    return tuple(out.shape[1:]) if out.numel() else None


@settings(max_examples=120, **SETTINGS)
@given(h=st.integers(1, 9), k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 3), op=st.integers(0, 2),
       d=st.integers(1, 3), groups=st.sampled_from([1, 2]))
def test_conv_transpose2d_shapes_and_refusals_are_torchs(h, k, s, p, op, d, groups) -> None:
    layer = {"op": "conv_transpose2d", "out": 4, "kernel": k, "stride": s, "padding": p, "output_padding": op,
             "dilation": d, "groups": groups}
    try:
        module = nn.ConvTranspose2d(4, 4, k, s, p, op, groups=groups, dilation=d)
    except ValueError:
        module = None
    expected = real(module, [4, h, h + 1]) if module is not None else None
    assert inferred(layer, [4, h, h + 1]) == expected


@settings(max_examples=100, **SETTINGS)
@given(c=st.integers(1, 12), chunks=st.integers(1, 6), index=st.integers(0, 6))
def test_chunk_shapes_and_refusals_are_torchs(c, chunks, index) -> None:
    pieces = torch.zeros(1, c, 2, 2).chunk(chunks, dim=1)
    expected = tuple(pieces[index].shape[1:]) if index < len(pieces) else None
    assert inferred({"op": "chunk", "chunks": chunks, "index": index}, [c, 2, 2]) == expected


@settings(max_examples=80, **SETTINGS)
@given(h=st.integers(1, 9), w=st.integers(1, 9), scale=st.sampled_from([0.25, 0.5, 1.5, 2, 3, 0.3]),
       mode=st.sampled_from(["nearest", "bilinear"]))
def test_upsample_shapes_and_refusals_are_torchs(h, w, scale, mode) -> None:
    assert inferred({"op": "upsample", "scale": scale, "mode": mode}, [2, h, w]) == real(nn.Upsample(scale_factor=scale, mode=mode), [2, h, w])


@settings(max_examples=60, **SETTINGS)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).filter(lambda s: len(s) != 2), data=st.data())
def test_permute_shapes_are_torchs(shape, data) -> None:
    dims = data.draw(st.permutations(range(len(shape))))
    expected = tuple(torch.zeros(1, *shape).permute(0, *(d + 1 for d in dims)).shape[1:])
    assert inferred({"op": "permute", "dims": list(dims)}, shape) == expected


@pytest.mark.parametrize("a,b", [([4, 1, 1], [4, 3, 3]), ([1, 3, 1], [4, 1, 2]), ([4, 3, 3], [2, 3, 3]), ([5], [1])])
def test_mul_broadcasting_is_torchs(a, b) -> None:
    layers = [{"op": "conv2d" if len(a) == 3 else "linear", "name": "x", "out": a[0], **({"kernel": 1} if len(a) == 3 else {})},
              {"op": "adaptive_avgpool", "name": "xa", "size": a[1:]} if len(a) == 3 else {"op": "identity", "name": "xa"},
              {"op": "conv2d" if len(b) == 3 else "linear", "name": "y", "from": "input", "out": b[0], **({"kernel": 1} if len(b) == 3 else {})},
              {"op": "adaptive_avgpool", "name": "ya", "size": b[1:]} if len(b) == 3 else {"op": "identity", "name": "ya"},
              {"op": "mul", "from": ["xa", "ya"]}]
    text = yaml.safe_dump({"name": "t", "input": [3, 4, 4] if len(a) == 3 else [3], "layers": layers})
    try:
        expected = tuple((torch.zeros(1, *a) * torch.zeros(1, *b)).shape[1:])
    except RuntimeError:
        expected = None
    try:
        got = netspec.build_graph(netspec.load("t.yaml", text=text)).output_shape
    except SpecError:
        got = None
    assert got == expected
