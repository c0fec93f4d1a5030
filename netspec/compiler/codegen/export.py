"""Write a compiled network to a file chosen by suffix: `.py` source or `.onnx`."""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

from netspec.compiler.graph import Graph
from netspec.errors import NetspecError


def write_text_atomically(output: Path, text: str) -> Path:
    """Write through a temporary file and a rename, so a failure never leaves half a file;
    an unwritable place is a one-line error, and the temporary file is removed."""
    tmp = output.with_name(output.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(output)
    except OSError as exc:
        if tmp.is_file():
            tmp.unlink()
        raise NetspecError(f"{output}: cannot write ({exc.strerror or exc})") from None
    return output


def write(graph: Graph, output: Path) -> Path:
    suffix = output.suffix.lower()
    if suffix == ".py":
        from netspec.compiler.codegen.source import to_source

        return write_text_atomically(output, to_source(graph))
    if suffix == ".onnx":
        if importlib.util.find_spec("onnx") is None:
            raise NetspecError("ONNX export needs the optional dependency: pip install 'netspec[onnx]'")
        import torch

        from netspec.compiler.codegen.torch_fx import to_graph_module

        module = to_graph_module(graph).eval()
        dtype = torch.long if hasattr(graph.input_shape, "vocab") else torch.float32  # token ids are integers
        example = torch.zeros(1, *graph.input_shape, dtype=dtype)
        try:
            # The TorchScript-based exporter: it needs only `onnx` (the torch.export-based one
            # also needs onnxscript); it warns that it is deprecated, which is ours to know.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(module, (example,), str(output), input_names=["x"], output_names=["y"],
                                  dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
        except Exception as exc:  # the exporter's own limits (unsupported ops or sizes)
            output.unlink(missing_ok=True)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise NetspecError(f"{output}: ONNX export failed: {reason}") from None
        return output
    raise NetspecError(f"{output}: unknown output format {suffix or '(none)'}; use .py or .onnx")
