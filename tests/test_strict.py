"""Values are strict everywhere (header, layers, `train:`), and errors speak netspec, not pydantic."""
from __future__ import annotations

import pytest

from netspec.compiler.pipeline import load_spec
from netspec.compiler.train_schema import parse_value, with_overrides
from netspec.errors import SpecError

LAYERS = "layers: [flatten, {op: linear, out: 10}]\n"


def messages(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec("x.yaml", text=text)
    return [str(d) for d in info.value.diagnostics]


@pytest.mark.parametrize(
    "shape, expected",
    [
        ("[true, 28, 28]", ["input[0]: expected an integer, got True"]),
        ('["3", 28.0, 28]', ["input[0]: expected an integer, got '3'", "input[1]: expected an integer, got 28.0"]),
        ("[1, 28.0, 28]", ["input[1]: expected an integer, got 28.0"]),
        ("[1, 28, false]", ["input[2]: expected an integer, got False"]),
        ("3.0", ["input: expected an integer, got 3.0"]),
        ('"784"', ["input: expected an integer, got '784'"]),
        ("[1, 28, .inf]", ["input[2]: expected an integer, got inf"]),
    ],
)
def test_header_input_is_not_coerced(shape: str, expected: list[str]) -> None:
    """Each value that is not an integer is one mistake, located at the value itself."""
    found = messages(f"name: a\ninput: {shape}\n{LAYERS}")
    assert [f.split(": ", 1)[1] for f in found] == expected, found


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("epochs", '"3"', "train.epochs: expected an integer, got '3'"),
        ("batch_size", "256.0", "train.batch_size: expected an integer, got 256.0"),
        ("seed", "true", "train.seed: expected an integer, got True"),
        ("lr", '"0.1"', "train.lr: expected a number, got '0.1'"),
        ("lr", "true", "train.lr: expected a number, got True"),
        ("val_fraction", ".nan", "train.val_fraction: expected a finite number, got nan"),
        ("limit", "10.0", "train.limit: expected an integer, got 10.0"),
    ],
)
def test_train_values_are_not_coerced(field: str, value: str, expected: str) -> None:
    found = messages(f"name: a\ninput: [1, 28, 28]\n{LAYERS}train: {{{field}: {value}}}\n")
    assert len(found) == 1 and found[0].endswith(expected), found


def test_nested_train_values_are_strict_too() -> None:
    text = f"name: a\ninput: [1, 28, 28]\n{LAYERS}train:\n  optimizer: {{name: sgd, momentum: '0.9'}}\n  augment: [{{random_crop: {{padding: 4.0}}}}]\n"
    found = messages(text)
    assert any("train.optimizer.momentum: expected a number, got '0.9'" in m for m in found), found
    assert any("padding: expected an integer, got 4.0" in m for m in found), found


def test_train_choices_get_did_you_mean() -> None:
    found = messages(f"name: a\ninput: [1, 28, 28]\n{LAYERS}train: {{loss: crossentropy, optimizer: adamm}}\n")
    assert any("expected one of 'cross_entropy', 'mse', got 'crossentropy' (did you mean 'cross_entropy'?)" in m for m in found), found
    assert any("got 'adamm' (did you mean 'adam'?)" in m for m in found), found


def test_no_pydantic_wording_reaches_the_user() -> None:
    text = (
        "name: a\ninput: [1, 28, 28]\nlayers:\n  - {op: linear, name: 'bad name', out: 10}\n"
        "  - {op: dropout, p: 2}\ntrain: {epochs: -1, loss: x, dataset: {name: csv}}\n"
    )
    found = messages(text)
    assert len(found) == 5, found
    for message in found:
        for pydantic_words in ("Input should", "String should", "Value error", "valid integer", "should be"):
            assert pydantic_words not in message, message


@pytest.mark.parametrize(
    "layer, hint",
    [
        ("{op: conv2d, out: 8, kernel: 3, out_channels: 8}", "unknown key 'out_channels' (netspec calls it 'out')"),
        ("{op: conv2d, out: 8, kernel: 3, in_channels: 1}", "unknown key 'in_channels' (netspec infers it from the input"),
        ("{op: conv2d, out: 8, kernel_size: 3}", "unknown key 'kernel_size' (netspec calls it 'kernel')"),
        ("{op: dropout, rate: 0.5}", "unknown key 'rate' (netspec calls it 'p')"),
        ("{op: maxpool, kernel: 2, strides: 2}", "unknown key 'strides' (netspec calls it 'stride')"),
        ("{op: relu, inplace: true}", "unknown key 'inplace' (netspec has no such option"),
    ],
)
def test_pytorch_names_get_hints(layer: str, hint: str) -> None:
    found = messages(f"name: a\ninput: [1, 28, 28]\nlayers:\n  - {layer}\n  - flatten\n")
    assert any(hint in m for m in found), found


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
@pytest.mark.parametrize("layer", ["{op: batchnorm, eps: %s}", "{op: dropout, p: %s}", "{op: conv2d, out: 4, kernel: 1, init: {weight: normal, std: %s}}"])
def test_non_finite_op_parameters_are_refused(layer: str, value: str) -> None:
    found = messages(f"name: a\ninput: [1, 8, 8]\nlayers:\n  - {layer % value}\n")
    assert len(found) == 1 and ("finite" in found[0] or "expected a" in found[0]), found


def test_command_line_values_read_like_the_file() -> None:
    config, _ = with_overrides({}, {"lr": parse_value("1e-3"), "epochs": parse_value("3")})
    assert config.optimizer.lr == 0.001 and config.epochs == 3
    with pytest.raises(SpecError, match=r"--epochs: expected an integer, got 3.0"):
        with_overrides({}, {"epochs": parse_value("3.0")})
    with pytest.raises(SpecError, match=r"--batch-size: expected an integer, got True"):
        with_overrides({}, {"batch_size": parse_value("true")})


# ------------------------------------------------------------------ every mistake at once
def at(text: str, fragment: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, col) of the nth occurrence of `fragment` (an independent locator)."""
    pos = -1
    for _ in range(nth + 1):
        pos = text.index(fragment, pos + 1)
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def located(text: str) -> list[tuple[tuple[int, int], str]]:
    with pytest.raises(SpecError) as info:
        load_spec("x.yaml", text=text)
    return [((d.location.line, d.location.col), d.message) for d in info.value.diagnostics if d.location]


def test_three_bad_block_calls_and_a_misspelt_key_are_four_diagnostics() -> None:
    text = (
        "name: a\ninput: [3, 28, 28]\nlayerz: 3\nlayers:\n"
        "  - {op: residual, out: 8, strid: 2}\n"
        "  - {op: residual, out: x}\n"
        "  - {op: inception, c1: 3}\n"
        "  - flatten\n  - {op: linear, out: 10}\n"
    )
    found = located(text)
    assert len(found) == 4, found
    assert (at(text, "layerz"), "layerz: unknown key 'layerz' (did you mean 'layers'?)") in found
    assert any(loc == at(text, "strid:") and "no parameter 'strid' (did you mean 'stride'?)" in m for loc, m in found)
    assert (at(text, "x}"), "residual.out: expected an integer, got 'x'") in found
    assert (at(text, "{op: inception"), "block 'inception' needs parameters 'c2', 'c3', 'c4'") in found


def test_schema_errors_do_not_hide_block_calls_in_user_blocks() -> None:
    text = (
        "name: a\ninput: [3, 28, 28]\nblocks:\n  b:\n    params: {k: int, m: {type: str, default: x, choices: [x, y]}}\n"
        "    layers:\n      - {op: conv2d, out: $k, kernel: 1, kernal: 3}\n      - {op: residual, out: $k, strid: 2}\n"
        "layers:\n  - {op: b, k: 4, m: z}\n  - {op: b, k: 4.0}\n  - {op: b}\n  - {op: dropout, p: 3}\n"
    )
    found = located(text)
    assert len(found) == 6, found
    assert any(loc == at(text, "kernal") and "unknown key 'kernal'" in m for loc, m in found)
    assert any(loc == at(text, "strid") for loc, _ in found)  # a $ref argument is fine, a wrong name is not
    assert (at(text, "z}"), "b.m: expected one of x, y, got 'z'") in found
    assert (at(text, "4.0"), "b.k: expected an integer, got 4.0") in found
    assert (at(text, "{op: b}"), "block 'b' needs parameter 'k'") in found
    assert any(loc == at(text, "3}", 1) and "layers[3].p" in m for loc, m in found)


@pytest.mark.parametrize("name", ["in_channels", "in_height", "in_width", "in_features"])
def test_block_parameters_may_not_shadow_shape_variables(name: str) -> None:
    text = f"name: a\ninput: [3, 8, 8]\nblocks:\n  b:\n    params: {{{name}: int}}\n    layers: [relu]\nlayers: [{{op: b, {name}: 3}}]\n"
    found = located(text)
    assert any(loc == at(text, name) and "is set from the block's input shape" in m for loc, m in found), found


@pytest.mark.parametrize(
    "decl, expected",
    [
        ("{type: int, default: 2.5}", "expected an integer, got 2.5"),
        ("{type: float, default: .nan}", "expected a finite number, got nan"),
        ("{type: bool, default: 1}", "expected true or false, got 1"),
        ("{type: ints, default: [1, true]}", "expected a list of integers, got [1, True]"),
        ("{type: str, default: z, choices: [x, y]}", "expected one of x, y, got 'z'"),
    ],
)
def test_a_wrong_default_is_reported_at_the_default_once(decl: str, expected: str) -> None:
    text = f"name: a\ninput: [3, 8, 8]\nblocks:\n  b:\n    params: {{n: {decl}}}\n    layers: [relu]\nlayers: [b, b, b]\n"
    found = located(text)
    line, col = at(text, "default: ")
    assert found == [((line, col + len("default: ")), f"blocks.b.params.n.default: {expected}")], found


def test_when_outside_a_block_is_an_error() -> None:
    text = "name: a\ninput: [4]\nlayers:\n  - {op: linear, out: 4, when: false}\n  - {op: sequential, layers: [{op: relu, when: true}]}\n"
    found = located(text)
    assert [loc for loc, _ in found] == [at(text, "when"), at(text, "when", 1)], found
    assert all("when: is for layers inside blocks" in m for _, m in found)


def test_mistakes_in_independent_branches_are_all_reported() -> None:
    text = (
        "name: a\ninput: [3, 4, 4]\nlayers:\n  - op: parallel\n    branches:\n"
        "      - [{op: conv2d, out: 4, kernel: 9}]\n      - [{op: maxpool, kernel: 7}]\n      - [{op: conv2d, out: 4, kernel: 1, groups: 2}]\n"
    )
    with pytest.raises(SpecError) as info:
        from netspec.compiler.pipeline import build_graph

        build_graph(load_spec("x.yaml", text=text))
    found = [((d.location.line, d.location.col), d.message) for d in info.value.diagnostics]
    assert [loc for loc, _ in found] == [at(text, "{op: conv2d"), at(text, "{op: maxpool"), at(text, "{op: conv2d, out: 4, kernel: 1")], found
    assert "smaller than kernel 9" in found[0][1] and "smaller than kernel 7" in found[1][1] and "groups=2 must divide input channels 3" in found[2][1]


@pytest.mark.parametrize(
    "layer, expected",
    [
        ("{op: parallel, branches: 3}", "layers[0].branches: expected a mapping or a list, got 3"),
        ("{op: relu, from: [true]}", "layers[0].from: expected a layer name or a list of layer names, got [True]"),
    ],
)
def test_a_union_mistake_is_one_line(layer: str, expected: str) -> None:
    found = messages(f"name: a\ninput: [4]\nlayers:\n  - {layer}\n")
    assert len(found) == 1 and found[0].endswith(expected), found


def test_pytorch_names_in_block_calls_get_hints_too() -> None:
    text = "name: a\ninput: [3, 8, 8]\nlayers:\n  - {op: residual, out: 8, in_channels: 3}\n  - {op: vgg_block, convs: 1, out_channels: 8}\n"
    found = messages(text)
    assert any("block 'residual' has no parameter 'in_channels' (netspec infers it from the input" in m for m in found), found
    assert any("block 'vgg_block' has no parameter 'out_channels' (netspec calls it 'out')" in m for m in found), found


@pytest.mark.parametrize(
    "layer, expected",
    [
        ("{op: conv2d, out_channels: 8, kernel: 3}", "layers[0].out_channels: unknown key 'out_channels' (netspec calls it 'out')"),
        ("{op: conv2d, outt: 8, kernel: 3}", "layers[0].outt: unknown key 'outt' (did you mean 'out'?)"),
        ("{op: residual, outt: 8}", "block 'residual' has no parameter 'outt' (did you mean 'out'?) (parameters: out, stride, shortcut, bias)"),
    ],
)
def test_a_misspelt_required_key_is_one_mistake_not_two(layer: str, expected: str) -> None:
    found = messages(f"name: a\ninput: [3, 8, 8]\nlayers:\n  - {layer}\n")
    assert len(found) == 1 and found[0].endswith(expected), found


def test_a_block_call_may_use_the_input_shape_at_the_top_level() -> None:
    from netspec.compiler.pipeline import build_graph

    graph = build_graph(load_spec("x.yaml", text="name: a\ninput: [4, 8, 8]\nlayers: [{op: residual, out: $in_channels}]\n"))
    assert graph.output_shape == (4, 8, 8)


def test_only_the_union_member_that_fits_reports() -> None:
    found = messages("name: a\ninput: [4]\nlayers: [{op: parallel, branches: {a: 3, b: [relu]}}]\n")
    assert len(found) == 1 and found[0].endswith("layers[0].branches.a: expected a list, got 3"), found
