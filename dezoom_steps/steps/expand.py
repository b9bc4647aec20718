"""Step 0, expand (a checkpoint in the workflow): bulk lists and IIIF manifests -> one entry per image.

A source is a bulk list (a text file or URL, one input per line, optional title after the
first space) or a IIIF Presentation manifest or collection. Manifest URLs inside a bulk list
are expanded too. Each entry gets a unique output name from a template; entries that cannot
be downloaded (a bad line, a canvas without an image service) are kept with their error, so
the summary can list them while every other image still runs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

from dezoom_steps import net
from dezoom_steps.collections import iiif_manifest
from dezoom_steps.collections.bulk_list import parse_bulk_bytes
from dezoom_steps.collections.iiif_entry import Entry
from dezoom_steps.dezoomers.base import Documents, FetchFailure
from dezoom_steps.errors import DezoomError, InputError
from dezoom_steps.jsonio import write_step_json
from dezoom_steps.naming import DEFAULT_BULK_TEMPLATE, image_id, render_name, validate_template
from dezoom_steps.urls import file_url_path, is_file_url, is_http, normalize_input

log = logging.getLogger(__name__)

# A bulk line whose URL looks like a manifest or collection is expanded into its canvases.
MANIFEST_HINT = re.compile(r"(?i)manifest|collection|/iiif/.*\.json$|presentation")
MAX_FETCH_ROUNDS = 50
# Snakemake refuses a wildcard value ending in 20 or more repeats of one substring (it takes
# it for an infinite recursion); names ending that way get their position appended.
PERIODIC_TAIL = re.compile(r"(.+?)\1{19,}$")


def read_source(url: str, fetch: Callable[[str], bytes]) -> bytes:
    """The bytes of a source: a local path or file: URL read from disk, otherwise downloaded."""
    url = normalize_input(url)
    if is_file_url(url):
        try:
            return file_url_path(url).read_bytes()
        except OSError as exc:
            raise InputError(f"{url}: cannot read ({exc.strerror or exc})") from None
    return fetch(url)


def manifest_entries(url: str, fetch: Callable[[str], bytes], first: bytes | None = None) -> list[Entry]:
    """Every canvas of the manifest or collection at `url`, fetching member documents in batches."""
    docs = Documents({url: first} if first is not None else {})
    for _ in range(MAX_FETCH_ROUNDS):
        wanted = iiif_manifest.missing(url, docs)
        if not wanted:
            return iiif_manifest.expand(url, docs)
        for u in wanted:
            try:
                docs.put(u, fetch(u))
            except DezoomError as exc:
                docs.put(u, FetchFailure(str(exc)))
    raise InputError(f"{url}: the collection still needs documents after {MAX_FETCH_ROUNDS} rounds")


def _row(entry_url: str | None, *, source: str, title: str | None, label: str | None = None,
         index: int = 0, error: str | None = None, width: int | None = None,
         height: int | None = None) -> dict[str, Any]:
    """One entry of bulk.json before naming."""
    return {"url": entry_url, "source": source, "title": title, "label": label, "index": index,
            "width": width, "height": height, "error": error}


def _from_manifest(url: str, source: str, fetch, first: bytes | None = None) -> list[dict[str, Any]]:
    """Rows for the canvases of one manifest or collection (errors become error rows)."""
    try:
        entries = manifest_entries(url, fetch, first)
    except DezoomError as exc:
        return [_row(None, source=source, title=None, error=str(exc))]
    rows = []
    for e in entries:
        row = _row(e.url, source=e.manifest, title=e.title, label=e.label, index=e.index,
                   error=e.error, width=e.width, height=e.height)
        row["default_name"] = iiif_manifest.default_name(e)  # the incumbent's "title - label_0007"
        rows.append(row)
    return rows


def collect(sources: list[str], fetch: Callable[..., bytes]) -> list[dict[str, Any]]:
    """The unnamed rows of every source, in order.

    `fetch(url, origin=None)` downloads a document; `origin` is the user's own URL that the
    document was found through (field notes S2: a remote list or collection may not send us to
    private or loopback hosts unless its own host is one). Entries of a local list are the
    user's own inputs.
    """
    rows: list[dict[str, Any]] = []
    for source in sources:
        try:
            data = read_source(source, fetch)
        except DezoomError as exc:
            rows.append(_row(None, source=source, title=None, error=str(exc)))
            continue
        remote = is_http(source)
        from_source = partial(fetch, origin=source) if remote else fetch
        if iiif_manifest.is_manifest_or_collection(data):
            rows += _from_manifest(normalize_input(source), source, from_source, data)
            continue
        try:
            lines = parse_bulk_bytes(data, source)
        except DezoomError as exc:
            rows.append(_row(None, source=source, title=None, error=str(exc)))
            continue
        for line in lines:
            if not line.ok:
                rows.append(_row(None, source=source, title=line.title, error=line.error))
            elif is_http(line.url) and MANIFEST_HINT.search(line.url.split("?")[0]):
                rows += _from_manifest(line.url, line.url,
                                       from_source if remote else partial(fetch, origin=line.url))
            else:
                rows.append(_row(line.url, source=source, title=line.title))
    return rows


def name_rows(rows: list[dict[str, Any]], template: str | None) -> list[dict[str, Any]]:
    """Give every row a unique, safe output name (`_0001`, `_0002`... on collisions)."""
    taken: set[str] = set()
    for position, row in enumerate(rows, 1):
        fields = {"title": row["title"], "label": row["label"], "index": row["index"] or position,
                  "id": image_id(row["url"] or row["source"]), "position": position,
                  "width": row["width"] or "", "height": row["height"] or ""}
        default = row.pop("default_name", None)
        if template or not default:
            name = render_name(template or DEFAULT_BULK_TEMPLATE, fields).replace("/", "_")
        else:
            name = default
        if PERIODIC_TAIL.search(name):
            name = f"{name}_{position:04d}"
        unique, n = name, 0
        while unique.casefold() in taken:
            n += 1
            unique = f"{name}_{n:04d}"
        taken.add(unique.casefold())
        row["name"] = unique
        row["position"] = position
    return rows


def expand(*, sources: list[str], output: Path | None, template: str | None = None,
           net_options: net.NetOptions | None = None) -> dict[str, Any]:
    """Expand bulk sources into named entries and write bulk.json (kind "bulk").

    Parameters:
        sources: bulk list files or URLs, or manifest/collection URLs.
        output: where to write bulk.json (not written when None).
        template: output name template (default: the list's title or an id from the URL;
            `Manifest title_Canvas label_0001` for manifest canvases).
        net_options: network settings for downloading lists and manifests.
    """
    if template:
        validate_template(template)
    options = net_options or net.NetOptions()

    def fetch(u: str, origin: str | None = None) -> bytes:
        log.info("downloading %s", u)
        return net.fetch_document(u, replace(options, input_url=origin) if origin else options, None)

    rows = name_rows(collect(list(sources), fetch), template)
    for row in rows:
        if row["error"]:
            log.warning("%s", row["error"])
    body = {"sources": list(sources), "entries": rows}
    if output is not None:
        return write_step_json(output, "bulk", body)
    return {"schema": "dezoom-steps/bulk/1", **body}
