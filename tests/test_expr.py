"""The tiles.yaml expression language: evalexpr semantics (spec 4.1, 13), templates, limits, safety."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dezoom_steps.dezoomers.expr import (INT_MAX, MAX_CHARS, ExprError, evaluate, format_float, parse,
                                         parse_template, to_text)


@pytest.mark.parametrize("text,value", [
    # integer arithmetic stays integer; "/ truncates toward zero, as in Rust"
    ("7 / 2", 3), ("-7 / 2", -3), ("7 / -2", -3), ("-7 / -2", 3), ("1 / 3", 0),
    # "% follows the sign of the dividend"
    ("7 % 3", 1), ("-7 % 3", -1), ("7 % -3", 1), ("-7 % -3", -1),
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("10 - 4 - 3", 3), ("100 / 10 / 5", 2),
    ("2 * -3", -6), ("--4", 4),
    # an int and a float give a float; ^ always gives a float
    ("1.5 * 2", 3.0), ("10 / 4.0", 2.5), ("7 % 2.5", 2.0), ("2 ^ 10", 1024.0),
    ("2 ^ 3 ^ 2", 64.0),   # left to right
    ("-2 ^ 2", -4.0),      # ^ binds tighter than unary minus
    ("2 * 3 ^ 2", 18.0),
    # strings
    ('"tile_" + "12"', "tile_12"), ('"a\\"b"', 'a"b'),
    # comparisons and booleans
    ("3 > 2", True), ("2 >= 3", False), ('"b" > "a"', True), ("1 == 1", True), ("1 == 1.0", False),
    ("1 != 2", True), ("1 < 2.5", True), ("true && !false", True), ("false || 1 > 0", True),
    ("1 + 1 == 2 && 2 * 2 == 4", True),
    # functions
    ("min(4, 2, 9)", 2), ("max(4, 2, 9)", 9), ("min(3, 1.5)", 1.5), ("max(3, 1.5)", 3), ("min(1, 1.0)", 1.0),
    ("floor(2.7)", 2.0), ("ceil(2.1)", 3.0), ("round(2.5)", 3.0), ("round(-2.5)", -3.0), ("floor(7)", 7.0),
    ("if(2 > 1, 10, 20)", 10), ("if(2 < 1, 10, 20)", 20),
    ("if(0 == 0, 0, 10 / 0)", 0),  # only the branch taken is evaluated
    ('len("abc")', 3), ('len("é")', 2),  # bytes, as Rust's str::len
    ('str::to_uppercase("ab")', "AB"), ('str::to_lowercase("AB")', "ab"), ('str::trim("  a ")', "a"),
    ('str::substring("hello", 1, 3)', "el"), ('str::substring("hello", 2)', "llo"),
    ('str::from(12) + "px"', "12px"), ("typeof(1.0)", "float"),
    (r'str::regex_matches("tile_12", "^tile_\d+$")', True),
    (r'str::regex_replace("a1b22", "(\d+)", "<$1>")', "a<1>b<22>"),
    ("math::pow(2, 3)", 8.0), ("math::sqrt(16)", 4.0), ("bitand(12, 10)", 8), ("shl(1, 4)", 16), ("shr(-16, 2)", -4),
    ("(1, 2, 3)", (1, 2, 3)), ("()", ()),
])
def test_evaluation_follows_evalexpr(text, value):
    got = evaluate(text)
    assert got == value and type(got) is type(value), (text, got)


def test_variables():
    env = {"x": 3, "y": 10, "tile_size": 256}
    assert evaluate("x * tile_size", env) == 768
    assert evaluate("x + y / 2", env) == 8
    assert evaluate("if(x > 0, x * tile_size - 1, 0)", env) == 767
    assert parse("x * tile_size + y").names == {"x", "tile_size", "y"}


@pytest.mark.parametrize("value,text", [
    (0, "0"), (-5, "-5"), (True, "true"), (False, "false"), ("abc", "abc"), ((), ""),
    ((1, "a", 2.5), "1a2.5"),
    # "a float uses Rust's shortest round-trip formatting, so 2.0 becomes "2""
    (2.0, "2"), (1.5, "1.5"), (0.1 + 0.2, "0.30000000000000004"), (1e21, "1000000000000000000000"),
    (1e-7, "0.0000001"), (-0.0, "-0"), (math.inf, "inf"), (math.nan, "NaN"),
])
def test_text_of_values(value, text):
    assert to_text(value) == text


@pytest.mark.parametrize("text,message", [
    ("1 / 0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("9223372036854775807 + 1", "integer overflow"),
    ("4611686018427387904 * 2", "integer overflow"),
    ("9223372036854775808", "Number too large"),
    ("x + 1", "unknown variable 'x'"),
    ("foo(1)", "unknown function 'foo'"),
    ("min", "needs its arguments in parentheses"),
    ("if(true, 1)", "if takes 3 arguments"),
    ('str::substring("ab", 1, 5)', "out of range"),
    ("1 +", "ends too early"),
    ("(1 + 2", "expected ')'"),
    ("1 2", "unexpected '2'"),
    ("2 ** 3", "unexpected '*'"),
    ("x = 3", "unexpected character '='"),
    ("1 && true", "&& expects a boolean"),
    ('"a" + 1', "+ expects a number"),
    ('"a" < 1', "< expects a number"),
    ('str::regex_matches("a", "(")', "invalid regex"),
    ("shl(1, 64)", "out of range"),
])
def test_errors_are_one_line(text, message):
    with pytest.raises(ExprError) as err:
        evaluate(text)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("text", [
    '__import__("os").system("true")', "open('/etc/passwd')", "x.__class__", "[1, 2]", "lambda: 1",
])
def test_python_is_never_evaluated(text):
    with pytest.raises(ExprError):
        evaluate(text, {"x": 1})


def test_limits_on_length_and_depth():
    with pytest.raises(ExprError, match=f"longer than {MAX_CHARS}"):
        parse("1 + " * 300 + "1")
    with pytest.raises(ExprError, match="nested deeper"):
        parse("(" * 200 + "1" + ")" * 200)
    with pytest.raises(ExprError, match="string longer"):
        evaluate("s + s", {"s": "b" * 6000})
    assert evaluate("(" * 10 + "1" + ")" * 10) == 1
    assert evaluate(" + ".join(["1"] * 200)) == 200  # long flat chains are not "deep"


@given(st.integers(-10**6, 10**6), st.integers(-10**3, 10**3).filter(lambda b: b != 0))
def test_integer_division_truncates_and_remainder_follows_the_dividend(a, b):
    q, r = evaluate("a / b", {"a": a, "b": b}), evaluate("a % b", {"a": a, "b": b})
    assert q == int(a / b) if abs(a) < 2**52 else True  # float division is exact in this range
    assert a == b * q + r and abs(r) < abs(b)
    assert r == 0 or (r < 0) == (a < 0)


@given(st.integers(-INT_MAX, INT_MAX), st.integers(-INT_MAX, INT_MAX))
def test_integer_results_never_leave_64_bits(a, b):
    for op in ("+", "-", "*"):
        exact = {"+": a + b, "-": a - b, "*": a * b}[op]
        if -(2**63) <= exact <= INT_MAX:
            assert evaluate(f"a {op} b", {"a": a, "b": b}) == exact
        else:
            with pytest.raises(ExprError, match="overflow"):
                evaluate(f"a {op} b", {"a": a, "b": b})


def test_format_float_round_trips():
    for f in (0.1, 123456.789, 2.5e-5, 6.02e23, 1 / 3):
        assert float(format_float(f)) == f and "e" not in format_float(f)


# ------------------------------------------------------------------ templates (spec 4.1, 15.3)

def test_template_vectors_of_the_spec():
    assert parse_template("a {{x}} b {{y}} c").render({"x": 0, "y": 10}) == "a 0 b 10 c"
    assert parse_template("{{x:03}}").render({"x": 0}) == "000"
    assert parse_template("{{ x + y/2 :02}}").render({"x": 0, "y": 10}) == "05"
    # "Padding works on the string result, so -5 padded to width 3 becomes 0-5"
    assert parse_template("{{x:03}}").render({"x": -5}) == "0-5"
    assert parse_template("{{x * 2:02}}").render({"x": 123}) == "246"  # at least N characters


def test_template_text_between_placeholders_is_literal():
    t = parse_template("https://h/{{z}}/{{x}}_{{y}}.jpg?v={{ 2 ^ 3 }}&q={x}")
    assert t.render({"x": 1, "y": 2, "z": 3}) == "https://h/3/1_2.jpg?v=8&q={x}"
    assert t.names == {"x", "y", "z"}
    assert parse_template("no placeholder").render({}) == "no placeholder"
    assert parse_template('{{ "a" + "b" }}{{ x / 2 * 1.5 }}').render({"x": 3}) == "ab1.5"


def test_bad_placeholder_names_itself():
    with pytest.raises(ExprError) as err:
        parse_template("https://h/{{x}}/{{ y * }}.jpg")
    assert str(err.value).startswith("'y *' is not a valid expression:")
