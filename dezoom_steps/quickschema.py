"""A fast yes-or-"ask jsonschema" check of a document against the JSON Schema subset of the step contracts.

Every step reads and writes its files through a schema check, in a process of its own:
importing jsonschema (with referencing, attrs and rpds) costs ~50 ms, more than the check.
`conforms` answers True only when the document certainly conforms to the schema; False means
"not sure": the caller then asks jsonschema, whose verdict and error message stay the ones
users see. So this check may be stricter than JSON Schema (an integer written 1.0, a keyword
it does not know), never looser.

Known keywords: type, const, enum, required, properties, additionalProperties, items,
minimum, minItems, maxItems, minLength, pattern; annotations ($schema, title, description,
$comment, default, examples) are ignored.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_ANNOTATIONS = frozenset({"$schema", "title", "description", "$comment", "default", "examples"})
_SCALARS = (str, int, float, bool, type(None))
# JSON Schema type name -> exact Python types (bool is not an integer; 1.0 is left to jsonschema)
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "integer": (int,), "number": (int, float),
    "boolean": (bool,), "null": (type(None),),
}


@lru_cache(maxsize=None)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _same(value: Any, wanted: Any) -> bool:
    """Equal scalars of the same type (JSON Schema's const/enum equality, without its corner cases)."""
    return type(wanted) in _SCALARS and type(value) is type(wanted) and value == wanted


def conforms(value: Any, schema: Any) -> bool:
    """True when `value` certainly conforms to `schema`; False when it does not or this check cannot tell."""
    if schema is True:
        return True
    if not isinstance(schema, dict):
        return False
    kind = type(value)
    for key, rule in schema.items():
        if key == "type":
            names = rule if isinstance(rule, list) else [rule]
            if not any(kind in _TYPES.get(name, ()) for name in names):
                return False
        elif key == "const":
            if not _same(value, rule):
                return False
        elif key == "enum":
            if not any(_same(value, option) for option in rule):
                return False
        elif key == "required":
            if kind is dict and not all(name in value for name in rule):
                return False
        elif key == "properties":
            if kind is dict and not all(conforms(value[name], sub) for name, sub in rule.items() if name in value):
                return False
        elif key == "additionalProperties":
            if kind is dict:
                known = schema.get("properties", {})
                if not all(conforms(v, rule) for k, v in value.items() if k not in known):
                    return False
        elif key == "items":
            if kind is list and not all(conforms(item, rule) for item in value):
                return False
        elif key == "minimum":
            if kind in (int, float) and not value >= rule:
                return False
        elif key == "minItems":
            if kind is list and len(value) < rule:
                return False
        elif key == "maxItems":
            if kind is list and len(value) > rule:
                return False
        elif key == "minLength":
            if kind is str and len(value) < rule:
                return False
        elif key == "pattern":
            if kind is str and _pattern(rule).search(value) is None:
                return False
        elif key not in _ANNOTATIONS:
            return False  # a keyword this check does not know: jsonschema decides
    return True
