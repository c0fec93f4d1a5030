"""Pieces of spec text that several tests' own specs share (tests/test_draw.py, tests/test_viewer.py).

tests/ is not a package: test files put this folder on `sys.path` and `from spec_parts import ...`.
"""
from __future__ import annotations

# A user block in ResNet's basic form with a `when:` shortcut (a 1×1 conv only where the
# channels or the stride change), as the `blocks:` section of a spec.
BASIC_BLOCK = """\
blocks:
  basic:
    params: {out: int, stride: {type: int, default: 1}}
    layers:
      - {op: conv2d, name: conv1, out: $out, kernel: 3, padding: 1, stride: $stride, bias: false}
      - {op: batchnorm, name: bn1}
      - {op: relu, name: r1}
      - {op: conv2d, name: conv2, out: $out, kernel: 3, padding: 1, bias: false}
      - {op: batchnorm, name: bn2}
      - {op: conv2d, name: down, from: input, out: $out, kernel: 1, stride: $stride, when: "in_channels != out or stride != 1"}
      - {op: add, name: add, from: [bn2, down]}
      - relu
"""
