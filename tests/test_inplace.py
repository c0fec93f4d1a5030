"""The in-place pass: which activations overwrite their input, checked against torch itself.

Truths: the same compiled module with every `inplace` flag turned off (outputs and gradients
must be equal), autograd's own saved tensors (the memory plan stays exact), torch's refusal
(a version-counter error) where an unsafe mark would break backward, and torchvision's
structure (its ReLU6/SiLU/Hardswish are in place, so the ejected source says so too).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import netspec
from netspec.compiler.memory import saved_activation_bytes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_memory import measured_saved_bytes  # noqa: E402

INPLACE_ACTS = ["relu", "relu6", "hardtanh", "silu", "hardswish", "hardsigmoid", "elu", "leaky_relu"]


def spec(layers: str, input_: str = "[3, 6, 6]") -> str:
    return f"name: t\ninput: {input_}\nlayers:\n{layers}"


def marked(graph) -> list[str]:
    return [n.name for n in graph.ops() if n.meta.get("inplace")]


def out_of_place(model: torch.nn.Module) -> torch.nn.Module:
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    return model


def forward_backward(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.train().zero_grad(set_to_none=True)
    y = model(x)
    (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
    return y.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("act", INPLACE_ACTS)
def test_after_conv_and_batch_norm_each_activation_runs_in_place_exactly(act: str) -> None:
    text = spec(f"  - {{op: conv2d, out: 4, kernel: 3, padding: 1}}\n  - batchnorm\n  - {act}\n  - {{op: conv2d, out: 2, kernel: 1}}\n  - {act}\n")
    graph = netspec.build_graph(text)
    assert marked(graph) == ["2", "4"]  # after batch norm, and after the last conv (the output itself may be)
    torch.manual_seed(0)
    model = netspec.compile(graph, seed=0)
    assert all(model.get_submodule(name).inplace for name in marked(graph))
    x = torch.randn(2, 3, 6, 6)
    y, grads = forward_backward(model, x)
    y_ref, grads_ref = forward_backward(out_of_place(netspec.compile(graph, seed=0)), x)
    assert torch.equal(y, y_ref)
    # elu_ and leaky_relu_ take the gradient from the result (x = log(y/alpha + 1)): equal up to rounding
    torch.testing.assert_close(grads, grads_ref, rtol=1e-5, atol=1e-6)
    assert saved_activation_bytes(graph, 2) == measured_saved_bytes(netspec.compile(graph, seed=0), x)


@pytest.mark.parametrize(
    "layers, expected, why",
    [
        ("  - relu\n  - {op: linear, out: 3}\n", [], "the network's input is the caller's tensor"),
        ("  - {op: conv2d, out: 4, kernel: 1}\n  - sigmoid\n  - relu\n", [], "sigmoid keeps its result for backward"),
        ("  - {op: conv2d, out: 4, kernel: 1}\n  - relu\n  - relu\n", ["1"], "the first relu (in place) keeps its result"),
        ("  - {op: conv2d, out: 4, kernel: 1, name: c}\n  - {op: relu, name: r}\n  - {op: add, from: [r, c]}\n", [],
         "the conv's output has a second user"),
        ("  - {op: conv2d, out: 4, kernel: 1}\n  - flatten\n  - relu\n", [], "flatten is a view of the conv's output"),
        ("  - {op: conv2d, out: 4, kernel: 1}\n  - {op: dropout, p: 0.5}\n  - relu\n", [], "dropout returns its input as it is in eval mode"),
        ("  - {op: conv2d, out: 4, kernel: 1}\n  - {op: leaky_relu, negative_slope: -0.1}\n", [], "no in-place backward for a negative slope"),
        ("  - {op: conv2d, out: 4, kernel: 1}\n  - {op: elu, alpha: -0.5}\n", [], "no in-place backward for a negative alpha"),
        ("  - {op: conv2d, out: 4, kernel: 1}\n  - gelu\n", [], "GELU has no in-place form"),
    ],
)
def test_unsafe_places_stay_out_of_place(layers: str, expected: list[str], why: str) -> None:
    assert marked(netspec.build_graph(spec(layers))) == expected, why


def test_an_unsafe_mark_would_break_backward() -> None:
    """The rule against activations after one that keeps its result is torch's, not ours:
    forcing the mark makes autograd refuse (a tensor it saved was modified)."""
    graph = netspec.build_graph(spec("  - {op: conv2d, out: 4, kernel: 1}\n  - sigmoid\n  - relu\n"))
    graph.node("2").meta["inplace"] = True
    model = netspec.compile(graph, seed=0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        model(torch.randn(2, 3, 6, 6)).sum().backward()


def test_a_second_user_would_see_the_overwritten_value() -> None:
    graph = netspec.build_graph(spec("  - {op: conv2d, out: 4, kernel: 1, name: c}\n  - {op: relu, name: r}\n  - {op: add, from: [r, c]}\n"))
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        right = netspec.compile(graph, seed=0)(x)
        graph.node("r").meta["inplace"] = True
        wrong = netspec.compile(graph, seed=0)(x)
    assert not torch.equal(right, wrong)  # relu(c) + relu(c) instead of relu(c) + c


@pytest.mark.parametrize("name", ["resnet18", "densenet", "googlenet", "unet", "mlp_dropout"])
def test_zoo_outputs_and_gradients_equal_the_out_of_place_module(name: str) -> None:
    torch.set_num_threads(1)
    graph = netspec.build_graph(ROOT / "specs" / f"{name}.yaml")
    assert marked(graph), name
    x = torch.randn(2, *graph.input_shape)
    torch.manual_seed(1)
    y, grads = forward_backward(netspec.compile(graph, seed=0), x)
    torch.manual_seed(1)  # the same dropout masks
    y_ref, grads_ref = forward_backward(out_of_place(netspec.compile(graph, seed=0)), x)
    assert torch.equal(y, y_ref) and all(torch.equal(a, b) for a, b in zip(grads, grads_ref))


def test_mobilenet_v2_is_in_place_where_torchvision_is_and_model_py_says_so(tmp_path: Path) -> None:
    """torchvision's Conv2dNormActivation makes every ReLU6 `inplace=True`: so do the compiled
    module and the ejected source (which tests/test_codegen_zoo.py checks against the compiled one)."""
    graph = netspec.build_graph(ROOT / "specs" / "imagenet" / "mobilenet_v2.yaml")
    relu6 = [n.name for n in graph.ops() if n.op == "relu6"]
    assert marked(graph) == relu6 and len(relu6) == 35
    from netspec.compiler.codegen.source import to_source

    source = to_source(graph)
    assert "nn.ReLU6(inplace=True)" in source and "nn.ReLU6()" not in source
