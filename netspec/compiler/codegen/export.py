"""Write a compiled network to a file chosen by suffix: `.py` source or `.onnx`."""
from __future__ import annotations

import importlib.util
import io
import warnings
from pathlib import Path

from netspec.compiler.graph import Graph
from netspec.compiler.passes.share import tied
from netspec.errors import NetspecError


def write_text_atomically(output: Path, text: str) -> Path:
    """`write_atomically` for text (UTF-8)."""
    try:
        data = text.encode("utf-8")
    except UnicodeError as exc:  # e.g. a lone surrogate from a path that was not UTF-8
        raise NetspecError(f"{output}: cannot write ({exc})") from None
    return write_atomically(output, data)


def write_atomically(output: Path, data: bytes) -> Path:
    """Through netspec.files.atomic_write: a failure leaves the old file as it was; an
    unwritable place is a one-line error."""
    from netspec.files import atomic_write

    try:
        return atomic_write(output, data)
    except OSError as exc:
        raise NetspecError(f"{output}: cannot write ({exc.strerror or exc})") from None


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
        buffer = io.BytesIO()  # exported in memory: a failed export never touches `output`
        try:
            # The TorchScript-based exporter: it needs only `onnx` (the torch.export-based one
            # also needs onnxscript); it warns that it is deprecated, which is ours to know.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(module, (example,), buffer, input_names=["x"], output_names=["y"],
                                  dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False,
                                  # folding would store a shared weight twice (once transposed for a MatMul)
                                  do_constant_folding=not tied(graph))
        except Exception as exc:  # the exporter's own limits (unsupported ops or sizes)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise NetspecError(f"{output}: ONNX export failed: {reason}") from None
        return write_atomically(output, buffer.getvalue())
    raise NetspecError(f"{output}: unknown output format {suffix or '(none)'}; use .py or .onnx")
