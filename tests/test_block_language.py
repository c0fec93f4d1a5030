"""The block language's extensions for today's networks: `block_in_*` (the block's own input
shape, in every layer of its body), `compact` lists (skipped layers leave no name and no
position, as torchvision's conditional `layers.append`), and blocks called with several inputs."""
from __future__ import annotations

import pytest

import netspec
from netspec.errors import SpecError


def build(text: str):
    return netspec.build_graph(netspec.load("t.yaml", text=text))


GATED = """
name: t
input: [4, 8, 8]
blocks:
  gated:
    params: {out: int}
    layers:
      - {op: conv2d, name: a, out: $out, kernel: 1}
      - {op: conv2d, name: b, out: $out, kernel: 1}
      # in_channels here is b's input (= out); block_in_channels is the block's input
      - {op: add, name: add, from: [b, input], when: "block_in_channels == out"}
layers:
  - {op: gated, name: same, out: 4}
  - {op: gated, name: wider, out: 6}
"""


def test_block_in_channels_is_the_blocks_input_in_every_layer() -> None:
    graph = build(GATED)
    assert "same.add" in graph and "wider.add" not in graph
    assert graph.output_shape == (6, 8, 8)


def test_in_channels_still_means_the_layers_own_input() -> None:
    """With `in_channels` (b's input, which has `out` channels) the add is kept in `wider` too,
    and 6 + 4 channels cannot be added: why blocks need `block_in_channels`."""
    with pytest.raises(SpecError, match="'wider.add': add needs shapes that broadcast .* 6×8×8 \\+ 4×8×8"):
        build(GATED.replace("block_in_channels == out", "in_channels == out"))


COMPACT = """
name: t
input: [4, 8, 8]
blocks:
  b:
    layers:
      - op: sequential
        name: s
        compact: COMPACT
        layers:
          - {op: conv2d, out: 4, kernel: 1, when: false}
          - {op: conv2d, out: 5, kernel: 1}
          - relu
layers:
  - {op: b, name: blk}
"""  # when: lives inside blocks (outside one it is an error)


def test_compact_lists_number_only_the_layers_kept() -> None:
    assert [n.name for n in build(COMPACT.replace("COMPACT", "true")).ops()] == ["blk.s.0", "blk.s.1"]
    assert [n.name for n in build(COMPACT.replace("COMPACT", "false")).ops()] == ["blk.s.1", "blk.s.2"]


def test_compact_is_a_strict_boolean() -> None:
    with pytest.raises(SpecError, match="compact"):
        build(COMPACT.replace("COMPACT", "1"))


def test_in_a_compact_list_alternatives_may_share_a_name() -> None:
    text = """
name: t
input: [4, 8, 8]
blocks:
  act:
    compact: true
    params: {kind: {type: str, choices: [relu, silu]}}
    layers:
      - {op: relu, name: activation, when: "kind == 'relu'"}
      - {op: silu, name: activation, when: "kind == 'silu'"}
      - {op: add, from: [activation, input]}
layers:
  - {op: act, name: a, kind: silu}
"""
    graph = build(text)
    assert graph.node("a.activation").op == "silu" and graph.node("a.1").inputs == ["a.activation", "input"]


def test_a_skipped_compact_layer_cannot_be_named_later() -> None:
    text = COMPACT.replace("COMPACT", "true").replace("{op: conv2d, out: 4, kernel: 1, when: false}",
                                                      "{op: conv2d, name: gone, out: 4, kernel: 1, when: false}")
    text = text.replace("      - relu\n", "      - {op: relu, from: gone}\n")
    with pytest.raises(SpecError, match="'from: gone' names no earlier layer in this scope"):
        build(text)


MULTI = """
name: t
input: [4, 8, 8]
blocks:
  fuse:
    params: {out: int}
    layers:
      - {op: conv2d, name: proj, from: input_2, out: $out, kernel: 1}
      - {op: add, from: [input, proj]}
layers:
  - {op: conv2d, name: a, out: 6, kernel: 1}
  - {op: conv2d, name: b, from: input, out: 3, kernel: 1}
  - {op: fuse, name: f, from: [a, b], out: 6}
"""


def test_a_block_called_with_several_inputs_sees_input_and_input_2() -> None:
    graph = build(MULTI)
    assert graph.node("f.proj").inputs == ["b"] and graph.node("f.1").inputs == ["a", "f.proj"]
    assert graph.output_shape == (6, 8, 8)


def test_a_missing_extra_input_is_a_located_error() -> None:
    with pytest.raises(SpecError, match=r"'from: input_2' names no earlier layer in this scope .*\(known: input\)"):
        build(MULTI.replace("from: [a, b]", "from: a").replace("from: input_2", "from: input_2"))


PREVIOUS = """
name: t
input: [4, 8, 8]
blocks:
  gate:
    compact: true
    params: {pre: bool}
    layers:
      - {op: conv2d, name: a, out: 4, kernel: 1, when: pre}
      - {op: conv2d, name: b, out: 4, kernel: 3, padding: 1, when: "not pre"}
      # -1: the previous layer, whichever alternative it was; input_2: the second input
      - {op: add, name: add, from: [-1, input_2]}
layers:
  - {op: conv2d, name: side, out: 4, kernel: 1}
  - {op: gate, name: g1, from: [input, side], pre: true}
  - {op: gate, name: g2, from: [-1, side], pre: false}
"""


def test_from_minus_one_is_the_previous_layer() -> None:
    graph = build(PREVIOUS)
    assert graph.node("g1.add").inputs == ["g1.a", "side"]
    assert graph.node("g2.b").inputs == ["g1.add"] and graph.node("g2.add").inputs == ["g2.b", "side"]


def test_other_negative_positions_are_refused() -> None:
    with pytest.raises(SpecError, match=r"from: a position counts from 0, and -1 is the previous layer; got \[-2, 'side'\]"):
        build(PREVIOUS.replace("from: [-1, side]", "from: [-2, side]"))
