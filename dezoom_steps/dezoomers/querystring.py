"""Query strings of metadata URLs, carried over to tile URLs.

Signed or tokenised CDNs serve the metadata as `.../ImageProperties.xml?token=abc`,
`foo.dzi?sig=...` or `info.json?key=...` and want the same query on every tile request
(field notes U6 and rs#174: "`?securitytoken=` must be added to every tile URL").
"""

from __future__ import annotations


def append_query(url: str, query: str) -> str:
    """`url` with `query` (no leading `?` or `&`) added: after `&` if `url` has a query already, else `?`."""
    if not query:
        return url
    return f"{url}{'&' if '?' in url else '?'}{query}"


def without_params(query: str, names: frozenset[str]) -> str:
    """`query` without the `name=value` items whose name is in `names` (compared in lower case)."""
    kept = [item for item in query.split("&") if item and item.split("=", 1)[0].lower() not in names]
    return "&".join(kept)


def query_after(url: str, end: int) -> str:
    """The query items that follow position `end` of `url` (the end of the metadata file name).

    `?a=1` after a path (`info.json?a=1`) and `&a=1` after a file named in the query
    (iipsrv's `?IIIF=x.tif/info.json&a=1`) both give `a=1`; a fragment is dropped.
    """
    rest = url[end:].split("#", 1)[0]
    if "?" in url[:end]:
        return rest[1:] if rest.startswith("&") else ""
    return rest[1:] if rest.startswith("?") else ""
