"""What a diagram shows, decided before any drawing: boxes, clusters and edges as plain data.

The graph IR has one node per primitive op; a readable picture has fewer things. This
module decides, with no graphviz in sight (so it is easy to test and reason about):

- which scopes become clusters: every block instance, and every group the spec *names*
  (`{op: sequential, name: b3}`, a named repeat, a named parallel); positional groups
  (named "0", "1", ...) are not drawn, their contents are;
- `depth`: a cluster with `depth` drawn clusters around it is drawn as one box holding all
  it contains (0: every top-level block is one box; None: nothing is collapsed);
- repeats: a run of consecutive sibling instances with the same kind, the same arguments,
  the same inner structure and shape in == shape out is drawn once, marked `×n`;
- activations: an activation right after an op that feeds nothing else joins that op's box
  ("conv 5×5, 6 + sigmoid"), which roughly halves the boxes of most networks;
- ops with `OpDef.parts` (attention) are drawn as a cluster of their steps, each edge with
  the shape on it: the projections' [T, 3·D], the heads' [T, D].
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netspec.compiler import registry
from netspec.compiler.graph import INPUT, Graph, Node, Scope
from netspec.compiler.registry import Part
from netspec.compiler.shapes import Shape

OUTPUT_ID = "netspec/output"
BLOCK_PREFIX = "block/"
CLUSTER_PREFIX = "cluster_"
PART_SEPARATOR = "/"  # `<node>/<part>`: node names never hold one
MERGED_FAMILY = "activation"  # the family whose nodes join the op before them


@dataclass
class OpBox:
    """One primitive op, with the activations merged into it."""

    id: str
    nodes: list[Node]

    @property
    def family(self) -> str:
        return _family(self.nodes[0])

    @property
    def labels(self) -> list[str]:
        return [_label(n) for n in self.nodes]


@dataclass
class BlockBox:
    """A collapsed block (or a run of identical ones): one box for everything inside."""

    id: str
    scopes: list[Scope]  # the run's instances, in order; one for a single block
    params: int
    in_shapes: list[Shape]
    out_shapes: list[Shape]


@dataclass
class PartBox:
    """One step of an op drawn as a cluster (`OpDef.parts`); its id is `<node>/<part>`."""

    id: str
    node: Node
    part: Part

    @property
    def family(self) -> str:
        return self.part.family


@dataclass
class Terminal:
    """The network's input or output."""

    id: str
    role: str  # "input" or "output"
    shape: Shape


Item = OpBox | BlockBox | PartBox | Terminal


@dataclass
class Cluster:
    """An expanded block or named group (or a run of identical ones, drawn once)."""

    id: str
    scopes: list[Scope]
    params: int
    items: list[str] = field(default_factory=list)  # ids of the boxes directly inside
    children: list["Cluster"] = field(default_factory=list)


@dataclass
class Edge:
    tail: str
    head: str
    shape: Shape


@dataclass
class Plan:
    """Everything the renderer draws, in drawing order."""

    graph: Graph
    items: dict[str, Item]
    root: Cluster  # the whole network; its scopes list is empty
    edges: list[Edge]
    shares: list[tuple[str, str]] = field(default_factory=list)  # (sharing box, owner box) of `share:`, drawn dashed


def _family(node: Node) -> str:
    op = registry.get(node.op)
    return op.family if op else "other"


def _label(node: Node) -> str:
    op = registry.get(node.op)
    return op.label(node.attrs) if op else node.op


def parts_of(graph: Graph, node: Node) -> tuple[Part, ...]:
    """The steps an op is drawn as (none: one box)."""
    op = registry.get(node.op)
    if op is None or op.parts is None or node.shape is None:
        return ()
    return op.parts(node.attrs, [graph.node(i).shape or () for i in node.inputs], node.shape)


def is_drawn(scope: Scope) -> bool:
    """Blocks are drawn; groups only where the spec gave them a name (not a position)."""
    return scope.is_unit


class Planner:
    """Builds a `Plan` for one graph and one set of options."""

    def __init__(self, graph: Graph, depth: int | None, fold_repeats: bool, merge_activations: bool = True):
        self.graph = graph
        self.depth = depth
        self.nodes = list(graph.nodes())
        self.users = graph.users()
        self.drawn = {p: s for p, s in graph.scopes.items() if is_drawn(s)}
        self.chain = {n.name: tuple(s for s in n.scopes if s in self.drawn) for n in self.nodes}
        self.members: dict[str, list[Node]] = {p: [] for p in self.drawn}
        self.parent: dict[str, str | None] = {}
        self.children: dict[str | None, list[str]] = {None: []}
        for node in self.nodes:
            chain = self.chain[node.name]
            for i, path in enumerate(chain):
                self.members[path].append(node)
                if path not in self.parent:
                    up = chain[i - 1] if i else None
                    self.parent[path] = up
                    self.children.setdefault(up, []).append(path)
                    self.children.setdefault(path, [])
        self.merge_activations = merge_activations
        self.parts = {n.name: parts for n in self.nodes if (parts := parts_of(graph, n))}
        self.rep: dict[str, str] = {}  # merged activation -> the op box it joined
        self.runs: dict[str, list[str]] = {}  # first instance -> the run's instances
        self.instance: dict[str, tuple[str, int]] = {}  # instance -> (first, index)
        self._signatures: dict[str, Any] = {}
        if fold_repeats:
            self._find_runs()

    # ------------------------------------------------------------------ scopes
    def params(self, paths: list[str]) -> int:
        return sum(n.params for p in paths for n in self.members[p])

    def external_inputs(self, path: str) -> list[str]:
        inside = {n.name for n in self.members[path]}
        seen: list[str] = []
        for node in self.members[path]:
            for src in node.inputs:
                if src not in inside and src not in seen:
                    seen.append(src)
        return seen

    def exits(self, path: str) -> list[str]:
        inside = {n.name for n in self.members[path]}
        return [
            n.name
            for n in self.members[path]
            if n.name == self.graph.output or any(s not in inside for s in self.users[n.name])
        ]

    def _signature(self, path: str) -> Any:
        """The instance's structure relative to its own path: equal means drawn alike."""
        if path in self._signatures:
            return self._signatures[path]
        cut = len(path) + 1
        inside = {n.name for n in self.members[path]}
        scope = self.graph.scopes[path]
        self._signatures[path] = signature = (
            scope.kind,
            repr(scope.params),
            tuple(
                (
                    n.name[cut:],
                    n.op,
                    repr(sorted(n.attrs.items())),
                    n.shape,
                    tuple(s[cut:] if s in inside else "" for s in n.inputs),
                    tuple(s[cut:] for s in n.scopes if s.startswith(path + ".")),
                    repr(sorted(n.meta.get("shares", {}).items())),  # a block sharing another is drawn apart from it
                )
                for n in self.members[path]
            ),
        )
        return signature

    def _foldable(self, path: str) -> bool:
        """A block instance with one input and one output of the same shape."""
        ins, outs = self.external_inputs(path), self.exits(path)
        return (
            self.graph.scopes[path].is_block
            and len(ins) == 1
            and len(outs) == 1
            and self.graph.node(ins[0]).shape == self.graph.node(outs[0]).shape
        )

    def _follows(self, first: str, second: str) -> bool:
        """`second` takes exactly `first`'s output, and nothing else takes it."""
        out = self.exits(first)
        inside_second = {n.name for n in self.members[second]}
        consumers = set(self.users[out[0]])
        return self.external_inputs(second) == out and consumers <= inside_second

    def _find_runs(self) -> None:
        for siblings in self.children.values():
            run: list[str] = []
            for path in siblings + [""]:
                extends = (
                    bool(path)
                    and bool(run)
                    and self._foldable(path)
                    and self._signature(path) == self._signature(run[0])
                    and self._follows(run[-1], path)
                )
                if extends:
                    run.append(path)
                    continue
                if len(run) > 1:
                    self.runs[run[0]] = run
                    for k, member in enumerate(run):
                        self.instance[member] = (run[0], k)
                run = [path] if path and self._foldable(path) else []

    # ------------------------------------------------------------------ nodes
    def canonical(self, name: str) -> str:
        """The node drawn for `name`: its twin in the first instance of a folded run."""
        while True:
            moved = False
            for path in self.chain.get(name, ()):
                first, k = self.instance.get(path, (path, 0))
                if k:
                    name = first + name[len(path):]
                    moved = True
                    break
            if not moved:
                return name

    def collapsed_at(self, name: str) -> str | None:
        chain = self.chain.get(name, ())
        if self.depth is None or len(chain) <= self.depth:
            return None
        return chain[self.depth]

    def home(self, name: str) -> str | None:
        """The innermost expanded cluster a (canonical) node is drawn in."""
        chain = self.chain.get(name, ())
        return chain[-1] if chain else None

    def resolve(self, name: str) -> str:
        name = self.canonical(name)
        if name in self.rep:
            return self.rep[name]
        block = self.collapsed_at(name)
        return BLOCK_PREFIX + block if block else name

    def _mergeable(self, node: Node) -> str | None:
        """The box an activation joins, or None to draw it on its own."""
        if not self.merge_activations or _family(node) != MERGED_FAMILY or len(node.inputs) != 1:
            return None
        src = node.inputs[0]
        if src == INPUT or self.collapsed_at(src) or len(self.users[src]) != 1 or src in self.parts:
            return None
        if self.home(src) != self.home(node.name) or self.canonical(src) != src:
            return None
        return self.resolve(src)

    def _crosses_instances(self, a: str, b: str) -> bool:
        """An edge between two instances of one folded run (drawn as the ×n)."""
        runs_a = {self.instance[p] for p in self.chain.get(a, ()) if p in self.instance}
        runs_b = {self.instance[p] for p in self.chain.get(b, ()) if p in self.instance}
        firsts_a = {f: k for f, k in runs_a}
        return any(f in firsts_a and firsts_a[f] != k for f, k in runs_b)

    # ------------------------------------------------------------------ plan
    def plan(self) -> Plan:
        items: dict[str, Item] = {}
        clusters: dict[str | None, Cluster] = {None: Cluster("root", [], self.graph.total_params)}

        def cluster_for(path: str | None) -> Cluster:
            if path in clusters:
                return clusters[path]
            run = self.runs.get(path, [path])  # type: ignore[arg-type]
            cluster = Cluster(CLUSTER_PREFIX + path, [self.graph.scopes[p] for p in run], self.params(run))
            parent = self.parent[path]  # type: ignore[index]
            cluster_for(parent).children.append(cluster)
            clusters[path] = cluster
            return cluster

        for node in self.nodes:
            name = node.name
            if self.canonical(name) != name:
                continue  # drawn by its twin in the run's first instance
            if name == INPUT:
                items[name] = Terminal(name, "input", node.shape or ())
                clusters[None].items.append(name)
                continue
            block = self.collapsed_at(name)
            if block is not None:
                box_id = BLOCK_PREFIX + block
                if box_id not in items:
                    run = self.runs.get(block, [block])
                    ins = [self.graph.node(s).shape or () for s in self.external_inputs(run[0])]
                    outs = [self.graph.node(s).shape or () for s in self.exits(run[-1])]
                    items[box_id] = BlockBox(box_id, [self.graph.scopes[p] for p in run], self.params(run), ins, outs)
                    cluster_for(self.parent[block]).items.append(box_id)
                continue
            target = self._mergeable(node)
            if target is not None:
                box = items[target]
                assert isinstance(box, OpBox)
                box.nodes.append(node)
                self.rep[name] = target
                continue
            if name in self.parts:  # a cluster of its steps, inside the op's own cluster
                scope = Scope(name, _label(node), node.location, is_block=True)
                inner = Cluster(CLUSTER_PREFIX + name, [scope], node.params)
                cluster_for(self.home(name)).children.append(inner)
                for part in self.parts[name]:
                    box_id = name + PART_SEPARATOR + part.id
                    items[box_id] = PartBox(box_id, node, part)
                    inner.items.append(box_id)
                continue
            items[name] = OpBox(name, [node])
            cluster_for(self.home(name)).items.append(name)
        out_node = self.graph.node(self.graph.output)
        items[OUTPUT_ID] = Terminal(OUTPUT_ID, "output", out_node.shape or ())
        clusters[None].items.append(OUTPUT_ID)
        return Plan(self.graph, items, clusters[None], self._edges(), self._shares())

    def _shares(self) -> list[tuple[str, str]]:
        """One dashed line per pair of boxes that share parameters (none inside one box)."""
        pairs = {(self.resolve(n.name), self.resolve(owner)) for n in self.nodes for owner in n.meta.get("shares", {}).values()}
        return sorted((a, b) for a, b in pairs if a != b)

    def _tail(self, name: str) -> str:
        """The box an edge out of node `name` starts at: an op drawn as parts, its last part."""
        box = self.resolve(name)
        return box + PART_SEPARATOR + self.parts[box][-1].id if box in self.parts else box

    def _heads(self, name: str, index: int) -> list[str]:
        """The boxes input `index` of node `name` goes to: an op drawn as parts, those that read it."""
        box = self.resolve(name)
        if box not in self.parts:
            return [box]
        return [box + PART_SEPARATOR + p.id for p in self.parts[box] if index in p.inputs]

    def _edges(self) -> list[Edge]:
        edges: dict[tuple[str, str], Edge] = {}
        for b in (n.name for n in self.nodes):
            for index, a in enumerate(self.graph.node(b).inputs):
                if self._crosses_instances(a, b):
                    continue
                tail = self._tail(a)
                for head in self._heads(b, index):
                    if tail != head and (tail, head) not in edges:
                        edges[(tail, head)] = Edge(tail, head, self.graph.node(a).shape or ())
            box = self.resolve(b)
            for part in self.parts.get(box, ()) if box == b else ():  # the steps inside, once
                for source in part.inputs:
                    if isinstance(source, str):
                        tail = b + PART_SEPARATOR + source
                        shape = next(p.shape for p in self.parts[b] if p.id == source)
                        edges[(tail, b + PART_SEPARATOR + part.id)] = Edge(tail, b + PART_SEPARATOR + part.id, shape)
        last = self._tail(self.graph.output)
        edges[(last, OUTPUT_ID)] = Edge(last, OUTPUT_ID, self.graph.output_shape)
        return list(edges.values())


def make_plan(graph: Graph, *, depth: int | None = None, fold_repeats: bool = True, merge_activations: bool = True) -> Plan:
    """Decide the boxes, clusters and edges of the diagram of `graph`."""
    return Planner(graph, depth, fold_repeats, merge_activations).plan()
