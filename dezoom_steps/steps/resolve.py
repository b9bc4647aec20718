"""Step 1, resolve: find the dezoomer and the zoom levels behind an input URL -> resolve.json."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Mapping

from dezoom_steps import net
from dezoom_steps.dezoomers import all_dezoomers, by_name
from dezoom_steps.dezoomers.auto import order_candidates, run_rounds
from dezoom_steps.dezoomers.base import Documents
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

    Parameters:
        url: the user's input (URL, file: URL or local path).
        output: where to write resolve.json (not written when None).
        dezoomer: a registered dezoomer name, or "auto".
        net_options: network settings for metadata downloads.
        options: dezoomer options (passed through untouched).
    """
    url = normalize_input(url)
    net_options = net_options or net.NetOptions()
    try:
        candidates = all_dezoomers() if dezoomer == "auto" else [by_name(dezoomer)]
    except InputError as exc:
        raise InputError(f"{url}: {exc}") from None
    if dezoomer == "auto":
        candidates = order_candidates(url, candidates)
    referer = url if is_http(url) else None
    docs = Documents()
    records: list[dict[str, Any]] = []

    def fetch(u: str) -> bytes:
        log.info("downloading %s", u)
        try:
            data = net.fetch_document(u, net_options, referer)
        except Exception as exc:
            records.append({"url": u, "ok": False, "sha256": None, "bytes": 0, "error": str(exc)})
            raise
        records.append({"url": u, "ok": True, "sha256": hashlib.sha256(data).hexdigest(),
                        "bytes": len(data), "error": None})
        return data

    outcome = run_rounds(url, candidates, docs, fetch, options or {})
    found = outcome.found
    if not found.levels:
        raise MalformedMetadata(f"{url}: a zoomable image was found, but it has no zoom level")
    doc = {
        "input_url": url,
        "dezoomer": outcome.dezoomer.name,
        "title": found.title,
        "headers": dict(found.headers),
        "documents": records,
        "candidates": [{"name": n, "outcome": why} for n, why in outcome.reasons]
        + [{"name": outcome.dezoomer.name, "outcome": "accepted"}],
        "levels": [lv.to_json() for lv in found.levels],
    }
    if output is not None:
        return write_step_json(output, "resolve", doc)
    return {"schema": "dezoom-steps/resolve/1", **doc}
