"""The ejected model.py of every zoo spec builds the network netspec trains.

For each spec under specs/ (found at collection, so a new zoo spec is covered without
editing this file): with the same seed, the ejected module's state_dict equals the one of
`netspec.compile(spec, seed=...)` bitwise, names in the same order, and both compute the
same outputs. The truth is the compiled module: the ejected file never imports netspec.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
import torch

import netspec
from netspec.compiler.codegen.export import write

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ejected import import_file, network_class  # noqa: E402  (tests/ is not a package)

SPECS = Path(__file__).resolve().parents[1] / "specs"
ZOO = sorted(SPECS.rglob("*.yaml"))
BIG_PARAMS, BIG_MACS = 20_000_000, 1_000_000_000  # bigger specs run with the slow tests (-m slow)


def _big(path: Path) -> bool:
    graph = netspec.build_graph(path)
    return graph.total_params > BIG_PARAMS or graph.total_macs > BIG_MACS


def zoo_cases() -> list:
    cases = []
    for path in ZOO:
        marks = [pytest.mark.slow] if _big(path) else []
        cases.append(pytest.param(path, id=str(path.relative_to(SPECS)), marks=marks))
    return cases


def test_the_zoo_is_found() -> None:
    assert len(ZOO) >= 10 and SPECS / "lenet.yaml" in ZOO and SPECS / "imagenet" / "resnet50.yaml" in ZOO


@pytest.mark.parametrize("path", zoo_cases())
def test_ejected_zoo_module_has_the_compiled_weights_and_outputs(path: Path, tmp_path: Path) -> None:
    graph = netspec.build_graph(path)
    source = write(graph, tmp_path / "model.py")
    tree = ast.parse(source.read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"torch", "collections"} and "torch" in imported  # collections: OrderedDict, for named nn.Sequential
    cls = network_class(import_file(source))
    seed = 7
    compiled = netspec.compile(graph, seed=seed)
    torch.manual_seed(seed)
    ejected = cls()
    want, got = compiled.state_dict(), ejected.state_dict()
    assert list(got) == list(want)
    for key in want:
        assert got[key].dtype == want[key].dtype and got[key].shape == want[key].shape, key
        assert torch.equal(got[key], want[key]), f"{path.name}: {key} differs"
    compiled.eval(), ejected.eval()
    x = torch.randn(2, *graph.input_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ejected(x), compiled(x), rtol=0, atol=0)


def test_lenet_init_is_the_specs_not_pytorchs(tmp_path: Path) -> None:
    """The issue's example: layer 7 of lenet is xavier_uniform (std √(2/(400+120)) ≈ 0.062),
    not PyTorch's default (std 1/√(3·400) ≈ 0.029)."""
    graph = netspec.build_graph(SPECS / "lenet.yaml")
    cls = network_class(import_file(write(graph, tmp_path / "model.py")))
    torch.manual_seed(0)
    std = cls().get_submodule("7").weight.std().item()
    assert abs(std - (2 / 520) ** 0.5) < 0.003, std


@pytest.mark.parametrize("path", ZOO, ids=[str(p.relative_to(SPECS)) for p in ZOO])
def test_each_block_kind_is_one_class(path: Path, tmp_path: Path) -> None:
    """issue 9 §8, as torchvision writes one `Bottleneck`: every instance of a block kind the
    spec uses (the graph's scopes) is an instance of the same ejected class, whatever its
    widths, strides, activation or optional layers."""
    graph = netspec.build_graph(path)
    cls = network_class(import_file(write(graph, tmp_path / "model.py")))
    with torch.device("meta"):  # the structure, not the weights
        ejected = cls()
    classes: dict[str, set[str]] = {}
    for scope_path, scope in graph.scopes.items():
        if scope.is_block and scope_path:
            classes.setdefault(scope.kind, set()).add(type(ejected.get_submodule(scope_path)).__name__)
    assert {k for k, v in classes.items() if len(v) > 1} == set()
