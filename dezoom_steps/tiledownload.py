"""Tile downloads: parallel workers over `net.HttpClient`, throttled, retried, every body checked.

`download_tiles` is what the fetch and fill steps call; nothing here imports `requests`.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping, Protocol

from dezoom_steps import cache, net
from dezoom_steps.urls import is_file_url, is_http


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


class Throttle:
    """Thread-safe minimum interval between request starts, with a pause all threads respect."""

    def __init__(self, interval: float, stop: threading.Event):
        self.interval, self._stop = interval, stop
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until this thread may start a request (spec §7.5: about one per `min_interval`)."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._stop.wait(start - now)

    def hold(self, seconds: float) -> None:
        """Let no request start for `seconds` (a server's Retry-After applies to every tile)."""
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


def check_tile_body(data: bytes, content_type: str = "") -> None:
    """Raise `net.AttemptFailed` unless `data` starts like an image (empty bodies and HTML pages fail)."""
    if not data:
        raise net.AttemptFailed("empty body")
    if cache.sniff_image(data) is None:
        head = data[:512].lstrip().lower()
        if "html" in content_type.lower() or head.startswith((b"<!doctype html", b"<html")):
            raise net.AttemptFailed(f"got an HTML page ({content_type or 'no Content-Type'}), not an image")
        raise net.AttemptFailed(f"not an image ({content_type or 'no Content-Type'}, starts with {data[:8]!r})")


class _TileWorker:
    """Downloads single tiles with retries, backoff with jitter, throttling and body checks."""

    def __init__(self, client: net.HttpClient, headers: Mapping[str, str], throttle: Throttle, stop: threading.Event,
                 process: Callable[[Any, bytes], bytes] | None, allow_file_urls: bool):
        self.client, self.headers, self.throttle, self.stop = client, dict(headers), throttle, stop
        self.process, self.allow_file_urls = process, allow_file_urls

    def attempt(self, tile: TileLike) -> bytes:
        """One attempt: bytes of the tile after `process`, checked; `net.AttemptFailed` otherwise."""
        if is_file_url(tile.url):
            if not self.allow_file_urls:
                raise net.AttemptFailed("file: tile URLs are only allowed when the input itself is a local file",
                               retry=False, attempted=False)
            raw, ctype = net.read_local(tile.url, net.MAX_TILE_BYTES), ""
        elif is_http(tile.url):
            self.throttle.wait()
            resp = self.client.get(tile.url, self.headers, net.MAX_TILE_BYTES)
            if resp.status != 200:
                fail = net.status_failure(resp) if resp.status >= 400 else net.AttemptFailed(f"HTTP {resp.status} {resp.reason}", status=resp.status)
                if fail.retry_after:
                    self.throttle.hold(fail.retry_after)
                raise fail
            raw, ctype = resp.body, resp.headers.get("Content-Type", "")
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
        check_tile_body(data, ctype)
        return data

    def run(self, tile: TileLike) -> TileResult:
        """All attempts of one tile (spec §7.4): r retries, wait = d + d*((x+y)%100)/100, doubling."""
        retries = self.client.options.retries
        delay = self.client.options.retry_delay
        wait_s = delay + delay * ((tile.x + tile.y) % 100) / 100
        attempts = 0
        while True:
            attempts += 1
            try:
                return TileResult(tile, self.attempt(tile), 200, None, attempts)
            except net.AttemptFailed as exc:
                attempts -= 0 if exc.attempted else 1
                # 404/410 and other final statuses are not retried: no retry storm on holes.
                if not exc.retry or attempts > retries or self.stop.is_set():
                    return TileResult(tile, None, exc.status, str(exc), attempts)
                if self.stop.wait(max(wait_s, exc.retry_after or 0.0)):
                    return TileResult(tile, None, exc.status, str(exc), attempts)
                wait_s *= 2


def download_tiles(
    tiles: Iterable[TileLike],
    options: net.NetOptions,
    headers: Mapping[str, str],
    on_result: Callable[[TileResult], None] | None = None,
    *,
    process: Callable[[Any, bytes], bytes] | None = None,
    allow_file_urls: bool = False,
) -> list[TileResult]:
    """Download tiles with `options.parallelism` threads; every result goes to `on_result` at once.

    `headers` are the complete request headers (see `build_headers`). `process(tile, raw)` may
    transform a body (e.g. decrypt) before the image check; its errors count as failed attempts.
    `on_result` runs in the calling thread, in completion order. When it is given, the returned
    results do not keep the tile bytes (memory stays bounded by the tiles in flight).
    """
    stop = threading.Event()
    client = net.HttpClient(options)
    worker = _TileWorker(client, headers, Throttle(options.min_interval, stop), stop, process, allow_file_urls)
    results: list[TileResult] = []
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
                if on_result is not None:
                    on_result(res)
                    res = replace(res, data=None)
                results.append(res)
    finally:
        stop.set()
        executor.shutdown(wait=True, cancel_futures=True)
        client.close()
    return results


__all__ = ["TileLike", "TileResult", "Throttle", "check_tile_body", "download_tiles"]
