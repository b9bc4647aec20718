"""One canvas of a IIIF manifest as an entry to download, and its default file name.

A canvas paints content resources through annotations: 2.1 §5.4 `images[].resource` (with
`motivation` "sc:painting"), 3.0 `items[]` (annotation pages) `.items[]` (annotations)
`.body` (motivation "painting"). The entry's URL is the info.json of the first painted
resource that has an IIIF image service (`service`), never the resource's own `@id`/`id`,
which is often a small rendition (field notes B2: a 2.x manifest whose `resource` is a
thumbnail-sized image and whose `service` is the full image).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from dezoom_steps.collections.iiif_values import (
    content_resources, image_service, info_url, link, listed, strings, text, types,
)
from dezoom_steps.naming import MAX_NAME_BYTES, sanitize

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Entry:
    """One image of a manifest (a canvas), or one part of a manifest or collection that failed.

    `url` is the info.json URL of the canvas's IIIF image service (None when `error` is set);
    `title` the manifest's label, `label` the canvas's; `index` the canvas's 1-based number in
    its manifest (0 for an entry that is not a canvas); `manifest` the URL the manifest (or the
    failed document) was read from; `metadata` the manifest's (label, value) pairs; `width` and
    `height` the canvas's declared size (not the image's; may be 0 or None); `position` the
    1-based rank in the whole expansion (unique within one `expand` result).
    """

    url: str | None
    title: str | None
    label: str | None
    index: int
    manifest: str
    metadata: Metadata = ()
    width: int | None = None
    height: int | None = None
    error: str | None = None
    position: int = 0

    @property
    def ok(self) -> bool:
        """True when the entry names an image service that can be downloaded."""
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready data (metadata as a list of [label, value] lists)."""
        data = asdict(self)
        data["metadata"] = [list(pair) for pair in self.metadata]
        return data


def _size(value: Any) -> int | None:
    """A canvas dimension as an int >= 0, or None when missing or not a whole number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return value if isinstance(value, int) and value >= 0 else None


def canvases(manifest: dict[str, Any]) -> list[Any]:
    """The canvases of a manifest: the first 2.x sequence that has some, else the 3.0 `items`.

    2.1 §5.1: "The first such sequence MUST be included within the manifest"; further
    sequences are other orders of the same canvases, so they are not read.
    """
    for sequence in listed(manifest, "sequences"):
        if listed(sequence, "canvases"):
            return sequence["canvases"]
    return listed(manifest, "items")


def _painting(annotation: Any) -> bool:
    """True for an annotation that paints content (or says nothing about why)."""
    if not isinstance(annotation, dict):
        return False
    motivations = strings(annotation.get("motivation"))
    return not motivations or any(m.endswith("painting") for m in motivations)


def _resources(canvas: dict[str, Any]) -> list[dict[str, Any]]:
    """The content resources painted on a canvas, 2.x then 3.0 layout."""
    found: list[dict[str, Any]] = []
    for annotation in listed(canvas, "images"):
        if _painting(annotation):
            found += content_resources(annotation.get("resource"))
    for page in listed(canvas, "items"):
        for annotation in listed(page, "items"):
            if _painting(annotation):
                found += content_resources(annotation.get("body"))
    return found


def canvas_entry(canvas: Any, index: int, manifest: str, title: str | None, metadata: Metadata) -> Entry:
    """The entry of one canvas: its first painted resource with an image service, else an error."""
    where = f"canvas {index} of {manifest}"
    if not isinstance(canvas, dict):
        return Entry(None, title, None, index, manifest, metadata, error=f"{where}: not a JSON object")
    label, width, height = text(canvas.get("label")), _size(canvas.get("width")), _size(canvas.get("height"))
    resources = _resources(canvas)
    for resource in resources:
        service = image_service(resource.get("service"))
        if service:
            return Entry(info_url(manifest, service), title, label, index, manifest, metadata, width, height)
    images = [r for r in resources if not types(r) or any(t.endswith("Image") for t in types(r))]
    static = next(filter(None, (link(r, manifest) for r in images)), None)
    problem = f"no IIIF image service (only a static image: {static})" if static else "no image"
    return Entry(None, title, label, index, manifest, metadata, width, height, error=f"{where}: {problem}")


def metadata_title(metadata: Metadata) -> str | None:
    """The value of the first metadata pair labelled "title" (any case), as dezoomify-rs reads it."""
    return next((value for label, value in metadata if label.strip().lower() == "title" and value), None)


def entry_title(entry: Entry) -> str | None:
    """dezoomify-rs's image title (spec 14.5 `determine_title`).

    The non-empty parts manifest label, metadata title and canvas label, each left out when
    equal to a part already taken, joined with " - "; None when there is none.
    """
    parts: list[str] = []
    for part in (entry.title, metadata_title(entry.metadata), entry.label):
        if part and part not in parts:
            parts.append(part)
    return " - ".join(parts) or None


_NAME_TRIM = " _-.,;"


def _cut(name: str, limit: int) -> str:
    """`name` cut to `limit` bytes of UTF-8 on a character boundary, without a dangling separator."""
    return name.encode("utf-8")[:limit].decode("utf-8", "ignore").rstrip(_NAME_TRIM)


def _ascii(name: str) -> str:
    """Letters, digits, `_`, `-` and `.` only (accents dropped), as workflow ids require."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    folded = re.sub(r"[^A-Za-z0-9.-]+", "_", folded)  # runs of anything else (and of `_`) -> one `_`
    folded = re.sub(r"_*-[-_]*", "-", re.sub(r"\.{2,}", ".", folded))
    return re.sub(r"^[^A-Za-z0-9]+", "", folded).rstrip(_NAME_TRIM)


def default_name(entry: Entry, index_width: int = 4, *, ascii_only: bool = False) -> str:
    """A file stem for an entry: its sanitised title (spec 14.5, then 9.2) plus `_NNNN`.

    `NNNN` is the entry's `position` (unique within one expansion), else its canvas `index`,
    zero-padded to `index_width` digits. The stem is never empty (`image` stands in for a
    title that sanitises to nothing) and, suffix included, at most MAX_NAME_BYTES of UTF-8.
    `ascii_only` keeps only ASCII letters, digits, `_`, `-` and `.` (for workflow ids).
    """
    suffix = f"_{entry.position or entry.index:0{index_width}d}"
    stem = sanitize(entry_title(entry) or "")
    if ascii_only:
        stem = _ascii(stem)
    return (_cut(stem, MAX_NAME_BYTES - len(suffix)) or "image") + suffix
