"""The pass contract: one table of named Graph -> Graph passes, the graph verified between
them, shape inference once, an open `meta` per node, and lint over the public interface."""
from __future__ import annotations

import dataclasses
import inspect

import pytest

import netspec
from netspec.compiler import registry
from netspec.compiler.graph import INPUT, Graph, Node
from netspec.compiler.passes import PASSES, Pass, PassError, dump, run_passes
from netspec.errors import SpecError

MLP = "name: m\ninput: [1, 4, 4]\nlayers: [flatten, {op: linear, out: 8}, relu, {op: linear, out: 3}]\n"


def chain(*ops: tuple[str, dict]) -> Graph:
    """A graph built from Python: input -> op0 -> op1 -> ..., no shapes yet."""
    graph = Graph("py", (1, 4, 4))
    graph.add(Node(INPUT, INPUT, {}, []))
    previous = INPUT
    for i, (op, attrs) in enumerate(ops):
        graph.add(Node(f"n{i}", op, attrs, [previous]))
        previous = f"n{i}"
    graph.output = previous
    return graph


def test_the_table_names_every_pass_and_each_returns_the_graph() -> None:
    assert [p.name for p in PASSES] == ["lint", "shapes", "counts", "share", "inplace"]
    seen = []
    graph = run_passes(chain(("flatten", {"start": 0, "end": -1}), ("linear", {"out": 5, "bias": True})), after=seen.append)
    assert [r.name for r in seen] == ["lint", "shapes", "counts", "share", "inplace"] and all(r.graph is graph and r.seconds >= 0 for r in seen)
    assert graph.node("n1").shape == (5,) and graph.node("n1").params == 16 * 5 + 5  # nn.Linear(16, 5)


def test_a_pass_that_breaks_the_graph_is_named() -> None:
    def drop_the_flatten(graph: Graph) -> Graph:
        del graph._nodes["n0"]  # a buggy pass: n1 now reads a node that does not exist
        return graph

    with pytest.raises(PassError, match=r"pass 'drop' left the graph invalid: node 'n1': input 'n0' does not exist"):
        run_passes(chain(("flatten", {"start": 0, "end": -1}), ("relu", {})), PASSES + (Pass("drop", drop_the_flatten, "a bug"),))


def test_shape_rules_run_once_per_node(monkeypatch) -> None:
    calls: list[str] = []
    linear = registry.get("linear")

    def counting(attrs, inputs):
        calls.append("linear")
        return linear.shape(attrs, inputs)

    monkeypatch.setitem(registry._OPS, "linear", dataclasses.replace(linear, shape=counting))
    graph = netspec.build_graph(netspec.load("m.yaml", text=MLP))
    assert calls == ["linear", "linear"]  # two linear layers in MLP, each shaped once
    assert graph.output_shape == (3,)


def test_meta_is_open_to_later_passes() -> None:
    def tag(graph: Graph) -> Graph:
        for node in graph:
            node.meta["fan_in"] = len(node.inputs)
        return graph

    graph = run_passes(chain(("relu", {}), ("sigmoid", {})), PASSES + (Pass("tag", tag, "fan-in"),))
    assert [n.meta for n in graph] == [{"fan_in": 0}, {"fan_in": 1}, {"fan_in": 1}]
    assert "meta={'fan_in': 1}" in dump(graph)


def test_lint_reports_a_cycle_in_data_flow_order() -> None:
    graph = chain(("relu", {}), ("sigmoid", {}), ("relu", {}))
    graph.node("n0").inputs = ["n2"]  # n0 -> n1 -> n2 -> n0
    with pytest.raises(SpecError, match=r"the network has a cycle: (n0 -> n1 -> n2 -> n0|n1 -> n2 -> n0 -> n1|n2 -> n0 -> n1 -> n2)"):
        run_passes(graph)


def test_lint_uses_only_the_graphs_public_interface() -> None:
    from netspec.compiler.passes import lint

    assert "._" not in inspect.getsource(lint)


def test_verify_catches_what_passes_must_keep() -> None:
    graph = chain(("relu", {}))
    graph.verify()
    graph._nodes["other"] = graph.node("n0")
    with pytest.raises(ValueError, match="filed under 'other'"):
        graph.verify()


def test_the_cli_dumps_each_pass_when_asked(tmp_path) -> None:
    import subprocess
    import sys

    spec = tmp_path / "m.yaml"
    spec.write_text(MLP)
    env = {"NETSPEC_DUMP_PASSES": "1", "PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-m", "netspec", "check", str(spec)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    headers = [line for line in result.stderr.splitlines() if line.startswith("netspec: after pass")]
    assert [h.split()[3] for h in headers] == ["lint", "shapes", "counts", "share", "inplace"] and all(h.endswith("ms):") for h in headers)
    assert "  1 = linear(0) {'out': 8, 'bias': True} -> 8  params=136 macs=128" in result.stderr  # 16·8 + 8 after counts
    quiet = subprocess.run([sys.executable, "-m", "netspec", "check", str(spec)], capture_output=True, text=True,
                           env={"PYTHONPATH": env["PYTHONPATH"]})
    assert "after pass" not in quiet.stderr
