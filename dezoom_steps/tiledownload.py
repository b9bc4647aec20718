"""Tile downloads: parallel workers over `net.HttpClient`, polite per host, retried by cause, checked.

`download_tiles` is what the fetch and fill steps call; nothing here imports `requests`.

* politeness (dezoom_steps/politeness.py): per-host concurrency and start interval, Retry-After
  holds, adaptive slow-down on 429/503, and host blocks on anti-bot pages (blockpage.py);
* retries (retrypolicy.py): by cause, with the staggered exponential backoff of spec §7.4 and a
  rate-limited countdown in the log;
* validation (tilecheck.py): only complete, decodable images are returned (and so cached).
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping, Protocol

from dezoom_steps import blockpage, net, politeness, retrypolicy, tilecheck
from dezoom_steps.errors import HostBlocked
from dezoom_steps.politeness import GateClosed, HostGate, host_of
from dezoom_steps.urls import is_file_url, is_http

log = logging.getLogger(__name__)
BLOCKED = "blocked"  # the first word of the error of a tile not fetched because its host blocks us


class TileLike(Protocol):
    """What the downloader needs of a tile: its index, URL and canvas position."""

    index: int
    url: str
    x: int
    y: int


@dataclass
class TileResult:
    """The outcome of one tile: its bytes, or the last error; HTTP status and attempts made."""

    tile: Any
    data: bytes | None
    status: int | None
    error: str | None
    attempts: int

    @property
    def ok(self) -> bool:
        """True when the tile's bytes were received and checked (`data` may since be released)."""
        return self.error is None

    @property
    def blocked(self) -> bool:
        """True when the tile was not fetched because its host showed an anti-bot page."""
        return (self.error or "").startswith(BLOCKED + ":")


class _NotSent(Exception):
    """An attempt refused before any request: host blocked, or the download stopping."""


class _Challenged(Exception):
    """This tile's own request got an anti-bot page (the host is now blocked)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def check_tile_body(data: bytes, content_type: str = "", mode: str = "decode") -> None:
    """Raise `net.AttemptFailed` unless `data` is a valid tile image (see `tilecheck.check_tile`)."""
    try:
        tilecheck.check_tile(data, content_type, mode=mode)
    except tilecheck.TileInvalid as exc:
        raise net.AttemptFailed(str(exc)) from None


def _blocked_text(err: HostBlocked) -> str:
    """The error of a tile left out because of a block: 'blocked: HOST showed ... at URL'."""
    return f"{BLOCKED}: {err.host} answered {err.url} with an anti-bot page; not fetched"


class _TileWorker:
    """Downloads single tiles: per-host gate, retries by cause with backoff, body checks."""

    def __init__(self, client: net.HttpClient, headers: Mapping[str, str], gate: HostGate, stop: threading.Event,
                 process: Callable[[Any, bytes], bytes] | None, allow_file_urls: bool, retry_log: retrypolicy.RetryLog):
        self.client, self.headers, self.gate, self.stop = client, dict(headers), gate, stop
        self.process, self.allow_file_urls, self.retry_log = process, allow_file_urls, retry_log
        self.options = client.options

    def _get(self, url: str) -> tuple[bytes, str]:
        """One polite request of `url`: (body, Content-Type) of a 200, `AttemptFailed` otherwise."""
        host = host_of(url)
        try:
            token = self.gate.acquire(host)
        except HostBlocked as err:
            raise _NotSent(_blocked_text(err)) from None
        except GateClosed:
            raise _NotSent("not fetched: the download stopped") from None
        status: int | None = None
        paced = False
        try:
            resp = self.client.get(url, self.headers, self.client.options.max_tile_bytes, "--max-tile-bytes")
            status = resp.status
            # A Retry-After sets the pace itself (the hold below): no adaptive slow-down on top of it.
            paced = status in net.RETRY_AFTER_STATUS and bool(resp.headers.get("Retry-After"))
        finally:
            self.gate.release(host, token, status, status == 200, paced=paced)
        kind = blockpage.challenge_kind(resp.status, resp.url, resp.headers, resp.body)
        if kind is not None:
            asked = net.parse_retry_after(resp.headers.get("Retry-After"), cap=float("inf"))
            block = self.gate.block(politeness.make_block(url, kind, asked))
            raise _Challenged(_blocked_text(block.error()), resp.status)
        if resp.status != 200:
            fail = (net.status_failure(resp) if resp.status >= 400
                    else net.AttemptFailed(f"HTTP {resp.status} {resp.reason}", status=resp.status))
            fail.retry_after = None
            if resp.status in net.RETRY_AFTER_STATUS:
                asked = net.parse_retry_after(resp.headers.get("Retry-After"), cap=float("inf"))
                if asked:
                    # A Retry-After holds every request to this host, up to --max-retry-after.
                    self.gate.hold(host, min(asked, self.options.max_retry_after))
                    fail.retry_after = asked
            raise fail
        return resp.body, resp.headers.get("Content-Type", "")

    def attempt(self, tile: TileLike) -> bytes:
        """One attempt: bytes of the tile after `process`, checked; `net.AttemptFailed` otherwise."""
        if is_file_url(tile.url):
            if not self.allow_file_urls:
                raise net.AttemptFailed("file: tile URLs are only allowed when the input itself is a local file",
                                        retry=False, attempted=False)
            raw, ctype = net.read_local(tile.url, self.client.options.max_tile_bytes), ""
        elif is_http(tile.url):
            raw, ctype = self._get(tile.url)
        else:
            raise net.AttemptFailed("unsupported URL scheme (expected http, https or file)", retry=False, attempted=False)
        if not raw:
            raise net.AttemptFailed("empty body")
        data = raw
        if self.process is not None:
            try:
                data = self.process(tile, raw)
            except Exception as exc:  # a decoder's failure is retried like a download's (spec §7.4)
                raise net.AttemptFailed(f"unable to process the downloaded tile: {exc}") from None
        check_tile_body(data, ctype, self.options.tile_check)
        return data

    def run(self, tile: TileLike) -> TileResult:
        """All attempts of one tile: retries by cause (retrypolicy), wait = d + d*((x+y)%100)/100, doubling."""
        opts = self.options
        backoff = retrypolicy.first_delay(opts.retry_delay, tile.x, tile.y)
        attempts = 0
        while True:
            attempts += 1
            try:
                return TileResult(tile, self.attempt(tile), 200, None, attempts)
            except _NotSent as exc:
                return TileResult(tile, None, None, str(exc), attempts - 1)
            except _Challenged as exc:
                return TileResult(tile, None, exc.status, str(exc), attempts)
            except net.AttemptFailed as exc:
                attempts -= 0 if exc.attempted else 1
                allowed = retrypolicy.retries_allowed(exc.status, exc.retry, opts.retries)
                if not exc.attempted or attempts > allowed or self.stop.is_set():
                    return TileResult(tile, None, exc.status, str(exc), attempts)
                wait_s, note = retrypolicy.retry_wait(backoff, exc.retry_after, opts.max_retry_after)
                self.retry_log.retrying(host_of(tile.url), tile.url, wait_s, retrypolicy.cause_of(exc.status, str(exc)),
                                        attempts + 1, allowed + 1, note)
                if self.stop.wait(wait_s):
                    return TileResult(tile, None, exc.status, str(exc), attempts)
                backoff *= 2


def block_record(options: net.NetOptions, default: str | os.PathLike[str] | None) -> politeness.BlockRecord | None:
    """The blocked-hosts record: `--block-file`, else `default` (the tile cache's), else none.

    With `--ignore-block` the recorded blocks are forgotten first.
    """
    path = options.block_file or default
    if path is None:
        return None
    record = politeness.BlockRecord(path)
    if options.ignore_block:
        record.clear()
    return record


def download_tiles(
    tiles: Iterable[TileLike],
    options: net.NetOptions,
    headers: Mapping[str, str],
    on_result: Callable[[TileResult], None] | None = None,
    *,
    process: Callable[[Any, bytes], bytes] | None = None,
    allow_file_urls: bool = False,
    block_file: str | os.PathLike[str] | None = None,
) -> list[TileResult]:
    """Download tiles with `options.parallelism` threads; every result goes to `on_result` at once.

    `headers` are the complete request headers (see `build_headers`). `process(tile, raw)` may
    transform a body (e.g. decrypt) before the image check; its errors count as failed attempts.
    `on_result` runs in the calling thread, in completion order. When it is given, the returned
    results do not keep the tile bytes (memory stays bounded by the tiles in flight).

    `block_file` is the blocked-hosts record to honour and update (`--block-file` wins). When a
    host showed an anti-bot page, its remaining tiles are reported as "blocked: ..." without a
    request, and HostBlocked (exit 4; `.results` holds the results) is raised at the end.
    """
    stop = threading.Event()
    client = net.HttpClient(options)
    record = block_record(options, block_file)
    gate = HostGate(options.host_parallelism or options.parallelism, options.min_interval, record)
    retry_log = retrypolicy.RetryLog()
    worker = _TileWorker(client, headers, gate, stop, process, allow_file_urls, retry_log)
    results: list[TileResult] = []
    blocked_hosts: dict[str, None] = {}
    pending: set[Future[TileResult]] = set()
    todo = iter(tiles)
    window = options.parallelism * 2  # futures in flight or queued; bounds memory and cancellation
    executor = ThreadPoolExecutor(max_workers=options.parallelism, thread_name_prefix="tile")
    try:
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < window:
                tile = next(todo, None)
                if tile is None:
                    exhausted = True
                else:
                    pending.add(executor.submit(worker.run, tile))
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: f.result().tile.index):
                res = fut.result()
                if res.blocked:
                    blocked_hosts.setdefault(host_of(res.tile.url))
                if on_result is not None:
                    on_result(res)
                    res = replace(res, data=None)
                results.append(res)
    finally:
        stop.set()
        gate.close()
        executor.shutdown(wait=True, cancel_futures=True)
        client.close()
    retry_log.summary()
    for host in blocked_hosts:
        block = gate.blocked(host)
        if block is not None:
            err = block.error()
            err.results = results
            raise err
    return results


__all__ = ["BLOCKED", "TileLike", "TileResult", "block_record", "check_tile_body", "download_tiles"]
