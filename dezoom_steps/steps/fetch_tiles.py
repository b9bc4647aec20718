"""Step fetch_tiles: download one shard of an image's tiles into the tile cache.

Reads tiles.json, takes the tiles with `index % shards == shard`, skips those already valid in
the cache, downloads the others and writes each one to the cache atomically as soon as it has
arrived and passed its checks (a killed run loses only the tiles in flight). Writes the shard
report fetch/shard-K.json. Failed tiles do not raise: the report lists them and stitch leaves
them black.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

from dataclasses import replace

from dezoom_steps import cache, jsonio, net, scope, tiledownload
from dezoom_steps.dezoomers import by_name
from dezoom_steps.dezoomers.base import Dezoomer
from dezoom_steps.errors import HostBlocked, InputError
from dezoom_steps.fill import require_all
from dezoom_steps.model import TileRef
from dezoom_steps.politeness import RECORD_NAME
from dezoom_steps.urls import is_file_url

log = logging.getLogger(__name__)
MAX_LOGGED_FAILURES = 20  # one line per missing tile, up to this many

Decode = Callable[[bytes, dict[str, Any]], bytes]


def shard_tiles(tiles: list[dict[str, Any]], shard: int, shards: int) -> list[dict[str, Any]]:
    """The tiles of shard `shard` out of `shards` (tile index modulo shards)."""
    if shards < 1 or not 0 <= shard < shards:
        raise InputError(f"invalid shard {shard} of {shards} (expected 0 <= shard < shards)")
    return [t for t in tiles if t["index"] % shards == shard]


def dezoomer_decode(name: str) -> Decode | None:
    """The `decode_tile` hook of the dezoomer called `name` when it has one (e.g. decryption), else None.

    Spec §8: raw bytes -> "optional dezoomer post-processing: GAC decryption" -> image decoder.
    """
    try:
        dezoomer = by_name(name)
    except InputError:  # a tiles.json written by something else than a registered dezoomer
        return None
    if type(dezoomer).decode_tile is Dezoomer.decode_tile:
        return None
    return lambda raw, tile: dezoomer.decode_tile(raw, TileRef.from_json(tile))


def _progress_bar(enabled: bool, total: int, initial: int, desc: str) -> Any:
    """A tqdm bar on stderr when asked for and stderr is a terminal; otherwise None."""
    if not (enabled and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="tile", file=sys.stderr, leave=False)


def fetch_tiles(
    *,
    tiles_json: Path,
    cache_dir: Path,
    report: Path,
    shard: int = 0,
    shards: int = 1,
    options: net.NetOptions | None = None,
    progress: bool = False,
    decode: Decode | None = None,
    on_missing: str = "blank",
    tiles_doc: dict[str, Any] | None = None,
    on_stored: Callable[[str, bytes], None] | None = None,
) -> dict[str, Any]:
    """Fetch the missing tiles of one shard into `cache_dir`; write and return the shard report.

    With `on_missing="fail"` a tile that could not be fetched raises TilesMissing (exit 6) once
    the report is written: the workflow stops this image before stitching, and a rerun fetches
    only the missing tiles.

    `decode(raw, tile_json)` post-processes a body before its image check (e.g. decryption);
    its output is what the cache stores (spec §7.7). When it is not given, the `decode_tile`
    of the dezoomer named in tiles.json is used if that dezoomer has one. `tiles_doc`: tiles.json
    already read (in-process callers), else it is read from `tiles_json`. `on_stored(key, data)`
    runs for each tile this call stored in the cache, with its cache key and bytes.
    """
    started = time.monotonic()
    options = options or net.NetOptions()
    doc = tiles_doc if tiles_doc is not None else jsonio.read_step_json(tiles_json, "tiles")
    # The user's input URL scopes headers, cookies and the address policy; tiles.json holds it
    # redacted, --input-url gives back its real query values (scope.real_input_url).
    options = replace(options, input_url=scope.real_input_url(doc["input_url"], options.input_url))
    if decode is None:
        decode = dezoomer_decode(doc["dezoomer"])
    assigned = shard_tiles(doc["tiles"], shard, shards)
    have = cache.cached_keys(cache_dir, [t["key"] for t in assigned])
    todo = [t for t in assigned if t["key"] not in have]
    by_index = {t["index"]: t for t in todo}
    for host in scope.other_hosts(doc["input_url"], [t["url"] for t in todo]):
        # Issue 6: "a warning when tiles come from another host than the metadata" (field notes S2, S6).
        log.warning("tiles come from %s, not from the input's host %s: -H headers and --cookies for the input "
                    "are not sent there unless --header-host %s", host, scope.host_of(doc["input_url"]) or "(local file)",
                    host)
    # Spec §7.1/§7.2: defaults -> Referer (input URL) -> level headers -> user -H headers.
    headers = net.build_headers(options, referer=doc["input_url"], level_headers=doc["headers"])

    def process(tile: TileRef, raw: bytes) -> bytes:
        return decode(raw, by_index[tile.index]) if decode is not None else raw
    failed: list[dict[str, Any]] = []
    totals = {"downloaded": 0, "bytes": 0}
    bar = _progress_bar(progress, len(assigned), len(assigned) - len(todo), doc["image"])

    store = cache.TileStore(cache_dir, lambda tile: by_index[tile.index]["key"])  # before on_result sees the tile

    def on_result(res: tiledownload.TileResult) -> None:
        tile = res.tile
        if res.ok:
            assert res.data is not None
            totals["downloaded"] += 1
            totals["bytes"] += len(res.data)
            if on_stored is not None:
                on_stored(by_index[tile.index]["key"], res.data)
        else:
            failed.append({"index": tile.index, "url": tile.url, "status": res.status,
                           "error": res.error or "unknown error", "attempts": res.attempts})
        if bar is not None:
            bar.update(1)

    blocked: HostBlocked | None = None
    try:
        tiledownload.download_tiles(
            [TileRef.from_json(t) for t in todo], options, headers, on_result,
            process=process if decode is not None else None,
            store=store,
            # Field notes S3: local files only when the user's input is itself a local file.
            allow_file_urls=is_file_url(doc["input_url"]),
            block_file=Path(cache_dir) / RECORD_NAME,
        )
    except HostBlocked as exc:  # an anti-bot page: the report is written first, then exit 4
        blocked = exc
    finally:
        if bar is not None:
            bar.close()
    body = {
        "shard": shard,
        "shards": shards,
        "assigned": len(assigned),
        "cached": len(assigned) - len(todo),
        "downloaded": totals["downloaded"],
        "failed": sorted(failed, key=lambda f: f["index"]),
        "bytes": totals["bytes"],
        "seconds": round(time.monotonic() - started, 3),
    }
    written = jsonio.write_step_json(report, "fetch", body)
    for f in body["failed"][:MAX_LOGGED_FAILURES]:
        log.info("tile not downloaded: %s: %s", f["url"], f["error"])
    if len(failed) > MAX_LOGGED_FAILURES:
        log.info("... and %d more tiles not downloaded (all are listed in %s)",
                    len(failed) - MAX_LOGGED_FAILURES, report)
    if blocked is not None:
        raise blocked
    if on_missing == "fail":
        require_all(doc["input_url"], body["failed"], len(assigned))
    return written
