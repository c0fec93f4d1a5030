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


@pytest.mark.parametrize("shape", ["[true, 28, 28]", '["3", 28.0, 28]', "[1, 28.0, 28]", "[1, 28, false]", "3.0", '"784"', "[1, 28, .inf]"])
def test_header_input_is_not_coerced(shape: str) -> None:
    found = messages(f"name: a\ninput: {shape}\n{LAYERS}")
    assert len(found) == 1 and "input: expected features ([F]) or channels×height×width" in found[0], found


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
