"""The resolve driver: start URLs around the dezoomer rounds, and one diagnosis when all fail.

The user's input is first unwrapped (`dezoom_steps.normalize`: viewer-app URLs). Each start
URL then goes through `auto.run_rounds`. When a start fails and its document is an HTML
page, the page is scanned (`dezoom_steps.pagescan`) and the metadata URLs it references
become new starts (then its IIIF manifests, then its frames, scanned in turn). Dezoomers
stay pure: this module only chooses URLs and reads fetched documents.

When every start fails, one error says what was tried and what to look for: a IIIF
manifest found on the way is named as such (a bulk source, not one image), a metadata
URL found in a page that could not be used gives that URL's own error, and a page without
any known reference says so. A start that a dezoomer claimed as its own format but found
broken (MalformedMetadata) keeps that dezoomer's diagnosis: it is not scanned as a page.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from dezoom_steps import pagescan
from dezoom_steps.dezoomers.auto import Outcome, run_rounds
from dezoom_steps.dezoomers.base import Dezoomer, Documents, FetchFailure
from dezoom_steps.errors import LOOK_FOR, DezoomError, NetworkError, NoDezoomerFits, ResolveError, one_line
from dezoom_steps.normalize import Start, starts
from dezoom_steps.urls import is_file_url, is_http

MAX_STARTS = 10  # start URLs tried in all (each runs at most run_rounds' cap of downloads)
MAX_PAGE_DEPTH = 1  # pages scanned: the input (depth 0) and the frames it holds (depth 1)
PER_PAGE = {"metadata": 4, "tiles": 2, "manifests": 2, "frames": 2}  # references taken from one page
_IMAGE_PATH = re.compile(r"\.(?:jpe?g|png|gif|webp|tiff?|bmp|jp2)$", re.IGNORECASE)

Fetch = Callable[[str, "str | None"], bytes]  # fetch(url, referer) -> bytes, or raises


@dataclass
class Attempt:
    """A start URL that no dezoomer could read, and what its document turned out to be."""

    start: Start
    error: DezoomError
    page: pagescan.PageFindings | None = None  # the document is an HTML page
    presentation: str | None = None  # "manifest" or "collection": a IIIF Presentation document


@dataclass
class Resolution:
    """The successful start, its outcome, and the story of the starts before it."""

    outcome: Outcome
    start: Start
    history: list[tuple[str, str]] = field(default_factory=list)


def resolve_input(
    url: str,
    candidates_for: Callable[[str], list[Dezoomer]],
    docs: Documents,
    fetch: Fetch,
    options: Mapping[str, Any],
) -> Resolution:
    """Run the dezoomers on each start URL in turn (input, unwrapped, found in pages) until one succeeds.

    `candidates_for(url)` gives the dezoomers to try on a URL (in order); `fetch(url, referer)`
    downloads a document, the referer being the page that referenced it (else the start URL).
    Raises the one error of `diagnose` when nothing fits.
    """
    queue = deque(starts(url))
    attempts: list[Attempt] = []
    tried: set[str] = set()
    while queue and len(tried) < MAX_STARTS:
        start = queue.popleft()
        if start.url in tried:
            continue
        tried.add(start.url)
        referer = start.referer or start.url

        def get(u: str, referer: str = referer) -> bytes:
            return fetch(u, referer)

        try:
            outcome = run_rounds(start.url, candidates_for(start.url), docs, get, options)
        except (ResolveError, NetworkError) as err:
            attempt = Attempt(start, err)
            # Only a document nobody claimed is looked at: a dezoomer that recognised its
            # format (MalformedMetadata, e.g. a page it reads itself) has the clearest diagnosis.
            data = _document(start.url, docs, get) if isinstance(err, NoDezoomerFits) else None
            if data is not None and pagescan.is_html(data):
                attempt.page = pagescan.scan_page(data, start.url)
                if start.depth <= MAX_PAGE_DEPTH:
                    queue.extend(_references(start, attempt.page))
            elif data is not None:
                attempt.presentation = pagescan.presentation_kind(data)
            attempts.append(attempt)
            continue
        return Resolution(outcome, start, history(attempts, start))
    raise diagnose(url, attempts)


def _document(url: str, docs: Documents, get: Callable[[str], bytes]) -> bytes | None:
    """The bytes of `url` (fetched now if no dezoomer asked for it), or None if it cannot be had."""
    if url not in docs:
        path = re.split(r"[?#]", url, maxsplit=1)[0]
        if not (is_http(url) or is_file_url(url)) or _IMAGE_PATH.search(path):
            return None  # a tile URL: no page to scan, and no tile is fetched while resolving
        try:
            docs.put(url, get(url))
        except Exception as exc:  # recorded like any failed download
            docs.put(url, FetchFailure(str(exc)))
    if docs.failure(url) is not None:
        return None
    return docs.get(url)


def _references(page: Start, found: pagescan.PageFindings) -> list[Start]:
    """New starts for what a page references: metadata, then tiles, manifests and frames."""
    out = []
    for refs, cap in ((found.metadata, PER_PAGE["metadata"]), (found.tiles, PER_PAGE["tiles"]),
                      (found.manifests, PER_PAGE["manifests"]), (found.frames, PER_PAGE["frames"])):
        for ref in refs[:cap]:
            note = f"the page {page.url} references {ref.url} ({ref.where})"
            out.append(Start(ref.url, note, source="page", kind=ref.kind, referer=page.url, depth=page.depth + 1))
    return out


def history(attempts: list[Attempt], success: Start | None = None) -> list[tuple[str, str]]:
    """(name, outcome) records of the failed starts and of how the successful one was found."""
    out: list[tuple[str, str]] = []
    for a in attempts:
        if a.start.note:
            out.append((a.start.source, a.start.note))
        if a.page is not None:
            refs = ", ".join(r.url for r in a.page.all()) or "nothing known"
            out.append(("page", f"{a.start.url} is an HTML page; it references: {refs}"))
        elif a.presentation is not None:
            out.append(("page", f"{a.start.url} is a IIIF {a.presentation}"))
        elif isinstance(a.error, NoDezoomerFits) and a.error.reasons:
            out += [(name, f"{a.start.url}: {why}") for name, why in a.error.reasons]
        else:
            out.append(("resolve", str(a.error)))
    if success is not None and success.note:
        out.append((success.source, success.note))
    return out


def diagnose(url: str, attempts: list[Attempt]) -> DezoomError:
    """The one error to show when no start succeeded (see the module's docstring)."""
    if not attempts:
        return NoDezoomerFits(url, [], f"{url}: nothing to try")
    reasons = history(attempts)
    manifest = next((a for a in attempts if a.presentation), None)
    if manifest is not None:
        kind, at = manifest.presentation, manifest.start.url
        where = f"{url} is a IIIF {kind}" if at == url else f"{url}: found a IIIF {kind} at {at}"
        return NoDezoomerFits(url, reasons, (
            f"{where}, which lists images rather than being one: download them with --bulk {at} (or a "
            "`bulk` entry of the workflow configuration), or give the info.json URL of one image"), manifest=at)
    # Metadata candidates that failed for a reason of their own (not pages, not unconfirmed guesses).
    failed = [a for a in attempts
              if a.page is None and not (a.start.source == "page" and a.start.kind in ("manifest", "frame"))]
    if failed:
        first = failed[0]
        if first.start.note is None:  # the input itself (a direct metadata URL): its own error
            return first.error
        return _with_message(first.error, f"{url}: {first.start.note}, which could not be used: {first.error}")
    pages = [a for a in attempts if a.page is not None]
    if not pages:  # defensive: starts found in a page always follow that page's attempt
        return attempts[0].error
    page = pages[0]
    title = f' (titled "{page.page.title}")' if page.page.title else ""
    subject = url if page.start.url == url else f"{url}: {page.start.url}"
    frames = f", nor in the {len(pages) - 1} frame(s) it holds" if len(pages) > 1 else ""
    return NoDezoomerFits(url, reasons, (
        f"{subject} is an HTML page{title} and no zoomable image metadata was found in it{frames}; {LOOK_FOR}"))


def _with_message(err: DezoomError, message: str) -> DezoomError:
    """A copy of `err` (same class, hence same exit code and attributes) saying `message` on one line."""
    copy = err.__class__.__new__(err.__class__)
    copy.__dict__.update(err.__dict__)
    copy.args = (one_line(message),)
    return copy
