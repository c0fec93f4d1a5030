"""Every complete spec shown in docs/spec.md is valid and compiles to what it says."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import netspec

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _examples() -> list[tuple[str, str]]:
    text = (DOCS / "spec.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    return [(re.search(r"^name: (\w+)", b, re.M).group(1), b) for b in blocks if re.search(r"^name:", b, re.M) and "\nlayers:" in b]


@pytest.mark.parametrize("name,text", _examples(), ids=[n for n, _ in _examples()])
def test_doc_example_is_valid_and_runs(name: str, text: str) -> None:
    import torch

    graph = netspec.build_graph(netspec.load(f"docs/spec.md#{name}", text=text))
    model = netspec.compile(graph)
    tokens = hasattr(graph.input_shape, "vocab")  # `input: {tokens: T, vocab: V}` takes integer ids
    out = model(torch.zeros(2, *graph.input_shape, dtype=torch.long if tokens else torch.float32))
    assert tuple(out.shape[1:]) == graph.output_shape
    assert sum(p.numel() for p in model.parameters()) == graph.total_params


def test_docs_have_examples() -> None:
    assert len(_examples()) >= 8
