"""`members:` names the copies of a named repeat as torchvision does (denselayer1, block2-0).

The truth is a hand-written module whose children are added with those names: the compiled
spec must have the same state_dict keys and, with its weights, give the same output.
"""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

import netspec
from netspec.errors import SpecError

SPEC = """
name: members_demo
input: [3, 8, 8]
blocks:
  unit:
    layers:
      - {op: conv2d, name: conv, out: 4, kernel: 3, padding: 1}
      - {op: relu, name: act}
layers:
  - {op: unit, name: block, repeat: 3, members: layer1}
  - {op: unit, name: stage, repeat: 2, members: stage1-0}
  - {op: unit, name: single, members: x7}
"""


def twin() -> nn.Module:
    def unit(c_in: int) -> nn.Module:
        return nn.Sequential(OrderedDict(conv=nn.Conv2d(c_in, 4, 3, padding=1), act=nn.ReLU()))

    net = nn.Sequential()
    block = nn.Sequential()
    for k in range(3):
        block.add_module(f"layer{k + 1}", unit(3 if k == 0 else 4))
    stage = nn.Sequential()
    for k in range(2):
        stage.add_module(f"stage1-{k}", unit(4))
    single = nn.Sequential()
    single.add_module("x7", unit(4))
    net.add_module("block", block)
    net.add_module("stage", stage)
    net.add_module("single", single)
    return net


def test_members_are_named_by_counting_up_the_first_name() -> None:
    model = netspec.compile(netspec.load("members.yaml", text=SPEC), seed=0)
    reference = twin()
    assert list(model.state_dict()) == list(reference.state_dict())
    reference.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(model(x), reference(x))


@pytest.mark.parametrize(
    "layer, message",
    [
        ("{op: relu, repeat: 2, members: a1}", "members: needs a name"),
        ("{op: relu, name: g, repeat: 2, members: layer}", "members"),
        ("{op: relu, name: g, repeat: 2, members: 1layer1}", "members"),
        ("{op: relu, name: g, repeat: 2, members: bfloat16}", "torch module attribute"),
    ],
)
def test_bad_members_are_one_located_error(layer: str, message: str) -> None:
    text = f"name: bad\ninput: [3, 8, 8]\nlayers:\n  - {layer}\n"
    with pytest.raises(SpecError) as info:
        netspec.build_graph(netspec.load("bad.yaml", text=text))
    (diagnostic,) = info.value.diagnostics
    assert message in diagnostic.message
    assert diagnostic.location is not None and diagnostic.location.line == 4
