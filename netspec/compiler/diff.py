"""What a change did to a network: two specs' layers aligned, with shapes, params and MACs.

Layers are matched by name first (their dotted module path); the layers left over on each
side are aligned by position with difflib over their op sequence, so a renamed or inserted
layer still lines up with its neighbours. Pure Python: no torch. A side can be read from git
(`REV:path`, through `git show`, never a shell).
"""
from __future__ import annotations

import difflib
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netspec.compiler.counting import Policy, Unit, node_count
from netspec.compiler.graph import Graph, Node
from netspec.compiler.shapes import Shape, fmt
from netspec.compiler.yaml_loader import MAX_FILE_BYTES
from netspec.errors import Diagnostic, NetspecError, SpecError

TOP = "(top level)"


@dataclass(frozen=True)
class Side:
    """One layer on one side of a diff."""

    name: str
    op: str
    shape: Shape
    params: int
    count: int  # MACs or FLOPs under the diff's rule
    attrs: dict[str, Any]
    block: str


@dataclass(frozen=True)
class LayerChange:
    """A layer that differs: `before` is None when added, `after` None when removed."""

    before: Side | None
    after: Side | None

    @property
    def status(self) -> str:
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        renamed = self.before.name != self.after.name and (named(self.before.name) or named(self.after.name))
        return "renamed" if renamed else "changed"

    @property
    def name(self) -> str:
        if self.status == "renamed":
            return f"{self.before.name} → {self.after.name}"
        return (self.after or self.before).name  # type: ignore[union-attr]


@dataclass
class Totals:
    params: int = 0
    count: int = 0
    layers: int = 0


@dataclass
class NetworkDiff:
    """The whole comparison; `changes` lists only layers that differ."""

    a: str
    b: str
    unit: Unit
    policy: Policy
    changes: list[LayerChange]
    blocks: dict[str, tuple[Totals, Totals]]  # only blocks whose totals changed
    before: Totals
    after: Totals
    output_before: Shape
    output_after: Shape
    unchanged: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        def side(s: Side | None) -> dict[str, Any] | None:
            if s is None:
                return None
            return {"name": s.name, "op": s.op, "output_shape": list(s.shape), "params": s.params, self.unit: s.count}

        return {
            "a": self.a,
            "b": self.b,
            "count": {"unit": self.unit, "policy": self.policy},
            "totals": {
                "params": [self.before.params, self.after.params],
                self.unit: [self.before.count, self.after.count],
                "layers": [self.before.layers, self.after.layers],
                "output_shape": [list(self.output_before), list(self.output_after)],
            },
            "blocks": {
                name: {"params": [b.params, a.params], self.unit: [b.count, a.count]} for name, (b, a) in self.blocks.items()
            },
            "layers": [{"status": c.status, "before": side(c.before), "after": side(c.after)} for c in self.changes],
            "unchanged_layers": self.unchanged,
        }


# ------------------------------------------------------------------ reading a side
def read_side(ref: str | Path) -> tuple[str, str | None]:
    """(name, text): a file is read by the loader (text None); `REV:path` comes from git."""
    text = str(ref)
    if Path(text).exists() or ":" not in text:
        return text, None
    rev, _, path = text.partition(":")
    if not rev or rev.startswith("-") or not path:
        raise NetspecError(f"error: {text}: expected a spec file or REV:path (e.g. HEAD~1:specs/lenet.yaml)")
    try:
        done = subprocess.run(["git", "show", "--end-of-options", f"{rev}:{path}"], capture_output=True, timeout=30, check=False)
    except FileNotFoundError:
        raise NetspecError(f"error: {text}: git is not installed") from None
    except subprocess.TimeoutExpired:
        raise NetspecError(f"error: {text}: git show took more than 30 s") from None
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise NetspecError(f"error: {text}: {reason[-1] if reason else 'git show failed'}")
    if len(done.stdout) > MAX_FILE_BYTES:
        raise SpecError.at(None, f"{text}: spec file larger than {MAX_FILE_BYTES} bytes")
    try:
        return text, done.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([Diagnostic(None, f"{text}: not UTF-8 text ({exc.reason})")]) from None


def load_graph(ref: str | Path | Graph) -> Graph:
    """The graph of a file, a `REV:path`, or a graph given as is."""
    if isinstance(ref, Graph):
        return ref
    from netspec.compiler.pipeline import build_graph, load_spec

    name, text = read_side(ref)
    return build_graph(load_spec(name, text=text))


# ------------------------------------------------------------------ aligning
def named(path: str) -> bool:
    """Whether the spec gave this layer a name (`b3.conv1`) rather than a position (`b3.0`)."""
    return not path.rsplit(".", 1)[-1].isdigit()


def _block(graph: Graph, node: Node) -> str:
    units = [s for s in node.scopes if s in graph.scopes and graph.scopes[s].is_unit]
    return units[0] if units else TOP


def _sides(graph: Graph, unit: Unit, policy: Policy) -> list[Side]:
    return [
        Side(n.name, n.op, tuple(n.shape or ()), n.params, node_count(graph, n, unit, policy), n.attrs, _block(graph, n))
        for n in graph.ops()
    ]


def _same(a: Side, b: Side) -> bool:
    return (a.op, a.shape, a.params, a.count, a.attrs) == (b.op, b.shape, b.params, b.count, b.attrs)


def align(a: list[Side], b: list[Side]) -> list[tuple[Side | None, Side | None]]:
    """Pairs in B's order (removed layers where they stood in A): layers the spec named are
    matched by name; the rest (positional names, renamed layers) by position over their ops."""
    a_names, b_names = {s.name for s in a if named(s.name)}, {s.name for s in b if named(s.name)}
    a_left = [s for s in a if s.name not in b_names]
    b_left = [s for s in b if s.name not in a_names]
    partner: dict[str, Side] = {s.name: s for s in a if s.name in b_names and named(s.name)}
    matcher = difflib.SequenceMatcher(a=[s.op for s in a_left], b=[s.op for s in b_left], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("equal", "replace"):
            for k in range(min(i2 - i1, j2 - j1)):
                partner[b_left[j1 + k].name] = a_left[i1 + k]
    paired = {id(s) for s in partner.values()}
    a_index = {s.name: i for i, s in enumerate(a)}
    removed = [s for s in a if id(s) not in paired]
    out: list[tuple[Side | None, Side | None]] = []
    for side in b:
        before = partner.get(side.name)
        while before is not None and removed and a_index[removed[0].name] < a_index[before.name]:
            out.append((removed.pop(0), None))
        out.append((before, side))
    return out + [(s, None) for s in removed]


def diff(a: str | Path | Graph, b: str | Path | Graph, *, unit: Unit = "macs", policy: Policy = "core") -> NetworkDiff:
    """Compare two specs (paths, `REV:path`, or graphs)."""
    ga, gb = load_graph(a), load_graph(b)
    sa, sb = _sides(ga, unit, policy), _sides(gb, unit, policy)
    changes: list[LayerChange] = []
    unchanged = 0
    for before, after in align(sa, sb):
        moved = before is not None and after is not None and (before.name == after.name or not (named(before.name) or named(after.name)))
        if moved and _same(before, after):  # type: ignore[arg-type]
            unchanged += 1
        else:
            changes.append(LayerChange(before, after))
    blocks: dict[str, tuple[Totals, Totals]] = {}
    for index, sides in enumerate((sa, sb)):
        for s in sides:
            pair = blocks.setdefault(s.block, (Totals(), Totals()))
            pair[index].params += s.params
            pair[index].count += s.count
            pair[index].layers += 1
    changed_blocks = {k: v for k, v in blocks.items() if (v[0].params, v[0].count, v[0].layers) != (v[1].params, v[1].count, v[1].layers)}
    if list(changed_blocks) == [TOP]:  # no blocks: the totals say it all
        changed_blocks = {}
    before = Totals(sum(s.params for s in sa), sum(s.count for s in sa), len(sa))
    after = Totals(sum(s.params for s in sb), sum(s.count for s in sb), len(sb))
    return NetworkDiff(
        str(a if not isinstance(a, Graph) else a.name), str(b if not isinstance(b, Graph) else b.name),
        unit, policy, changes, changed_blocks, before, after, ga.output_shape, gb.output_shape, unchanged,
    )


# ------------------------------------------------------------------ budgets
_BUDGET = re.compile(r"^(params|macs|flops|layers):([+-]?)(\d+(?:\.\d+)?)(%?)$")


@dataclass(frozen=True)
class Budget:
    """`params:+5%`: fail when params grow by more than 5 %; `macs:10%` either way; `params:+1000` absolute."""

    metric: str
    sign: str  # "+" growth only, "-" shrinkage only, "" either
    amount: float
    relative: bool

    def __str__(self) -> str:
        return f"{self.metric}:{self.sign}{self.amount:g}{'%' * self.relative}"

    def crossed(self, before: int, after: int) -> bool:
        change = after - before
        if self.sign == "+":
            change = max(change, 0)
        elif self.sign == "-":
            change = max(-change, 0)
        else:
            change = abs(change)
        if self.relative:
            return change > 0 if before == 0 else change * 100 > self.amount * before
        return change > self.amount


def parse_budgets(text: str) -> list[Budget]:
    """`params:+5%,macs:+10%` -> budgets; a malformed item is a user error."""
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        match = _BUDGET.match(item)
        if not match:
            raise NetspecError(
                f"error: --fail-on: {item!r} is not METRIC:[+|-]AMOUNT[%] with METRIC one of params, macs, flops, layers"
                " (e.g. params:+5%,macs:+10%)"
            )
        metric, sign, amount, pct = match.groups()
        out.append(Budget(metric, sign, float(amount), bool(pct)))
    return out


def crossed_budgets(d: NetworkDiff, budgets: list[Budget]) -> list[str]:
    """One message per budget the diff crosses."""
    values = {"params": (d.before.params, d.after.params), "layers": (d.before.layers, d.after.layers), d.unit: (d.before.count, d.after.count)}
    out = []
    for budget in budgets:
        if budget.metric not in values:
            raise NetspecError(f"error: --fail-on: {budget.metric} is not counted in this diff (use --count {budget.metric})")
        before, after = values[budget.metric]
        if budget.crossed(before, after):
            out.append(f"{budget.metric}: {before:,} -> {after:,} ({percent(before, after)}) crosses {budget}")
    return out


# ------------------------------------------------------------------ rendering
def percent(before: int, after: int) -> str:
    if before == after:
        return "±0%"
    if before == 0:
        return "new"
    return f"{(after - before) * 100 / before:+.1f}%"


def _arrow(before: Any, after: Any, show: Any = lambda v: f"{v:,}") -> str:
    if before is None:
        return show(after)
    if after is None:
        return show(before)
    return show(after) if before == after else f"{show(before)} → {show(after)}"


def _shape(s: Side | None) -> Any:
    return None if s is None else fmt(s.shape)


def rows(d: NetworkDiff) -> list[list[str]]:
    """The changed-layer table as text cells: layer, status, op, shape, params, count."""
    out = []
    for c in d.changes:
        b, a = c.before, c.after
        out.append([
            c.name,
            c.status,
            _arrow(b and b.op, a and a.op, str),
            _arrow(_shape(b), _shape(a), str),
            _arrow(b and b.params, a and a.params),
            _arrow(b and b.count, a and a.count),
        ])
    return out


def _unit_label(d: NetworkDiff) -> str:
    return ("MACs" if d.unit == "macs" else "FLOPs") + (" (all ops)" if d.policy == "all" else "")


def total_rows(d: NetworkDiff) -> list[list[str]]:
    return [
        ["params", f"{d.before.params:,}", f"{d.after.params:,}", percent(d.before.params, d.after.params)],
        [_unit_label(d), f"{d.before.count:,}", f"{d.after.count:,}", percent(d.before.count, d.after.count)],
        ["layers", f"{d.before.layers:,}", f"{d.after.layers:,}", percent(d.before.layers, d.after.layers)],
        ["output", fmt(d.output_before), fmt(d.output_after), "" if d.output_before == d.output_after else "changed"],
    ]


def block_rows(d: NetworkDiff) -> list[list[str]]:
    return [
        [name, f"{b.params:,} → {a.params:,}", percent(b.params, a.params), f"{b.count:,} → {a.count:,}", percent(b.count, a.count)]
        for name, (b, a) in d.blocks.items()
    ]


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "\\`")


def markdown(d: NetworkDiff, problems: list[str] = ()) -> str:  # type: ignore[assignment]
    """A PR comment: totals, changed blocks, changed layers."""
    unit = _unit_label(d)
    lines = [f"### netspec diff: `{_md_cell(d.a)}` → `{_md_cell(d.b)}`", ""]
    lines += ["| | before | after | change |", "|---|---:|---:|---:|"]
    lines += [f"| {' | '.join(_md_cell(c) for c in r)} |" for r in total_rows(d)]
    if d.blocks:
        lines += ["", f"| block | params | change | {unit} | change |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {' | '.join(_md_cell(c) for c in r)} |" for r in block_rows(d)]
    if d.changes:
        lines += ["", f"| layer | status | op | output shape | params | {unit} |", "|---|---|---|---:|---:|---:|"]
        lines += [f"| {' | '.join(_md_cell(c) for c in r)} |" for r in rows(d)]
    lines += ["", f"{len(d.changes)} layer(s) changed, {d.unchanged} unchanged."]
    lines += [f"**budget crossed:** {_md_cell(p)}" for p in problems]
    return "\n".join(lines) + "\n"
