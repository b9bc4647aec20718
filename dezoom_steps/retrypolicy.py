"""Retry policy by cause (tiles and documents), backoff delays, and a rate-limited retry log.

Field notes §2 N2: "`-r 10` against a server with some permanent 4xx | looks hung | Per-status
retry policy; visible retry countdown"; §1 row 5: "Give 404 its own cheap path (no retry storm)".

* no status (connection error, timeout, truncated or invalid body) and 408/425/429/5xx:
  retried up to `--retries` times;
* 404 and 410 (and 501, 505): never retried (a hole stays a hole);
* any other 4xx (400, 401, 403...): retried at most once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Callable

log = logging.getLogger(__name__)

NEVER_RETRIED = frozenset({404, 410})
FINAL_SERVER_ERRORS = frozenset({501, 505})
TRANSIENT_4XX = frozenset({408, 425, 429})
RETRY_LOG_EVERY = 1.0  # seconds between two retry lines of one host


def retries_allowed(status: int | None, retryable: bool, retries: int) -> int:
    """How many retries a failure with HTTP `status` (None: not an HTTP status) may have.

    `retryable` is the failure's own verdict for non-HTTP causes (e.g. an invalid URL is not).
    """
    if status is None or status < 400:
        return retries if retryable else 0
    if status in NEVER_RETRIED or status in FINAL_SERVER_ERRORS:
        return 0
    if status in TRANSIENT_4XX or (status >= 500 and status not in FINAL_SERVER_ERRORS):
        return retries
    return min(1, retries)  # other 4xx: one more try (a transient auth or proxy glitch), no more


def first_delay(base: float, x: int, y: int) -> float:
    """The first retry wait of the tile at (x, y): spec §7.4, `d + d*((x+y)%100)/100`."""
    return base + base * ((x + y) % 100) / 100


def cause_of(status: int | None, message: str) -> str:
    """A short cause for the log: "HTTP 503", or the first words of a transport error."""
    if status is not None and status >= 400:
        return f"HTTP {status}"
    return message.split(" (")[0].split(":")[0][:60]


class RetryLog:
    """Logs "retrying URL in S s (CAUSE, attempt A of N)" at most once per second and host.

    The retries not shown are counted and summed up per host and cause by `summary()`.
    """

    def __init__(self, every: float = RETRY_LOG_EVERY, clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger = log):
        self.every, self.clock, self.log = every, clock, logger
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._hidden: Counter[str] = Counter()
        self.causes: dict[str, Counter[str]] = {}

    def retrying(self, host: str, url: str, wait: float, cause: str, attempt: int, attempts: int,
                 note: str = "") -> bool:
        """Note one retry about to wait `wait` s; True when this one was written to the log."""
        now = self.clock()
        with self._lock:
            self.causes.setdefault(host, Counter())[cause] += 1
            if now - self._last.get(host, -1e18) < self.every:
                self._hidden[host] += 1
                return False
            self._last[host] = now
            hidden, self._hidden[host] = self._hidden[host], 0
        more = f"; {hidden} other retries on {host} since the last line" if hidden else ""
        self.log.info("retrying %s in %.1f s (%s, attempt %d of %d)%s%s", url, wait, cause, attempt, attempts,
                      note, more)
        return True

    def summary(self) -> None:
        """One line per host that had retries: how many, by cause."""
        with self._lock:
            causes = {h: Counter(c) for h, c in self.causes.items()}
        for host, counts in sorted(causes.items()):
            detail = ", ".join(f"{n} x {cause}" for cause, n in counts.most_common())
            self.log.info("%s: %d retries (%s)", host, sum(counts.values()), detail)


def retry_wait(backoff: float, asked: float | None, cap: float) -> tuple[float, str]:
    """(seconds to wait, note for the log): the backoff, or the server's Retry-After up to `cap`.

    A Retry-After beyond the cap waits the cap, and the note says so.
    """
    if asked is None or asked <= backoff:
        return backoff, ""
    if asked > cap:
        return max(backoff, cap), f"; the server asked for {asked:.0f} s, waiting the cap of {cap:g} s (--max-retry-after)"
    return asked, "; as the server's Retry-After asks"


__all__ = ["NEVER_RETRIED", "RetryLog", "cause_of", "first_delay", "retries_allowed", "retry_wait"]
