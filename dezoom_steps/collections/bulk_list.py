"""Bulk lists: a text file (local or on the web) naming one input per line, with optional titles.

Format (as dezoomify-rs's `--bulk` text lists, spec 14.4): UTF-8 (a BOM is allowed), LF, CRLF or
CR line ends; each line is trimmed; blank lines and lines starting with `#` are ignored; otherwise
`INPUT [title]`, split at the first white space, the rest of the line being the title. INPUT is an
http(s) URL, a `file:` URL or a local path (relative paths are relative to the list's folder).

A line whose input cannot be used gets an error message of its own, and the other lines are kept:
one bad entry never stops the others. This module only reads the text it is given and checks
whether local files exist; fetching a remote list is the caller's job (through net.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dezoom_steps.errors import InputError
from dezoom_steps.urls import file_url_path, is_file_url, is_http, normalize_input

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_LINE_ENDS = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class BulkLine:
    """One entry of a bulk list.

    `line_no` is 1-based. When `error` is None, `url` is ready for the resolve step: an http(s)
    URL as written, or a `file://` URL of an absolute local path. When `error` is set, `url` is
    the input exactly as written on the line, and `error` is one line naming the list, the line
    number and the problem. `title` is the text after the input, or None.
    """

    line_no: int
    url: str
    title: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the entry can be processed."""
        return self.error is None


def is_bulk_list_name(source: str) -> bool:
    """dezoomify-rs's guess that `source` names a bulk list (spec 14.4).

    The name ends with `.txt` or `.urls` (any case) or contains `bulk` or `list`, and it holds no
    `{{` or `}}` (a tile URL template instead).
    """
    if "{{" in source or "}}" in source:
        return False
    path = urlsplit(source).path if is_http(source) or is_file_url(source) else source
    lowered = source.lower()
    return path.lower().endswith((".txt", ".urls")) or "bulk" in lowered or "list" in lowered


def decode_list(data: bytes, source: str) -> str:
    """The text of a list file; InputError naming `source` when it is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{source}: a bulk list must be UTF-8 text (invalid byte at offset {err.start})") from None


def parse_bulk_bytes(data: bytes, source: str) -> list[BulkLine]:
    """parse_bulk_list() of the bytes of a list file (UTF-8, BOM allowed)."""
    return parse_bulk_list(decode_list(data, source), source)


def _list_folder(source: str) -> Path | None:
    """The folder that relative paths of a local list are relative to; None for a list on the web."""
    if is_http(source):
        return None
    if is_file_url(source):
        return file_url_path(source).parent
    return Path(source).expanduser().parent


def _exists(path: Path) -> bool:
    """`path.exists()`, False for names the system refuses (too long, NUL byte: found by fuzzing)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _usable_local(path: Path) -> bool:
    """True when a local input exists, or is a tile URL template (`{{X}}`, `{{Y}}`) naming no single file."""
    text = str(path)
    return _exists(path) or ("{{" in text and "}}" in text)


def _local_path(token: str, folder: Path) -> Path:
    """A local path of a list line: `~` expanded, relative paths taken from the list's folder."""
    path = Path(token)
    try:
        path = path.expanduser()
    except RuntimeError:  # `~nosuchuser/x`: no home folder to expand to (found by fuzzing)
        pass
    return path if path.is_absolute() else folder / path


def _split_existing_path(line: str, folder: Path) -> tuple[str, str | None] | None:
    """For a path with spaces: the longest prefix of `line` (cut at white space) naming a file."""
    cuts = [m.start() for m in re.finditer(r"\s+", line)] + [len(line)]
    for cut in reversed(cuts):
        head = line[:cut]
        if _exists(_local_path(head, folder)):
            rest = line[cut:].strip()
            return head, rest or None
    return None


def _parse_line(line_no: int, line: str, source: str, folder: Path | None) -> BulkLine:
    """One non-comment, trimmed line of a list."""
    token = line.split(None, 1)[0]
    rest = line[len(token):].strip()
    title = rest or None
    where = f"line {line_no} of {source}"

    def bad(message: str) -> BulkLine:
        return BulkLine(line_no, token, title, f"{where}: {message}")

    not_input = f"'{token}' is not a URL or an existing file"
    if is_http(token):
        try:
            host = urlsplit(token).hostname
        except ValueError:
            host = None
        return BulkLine(line_no, token, title) if host else bad(f"{not_input} (no host name)")
    local_kind = is_file_url(token) or not _SCHEME.match(token) or _DRIVE.match(token)
    if not local_kind:
        scheme = token.split(":", 1)[0]
        return bad(f"{not_input} (unsupported scheme {scheme}:; use http, https, file: or a local path)")
    if folder is None:
        # A list read from the web may not make us read this machine's files.
        return bad(f"'{token}' is a local path, but a list read from the web may only name http(s) URLs")
    if is_file_url(token):
        path = file_url_path(token)
        if not _usable_local(path):
            return bad(f"'{token}': no such file")
        return _as_file_url(line_no, token, token, title, where)
    path = _local_path(token, folder)
    if not _usable_local(path):
        # A local path with spaces: accept the longest prefix of the line that is an existing file.
        split = _split_existing_path(line, folder)
        if split is None:
            return bad(not_input)
        token, title = split
        path = _local_path(token, folder)
    return _as_file_url(line_no, token, str(path), title, where)


def _as_file_url(line_no: int, token: str, local: str, title: str | None, where: str) -> BulkLine:
    """The entry of a local input, as a file:// URL (normalize_input's message if it refuses it)."""
    try:
        return BulkLine(line_no, normalize_input(local), title)
    except InputError as err:
        return BulkLine(line_no, token, title, f"{where}: {err}")


def parse_bulk_list(text: str, source: str) -> list[BulkLine]:
    """The entries of a bulk list, in order; bad lines are kept with their `error` set.

    `source` is the list's path or URL as the user gave it: messages name it, and the paths of a
    local list are relative to its folder. A list read from http(s) may only name http(s) URLs.
    InputError when the list holds no entry at all (only blank lines and comments).
    """
    folder = _list_folder(source)
    entries: list[BulkLine] = []
    for line_no, raw in enumerate(_LINE_ENDS.split(text.removeprefix("\ufeff")), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entries.append(_parse_line(line_no, line, source, folder))
    if not entries:
        raise InputError(f"{source}: the bulk list names no input (only blank lines and # comments)")
    return entries
