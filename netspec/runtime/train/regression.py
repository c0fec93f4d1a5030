"""Linear regression without gradient descent: least squares, the normal equation's answer.

For a network that is one linear layer, the squared loss has the closed-form minimiser
ŵ = argmin ‖[X 1] w − y‖²; `torch.linalg.lstsq` computes it stably (QR, not the explicit
inverse of XᵀX). The textbook shows this next to minibatch SGD, which should land on the
same weights.
"""
from __future__ import annotations

import torch
from torch import nn

from netspec.errors import TrainingError


def only_linear(model: nn.Module) -> nn.Linear:
    """The single `nn.Linear` holding all of the model's parameters, or a `TrainingError`."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    with_params = [name for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    if len(linears) != 1 or len(with_params) != 1:
        raise TrainingError(
            "solver closed_form needs a network whose only parameters are one linear layer; "
            f"this one has parameters in {', '.join(with_params) or 'no layer'}"
        )
    return linears[0]


def solve_closed_form(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Set the model's linear layer to the least-squares fit of y (N×K) on x (N×F), in float64."""
    layer = only_linear(model)
    x = x.reshape(len(x), -1).to(torch.float64)
    y = y.reshape(len(y), -1).to(torch.float64)
    if x.shape[1] != layer.in_features or y.shape[1] != layer.out_features:
        raise TrainingError(
            f"solver closed_form: data has {x.shape[1]} features and {y.shape[1]} targets, "
            f"the linear layer maps {layer.in_features} -> {layer.out_features}"
        )
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1) if layer.bias is not None else x
    if len(design) < design.shape[1]:
        raise TrainingError(f"solver closed_form: {len(design)} examples for {design.shape[1]} unknowns; need at least as many")
    solution = torch.linalg.lstsq(design.cpu(), y.cpu()).solution  # (F[+1])×K
    with torch.no_grad():
        layer.weight.copy_(solution[: layer.in_features].T.to(layer.weight))
        if layer.bias is not None:
            layer.bias.copy_(solution[layer.in_features].to(layer.bias))
