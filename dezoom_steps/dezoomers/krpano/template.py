"""krpano tile URL templates: `%v`, `%0h`, `%s`, `%l`... (spec 4.8, "Template syntax").

A `%` followed by zero or more `0`s and a letter is a placeholder; the number of digits is
one plus the number of zeros (`%00c` -> `001`). Letters: `h x u c` = column, `v y r` = row
(both counted from the image's `baseindex`), `s` = cube side letter, `l` = level number;
`%%` is a literal `%`. Spec vector: `"%00x%%%0y%l"` is [x pad 3, "%", y pad 2, level pad 1].

Differences from dezoomify-rs, on purpose:
- A `%` followed by two hex digits that is not a placeholder (`%20`, `%C3%A9`) is kept as
  a percent-escape, so URL-encoded templates work; a `%` before a non-letter or at the end
  is kept as written. Only an unknown letter is an error.
- `%CURRENTXML%` and `%FIRSTXML%` (krpano's "path of the current/first loaded xml file")
  become the XML file's folder. Placeholders that only the viewer page knows (`%SWFPATH%`,
  `%HTMLPATH%`, `%VIEWERPATH%`, `%BASEDIR%`, `%$variable%`) are refused with a clear reason.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Union

COLUMN, ROW, SIDE, LEVEL = "column", "row", "side", "level"
_LETTERS = {"h": COLUMN, "x": COLUMN, "u": COLUMN, "c": COLUMN,
            "v": ROW, "y": ROW, "r": ROW, "s": SIDE, "l": LEVEL}
_XML_PATHS = re.compile(r"%(?:CURRENTXML|FIRSTXML)%", re.IGNORECASE)
_VIEWER_PATHS = re.compile(r"%(?:SWFPATH|HTMLPATH|VIEWERPATH|BASEDIR|\$[A-Za-z_][\w.]*)%", re.IGNORECASE)
_HEX = "0123456789abcdefABCDEF"

Part = Union[str, tuple[str, int]]  # literal text, or (variable, digits)


class TemplateError(ValueError):
    """A `url` template that cannot be expanded (the message says why)."""


def substitute_xml_paths(template: str, xml_url: str) -> str:
    """`template` with `%CURRENTXML%`/`%FIRSTXML%` replaced by the XML file's folder URL.

    Raises TemplateError for placeholders that depend on the viewer page.
    """
    other = _VIEWER_PATHS.search(template)
    if other:
        raise TemplateError(f"url {template!r} uses {other.group(0)}, a path known only to the viewer page")
    folder = xml_url.split("#", 1)[0].split("?", 1)[0].rsplit("/", 1)[0]
    return _XML_PATHS.sub(lambda _: folder, template)


@lru_cache(maxsize=256)
def parse_template(template: str) -> tuple[Part, ...]:
    """The literal and placeholder parts of `template`; TemplateError for unknown placeholders."""
    parts: list[Part] = []
    text: list[str] = []
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch != "%":
            text.append(ch)
            i += 1
            continue
        j = i + 1
        while j < n and template[j] == "0":
            j += 1
        letter = template[j] if j < n else ""
        pair = template[i + 1:i + 3]
        if letter == "%":
            text.append("%")
            i = j + 1
        elif letter in _LETTERS:
            if text:
                parts.append("".join(text))
                text = []
            parts.append((_LETTERS[letter], j - i))
            i = j + 1
        elif len(pair) == 2 and all(c in _HEX for c in pair):
            text.append("%" + pair)  # a percent-escape such as %20 or %C3
            i += 3
        elif letter.isalpha():
            raise TemplateError(f"unknown template variable '{letter}' in {template!r}")
        else:
            text.append("%")  # a "%" before a non-letter, or at the end, is kept as written
            i += 1
    if text:
        parts.append("".join(text))
    return tuple(parts)


def has_side(template: str) -> bool:
    """True when the template holds a cube side placeholder (`%s`)."""
    return any(isinstance(p, tuple) and p[0] == SIDE for p in parse_template(template))


def expand(template: str, column: int, row: int, side: str, level: int) -> str:
    """The template with every placeholder replaced (numbers zero-padded to their width)."""
    values = {COLUMN: column, ROW: row, LEVEL: level}
    out = []
    for part in parse_template(template):
        if isinstance(part, str):
            out.append(part)
        elif part[0] == SIDE:
            out.append(side)
        else:
            out.append(str(values[part[0]]).zfill(part[1]))
    return "".join(out)
