"""pydantic's errors in netspec's words: "expected an integer, got '3'", not "Input should be a
valid integer"; choices get a "did you mean", and PyTorch's (and Keras's) parameter names point
at netspec's.

One table, keyed by pydantic's error type, used by every stage that turns a ValidationError
into a diagnostic (the spec schema, the `train:` section, command-line overrides).
"""
from __future__ import annotations

import difflib
import re
from typing import Any, Mapping

from netspec.compiler.schema_base import IDENT, did_you_mean

# Parameter names users bring from torch.nn (and Keras) -> what netspec calls them.
FOREIGN_NAMES = {
    "out_channels": "out",
    "out_features": "out",
    "num_classes": "out",
    "features": "out",
    "units": "out",
    "filters": "out",
    "kernel_size": "kernel",
    "pool_size": "kernel",
    "strides": "stride",
    "rate": "p",
    "drop_rate": "p",
    "output_size": "size",
    "inplace": None,
}
INFERRED_NAMES = ("in_channels", "in_features", "num_features", "input_size", "input_shape")


def meant_key(key: Any, allowed: Any) -> str | None:
    """The valid key an unknown one stands for (its torch twin or the nearest), if any."""
    allowed = [str(a) for a in allowed]
    twin = FOREIGN_NAMES.get(key) if isinstance(key, str) else None
    if twin in allowed:
        return twin
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_key_hint(key: Any, allowed: Any) -> str:
    """The hint after "unknown key 'x'": a torch name's netspec twin, or the nearest key."""
    allowed = sorted(str(a) for a in allowed)
    if isinstance(key, str):
        if key in INFERRED_NAMES and "op" in allowed:
            return " (netspec infers it from the input: leave it out)"
        twin = FOREIGN_NAMES.get(key, "")
        if twin and twin in allowed:
            return f" (netspec calls it {twin!r})"
        if twin is None and "op" in allowed:
            return " (netspec has no such option: leave it out)"
    return did_you_mean(key, allowed)


def _got(err: Mapping[str, Any]) -> str:
    return repr(err.get("input"))[:100]


def _choices(expected: str) -> list[str]:
    """pydantic's "'a', 'b' or 'c'" -> ['a', 'b', 'c']."""
    return re.findall(r"'((?:[^'\\]|\\.)*)'", expected)


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() and abs(value) < 1e15 else str(value)


def _bound(word: str, key: str) -> Any:
    return lambda err: f"expected a number {word} {_number(err['ctx'][key])}, got {_got(err)}"


def _length(word: str, key: str) -> Any:
    def message(err: Mapping[str, Any]) -> str:
        ctx = err["ctx"]
        unit = "characters" if err["type"].startswith("string") else "items"
        actual = f", got {ctx['actual_length']}" if "actual_length" in ctx else ""
        return f"expected {word} {ctx[key]} {unit}{actual}"

    return message


def _literal(err: Mapping[str, Any]) -> str:
    choices = _choices(err["ctx"]["expected"])
    shown = ", ".join(repr(c) for c in choices) if choices else err["ctx"]["expected"]
    value = err.get("input")
    return f"expected one of {shown}, got {_got(err)}" + (did_you_mean(value, choices) if isinstance(value, str) else "")


def _pattern(err: Mapping[str, Any]) -> str:
    if err["ctx"].get("pattern") == IDENT:
        return f"expected a name (letters, digits and _, not starting with a digit), got {_got(err)}"
    if err["ctx"].get("pattern") == r"^\$":
        return f"expected a $reference, got {_got(err)}"
    return f"expected text matching {err['ctx']['pattern']}, got {_got(err)}"


_MESSAGES: dict[str, Any] = {
    "int_type": lambda e: f"expected an integer, got {_got(e)}",
    "int_parsing": lambda e: f"expected an integer, got {_got(e)}",
    "int_from_float": lambda e: f"expected an integer, got {_got(e)}",
    "float_type": lambda e: f"expected a number, got {_got(e)}",
    "float_parsing": lambda e: f"expected a number, got {_got(e)}",
    "finite_number": lambda e: f"expected a finite number, got {_got(e)}",
    "bool_type": lambda e: f"expected true or false, got {_got(e)}",
    "bool_parsing": lambda e: f"expected true or false, got {_got(e)}",
    "string_type": lambda e: f"expected a string, got {_got(e)}",
    "list_type": lambda e: f"expected a list, got {_got(e)}",
    "tuple_type": lambda e: f"expected a list, got {_got(e)}",
    "dict_type": lambda e: f"expected a mapping, got {_got(e)}",
    "model_type": lambda e: f"expected a mapping, got {_got(e)}",
    "model_attributes_type": lambda e: f"expected a mapping, got {_got(e)}",
    "none_required": lambda e: f"expected nothing (null), got {_got(e)}",
    "greater_than": _bound("greater than", "gt"),
    "greater_than_equal": _bound("at least", "ge"),
    "less_than": _bound("less than", "lt"),
    "less_than_equal": _bound("at most", "le"),
    "too_short": _length("at least", "min_length"),
    "too_long": _length("at most", "max_length"),
    "string_too_short": _length("at least", "min_length"),
    "string_too_long": _length("at most", "max_length"),
    "literal_error": _literal,
    "string_pattern_mismatch": _pattern,
    "missing": lambda e: "missing required key",
    "invalid_key": lambda e: f"keys must be names, got {_got(e)}",
}


def message(err: Mapping[str, Any]) -> str:
    """One pydantic error (from `ValidationError.errors()`) in netspec's words."""
    build = _MESSAGES.get(err["type"])
    if build is not None:
        try:
            return build(err)
        except (KeyError, TypeError):  # an error re-raised without its context: its text is ours already
            pass
    text = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    return text
