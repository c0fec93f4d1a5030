"""Block calls checked against the blocks' parameters, before expansion and beside the schema.

A call's arguments are not part of the layer schema (they depend on the block called), so
they are checked here: every call in the file (top level and inside user blocks' bodies) at
once, reported together with the schema's errors. Expansion checks them again after `$refs`
are substituted, with the same function, so both say the same thing.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from pydantic import ValidationError

from netspec.compiler import registry
from netspec.compiler.messages import FOREIGN_NAMES, INFERRED_NAMES, meant_key, unknown_key_hint
from netspec.compiler.schema import META_KEYS, STRUCTURAL_OPS, ParamDecl, param_type_problem
from netspec.compiler.schema_base import did_you_mean
from netspec.compiler.yaml_loader import YDict, YList, locate
from netspec.errors import Diagnostic, Location

Decls = Mapping[str, ParamDecl]


def argument_problems(
    block: str, decls: Decls, item: YDict, where: Location | None, report_at: Location | None = None, *, refs_unknown: bool = False
) -> tuple[dict[str, Any], list[Diagnostic]]:
    """A call's values (arguments and defaults) and what is wrong with them.

    With `refs_unknown`, `$refs` (not yet substituted) pass the type check.
    """
    args = {k: v for k, v in item.items() if k not in META_KEYS}
    key_locs = getattr(item, "key_locs", {})
    value_locs = getattr(item, "value_locs", {})
    problems = [
        Diagnostic(
            report_at or key_locs.get(key, where),
            f"block {block!r} has no parameter {key!r}{_hint(key, decls)} (parameters: {', '.join(decls) or 'none'})",
        )
        for key in args
        if key not in decls
    ]
    values: dict[str, Any] = {}
    missing = []
    for name, decl in decls.items():
        if name in args:
            value = args[name]
        elif "default" in decl.model_fields_set:
            values[name] = decl.default  # checked where it is declared
            continue
        else:
            missing.append(name)
            continue
        if not (refs_unknown and _has_ref(value)):
            problem = param_type_problem(value, decl.type, decl.choices)
            if problem:
                problems.append(Diagnostic(report_at or value_locs.get(name, where), f"{block}.{name}: {problem}"))
        values[name] = value
    meant = {meant_key(key, decls) for key in args if key not in decls}
    missing = [name for name in missing if name not in meant]  # `outt: 8` already says what `out` lacks
    if missing:  # one call, one line
        names = ", ".join(map(repr, missing))
        problems.append(Diagnostic(report_at or where, f"block {block!r} needs parameter{'s' * (len(missing) > 1)} {names}"))
    return values, problems


def _hint(key: Any, decls: Decls) -> str:
    """PyTorch's names (`in_channels`, `out_channels`) get the layer hints; others the nearest parameter."""
    if key in INFERRED_NAMES or key in FOREIGN_NAMES:
        return unknown_key_hint(key, [*decls, "op"])
    return did_you_mean(key, decls)


def _has_ref(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith("$")
    return isinstance(value, list) and any(_has_ref(v) for v in value)


def declarations(params: Any) -> dict[str, ParamDecl] | None:
    """A raw `params:` mapping as declarations; None when it is malformed (the schema says why)."""
    if not isinstance(params, Mapping):
        return None if params is not None else {}
    out = {}
    for name, decl in params.items():
        try:
            out[name] = ParamDecl.model_validate({"type": decl} if isinstance(decl, str) else decl)
        except ValidationError:
            return None
    return out


def _items(items: Any, path: tuple) -> Iterator[tuple[Any, tuple]]:
    """Every layer item of a list, with its path, nested groups and branches too."""
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        yield item, path + (i,)
        if isinstance(item, Mapping):
            if isinstance(item.get("layers"), list):
                yield from _items(item["layers"], path + (i, "layers"))
            branches = item.get("branches")
            pairs = branches.items() if isinstance(branches, Mapping) else enumerate(branches) if isinstance(branches, list) else ()
            for key, branch in pairs:
                yield from _items(branch, path + (i, "branches", key))


def call_diagnostics(raw: Any, builtin: Mapping[str, Decls]) -> list[Diagnostic]:
    """Every block call's argument problems, and every `when:` outside a block."""
    if not isinstance(raw, Mapping):
        return []
    blocks: dict[str, Decls | None] = dict(builtin)
    raw_blocks = raw.get("blocks") if isinstance(raw.get("blocks"), Mapping) else {}
    for name, definition in raw_blocks.items():
        blocks[str(name)] = declarations(definition.get("params")) if isinstance(definition, Mapping) else None
    out: list[Diagnostic] = []
    # a spec with `variants:` gives top-level expressions the variant's names, so `when:` can vary there too
    roots = [(raw.get("layers"), ("layers",), "variants" in raw)]
    roots += [(d.get("layers"), ("blocks", n, "layers"), True) for n, d in raw_blocks.items() if isinstance(d, Mapping)]
    for items, path, in_block in roots:
        for item, item_path in _items(items, path):
            if not isinstance(item, Mapping):
                continue
            if "when" in item and not in_block:
                out.append(Diagnostic(
                    locate(raw, item_path + ("when",), key=True),
                    "when: is for layers inside blocks (it tests the block's parameters and input shape);"
                    " outside a block, keep or delete the layer itself",
                ))
            op = item.get("op")
            decls = blocks.get(op) if isinstance(op, str) and op not in STRUCTURAL_OPS and registry.get(op) is None else None
            if decls is not None:
                # `$refs` are checked once substituted (at the top level they may name the input's shape)
                _, problems = argument_problems(op, decls, item, locate(raw, item_path), refs_unknown=True)
                out += problems
    return out
