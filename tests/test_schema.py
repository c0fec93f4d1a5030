"""Validation of specs: every error as `file:line:col: message`, all at once, with hints.

Expected lines and columns come from the spec text itself (the position of the offending key
or value), so the tests say where an editor should jump, not what the compiler happens to say.
"""
from __future__ import annotations

import re
import textwrap

import pytest

import netspec
from netspec.compiler.expr import ExprError, evaluate
from netspec.compiler.passes.expand import Expander
from netspec.errors import Location, NetspecError, SpecError
from work import call_budget, count_calls

F = "x.yaml"
LINE = re.compile(r"^x\.yaml:(\d+):(\d+): (.+)$")


def where(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """1-based (line, col) of the nth occurrence of `needle` in `text`."""
    index = -1
    for _ in range(nth):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def at(text: str, needle: str, nth: int = 1) -> Location:
    return Location(F, *where(text, needle, nth))


def spec(body: str, header: str = "name: t\ninput: [4, 8, 8]\n") -> str:
    return header + textwrap.dedent(body)


def errors(text: str) -> list[tuple[Location | None, str]]:
    """The diagnostics of a spec that must fail (loading and building the graph)."""
    with pytest.raises(SpecError) as info:
        netspec.build_graph(netspec.load(F, text=text))
    return [(d.location, d.message) for d in info.value.diagnostics]


def one_error(text: str) -> tuple[Location | None, str]:
    found = errors(text)
    assert len(found) == 1, found
    return found[0]


def builds(text: str):
    return netspec.build_graph(netspec.load(F, text=text))


def warm() -> None:
    """Build a trivial spec first, so work budgets don't include one-off set-up (pydantic, prelude)."""
    builds(spec("blocks:\n  b:\n    layers: [relu]\nlayers: [b, {op: relu, repeat: 2}]\n"))


# --------------------------------------------------------------------------- format, all at once

MANY_ERRORS = spec(
    """\
    layers:
      - {op: conv2d, out: 8, kernal: 3}
      - sigmod
      - {op: linear, out: -3}
      - {op: dropout, p: 1.5}
      - {op: maxpool}
    extra: 1
    """
)


def test_every_error_of_a_file_is_reported_at_once_in_order() -> None:
    found = errors(MANY_ERRORS)
    expected = [
        # no "missing required key 'kernel'" at {op: conv2d: the misspelling is one mistake, one line
        (at(MANY_ERRORS, "kernal"), "unknown key 'kernal' (did you mean 'kernel'?)"),
        (at(MANY_ERRORS, "sigmod"), "unknown op 'sigmod' (did you mean 'sigmoid'?); `netspec ops` lists the ops and blocks"),
        (at(MANY_ERRORS, "-3"), "expected a positive integer (at most 1,000,000), got -3"),
        (at(MANY_ERRORS, "1.5"), "expected a number in [0, 1), got 1.5"),
        (at(MANY_ERRORS, "{op: maxpool}"), "missing required key 'kernel'"),
        (at(MANY_ERRORS, "extra"), "unknown key 'extra'"),
    ]
    assert len(found) == len(expected), found
    for (loc, message), (want_loc, want_text) in zip(found, expected):
        assert loc == want_loc, (message, want_text)
        assert want_text in message


def test_error_text_is_one_located_line_per_problem() -> None:
    with pytest.raises(SpecError) as info:
        netspec.load(F, text=MANY_ERRORS)
    lines = str(info.value).splitlines()
    assert len(lines) == 6
    assert all(LINE.match(line) for line in lines), lines
    assert lines[0] == f"x.yaml:{where(MANY_ERRORS, 'kernal')[0]}:{where(MANY_ERRORS, 'kernal')[1]}: layers[0].kernal: unknown key 'kernal' (did you mean 'kernel'?)"


def test_error_names_the_path_of_the_bad_value() -> None:
    text = spec(
        """\
        layers:
          - relu
          - op: sequential
            layers:
              - {op: conv2d, out: 8, kernel: 3, stride: 0}
        """
    )
    loc, message = one_error(text)
    assert loc == at(text, "0}")
    assert message.startswith("layers[1].layers[0].stride: ")
    assert "expected a positive integer or a list of two (at most 1,000,000), got 0" in message


@pytest.mark.parametrize(
    "body,needle,hint",
    [
        ("layers:\n  - {op: conv2d, out: 8, kernel: 3, paddin: 1}\n", "paddin", "did you mean 'padding'?"),
        ("layers:\n  - {op: conv2d, out: 8, kernel: 3, dilatoin: 2}\n", "dilatoin", "did you mean 'dilation'?"),
        ("layers:\n  - {op: maxpool, kernel: 2, ceilmode: true}\n", "ceilmode", "did you mean 'ceil_mode'?"),
        ("layers:\n  - {op: linear, out: 3, nmae: fc}\n", "nmae", "did you mean 'name'?"),
        ("layer:\n  - relu\n", "layer", "did you mean 'layers'?"),
        ("layers: [relu]\ninti: zeros\n", "inti", "did you mean 'init'?"),
        ("layers: [relu]\ntrain: {batchsize: 3}\n", "batchsize", "did you mean 'batch_size'?"),
    ],
)
def test_unknown_keys_are_reported_at_the_key_with_a_hint(body: str, needle: str, hint: str) -> None:
    text = spec(body)
    found = errors(text)
    match = [(loc, msg) for loc, msg in found if f"unknown key '{needle}'" in msg]
    assert match, found
    loc, message = match[0]
    assert loc == at(text, needle)
    assert hint in message


def test_unknown_key_without_a_close_match_has_no_hint() -> None:
    text = spec("layers:\n  - {op: relu, zzzzzz: 1}\n")
    _, message = one_error(text)
    assert "unknown key 'zzzzzz'" in message and "did you mean" not in message


@pytest.mark.parametrize(
    "layer,needle,hint",
    [
        ("- {op: conv2, out: 8, kernel: 3}", "conv2", "'conv2d'"),
        ("- hardswsh", "hardswsh", "'hardswish'"),
        ("- {op: residul, out: 8}", "residul", "'residual'"),
        ("- {op: incepton, c1: 1, c2: [1, 1], c3: [1, 1], c4: 1}", "incepton", "'inception'"),
        ("- {op: paralel, branches: [[], []]}", "paralel", "'parallel'"),
        ("- {op: my_blok}", "my_blok", "'my_block'"),
    ],
)
def test_unknown_ops_get_did_you_mean(layer: str, needle: str, hint: str) -> None:
    text = spec(
        f"""\
        blocks:
          my_block:
            layers: [relu]
        layers:
          {layer}
        """
    )
    loc, message = one_error(text)
    assert loc == at(text, needle)
    assert f"unknown op '{needle}'" in message and f"did you mean {hint}?" in message


def test_unknown_op_in_a_block_body_and_a_branch_are_found_too() -> None:
    text = spec(
        """\
        blocks:
          b:
            layers: [{op: convv2d, out: 3, kernel: 1}]
        layers:
          - op: parallel
            branches: {x: [rleu], y: []}
          - b
        """
    )
    found = errors(text)
    assert (at(text, "convv2d"), "unknown op 'convv2d' (did you mean 'conv2d'?); `netspec ops` lists the ops and blocks") in found
    assert (at(text, "rleu"), "unknown op 'rleu' (did you mean 'relu'?); `netspec ops` lists the ops and blocks") in found


def test_missing_required_keys_are_reported_at_the_mapping() -> None:
    text = "name: t\nlayers: [relu]\n"
    assert one_error(text) == (Location(F, 1, 1), "missing required key 'input'")
    text = spec("layers:\n  - {op: linear, bias: false}\n")
    assert one_error(text) == (at(text, "{op: linear"), "layers[0]: missing required key 'out'")


@pytest.mark.parametrize(
    "value,expected",
    [
        ("4.5", "expected a positive integer (at most 1,000,000), got 4.5"),
        ("'8'", "expected a positive integer (at most 1,000,000), got '8'"),
        ("true", "expected a positive integer (at most 1,000,000), got True"),
        ("0", "expected a positive integer (at most 1,000,000), got 0"),
        ("2000000", "expected a positive integer (at most 1,000,000), got 2000000"),
        ("[8]", "expected a positive integer (at most 1,000,000), got [8]"),
    ],
)
def test_wrong_value_types_are_located_at_the_value(value: str, expected: str) -> None:
    text = spec(f"layers:\n  - {{op: conv2d, kernel: 3, out: {value}}}\n")
    loc, message = one_error(text)
    assert loc == at(text, value + "}")
    assert message == f"layers[0].out: {expected}"


def test_bad_header_values() -> None:
    text = "name: 1abc\ninput: [3, 4, 5, 6]\nlayers: [relu]\n"
    found = errors(text)
    assert [loc for loc, _ in found] == [at(text, "1abc"), at(text, "[3, 4, 5, 6]")]
    assert "expected at most 3 items, got 4" in found[1][1]


def test_empty_layers_are_refused() -> None:
    text = spec("layers: []\n")
    loc, message = one_error(text)
    assert loc == at(text, "[]") and "at least 1" in message


def test_parallel_needs_two_branches() -> None:
    text = spec("layers:\n  - {op: parallel, branches: {a: [relu]}}\n")
    assert "at least two branches" in one_error(text)[1]


def test_a_layer_that_is_not_a_mapping_says_what_a_layer_is() -> None:
    text = spec("layers:\n  - relu\n  - 3\n")
    loc, message = one_error(text)
    assert loc == at(text, "3\n")
    assert "BlockCall" not in message and "op" in message


# --------------------------------------------------------------------------- blocks

BLOCK = """\
blocks:
  blk:
    params: {out: int, stride: {type: int, default: 1}, mode: {type: str, default: a, choices: [a, b]}}
    layers:
      - {op: conv2d, name: conv, out: $out, kernel: 3, padding: 1, stride: $stride}
"""


def test_block_arguments_get_did_you_mean_and_the_parameter_list() -> None:
    text = spec(BLOCK + "layers:\n  - {op: blk, out: 8, strid: 2}\n")
    loc, message = one_error(text)
    assert loc == at(text, "strid: 2")
    assert message == "block 'blk' has no parameter 'strid' (did you mean 'stride'?) (parameters: out, stride, mode)"


def test_missing_block_argument_is_reported_at_the_call() -> None:
    text = spec(BLOCK + "layers:\n  - {op: blk, stride: 2}\n")
    assert one_error(text) == (at(text, "{op: blk"), "block 'blk' needs parameter 'out'")


@pytest.mark.parametrize(
    "arg,message",
    [
        ("out: eight", "blk.out: expected an integer, got 'eight'"),
        ("out: 8.0", "blk.out: expected an integer, got 8.0"),
        ("out: 8, mode: c", "blk.mode: expected one of a, b, got 'c'"),
    ],
)
def test_block_argument_types_and_choices(arg: str, message: str) -> None:
    text = spec(BLOCK + f"layers:\n  - {{op: blk, {arg}}}\n")
    loc, got = one_error(text)
    assert got == message
    assert loc == at(text, arg.split(": ")[-1] if "mode" not in arg else "c}")


def test_builtin_block_arguments_are_checked_too() -> None:
    text = spec("layers:\n  - {op: residual, outt: 8}\n")
    found = errors(text)
    assert (at(text, "outt"), "block 'residual' has no parameter 'outt' (did you mean 'out'?) (parameters: out, stride, shortcut, bias)") in found
    assert len(found) == 1  # `outt` is the missing `out`: one mistake, one line
    text = spec("layers:\n  - {op: residual, out: 8, shortcut: maybe}\n")
    assert one_error(text) == (at(text, "maybe"), "residual.shortcut: expected one of auto, identity, conv, got 'maybe'")


def test_errors_inside_a_builtin_block_point_at_the_call() -> None:
    text = spec("layers:\n  - relu\n  - {op: residual, out: 0}\n")
    loc, message = one_error(text)
    assert loc == at(text, "{op: residual")
    assert "expected a positive integer (at most 1,000,000), got 0" in message


def test_errors_inside_a_user_block_point_into_the_block() -> None:
    text = spec(BLOCK + "layers:\n  - {op: blk, out: 0}\n")
    loc, message = one_error(text)
    assert loc == at(text, "$out")
    assert "expected a positive integer (at most 1,000,000), got 0" in message


def test_bad_parameter_declaration_gets_a_hint() -> None:
    text = spec("blocks:\n  b:\n    params: {n: {typ: int}}\n    layers: [relu]\nlayers: [relu]\n")
    found = errors(text)
    assert (at(text, "typ"), "blocks.b.params.n.typ: unknown key 'typ' (did you mean 'type'?)") in found


def test_a_block_named_like_a_builtin_op_is_refused() -> None:
    text = spec("blocks:\n  relu:\n    layers: [{op: conv2d, out: 2, kernel: 1}]\nlayers:\n  - relu\n")
    loc, message = one_error(text)
    assert loc == at(text, "relu:") and "relu" in message


@pytest.mark.parametrize(
    "blocks,chain",
    [
        ("a:\n    layers: [a]\n", "a -> a"),
        ("a:\n    layers: [b]\n  b:\n    layers: [relu, c]\n  c:\n    layers: [a]\n", "a -> b -> c -> a"),
    ],
)
def test_recursive_blocks_are_refused(blocks: str, chain: str) -> None:
    text = spec(f"blocks:\n  {blocks}layers:\n  - a\n")
    warm()
    with call_budget(20_000):  # about 1,500 calls; recursing to the block depth limit costs far more
        loc, message = one_error(text)
    assert message == f"block 'a' calls itself ({chain})"
    assert loc is not None and loc.file == F


def test_a_block_may_call_another_block() -> None:
    text = spec(
        """\
        blocks:
          inner:
            params: {c: int}
            layers: [{op: conv2d, out: $c, kernel: 1}]
          outer:
            params: {c: int}
            layers: [{op: inner, c: "${c * 2}", name: i}, relu]
        layers:
          - {op: outer, c: 3, name: o}
        """
    )
    graph = builds(text)
    assert graph.node("o.i.0").shape == (6, 8, 8)


# --------------------------------------------------------------------------- repeat

@pytest.mark.parametrize("value", ["0", "-1", "1001", "abc", "2.5"])
def test_repeat_bounds(value: str) -> None:
    text = spec(f"layers:\n  - {{op: relu, repeat: {value}}}\n")
    found = errors(text)
    assert found and all(loc == at(text, f"{value}}}") for loc, _ in found)
    assert all(msg.startswith("layers[0].repeat: ") for _, msg in found)


def test_repeat_1000_is_allowed() -> None:
    graph = builds(spec("layers:\n  - {op: relu, repeat: 1000}\n"))
    assert len(graph) == 1001


def test_repeat_a_billion_fails_fast_naming_the_limit() -> None:
    text = spec("layers:\n  - {op: conv2d, out: 4, kernel: 1, repeat: 1000000000}\n")
    warm()
    with call_budget(20_000):  # refused before expansion: 1,000 relus alone take 90,000 calls
        found = errors(text)
    assert any("1 to 1000" in msg and "1000000000" in msg for _, msg in found), found


def test_repeat_a_billion_through_a_block_parameter_fails_fast() -> None:
    text = spec("blocks:\n  b:\n    params: {n: int}\n    layers: [{op: relu, repeat: $n}]\nlayers:\n  - {op: b, n: 1000000000}\n")
    warm()
    with call_budget(20_000):  # refused before expansion: 1,000 relus alone take 90,000 calls
        found = errors(text)
    assert all(loc == at(text, "$n") for loc, _ in found)
    assert any("1000" in msg for _, msg in found)


def test_nested_repeats_are_bounded_by_the_layer_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    text = spec(
        """\
        blocks:
          a:
            layers: [{op: relu, repeat: 1000}]
          b:
            layers: [{op: a, repeat: 1000}]
        layers:
          - {op: b, repeat: 1000}
        """
    )
    # at most 20,000 layers, plus the 21 block calls that hold them, are expanded before the
    # refusal; without the limit expansion would go on to 10**9 (stopped at 40,000 here)
    with count_calls(monkeypatch, Expander, "expand", limit=40_000) as expanded:
        loc, message = one_error(text)
    assert 20_000 <= expanded.calls <= 20_000 + 100, expanded.calls
    assert "network too large" in message and "20000" in message


@pytest.mark.parametrize(
    "body,needle",
    [
        ("layers:\n  - {op: relu, repeat: 1000000000}\n", "1000000000"),
        ("layers: [relu]\ninit: {weight: normal, std: -1}\n", "-1"),
    ],
    ids=["repeat", "init"],
)
def test_a_bad_value_gets_one_clear_message(body: str, needle: str) -> None:
    text = spec(body)
    loc, message = one_error(text)
    assert loc == at(text, needle) and "valid string" not in message


# --------------------------------------------------------------------------- names and from

def test_from_naming_no_earlier_layer() -> None:
    text = spec("layers:\n  - {op: conv2d, name: stem, out: 4, kernel: 1}\n  - {op: relu, from: stme}\n")
    loc, message = one_error(text)
    assert loc == at(text, "stme")
    assert message.startswith("'from: stme' names no earlier layer in this scope (did you mean 'stem'?) (known: ")
    assert "stem" in message.split("(known: ")[1] and "input" in message.split("(known: ")[1]


def test_from_cannot_name_a_later_layer() -> None:
    text = spec("layers:\n  - {op: relu, from: later}\n  - {op: relu, name: later}\n")
    assert "'from: later' names no earlier layer" in one_error(text)[1]


def test_from_cannot_reach_into_or_out_of_a_group() -> None:
    inside = spec("layers:\n  - {op: sequential, layers: [{op: relu, name: r}]}\n  - {op: relu, from: r}\n")
    assert "'from: r' names no earlier layer" in one_error(inside)[1]
    outside = spec("layers:\n  - {op: relu, name: r}\n  - {op: sequential, layers: [{op: relu, from: r}]}\n")
    assert "'from: r' names no earlier layer" in one_error(outside)[1]


@pytest.mark.parametrize("value", ["[1, 2.5]", "{a: 1}", "[]", "true"])
def test_from_must_be_names(value: str) -> None:
    text = spec(f"layers:\n  - relu\n  - {{op: add, from: {value}}}\n")
    loc, message = one_error(text)
    assert loc is not None and loc.line == 5
    assert "layer name" in message


def test_duplicate_layer_names_are_refused() -> None:
    text = spec("layers:\n  - {op: relu, name: a}\n  - {op: relu, name: a}\n")
    loc, message = one_error(text)
    assert loc == at(text, "{op: relu, name: a}", 2) and "duplicate layer name 'a'" in message


@pytest.mark.parametrize("second", ["{op: sequential, name: a, layers: [relu]}", "{op: relu, name: a, repeat: 2}"])
def test_a_name_used_by_a_layer_and_a_group_is_refused(second: str) -> None:
    text = spec(f"layers:\n  - {{op: conv2d, name: a, out: 4, kernel: 1}}\n  - {second}\n")
    assert "duplicate" in one_error(text)[1]


@pytest.mark.parametrize("key", ["''", "if"])
def test_branch_names_must_be_identifiers(key: str) -> None:
    text = spec(f"layers:\n  - {{op: parallel, branches: {{{key}: [relu], b: [relu]}}}}\n")
    try:
        graph = builds(text)
        netspec.compile(graph)
    except NetspecError as exc:
        assert isinstance(exc, SpecError) and exc.diagnostics[0].location is not None
    else:
        pytest.fail("accepted a branch name that is not an identifier")


@pytest.mark.parametrize("name", ["'a b'", "1x", "a.b", "x-y"])
def test_layer_names_must_be_identifiers(name: str) -> None:
    text = spec(f"layers:\n  - {{op: relu, name: {name}}}\n")
    loc, message = one_error(text)
    assert loc == at(text, name + "}") and "expected a name (letters, digits and _" in message


# --------------------------------------------------------------------------- expressions

def block_with(expr: str, extra: str = "") -> str:
    return spec(
        f"""\
        blocks:
          b:
            params: {{n: int, s: {{type: str, default: x}}, c: {{type: ints, default: [1, 2]}}}}
            layers:
              - {{op: conv2d, out: "{expr}", kernel: 1{extra}}}
        layers:
          - {{op: b, n: 3}}
        """
    )


def test_expressions_compute_from_parameters_and_input_shape() -> None:
    graph = builds(block_with("${n * in_channels + c[1] - in_height // 8}"))
    assert graph.output_shape == (3 * 4 + 2 - 1, 8, 8)


def test_unknown_name_in_a_reference_lists_the_known_ones() -> None:
    text = block_with("$m")
    loc, message = one_error(text)
    assert loc == at(text, '"$m"')
    assert message == ("out: unknown name 'm' in 'm' (known: block_in_channels, block_in_height, block_in_width, c, in_channels, in_height, in_width, n, s)"
                       " (in block 'b' called at line 9)")


def test_unknown_name_in_when_is_located() -> None:
    text = block_with("$n", extra=", when: 'k > 1'")
    loc, message = one_error(text)
    assert loc == at(text, "'k > 1'") and "when: unknown name 'k'" in message


def test_syntax_error_in_an_expression_is_located() -> None:
    text = block_with("${n +}")
    loc, message = one_error(text)
    assert loc == at(text, '"${n +}"') and "invalid expression" in message


def test_division_by_zero_is_an_error_not_a_crash() -> None:
    text = block_with("${n // 0}")
    assert "cannot evaluate" in one_error(text)[1]


@pytest.mark.parametrize(
    "expr,kind",
    [
        ("__import__('os').system('true')", "calls are not supported"),
        ("open('/etc/passwd')", "calls are not supported"),
        ("n.real", "attribute access is not supported"),
        ("n.__class__", "attribute access is not supported"),
        ("n ** 2", "the operator ** is not supported"),
        ("(lambda: 1)()", "calls are not supported"),
        ("[x for x in c]", "comprehensions are not supported"),
        ("{'a': 1}", "dicts are not supported"),
        ("c[0:1]", "slices are not supported"),
        ("n << 40", "the operator << is not supported"),
    ],
)
def test_expression_language_refuses_python(expr: str, kind: str) -> None:
    text = block_with("${" + expr + "}")
    loc, message = one_error(text)
    assert loc == at(text, '"${')
    assert kind in message


@pytest.mark.parametrize("expr", ["10000000 * 10000000", "1e308 * 10", "n * 1000000000000"])
def test_huge_numbers_are_refused(expr: str) -> None:
    with pytest.raises(ExprError, match="out of range"):
        evaluate(expr, {"n": 3})


def test_long_expressions_are_refused() -> None:
    with pytest.raises(ExprError, match="longer than"):
        evaluate("1 + " * 60 + "1", {})


@pytest.mark.parametrize("expr", ["[0] * 100000", "'a' * 100000", "c * 100000"])
def test_sequence_repetition_cannot_build_huge_values(expr: str) -> None:
    with pytest.raises(ExprError):
        evaluate(expr, {"c": [1, 2]})


def test_unary_minus_on_a_string_is_a_spec_error() -> None:
    text = block_with("${-s}")
    assert "cannot evaluate" in one_error(text)[1] or "unary" in one_error(text)[1]


@pytest.mark.parametrize(
    "expr,env,value",
    [
        ("a if a > 2 else 2", {"a": 3}, 3),
        ("c[0] + c[-1]", {"c": [4, 5, 6]}, 10),
        ("not (a == 1 or a == 2) and a != 4", {"a": 3}, True),
        ("1 < a <= 3", {"a": 3}, True),
        ("a // 2 * 2 + a % 2", {"a": 7}, 7),
        ("'x' + s", {"s": "y"}, "xy"),
    ],
)
def test_supported_expressions_evaluate_like_python(expr: str, env: dict, value: object) -> None:
    assert evaluate(expr, env) == value == eval(expr, {"__builtins__": {}}, dict(env))  # noqa: S307 (trusted test input)


# --------------------------------------------------------------------------- init and train

def test_init_scheme_errors() -> None:
    text = spec("layers: [relu]\ninit: fancy\n")
    found = errors(text)
    assert found and all(loc == at(text, "fancy") for loc, _ in found)
    assert any("xavier_uniform" in msg for _, msg in found)
    text = spec("layers: [relu]\ninit: {weight: normal, std: -1}\n")
    assert (at(text, "-1}"), "init.std: expected a number greater than 0, got -1") in errors(text)


def test_train_section_errors_are_located() -> None:
    text = spec("layers: [relu]\ntrain: {epochs: 0, batch_size: 8}\n")
    loc, message = one_error(text)
    assert loc == at(text, "0,") and message.startswith("train.epochs:")


# --------------------------------------------------------------------------- names torch uses
def test_reserved_names_cover_what_torch_modules_use() -> None:
    """The torch-free list of refused names covers every public attribute of nn.Module and
    torch.fx.GraphModule in the installed torch (a newer torch adding one fails here)."""
    import torch
    from torch import fx, nn

    from netspec.compiler.schema import RESERVED_NAMES

    module = fx.symbolic_trace(nn.Sequential(nn.ReLU()))
    used = set(dir(nn.Module)) | set(dir(fx.GraphModule)) | set(vars(module))
    public = {n for n in used if n.isidentifier() and not n.startswith("_")}
    assert public <= RESERVED_NAMES, sorted(public - RESERVED_NAMES)


@pytest.mark.parametrize("name", ["train", "eval", "forward", "state_dict", "graph", "code", "training", "self", "_x"])
def test_a_layer_named_like_a_torch_attribute_is_refused_at_its_line(name: str) -> None:
    text = spec(f"layers:\n  - {{op: sequential, name: head, layers: [{{op: relu, name: {name}}}]}}\n")
    loc, message = one_error(text)
    assert loc.line == 4 and repr(name) in message


def test_a_spec_named_like_a_keyword_compiles_to_valid_python(tmp_path) -> None:
    text = "name: none\ninput: [2]\nlayers: [relu]\n"
    graph = netspec.build_graph(netspec.load(F, text=text))
    from netspec.compiler.codegen.source import to_source

    namespace: dict = {}
    exec(to_source(graph), namespace)
    assert "NetNone" in namespace
