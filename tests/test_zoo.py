"""The model zoo (specs/) against independent truths.

Every spec file found under specs/ is checked, so a new one is tested without editing this
file (it needs a twin in tests/twins.py):
- the shapes netspec infers equal the shapes of a real forward pass, node by node;
- the parameter count of the IR equals the compiled module's, the hand-written twin's and,
  for the ImageNet networks, torchvision's published number;
- the compiled module has the twin's structure (its stateful layers, in the order they
  run, have the same types and tensor shapes), and for the small networks, with the same
  weights, the same outputs; one backward pass gives finite gradients;
- initialisation and the `train:` hyper-parameters are the textbook's.

Large networks run on the meta device (shapes without memory or arithmetic).
"""
from __future__ import annotations

import functools
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import fx, nn

import netspec
from netspec.compiler.graph import INPUT, Graph

sys.path.insert(0, str(Path(__file__).resolve().parent))
from twins_vision import PUBLISHED_PARAMS  # noqa: E402
from twins_vit import VIT_PUBLISHED_PARAMS  # noqa: E402
from twins import STATE_MAPS, TWINS, copy_state, layer_signature, loose_parameters, stateful_in_call_order  # noqa: E402  (tests/ is not a package)

ROOT = Path(__file__).resolve().parents[1]
SPECS_DIR = ROOT / "specs"
SPEC_FILES = sorted(SPECS_DIR.rglob("*.yaml"))
IMAGENET_FILES = [p for p in SPEC_FILES if p.parent.name == "imagenet"]
HEADER = "# yaml-language-server: $schema="

# torchvision's published parameter counts (torchvision.models docs, "Params" column); the
# vision networks' counts are kept with their twins in tests/twins_vision.py.
TORCHVISION_PARAMS = {
    "alexnet_imagenet": 61_100_840,
    "vgg16_imagenet": 138_357_544,
    "googlenet_imagenet": 6_624_904,
    "resnet18_imagenet": 11_689_512,
    "resnet50_imagenet": 25_557_032,
    **{name: count for name, count in PUBLISHED_PARAMS.items() if name.endswith("_imagenet")},
    **VIT_PUBLISHED_PARAMS,
}

# The book's hyper-parameters: (batch_size, lr, epochs, resize) from D2L's code.
D2L_TRAIN = {
    "linear_regression": (10, 0.03, 3, None),
    "linear_regression_closed_form": (10, 0.03, 3, None),
    "softmax_regression": (256, 0.1, 10, None),
    "mlp": (256, 0.1, 10, None),
    "mlp_dropout": (256, 0.5, 10, None),
    "lenet": (256, 0.9, 10, None),
    "lenet_bn": (256, 1.0, 10, None),
    "alexnet": (128, 0.01, 10, 224),
    "vgg11": (128, 0.05, 10, 224),
    "vgg11_small": (128, 0.05, 10, 224),
    "nin": (128, 0.1, 10, 224),
    "googlenet": (128, 0.1, 10, 96),
    "resnet18": (256, 0.05, 10, 96),
    "densenet": (256, 0.1, 10, 96),
}

# Above these, a network is only run on the meta device.
MAX_REAL_PARAMS = 20_000_000
MAX_REAL_MACS = 1_000_000_000
BATCH = 2


def _id(path: Path) -> str:
    return str(path.relative_to(SPECS_DIR).with_suffix(""))


spec_files = pytest.mark.parametrize("path", SPEC_FILES, ids=_id)


@functools.cache
def graph_of(path: Path) -> Graph:
    return netspec.build_graph(path)


def is_big(graph: Graph) -> bool:
    return graph.total_params > MAX_REAL_PARAMS or graph.total_macs > MAX_REAL_MACS


def device_for(graph: Graph) -> torch.device:
    return torch.device("meta") if is_big(graph) else torch.device("cpu")


def compiled(graph: Graph, device: torch.device, seed: int = 0) -> fx.GraphModule:
    with device:
        return netspec.compile(graph, seed=seed)


def twin_of(graph: Graph, device: torch.device) -> nn.Module:
    if graph.name not in TWINS:
        pytest.fail(f"spec {graph.name!r} ({graph.source}) has no twin: add one to TWINS in tests/twins.py")
    with device:
        return TWINS[graph.name]()


def example(graph: Graph, device: torch.device, batch: int = BATCH) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    if device.type == "meta":
        return torch.empty(batch, *graph.input_shape, device=device)
    return torch.randn(batch, *graph.input_shape, generator=generator)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- real shapes
def real_shapes(module: fx.GraphModule, x: torch.Tensor) -> dict[fx.Node, tuple[int, ...]]:
    """Every fx node's output shape (without the batch) in a real forward pass."""
    shapes: dict[fx.Node, tuple[int, ...]] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            out = super().run_node(n)
            if isinstance(out, torch.Tensor):
                shapes[n] = tuple(out.shape[1:])
            return out

    with torch.no_grad():
        Recorder(module).run(x)
    return shapes


def _operands(node: fx.Node, target: Any, claimed: set[fx.Node]) -> list[Any]:
    """The values a merge combines: a chain `add(add(a, b), c)` is one merge of a, b, c."""
    out: list[Any] = []
    for arg in node.args:
        for item in arg if isinstance(arg, (list, tuple)) else [arg]:
            if isinstance(item, fx.Node) and item.op == "call_function" and item.target is target and item not in claimed:
                out += _operands(item, target, claimed)
            else:
                out.append(item)
    return out


def fx_nodes_of(graph: Graph, module: fx.GraphModule) -> dict[str, fx.Node]:
    """Which fx node computes each IR node: modules by their dotted name, merges by their operands."""
    if "netspec_values" in module.meta:  # recorded by to_graph_module: exact, also for multi-call ops
        by_name = {n.name: n for n in module.graph.nodes}
        return {ir: by_name[fx_name] for ir, fx_name in module.meta["netspec_values"].items()}
    by_target = {n.target: n for n in module.graph.nodes if n.op == "call_module"}
    functions = [n for n in module.graph.nodes if n.op == "call_function"]
    placeholders = [n for n in module.graph.nodes if n.op == "placeholder"]
    found: dict[str, fx.Node] = {}
    for node in graph.nodes():
        if node.op == INPUT:
            found[node.name] = placeholders[0]
        elif node.name in by_target:
            found[node.name] = by_target[node.name]
        else:
            wanted = [found[i] for i in node.inputs]
            claimed = set(found.values())
            matches = [f for f in functions if f not in claimed and _operands(f, f.target, claimed) == wanted]
            assert matches, f"no fx node computes IR node {node.name!r} ({node.op} of {node.inputs})"
            found[node.name] = matches[-1]
    return found


@spec_files
def test_inferred_shapes_equal_a_real_forward_pass(path: Path) -> None:
    graph = graph_of(path)
    device = device_for(graph)
    model = compiled(graph, device).eval()
    shapes = real_shapes(model, example(graph, device))
    nodes = fx_nodes_of(graph, model)
    wrong = [
        f"{node.name} ({node.op}): inferred {node.shape}, real {shapes[nodes[node.name]]}"
        for node in graph.nodes()
        if shapes[nodes[node.name]] != node.shape
    ]
    assert not wrong, "\n".join(wrong)
    output = [n for n in model.graph.nodes if n.op == "output"][0].args[0]
    assert shapes[output] == graph.output_shape


# --------------------------------------------------------------------------- parameter counts
@spec_files
def test_parameter_count_equals_module_and_twin(path: Path) -> None:
    graph = graph_of(path)
    meta = torch.device("meta")
    model, twin = compiled(graph, meta), twin_of(graph, meta)
    assert graph.total_params == count(model) == count(twin)
    if graph.name in TORCHVISION_PARAMS:
        assert graph.total_params == TORCHVISION_PARAMS[graph.name]


def test_every_imagenet_spec_has_a_published_count() -> None:
    names = {graph_of(p).name for p in IMAGENET_FILES}
    assert names == set(TORCHVISION_PARAMS)


# --------------------------------------------------------------------------- structure and outputs
@spec_files
def test_module_has_the_twins_structure(path: Path) -> None:
    graph = graph_of(path)
    meta = torch.device("meta")
    model, twin = compiled(graph, meta), twin_of(graph, meta)
    if graph.name in STATE_MAPS:  # the same tensors under the twin's names, every one
        ours_by_name = {k: tuple(v.shape) for k, v in STATE_MAPS[graph.name](model.state_dict()).items()}
        assert ours_by_name == {k: tuple(v.shape) for k, v in twin.state_dict().items()}
        return
    x = example(graph, meta, batch=1)
    ours = [layer_signature(m) for m in stateful_in_call_order(model, x)]
    theirs = [layer_signature(m) for m in stateful_in_call_order(twin, x)]
    assert ours == theirs
    assert [p.shape for p in loose_parameters(model)] == [p.shape for p in loose_parameters(twin)]


@pytest.mark.parametrize("path", IMAGENET_FILES, ids=_id)
def test_imagenet_state_dict_keys_are_torchvisions(path: Path) -> None:
    graph = graph_of(path)
    meta = torch.device("meta")
    ours = {k: tuple(v.shape) for k, v in compiled(graph, meta).state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in twin_of(graph, meta).state_dict().items()}
    assert ours == theirs


def small_specs() -> list[Path]:
    return [p for p in SPEC_FILES if not is_big(graph_of(p))]


@pytest.mark.parametrize("path", small_specs(), ids=_id)
def test_twin_with_the_same_weights_gives_the_same_outputs(path: Path) -> None:
    graph = graph_of(path)
    cpu = torch.device("cpu")
    model, twin = compiled(graph, cpu, seed=0), twin_of(graph, cpu)
    x = example(graph, cpu)
    if graph.name in STATE_MAPS:
        twin.load_state_dict(STATE_MAPS[graph.name](model.state_dict()), strict=True)
    else:
        copy_state(model, twin, x)
    for training in (False, True):  # eval: running statistics; training: batch statistics and dropout
        model.train(training)
        twin.train(training)
        torch.manual_seed(3)
        ours = model(x)
        torch.manual_seed(3)
        theirs = twin(x)
        assert ours.shape == (BATCH, *graph.output_shape)
        assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6), f"training={training}: max |diff| {(ours - theirs).abs().max():.3g}"
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        for a, b in zip(stateful_in_call_order(model, x), stateful_in_call_order(twin, x)):
            for key, value in a.state_dict().items():
                assert torch.allclose(value.float(), b.state_dict()[key].float(), rtol=1e-5, atol=1e-6), key


@pytest.mark.parametrize("path", small_specs(), ids=_id)
def test_one_backward_pass_gives_finite_gradients(path: Path) -> None:
    graph = graph_of(path)
    model = compiled(graph, torch.device("cpu")).train()
    x = example(graph, torch.device("cpu"))
    out = model(x)
    train = netspec.load(path).spec.train
    if train is not None and train.loss == "mse":
        loss = nn.functional.mse_loss(out, torch.zeros_like(out))
    else:  # a class per example, or per pixel for a segmentation network (N×C×H×W scores)
        target = torch.arange(BATCH) % out.shape[1]
        loss = nn.functional.cross_entropy(out, target.view(BATCH, *[1] * (out.dim() - 2)).expand(BATCH, *out.shape[2:]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} has no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


# --------------------------------------------------------------------------- initialisation
@pytest.mark.parametrize("path", small_specs(), ids=_id)
def test_weights_are_initialised_as_the_book_does(path: Path) -> None:
    """normal(0, 0.01) for the chapters before CNNs, xavier_uniform from LeNet on (D2L's train_ch6)."""
    spec = netspec.load(path).spec
    book = spec.init
    weight = book if isinstance(book, str) else book.weight  # a str: the (unvalidated) default, "default"
    if weight not in ("normal", "xavier_uniform"):
        pytest.skip(f"init {weight!r}: nothing to compare against")
    model = compiled(graph_of(path), torch.device("cpu"), seed=0)
    for name, layer in model.named_modules():
        if not isinstance(layer, (nn.Linear, nn.Conv2d)) or layer.weight.numel() < 100:
            continue
        w = layer.weight.detach()
        if book.weight == "normal":
            assert abs(w.std().item() - book.std) < 0.2 * book.std, name
            assert abs(w.mean().item() - book.mean) < 0.2 * book.std, name
        else:
            fan_in = w.shape[1] * math.prod(w.shape[2:])
            fan_out = w.shape[0] * math.prod(w.shape[2:])
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert w.abs().max().item() <= bound, name
            assert abs(w.std().item() - bound / math.sqrt(3)) < 0.2 * bound, name
    if book.bias == "zeros":
        assert all(torch.count_nonzero(m.bias) == 0 for m in model.modules() if isinstance(m, nn.Linear))


# --------------------------------------------------------------------------- files and training sections
@spec_files
def test_file_starts_with_the_schema_header(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    schema = Path(first.removeprefix(HEADER))
    assert first.startswith(HEADER)
    assert (path.parent / schema).resolve() == (ROOT / "docs" / "netspec.schema.json").resolve()


@spec_files
def test_description_cites_its_source(path: Path) -> None:
    spec = netspec.load(path).spec
    assert ("D2L" in spec.description) or ("torchvision" in spec.description), spec.description


@pytest.mark.parametrize("name", sorted(D2L_TRAIN))
def test_train_section_has_the_books_hyper_parameters(name: str) -> None:
    spec = netspec.load(SPECS_DIR / f"{name}.yaml").spec
    train = spec.train
    assert train is not None
    lr = train.lr if train.lr is not None else train.optimizer.lr  # type: ignore[union-attr]
    assert (train.batch_size, lr, train.epochs, train.resize) == D2L_TRAIN[name]
    if train.resize is not None:
        assert spec.input_shape == (1, train.resize, train.resize)


def test_imagenet_specs_have_no_training_section() -> None:
    for path in IMAGENET_FILES:
        spec = netspec.load(path).spec
        assert spec.train is None, path
        assert spec.input_shape == (3, 224, 224) and graph_of(path).output_shape == (1000,), path


def test_closed_form_twin_differs_only_in_its_solver() -> None:
    sgd = netspec.load(SPECS_DIR / "linear_regression.yaml").spec
    exact = netspec.load(SPECS_DIR / "linear_regression_closed_form.yaml").spec
    assert exact.train is not None and sgd.train is not None
    assert exact.train.solver == "closed_form" and sgd.train.solver == "sgd"
    assert exact.layers == sgd.layers and exact.init == sgd.init and exact.input == sgd.input
    assert exact.train.model_copy(update={"solver": "sgd"}) == sgd.train
