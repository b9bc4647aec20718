"""Safe output names: the title sanitiser, default file names, workflow image ids, name templates
(`--name-template`), the output-folder guard and the `--on-exists` collision policy."""

from __future__ import annotations

import hashlib
import os
import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from dezoom_steps.errors import InputError, OutputError

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


def title_stem(title: str | None) -> str:
    """The default file stem of a title: sanitize() (the incumbent's rules, spec 9.2), then made
    one safe path component on every system by clean_component() (field notes S1/O6: `CON` ->
    `CON_`, no trailing dot or space); "" when nothing is left."""
    return clean_component(sanitize(title or ""))


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
    base = title_stem(title) or "dezoomified"
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


# ---------------------------------------------------------------------------------------------
# Name templates. Field notes row 9 / O8: per-entry names from a template ({title}, {label},
# {index}, {id}, {width}x{height}); S1: metadata never chooses a folder, and the final path is
# checked to stay inside the output folder.

DEFAULT_BULK_TEMPLATE = "{title|id}"
"""Default name of a bulk entry: its title (the list's, else the metadata's), else its image id."""

FALLBACK_NAME = "dezoomified"
"""The name used when a template renders to nothing (as dezoomify-rs's default name)."""

TEMPLATE_FIELDS = ("title", "label", "manifest", "index", "id", "width", "height", "w", "h")
"""Fields every template may name; a field the caller does not supply renders as nothing.

`w`/`h` are short for `width`/`height`. Callers may supply further fields of their own.
"""

_ALIASES = {"w": "width", "h": "height"}
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SEPARATORS = re.compile(r"[/\\]")
# Characters Windows refuses in a name (separators are handled before, control characters too).
_WINDOWS_ILLEGAL = str.maketrans({c: "_" for c in '<>:"|?*'})
# Bidirectional controls (spoofing such as "gpj.exe" shown reversed) and other invisible marks.
# ZWJ/ZWNJ (U+200C, U+200D) stay: emoji sequences and some scripts need them.
_INVISIBLE_MARKS = {"\u061c", "\u200b", "\u200e", "\u200f", "\ufeff",
                    *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}
_SUPERSCRIPT_DIGITS = "\u00b9\u00b2\u00b3"
# Windows device names, reserved in any case and with any extension ("CON.jpg", "nul").
# COM0/LPT0 and the superscript forms are listed by Microsoft's naming rules too; a spare "_" is
# harmless where they are not reserved.
_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{dev}{d}" for dev in ("COM", "LPT") for d in "0123456789" + _SUPERSCRIPT_DIGITS
}


@dataclass(frozen=True)
class _Part:
    """One piece of a parsed template: literal text, or a field (alternatives + format spec)."""

    literal: str
    names: tuple[str, ...] = ()
    spec: str = ""


def _parse_template(template: str, allowed: set[str]) -> list[_Part]:
    """The template's pieces; InputError for anything a file name template must not contain."""
    where = f"name template {template!r}"
    if not template.strip():
        raise InputError(f"{where}: empty")
    if template.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", template):
        raise InputError(f"{where}: must be a relative name (no leading / or \\, no drive letter)")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise InputError(f"{where}: {err} (write {{{{ and }}}} for literal braces)") from None
    parts: list[_Part] = []
    for literal, field, spec, conversion in parsed:
        if literal:
            parts.append(_Part(literal))
        if field is None:
            continue
        if conversion:
            raise InputError(f"{where}: conversions such as !{conversion} are not supported")
        names = tuple(n.strip() for n in field.split("|"))
        for name in names:
            if not _FIELD_NAME.fullmatch(name):
                raise InputError(f"{where}: {{{field}}} is not a field name (known: {', '.join(sorted(allowed))})")
            if name not in allowed:
                raise InputError(f"{where}: unknown field {{{name}}} (known: {', '.join(sorted(allowed))})")
        if spec and (_SEPARATORS.search(spec) or "{" in spec or any(unicodedata.category(c) == "Cc" for c in spec)):
            raise InputError(f"{where}: format {spec!r} of {{{field}}} may not contain "
                             "/, \\, braces or control characters")
        parts.append(_Part("", names, spec))
    shape = "".join(p.literal if not p.names else "\0" for p in parts)  # \0 stands for a field
    if any(c.strip() == ".." for c in _SEPARATORS.split(shape)):
        raise InputError(f"{where}: a '..' folder would leave the output folder")
    return parts


def validate_template(template: str, extra_fields: Mapping[str, Any] | None = None) -> None:
    """Raise InputError when `template` cannot be used (check options before any download)."""
    _parse_template(template, set(TEMPLATE_FIELDS) | set(extra_fields or ()))


def _field_text(template: str, names: tuple[str, ...], spec: str, fields: Mapping[str, Any]) -> str:
    """The first non-empty of the alternative fields, sanitised, then formatted with `spec`."""
    for name in names:
        value = fields.get(name)
        if value is None and name in _ALIASES:
            value = fields.get(_ALIASES[name])
        if value is None or value == "":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            value = sanitize(str(value))  # metadata text: separators and reserved characters go
            if not value:
                continue
        try:
            text = format(value, spec)
        except ValueError as err:
            raise InputError(f"name template {template!r}: format {spec!r} does not apply to "
                             f"{{{name}}} = {value!r} ({err})") from None
        # A format spec cannot add separators (checked when parsing); this is only belt and braces.
        return _SEPARATORS.sub("_", text)
    return ""


def _is_reserved(component: str) -> bool:
    """True for Windows device names, with or without an extension (`CON`, `nul.txt`, `COM1.jpg`)."""
    return component.split(".", 1)[0].rstrip(" ").upper() in _RESERVED


def _strip_edges(text: str) -> str:
    """Remove white space at both ends, and dots at the end (Windows drops trailing dots/spaces)."""
    return text.strip("".join(_WHITESPACE)).rstrip("".join(_WHITESPACE) + ".")


def clean_component(text: str) -> str:
    """One path component made safe on Windows, macOS and Linux; may return "" (caller decides).

    NFC-normalised; control characters, bidirectional and invisible marks removed; `<>:"|?*` become
    `_`; trailing dots and spaces removed (so `.` and `..` become ""); at most MAX_NAME_BYTES of
    UTF-8, cut on a character boundary; Windows device names get `_` after the device part.
    """
    text = unicodedata.normalize("NFC", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Cc" and c not in _INVISIBLE_MARKS)
    text = _strip_edges(text.translate(_WINDOWS_ILLEGAL))
    text = _strip_edges(_cut_bytes(text, MAX_NAME_BYTES))
    if _is_reserved(text):
        device = text.split(".", 1)[0].rstrip(" ")
        text = _strip_edges(_cut_bytes(device + "_" + text[len(device):], MAX_NAME_BYTES))
    return text


def _cut_bytes(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes of UTF-8 without splitting a character."""
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def render_name(template: str, fields: Mapping[str, Any]) -> str:
    """A relative output name (no extension) from a user's template and one image's fields.

    `{title}`, `{index:04}`, `{width}x{height}`, `{title|id}` (first non-empty alternative).
    Each text value is `sanitize()`d before substitution, so metadata never adds a `/`; only `/`
    (or `\\`) written in the template makes sub-folders. The result uses `/` between components,
    is never absolute, has no `.`/`..` or empty components, and each component passes
    clean_component(); an empty last component becomes FALLBACK_NAME. Bad templates: InputError.
    """
    parts = _parse_template(template, set(TEMPLATE_FIELDS) | set(fields))
    components: list[str] = [""]
    for part in parts:
        if part.names:
            components[-1] += _field_text(template, part.names, part.spec, fields)
            continue
        pieces = _SEPARATORS.split(part.literal)
        components[-1] += pieces[0]
        components.extend(pieces[1:])
    cleaned = [clean_component(c) for c in components]
    folders = [c for c in cleaned[:-1] if c]
    return "/".join([*folders, cleaned[-1] or FALLBACK_NAME])


def safe_join(folder: Path, relative_name: str) -> Path:
    """`folder / relative_name`, after checking that it resolves to a path inside `folder`.

    Symbolic links are followed for the check, so a link inside the folder pointing elsewhere is
    refused too. Raises OutputError naming the file otherwise.
    """
    if not relative_name or "\0" in relative_name:
        raise OutputError(f"{relative_name!r}: not a usable output file name")
    rel = Path(relative_name)
    if rel.is_absolute() or rel.drive or rel.root:
        raise OutputError(f"{relative_name}: an output name must be relative to the output folder {folder}")
    if ".." in rel.parts:
        raise OutputError(f"{relative_name}: '..' is not allowed in an output name")
    root = Path(os.path.abspath(folder)).resolve()
    target = (root / rel).resolve()
    if target == root or not target.is_relative_to(root):
        raise OutputError(f"{relative_name}: would be written outside the output folder {folder}")
    return folder / rel


# ---------------------------------------------------------------------------------------------
# Collision policy (field notes O5 / row 9): --on-exists skip|overwrite|suffix.

ON_EXISTS_POLICIES = ("skip", "overwrite", "suffix")
DEFAULT_ON_EXISTS = "suffix"  # never overwrite, as dezoomify-rs's derived names (spec 9.1)
_MAX_SUFFIX = 99999


@dataclass(frozen=True)
class Claim:
    """What to do for one output: `write` a new file, `overwrite` an existing one, or `skip`."""

    path: Path
    action: str


def claim_key(path: Path) -> Path:
    """`path` as case-insensitive, NFC file systems (Windows, macOS) compare names."""
    return Path(unicodedata.normalize("NFC", str(path)).casefold())


def _suffixed(path: Path, n: int) -> Path:
    """`name.ext` -> `name_0001.ext` (dezoomify-rs's four-digit counter, spec 9.1)."""
    return path.with_name(f"{path.stem}_{n:04d}{path.suffix}") if n else path


def claim_output(path: Path, policy: str, taken: set[Path]) -> Claim:
    """Decide the output file of one image of a batch, and record it in `taken`.

    Candidates are `path`, then `_0001`, `_0002`... Names claimed earlier in this batch (`taken`,
    compared as on case-insensitive file systems) are passed over under every policy, so two
    entries with the same title never share a file. At the first free candidate: if no file of that
    name exists it is written; if one exists, `skip` skips it, `overwrite` replaces it, and `suffix`
    moves on (a sidecar `<name>.json` counts as existing there, as in output_path). The candidate
    is added to `taken` (both as is and as claim_key) even when skipped, so a rerun of the same
    batch maps each entry to the same file.
    """
    if policy not in ON_EXISTS_POLICIES:
        raise InputError(f"--on-exists {policy!r}: expected one of {', '.join(ON_EXISTS_POLICIES)}")
    for n in range(_MAX_SUFFIX + 1):
        candidate = _suffixed(path, n)
        if candidate in taken or claim_key(candidate) in taken:
            continue
        exists = os.path.lexists(candidate)
        if policy == "suffix" and (exists or os.path.lexists(str(candidate) + ".json")):
            continue
        taken.update((candidate, claim_key(candidate)))
        if not exists:
            return Claim(candidate, "write")
        return Claim(candidate, "skip" if policy == "skip" else "overwrite")
    raise OutputError(f"{path}: no free name up to {_suffixed(path, _MAX_SUFFIX).name}")


def resolve_collision(path: Path, policy: str, taken: set[Path]) -> Path | None:
    """The file to write for `path` under `policy`, or None when it is to be skipped (claim_output)."""
    claim = claim_output(path, policy, taken)
    return None if claim.action == "skip" else claim.path
