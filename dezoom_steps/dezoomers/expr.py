"""A small, safe expression language for tiles.yaml templates: the part of evalexpr 11 they use.

Never `eval`: text is split into tokens, parsed by precedence climbing into a tree of Python
closures, and the closures are called once per tile with the variables' values.

Values are ints (64-bit, checked: overflow is an error), floats, strings, booleans and tuples
(`a, b`; the empty tuple is evalexpr's "empty"). Semantics follow the spec (section 4.1 and
"Porting notes", section 13):
- "Arithmetic on two ints stays integer (`/` truncates toward zero, as in Rust); `%` is
  remainder" with the sign of the dividend; an int and a float give a float; `^` is
  exponentiation and always gives a float; `+` also joins two strings.
- Comparisons of two numbers or two strings; `==`/`!=` compare values of any type, and an
  int never equals a float (evalexpr compares its `Value`s as they are).
- `&&`, `||`, `!` take booleans. Precedence, tightest first: `^`; unary `-` and `!`;
  `* / %`; `+ -`; comparisons; `&&`; `||`; `,`. Binary operators group left to right.
- Functions: min, max, floor, ceil, round, if, len, typeof, str::from, str::to_lowercase,
  str::to_uppercase, str::trim, str::substring, str::regex_matches, str::regex_replace,
  math::* (ln, log, log2, log10, exp, exp2, pow, sqrt, cbrt, abs, hypot, trigonometry),
  bitand, bitor, bitxor, bitnot, shl, shr.
- Text of a value: "string as-is; integer in decimal; boolean as `true`/`false`; a tuple is the
  concatenation of its elements; empty becomes `""`; a float uses Rust's shortest round-trip
  formatting, so `2.0` becomes `"2"`".

Deliberate differences, each only turning an evalexpr error into a result: `if(c, a, b)`,
`&&` and `||` evaluate only what they need (evalexpr evaluates every argument, so
`if(x == 0, 0, 10 / x)` fails there at x = 0).

Limits: an expression holds at most MAX_CHARS characters and MAX_DEPTH levels of nesting, and
no string grows beyond MAX_STRING characters.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping

MAX_CHARS = 1000
MAX_DEPTH = 40
MAX_STRING = 10_000
INT_MIN, INT_MAX = -(2**63), 2**63 - 1

Value = Any  # int | float | str | bool | tuple
Env = Mapping[str, Value]
Node = Callable[[Env], Value]


class ExprError(ValueError):
    """An expression that cannot be parsed or evaluated; the message is one line."""


# ------------------------------------------------------------------ values

def type_name(v: Value) -> str:
    """evalexpr's name of a value's type."""
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "empty" if v == () else "tuple"


def is_int(v: Value) -> bool:
    """True for ints (booleans are not numbers here)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Value) -> bool:
    """True for ints and floats."""
    return is_int(v) or isinstance(v, float)


def checked(n: int, what: str) -> int:
    """`n` if it fits in 64 signed bits, else an overflow error."""
    if n < INT_MIN or n > INT_MAX:
        raise ExprError(f"integer overflow in {what}")
    return n


def format_float(f: float) -> str:
    """Rust's `Display` of an f64: shortest round-trip digits, never an exponent, no `.0`."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    text = repr(f)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def to_text(v: Value) -> str:
    """The text of a value in a URL (spec 4.1 "Converting a result to text")."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if is_int(v) or isinstance(v, str):
        return str(v)
    if isinstance(v, float):
        return format_float(v)
    return "".join(to_text(item) for item in v)


def _number(v: Value, where: str) -> float:
    if not is_number(v):
        raise ExprError(f"{where} expects a number, got {type_name(v)} {to_text(v)!r}")
    return float(v)


def _int(v: Value, where: str) -> int:
    if not is_int(v):
        raise ExprError(f"{where} expects an integer, got {type_name(v)} {to_text(v)!r}")
    return v


def _string(v: Value, where: str) -> str:
    if not isinstance(v, str):
        raise ExprError(f"{where} expects a string, got {type_name(v)} {to_text(v)!r}")
    return v


def _boolean(v: Value, where: str) -> bool:
    if not isinstance(v, bool):
        raise ExprError(f"{where} expects a boolean, got {type_name(v)} {to_text(v)!r}")
    return v


def _limit(s: str) -> str:
    if len(s) > MAX_STRING:
        raise ExprError(f"string longer than {MAX_STRING} characters")
    return s


# ------------------------------------------------------------------ operators

def trunc_div(a: int, b: int) -> int:
    """Integer division truncating toward zero (Rust), not flooring (Python's //)."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def op_add(a: Value, b: Value) -> Value:
    """`+`: strings joined, ints added (checked), otherwise float addition."""
    if isinstance(a, str) and isinstance(b, str):
        return _limit(a + b)
    if is_int(a) and is_int(b):
        return checked(a + b, f"{a} + {b}")
    return _number(a, "+") + _number(b, "+")


def op_sub(a: Value, b: Value) -> Value:
    """`-` on numbers."""
    if is_int(a) and is_int(b):
        return checked(a - b, f"{a} - {b}")
    return _number(a, "-") - _number(b, "-")


def op_mul(a: Value, b: Value) -> Value:
    """`*` on numbers."""
    if is_int(a) and is_int(b):
        return checked(a * b, f"{a} * {b}")
    return _number(a, "*") * _number(b, "*")


def op_div(a: Value, b: Value) -> Value:
    """`/`: ints truncate toward zero (division by zero is an error); floats follow IEEE 754."""
    if is_int(a) and is_int(b):
        if b == 0:
            raise ExprError(f"division by zero in {a} / {b}")
        return checked(trunc_div(a, b), f"{a} / {b}")
    x, y = _number(a, "/"), _number(b, "/")
    if y == 0.0:
        return math.nan if x == 0.0 or math.isnan(x) else math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def op_mod(a: Value, b: Value) -> Value:
    """`%`: the remainder takes the sign of the dividend (Rust), unlike Python's %."""
    if is_int(a) and is_int(b):
        if b == 0:
            raise ExprError(f"division by zero in {a} % {b}")
        return a - b * trunc_div(a, b)
    x, y = _number(a, "%"), _number(b, "%")
    return math.nan if y == 0.0 else math.fmod(x, y)


def op_pow(a: Value, b: Value) -> float:
    """`^`: always a float (evalexpr converts both sides)."""
    x, y = _number(a, "^"), _number(b, "^")
    try:
        return math.pow(x, y)
    except OverflowError:
        return math.inf
    except ValueError:
        return math.nan


def op_neg(a: Value) -> Value:
    """Unary minus."""
    if is_int(a):
        return checked(-a, f"-({a})")
    return -_number(a, "unary -")


def _same(a: Value, b: Value) -> bool:
    return type_name(a) == type_name(b) and a == b


def _compare(sym: str, test: Callable[[Any, Any], bool]) -> Callable[[Value, Value], bool]:
    def compare(a: Value, b: Value) -> bool:
        if isinstance(a, str) and isinstance(b, str):
            return test(a, b)
        return test(_number(a, sym) if not is_int(a) else a, _number(b, sym) if not is_int(b) else b)
    return compare


BINARY: dict[str, tuple[int, Callable[[Value, Value], Value]]] = {
    "^": (120, op_pow),
    "*": (100, op_mul), "/": (100, op_div), "%": (100, op_mod),
    "+": (95, op_add), "-": (95, op_sub),
    "==": (80, _same), "!=": (80, lambda a, b: not _same(a, b)),
    "<": (80, _compare("<", lambda a, b: a < b)), "<=": (80, _compare("<=", lambda a, b: a <= b)),
    ">": (80, _compare(">", lambda a, b: a > b)), ">=": (80, _compare(">=", lambda a, b: a >= b)),
    "&&": (75, None), "||": (70, None),  # short-circuit: built by the parser
}
UNARY_PRECEDENCE = 110


# ------------------------------------------------------------------ functions

def _rust_round(x: float) -> float:
    """Rust's f64::round: halves go away from zero (Python's round goes to even)."""
    return math.copysign(math.floor(abs(x) + 0.5), x) if math.isfinite(x) else x


def _min_max(name: str, args: tuple, pick: Callable[..., Any]) -> Value:
    """evalexpr's min/max: ints and floats tracked apart, the winner keeps its type."""
    ints = [a for a in args if is_int(a)]
    floats = [a for a in args if isinstance(a, float)]
    if not args or len(ints) + len(floats) != len(args):
        bad = next((a for a in args if not is_number(a)), ())
        raise ExprError(f"{name} expects numbers, got {type_name(bad)} {to_text(bad)!r}")
    if not floats:
        return pick(ints)
    if not ints:
        return pick(floats)
    i, f = pick(ints), pick(floats)
    return i if pick([float(i), f]) == float(i) and float(i) != f else f


def _substring(args: tuple) -> str:
    """str::substring(s, start[, end]): characters start..end (end excluded)."""
    s = _string(args[0], "str::substring")
    start = _int(args[1], "str::substring")
    end = _int(args[2], "str::substring") if len(args) > 2 else len(s)
    if not 0 <= start <= end <= len(s):
        raise ExprError(f"str::substring({s!r}, {start}, {end}): indices out of range")
    return s[start:end]


def _regex(pattern: Value) -> re.Pattern[str]:
    try:
        return re.compile(_string(pattern, "regex"))
    except re.error as exc:
        raise ExprError(f"invalid regex {pattern!r}: {exc}") from None


def _rust_replacement(repl: str) -> str:
    """A Rust regex replacement (`$1`, `${name}`, `$$`) in Python's syntax (`\\g<1>`)."""
    out = repl.replace("\\", "\\\\")
    out = re.sub(r"\$(?:\{(\w+)\}|(\d+|[A-Za-z_]\w*)|(\$))",
                 lambda m: "$" if m.group(3) else f"\\g<{m.group(1) or m.group(2)}>", out)
    return out


def _shift(a: int, b: int, left: bool) -> int:
    if not 0 <= b < 64:
        raise ExprError(f"shift by {b} bits is out of range")
    n = (a << b) if left else (a >> b)
    n &= (1 << 64) - 1
    return n - (1 << 64) if n >= 1 << 63 else n


def _math(fn: Callable[..., float], arity: int = 1) -> tuple[int, int, Callable[[tuple], Value]]:
    def call(args: tuple) -> float:
        xs = [_number(a, "math function") for a in args]
        try:
            return float(fn(*xs))
        except OverflowError:
            return math.inf
        except (ValueError, ZeroDivisionError):
            return math.nan
    return arity, arity, call


# name -> (min args, max args, implementation over the evaluated argument tuple)
FUNCTIONS: dict[str, tuple[int, int, Callable[[tuple], Value]]] = {
    "min": (1, 64, lambda a: _min_max("min", a, min)),
    "max": (1, 64, lambda a: _min_max("max", a, max)),
    "floor": _math(math.floor), "ceil": _math(math.ceil), "round": _math(_rust_round),
    "len": (1, 1, lambda a: len(a[0].encode("utf-8")) if isinstance(a[0], str) else
            len(a[0]) if isinstance(a[0], tuple) else _string(a[0], "len")),
    "typeof": (1, 1, lambda a: type_name(a[0])),
    "str::from": (1, 1, lambda a: to_text(a[0])),
    "str::to_lowercase": (1, 1, lambda a: _string(a[0], "str::to_lowercase").lower()),
    "str::to_uppercase": (1, 1, lambda a: _string(a[0], "str::to_uppercase").upper()),
    "str::trim": (1, 1, lambda a: _string(a[0], "str::trim").strip()),
    "str::substring": (2, 3, _substring),
    "str::regex_matches": (2, 2, lambda a: _regex(a[1]).search(_string(a[0], "str::regex_matches")) is not None),
    "str::regex_replace": (3, 3, lambda a: _limit(_regex(a[1]).sub(
        _rust_replacement(_string(a[2], "str::regex_replace")), _string(a[0], "str::regex_replace")))),
    "math::ln": _math(math.log), "math::log": _math(math.log, 2), "math::log2": _math(math.log2),
    "math::log10": _math(math.log10), "math::exp": _math(math.exp), "math::exp2": _math(lambda x: 2.0 ** x),
    "math::pow": _math(math.pow, 2), "math::sqrt": _math(math.sqrt),
    "math::cbrt": _math(lambda x: math.copysign(abs(x) ** (1 / 3), x)),
    "math::hypot": _math(math.hypot, 2), "math::abs": _math(abs),
    "math::sin": _math(math.sin), "math::cos": _math(math.cos), "math::tan": _math(math.tan),
    "math::asin": _math(math.asin), "math::acos": _math(math.acos), "math::atan": _math(math.atan),
    "math::atan2": _math(math.atan2, 2),
    "bitand": (2, 2, lambda a: _int(a[0], "bitand") & _int(a[1], "bitand")),
    "bitor": (2, 2, lambda a: _int(a[0], "bitor") | _int(a[1], "bitor")),
    "bitxor": (2, 2, lambda a: _int(a[0], "bitxor") ^ _int(a[1], "bitxor")),
    "bitnot": (1, 1, lambda a: ~_int(a[0], "bitnot")),
    "shl": (2, 2, lambda a: _shift(_int(a[0], "shl"), _int(a[1], "shl"), True)),
    "shr": (2, 2, lambda a: _shift(_int(a[0], "shr"), _int(a[1], "shr"), False)),
}


# ------------------------------------------------------------------ tokens

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<float>(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<int>\d+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_]\w*(?:::[A-Za-z_]\w*)*)
  | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%^<>!(),])
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class Token:
    """One token: its kind (int, float, string, name, op, end), its text and position."""

    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """Split an expression into tokens; an unknown character is an ExprError."""
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ExprError(f"unexpected character {text[pos]!r} at position {pos}")
        if m.lastgroup != "space":
            tokens.append(Token(m.lastgroup or "", m.group(), pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _unescape(literal: str) -> str:
    body = literal[1:-1]
    # \" \\ \n \t \r are escapes; any other backslash is kept (regex classes such as \d)
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group()), body)


# ------------------------------------------------------------------ parser

class _Parser:
    """Precedence climbing over the token list; every parse function returns a closure."""

    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.names: set[str] = set()

    def peek(self) -> Token:
        """The next token, not consumed."""
        return self.tokens[self.i]

    def take(self) -> Token:
        """Consume and return the next token."""
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        """Consume the next token, which must be the operator `text`."""
        tok = self.take()
        if tok.text != text or tok.kind == "string":
            found = "the end" if tok.kind == "end" else repr(tok.text)
            raise ExprError(f"expected {text!r} at position {tok.pos}, found {found}")

    def tuple_expr(self) -> tuple[Node, int]:
        """`a, b, c` (lowest precedence): a tuple node and its arity (1 means a plain value)."""
        items = [self.binary(0)]
        while self.peek().text == "," and self.peek().kind == "op":
            self.take()
            items.append(self.binary(0))
        if len(items) == 1:
            return items[0], 1
        return (lambda env, parts=tuple(items): tuple(p(env) for p in parts)), len(items)

    def binary(self, min_prec: int) -> Node:
        """Binary operators of precedence >= min_prec, grouping left to right."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"nested deeper than {MAX_DEPTH} levels")
        left = self.unary()
        while True:
            tok = self.peek()
            entry = BINARY.get(tok.text) if tok.kind == "op" else None
            if entry is None or entry[0] < min_prec:
                break
            self.take()
            prec, fn = entry
            right = self.binary(prec + 1)
            left = self._combine(tok.text, fn, left, right)
        self.depth -= 1
        return left

    @staticmethod
    def _combine(sym: str, fn: Callable[[Value, Value], Value] | None, left: Node, right: Node) -> Node:
        if sym == "&&":
            return lambda env: _boolean(left(env), "&&") and _boolean(right(env), "&&")
        if sym == "||":
            return lambda env: _boolean(left(env), "||") or _boolean(right(env), "||")
        assert fn is not None
        return lambda env: fn(left(env), right(env))

    def unary(self) -> Node:
        """Unary `-` and `!` (binding looser than `^`: -2^2 is -4), then an atom."""
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("-", "!"):
            self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExprError(f"nested deeper than {MAX_DEPTH} levels")
            operand = self.binary(UNARY_PRECEDENCE + 1)
            self.depth -= 1
            if tok.text == "-":
                return lambda env: op_neg(operand(env))
            return lambda env: not _boolean(operand(env), "!")
        return self.atom()

    def atom(self) -> Node:
        """A literal, a variable, a function call or a parenthesised expression."""
        tok = self.take()
        if tok.kind == "int":
            n = int(tok.text)
            if n > INT_MAX:
                raise ExprError(f"Number too large: {tok.text}")
            return lambda env: n
        if tok.kind == "float":
            f = float(tok.text)
            return lambda env: f
        if tok.kind == "string":
            s = _unescape(tok.text)
            return lambda env: s
        if tok.kind == "name":
            if tok.text in ("true", "false"):
                b = tok.text == "true"
                return lambda env: b
            if self.peek().text == "(" and self.peek().kind == "op":
                return self.call(tok)
            if tok.text in FUNCTIONS or tok.text == "if":
                raise ExprError(f"function {tok.text} needs its arguments in parentheses")
            return self.variable(tok.text)
        if tok.kind == "op" and tok.text == "(":
            if self.peek().text == ")":
                self.take()
                return lambda env: ()
            inner, _ = self.tuple_expr()
            self.expect(")")
            return inner
        if tok.kind == "end":
            raise ExprError(f"the expression ends too early (position {tok.pos})")
        raise ExprError(f"unexpected {tok.text!r} at position {tok.pos}")

    def variable(self, name: str) -> Node:
        """A read of variable `name` (an error at evaluation if it is unbound)."""
        self.names.add(name)

        def read(env: Env) -> Value:
            try:
                return env[name]
            except KeyError:
                raise ExprError(f"unknown variable {name!r}") from None
        return read

    def call(self, name_tok: Token) -> Node:
        """`name(args)`; `if` evaluates only the branch it takes."""
        name = name_tok.text
        self.expect("(")
        args: list[Node] = []
        if self.peek().text != ")":
            args.append(self.binary(0))
            while self.peek().text == "," and self.peek().kind == "op":
                self.take()
                args.append(self.binary(0))
        self.expect(")")
        if name == "if":
            if len(args) != 3:
                raise ExprError(f"if takes 3 arguments (condition, then, else), got {len(args)}")
            cond, then, other = args
            return lambda env: then(env) if _boolean(cond(env), "if") else other(env)
        if name not in FUNCTIONS:
            raise ExprError(f"unknown function {name!r}")
        low, high, fn = FUNCTIONS[name]
        if not low <= len(args) <= high:
            want = str(low) if low == high else f"{low} to {high}"
            raise ExprError(f"{name} takes {want} argument{'s' if high > 1 else ''}, got {len(args)}")
        parts = tuple(args)
        return lambda env: fn(tuple(p(env) for p in parts))


@dataclass(frozen=True)
class Expression:
    """A parsed expression: `evaluate(env)` computes it; `names` are the variables it reads."""

    text: str
    names: frozenset[str]
    node: Node

    def evaluate(self, env: Env) -> Value:
        """The value of the expression with these variables (ExprError on failure)."""
        try:
            return self.node(env)
        except RecursionError:
            raise ExprError("expression too deeply nested") from None


def parse(text: str) -> Expression:
    """Parse `text`; ExprError (one line) when it is too long or not a valid expression."""
    if len(text) > MAX_CHARS:
        raise ExprError(f"expression longer than {MAX_CHARS} characters")
    parser = _Parser(text)
    if parser.peek().kind == "end":
        return Expression(text, frozenset(), lambda env: ())
    node, _ = parser.tuple_expr()
    tok = parser.peek()
    if tok.kind != "end":
        raise ExprError(f"unexpected {tok.text!r} at position {tok.pos}")
    return Expression(text, frozenset(parser.names), node)


def evaluate(text: str, env: Env | None = None) -> Value:
    """Parse and evaluate in one go (tests and one-off uses)."""
    return parse(text).evaluate(env or {})


# ------------------------------------------------------------------ URL templates

_PLACEHOLDER = re.compile(r"\{\{.*?}}")
_PADDING = re.compile(r":0(\d+)$")


@dataclass(frozen=True)
class Template:
    """A text with `{{ expression }}` or `{{ expression :0N }}` placeholders (spec 4.1)."""

    text: str
    parts: tuple[str | tuple[Expression, int], ...]

    @property
    def names(self) -> frozenset[str]:
        """Every variable the placeholders read."""
        return frozenset(n for p in self.parts if not isinstance(p, str) for n in p[0].names)

    def render(self, env: Env) -> str:
        """The text with every placeholder replaced by its value, zero-padded to N when `:0N`."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                expr, width = part
                out.append(to_text(expr.evaluate(env)).rjust(width, "0"))
        return "".join(out)


def parse_template(text: str) -> Template:
    """Split a template into literal text and parsed placeholders; ExprError names the bad one."""
    parts: list[str | tuple[Expression, int]] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        parts.append(text[pos:m.start()])
        inner = m.group()[2:-2].rstrip()
        width = 0
        pad = _PADDING.search(inner)
        if pad:
            width = int(pad.group(1))
            if width > 64:
                raise ExprError(f"'{inner}' asks for {width} digits of padding (at most 64)")
            inner = inner[:pad.start()]
        try:
            parts.append((parse(inner), width))
        except ExprError as exc:
            raise ExprError(f"'{inner.strip()}' is not a valid expression: {exc}") from None
        pos = m.end()
    parts.append(text[pos:])
    return Template(text, tuple(p for p in parts if p != ""))
