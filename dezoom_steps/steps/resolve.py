"""Step 1, resolve: find the dezoomer and the zoom levels behind an input URL -> resolve.json."""

from __future__ import annotations

import hashlib
from dataclasses import replace
import logging
from pathlib import Path
from typing import Any, Mapping

from dezoom_steps import net
from dezoom_steps.dezoomers import all_dezoomers, by_name
from dezoom_steps.dezoomers.auto import order_candidates
from dezoom_steps.dezoomers.base import Dezoomer, Documents
from dezoom_steps.dezoomers.discover import resolve_input
from dezoom_steps.errors import InputError, MalformedMetadata
from dezoom_steps.jsonio import write_step_json
from dezoom_steps.urls import is_http, normalize_input

log = logging.getLogger(__name__)


def resolve(
    *,
    url: str,
    output: Path | None = None,
    dezoomer: str = "auto",
    net_options: net.NetOptions | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the metadata loop for `url` and write (and return) the resolve.json document.

    The input may be a viewer-app URL wrapping the metadata URL, or an HTML page referencing
    it (dezoomers.discover): `input_url` is then the URL that was read, `normalized_from`
    the user's input, and tiles are requested with the page as Referer.

    Parameters:
        url: the user's input (URL, file: URL or local path).
        output: where to write resolve.json (not written when None).
        dezoomer: a registered dezoomer name, or "auto".
        net_options: network settings for metadata downloads.
        options: dezoomer options (passed through untouched).
    """
    url = normalize_input(url)
    # The user's input scopes -H headers, cookies and the address policy (field notes S2, S6); a
    # canvas of a manifest the user gave keeps the manifest as its input (net_options.input_url).
    net_options = net_options or net.NetOptions()
    given = net_options.input_url
    net_options = replace(net_options, input_url=normalize_input(given) if given and given != url else url)
    try:
        forced = None if dezoomer == "auto" else by_name(dezoomer)
    except InputError as exc:
        raise InputError(f"{url}: {exc}") from None

    def candidates_for(u: str) -> list[Dezoomer]:
        return order_candidates(u, all_dezoomers()) if forced is None else [forced]

    docs = Documents()
    records: list[dict[str, Any]] = []

    def fetch(u: str, referer: str | None) -> bytes:
        log.info("downloading %s", u)
        try:
            data = net.fetch_document(u, net_options, referer if referer and is_http(referer) else None)
        except Exception as exc:
            records.append({"url": u, "ok": False, "sha256": None, "bytes": 0, "error": str(exc)})
            raise
        records.append({"url": u, "ok": True, "sha256": hashlib.sha256(data).hexdigest(),
                        "bytes": len(data), "error": None})
        return data

    resolution = resolve_input(url, candidates_for, docs, fetch, options or {})
    outcome, start = resolution.outcome, resolution.start
    found = outcome.found
    if not found.levels:
        raise MalformedMetadata(f"{start.url}: a zoomable image was found, but it has no zoom level")
    headers = dict(found.headers)
    if start.referer and is_http(start.referer) and not any(k.lower() == "referer" for k in headers):
        headers["Referer"] = start.referer  # what the viewer page's own tile requests say
    doc = {
        "input_url": start.url,
        "dezoomer": outcome.dezoomer.name,
        "title": found.title,
        "headers": headers,
        "documents": records,
        "candidates": [{"name": n, "outcome": why} for n, why in resolution.history + outcome.reasons]
        + [{"name": outcome.dezoomer.name, "outcome": "accepted"}],
        "levels": [lv.to_json() for lv in found.levels],
    }
    if start.url != url:
        doc["normalized_from"] = url
    if output is not None:
        return write_step_json(output, "resolve", doc)
    return {"schema": "dezoom-steps/resolve/1", **doc}
