"""IIIF Presentation manifests (2.x and 3.0) and collections: one entry per canvas (pure, no I/O).

Like the dezoomers, this module only reads documents from a `Documents` store. `expand(url,
docs)` raises `NeedsData(url)` for the first document it still needs; `missing(url, docs)`
lists every document needed at that point, so a driver can fetch a whole collection's
manifests in one batch:

    while (urls := missing(url, docs)):
        for u in urls: docs.put(u, fetch(u))      # bytes, or FetchFailure(message)
    entries = expand(url, docs)

The walk, in document order:
- a manifest gives one entry per canvas of its first sequence (2.1 §5.2: further sequences
  are other orders of the same canvases) or of its `items` (3.0);
- a collection gives the entries of its members: 2.1 §5.8 `members` when present ("it should
  use that property even if `collections` and/or `manifests` are also present"), else
  `collections` then `manifests`; 3.0 `items`. Embedded sub-collections are read in place;
  manifests are always fetched (2.1 §5.8, 3.0 §5.1: manifests "MUST NOT be embedded within
  collections"). A 2.1 §5.9 paged collection is read page after page (`first`, then `next`).

Bad parts never stop the others: a canvas without an image service, a member that cannot be
downloaded or is not JSON, a collection that contains itself or one of its ancestors, one
nested deeper than `max_depth`, the rest after `max_items` entries: each gives an entry whose
`error` is one line naming the URL and the problem. A manifest or collection listed twice is
expanded once. Only the document at `url` itself raises: NetworkError (download failed),
MalformedMetadata (broken JSON), NotAManifest (anything else).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from typing import Any

from dezoom_steps import safejson
from dezoom_steps.collections.iiif_entry import Entry, canvas_entry, canvases, default_name, entry_title
from dezoom_steps.collections.iiif_values import link, listed, metadata_pairs, strings, text, types
from dezoom_steps.dezoomers.base import Documents
from dezoom_steps.errors import InputError, MalformedMetadata, NeedsData, NetworkError, ResolveError
from dezoom_steps.xmldoc import strip_bom

__all__ = ["Entry", "NotAManifest", "default_name", "entry_title", "expand", "is_manifest_or_collection",
           "kind", "missing"]

MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # a 5,000-page 2.x manifest is about 10 MB
_SNIFF_BYTES = 64 * 1024
_MARKERS = re.compile(rb"Manifest|Collection|iiif\.io/api/presentation|shared-canvas\.org")
log = logging.getLogger(__name__)
_LOOP = "collection loop (it contains itself, directly or through its members); skipped"


class NotAManifest(ResolveError):
    """The document is neither a IIIF Presentation manifest nor a collection (exit code 3)."""


def _load(url: str, data: bytes) -> Any:
    """Decode a document; NotAManifest when it is not JSON at all, MalformedMetadata when broken."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise MalformedMetadata(f"{url}: too large for a IIIF manifest ({len(data):,} bytes)")
    body = strip_bom(data)
    if not body.startswith((b"{", b"[")):
        what = "an HTML page" if body[:1] == b"<" else "empty" if not body else "not JSON"
        raise NotAManifest(f"{url}: not a IIIF manifest or collection: the document is {what}")
    try:
        return safejson.loads(body.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError, nesting bombs
        raise MalformedMetadata(f"{url}: the IIIF manifest is not valid JSON ({exc})") from None


def kind(doc: Any) -> str | None:
    """"manifest", "collection" or None, from the `type`/`@type`, else from the structure."""
    if not isinstance(doc, dict):
        return None
    declared = types(doc)
    if "Manifest" in declared:
        return "manifest"
    if "Collection" in declared:
        return "collection"
    contexts = strings(doc.get("@context"))
    if declared or not any("iiif.io/api/presentation" in c or "shared-canvas.org" in c for c in contexts):
        return None
    if isinstance(doc.get("sequences"), list):
        return "manifest"
    if any(k in doc for k in ("manifests", "collections", "members", "first")):
        return "collection"
    first = next((types(i) for i in listed(doc, "items") if isinstance(i, dict)), [])
    if "Canvas" in first:
        return "manifest"
    return "collection" if "Manifest" in first or "Collection" in first else None


def _not_a_manifest(url: str, doc: Any) -> str:
    """Why a JSON document is not a manifest or collection, with a hint for image services."""
    typed_service = {"ImageService2", "ImageService3"} & set(types(doc)) if isinstance(doc, dict) else False
    if typed_service or isinstance(doc, dict) and ("protocol" in doc or "tiles" in doc):  # field notes B3
        return (f"{url}: not a IIIF manifest or collection, but a IIIF image service (info.json): "
                "use it as a single image")
    found = ", ".join(types(doc)) if isinstance(doc, dict) else ""
    return f"{url}: not a IIIF manifest or collection" + (f" (its type is {found})" if found else "")


def is_manifest_or_collection(data: bytes) -> bool:
    """Cheap sniff: True when `data` is a IIIF Presentation manifest or collection."""
    if not strip_bom(data[:_SNIFF_BYTES]).startswith(b"{") or not _MARKERS.search(data[:_SNIFF_BYTES]):
        return False
    try:
        return kind(_load("", data)) is not None
    except ResolveError:
        return False


@dataclass
class _Walk:
    """The state of one walk over a manifest or a tree of collections."""

    docs: Documents
    max_depth: int
    max_items: int
    collect: bool  # missing(): record absent documents instead of raising NeedsData
    entries: list[Entry] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    full: bool = False

    def fail(self, url: str, message: str, title: str | None = None) -> None:
        """Record an entry for a document or member that gives no image."""
        self.entries.append(Entry(None, title, None, 0, url, error=message))

    def room(self, where: str) -> bool:
        """False (after one closing error entry) once `max_items` entries are listed or pending."""
        if not self.full and len(self.entries) + len(self.absent) >= self.max_items:
            self.full = True
            self.fail(where, f"{where}: stopped after {self.max_items} entries (max_items); the rest is not listed")
        return not self.full

    def fetched(self, url: str, title: str | None = None) -> Any | None:
        """The JSON of `url`; None (after recording an error or the need) when it is not usable yet."""
        failure = self.docs.failure(url)
        if failure is not None:
            self.fail(url, f"{url}: unable to download: {failure}", title)
            return None
        if url not in self.docs:
            if not self.collect:
                raise NeedsData(url)
            if url not in self.absent:
                self.absent.append(url)
            return None
        try:
            return _load(url, self.docs.get(url))
        except ResolveError as err:
            self.fail(url, str(err), title)
            return None

    def manifest(self, url: str, doc: dict[str, Any]) -> None:
        """One entry per canvas (or one error entry for a manifest without canvases)."""
        self.seen.update(filter(None, [url, link(doc, url)]))
        title, metadata = text(doc.get("label")), metadata_pairs(doc.get("metadata"))
        found = canvases(doc)
        if not found:
            self.fail(url, f"{url}: the manifest lists no canvases", title)
        for index, canvas in enumerate(found, 1):
            if not self.room(url):
                return
            entry = canvas_entry(canvas, index, url, title, metadata)
            if entry.ok and 0 in (entry.width, entry.height):
                # Field notes M15: viewers crash on a 0-size canvas; we never size anything from
                # it (the image service's info.json gives the real size), but say so.
                log.warning("canvas %d of %s declares a size of %sx%s; the size of its image service is used",
                            index, url, entry.width, entry.height)
            self.entries.append(entry)

    def member(self, url: str, depth: int, ancestors: frozenset[str], hint: str | None,
               title: str | None = None) -> None:
        """A referenced manifest or collection, fetched (or asked for) and expanded.

        `title` (the label given where it is referenced) names it in error entries.
        """
        if url in ancestors:
            self.fail(url, f"{url}: {_LOOP}", title)
            return
        if url in self.seen:
            return  # listed twice in the tree: expanded once
        too_deep = f"{url}: collection nested deeper than {self.max_depth} levels (max_depth); skipped"
        if hint == "Collection" and depth > self.max_depth:
            self.fail(url, too_deep, title)
            return
        doc = self.fetched(url, title)
        if doc is None:
            return
        found = kind(doc)
        if found == "manifest":
            self.manifest(url, doc)
        elif found == "collection" and depth > self.max_depth:
            self.fail(url, too_deep, title)
        elif found == "collection":
            self.collection(url, doc, depth, ancestors)
        else:
            self.fail(url, _not_a_manifest(url, doc), title)

    def collection(self, url: str, doc: dict[str, Any], depth: int, ancestors: frozenset[str]) -> None:
        """The members of a collection and of its pages (2.1 §5.9: `first`, then each `next`)."""
        own = frozenset(filter(None, [url, link(doc, url)]))
        self.seen.update(own)
        inside = ancestors | own
        self.members(url, doc, depth, inside)
        page_url = link(doc.get("first"), url) or link(doc.get("next"), url)
        while page_url and self.room(url):
            if page_url in inside:
                self.fail(page_url, f"{page_url}: a collection page that leads back to an earlier page (loop); skipped")
                return
            page = self.fetched(page_url)
            if page is None:
                return
            if kind(page) != "collection":
                self.fail(page_url, _not_a_manifest(page_url, page))
                return
            inside |= {page_url, *filter(None, [link(page, page_url)])}
            self.members(page_url, page, depth, inside)
            page_url = link(page.get("next"), page_url)

    def members(self, url: str, doc: dict[str, Any], depth: int, inside: frozenset[str]) -> None:
        """Walk the member list of one collection document (members one level deeper)."""
        if "members" in doc:
            items = [(m, None) for m in listed(doc, "members")]
        elif "collections" in doc or "manifests" in doc:
            items = [(m, "Collection") for m in listed(doc, "collections")]
            items += [(m, "Manifest") for m in listed(doc, "manifests")]
        else:
            items = [(m, None) for m in listed(doc, "items")]
        for number, (item, hint) in enumerate(items, 1):
            if not self.room(url):
                return
            target = link(item, url)
            declared = [t for t in types(item) if t in ("Manifest", "Collection")] if isinstance(item, dict) else []
            hint = declared[0] if declared else hint
            if target is None and not _embedded(item):
                self.fail(url, f"member {number} of {url}: no id")
            elif _embedded(item):
                self.embedded(target or f"{url}#member-{number}", item, depth + 1, inside)
            else:
                label = text(item.get("label")) if isinstance(item, dict) else None
                self.member(target, depth + 1, inside, hint, label)

    def embedded(self, url: str, doc: dict[str, Any], depth: int, ancestors: frozenset[str]) -> None:
        """A sub-collection written inside its parent (2.1 §5.8 "MAY be embedded in its entirety")."""
        if url in ancestors:
            self.fail(url, f"{url}: {_LOOP}")
        elif depth > self.max_depth:
            self.fail(url, f"{url}: collection nested deeper than {self.max_depth} levels (max_depth); skipped")
        elif url not in self.seen:
            self.collection(url, doc, depth, ancestors)


def _embedded(item: Any) -> bool:
    """True for a member collection given in full (with members of its own), not just referenced."""
    if not isinstance(item, dict) or "Manifest" in types(item):
        return False
    return any(isinstance(item.get(k), list) for k in ("members", "collections", "manifests", "items"))


def _walk(url: str, docs: Documents, max_depth: int, max_items: int, collect: bool) -> _Walk:
    """Read the document at `url` and walk everything it lists."""
    if max_depth < 1 or max_items < 1:
        raise InputError(f"max_depth and max_items must be at least 1 (got {max_depth} and {max_items})")
    walk = _Walk(docs, max_depth, max_items, collect)
    failure = docs.failure(url)
    if failure is not None:
        raise NetworkError(f"{url}: unable to download the manifest: {failure}")
    if url not in docs:
        if not collect:
            raise NeedsData(url)
        walk.absent.append(url)
        return walk
    doc = _load(url, docs.get(url))
    found = kind(doc)
    if found == "manifest":
        walk.manifest(url, doc)
    elif found == "collection":
        walk.collection(url, doc, 1, frozenset())
    else:
        raise NotAManifest(_not_a_manifest(url, doc))
    return walk


def expand(url: str, docs: Documents, *, max_depth: int = 5, max_items: int = 10000) -> list[Entry]:
    """Every canvas of the manifest or collection at `url`, as entries numbered by `position`.

    Raises NeedsData for the first document not fetched yet (see `missing` to fetch them all at
    once). `max_depth` counts collections (the top one is 1); `max_items` bounds the entries
    (one more, an error entry, says where the listing stopped).
    """
    walk = _walk(url, docs, max_depth, max_items, collect=False)
    return [replace(entry, position=i) for i, entry in enumerate(walk.entries, 1)]


def missing(url: str, docs: Documents, *, max_depth: int = 5, max_items: int = 10000) -> list[str]:
    """Every document `expand` needs that `docs` does not hold yet (empty when it can finish).

    A collection's unfetched members are all listed at once; documents they list in turn come
    in the next call. Never more URLs than `max_items`.
    """
    return _walk(url, docs, max_depth, max_items, collect=True).absent

