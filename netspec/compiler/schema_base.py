"""The base of every schema model: unknown keys refused with a "did you mean" hint.

Values written as `$name` or `${expr}` (references inside parameterised blocks) are
accepted wherever a number is, through the `Ref` type; they are substituted before a
layer is built, and validated again then.
"""
from __future__ import annotations

import difflib
import math
from typing import Annotated, Any, Callable

from pydantic import BaseModel, ValidationError, ConfigDict, PlainValidator, StringConstraints, WithJsonSchema, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
Ref = Annotated[str, StringConstraints(pattern=r"^\$")]
_REF_SCHEMA = {"type": "string", "pattern": "^\\$", "description": "a block parameter: $name or ${expr}"}
MAX_INT = 1_000_000


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    """Finite numbers only: `.nan` and `.inf` would only fail inside torch."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def value_type(name: str, expected: str, check: Callable[[Any], bool], schema: dict) -> Any:
    """A field type with one clear error message (no union noise) that also accepts `$refs`."""

    def validate(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("$"):
            return value
        if not check(value):
            raise PydanticCustomError(name, "expected {expected}, got {got}", {"expected": expected, "got": repr(value)})
        return list(value) if isinstance(value, (list, tuple)) else value

    return Annotated[Any, PlainValidator(validate), WithJsonSchema({"anyOf": [schema, _REF_SCHEMA]})]


def _pos_int(v: Any) -> bool:
    return _is_int(v) and 0 < v <= MAX_INT


def _non_neg_int(v: Any) -> bool:
    return _is_int(v) and 0 <= v <= MAX_INT


def _pair_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: check(v) or (isinstance(v, (list, tuple)) and len(v) == 2 and all(check(x) for x in v))


_INT_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_INT}
_NN_INT_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
PosInt = value_type("positive_int", f"a positive integer (at most {MAX_INT:,})", _pos_int, _INT_SCHEMA)
NonNegInt = value_type("non_negative_int", f"a non-negative integer (at most {MAX_INT:,})", _non_neg_int, _NN_INT_SCHEMA)
PosIntPair = value_type(
    "positive_int_pair",
    f"a positive integer or a list of two (at most {MAX_INT:,})",
    _pair_of(_pos_int),
    {"anyOf": [_INT_SCHEMA, {"type": "array", "items": _INT_SCHEMA, "minItems": 2, "maxItems": 2}]},
)
NonNegIntPair = value_type(
    "non_negative_int_pair",
    f"a non-negative integer or a list of two (at most {MAX_INT:,})",
    _pair_of(_non_neg_int),
    {"anyOf": [_NN_INT_SCHEMA, {"type": "array", "items": _NN_INT_SCHEMA, "minItems": 2, "maxItems": 2}]},
)
ConvPadding = value_type(
    "conv_padding",
    f"a non-negative integer, a list of two (at most {MAX_INT:,}), 'same' or 'valid'",
    lambda v: v in ("same", "valid") or _pair_of(_non_neg_int)(v),
    {"anyOf": [_NN_INT_SCHEMA, {"type": "array", "items": _NN_INT_SCHEMA, "minItems": 2, "maxItems": 2}, {"enum": ["same", "valid"]}]},
)
Probability = value_type(
    "probability", "a number in [0, 1)", lambda v: _is_number(v) and 0 <= v < 1, {"type": "number", "minimum": 0, "exclusiveMaximum": 1}
)
PosFloat = value_type("positive_number", "a positive number", lambda v: _is_number(v) and v > 0, {"type": "number", "exclusiveMinimum": 0})
Number = value_type("number", "a number", _is_number, {"type": "number"})
NonNegFloat = value_type("non_negative_number", "a non-negative number", lambda v: _is_number(v) and v >= 0, {"type": "number", "minimum": 0})
Bool = value_type("bool", "true or false", lambda v: isinstance(v, bool), {"type": "boolean"})


def did_you_mean(word: str, choices: Any) -> str:
    """A ' (did you mean 'x'?)' hint, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_ALLOWED_KEYS: dict[type, frozenset] = {}


class Model(BaseModel):
    """Strict about keys: an unknown key is an error naming the key and the nearest valid one.

    Strict about values too: "3", true or 256.0 are not integers, "0.1" is not a number, and
    .nan/.inf are refused (they would only fail mid-run).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True, allow_inf_nan=False, defer_build=True)

    @model_validator(mode="wrap")
    @classmethod
    def _refuse_unknown_keys(cls, data: Any, handler: Any) -> Any:
        """Report unknown keys beside the other errors of the same mapping (not instead of them)."""
        if not isinstance(data, dict):
            return handler(data)
        allowed = _ALLOWED_KEYS.get(cls)
        if allowed is None:  # computed once per class: this runs for every mapping validated
            fields = cls.model_fields
            allowed = _ALLOWED_KEYS[cls] = frozenset(fields) | {f.alias for f in fields.values() if f.alias}
        unknown = [k for k in data if k not in allowed]
        if not unknown:
            return handler(data)
        from netspec.compiler.messages import meant_key, unknown_key_hint

        errors: list[InitErrorDetails] = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "unknown_key", "unknown key {key}{hint}", {"key": repr(k), "hint": unknown_key_hint(k, allowed)}
                ),
                loc=(k,),
                input=data[k],
            )
            for k in unknown
        ]
        meant = {meant_key(k, allowed) for k in unknown}  # "missing 'out'" beside "'out_channels': say 'out'" says it twice
        try:
            handler({k: v for k, v in data.items() if k in allowed})
        except ValidationError as exc:
            errors += [
                InitErrorDetails(
                    type=PydanticCustomError(e["type"], e["msg"].replace("{", "(").replace("}", ")"), e.get("ctx")),
                    loc=e["loc"],
                    input=e.get("input"),
                )
                for e in exc.errors(include_url=False)
                if not (e["type"] == "missing" and len(e["loc"]) == 1 and e["loc"][0] in meant)
            ]
        raise ValidationError.from_exception_data(cls.__name__, errors)
