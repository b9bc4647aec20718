"""Tile downloads: many transfers in flight from one thread, polite per host, retried by cause, checked.

`download_tiles` is what the fetch and fill steps call. The transfers run on libcurl's multi
interface (netcurl.py); `net.HttpClient` prepares each hop (URL, headers, address policy, TLS,
proxy), so tiles and documents follow the same rules. Bodies are checked in helper processes
(checkworker.py) when the download is large enough and the machine has a CPU to spare, else in
this thread between two turns of the loop. A valid tile is stored once its verdict is in: by
the helper itself when the store is the tile cache (cache.TileStore), else here.
Measured (issue 7): the decode check in helper threads made a 4,345-tile download twice as slow
(the threads and the loop taking turns on the GIL); in a helper process it runs beside the loop.

* politeness (dezoom_steps/politeness.py): per-host concurrency and start interval, Retry-After
  holds, adaptive slow-down on 429/503, and host blocks on anti-bot pages (blockpage.py);
* retries (retrypolicy.py): by cause, with the staggered exponential backoff of spec §7.4 and a
  rate-limited countdown in the log;
* validation (tilecheck.py): only complete, decodable images are returned (and so cached).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol, Sized

from dezoom_steps import blockpage, cache, checkworker, net, netcurl, politeness, retrypolicy, tilecheck
from dezoom_steps.errors import HostBlocked
from dezoom_steps.politeness import HostGate, host_of
from dezoom_steps.urls import is_file_url, is_http, origin_key

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


@dataclass
class _Job:
    """One tile's download: attempts made, its retry backoff, and the request (hop) in flight."""

    tile: Any
    host: str
    backoff: float
    attempts: int = 0
    first: str = ""  # the URL this attempt asked for (redacted values restored)
    current: str = ""  # the URL of the hop in flight
    hops: int = 0
    deadline: float = 0.0
    token: int = 0


class _Downloader:
    """The network loop: per-host gate, transfers, redirects, retries by cause, body checks."""

    def __init__(self, options: net.NetOptions, headers: Mapping[str, str], gate: HostGate,
                 process: Callable[[Any, bytes], bytes] | None, store: Callable[[Any, bytes], None] | None,
                 allow_file_urls: bool, retry_log: retrypolicy.RetryLog, check_workers: int = 0):
        self.options, self.gate, self.process, self.store = options, gate, process, store
        # A cache store is written by the check helpers themselves; any other store runs here.
        self.helper_store = store if isinstance(store, cache.TileStore) else None
        self.checks = (checkworker.CheckPool(check_workers, self.helper_store and self.helper_store.directory)
                       if check_workers > 0 else None)
        self.allow_file_urls, self.retry_log = allow_file_urls, retry_log
        self.client = net.HttpClient(options)  # prepares each hop; the transfers run here
        self.base = self.client.base_headers(headers)
        self.transfers = netcurl.Transfers(options.parallelism, options.connect_timeout, options.max_idle_per_host)
        self.waiting: dict[str, deque[_Job]] = {}  # by host, jobs ready to start
        self.timers: list[tuple[float, int, _Job]] = []  # retries waiting for their time
        self.seq = itertools.count()
        self.hop_cache: dict[str, tuple[dict[str, str], bool | str, str | None]] = {}
        self.hosts: dict[str, str] = {}
        self.results: list[TileResult] = []
        self.blocked_hosts: dict[str, None] = {}
        self.open = 0  # tiles not finished yet
        self.on_result: Callable[[TileResult], None] | None = None

    # --- the loop ------------------------------------------------------------------------------

    def run(self, tiles: Iterable[TileLike], on_result: Callable[[TileResult], None] | None) -> list[TileResult]:
        """Download every tile; each result goes to `on_result` (this thread) as soon as it is final."""
        with netcurl.deferred_interrupts() as interrupts:
            return self._run(tiles, on_result, interrupts)

    def _run(self, tiles: Iterable[TileLike], on_result: Callable[[TileResult], None] | None,
             interrupts: netcurl.Interrupts) -> list[TileResult]:
        self.on_result = on_result
        todo = iter(tiles)
        window = max(64, self.options.parallelism * 4)  # tiles in progress: bounds memory
        exhausted = False
        while True:
            while not exhausted and self.open < window:
                tile = next(todo, None)
                if tile is None:
                    exhausted = True
                else:
                    self.open += 1
                    self._admit(tile)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                job = heapq.heappop(self.timers)[2]
                self.waiting.setdefault(job.host, deque()).append(job)
            wake = self._start_ready(now)
            if exhausted and self.open == 0:
                break
            if self.timers:
                wake = min(wake, self.timers[0][0] - now)
            wake = max(0.0, min(wake, 1.0))
            checking = []
            if self.checks is not None:
                self.checks.flush()  # this turn's bodies, in one write
                checking = self.checks.fds()
            if self.transfers.active:
                # Verdicts are read at every turn; they wake the loop only when it waits for them (the
                # window is full): waking at each one made four times as many turns of the loop (issue 7).
                outcomes = self.transfers.poll(wake, checking if self.open >= window else None)
                interrupts.check()  # Ctrl-C: out of the loop now (the transfers are closed by `close`)
                for outcome in outcomes:
                    self._arrived(outcome)
            elif checking:
                self.checks.wait(wake)  # type: ignore[union-attr]
            elif wake > 0 and (self.waiting or self.timers):
                time.sleep(wake)  # only the gate or a retry's backoff can move things on
            interrupts.check()
            if checking:
                self._verdicts()
        return self.results

    def close(self) -> None:
        """Stop the transfers and close their connections; end the check helpers."""
        self.gate.close()
        self.transfers.close()
        if self.checks is not None:
            self.checks.close()

    def _admit(self, tile: TileLike) -> None:
        """A new tile: local files go to the pool, http(s) tiles wait for their host's gate."""
        job = _Job(tile, self._host(tile.url), retrypolicy.first_delay(self.options.retry_delay, tile.x, tile.y))
        if is_file_url(tile.url):
            job.attempts += 1
            if not self.allow_file_urls:
                self._failed(job, net.AttemptFailed("file: tile URLs are only allowed when the input itself is a "
                                                    "local file", retry=False, attempted=False))
                return
            self._check(job, None, "")
        elif is_http(tile.url):
            self.waiting.setdefault(job.host, deque()).append(job)
        else:
            job.attempts += 1
            self._failed(job, net.AttemptFailed("unsupported URL scheme (expected http, https or file)",
                                                retry=False, attempted=False))

    def _host(self, url: str) -> str:
        """`host_of(url)`, parsed once per scheme://authority (tiles of an image share a few)."""
        origin = origin_key(url)
        got = self.hosts.get(origin)
        if got is None:
            got = self.hosts[origin] = host_of(url)
        return got

    def _start_ready(self, now: float) -> float:
        """Start what the gate and free transfer slots allow; returns how long until the gate may allow more."""
        wake = 1.0
        for host in list(self.waiting):
            jobs = self.waiting[host]
            while jobs and self.transfers.free:
                try:
                    token, wait_s = self.gate.try_acquire(host)
                except HostBlocked as err:
                    while jobs:
                        job = jobs.popleft()
                        self._finish(TileResult(job.tile, None, None, _blocked_text(err), job.attempts))
                    break
                if token is None:
                    wake = min(wake, wait_s)
                    break
                job = jobs.popleft()
                job.token = token
                job.attempts += 1
                self._first_hop(job, now)
            if not jobs:
                del self.waiting[host]
        return wake

    def _first_hop(self, job: _Job, now: float) -> None:
        job.first = job.current = self.client.request_url(job.tile.url)
        job.hops = 0
        job.deadline = now + self.options.timeout
        self._send(job)

    def _send(self, job: _Job) -> None:
        """Start the hop `job.current` (checked by the address policy first)."""
        remaining = job.deadline - time.monotonic()
        if remaining <= 0:
            self._ended(job, None, net.AttemptFailed(f"timed out after {self.options.timeout:g} s"))
            return
        try:
            self.client.check_address(job.current, job.first)
        except net.AttemptFailed as exc:
            self._ended(job, None, exc)
            return
        headers, verify, proxy = self._hop_settings(job)
        transfer = netcurl.Transfer(job, job.current, self.options.max_tile_bytes, "--max-tile-bytes", remaining,
                                    self.options.timeout)
        self.transfers.start(transfer, headers, verify, proxy)

    def _hop_settings(self, job: _Job) -> tuple[dict[str, str], bool | str, str | None]:
        """Headers, TLS verification and proxy of a hop; the same for every first hop to one origin."""
        url = job.current
        origin = origin_key(url)
        cacheable = job.hops == 0 and not self.client.has_cookie_jar
        got = self.hop_cache.get(origin) if cacheable else None
        if got is None:
            got = (self.client.hop_headers(self.base, url, job.first), self.client.verify(url),
                   self.client.proxy_for(url))
            if cacheable:
                self.hop_cache[origin] = got
        return got

    # --- answers ---------------------------------------------------------------------------------

    def _arrived(self, outcome: netcurl.Outcome) -> None:
        """A hop ended: follow a redirect, or judge the answer."""
        job: _Job = outcome.transfer.key
        resp = outcome.response
        if resp is None:
            self._ended(job, None, outcome.failure)
            return
        try:
            nxt = net.redirect_target(resp, job.hops)
        except net.AttemptFailed as exc:
            self._ended(job, resp.status, exc)
            return
        if nxt is not None:
            job.hops += 1
            job.current = nxt
            self._send(job)
            return
        self._ended(job, resp.status, None, resp)

    def _ended(self, job: _Job, status: int | None, failure: BaseException | None,
               resp: net.Response | None = None) -> None:
        """The attempt's request is over: free the gate, then judge the answer or the failure."""
        paced = False
        if resp is not None:
            # A Retry-After sets the pace itself (the hold below): no adaptive slow-down on top of it.
            paced = resp.status in net.RETRY_AFTER_STATUS and bool(resp.headers.get("Retry-After"))
        self.gate.release(job.host, job.token, status, status == 200, paced=paced)
        if failure is None and resp is not None:
            try:
                body, ctype = self._judge(job, resp)
            except (net.AttemptFailed, _Challenged) as exc:
                failure = exc
            else:
                self._check(job, body, ctype)
                return
        self._failed(job, failure)

    def _judge(self, job: _Job, resp: net.Response) -> tuple[bytes, str]:
        """(body, Content-Type) of a 200; `_Challenged` for an anti-bot page, `AttemptFailed` otherwise."""
        kind = blockpage.challenge_kind(resp.status, resp.url, resp.headers, resp.body)
        if kind is not None:
            asked = net.parse_retry_after(resp.headers.get("Retry-After"), cap=float("inf"))
            block = self.gate.block(politeness.make_block(job.tile.url, kind, asked))
            raise _Challenged(_blocked_text(block.error()), resp.status)
        if resp.status != 200:
            fail = (net.status_failure(resp) if resp.status >= 400
                    else net.AttemptFailed(f"HTTP {resp.status} {resp.reason}", status=resp.status))
            fail.retry_after = None
            if resp.status in net.RETRY_AFTER_STATUS:
                asked = net.parse_retry_after(resp.headers.get("Retry-After"), cap=float("inf"))
                if asked:
                    # A Retry-After holds every request to this host, up to --max-retry-after.
                    self.gate.hold(job.host, min(asked, self.options.max_retry_after))
                    fail.retry_after = asked
            raise fail
        return resp.body, resp.headers.get("Content-Type", "")

    def _failed(self, job: _Job, exc: BaseException | None) -> None:
        """A failed attempt: retry it later (by cause, spec §7.4 backoff) or give the tile up."""
        if isinstance(exc, _Challenged):
            self._finish(TileResult(job.tile, None, exc.status, str(exc), job.attempts))
            return
        if not isinstance(exc, net.AttemptFailed):
            raise exc if exc is not None else RuntimeError("a tile attempt ended without a result")
        if not exc.attempted:
            job.attempts -= 1
        opts = self.options
        allowed = retrypolicy.retries_allowed(exc.status, exc.retry, opts.retries)
        if not exc.attempted or job.attempts > allowed:
            self._finish(TileResult(job.tile, None, exc.status, str(exc), job.attempts))
            return
        wait_s, note = retrypolicy.retry_wait(job.backoff, exc.retry_after, opts.max_retry_after)
        self.retry_log.retrying(job.host, job.tile.url, wait_s, retrypolicy.cause_of(exc.status, str(exc)),
                                job.attempts + 1, allowed + 1, note)
        job.backoff *= 2
        heapq.heappush(self.timers, (time.monotonic() + wait_s, next(self.seq), job))

    # --- bodies ------------------------------------------------------------------------------------

    def _check(self, job: _Job, raw: bytes | None, ctype: str) -> None:
        """Read a local tile, post-process, check and store a body; then the tile is done (or retried)."""
        try:
            if raw is None:
                raw = net.read_local(job.tile.url, self.options.max_tile_bytes)
            if not raw:
                raise net.AttemptFailed("empty body")
            data = raw
            if self.process is not None:
                try:
                    data = self.process(job.tile, raw)
                except Exception as exc:  # a decoder's failure is retried like a download's (spec §7.4)
                    raise net.AttemptFailed(f"unable to process the downloaded tile: {exc}") from None
            if self.checks is not None and self.checks.usable:
                name = self.helper_store.key_of(job.tile) if self.helper_store is not None else ""
                self.checks.submit((job, data), data, ctype, self.options.tile_check, name)
                return  # the verdict comes back through `_verdicts`
            check_tile_body(data, ctype, self.options.tile_check)
        except net.AttemptFailed as exc:
            self._failed(job, exc)
            return
        self._checked(job, data)

    def _verdicts(self) -> None:
        """Tiles whose check helper has answered: stored and done, or failed attempts."""
        assert self.checks is not None
        try:
            verdicts = self.checks.verdicts()
        except checkworker.StoreFailed as exc:
            assert self.helper_store is not None
            raise self.helper_store.failure(str(exc)) from None
        for (job, data), why in verdicts:
            if why is None:
                self._checked(job, data, stored=self.helper_store is not None)
            else:
                self._failed(job, net.AttemptFailed(why))

    def _checked(self, job: _Job, data: bytes, stored: bool = False) -> None:
        """A valid body: into the store (unless a helper `stored` it), then the tile is done."""
        if self.store is not None and not stored:
            self.store(job.tile, data)  # its errors (e.g. a full disk) stop the download
        self._finish(TileResult(job.tile, data, 200, None, job.attempts))

    def _finish(self, res: TileResult) -> None:
        """A tile's final result: to `on_result` at once, and into the list (without bytes when streamed)."""
        self.open -= 1
        if res.blocked:
            self.blocked_hosts.setdefault(host_of(res.tile.url))
        if self.on_result is not None:
            self.on_result(res)
            res = TileResult(res.tile, None, res.status, res.error, res.attempts)
        self.results.append(res)


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


def _count_and_area(tiles: Iterable[TileLike]) -> tuple[int | None, int | None]:
    """How many tiles, and their total area in pixels (None when a tile has no size: `w`, `h`)."""
    if not isinstance(tiles, Sized):
        return None, None
    try:
        return len(tiles), sum(t.w * t.h for t in tiles)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        return len(tiles), None


def download_tiles(
    tiles: Iterable[TileLike],
    options: net.NetOptions,
    headers: Mapping[str, str],
    on_result: Callable[[TileResult], None] | None = None,
    *,
    process: Callable[[Any, bytes], bytes] | None = None,
    store: Callable[[Any, bytes], None] | None = None,
    allow_file_urls: bool = False,
    block_file: str | os.PathLike[str] | None = None,
) -> list[TileResult]:
    """Download tiles, `options.parallelism` at a time; every result goes to `on_result` at once.

    `headers` are the complete request headers (see `build_headers`). `process(tile, raw)` may
    transform a body (e.g. decrypt) before the image check; its errors count as failed attempts.
    `store(tile, data)` runs for each checked tile before its result is reported (e.g. the
    cache write); its errors stop the download. Bodies are checked in `options.check_workers`
    helper processes (None: `checkworker.default_workers`, which counts `tiles` and their area when it is
    a list). `on_result` runs in the
    calling thread, in completion order. When it is given, the returned results do not keep the
    tile bytes (memory stays bounded by the tiles in progress).

    `block_file` is the blocked-hosts record to honour and update (`--block-file` wins). When a
    host showed an anti-bot page, its remaining tiles are reported as "blocked: ..." without a
    request, and HostBlocked (exit 4; `.results` holds the results) is raised at the end.
    """
    record = block_record(options, block_file)
    gate = HostGate(options.host_parallelism or options.parallelism, options.min_interval, record)
    retry_log = retrypolicy.RetryLog()
    workers = options.check_workers
    if workers is None:
        workers = checkworker.default_workers(*_count_and_area(tiles))
    loop = _Downloader(options, headers, gate, process, store, allow_file_urls, retry_log, workers)
    try:
        results = loop.run(tiles, on_result)
    finally:
        loop.close()
    retry_log.summary()
    for host in loop.blocked_hosts:
        block = gate.blocked(host)
        if block is not None:
            err = block.error()
            err.results = results
            raise err
    return results


__all__ = ["BLOCKED", "TileLike", "TileResult", "block_record", "check_tile_body", "download_tiles"]
