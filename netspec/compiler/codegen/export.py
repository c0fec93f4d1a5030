"""Write a compiled network to a file chosen by suffix: `.py` source or `.onnx`."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from netspec.compiler.graph import Graph
from netspec.errors import NetspecError


def write(graph: Graph, output: Path) -> Path:
    suffix = output.suffix.lower()
    if suffix == ".py":
        from netspec.compiler.codegen.source import to_source

        text = to_source(graph)
        tmp = output.with_name(output.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(output)
        return output
    if suffix == ".onnx":
        if importlib.util.find_spec("onnx") is None:
            raise NetspecError("ONNX export needs the optional dependency: pip install 'netspec[onnx]'")
        import torch

        from netspec.compiler.codegen.torch_fx import to_graph_module

        module = to_graph_module(graph).eval()
        example = torch.zeros(1, *graph.input_shape)
        torch.onnx.export(module, (example,), str(output), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
        return output
    raise NetspecError(f"{output}: unknown output format {suffix or '(none)'}; use .py or .onnx")
