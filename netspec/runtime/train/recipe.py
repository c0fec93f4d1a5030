"""Training-recipe pieces that are not the loop itself: parameter groups without weight decay,
test-time augmentation, and the choice of autocast ("auto": bf16 where the hardware has it)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from netspec.compiler import registry
from netspec.compiler.graph import Graph
from netspec.errors import TrainingError

__all__ = ["check_cpu_bf16", "cpu_has_bf16", "param_groups", "pick_amp", "tta_forward"]

_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def param_groups(model: nn.Module, weight_decay: float, exempt_norm_bias: bool) -> list[dict[str, Any]]:
    """One group, or two: weights of non-norm layers decay, norm parameters and biases do not.

    Parameters are found by module (a norm layer's weight and bias) and by name (any `bias`),
    each once, in the model's own order (so an optimizer state dict is stable across runs).
    """
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not exempt_norm_bias:
        return [{"params": [p for _, p in params], "weight_decay": weight_decay}]
    exempt = {id(p) for m in model.modules() if isinstance(m, _NORMS) for p in m.parameters(recurse=False)}
    exempt |= {id(p) for n, p in params if n.rsplit(".", 1)[-1] == "bias"}
    decay = [p for _, p in params if id(p) not in exempt]
    plain = [p for _, p in params if id(p) in exempt]
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}) if g["params"]]


def tta_forward(model: nn.Module, x: torch.Tensor, tta: str | None) -> torch.Tensor:
    """The model's logits; with `flip`, the mean of the logits of x and of x mirrored left-right
    (images only: a flat input has no left and right)."""
    out = model(x)
    if tta == "flip" and x.dim() == 4:
        out = (out + model(x.flip(3))) / 2
    return out


def cpu_has_bf16() -> bool:
    """Whether oneDNN has bf16 kernels on this CPU: AVX-512 (BW, VL, DQ), native with
    AVX512-BF16 or AMX, where bf16 autocast pays; torch's `mkldnn_bf16_device_check`."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_amp(amp: str | None, device: torch.device) -> str | None:
    """`auto` -> bf16 on a CUDA GPU with bf16 and on a CPU with oneDNN bf16 kernels (AVX-512), else no autocast."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else None
    return "bf16" if cpu_has_bf16() else None


def check_cpu_bf16(graph: Graph, amp: str | None, device: torch.device) -> None:
    """Refuse bf16 autocast on a CPU without oneDNN's bf16 kernels for a network with a layer that torch
    runs there only with oneDNN's bf16 kernel (LSTM), before a run folder is made: torch would
    fail at the first batch."""
    if amp != "bf16" or device.type != "cpu" or cpu_has_bf16():
        return
    for node in graph.ops():
        op = registry.get(node.op)
        if op is not None and op.amp_cpu_native:
            raise TrainingError(
                f"--amp bf16: layer {node.name!r} ({node.op}) runs under CPU bf16 autocast only where oneDNN has bf16 kernels "
                "(a CPU with AVX-512), which this one lacks; train without --amp (--amp auto picks bf16 only where the CPU has it)")
