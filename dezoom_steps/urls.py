"""URL helpers: local paths as `file:` URLs, and relative references resolved as browsers do."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

from dezoom_steps.errors import InputError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# Characters left as they are when re-quoting a joined URL (reserved + already-escaped).
_SAFE = "/:?#[]@!$&'()*+,;=%~-._"


def is_http(url: str) -> bool:
    """True for http:// and https:// URLs."""
    return url.lower().startswith(("http://", "https://"))


def origin_key(url: str) -> str:
    """'scheme://authority' of a URL, cut out without parsing it (a per-origin cache key)."""
    end = url.find("/", url.find("//") + 2)
    return url if end < 0 else url[:end]


def is_file_url(url: str) -> bool:
    """True for file: URLs."""
    return url.lower().startswith("file:")


def file_url_path(url: str) -> Path:
    """The local path named by a file: URL."""
    return Path(unquote(urlsplit(url).path))


def normalize_input(text: str) -> str:
    """The user's input as a URL: http(s) and file: URLs unchanged, a local path as a file: URL.

    A local path must exist; anything else (an empty string, another scheme) is an InputError.
    """
    text = text.strip()
    if not text:
        raise InputError("no input URL given")
    if is_http(text):
        try:
            urlsplit(text).port  # a broken [IPv6] host or a port out of range raises here
        except ValueError as exc:
            raise InputError(f"{text}: not a valid URL ({exc})") from None
        return text
    if is_file_url(text):
        path = file_url_path(text)
    elif _SCHEME.match(text) and not re.match(r"^[A-Za-z]:[\\/]", text):
        raise InputError(f"{text}: unsupported URL scheme (use http, https, file: or a local path)")
    else:
        try:
            path = Path(text).expanduser()
        except RuntimeError:  # `~nosuchuser/x`
            raise InputError(f"{text}: no such file (unknown user in '~')") from None
    templated = "{{" in str(path)  # URL templates such as map_{{X}}_{{Y}}.jpg name no single file
    try:
        exists = path.exists()
    except (OSError, ValueError) as exc:  # a name too long, or with a NUL byte
        raise InputError(f"{text!r}: not a usable file name ({getattr(exc, 'strerror', None) or exc})") from None
    if not templated and not exists:
        raise InputError(f"{text if text.isprintable() else repr(text)}: no such file")
    return "file://" + quote(os.path.abspath(path), safe=_SAFE)


def resolve_relative(base: str, ref: str) -> str:
    """Resolve `ref` against `base`; absolute references are returned unchanged.

    The result is percent-encoded where a path or query may not hold a character as is
    (spaces in particular), as a WHATWG URL parser would.
    """
    if _SCHEME.match(ref) and not re.match(r"^[A-Za-z]:[\\/]", ref):
        return ref
    try:
        return quote(urljoin(base, ref), safe=_SAFE)
    except ValueError:  # a broken [IPv6] host (found by fuzzing): left as is, its download fails cleanly
        return ref


def same_origin(a: str, b: str) -> bool:
    """True when two URLs share scheme, host and port."""
    try:
        x, y = urlsplit(a), urlsplit(b)
        return (x.scheme.lower(), x.hostname, x.port) == (y.scheme.lower(), y.hostname, y.port)
    except ValueError:  # a port out of range or a broken [IPv6] host (found by fuzzing): not the same
        return False
