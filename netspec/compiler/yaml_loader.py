"""Safe YAML loading that remembers where every value came from.

Mappings load as `YDict` and sequences as `YList`; both carry their own location and the
location of each key and value, so later stages can point at `file:line:col`. Loading is
bounded: file size, nesting depth and the size of the tree with aliases expanded, so a hostile file (alias bomb, deep nesting) fails fast with a clear message.
No Python tags are recognised (this is `yaml.SafeLoader`), duplicate keys are refused.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from netspec.errors import Diagnostic, Location, SpecError
from netspec.files import open_regular

MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_TREE_NODES = 200_000


class YDict(dict):
    """A dict that knows its location and those of its keys and values."""

    loc: Location | None = None
    key_locs: dict
    value_locs: dict

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.key_locs = {}
        self.value_locs = {}


class YList(list):
    """A list that knows its location and those of its items."""

    loc: Location | None = None
    item_locs: list


def _loc(mark: yaml.Mark, filename: str) -> Location:
    return Location(filename, mark.line + 1, mark.column + 1)


# LibYAML's parser when PyYAML was built with it (about 10× faster); the constructors below
# are Python either way, and they are what builds YDict/YList.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# Scalars are read as YAML 1.2 does (PyYAML follows YAML 1.1): `010` is ten, not eight;
# `1:20` is text, not eighty; `1e3` is a number; only true/false are booleans (not yes/on).
_INT, _FLOAT, _BOOL = (f"tag:yaml.org,2002:{t}" for t in ("int", "float", "bool"))
_YAML12 = (
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
    (_INT, re.compile(r"^[-+]?[0-9]+$|^0o[0-7]+$|^0x[0-9a-fA-F]+$"), list("-+0123456789")),
    (_FLOAT, re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
     list("-+0123456789.")),
)


MAX_INT_DIGITS = 40  # far above any value a spec may hold; Python refuses > 4300 with a ValueError


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    base = 8 if text.startswith("0o") else 16 if text.startswith("0x") else 10
    return int(text[2:] if base != 10 else text, base)


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = loader.construct_scalar(node).lower()
    return float(text.replace(".inf", "inf").replace(".nan", "nan"))


def _construct_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    return loader.construct_scalar(node).lower() == "true"


def _make_loader(filename: str) -> type[yaml.SafeLoader]:
    class PositionLoader(_BaseLoader):  # type: ignore[misc, valid-type]
        yaml_implicit_resolvers = {
            first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT, _BOOL)]
            for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
        }

    for tag, pattern, first in _YAML12:
        PositionLoader.add_implicit_resolver(tag, pattern, first)
    def construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
        if len(node.value) > MAX_INT_DIGITS:
            raise SpecError.at(
                _loc(node.start_mark, filename),
                f"integer literal of {len(node.value):,} characters is out of range (at most {MAX_INT_DIGITS})",
            )
        return _construct_int(loader, node)

    PositionLoader.add_constructor(_INT, construct_int)
    PositionLoader.add_constructor(_FLOAT, _construct_float)
    PositionLoader.add_constructor(_BOOL, _construct_bool)

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> YDict:
        loader.flatten_mapping(node)
        result = YDict()
        result.loc = _loc(node.start_mark, filename)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise SpecError.at(_loc(key_node.start_mark, filename), "mapping keys must be plain scalars")
            if key in result:
                first = result.key_locs[key]
                raise SpecError.at(
                    _loc(key_node.start_mark, filename),
                    f"duplicate key {key!r} (first defined at line {first.line})",
                )
            result[key] = loader.construct_object(value_node, deep=True)
            result.key_locs[key] = _loc(key_node.start_mark, filename)
            result.value_locs[key] = _loc(value_node.start_mark, filename)
        return result

    def construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode, deep: bool = False) -> YList:
        result = YList(loader.construct_object(child, deep=True) for child in node.value)
        result.loc = _loc(node.start_mark, filename)
        result.item_locs = [_loc(child.start_mark, filename) for child in node.value]
        return result

    PositionLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    PositionLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    return PositionLoader  # type: ignore[return-value]


def _check_tree_size(root: Any, filename: str) -> None:
    """Walk the tree as later stages would (aliases counted each time they are used)."""
    budget = MAX_TREE_NODES
    stack: list[tuple[Any, int, Location | None]] = [(root, 0, getattr(root, "loc", None))]
    while stack:
        value, depth, loc = stack.pop()
        budget -= 1
        if budget < 0:
            raise SpecError.at(
                getattr(root, "loc", None) or Location(filename, 1, 1),
                f"spec too large: more than {MAX_TREE_NODES} values once aliases are expanded",
            )
        if depth > MAX_DEPTH:
            raise SpecError.at(loc, f"spec nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(value, dict):
            stack.extend((v, depth + 1, getattr(v, "loc", None) or loc) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1, getattr(v, "loc", None) or loc) for v in value)


def _check_nesting(text: str, filename: str) -> None:
    """Refuse deep nesting before composing: LibYAML's composer recurses in C, so a file of
    100,000 nested brackets would overflow the stack rather than raise.

    Only flow collections (`[`, `{`) can nest deeply within the size limit (block nesting
    needs ever more indentation), so a quick bracket count decides whether the exact check,
    a walk over parse events (iterative in LibYAML), is needed at all.
    """
    depth = deepest = 0
    for char in re.sub(r"[^\[\]{}]+", "", text):  # the brackets alone: the loop runs over few characters
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    if deepest <= MAX_DEPTH:
        return
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_BaseLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SpecError.at(_loc(event.start_mark, filename), f"spec nested too deeply (more than {MAX_DEPTH} levels)")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        if "nesting depth" in str(exc) and exc.problem_mark:  # newer LibYAML stops at its own limit
            raise SpecError.at(_loc(exc.problem_mark, filename), f"spec nested too deeply (more than {MAX_DEPTH} levels)") from None
        return  # a syntax error: composing reports it with its location
    except yaml.YAMLError:
        return


def load_yaml_text(text: str, filename: str = "<string>") -> Any:
    """Parse YAML text into YDict/YList/scalars, raising `SpecError` with a location."""
    if len(text.encode("utf-8", errors="replace")) > MAX_FILE_BYTES:
        raise SpecError.at(Location(filename, 1, 1), f"spec file larger than {MAX_FILE_BYTES} bytes")
    _check_nesting(text, filename)
    loader = _make_loader(filename)(text)
    try:
        data = loader.get_single_data()
    except SpecError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _loc(mark, filename) if mark else Location(filename, 1, 1)
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "python/" in str(exc):
            problem = "Python tags are not allowed in specs (" + problem + ")"
        raise SpecError.at(where, f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError.at(Location(filename, 1, 1), f"YAML error: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise SpecError.at(Location(filename, 1, 1), f"spec nested too deeply") from None
    finally:
        loader.dispose()
    _check_tree_size(data, filename)
    return data


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a spec file; a missing or unreadable file is a located error too."""
    path = Path(path)
    try:
        with open_regular(path) as handle:  # a FIFO or device is refused; read at most the limit (+1 to notice more)
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise SpecError.at(Location(str(path), 1, 1), f"spec file larger than {MAX_FILE_BYTES} bytes")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise SpecError([Diagnostic(None, f"{path}: no such file")]) from None
    except IsADirectoryError:
        raise SpecError([Diagnostic(None, f"{path}: is a directory, expected a .yaml spec")]) from None
    except UnicodeDecodeError as exc:
        raise SpecError.at(Location(str(path), 1, 1), f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise SpecError([Diagnostic(None, f"{path}: cannot read ({exc.strerror})")]) from None
    return load_yaml_text(text, str(path))


def locate(root: Any, path: tuple, *, key: bool = False) -> Location | None:
    """The location of the value at `path` (pydantic-style) in a loaded tree.

    Path elements that are not keys of the current container (pydantic's union tags) are
    skipped; the deepest location found is returned. With `key=True` the location of the
    last key itself is returned, which is where an unknown key should be reported.
    """
    node = root
    best = getattr(root, "loc", None)
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, YDict) and part in node:
            best = (node.key_locs if (key and last) else node.value_locs).get(part, best)
            node = node[part]
        elif isinstance(node, YList) and isinstance(part, int) and 0 <= part < len(node):
            best = node.item_locs[part]
            node = node[part]
        else:
            continue
        best = getattr(node, "loc", None) if not (key and last) and getattr(node, "loc", None) else best
    return best
