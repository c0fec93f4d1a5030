"""Channel and axis rearrangements: chunk, split, channel_shuffle, permute (ShuffleNet, ConvNeXt).

The channel axis is the first non-batch dimension (torch's dim=1). Chunk and split give one
piece each (`index`), so a spec names every piece it uses as a layer; both are `torch.narrow`
views in the generated code.
"""
from __future__ import annotations

from typing import Any

from netspec.compiler.registry import Attrs, Emit, OpDef, examples, register
from netspec.compiler.schema_base import MAX_INT, Model, NonNegInt, PosInt, value_type
from netspec.compiler.shapes import Shape, ShapeError, fmt


def _int_list(check: Any) -> Any:
    return lambda v: isinstance(v, (list, tuple)) and 0 < len(v) <= 64 and all(check(x) for x in v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


PosIntList = value_type(
    "positive_int_list", "a list of positive integers", _int_list(lambda x: _is_int(x) and 0 < x <= MAX_INT),
    {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "maxItems": 64},
)
NonNegIntList = value_type(
    "non_negative_int_list", "a list of non-negative integers", _int_list(lambda x: _is_int(x) and 0 <= x <= 64),
    {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "maxItems": 64},
)


def _narrow(start: int, length: int) -> Emit:
    import torch

    return Emit(lambda e, xs: e.call(torch.narrow, xs[0], 1, start, length))


# ---------------------------------------------------------------- chunk
class ChunkParams(Model):
    """Piece `index` of x.chunk(chunks, dim=1)."""

    chunks: PosInt
    index: NonNegInt = 0


def _chunk_piece(a: Attrs, ins: list[Shape]) -> tuple[int, int]:
    """(start, length) of the piece, as torch.chunk cuts: pieces of ceil(C/chunks), the last shorter."""
    c, chunks, index = ins[0][0], a["chunks"], a["index"]
    size = -(-c // chunks)
    pieces = -(-c // size)
    if index >= pieces:
        lengths = [min(size, c - k * size) for k in range(pieces)]
        raise ShapeError(
            f"index {index} is out of range: chunk of {c} channels into {chunks} gives {pieces} piece(s) of "
            f"ceil({c}/{chunks}) = {size} ({', '.join(map(str, lengths))})"
        )
    return index * size, min(size, c - index * size)


def _chunk_shape(a: Attrs, ins: list[Shape]) -> Shape:
    return (_chunk_piece(a, ins)[1], *ins[0][1:])


register(
    OpDef(
        name="chunk",
        params=ChunkParams,
        shape=_chunk_shape,
        torch=lambda a, ins: _narrow(*_chunk_piece(a, ins)),
        family="reshape",
        label=lambda a: f"chunk {a['index']}/{a['chunks']}",
        doc="One piece (index) of x.chunk(chunks, dim=1): channel pieces of ceil(C/chunks), the last may be shorter.",
        examples=examples(({"chunks": 2}, (4, 3, 3)), ({"chunks": 2, "index": 1}, (4, 3, 3)), ({"chunks": 3, "index": 2}, (7,))),
    )
)


# ---------------------------------------------------------------- split
class SplitParams(Model):
    """Piece `index` of x.split(sizes, dim=1)."""

    sizes: PosIntList
    index: NonNegInt = 0


def _split_piece(a: Attrs, ins: list[Shape]) -> tuple[int, int]:
    c, sizes, index = ins[0][0], a["sizes"], a["index"]
    if sum(sizes) != c:
        raise ShapeError(f"sizes {' + '.join(map(str, sizes))} = {sum(sizes)} must add up to the {c} input channels")
    if index >= len(sizes):
        raise ShapeError(f"index {index} is out of range: {len(sizes)} sizes")
    return sum(sizes[:index]), sizes[index]


register(
    OpDef(
        name="split",
        params=SplitParams,
        shape=lambda a, ins: (_split_piece(a, ins)[1], *ins[0][1:]),
        torch=lambda a, ins: _narrow(*_split_piece(a, ins)),
        family="reshape",
        label=lambda a: f"split {a['index']} of {'/'.join(map(str, a['sizes']))}",
        doc="One piece (index) of x.split(sizes, dim=1); the sizes must add up to the channels.",
        examples=examples(({"sizes": [1, 3]}, (4, 3, 3)), ({"sizes": [2, 3, 1], "index": 1}, (6,))),
    )
)


# ---------------------------------------------------------------- channel_shuffle
class ChannelShuffleParams(Model):
    """Interleave the channels of `groups` groups (ShuffleNet)."""

    groups: PosInt


def _shuffle_shape(a: Attrs, ins: list[Shape]) -> Shape:
    if len(ins[0]) != 3:
        raise ShapeError(f"channel_shuffle expects a channels×height×width input, got {fmt(ins[0])}")
    if ins[0][0] % a["groups"]:
        raise ShapeError(f"groups={a['groups']} must divide the {ins[0][0]} input channels")
    return ins[0]


def _shuffle_torch(a: Attrs, ins: list[Shape]) -> Emit:
    """unflatten, transpose, flatten: torchvision's view/transpose/view without the batch size
    (nn.ChannelShuffle computes the same but does not export to ONNX)."""
    import torch

    g = a["groups"]

    def build(e, xs):
        x = e.call(torch.unflatten, xs[0], 1, (g, ins[0][0] // g))
        return e.call(torch.flatten, e.call(torch.transpose, x, 1, 2), 1, 2)

    return Emit(build)


register(
    OpDef(
        name="channel_shuffle",
        params=ChannelShuffleParams,
        shape=_shuffle_shape,
        torch=_shuffle_torch,
        family="reshape",
        label=lambda a: f"shuffle ×{a['groups']}",
        doc="ShuffleNet's channel shuffle: C = groups·k channels reordered as k×groups (torchvision's channel_shuffle).",
        examples=examples(({"groups": 2}, (6, 3, 3)), ({"groups": 3}, (6, 2, 2))),
    )
)


# ---------------------------------------------------------------- permute
class PermuteParams(Model):
    """Reorder the non-batch dimensions: [1, 2, 0] turns C×H×W into H×W×C."""

    dims: NonNegIntList


def _permute_shape(a: Attrs, ins: list[Shape]) -> Shape:
    dims, rank = a["dims"], len(ins[0])
    if sorted(dims) != list(range(rank)):
        raise ShapeError(
            f"dims {dims} must order the {rank} non-batch dimensions of {fmt(ins[0])} "
            f"(a permutation of {list(range(rank))}; the batch stays first)"
        )
    return tuple(ins[0][d] for d in dims)


def _permute_torch(a: Attrs, ins: list[Shape]) -> Emit:
    import torch

    dims = [0, *(d + 1 for d in a["dims"])]
    return Emit(lambda e, xs: e.call(torch.permute, xs[0], dims))


register(
    OpDef(
        name="permute",
        params=PermuteParams,
        shape=_permute_shape,
        torch=_permute_torch,
        family="reshape",
        label=lambda a: "permute " + "".join(map(str, a["dims"])),
        doc="Reorder the non-batch dimensions (torch.permute with the batch kept first): [1, 2, 0] is NCHW -> NHWC.",
        examples=examples(({"dims": [1, 2, 0]}, (3, 4, 5)), ({"dims": [2, 0, 1]}, (4, 5, 3)), ({"dims": [0]}, (6,))),
    )
)
