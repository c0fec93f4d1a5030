"""Shape arithmetic shared by the op rules: the window formula and readable shapes.

Shapes never include the batch dimension: `(C, H, W)` for images, `(F,)` for features,
`(T, D)` for sequences (steps × features). Integer token ids `(T,)` are a `Tokens` shape,
which also carries the vocabulary size; every other shape holds floats.
"""
from __future__ import annotations

import math
from typing import Any

Shape = tuple[int, ...]


class Tokens(tuple):
    """A shape of integer token ids (`(T,)`) from a vocabulary of `vocab` ids.

    A tuple, so rules that only read dimensions work unchanged; ops that take token ids
    say so (`OpDef.takes_tokens`), every other op refuses them before its rule runs.
    """

    vocab: int

    def __new__(cls, dims: tuple[int, ...], vocab: int) -> "Tokens":
        self = super().__new__(cls, dims)
        self.vocab = vocab
        return self

    def __reduce__(self) -> Any:
        return (Tokens, (tuple(self), self.vocab))

    def __repr__(self) -> str:
        return f"Tokens({tuple(self)!r}, vocab={self.vocab})"


class ShapeError(ValueError):
    """A shape rule failed; the message explains the numbers, the caller adds the location."""


def fmt(shape: Shape) -> str:
    text = "×".join(str(d) for d in shape)
    return f"{text} token ids (vocab {shape.vocab})" if isinstance(shape, Tokens) else text


def pair(value: Any) -> tuple[int, int]:
    """`3` or `[3, 3]` -> `(3, 3)`."""
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def window_out(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool, shape: Shape) -> int:
    """`floor((n + 2p - d(k-1) - 1)/s) + 1` (or ceil), as torch computes conv and pool sizes."""
    numerator = n + 2 * p - d * (k - 1) - 1
    rounding = "ceil" if ceil_mode else "floor"
    out = (math.ceil(numerator / s) if ceil_mode else numerator // s) + 1
    if ceil_mode and out > 0 and (out - 1) * s >= n + p:
        out -= 1  # torch: the last window must start inside the (left-padded) input
    if out <= 0:
        raise ShapeError(
            f"input {fmt(shape)} is smaller than kernel {d * (k - 1) + 1 if d > 1 else k} "
            f"({rounding}(({n} + 2·{p} - {d}·({k}-1) - 1)/{s}) + 1 = {out})"
        )
    return out


def require_image(shape: Shape, what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(f"{what} expects a channels×height×width input, got {fmt(shape)}")
    return shape  # type: ignore[return-value]


def require_features(shape: Shape, what: str) -> int:
    if len(shape) != 1:
        raise ShapeError(f"{what} expects a features input, got {fmt(shape)} (add a flatten layer before it)")
    return shape[0]


def require_sequence(shape: Shape, what: str) -> tuple[int, int]:
    if len(shape) != 2:
        raise ShapeError(f"{what} expects a steps×features sequence ([T, D]), got {fmt(shape)}")
    return shape  # type: ignore[return-value]
