"""Hand-written PyTorch twins of the sine-wave regressors (specs/sine_mlp.yaml, sine_rnn.yaml).

`sine_mlp` is D2L 9.1's (0.17 ed.: 8.1's) `get_net()` line for line; `sine_rnn` reads the
same tau = 4 lagged values as 4 steps of one feature with nn.RNN and maps its final hidden
state to one prediction, as D2L 9.6's RNNModel maps states to outputs.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def sine_mlp() -> nn.Module:
    """D2L's `get_net()`: nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 1)), Xavier weights."""

    def init_weights(m: nn.Module) -> None:
        if type(m) == nn.Linear:  # noqa: E721  (the book's test)
            nn.init.xavier_uniform_(m.weight)

    net = nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 1))
    net.apply(init_weights)
    return net


class SineRNN(nn.Module):
    """nn.RNN over the lagged values as steps, its final hidden state, a linear layer to x_t."""

    def __init__(self, tau: int = 4, num_hiddens: int = 16):
        super().__init__()
        self.tau = tau
        self.rnn = nn.RNN(1, num_hiddens, batch_first=True)
        self.linear = nn.Linear(num_hiddens, 1)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        _, H = self.rnn(X.reshape(-1, self.tau, 1))
        return self.linear(H[-1])


SERIES_TWINS: dict[str, Callable[[], nn.Module]] = {"sine_mlp": sine_mlp, "sine_rnn": SineRNN}
