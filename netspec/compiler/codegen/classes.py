"""One class per block kind in ejected source (as torchvision's `BasicBlock`): the written
classes of one kind that differ only in literal values (channels, strides) become one class
whose constructor takes those values; a member only some of them have (ResNet's 1×1-conv
shortcut) becomes `... if flag else None`, its forward lines guarded by `if self.m is not None:`;
forward statements no member's constructor line goes with (a residual `add`) that only some
have put the two forwards under `if self.use_<statement>:` / `else:`, a boolean kept on the
instance (torchvision's `use_res_connect`), the plain side using only members the other uses.
A positional list (`nn.Sequential(...)`) whose elements only some configurations have is built
as torchvision builds it: `layers = [...]`, `if <why>: layers.append(...)`, `nn.Sequential(*layers)`,
where <why> is a block parameter at its "none" value (`expand != 1`, `se`), two widths that
differ (`in_channels != expanded`), a layer class passed as None, else a boolean of its own.
A layer class is a value too (`nn.ReLU` in some, `nn.Hardswish` in others: torchvision's
`activation_layer`).

Works on the source lines `source.py` wrote for each configuration, token by token, so it
knows no op: two configurations merge when their token streams are equal except for number,
True/False/None and layer-class tokens, and list elements. What still splits a kind into
numbered classes (`Unit2`): a different sequence of members, or forwards that differ in more
than members' lines and one side's extra statements. Forwards that only name their values
otherwise count as equal: RegNet's projection, computed before the branch it is added to as
torchvision computes it, gives `out = self.proj(x); x = self.f(x); out = out + x` against
`out = self.f(x); x = x + out`; the second is renamed as the first (data flow, the member
passing its input on where it is absent), written `out = self.proj(x) if self.proj is not
None else x`; every configuration without the member must then be one that reads its input.
A constructor parameter is named after the block's own parameter whose value it is in every
configuration (`out`, `stride`), the input's width `in_channels`, else `<member>_<argument>`
(`conv3_out_channels`); a value
forward needs is kept on the instance (`self.branch1_out_channels`), as torchvision keeps
`self.stride`. Instances keep their exact statements (same order, same values), so
registration order and the random numbers drawn stay those of `netspec.compile`. Every value
an instance passes is a token the writer already made with `literal` (or `nn.<Class>`, checked
to be an nn.Module class), so nothing new from a spec becomes code; parameter names are
checked identifiers.
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
    spans: list[tuple[int, int]]  # the columns of each token of its key after the indent
    head: bool = False  # opens a positional list: `self.conv = nn.Sequential(` or `super().__init__(`
    item: int = 0  # in such a list: 1 the first line of an element, 2 a further line of it


@dataclass
class Config:
    """One written class: its body lines (docstring aside) and what names its values."""

    lines: list[Line]
    params: dict[str, Any]  # the block's own parameters (`out=128, stride=2`)
    in_width: int | None  # the first dimension of its input: `in_channels`
    # members it lacks whose value it reads as their input's (renamed as a configuration with
    # them names its values: `out = x` for `out = self.proj(x)`)
    passed: frozenset[str] = frozenset()

    @property
    def units(self) -> set[str]:
        return {line.tag[1] for line in self.lines if line.tag}


@dataclass
class Row:
    tag: Tag
    key: tuple
    lines: list[Line | None]  # one per configuration; None where it has no such member
    branch: bool | None = None  # a forward row of the `if self.<flag>:` side (True) or its else
    head: bool = False
    item: int = 0  # a list element's line (1 its first): one only some configurations have is appended under `if`


@dataclass
class Template:
    configs: list[Config]
    rows: list[Row]
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
    spans: list[list[tuple[int, int]]] = [[] for _ in lines]
    frames: list[dict] = []
    skip = 0
    for i, tok in enumerate(tokens):
        row = tok.start[0] - 1
        if row >= len(lines):
            continue
        if tok.type == tokenize.COMMENT:
            comments[row] = tok.start[1]
        if tok.type in _SKIP:
            continue
        if skip:  # the `.` and the name of an `nn.<Class>` slot
            skip -= 1
            continue
        module = _module_class(tokens, i)
        is_slot = module is not None or tok.type == tokenize.NUMBER or (
            tok.type == tokenize.NAME and tok.string in ("True", "False", "None"))
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
            if module is not None:  # a layer class as a value (torchvision's `activation_layer`)
                if arg == "value" or arg == "args" or arg.startswith("arg"):
                    arg = _class_role(module)
                end = tokens[i + 2].end[1]
                slots[row].append(Slot(tok.start[1], end, lines[row][tok.start[1]:end], arg))
                skip = 2
            else:
                end = tok.end[1]
                slots[row].append(Slot(tok.start[1], end, tok.string, arg))
            keys[row].append("<slot>")
            spans[row].append((tok.start[1], end))
        else:
            keys[row].append((tok.type, tok.string))
            spans[row].append((tok.start[1], tok.end[1]))
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
        out.append(Line(text, tags[n], (indent, *keys[n]), slots[n], comments[n], spans[n]))
    _mark_lists(out)
    return Config(out, params, in_width)


def _code(line: Line) -> str:
    return (line.text[:line.comment] if line.comment is not None else line.text).rstrip()


def _mark_lists(lines: list[Line]) -> None:
    """Positional lists in the constructor (`nn.Sequential(` ... `)`): their elements (a line
    each, or a nested call over several) may be present in only some configurations."""
    for n, line in enumerate(lines):
        code = _code(line)
        if not (code == "        super().__init__(" or (code.startswith("        self.") and code.endswith(" = nn.Sequential("))):
            continue
        elements: list[tuple[int, int]] = []
        end = n + 1
        while end < len(lines) and _code(lines[end]) != "        )":
            first = _code(lines[end])
            if not first.startswith("            ") or first.startswith("             ") or lines[end].tag != line.tag:
                break
            stop = end + 1
            if first.endswith("("):  # a nested call: its deeper lines, then `),` at the element's indent
                while stop < len(lines) and _code(lines[stop]).startswith("             ") and lines[stop].tag == line.tag:
                    stop += 1
                if stop >= len(lines) or _code(lines[stop]) != "            )," or lines[stop].tag != line.tag:
                    break
                stop += 1
            elif not first.endswith(","):
                break
            elements.append((end, stop))
            end = stop
        if not elements or end >= len(lines) or _code(lines[end]) != "        )":
            continue
        line.head = True
        for first, stop in elements:
            for k in range(first, stop):
                lines[k].item = 1 if k == first else 2


def _module_class(tokens: list[tokenize.TokenInfo], i: int) -> type | None:
    """The nn.Module class `nn.<Name>` at token i, where it can be a value: an argument (a
    layer class passed on) or an activation called (ReLU in some configurations, Hardswish in
    others, as torchvision's `activation_layer`)."""
    if i + 3 >= len(tokens) or tokens[i].string != "nn" or tokens[i + 1].string != ".":
        return None
    if tokens[i + 2].type != tokenize.NAME or tokens[i + 2].start[0] != tokens[i].start[0]:
        return None
    if i > 0 and tokens[i - 1].string == ".":
        return None
    found = getattr(nn, tokens[i + 2].string, None)
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        return None
    after = tokens[i + 3].string
    if after in (",", ")") or (after == "(" and _class_role(found) == "activation"):
        return found
    return None


def _class_role(module: type) -> str:
    """The parameter name a layer class passed as a value gets (torchvision's names)."""
    where = module.__module__.rsplit(".", 1)[-1]
    return {"activation": "activation", "batchnorm": "norm_layer", "normalization": "norm_layer",
            "instancenorm": "norm_layer"}.get(where, "layer")


def start(config: Config) -> Template:
    return Template([config], [Row(line.tag, line.key, [line], head=line.head, item=line.item) for line in config.lines])


def merge(template: Template, config: Config) -> Template | None:
    """The template with one more configuration, or None when they differ in more than
    literal values, members only some of them have, and forward-only statements (a residual
    add) only some of them have: those go under `if self.<flag>:` / `else:`. Where a member
    only some have computes a value of its own (RegNet's `out = self.proj(x)`, read by the
    add), the others' forwards name their values otherwise; they are renamed as the ones
    with the member name them, the member passing its input on where it is absent."""
    merged = _merge(template, config)
    if merged is not None:
        return merged
    for like in template.configs:  # the new configuration lacks the member
        renamed = _renamed(config, like)
        if renamed is not None and (merged := _merge(template, renamed)) is not None:
            return merged
    olds = [_renamed(old, config) for old in template.configs]  # the template's configurations lack it
    if any(old is None for old in olds):
        return None
    rebuilt: Template | None = start(olds[0])
    for old in olds[1:] + [config]:
        rebuilt = _merge(rebuilt, old)
        if rebuilt is None:
            return None
    return rebuilt


def _merge(template: Template, config: Config) -> Template | None:
    n = len(template.configs)
    mine = {r.tag[1] for r in template.rows if r.tag}
    theirs = config.units
    if template.flags is None:
        out = _align(template.rows, n, config.lines, mine, theirs, template.configs + [config])
        if out is not None:
            merged = Template(template.configs + [config], out)
            if _optional_ok(merged):
                return merged
    t_at, c_at = _forward_at([r.key for r in template.rows]), _forward_at([l.key for l in config.lines])
    if t_at is None or c_at is None:
        return None
    init = _align(template.rows[:t_at], n, config.lines[:c_at], mine, theirs, template.configs + [config])
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
        fitted = _align(side, n, fwd, mine, theirs, template.configs + [config])
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


@dataclass
class _Statement:
    """A forward line as a step of data flow."""

    line: int  # its index in the configuration's lines
    target: str | None  # the name it assigns; None for `return`
    reads: list[str]  # the names of the values it reads, in order
    at: list[int]  # where in its key those names are, the target first


def _program(config: Config) -> list[_Statement] | None:
    """The forward's statements, or None where one is not `name = ...` or `return ...` on one line."""
    at = _forward_at([line.key for line in config.lines])
    if at is None:
        return None
    bound, out = {"x"}, []
    for n in range(at, len(config.lines)):
        key = config.lines[n].key
        if key[1:2] == ((tokenize.NAME, "return"),):
            target, first = None, 2
        elif len(key) > 3 and key[1][0] == tokenize.NAME and key[2] == (tokenize.OP, "="):
            target, first = key[1][1], 3
        else:
            return None
        statement = _Statement(n, target, [], [1] if target else [])
        for k in range(first, len(key)):
            entry = key[k]
            if (isinstance(entry, tuple) and entry[0] == tokenize.NAME and entry[1] in bound
                    and key[k - 1] != (tokenize.OP, ".") and key[k + 1:k + 2] != ((tokenize.OP, "="),)):
                statement.at.append(k)
                statement.reads.append(entry[1])
        bound |= {target} if target else set()
        out.append(statement)
    return out


def _renamed(config: Config, like: Config) -> Config | None:
    """`config` with its forward's values named as `like` names them, where the two compute
    the same once each member `like` has and `config` lacks passes its one input on (`out = x`
    for `out = self.proj(x)`); None where they compute otherwise."""
    steps, like_steps = _program(config), _program(like)
    if steps is None or like_steps is None:
        return None
    value: dict[str, tuple] = {"x": ("input",)}  # like's names -> what they hold
    kept: list[tuple[_Statement, list[tuple]]] = []
    passed: set[str] = set()
    for statement in like_steps:
        reads = [value[r] for r in statement.reads]
        tag = like.lines[statement.line].tag
        if tag is not None and tag[1] not in config.units:  # absent from config: its input passed on
            if statement.target is None or len(reads) != 1:
                return None
            if statement.target != statement.reads[0]:  # `out = self.proj(x)`: written `... else x`
                if _passed_on(_code(like.lines[statement.line]), tag[1]) is None:
                    return None
                passed.add(tag[1])
            value[statement.target] = reads[0]
            continue
        if statement.target is not None:
            value[statement.target] = ("line", len(kept))
        kept.append((statement, reads))
    if len(kept) != len(steps):
        return None
    own: dict[str, tuple] = {"x": ("input",)}
    lines = list(config.lines)
    for k, ((model, reads), statement) in enumerate(zip(kept, steps)):
        a, b = like.lines[model.line], config.lines[statement.line]
        if a.tag != b.tag or _masked(a.key, model.at) != _masked(b.key, statement.at):
            return None
        if [own[r] for r in statement.reads] != reads:
            return None
        if statement.target is not None:
            own[statement.target] = ("line", k)
        lines[statement.line] = _rename(b, statement.at, ([model.target] if model.target else []) + model.reads)
    return Config(lines, config.params, config.in_width, frozenset(passed))


def _masked(key: tuple, at: list[int]) -> tuple:
    return tuple("<name>" if k in at else entry for k, entry in enumerate(key))


def _rename(line: Line, at: list[int], names: list[str]) -> Line:
    """The line with the names at those places of its key replaced (its slots and comment moved)."""
    text, key, spans = line.text, list(line.key), list(line.spans)
    slots = [Slot(s.start, s.end, s.text, s.arg) for s in line.slots]
    comment = line.comment
    for k, name in sorted(zip(at, names), reverse=True):
        begin, end = spans[k - 1]
        text = text[:begin] + name + text[end:]
        key[k] = (tokenize.NAME, name)
        delta = len(name) - (end - begin)
        spans = spans[:k - 1] + [(begin, begin + len(name))] + [(b + delta, e + delta) for b, e in spans[k:]]
        for slot in slots:
            if slot.start >= end:
                slot.start, slot.end = slot.start + delta, slot.end + delta
        if comment is not None and comment >= end:
            comment += delta
    return Line(text, line.tag, tuple(key), slots, comment, spans, line.head, line.item)


def _forward_at(keys: list[tuple]) -> int | None:
    """The index just past `def forward(...)`: the constructor lines and the def before it."""
    for n, key in enumerate(keys):
        if key[1:3] == ((tokenize.NAME, "def"), (tokenize.NAME, "forward")):
            return n + 1
    return None


def _forward_only(tag: Tag, members: set[str]) -> bool:
    """A forward statement no member's constructor line goes with (the residual `add`)."""
    return tag is not None and tag[0] == "fwd" and tag[1] not in members


def _align(rows: list[Row], n: int, new: list[Line], mine: set[str], theirs: set[str],
           configs: list[Config]) -> list[Row] | None:
    i, j = 0, 0
    out: list[Row] = []
    while i < len(rows) or j < len(new):
        row = rows[i] if i < len(rows) else None
        line = new[j] if j < len(new) else None
        if row and line and row.tag == line.tag and row.key == line.key:
            out.append(Row(row.tag, row.key, row.lines + [line], row.branch, row.head, row.item))
            i, j = i + 1, j + 1
            if row.head and line.head:
                i_end, j_end = i, j
                while i_end < len(rows) and rows[i_end].item:
                    i_end += 1
                while j_end < len(new) and new[j_end].item:
                    j_end += 1
                out += _align_items(rows[i:i_end], n, new[j:j_end], configs)
                i, j = i_end, j_end
        elif row and row.tag and row.tag[1] not in theirs:
            out.append(Row(row.tag, row.key, row.lines + [None], row.branch, row.head, row.item))
            i += 1
        elif line and line.tag and line.tag[1] not in mine:
            out.append(Row(line.tag, line.key, [None] * n + [line], head=line.head, item=line.item))
            j += 1
        else:
            return None
    return out


def _elements(items: list) -> list[list]:
    """Rows (or lines) of a list grouped into its elements."""
    out: list[list] = []
    for item in items:
        if item.item == 1 or not out:
            out.append([item])
        else:
            out[-1].append(item)
    return out


def _roles(config: Config, text: str) -> set:
    """What a literal is in its configuration: itself, the input's width, a block parameter."""
    found: set = {text}
    value = _value(text)
    if type(value) is int and value == config.in_width:
        found.add(("in_channels",))
    found |= {("param", k) for k, v in config.params.items() if type(v) is type(value) and v == value}
    return found


def _agreement(rows: list[Row], lines: list[Line], configs: list[Config]) -> int:
    """How many literals of a new element play the role they play in a template's element."""
    score = 0
    for row, line in zip(rows, lines):
        c, old = next((c, l) for c, l in enumerate(row.lines) if l is not None)
        for slot, theirs in zip(old.slots, line.slots):
            score += bool(_roles(configs[c], slot.text) & _roles(configs[-1], theirs.text))
    return score


def _align_items(rows: list[Row], n: int, new: list[Line], configs: list[Config]) -> list[Row]:
    """The elements of two positional lists, as many paired (equal but for literal values)
    as can be, then those whose literals play the same roles (the input's width, a block
    parameter: VGG's first conv reads the block's input, its second the block's width); among
    pairings as good, the earlier elements are the ones left unpaired."""
    mine, theirs = _elements(rows), _elements(new)
    pair = [[(1, _agreement(e, f, configs)) if [(r.tag, r.key) for r in e] == [(l.tag, l.key) for l in f] else None
             for f in theirs] for e in mine]
    best = [[(0, 0)] * (len(theirs) + 1) for _ in range(len(mine) + 1)]
    for a in range(len(mine) - 1, -1, -1):
        for b in range(len(theirs) - 1, -1, -1):
            options = [best[a + 1][b], best[a][b + 1]]
            if pair[a][b] is not None:
                options.append((best[a + 1][b + 1][0] + 1, best[a + 1][b + 1][1] + pair[a][b][1]))
            best[a][b] = max(options)
    out: list[Row] = []
    a = b = 0
    while a < len(mine) or b < len(theirs):
        if b < len(theirs) and (a == len(mine) or best[a][b + 1] == best[a][b]):
            out += [Row(l.tag, l.key, [None] * n + [l], item=l.item) for l in theirs[b]]
            b += 1
        elif a < len(mine) and (b == len(theirs) or best[a + 1][b] == best[a][b]):
            out += [Row(r.tag, r.key, r.lines + [None], r.branch, item=r.item) for r in mine[a]]
            a += 1
        else:
            out += [Row(r.tag, r.key, r.lines + [l], r.branch, item=r.item) for r, l in zip(mine[a], theirs[b])]
            a, b = a + 1, b + 1
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
    for unit in set().union(*(c.passed for c in template.configs)):  # one way to be without it
        if any(unit not in c.units and unit not in c.passed for c in template.configs):
            return False
    head: Row | None = None
    for r in template.rows:
        head = r if r.head else head if r.item else None
        if r.item and (head is None or None in head.lines) and any(
                line is None and (head is None or h is not None) for line, h in zip(r.lines, head.lines if head else r.lines)):
            return False  # elements only some have, in a list only some have: not written that way
        if not r.item and (not r.tag or r.tag[1] not in optional) and any(
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
    values: list[list[str | None]] = []  # per parameter, per configuration (None: not yet known)
    kinds: list[str] = []
    sources: list[str] = []  # per parameter, the block parameter (or `in_channels`) it is named after
    written_for: list[set[str]] = []  # per parameter, the arguments it is written for
    optional = _optional(template)

    def register(name: str, vector: list[str | None], kind: str, source: str = "") -> str:
        names.append(name)
        values.append(vector)
        kinds.append(kind)
        sources.append(source)
        written_for.append(set())
        return name

    def parameter(vector: list[str | None], unit: str, arg: str) -> str:
        for k, existing in enumerate(values):
            if kinds[k] == "value" and all(v is None or e is None or v == e for v, e in zip(vector, existing)):
                values[k] = [e if e is not None else v for v, e in zip(vector, existing)]
                written_for[k].add(arg)
                return names[k]
        parsed = [_value(v) if v is not None else None for v in vector]
        name, source = "", ""
        for key in configs[0].params:
            if _identifier(key.lstrip("_")) and key.lstrip("_") not in names and all(
                    type(c.params.get(key)) is type(p) and c.params.get(key) == p
                    for c, v, p in zip(configs, vector, parsed) if v is not None):
                name, source = key.lstrip("_"), key  # `_padding`: a block's derived value, a parameter here
                break
        if not name and all(c.in_width == p and type(p) is int for c, v, p in zip(configs, vector, parsed) if v is not None):
            name = source = "in_channels"
        if not name or name in names:
            name, source = _fresh(f"{unit}_{arg}".replace(".", "_") if unit else arg, names), ""
        register(name, list(vector), "value", source)
        written_for[-1].add(arg)
        return name

    def flag(unit: str) -> str:
        presence = [unit in c.units for c in configs]
        if template.flags is not None and presence == template.flags:
            return switch_name()  # present exactly where the extra forward statements run (torchvision's stochastic depth)
        for k, existing in enumerate(names):
            if kinds[k] == "flag " + unit:
                return existing
        return register(_fresh(unit, names), [repr(x) for x in presence], "flag " + unit)

    def switch_name() -> str:  # the constructor's boolean for the extra forward statements
        if "switch" not in kinds:
            unit = next((r.tag[1] for r in template.rows if r.branch and r.tag and r.tag[1] not in last_init), "extra")
            name = register(_fresh(f"use_{unit}".replace(".", "_"), names), [repr(f) for f in template.flags], "switch")
            kept[name] = _attribute(name, template)
        return names[kinds.index("switch")]

    def switch() -> str:
        return "self." + kept[switch_name()]

    def condition(rows: list[Row], presence: tuple[bool, ...], class_parameter: str | None) -> str:
        """Why some configurations have these list elements: a block parameter at its "none"
        value (torchvision's `if expand_ratio != 1:`), two widths that differ (`if expanded
        != in_channels:`), a layer class passed as None, else a boolean of its own."""
        for k, existing in enumerate(names):
            if kinds[k] == f"when {presence}":
                return existing
        for text, used in _reasons(configs, presence):
            if all(carry(name, key) for name, key in used):
                return text
        if class_parameter is not None:
            return f"{class_parameter} is not None"
        unit = _snake(next((t[1] for t in rows[0].key[1:] if isinstance(t, tuple) and t[0] == tokenize.NAME and t[1] != "nn"), "layer"))
        return register(_fresh(f"use_{unit}", names), [repr(x) for x in presence], f"when {presence}")

    def carry(name: str, key: str) -> bool:
        """Make a block parameter (or the input width) a constructor parameter, or find it one."""
        wanted = [repr(_given(c, key)) for c in configs]
        if name not in names:
            register(name, wanted, "value", key)
            return True
        k = names.index(name)
        if kinds[k] != "value" or any(e is not None and e != w for e, w in zip(values[k], wanted)):
            return False
        values[k] = wanted
        return True

    lists = _lists(template.rows)
    varying = len(configs) > 1 and (bool(optional) or bool(lists) or template.flags is not None or any(
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
    building: list[tuple[int, str, str, str | None]] | None = None  # a list's elements: (row, code, comment, class parameter)
    head, building_head = "", -1
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
        class_parameter: str | None = None
        gated = index in lists.get(building_head, ()) if building is not None else False
        for k in reversed(range(len(source.slots))):
            slot = source.slots[k]
            vector = [line.slots[k].text if line is not None else None for line in row.lines]
            as_class = gated and None in vector and class_parameter is None and all(
                v.startswith("nn.") for v in vector if v is not None) and _single_run(template.rows, index) \
                and not _reasons(configs, _presence(row))
            if as_class:  # the layer is left out where its class is None
                vector = [v if v is not None else "None" for v in vector]
            if len({v for v in vector if v is not None}) > 1:
                name = parameter(vector, unit, slot.arg)
                if as_class:
                    class_parameter = name
                if row.tag is not None and row.tag[0] == "fwd" or "forward" in seen:  # forward reads it from self
                    name = kept.setdefault(name, _attribute(name, template))
                    name = f"self.{name}"
                text = text[:slot.start] + name + text[slot.end:]
            elif None in vector:  # a member only some have: its constant may still be a parameter's value
                known = next((k2 for k2, e in enumerate(values) if kinds[k2] == "value" and slot.arg in written_for[k2]
                              and all(v is None or p is None or v == p for v, p in zip(vector, e))), None)
                if known is not None:
                    values[known] = [p if p is not None else v for v, p in zip(vector, values[known])]
                    text = text[:slot.start] + names[known] + text[slot.end:]
        if building is not None:
            if row.item:
                building.append((index, text, comment, class_parameter))
                continue
            out += _build_list(head, building, template.rows, comment, condition)  # the closing `)`
            building = None
            continue
        if index in lists:
            building, building_head, head = [], index, text
            continue
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
            passed = _passed_on(text, unit) if any(unit in c.passed for c in configs) else None
            if passed is not None:  # a value of its own, the input where the member is absent
                text += f" if self.{unit} is not None else {passed}"
                guarded = None
            else:
                if guarded != unit:
                    out.append(f"        {pad}if self.{unit} is not None:")
                guarded = unit
                text = "    " + text
        else:
            guarded = None
        out.append(text + comment)
    for k, vector in enumerate(values):  # values no line of a configuration needs: its block's, for the reader
        for c, v in enumerate(vector):
            if v is None:
                given = _given(configs[c], sources[k])
                vector[c] = repr(given) if type(given) in (int, float, bool) else next(x for x in vector if x is not None)
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


def _passed_on(text: str, unit: str) -> str | None:
    """In `out = self.proj(x)`, the `x` a configuration without the member has as `out`."""
    match = re.fullmatch(r" *(\w+) = self\.(\w+)\((\w+)\)", text)
    if match is None or match.group(2) != unit or match.group(1) == match.group(3):
        return None
    return match.group(3)


def _given(config: Config, key: str) -> Any:
    return config.in_width if key == "in_channels" else config.params.get(key)


def _reasons(configs: list[Config], presence: tuple[bool, ...]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Conditions on the blocks' own parameters true exactly where `presence` is: (the
    condition's text, [(constructor parameter, block parameter)]), best first."""
    keys = [k for k in configs[0].params if _identifier(k.lstrip("_"))] + ["in_channels"]
    given = {k: [_given(c, k) for c in configs] for k in keys}
    plain = {k: v for k, v in given.items() if all(type(x) is type(v[0]) and type(x) in (bool, int) for x in v)}
    found = []
    for key, vector in plain.items():
        absent = {x for x, here in zip(vector, presence) if not here}
        if len(absent) == 1 and next(iter(absent)) in (0, 1) and not any(x in absent for x, here in zip(vector, presence) if here):
            (off,) = absent
            name = key.lstrip("_")
            text = (name if off is False else f"not {name}") if type(off) is bool else f"{name} != {off!r}"
            found.append((text, [(name, key)]))
    ints = sorted((k for k, v in plain.items() if type(v[0]) is int), key=lambda k: k != "in_channels")
    for n, a in enumerate(ints):  # the input's width first: a layer skipped where the width is kept
        for b in ints[n + 1:]:
            if all((x != y) == here for x, y, here in zip(plain[a], plain[b], presence)):
                found.append((f"{a.lstrip('_')} != {b.lstrip('_')}", [(a.lstrip("_"), a), (b.lstrip("_"), b)]))
    return found


def _lists(rows: list[Row]) -> dict[int, list[int]]:
    """Positional lists with elements only some configurations have: head row -> its element rows."""
    found: dict[int, list[int]] = {}
    for n, row in enumerate(rows):
        if row.head and None not in row.lines:  # an optional member's list is optional as a whole
            items = []
            for k in range(n + 1, len(rows)):
                if not rows[k].item:
                    break
                items.append(k)
            if any(None in rows[k].lines for k in items):
                found[n] = items
    return found


def _presence(row: Row) -> tuple[bool, ...]:
    return tuple(line is not None for line in row.lines)


def _single_run(rows: list[Row], index: int) -> bool:
    """Whether the one-line element at `index` is alone among its neighbours in which
    configurations have it."""
    if index + 1 < len(rows) and rows[index + 1].item == 2:
        return False
    mine = _presence(rows[index])
    return all(not (0 <= k < len(rows) and rows[k].item and _presence(rows[k]) == mine) for k in (index - 1, index + 1))


def _shift(text: str, by: int) -> str:
    return " " * by + text if by >= 0 else text[-by:]


def _build_list(head: str, lines: list[tuple[int, str, str, str | None]], rows: list[Row], close_comment: str,
                condition) -> list[str]:
    """torchvision's way to write a list some of whose layers only some configurations have:
    `layers = [...]`, `if <why>: layers.append(...)`, then `nn.Sequential(*layers)`."""
    elements: list[list[tuple[int, str, str, str | None]]] = []
    for line in lines:
        if rows[line[0]].item == 1 or not elements:
            elements.append([line])
        else:
            elements[-1].append(line)
    runs: list[list[list[tuple[int, str, str, str | None]]]] = []
    for element in elements:
        if runs and _presence(rows[runs[-1][0][0][0]]) == _presence(rows[element[0][0]]):
            runs[-1].append(element)
        else:
            runs.append([element])

    def listed(run: list, by: int) -> list[str]:  # the elements as written, `X,` each
        return [_shift(text, by) + comment for element in run for _, text, comment, _ in element]

    def appended(element: list, pad: str) -> list[str]:  # `layers.append(X)`
        (_, first, comment, _) = element[0]
        if len(element) == 1:
            return [f"{pad}layers.append({first.strip().removesuffix(',')}){comment}"]
        by = len(pad) - 12
        middle = [_shift(text, by) + c for _, text, c, _ in element[1:-1]]
        return [f"{pad}layers.append({first.strip()}{comment}"] + middle + [f"{pad})){element[-1][2]}"]

    out: list[str] = []
    for n, run in enumerate(runs):
        always = all(_presence(rows[run[0][0][0]]))
        pad = "        " if always else "            "
        if n == 0 and always:
            out += ["        layers: list[nn.Module] = ["] + listed(run, 0) + ["        ]"]
            continue
        if n == 0:
            out.append("        layers: list[nn.Module] = []")
        if not always:
            single = len(run) == 1 and len(run[0]) == 1
            why = condition([rows[run[0][0][0]]], _presence(rows[run[0][0][0]]), run[0][0][3] if single else None)
            out.append(f"        if {why}:")
        if len(run) == 1:
            out += appended(run[0], pad)
        else:
            out += [f"{pad}layers.extend(["] + listed(run, len(pad) - 8) + [f"{pad}])"]
    shape = close_comment or elements[-1][-1][2]  # nn.Sequential's output: its last layer's
    return out + [f"{head}*layers){shape}"]


def _attribute(name: str, template: Template) -> str:
    """An attribute name for a value forward needs, clear of the members and nn.Module's own."""
    members = set().union(*(c.units for c in template.configs))
    while name in members or hasattr(nn.Module, name) or name in ("training",):
        name += "_"
    return name


def _first_use(lines: list[str], name: str) -> tuple[int, int]:
    pattern = re.compile(rf"(?<![.\w]){re.escape(name)}\b")  # not `self.<name>`
    for n, line in enumerate(lines):
        match = pattern.search(line.split("  #", 1)[0])
        if match and not line.lstrip().startswith("def "):
            return n, match.start()
    return len(lines), 0


@dataclass(frozen=True)
class _Class:
    """A layer class written as a value (`nn.ReLU`)."""

    text: str


def _value(text: str) -> Any:
    return _Class(text) if text.startswith("nn.") else ast.literal_eval(text)


def _annotation(values: list[str]) -> str:
    parsed = [_value(v) for v in values]
    types = list(dict.fromkeys("type[nn.Module]" if isinstance(x, _Class) else type(x).__name__ for x in parsed if x is not None))
    base = types[0] if len(types) == 1 else "float" if set(types) <= {"int", "float", "bool"} else "object"
    if not types:
        return "None"
    return f"{base} | None" if any(x is None for x in parsed) else base


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


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
