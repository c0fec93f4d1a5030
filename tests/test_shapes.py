"""Static shape inference against real PyTorch, and the errors it gives when shapes don't fit.

The truth is torch itself: for a grid of conv and pooling settings, netspec must accept a
layer exactly when torch can run it, and then predict the shape torch produces. Errors must
name the layer, its YAML position, the input shape and the numbers of the formula.
"""
from __future__ import annotations

import itertools
import textwrap
from typing import Any

import pytest
import torch
from torch import nn

import netspec
from netspec.errors import Location, SpecError

F = "x.yaml"
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")  # torch's note on even kernels


def where(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """1-based (line, col) of the nth occurrence of `needle` in `text`."""
    index = -1
    for _ in range(nth):
        index = text.index(needle, index + 1)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def at(text: str, needle: str, nth: int = 1) -> Location:
    return Location(F, *where(text, needle, nth))


def spec(layers: str, input_shape: Any = (4, 8, 8), blocks: str = "") -> str:
    head = f"name: t\ninput: {list(input_shape)}\n"
    if blocks:
        head += "blocks:\n" + textwrap.indent(textwrap.dedent(blocks), "  ")
    return head + "layers:\n" + textwrap.indent(textwrap.dedent(layers), "  ")


def build(text: str):
    return netspec.build_graph(netspec.load(F, text=text))


def one_error(text: str) -> tuple[Location | None, str]:
    with pytest.raises(SpecError) as info:
        build(text)
    assert len(info.value.diagnostics) == 1, str(info.value)
    d = info.value.diagnostics[0]
    return d.location, d.message


def torch_shape(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The output shape (without batch) torch gives, or None when torch refuses."""
    try:
        with torch.no_grad():
            return tuple(module.eval()(torch.zeros(2, *shape)).shape[1:])
    except (RuntimeError, ValueError):
        return None


def netspec_shape(layer: str, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    try:
        return build(spec(f"- {layer}\n", shape)).output_shape
    except SpecError:
        return None


def yaml_pair(a: int, b: int) -> str:
    return f"[{a}, {b}]"


# --------------------------------------------------------------------------- the window formula

def _pool_cases() -> list[tuple]:
    grid = itertools.product((1, 2, 3, 5, 6), (1, 2, 3), (1, 2, 3), (0, 1), (False, True))
    cases = [(i % 2, case) for i, case in enumerate(grid)]
    return cases + [(0, (6, 2, 2, 2, False)), (1, (6, 3, 1, 2, True)), (0, (4, 1, 1, 1, False))]  # padding > kernel/2


@pytest.mark.parametrize("kind,h_case", _pool_cases())
def test_pooling_shapes_match_torch(kind: int, h_case: tuple) -> None:
    (n, k, s, p, ceil) = h_case
    op, cls = (("maxpool", nn.MaxPool2d), ("avgpool", nn.AvgPool2d))[kind]
    layer = f"{{op: {op}, kernel: [{k}, 2], stride: [{s}, 1], padding: [{p}, 1], ceil_mode: {str(ceil).lower()}}}"
    try:
        module = cls((k, 2), stride=(s, 1), padding=(p, 1), ceil_mode=ceil)
    except (RuntimeError, ValueError):
        module = None
    expected = torch_shape(module, (3, n, 7)) if module is not None else None
    assert netspec_shape(layer, (3, n, 7)) == expected


def _conv_cases() -> list[tuple]:
    grid = list(itertools.product((1, 2, 3, 5, 7), (1, 2, 3, 5), (1, 3), (0, 1, 2), (1, 2)))
    return [(grid[i], grid[-1 - i]) for i in range(len(grid) // 2 + 1)]


@pytest.mark.parametrize("h_case,w_case", _conv_cases())
def test_conv_shapes_match_torch(h_case: tuple, w_case: tuple) -> None:
    (nh, kh, sh, ph, dh), (nw, kw, sw, pw, dw) = h_case, w_case
    layer = (
        f"{{op: conv2d, out: 5, kernel: {yaml_pair(kh, kw)}, stride: {yaml_pair(sh, sw)}, "
        f"padding: {yaml_pair(ph, pw)}, dilation: {yaml_pair(dh, dw)}}}"
    )
    module = nn.Conv2d(3, 5, (kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw))
    assert netspec_shape(layer, (3, nh, nw)) == torch_shape(module, (3, nh, nw))


@pytest.mark.parametrize("n", [1, 4, 7])
@pytest.mark.parametrize("k,d", [(1, 1), (2, 1), (3, 1), (4, 2), (5, 1), (6, 3)])
def test_padding_same_keeps_the_size_like_torch(n: int, k: int, d: int) -> None:
    module = nn.Conv2d(2, 3, k, padding="same", dilation=d)
    assert netspec_shape(f"{{op: conv2d, out: 3, kernel: {k}, dilation: {d}, padding: same}}", (2, n, n + 1)) == torch_shape(module, (2, n, n + 1))


def test_padding_valid_is_no_padding() -> None:
    assert netspec_shape("{op: conv2d, out: 3, kernel: 3, padding: valid}", (2, 6, 7)) == (3, 4, 5)


def test_padding_same_with_stride_is_refused_like_torch() -> None:
    with pytest.raises(ValueError):
        nn.Conv2d(2, 3, 3, padding="same", stride=2)
    text = spec("- {op: conv2d, out: 3, kernel: 3, padding: same, stride: 2}\n")
    loc, message = one_error(text)
    assert loc == at(text, "{op: conv2d")
    assert "padding 'same' needs stride 1" in message


@pytest.mark.parametrize("c_in,out,groups", [(4, 8, 2), (4, 8, 4), (6, 3, 3), (4, 6, 4), (6, 4, 4), (4, 8, 3)])
def test_groups_match_torch(c_in: int, out: int, groups: int) -> None:
    try:
        module = nn.Conv2d(c_in, out, 3, groups=groups)
    except ValueError:
        module = None
    expected = torch_shape(module, (c_in, 5, 5)) if module is not None else None
    got = netspec_shape(f"{{op: conv2d, out: {out}, kernel: 3, groups: {groups}}}", (c_in, 5, 5))
    assert got == expected
    if expected is not None:
        graph = build(spec(f"- {{op: conv2d, out: {out}, kernel: 3, groups: {groups}}}\n", (c_in, 5, 5)))
        assert graph.total_params == sum(p.numel() for p in module.parameters())


def test_groups_error_names_the_channels() -> None:
    text = spec("- {op: conv2d, out: 8, kernel: 3, groups: 3}\n")
    loc, message = one_error(text)
    assert loc == at(text, "{op: conv2d")
    assert "groups=3" in message and "4" in message and "8" in message


# --------------------------------------------------------------------------- error messages

def test_conv_too_small_error_names_layer_line_input_and_formula() -> None:
    text = spec(
        """\
        - {op: conv2d, out: 16, kernel: 3, stride: 2, padding: 1}
        - op: sequential
          name: b3
          layers:
            - {op: conv2d, name: conv1, out: 16, kernel: 3, padding: 1}
            - {op: conv2d, name: conv2, out: 16, kernel: 7}
        """,
        (3, 10, 10),
    )
    loc, message = one_error(text)
    assert loc == at(text, "{op: conv2d, name: conv2")
    assert message == "conv2d 'b3.conv2': input 16×5×5 is smaller than kernel 7 (floor((5 + 2·0 - 1·(7-1) - 1)/1) + 1 = -1)"
    full = f"x.yaml:{loc.line}:{loc.col}: {message}"
    with pytest.raises(SpecError) as info:
        build(text)
    assert str(info.value) == full


@pytest.mark.parametrize(
    "n,k,s,p,d",
    [(5, 7, 1, 0, 1), (4, 3, 2, 0, 3), (6, 9, 3, 1, 1), (3, 4, 1, 0, 1)],
)
def test_window_error_numbers_are_the_formula(n: int, k: int, s: int, p: int, d: int) -> None:
    text = spec(f"- {{op: conv2d, out: 2, kernel: {k}, stride: {s}, padding: {p}, dilation: {d}}}\n", (1, n, 40))
    value = (n + 2 * p - d * (k - 1) - 1) // s + 1
    assert value <= 0
    _, message = one_error(text)
    assert f"input 1×{n}×40" in message
    assert f"floor(({n} + 2·{p} - {d}·({k}-1) - 1)/{s}) + 1 = {value})" in message


def test_pool_error_says_ceil_when_ceil_mode() -> None:
    text = spec("- {op: maxpool, kernel: 5, stride: 2, ceil_mode: true}\n", (2, 3, 3))
    _, message = one_error(text)
    assert message.startswith("maxpool '0': input 2×3×3 is smaller than kernel 5")
    assert "ceil((3 + 2·0 - 1·(5-1) - 1)/2) + 1" in message


def test_pool_padding_larger_than_half_the_kernel_is_refused_like_torch() -> None:
    assert torch_shape(nn.MaxPool2d(2, padding=2), (2, 8, 8)) is None
    text = spec("- {op: maxpool, kernel: 2, padding: 2}\n")
    loc, message = one_error(text)
    assert loc == at(text, "{op: maxpool") and "half the kernel" in message


def test_errors_inside_a_builtin_block_point_at_the_call_and_name_the_instance() -> None:
    text = spec(
        """\
        - {op: conv2d, out: 8, kernel: 1}
        - {op: residual, out: 8, name: r, repeat: 2}
        - {op: inception, c1: 4, c2: [4, 4], c3: [4, 4], c4: 4, name: inc}
        - {op: maxpool, kernel: 9}
        """,
        (3, 6, 6),
    )
    loc, message = one_error(text)
    assert loc == at(text, "{op: maxpool")
    assert message.startswith("maxpool '3': input 16×6×6 is smaller than kernel 9")


def test_shape_error_in_a_user_block_points_into_the_block_and_names_the_instance() -> None:
    text = spec(
        "- {op: down, name: d1}\n- {op: down, name: d2}\n",
        (3, 6, 6),
        blocks="""\
        down:
          layers:
            - {op: conv2d, name: c, out: 4, kernel: 4}
        """,
    )
    loc, message = one_error(text)
    assert loc == at(text, "{op: conv2d, name: c")
    assert message == (
        "conv2d 'd2.c': input 4×3×3 is smaller than kernel 4 (floor((3 + 2·0 - 1·(4-1) - 1)/1) + 1 = 0)"
        f" (in block 'down' called at line {at(text, '{op: down, name: d2}').line})"
    )


# --------------------------------------------------------------------------- merges and kinds of input

def test_add_needs_equal_shapes() -> None:
    text = spec(
        """\
        - {op: conv2d, name: a, out: 8, kernel: 1}
        - {op: conv2d, name: b, from: input, out: 4, kernel: 1}
        - {op: add, from: [a, b]}
        """
    )
    loc, message = one_error(text)
    assert loc == at(text, "{op: add")
    assert message == "add '2': add needs shapes that broadcast (per dimension equal, or 1), got 8×8×8 + 4×8×8: dimension 1 is 8 vs 4"
    with pytest.raises(RuntimeError):  # torch refuses the same shapes
        torch.zeros(1, 8, 8, 8) + torch.zeros(1, 4, 8, 8)


def test_add_broadcasts_like_torch() -> None:
    text = spec("- {op: global_avgpool, name: g}\n- {op: add, from: [g, input]}\n")
    assert build(text).output_shape == tuple((torch.zeros(1, 4, 1, 1) + torch.zeros(1, 4, 8, 8)).shape[1:])


def test_add_of_different_ranks_is_refused() -> None:
    """torch would align a features vector with the image's width *and* the batch with its channels."""
    text = spec("- {op: flatten, name: f}\n- {op: linear, out: 8, name: l}\n- {op: add, from: [l, input]}\n")
    assert "add needs inputs of the same rank, got 8 + 4×8×8" in one_error(text)[1]


def test_parallel_add_merge_names_the_branch_shapes() -> None:
    text = spec("- op: parallel\n  merge: add\n  branches: {a: [{op: maxpool, kernel: 2}], b: []}\n")
    loc, message = one_error(text)
    assert loc == at(text, "op: parallel")
    assert "add needs shapes that broadcast (per dimension equal, or 1), got 4×4×4 + 4×8×8: dimension 2 is 4 vs 8" in message


def test_concat_needs_equal_spatial_sizes() -> None:
    text = spec("- {op: maxpool, kernel: 2, name: p}\n- {op: concat, from: [input, p]}\n")
    loc, message = one_error(text)
    assert loc == at(text, "{op: concat")
    assert message == "concat '1': concat needs equal spatial sizes, got 4×8×8, 4×4×4"


def test_concat_adds_channels_like_torch_cat() -> None:
    text = spec("- {op: conv2d, name: a, out: 3, kernel: 1}\n- {op: conv2d, name: b, from: input, out: 5, kernel: 3, padding: 1}\n- {op: concat, from: [a, b, input]}\n")
    expected = torch.cat([torch.zeros(1, 3, 8, 8), torch.zeros(1, 5, 8, 8), torch.zeros(1, 4, 8, 8)], dim=1).shape[1:]
    assert build(text).output_shape == tuple(expected)


def test_concat_of_features_and_images_is_refused() -> None:
    text = spec("- {op: flatten, name: f}\n- {op: concat, from: [f, input]}\n")
    assert "concat needs equal spatial sizes, got 256, 4×8×8" in one_error(text)[1]


def test_linear_applies_to_the_last_dimension_like_torch() -> None:
    text = spec("- {op: conv2d, out: 8, kernel: 3}\n- {op: linear, out: 10}\n")
    assert build(text).output_shape == tuple(nn.Linear(6, 10)(torch.zeros(1, 8, 6, 6)).shape[1:])


@pytest.mark.parametrize("layer", ["{op: conv2d, out: 2, kernel: 1}", "{op: maxpool, kernel: 1}", "global_avgpool", "{op: adaptive_avgpool, size: 2}"])
def test_image_ops_on_features_are_refused(layer: str) -> None:
    text = spec(f"- {layer}\n", (10,))
    _, message = one_error(text)
    assert "expects a channels×height×width input, got 10" in message


@pytest.mark.parametrize(
    "layer,module",
    [
        ("global_avgpool", nn.AdaptiveAvgPool2d((1, 1))),
        ("{op: adaptive_avgpool, size: 3}", nn.AdaptiveAvgPool2d(3)),
        ("{op: adaptive_avgpool, size: [2, 11]}", nn.AdaptiveAvgPool2d((2, 11))),
        ("flatten", nn.Flatten()),
        ("softmax", nn.Softmax(dim=1)),
        ("{op: dropout, p: 0.2}", nn.Dropout(0.2)),
        ("{op: leaky_relu, negative_slope: 0.2}", nn.LeakyReLU(0.2)),
        ("batchnorm", nn.BatchNorm2d(4)),
    ],
)
def test_shape_preserving_and_reshaping_ops_match_torch(layer: str, module: nn.Module) -> None:
    assert netspec_shape(layer, (4, 5, 7)) == torch_shape(module, (4, 5, 7))


def test_flatten_of_features_is_a_no_op_like_torch() -> None:
    assert netspec_shape("flatten", (6,)) == torch_shape(nn.Flatten(), (6,)) == (6,)


# --------------------------------------------------------------------------- parameter counts

@pytest.mark.parametrize(
    "layer,shape,module",
    [
        ("{op: linear, out: 7}", (5,), nn.Linear(5, 7)),
        ("{op: linear, out: 7, bias: false}", (5,), nn.Linear(5, 7, bias=False)),
        ("{op: conv2d, out: 6, kernel: [3, 5], bias: false}", (4, 9, 9), nn.Conv2d(4, 6, (3, 5), bias=False)),
        ("{op: conv2d, out: 6, kernel: 3, groups: 2, dilation: 2}", (4, 9, 9), nn.Conv2d(4, 6, 3, groups=2, dilation=2)),
        ("batchnorm", (4, 9, 9), nn.BatchNorm2d(4)),
        ("batchnorm", (5,), nn.BatchNorm1d(5)),
        ("{op: maxpool, kernel: 2}", (4, 9, 9), nn.MaxPool2d(2)),
    ],
)
def test_parameter_counts_match_torch(layer: str, shape: tuple, module: nn.Module) -> None:
    graph = build(spec(f"- {layer}\n", shape))
    assert graph.total_params == sum(p.numel() for p in module.parameters())


class D2LResidual(nn.Module):
    """Dive into Deep Learning's Residual block, written by hand."""

    def __init__(self, c_in: int, c_out: int, use_1x1conv: bool, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.conv3 = nn.Conv2d(c_in, c_out, 1, stride=stride) if use_1x1conv else None
        self.bn1, self.bn2 = nn.BatchNorm2d(c_out), nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (self.conv3(x) if self.conv3 is not None else x))


@pytest.mark.parametrize("c_in,c_out,stride", [(4, 4, 1), (4, 8, 1), (4, 4, 2), (3, 6, 2)])
def test_residual_block_matches_d2l(c_in: int, c_out: int, stride: int) -> None:
    graph = build(spec(f"- {{op: residual, out: {c_out}, stride: {stride}}}\n", (c_in, 7, 7)))
    twin = D2LResidual(c_in, c_out, use_1x1conv=(c_in != c_out or stride != 1), stride=stride)
    assert graph.total_params == sum(p.numel() for p in twin.parameters())
    assert graph.output_shape == torch_shape(twin, (c_in, 7, 7))
    assert ("0.conv3" in graph) == (c_in != c_out or stride != 1)


def _skipping_block_spec() -> str:
    """One block whose projection `when:` skips in the instance `same` and keeps in `wide`."""
    return spec(
        "- {op: blk, name: same}\n- {op: blk, name: wide, c: 8}\n",
        (4, 5, 5),
        blocks="""\
        blk:
          params: {c: {type: int, default: 4}}
          layers:
            - {op: conv2d, name: main, out: $c, kernel: 3, padding: 1}
            - {op: conv2d, name: proj, from: input, out: $c, kernel: 1, when: "in_channels != c"}
            - {op: add, from: [main, proj]}
        """,
    )


SKIPPING_BLOCK_SPEC = _skipping_block_spec()


def test_a_skipped_layer_passes_its_input_through_under_its_name() -> None:
    text = SKIPPING_BLOCK_SPEC
    graph = build(text)
    assert "same.proj" not in graph and "wide.proj" in graph
    [add_same] = [n for n in graph.ops() if n.op == "add" and n.scopes == ("same",)]
    [add_wide] = [n for n in graph.ops() if n.op == "add" and n.scopes == ("wide",)]
    assert add_same.inputs == ["same.main", "input"]
    assert add_wide.inputs == ["wide.main", "wide.proj"]
    assert graph.output_shape == (8, 5, 5)


def test_a_skipped_layer_keeps_its_position() -> None:
    text = SKIPPING_BLOCK_SPEC
    graph = build(text)
    assert "same.2" in graph and "wide.2" in graph


def test_from_takes_positions_of_unnamed_layers() -> None:
    text = spec("- {op: conv2d, out: 6, kernel: 1}\n- relu\n- {op: concat, from: [0, 1, input]}\n")
    assert build(text).output_shape == (16, 8, 8)


def test_batchnorm_is_1d_after_features_and_2d_after_images() -> None:
    model = netspec.compile(build(spec("- {op: batchnorm, name: a}\n- flatten\n- {op: batchnorm, name: b}\n", (3, 2, 2))))
    assert type(model.get_submodule("a")) is nn.BatchNorm2d
    assert type(model.get_submodule("b")) is nn.BatchNorm1d
    assert model.get_submodule("b").num_features == 12


# --------------------------------------------------------------------------- lint

def test_unused_layers_are_errors_at_their_line() -> None:
    text = spec(
        """\
        - {op: conv2d, name: a, out: 4, kernel: 1}
        - {op: conv2d, name: dead, out: 4, kernel: 1}
        - {op: relu, name: alsodead}
        - {op: relu, from: a}
        """
    )
    with pytest.raises(SpecError) as info:
        build(text)
    found = [(d.location, d.message) for d in info.value.diagnostics]
    assert [loc for loc, _ in found] == [at(text, "{op: conv2d, name: dead"), at(text, "{op: relu, name: alsodead")]
    assert found[0][1].startswith("conv2d 'dead': its output is never used")
    assert "'from:'" in found[0][1]


def test_unused_layer_inside_a_block_names_the_instance() -> None:
    text = spec(
        "- {op: blk, name: b1}\n",
        blocks="""\
        blk:
          layers:
            - {op: conv2d, name: c1, out: 4, kernel: 1}
            - relu
            - {op: conv2d, name: c2, from: c1, out: 4, kernel: 1}
        """,
    )
    loc, message = one_error(text)
    assert loc == at(text, "relu\n")
    assert message.startswith("relu 'b1.1': its output is never used")


def test_dangling_from_is_an_error_with_suggestions() -> None:
    text = spec("- {op: conv2d, name: stem, out: 4, kernel: 1}\n- {op: add, from: [stem, stme2]}\n")
    loc, message = one_error(text)
    assert loc == at(text, "[stem, stme2]")
    assert "'from: stme2' names no earlier layer" in message and "did you mean 'stem'?" in message
