"""What the data-parallel tests share (tests/test_distributed.py, tests/test_elastic.py): the
small regression MLP both train over several processes, and a free TCP port for rendezvous.

tests/ is not a package: test files put this folder on `sys.path` and `from ddp import ...`.
"""
from __future__ import annotations

import socket


def ddp_mlp(examples: int, epochs: int, extra: str = "") -> str:
    """The spec text: a 4-16-1 tanh MLP on `examples` synthetic regression points; `extra`
    holds further `train:` lines (indented by two spaces, ending in a newline)."""
    return f"""
name: ddp_mlp
input: [4]
layers:
  - {{op: linear, out: 16}}
  - tanh
  - {{op: linear, out: 1}}
train:
  dataset: {{name: synthetic_regression, true_w: [1, -2, 0.5, 3], true_b: 0.3, examples: {examples}}}
  loss: mse
  batch_size: 32
  epochs: {epochs}
  lr: 0.05
  momentum: 0.9
{extra}"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
