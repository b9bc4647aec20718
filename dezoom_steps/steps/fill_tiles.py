"""Step fill_tiles (`--on-missing fill`): fetch lower-level tiles covering the missing tiles -> fill.json.

Runs after every fetch shard, before stitch (it needs the network; stitch does not). The holes
are the tiles of tiles.json not valid in the cache. For each lower level of the same image,
largest first, the holes still open are planned (dezoom_steps/fill.py), the lower tiles they
need are fetched into the same tile cache, and a hole whose sources all arrived is settled;
the others try the next lower level. fill.json lists every plan; stitch pastes them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from dataclasses import replace

from dezoom_steps import cache, jsonio, net, scope, tiledownload
from dezoom_steps.cache import cache_key
from dezoom_steps.dezoomers import by_name
from dezoom_steps.errors import OutputError
from dezoom_steps.fill import FillPlan, lower_levels, plan_level
from dezoom_steps.model import Level, TileRef
from dezoom_steps.politeness import RECORD_NAME
from dezoom_steps.steps.fetch_tiles import dezoomer_decode
from dezoom_steps.urls import is_file_url

log = logging.getLogger(__name__)


def fill_tiles(
    *,
    resolve_json: Path,
    tiles_json: Path,
    cache_dir: Path,
    report: Path,
    options: net.NetOptions | None = None,
) -> dict[str, Any]:
    """Fetch the lower-level tiles that can fill the missing tiles; write and return fill.json."""
    started = time.monotonic()
    options = options or net.NetOptions()
    res = jsonio.read_step_json(resolve_json, "resolve")
    doc = jsonio.read_step_json(tiles_json, "tiles")
    options = replace(options, input_url=scope.real_input_url(doc["input_url"], options.input_url))  # see fetch_tiles
    levels = [Level.from_json(d) for d in res["levels"]]
    chosen_index = doc["selection"]["level_index"]
    chosen = levels[chosen_index]
    region = doc["selection"].get("region") or {"x": 0, "y": 0}
    offset = (region["x"], region["y"])
    holes = [t for t in doc["tiles"] if not cache.is_cached(cache_dir, t["key"])]
    dezoomer = by_name(doc["dezoomer"])
    decode = dezoomer_decode(doc["dezoomer"])
    headers = net.build_headers(options, referer=doc["input_url"], level_headers=doc["headers"])
    settled: list[FillPlan] = []
    failed: dict[str, dict[str, Any]] = {}
    totals = {"downloaded": 0, "bytes": 0}
    remaining = holes
    for li in lower_levels(levels, chosen_index) if holes else []:
        if not remaining:
            break
        lower = levels[li]
        tiles = [dict(t.to_json(), key=cache_key(t.url)) for t in dezoomer.tiles(lower)]
        plans, uncovered = plan_level(remaining, offset, chosen, lower, li, tiles)
        need = {s["key"]: s for p in plans for s in p.sources if s["key"] not in failed}
        todo = [TileRef.from_json(s) for k, s in need.items() if not cache.is_cached(cache_dir, k)]
        _download(todo, cache_dir, options, headers, decode, is_file_url(doc["input_url"]), failed, totals)
        by_index = {t["index"]: t for t in remaining}
        still = []
        for p in plans:
            if all(s["key"] not in failed for s in p.sources):
                settled.append(p)
            else:
                still.append(by_index[p.index])
        remaining = uncovered + still
        log.info("level %d (%dx%d): %d holes can be filled, %d still open",
                 li, lower.width, lower.height, len(plans) - len(still), len(remaining))
    if remaining:
        log.warning("%d missing tiles cannot be filled from a lower level (none has them)", len(remaining))
    body = {
        "image": doc["image"],
        "level_index": chosen_index,
        "holes": len(holes),
        "filled": [p.to_json() for p in sorted(settled, key=lambda p: p.index)],
        "unfilled": [{"index": t["index"], "url": t["url"]} for t in sorted(remaining, key=lambda t: t["index"])],
        "downloaded": totals["downloaded"],
        "failed": sorted(failed.values(), key=lambda f: f["url"]),
        "bytes": totals["bytes"],
        "seconds": round(time.monotonic() - started, 3),
    }
    return jsonio.write_step_json(report, "fill", body)


def _download(todo: list[TileRef], cache_dir: Path, options: net.NetOptions, headers: dict[str, str],
              decode: Any, allow_file_urls: bool, failed: dict[str, dict[str, Any]],
              totals: dict[str, int]) -> None:
    """Fetch `todo` into the cache (as the fetch step does); failures are added to `failed` by key."""
    if not todo:
        return
    by_url = {t.url: t for t in todo}

    def on_result(r: tiledownload.TileResult) -> None:
        """Store an arrived tile in the cache, or record its failure."""
        tile = by_url[r.tile.url]
        if r.ok:
            assert r.data is not None
            try:
                cache.store(cache_dir, tile.key, r.data)
            except OSError as exc:
                raise OutputError(f"{cache_dir}: cannot write to the tile cache ({exc.strerror or exc})") from None
            totals["downloaded"] += 1
            totals["bytes"] += len(r.data)
        else:
            failed[tile.key] = {"url": tile.url, "status": r.status, "error": r.error or "unknown error",
                                "attempts": r.attempts}

    tiledownload.download_tiles(
        todo, options, headers, on_result,
        process=(lambda tile, raw: decode(raw, tile.to_json())) if decode is not None else None,
        allow_file_urls=allow_file_urls,
        block_file=Path(cache_dir) / RECORD_NAME,  # a blocked host stops the fill too (exit 4)
    )
