"""Write a compiled network to a file chosen by suffix: `.py` source or `.onnx`."""
from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

from netspec.compiler.graph import Graph
from netspec.errors import NetspecError


def _temporary(output: Path) -> Path:
    """A new, unique, empty file beside `output` (same folder, so the rename is atomic), with
    the mode the final file should have."""
    fd, name = tempfile.mkstemp(dir=output.parent, prefix=".netspec-", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


def _replace(tmp: Path, output: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, output)


def write_text_atomically(output: Path, text: str) -> Path:
    """Write to a unique temporary file in the target folder, fsync, rename: a failure never
    leaves half a file or removes the old one; an unwritable place is a one-line error."""
    tmp: Path | None = None
    try:
        tmp = _temporary(output)
        tmp.write_text(text, encoding="utf-8")
        _replace(tmp, output)
    except (OSError, UnicodeError) as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise NetspecError(f"{output}: cannot write ({reason})") from None
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
        example = torch.zeros(1, *graph.input_shape)
        try:
            tmp = _temporary(output)
        except OSError as exc:
            raise NetspecError(f"{output}: cannot write ({exc.strerror or exc})") from None
        try:
            # The TorchScript-based exporter: it needs only `onnx` (the torch.export-based one
            # also needs onnxscript); it warns that it is deprecated, which is ours to know.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(module, (example,), str(tmp), input_names=["x"], output_names=["y"],
                                  dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
            _replace(tmp, output)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise NetspecError(f"{output}: cannot write ({exc.strerror or exc})") from None
        except Exception as exc:  # the exporter's own limits (unsupported ops or sizes)
            tmp.unlink(missing_ok=True)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise NetspecError(f"{output}: ONNX export failed: {reason}") from None
        return output
    raise NetspecError(f"{output}: unknown output format {suffix or '(none)'}; use .py or .onnx")
