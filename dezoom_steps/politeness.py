"""Per-host politeness: a gate spacing and bounding requests per host, adaptive, and host blocks.

Field notes §1 row 5 ("A per-host token bucket with adaptive back-off on 429/503 that honours
Retry-After. Detect captcha/'sorry' pages and stop cleanly") and §5 S11 ("Conservative
defaults, per-host budgets, honour Retry-After").

`HostGate` lets a request to a host start only when (1) fewer than the host's allowed number
of requests are in flight, (2) `interval` seconds passed since the last start on that host and
(3) no Retry-After hold is running. On 429/503 the host's concurrency halves and its interval
doubles (bounded) unless the answer carried a Retry-After (then the server's own pause
applies); after RECOVER_AFTER successes in a row they step back towards the configured values
(AIMD). A blocked host (anti-bot page) gets no further request.

`BlockRecord` keeps blocks in a small JSON file (by default blocked-hosts.json in the tile
cache), so other fetch jobs stop at once, without a request, until the stated time.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from dezoom_steps.errors import HostBlocked
from dezoom_steps.jsonio import atomic_write_bytes

log = logging.getLogger(__name__)

RECOVER_AFTER = 10  # successes in a row before one step back towards full speed
SLOW_INTERVAL_FLOOR = 0.1  # s; the first slow-down spaces requests at least this much
MAX_SLOW_INTERVAL = 10.0  # s; the adaptive interval never grows beyond this
DEFAULT_BLOCK_SECONDS = 3600.0  # a block without Retry-After: try again in one hour
RECORD_POLL = 1.0  # s between two reads of the block record by a running job
RECORD_NAME = "blocked-hosts.json"


def host_of(url: str) -> str:
    """The politeness key of a URL: its host, with the port when one is given."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


def _clock_text(when: float, now: float) -> str:
    """'11:40 UTC (in 1 hour)' for a Unix time `when`."""
    stamp = datetime.fromtimestamp(when, timezone.utc)
    fmt = "%H:%M:%S UTC" if when - now < 600 else "%H:%M UTC"
    if when - now >= 86400:
        fmt = "%Y-%m-%d %H:%M UTC"
    left = max(0.0, when - now)
    if left >= 5400:
        span = f"{left / 3600:.1f} hours"
    elif left >= 3000:
        span = "1 hour"
    elif left >= 90:
        span = f"{round(left / 60)} minutes"
    else:
        span = f"{round(left)} s"
    return f"{stamp.strftime(fmt)} (in {span})"


@dataclass(frozen=True)
class Block:
    """A host that showed an anti-bot page: where, what, and until when (Unix time)."""

    host: str
    url: str
    kind: str
    retry_at: float

    def message(self, now: float | None = None) -> str:
        """The one line users see."""
        now = time.time() if now is None else now
        return (f"{self.host} is blocking us: {self.url} answered with {self.kind}; no more requests "
                f"go to {self.host}. Try again after {_clock_text(self.retry_at, now)}; cached tiles "
                "are kept, rerun to resume (--ignore-block forgets this block)")

    def error(self) -> HostBlocked:
        """The exception (exit code 4) for this block."""
        return HostBlocked(self.message(), host=self.host, url=self.url, retry_at=self.retry_at)


class BlockRecord:
    """Blocked hosts remembered in a JSON file: {host: {"url", "kind", "retry_at"}}."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._lock = threading.Lock()

    def load(self) -> dict[str, Block]:
        """The blocks in the file (an unreadable or malformed file counts as empty)."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        blocks: dict[str, Block] = {}
        if isinstance(raw, dict):
            for host, entry in raw.items():
                try:
                    blocks[host] = Block(host, str(entry["url"]), str(entry["kind"]), float(entry["retry_at"]))
                except (KeyError, TypeError, ValueError):
                    continue
        return blocks

    def active(self, now: float | None = None) -> dict[str, Block]:
        """The blocks whose time has not come yet."""
        now = time.time() if now is None else now
        return {h: b for h, b in self.load().items() if b.retry_at > now}

    def add(self, block: Block) -> None:
        """Record `block` (merged with the file's other, still active, blocks; atomic write)."""
        with self._lock:
            blocks = self.active()
            blocks[block.host] = block
            self._write(blocks)

    def clear(self) -> None:
        """Forget every block (`--ignore-block`)."""
        with self._lock:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def _write(self, blocks: dict[str, Block]) -> None:
        doc = {h: {"url": b.url, "kind": b.kind, "retry_at": b.retry_at,
                   "retry_after_utc": datetime.fromtimestamp(b.retry_at, timezone.utc).isoformat(timespec="seconds")}
               for h, b in sorted(blocks.items())}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, (json.dumps(doc, indent=1) + "\n").encode())


class GateClosed(Exception):
    """The download is stopping: no more requests."""


@dataclass
class _Host:
    """Politeness state of one host."""

    limit: int
    interval: float
    in_flight: int = 0
    next_start: float = 0.0  # monotonic time before which no request starts
    epoch: int = 0  # counts slow-downs; a 429 of a request started before the last one is not counted again
    streak: int = 0


class HostGate:
    """Per-host concurrency limit, start interval, Retry-After holds, adaptive slow-down and blocks."""

    def __init__(self, parallelism: int, interval: float, record: BlockRecord | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.parallelism, self.interval, self.record, self.clock = parallelism, interval, record, clock
        self._cond = threading.Condition()
        self._hosts: dict[str, _Host] = {}
        self._blocks: dict[str, Block] = {}
        self._closed = False
        self._polled = -1e18
        if record is not None:
            self._blocks.update(record.active())

    def _host(self, host: str) -> _Host:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host(self.parallelism, self.interval)
        return state

    def blocked(self, host: str) -> Block | None:
        """The block of `host`, if it is blocked (also by another job, seen in the record)."""
        with self._cond:
            self._poll_record()
            return self._blocks.get(host)

    def _poll_record(self) -> None:
        """Read the block record at most once per RECORD_POLL seconds (other jobs may add blocks)."""
        if self.record is None:
            return
        now = self.clock()
        if now - self._polled >= RECORD_POLL:
            self._polled = now
            for host, block in self.record.active().items():
                self._blocks.setdefault(host, block)

    def acquire(self, host: str) -> int:
        """Wait until a request to `host` may start; returns a token for `release`.

        Raises HostBlocked when the host is blocked, GateClosed when the download stops.
        """
        with self._cond:
            while True:
                token, wait = self.try_acquire(host)
                if token is not None:
                    return token
                self._cond.wait(wait)

    def try_acquire(self, host: str) -> tuple[int | None, float]:
        """Start a request to `host` if it may start now: (token, 0.0); else (None, seconds to wait before asking again).

        Raises HostBlocked when the host is blocked, GateClosed when the download stops.
        """
        with self._cond:
            self._poll_record()
            if self._closed:
                raise GateClosed()
            if host in self._blocks:
                raise self._blocks[host].error()
            state = self._host(host)
            now = self.clock()
            if state.in_flight < state.limit and now >= state.next_start:
                state.in_flight += 1
                state.next_start = now + state.interval
                return state.epoch, 0.0
            wait = state.next_start - now if state.in_flight < state.limit else RECORD_POLL
            return None, min(max(wait, 0.001), RECORD_POLL)

    def release(self, host: str, token: int, status: int | None, ok: bool, paced: bool = False) -> None:
        """End a request started with `acquire`: adapt the host's pace to its answer.

        `paced`: the 429/503 came with a Retry-After, which holds the host (`hold`) for the time
        the server asked; the adaptive slow-down is for servers that say nothing.
        """
        with self._cond:
            state = self._host(host)
            state.in_flight -= 1
            if status in (429, 503):
                state.streak = 0
                if token == state.epoch and not paced:  # one slow-down per wave of answers
                    self._slow_down(host, state, status)
            elif ok:
                state.streak += 1
                if state.streak >= RECOVER_AFTER and (state.limit < self.parallelism or state.interval > self.interval):
                    state.streak = 0
                    self._speed_up(host, state)
            self._cond.notify_all()

    def _slow_down(self, host: str, state: _Host, status: int) -> None:
        before = (state.limit, state.interval)
        state.epoch += 1
        state.limit = max(1, state.limit // 2)
        state.interval = min(MAX_SLOW_INTERVAL, max(self.interval, state.interval * 2, SLOW_INTERVAL_FLOOR))
        if (state.limit, state.interval) != before:
            log.info("%s answered HTTP %d: slowing down to %d parallel requests, one every %.2f s",
                     host, status, state.limit, state.interval)

    def _speed_up(self, host: str, state: _Host) -> None:
        state.limit = min(self.parallelism, state.limit + 1)
        halved = state.interval / 2
        state.interval = halved if halved >= max(self.interval, SLOW_INTERVAL_FLOOR) else self.interval
        if state.limit == self.parallelism and state.interval == self.interval:
            log.info("%s: back to full speed (%d parallel requests, one every %.2f s)", host, state.limit, state.interval)
        else:
            log.info("%s: speeding up to %d parallel requests, one every %.2f s", host, state.limit, state.interval)

    def pace(self, host: str) -> tuple[int, float]:
        """The host's current (allowed concurrency, interval)."""
        with self._cond:
            state = self._host(host)
            return state.limit, state.interval

    def hold(self, host: str, seconds: float) -> None:
        """Let no request to `host` start for `seconds` (a Retry-After applies to every request)."""
        with self._cond:
            state = self._host(host)
            state.next_start = max(state.next_start, self.clock() + seconds)
            self._cond.notify_all()

    def block(self, block: Block) -> Block:
        """Block a host: no further request to it; recorded for other jobs. Returns the block in force."""
        with self._cond:
            first = self._blocks.setdefault(block.host, block)
            self._cond.notify_all()
        if first is block:
            log.info("%s served %s at %s: no more requests to it", block.host, block.kind, block.url)
            if self.record is not None:
                try:
                    self.record.add(block)
                except OSError as exc:
                    log.warning("%s: cannot record the block (%s)", self.record.path, exc.strerror or exc)
        return first

    def close(self) -> None:
        """Stop: every waiting and later `acquire` raises GateClosed."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def make_block(url: str, kind: str, retry_after: float | None, now: float | None = None) -> Block:
    """A block of `url`'s host until Retry-After (seconds; not capped) or DEFAULT_BLOCK_SECONDS."""
    now = time.time() if now is None else now
    wait = retry_after if retry_after and retry_after > 0 else DEFAULT_BLOCK_SECONDS
    return Block(host_of(url), url, kind, now + wait)


__all__ = ["Block", "BlockRecord", "DEFAULT_BLOCK_SECONDS", "GateClosed", "HostGate", "RECORD_NAME",
           "host_of", "make_block"]
