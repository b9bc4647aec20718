"""Input normalisation: the URL to start from when the user pasted a viewer-app URL (pure).

Users paste what their browser shows (field notes U2, dz#868): the dezoomify web app with the
real URL after `#` or in `?url=`, a Mirador or Universal Viewer link with `?manifest=`, a
IIIF Content State `?iiif-content=`... Each way of wrapping is one line of `WRAPPERS`.

Other rewrites live where the format is known: a Zoomify tile URL, a DeepZoom tile URL and
an IIIF image request are mapped to their metadata by their own dezoomers (NeedsData), and
HTML pages are scanned by `dezoom_steps.pagescan` once fetched.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from dezoom_steps import safejson
from dezoom_steps.urls import is_http, resolve_relative

MAX_NESTING = 3  # an app URL wrapping a viewer URL wrapping the metadata URL, at most
# A relative value is taken only when it names metadata: the app's own parameters
# (`?image=42`, `?src=thumb.jpg`) are not URLs of zoomable images.
_METADATA_PATH = re.compile(
    r"(?:/info\.json|\.dzi|/ImageProperties\.xml|\.xml|manifest(?:\.json)?)$", re.IGNORECASE)
# A URL whose path names metadata is what the dezoomers read: its query is not a wrapper.
_OWN_METADATA = re.compile(r"(?:/info\.json|\.dzi|/ImageProperties\.xml)$", re.IGNORECASE)


def plain_url(value: str) -> str | None:
    """The value itself when it is an http(s) URL or a path naming metadata; else None."""
    value = value.strip()
    if re.match(r"(?i)^https?%3A", value):  # encoded twice (`#https%3A%2F%2F...`)
        value = unquote(value)
    if is_http(value):
        return value
    path = urlsplit(value).path
    if value and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value) and _METADATA_PATH.search(path):
        return value  # relative: resolved against the app URL by the caller
    return None


def content_state_url(value: str) -> str | None:
    """The manifest (or resource) URL of a IIIF Content State parameter.

    IIIF Content State API 1.0 §2.3: the value is a URL, or JSON encoded with base64url
    (padding removed). The JSON is an annotation whose `target` is a resource, or the
    resource itself; a Canvas names its manifest in `partOf`.
    """
    url = plain_url(value)
    if url is not None:
        return url
    try:
        text = base64.urlsafe_b64decode(value.strip() + "=" * (-len(value.strip()) % 4))
        doc = safejson.loads(text.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    target: Any = doc.get("target", doc) if isinstance(doc, dict) else None
    if isinstance(target, list):
        target = target[0] if target else None
    if not isinstance(target, dict):
        return None
    for part in target.get("partOf") or []:
        if isinstance(part, dict) and str(part.get("type", "")).endswith("Manifest") and _http_id(part):
            return _http_id(part)
    return _http_id(target)


def _http_id(resource: dict[str, Any]) -> str | None:
    """The `id` (or `@id`) of a JSON-LD resource when it is an http(s) URL."""
    ident = resource.get("id", resource.get("@id"))
    return ident if isinstance(ident, str) and is_http(ident) else None


@dataclass(frozen=True)
class Wrapper:
    """One way a viewer app carries the real URL: where, under which names, how it is encoded."""

    name: str
    place: str  # "fragment": the whole fragment; "query" or "fragment-query": key=value items
    keys: tuple[str, ...]  # parameter names, lower case ("" for the whole fragment)
    decode: Callable[[str], str | None]
    kind: str = "any"  # "manifest" when the wrapped URL is a IIIF manifest whatever its name
    fallback: bool = True  # also try the input itself (the server sees the query, not the fragment)


WRAPPERS: tuple[Wrapper, ...] = (
    # dezoomify web app (https://dezoomify.ophir.dev/#https://...) and viewers that read the URL after #
    Wrapper("fragment", "fragment", ("",), plain_url, fallback=False),
    # dezoomify web app and generic viewer apps: ?url=https%3A...
    Wrapper("url parameter", "query", ("url", "uri"), plain_url),
    # Mirador, Universal Viewer, TIFY, IIIF drag-and-drop links: ?manifest=...
    Wrapper("manifest parameter", "query", ("manifest", "manifesturl", "manifesturi", "manifestid"), plain_url,
            kind="manifest"),
    # Universal Viewer: uv.html#?manifest=...&cv=0
    Wrapper("manifest in the fragment", "fragment-query", ("manifest",), plain_url, kind="manifest", fallback=False),
    # IIIF Content State API: ?iiif-content=URL or base64url-encoded JSON
    Wrapper("iiif-content parameter", "query", ("iiif-content", "iiif_content"), content_state_url),
    # OpenSeadragon demo pages and small zoom viewers: ?tileSources=x.dzi, ?dzi=, ?image=...
    Wrapper("tile source parameter", "query", ("tilesources", "tilesource", "dzi", "image", "img", "src", "info"),
            plain_url),
)


@dataclass(frozen=True)
class Unwrapped:
    """The URL found inside a wrapper URL, and where (`the fragment`, `the `url` parameter`)."""

    url: str
    where: str
    kind: str
    fallback: bool


def _items(text: str) -> list[tuple[str, str]]:
    """`key=value` items of a query (or fragment) string; values stay percent-encoded."""
    return [(k.lower(), v) for k, _, v in (item.partition("=") for item in text.split("&") if item)]


def unwrap(url: str) -> Unwrapped | None:
    """The URL a viewer-app URL wraps (one level), or None when no wrapper applies."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a broken [IPv6] host (found by fuzzing): nothing to unwrap
        return None
    for w in WRAPPERS:
        if w.place == "fragment":
            candidates = [("", parts.fragment)] if parts.fragment else []
        elif w.place == "query":
            candidates = [] if _OWN_METADATA.search(parts.path) else _items(parts.query)
        else:
            candidates = _items(parts.fragment.lstrip("?")) if parts.fragment.startswith("?") else []
        for key, raw in candidates:
            if key not in w.keys:
                continue
            inner = w.decode(raw if w.place == "fragment" else unquote(raw))
            if inner is None:
                continue
            inner = resolve_relative(url, inner)
            where = "the fragment" if w.place == "fragment" else f"the `{key}` parameter"
            return Unwrapped(inner, where, w.kind, w.fallback)
    return None


@dataclass(frozen=True)
class Start:
    """A URL to run the dezoomers on, and where it came from."""

    url: str
    note: str | None = None  # how it was derived from the user's input; None for the input itself
    source: str = "input"  # "input", "normalize" (unwrapped) or "page" (found in an HTML page)
    kind: str = "any"  # what the URL is expected to be: "any", a format, "manifest" or "frame"
    referer: str | None = None  # the page that referenced it (sent as Referer)
    depth: int = 0  # how many pages were scanned to find it


def starts(url: str) -> list[Start]:
    """The URLs to try first, in order: the innermost wrapped URL, then each wrapper seen by its server.

    A URL carried in a query may also be read by the server itself (a proxy's `?url=`), so
    the wrapper is tried after the URL it holds; a fragment never reaches the server, so a
    URL wrapped there is not tried.
    """
    chain, how = [url], []
    for _ in range(MAX_NESTING):
        inner = unwrap(chain[-1])
        if inner is None or inner.url in chain:
            break
        chain.append(inner.url)
        how.append(inner)
    found: list[Start] = []
    for i in range(len(chain) - 1, -1, -1):
        if i < len(chain) - 1 and not how[i].fallback:
            continue
        if i == 0:
            found.append(Start(url))
            continue
        outer = "the input" if i == 1 else chain[i - 1]
        note = f"{how[i - 1].where} of {outer} holds {chain[i]}"
        found.append(Start(chain[i], note, source="normalize", kind=how[i - 1].kind))
    return found
