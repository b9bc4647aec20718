"""Bounded JSON decoding of untrusted metadata: nesting depth capped, never a RecursionError.

Field notes §5 S4/S7: metadata is written by anyone, and `json.loads` of 100,000 nested `[`
raises RecursionError (a crash, not a diagnosis); a document nested a few hundred levels deep
would still break the recursive readers that walk it. Real metadata (info.json, IIIF
manifests, DZI-JSON) nests fewer than 15 levels, so anything deeper than MAX_JSON_DEPTH is
refused with a ValueError that callers turn into their own one-line error.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

MAX_JSON_DEPTH = 64  # IIIF 3 manifests nest about 10 levels; 64 leaves room and stops bombs
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")


def depth(value: Any) -> int:
    """The nesting depth of decoded JSON (a scalar is 0, `[]` is 1), computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, level) for child in children if isinstance(child, (dict, list)))
    return deepest


@lru_cache(maxsize=8)  # several readers try the same document in one resolve loop
def text_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """The nesting depth of valid JSON text, at C speed: strings dropped, then the innermost
    bracket pairs removed pass after pass (one pass per level; stops past `limit`)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    level = 0
    while brackets and level <= limit:
        brackets, removed = _INNERMOST.subn("", brackets)
        if not removed:
            break
        level += 1
    return level if not brackets else limit + 1


def loads(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads(text)`, or ValueError when it is not JSON or nests deeper than `max_depth`."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")  # UnicodeDecodeError is a ValueError
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"JSON nested too deeply (more than {max_depth} levels)") from None
    if text_depth(text, max_depth) > max_depth:
        raise ValueError(f"JSON nested too deeply (more than {max_depth} levels)")
    return value
