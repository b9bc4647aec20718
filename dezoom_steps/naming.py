"""Safe output names: the title sanitiser, default file names, and workflow image ids."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlsplit

JPEG_MAX_SIDE = 65535

# Unicode White_Space (as Rust's char::is_whitespace), not Python's str.isspace().
_WHITESPACE = set("\t\n\v\f\r \u0085\u00a0\u1680\u2028\u2029\u202f\u205f\u3000") | {
    chr(c) for c in range(0x2000, 0x200B)
}
_TO_UNDERSCORE = set(":\\/|?~")
_TO_SPACE = set('<>"*#%{}^`')
_AFTER_SPACE_DROPPED = set("_.\\/,;")
_INVISIBLE = {"\u200b", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}
_TRIM = "".join(_WHITESPACE) + "_-.,;"
MAX_NAME_BYTES = 200


def sanitize(text: str) -> str:
    """A file-name-safe, reader-friendly version of a title (the incumbent's algorithm, spec 9.2).

    Path separators and reserved characters become `_` or spaces, runs collapse, each line is
    trimmed of `_-.,;` and white space, and lines are joined with `-`.
    """
    last = "A"
    out: list[str] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        if line.endswith("\r"):
            line = line[:-1]
        kept: list[str] = []
        for o in line:
            if o in _WHITESPACE:
                o = " "
            if unicodedata.category(o) == "Cc":
                continue
            c = "_" if o in _TO_UNDERSCORE else " " if o in _TO_SPACE else o
            if (
                (c == " " and last == " ")
                or (c == "_" and last == "_")
                or (o in _AFTER_SPACE_DROPPED and last in _WHITESPACE)
                or o in _INVISIBLE
            ):
                continue
            kept.append(c)
            last = c
        out.append("".join(kept).strip(_TRIM) + "-")
    return _truncate("".join(out).rstrip("-"))


def _truncate(name: str) -> str:
    """Cut `name` to at most MAX_NAME_BYTES of UTF-8 without splitting a character."""
    data = name.encode("utf-8")
    if len(data) <= MAX_NAME_BYTES:
        return name
    return data[:MAX_NAME_BYTES].decode("utf-8", "ignore").rstrip(_TRIM)


def default_extension(width: int | None, height: int | None) -> str:
    """`jpg` when the size is known and fits JPEG's 65,535 px per side, else `png` (as dezoomify-rs)."""
    if width and height and max(width, height) <= JPEG_MAX_SIDE:
        return "jpg"
    return "png"


def output_path(outfile: str | None, title: str | None, width: int | None, height: int | None,
                folder: Path = Path(".")) -> Path:
    """The output file: the user's (extension added when missing) or `<title|dezoomified>[_NNNN].ext`.

    A default name never points at an existing file: `_0001`, `_0002`... are tried in turn.
    """
    ext = default_extension(width, height)
    if outfile:
        path = Path(outfile)
        return path if path.suffix else path.with_name(path.name + "." + ext)
    base = sanitize(title or "") or "dezoomified"
    candidate = folder / f"{base}.{ext}"
    n = 0
    while candidate.exists() or Path(str(candidate) + ".json").exists():
        n += 1
        candidate = folder / f"{base}_{n:04d}.{ext}"
    return candidate


def image_id(url: str) -> str:
    """A short, stable, safe id for an input URL: readable stem plus 8 hex digits of its hash.

    `https://x.org/iiif/abc/info.json` -> `abc-1a2b3c4d`. Used for work/ folders and workflow outputs.
    """
    parts = [unquote(p) for p in urlsplit(url).path.split("/") if p]
    generic = {"info.json", "imageproperties.xml", "manifest.json", "iipsrv.fcgi", "index.html"}
    stem = next((p for p in reversed(parts) if p.lower() not in generic), "") or urlsplit(url).hostname or "image"
    stem = re.sub(r"\.(dzi|xml|json|tiff?|jpe?g|png)$", "", stem, flags=re.I)
    stem = re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_")[:40] or "image"
    return f"{stem}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"


ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"


def valid_id(name: str) -> bool:
    """True when `name` may be used as an image id or output name in the workflow."""
    return re.fullmatch(ID_PATTERN, name) is not None and ".." not in name
