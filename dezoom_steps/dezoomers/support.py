"""Small helpers shared by the grid dezoomers: numbers from metadata, JSON, names from URLs."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from dezoom_steps import safejson
from dezoom_steps.errors import MalformedMetadata
from dezoom_steps.xmldoc import strip_bom

MAX_JSON_BYTES = 8 * 1024 * 1024


def ceil_div(a: int, b: int) -> int:
    """Integer division rounded up (a >= 0, b > 0)."""
    return -(-a // b)


def whole_number(value: Any, what: str, source: str, minimum: int = 1) -> int:
    """`value` (an int, an integral float or a numeric string) as an int >= `minimum`.

    Anything else is MalformedMetadata naming `what` and the `source` URL.
    """
    if isinstance(value, bool) or value is None:
        raise MalformedMetadata(f"{source}: {what} is missing or not a number: {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        raise MalformedMetadata(f"{source}: {what} is not a whole number: {value!r}") from None
    if n < minimum:
        rule = "positive" if minimum == 1 else f"at least {minimum}"
        raise MalformedMetadata(f"{source}: {what} must be {rule}, got {n}")
    return n


def load_json(data: bytes) -> Any:
    """Decode a JSON document (UTF-8, optional BOM); ValueError if it is not JSON."""
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"too large for a metadata document ({len(data):,} bytes)")
    text = strip_bom(data)
    if not text.startswith((b"{", b"[")):
        raise ValueError("the content is not JSON")
    try:
        return safejson.loads(text.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise ValueError(f"invalid JSON ({exc})") from None


def name_from_url(url: str) -> str | None:
    """A readable name for the image behind `url`: its last path segment, unescaped.

    Servers that carry the image path in the query (iipsrv's `?IIIF=a.tif`, `?DeepZoom=...`)
    name it there, so a query's last `key=value` wins over the script's name.
    """
    parts = urlsplit(url)
    text = parts.path
    if parts.query:
        text = parts.query.rsplit("&", 1)[-1].split("=", 1)[-1]
    segment = unquote(text.rstrip("/").rsplit("/", 1)[-1]).strip()
    return segment or None
