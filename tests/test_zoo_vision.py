"""Today's vision networks (specs/imagenet/*, specs/densenet.yaml) against torchvision.

For each: the spec's parameter count is torchvision's published number (the book's for
d2l's DenseNet); the hand-written twin (tests/twins_vision.py, torchvision's structure and
module names) loads the compiled module's state_dict with strict=True, and in eval mode
both give the same output on a small input; `netspec check` accepts the file.
tests/test_zoo.py runs its generic checks (shapes against a real forward pass, structure)
over these files too.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import netspec
from netspec.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from twins_vision import PUBLISHED_PARAMS, VISION_TWINS  # noqa: E402

SPECS = Path(__file__).resolve().parents[1] / "specs"
# spec file -> the smallest convenient input its twin and the compiled module both accept
ZOO = {
    "densenet.yaml": (1, 96, 96),
    "imagenet/densenet121.yaml": (3, 64, 64),
    "imagenet/mobilenet_v2.yaml": (3, 64, 64),
    "imagenet/mobilenet_v3_large.yaml": (3, 64, 64),
    "imagenet/efficientnet_b0.yaml": (3, 64, 64),
    "imagenet/regnet_y_400mf.yaml": (3, 64, 64),
    "imagenet/shufflenet_v2_x1_0.yaml": (3, 64, 64),
    "imagenet/convnext_tiny.yaml": (3, 64, 64),
}
zoo = pytest.mark.parametrize("spec", sorted(ZOO), ids=lambda s: Path(s).stem)


@zoo
def test_parameter_count_is_the_published_one(spec: str) -> None:
    graph = netspec.build_graph(SPECS / spec)
    with torch.device("meta"):
        model = netspec.compile(graph)
        twin = VISION_TWINS[graph.name]()
    assert graph.total_params == PUBLISHED_PARAMS[graph.name]
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in twin.parameters()) == graph.total_params


@zoo
@pytest.mark.usefixtures("one_thread")
def test_twin_loads_the_state_dict_strictly_and_gives_the_same_output(spec: str) -> None:
    graph = netspec.build_graph(SPECS / spec)
    model = netspec.compile(graph, seed=0).eval()
    with torch.no_grad():  # non-trivial running statistics, so batch norm is really compared
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
        for name, parameter in model.named_parameters():
            if name.endswith("layer_scale"):  # 1e-6 would hide the residual branch
                parameter.uniform_(0.5, 1.5)
    twin = VISION_TWINS[graph.name]().eval()
    twin.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, *ZOO[spec], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model(x), twin(x)
    assert ours.shape == theirs.shape == (2, graph.output_shape[0])
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5), f"max |diff| {(ours - theirs).abs().max():.3g}"


def test_netspec_check_accepts_the_zoo() -> None:
    result = CliRunner().invoke(main, ["check", *(str(SPECS / s) for s in sorted(ZOO))])
    assert result.exit_code == 0, result.output
    assert f"{len(ZOO)} of {len(ZOO)} specs valid" in result.output
