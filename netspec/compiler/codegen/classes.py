"""One class per block kind in ejected source (as torchvision's `BasicBlock`): the written
classes of one kind that differ only in literal values (channels, strides) become one class
whose constructor takes those values; a member only some of them have (ResNet's 1×1-conv
shortcut) becomes `... if flag else None`, its forward lines guarded by `if self.m is not None:`;
forward statements no member's constructor line goes with (a residual `add`) that only some
have put the two forwards under `if self.use_<statement>:` / `else:`, a boolean kept on the
instance (torchvision's `use_res_connect`), the plain side using only members the other uses.

Works on the source lines `source.py` wrote for each configuration, token by token, so it
knows no op: two configurations merge when their token streams are equal except for number
and True/False tokens. What still splits a kind into numbered classes (`InvertedResidual2`):
a different layer sequence (MobileNetV2's expand 1 has no expansion layer, a VGG block's
`convs` repeats its conv), a different child class or activation (`nn.ReLU` against
`nn.Hardswish`), or forwards that differ in more than members' lines and one side's extra
statements. A constructor parameter is named after
the block's own parameter whose value it is in every configuration (`out`, `stride`), the
input's width `in_channels`, else `<member>_<argument>` (`conv3_out_channels`); a value
forward needs is kept on the instance (`self.branch1_out_channels`), as torchvision keeps
`self.stride`. Instances keep their exact statements (same order, same values), so
registration order and the random numbers drawn stay those of `netspec.compile`. Every value
an instance passes is a token the writer already made with `literal`, so nothing new from a
spec becomes code; parameter names are checked identifiers.
"""
from __future__ import annotations

import ast
import inspect
import io
import keyword
import re
import tokenize
from dataclasses import dataclass, field
from typing import Any

from torch import nn

_SKIP = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER, tokenize.COMMENT}
_RESERVED = {"self", "torch", "nn", "super", "float", "getattr", "setattr", "x", "True", "False", "None"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
Tag = tuple[str, str] | None  # ("init" | "fwd", the member's name below the block) or None


def _identifier(name: str) -> bool:
    return bool(_IDENTIFIER.fullmatch(name)) and not keyword.iskeyword(name) and name not in _RESERVED


@dataclass
class Slot:
    start: int
    end: int
    text: str
    arg: str  # the argument it is written for: `stride`, `out_channels`, or a position


@dataclass
class Line:
    text: str
    tag: Tag
    key: tuple  # its tokens, the literal values left out
    slots: list[Slot]
    comment: int | None  # column of its comment


@dataclass
class Config:
    """One written class: its body lines (docstring aside) and what names its values."""

    lines: list[Line]
    params: dict[str, Any]  # the block's own parameters (`out=128, stride=2`)
    in_width: int | None  # the first dimension of its input: `in_channels`

    @property
    def units(self) -> set[str]:
        return {line.tag[1] for line in self.lines if line.tag}


@dataclass
class Row:
    tag: Tag
    key: tuple
    lines: list[Line | None]  # one per configuration; None where it has no such member
    branch: bool | None = None  # a forward row of the `if self.<flag>:` side (True) or its else


@dataclass
class Template:
    configs: list[Config]
    rows: list[Row]
    keys: set[str] = field(default_factory=set)  # the distinct configurations' source text
    flags: list[bool] | None = None  # per configuration, whether its forward has the extra statements


def _signature(callee: str, signatures: dict[str, list[str]]) -> list[str]:
    if callee in signatures:
        return signatures[callee]
    if callee.startswith("nn.") and isinstance(getattr(nn, callee[3:], None), type):
        try:
            return [n for n in inspect.signature(getattr(nn, callee[3:]).__init__).parameters if n != "self"]
        except (TypeError, ValueError):
            return []
    return []


def parse(lines: list[str], tags: list[Tag], params: dict[str, Any], in_width: int | None,
          signatures: dict[str, list[str]]) -> Config:
    """Tokenise a class body once (calls span lines) and note each literal's argument."""
    tokens = list(tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline))
    keys: list[list] = [[] for _ in lines]
    slots: list[list[Slot]] = [[] for _ in lines]
    comments: list[int | None] = [None] * len(lines)
    frames: list[dict] = []
    for i, tok in enumerate(tokens):
        row = tok.start[0] - 1
        if row >= len(lines):
            continue
        if tok.type == tokenize.COMMENT:
            comments[row] = tok.start[1]
        if tok.type in _SKIP:
            continue
        is_slot = tok.type == tokenize.NUMBER or (tok.type == tokenize.NAME and tok.string in ("True", "False"))
        if is_slot:
            arg = "value"
            for frame in reversed(frames):
                if frame["kw"]:
                    arg = frame["kw"]
                    break
                if frame["callee"]:
                    names = _signature(frame["callee"], signatures)
                    arg = names[frame["pos"]] if frame["pos"] < len(names) else f"arg{frame['pos']}"
                    break
            slots[row].append(Slot(tok.start[1], tok.end[1], tok.string, arg))
            keys[row].append("<slot>")
        else:
            keys[row].append((tok.type, tok.string))
        if tok.type == tokenize.OP and tok.string in "([{":
            callee, j = "", i - 1
            while j >= 0 and tokens[j].type == tokenize.NAME:
                callee = tokens[j].string + callee
                if j < 2 or tokens[j - 1].string != ".":
                    break
                callee, j = "." + callee, j - 2
            frames.append({"callee": callee if tok.string == "(" else "", "kw": None, "pos": 0})
        elif tok.type == tokenize.OP and tok.string in ")]}" and frames:
            frames.pop()
        elif tok.type == tokenize.OP and tok.string == "," and frames:
            frames[-1]["pos"] += 1
            frames[-1]["kw"] = None
        elif tok.type == tokenize.NAME and frames and i + 1 < len(tokens) and tokens[i + 1].string == "=":
            frames[-1]["kw"] = tok.string
    out = []
    for n, text in enumerate(lines):
        indent = len(text) - len(text.lstrip(" "))
        out.append(Line(text, tags[n], (indent, *keys[n]), slots[n], comments[n]))
    return Config(out, params, in_width)


def start(config: Config) -> Template:
    return Template([config], [Row(line.tag, line.key, [line]) for line in config.lines])


def merge(template: Template, config: Config) -> Template | None:
    """The template with one more configuration, or None when they differ in more than
    literal values, members only some of them have, and forward-only statements (a residual
    add) only some of them have: those go under `if self.<flag>:` / `else:`."""
    n = len(template.configs)
    mine = {r.tag[1] for r in template.rows if r.tag}
    theirs = config.units
    if template.flags is None:
        out = _align(template.rows, n, config.lines, mine, theirs)
        if out is not None:
            merged = Template(template.configs + [config], out)
            if _optional_ok(merged):
                return merged
    t_at, c_at = _forward_at([r.key for r in template.rows]), _forward_at([l.key for l in config.lines])
    if t_at is None or c_at is None:
        return None
    init = _align(template.rows[:t_at], n, config.lines[:c_at], mine, theirs)
    if init is None:
        return None
    members = {r.tag[1] for r in init if r.tag and r.tag[0] == "init"}
    fwd = config.lines[c_at:]
    extra = any(_forward_only(l.tag, members) for l in fwd)
    if template.flags is None:
        side = template.rows[t_at:]
        if extra == any(_forward_only(r.tag, members) for r in side):
            return None
        flags = [not extra] * n
        branches = [Row(r.tag, r.key, r.lines, not extra) for r in side]
        mine_side = [Row(l.tag, l.key, [None] * n + [l], extra) for l in fwd]
        rows = init + (mine_side + [Row(r.tag, r.key, r.lines + [None], r.branch) for r in branches]
                       if extra else [Row(r.tag, r.key, r.lines + [None], r.branch) for r in branches] + mine_side)
    else:
        flags = template.flags
        side = [r for r in template.rows[t_at:] if r.branch is extra]
        fitted = _align(side, n, fwd, mine, theirs)
        if fitted is None:
            return None
        for r in fitted:
            r.branch = extra
        it = iter(fitted)
        rows = init + [next(it) if r.branch is extra else Row(r.tag, r.key, r.lines + [None], r.branch)
                       for r in template.rows[t_at:]]
    used = {w: {r.tag[1] for r in rows[len(init):] if r.branch is w and r.tag and r.tag[1] in members} for w in (True, False)}
    if not used[False] or not used[False] <= used[True]:  # the plain side: the other's members, no others
        return None
    merged = Template(template.configs + [config], rows, flags=flags + [extra])
    return merged if _optional_ok(merged) else None


def _forward_at(keys: list[tuple]) -> int | None:
    """The index just past `def forward(...)`: the constructor lines and the def before it."""
    for n, key in enumerate(keys):
        if key[1:3] == ((tokenize.NAME, "def"), (tokenize.NAME, "forward")):
            return n + 1
    return None


def _forward_only(tag: Tag, members: set[str]) -> bool:
    """A forward statement no member's constructor line goes with (the residual `add`)."""
    return tag is not None and tag[0] == "fwd" and tag[1] not in members


def _align(rows: list[Row], n: int, new: list[Line], mine: set[str], theirs: set[str]) -> list[Row] | None:
    i, j = 0, 0
    out: list[Row] = []
    while i < len(rows) or j < len(new):
        row = rows[i] if i < len(rows) else None
        line = new[j] if j < len(new) else None
        if row and line and row.tag == line.tag and row.key == line.key:
            out.append(Row(row.tag, row.key, row.lines + [line], row.branch))
            i, j = i + 1, j + 1
        elif row and row.tag and row.tag[1] not in theirs:
            out.append(Row(row.tag, row.key, row.lines + [None], row.branch))
            i += 1
        elif line and line.tag and line.tag[1] not in mine:
            out.append(Row(line.tag, line.key, [None] * n + [line]))
            j += 1
        else:
            return None
    return out


def _optional(template: Template) -> list[str]:
    """Members (a constructor line) that only some configurations have."""
    inits = {r.tag[1] for r in template.rows if r.tag and r.tag[0] == "init"}
    return list(dict.fromkeys(r.tag[1] for r in template.rows if r.tag and r.tag[1] in inits
                              and any(r.tag[1] not in c.units for c in template.configs)))


def _optional_ok(template: Template) -> bool:
    """A member only some configurations have: a plain attribute set in one statement (its
    lines together), and forward lines that do not return; any other statement only some
    configurations (of one side of the flag) have splits them."""
    optional = _optional(template)
    flags = template.flags or [None] * len(template.configs)
    for r in template.rows:
        if (not r.tag or r.tag[1] not in optional) and any(
                line is None and (r.branch is None or f is r.branch) for line, f in zip(r.lines, flags)):
            return False
    for unit in optional:
        rows = [r for r in template.rows if r.tag and r.tag[1] == unit]
        inits = [n for n, r in enumerate(template.rows) if r.tag == ("init", unit)]
        if not _identifier(unit) or not inits or inits != list(range(inits[0], inits[0] + len(inits))):
            return False
        text = next(line for line in template.rows[inits[0]].lines if line is not None).text
        if not text.startswith(f"        self.{unit} = "):
            return False
        if any(line.text.lstrip().startswith("return")
               for r in rows if r.tag[0] == "fwd" for line in r.lines if line is not None):
            return False
    return True


@dataclass
class Written:
    lines: list[str]  # the class body, docstring aside
    params: list[str]  # the constructor's parameters, in order
    args: list[list[str]]  # per configuration, the values it passes
    varying: bool  # whether the configurations differ at all


def render(template: Template) -> Written:
    configs = template.configs
    names: list[str] = []
    values: list[list[str]] = []  # per parameter, per configuration
    kinds: list[str] = []
    written_for: list[set[str]] = []  # per parameter, the arguments it is written for
    optional = _optional(template)

    def parameter(vector: list[str | None], unit: str, arg: str) -> str:
        for k, existing in enumerate(values):
            if kinds[k] == "value" and all(v is None or v == e for v, e in zip(vector, existing)):
                written_for[k].add(arg)
                return names[k]
        present = [v for v in vector if v is not None]
        parsed = [ast.literal_eval(v) for v in present]
        name = ""
        for key in configs[0].params:
            if _identifier(key.lstrip("_")) and key.lstrip("_") not in names and all(
                    type(c.params.get(key)) is type(p) and c.params.get(key) == p
                    for c, v, p in zip(configs, vector, _fill(vector, parsed)) if v is not None):
                name = key.lstrip("_")  # `_padding`: a block's derived value, a parameter here
                break
        if not name and all(c.in_width == p and type(p) is int for c, v, p in zip(configs, vector, _fill(vector, parsed)) if v is not None):
            name = "in_channels"
        if not name or name in names:
            name = _fresh(f"{unit}_{arg}".replace(".", "_") if unit else arg, names)
        names.append(name)
        values.append([v if v is not None else present[0] for v in vector])
        kinds.append("value")
        written_for.append({arg})
        return name

    def flag(unit: str) -> str:
        for k, existing in enumerate(names):
            if kinds[k] == "flag " + unit:
                return existing
        name = _fresh(unit, names)
        names.append(name)
        values.append([repr(unit in c.units) for c in configs])
        kinds.append("flag " + unit)
        written_for.append(set())
        return name

    def switch() -> str:  # the constructor's boolean for the extra forward statements
        if "switch" not in kinds:
            unit = next((r.tag[1] for r in template.rows if r.branch and r.tag and r.tag[1] not in last_init), "extra")
            name = _fresh(f"use_{unit}".replace(".", "_"), names)
            names.append(name)
            values.append([repr(f) for f in template.flags])
            kinds.append("switch")
            written_for.append(set())
            kept[name] = _attribute(name, template)
        return "self." + kept[names[kinds.index("switch")]]

    varying = len(configs) > 1 and (bool(optional) or template.flags is not None or any(
        len({line.text[line.comment:] for line in r.lines if line is not None and line.comment is not None}) > 1
        for r in template.rows) or any(
        len({line.slots[k].text for line in r.lines if line is not None}) > 1
        for r in template.rows for k in range(len(next(l for l in r.lines if l is not None).slots))))
    last_init = {r.tag[1]: n for n, r in enumerate(template.rows) if r.tag and r.tag[0] == "init"}
    out: list[str] = []
    guarded: str | None = None
    side: bool | None = None
    kept: dict[str, str] = {}  # parameter -> the attribute that keeps it for forward
    seen: set[str] = set()
    for index, row in enumerate(template.rows):
        if row.key[1:3] == ((tokenize.NAME, "def"), (tokenize.NAME, "forward")):
            seen.add("forward")
        source = next(line for line in row.lines if line is not None)
        text, comment = source.text, ""
        if source.comment is not None:
            text, comment = text[:source.comment].rstrip(), text[source.comment:]
            if varying and comment.startswith("# "):
                comment = "# e.g. " + comment[2:]
            comment = "  " + comment
        unit = row.tag[1] if row.tag else ""
        for k in reversed(range(len(source.slots))):
            slot = source.slots[k]
            vector = [line.slots[k].text if line is not None else None for line in row.lines]
            if len({v for v in vector if v is not None}) > 1:
                name = parameter(vector, unit, slot.arg)
                if row.tag is not None and row.tag[0] == "fwd" or "forward" in seen:  # forward reads it from self
                    name = kept.setdefault(name, _attribute(name, template))
                    name = f"self.{name}"
                text = text[:slot.start] + name + text[slot.end:]
            elif None in vector:  # a member only some have: its constant may still be a parameter's value
                known = next((names[k] for k, e in enumerate(values) if kinds[k] == "value" and slot.arg in written_for[k]
                              and all(v is None or v == p for v, p in zip(vector, e))), None)
                if known is not None:
                    text = text[:slot.start] + known + text[slot.end:]
        if unit in optional and row.tag[0] == "init" and last_init[unit] == index:
            text += f" if {flag(unit)} else None"
        pad = ""
        if row.branch is not None:
            if side is not row.branch:
                out.append(f"        if {switch()}:" if row.branch else "        else:")
                side, guarded = row.branch, None
            pad = "    "
            text = pad + text
        if unit in optional and row.tag[0] == "fwd" and any(
                line is None for line, f in zip(row.lines, template.flags or [None] * len(configs))
                if row.branch is None or f is row.branch):
            if guarded != unit:
                out.append(f"        {pad}if self.{unit} is not None:")
            guarded = unit
            text = "    " + text
        else:
            guarded = None
        out.append(text + comment)
    # parameters were met right to left within a line: order them as they are read
    order = sorted(range(len(names)), key=lambda k: _first_use(out, names[k]))
    if kept:
        at = out.index("        super().__init__()") + 1
        out[at:at] = [f"        self.{attr} = {name}" for name, attr in kept.items()]
    names = [names[k] for k in order]
    values = [values[k] for k in order]
    args = [[values[p][c] for p in range(len(names))] for c in range(len(configs))]
    signature = ", ".join(["self"] + [f"{n}: {_annotation(values[p])}" for p, n in enumerate(names)])
    out = [f"    def __init__({signature}) -> None:" if line == "    def __init__(self) -> None:" else line for line in out]
    return Written(out, names, args, varying)


def _attribute(name: str, template: Template) -> str:
    """An attribute name for a value forward needs, clear of the members and nn.Module's own."""
    members = set().union(*(c.units for c in template.configs))
    while name in members or hasattr(nn.Module, name) or name in ("training",):
        name += "_"
    return name


def _first_use(lines: list[str], name: str) -> tuple[int, int]:
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    for n, line in enumerate(lines):
        match = pattern.search(line.split("  #", 1)[0])
        if match and not line.lstrip().startswith("def "):
            return n, match.start()
    return len(lines), 0


def _fill(vector: list[str | None], parsed: list[Any]) -> list[Any]:
    it = iter(parsed)
    return [next(it) if v is not None else None for v in vector]


def _annotation(values: list[str]) -> str:
    types = {type(ast.literal_eval(v)).__name__ for v in values}
    return types.pop() if len(types) == 1 else "float"


def _fresh(name: str, taken: list[str]) -> str:
    if not _identifier(name):
        name = "p_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
        if not _identifier(name):
            name = "p"
    unique, n = name, 1
    while unique in taken:
        n += 1
        unique = f"{name}_{n}"
    return unique
