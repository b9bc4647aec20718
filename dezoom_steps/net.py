"""All network and local-file input of dezoom-steps: options, headers, one HTTP client, downloads.

This is the only module that imports `requests` (a test enforces it). It offers:

* `NetOptions` with the dezoomify-rs defaults, `parse_header` and `parse_duration` for the flags;
* `build_headers`: the header chain of spec §7.2;
* `HttpClient`: one `requests.Session` per worker thread, timeouts with an overall deadline,
  redirects followed by hand (no automatic Referer, Cookie/Authorization dropped cross-origin);
* `fetch_document` for metadata and `download_tiles` for tiles (parallel, throttled, retried,
  every body checked before it is handed over).
"""

from __future__ import annotations

import email.utils
import http
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Protocol
from urllib.parse import urljoin

import requests
import requests.adapters
import urllib3

from dezoom_steps import cache
from dezoom_steps.errors import InputError, NetworkError
from dezoom_steps.urls import file_url_path, is_file_url, is_http, same_origin

# Spec §7.2, default headers: "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) ...".
DEFAULT_HEADERS: dict[str, str] = {
    "User-Agent": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/58.0.3029.110 Safari/537.36"
    ),
    "Accept-Language": "en,en-US;q=0.8",
    "Accept": "*/*",
}
MAX_REDIRECTS = 10  # spec §7.2: "Redirects are followed (reqwest default: up to 10)"
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024  # metadata is tiny; anything larger is not metadata
MAX_TILE_BYTES = 64 * 1024 * 1024  # field notes S5: cap per-tile bytes
MAX_ERROR_BODY = 64 * 1024  # error pages are read (to keep the connection) up to this size
MAX_RETRY_AFTER = 60.0  # a server's Retry-After is honoured up to this many seconds
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
RETRY_AFTER_STATUS = frozenset({429, 503})
# Headers that carry credentials: never sent to another origin after a redirect (field notes S6).
_CREDENTIAL_HEADERS = ("cookie", "authorization", "proxy-authorization")

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 field-name
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")
# Spec §6: regex `^(\d+)\s*(min|s|ms|ns)$`; a bare number is read as seconds.
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(min|s|ms|ns)?$")
_UNIT_SECONDS = {"min": 60.0, "s": 1.0, "ms": 1e-3, "ns": 1e-9, None: 1.0}


@dataclass(frozen=True)
class NetOptions:
    """Network settings; the defaults are dezoomify-rs's command-line defaults (spec §6)."""

    parallelism: int = 16
    retries: int = 1
    retry_delay: float = 2.0
    min_interval: float = 0.05
    timeout: float = 30.0
    connect_timeout: float = 6.0
    headers: dict[str, str] = field(default_factory=dict)
    accept_invalid_certs: bool = False
    max_idle_per_host: int = 32

    def __post_init__(self) -> None:
        # Spec §13: "`--parallelism 0` is accepted (it would hang)": refused here.
        if self.parallelism < 1:
            raise InputError(f"--parallelism must be at least 1 (got {self.parallelism})")
        if self.retries < 0:
            raise InputError(f"--retries cannot be negative (got {self.retries})")
        if self.max_idle_per_host < 0:
            raise InputError(f"--max-idle-per-host cannot be negative (got {self.max_idle_per_host})")
        for name in ("retry_delay", "min_interval", "timeout", "connect_timeout"):
            if getattr(self, name) < 0:
                raise InputError(f"--{name.replace('_', '-')} cannot be negative")
        if self.timeout == 0 or self.connect_timeout == 0:
            raise InputError("--timeout and --connect-timeout must be longer than 0")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `2s`, `50ms`, `1min`, `500 ms` or a bare `0` (spec §6)."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise InputError(
            f"Invalid duration {text!r}. A duration is a number followed by a unit "
            "(min, s, ms or ns), such as '10ms' or '5s'"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_header(text: str) -> tuple[str, str]:
    """Split a `-H "Name: value"` argument at its first ':' into a checked (name, value) pair."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if name.lower() in ("http", "https") and value.startswith("//"):
        raise InputError(f"Invalid header {text!r}: this is a URL, not a header; did you mean 'Referer: {text.strip()}'?")
    if not sep:
        raise InputError(f"Invalid header format {text!r}. Expected 'Name: Value'")
    if not name:
        raise InputError(f"Invalid header {text!r}: the name before ':' is empty. Expected 'Name: Value'")
    if not _TOKEN.match(name):
        first, _, rest = name.partition(" ")
        hint = f"; did you mean '{first}: {rest}:{value}'?" if rest and _TOKEN.match(first) else ""
        raise InputError(f"Invalid header name {name!r} in {text!r}{hint}")
    if name.lower() == "referrer":
        raise InputError(f"Invalid header {text!r}: the HTTP header is spelt 'Referer': use 'Referer: {value}'")
    bad = _BAD_VALUE_CHAR.search(value)
    if bad:
        raise InputError(f"Invalid header value for {name!r}: it contains the character {bad.group()!r}")
    return name, value


def merge_headers(*layers: Mapping[str, str] | None) -> dict[str, str]:
    """Merge header mappings in order; names are case-insensitive and the last value wins (§7.2)."""
    merged: dict[str, str] = {}
    for layer in layers:
        for name, value in (layer or {}).items():
            merged[name.lower()] = value
    # Title-Case names, as dezoomify-rs sends them over HTTP/1.x (field notes N6).
    return {"-".join(p.capitalize() for p in key.split("-")): value for key, value in merged.items()}


def build_headers(
    options: NetOptions, referer: str | None = None, level_headers: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The request headers: defaults -> Referer -> level headers (tiles only) -> user -H (§7.2).

    The Referer is the user's input URL; a local (file:) input sends none, as a browser would.
    """
    ref = {"Referer": referer} if referer and is_http(referer) else {}
    return merge_headers(DEFAULT_HEADERS, ref, level_headers, options.headers)


def parse_retry_after(value: str | None, now: float | None = None, cap: float = MAX_RETRY_AFTER) -> float | None:
    """Seconds asked by a `Retry-After` header (delay-seconds or HTTP-date), capped; None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), cap)


class _Failure(Exception):
    """One failed attempt: a one-line message, the HTTP status if any, and what to do next."""

    def __init__(self, message: str, status: int | None = None, retry: bool = True,
                 retry_after: float | None = None, attempted: bool = True):
        super().__init__(message)
        self.status, self.retry, self.retry_after = status, retry, retry_after
        self.attempted = attempted  # False when the tile was refused without any request


@dataclass
class Response:
    """A received HTTP response: final URL, status, headers and (possibly capped) body."""

    url: str
    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes


def _reason_phrase(status: int, reason: str | None) -> str:
    if reason:
        return reason
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception behind a requests/urllib3 error (`reason`, args, causes)."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        nxt = getattr(exc, "reason", None)
        if not isinstance(nxt, BaseException):
            nxt = next((a for a in exc.args if isinstance(a, BaseException)), None)
        nxt = nxt or exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc


def _short_reason(exc: BaseException) -> str:
    """A short, one-line description of a transport error."""
    root = _root_cause(exc)
    if isinstance(root, OSError) and root.strerror:
        text = root.strerror
    else:
        text = re.sub(r"<[^<>]* at 0x[0-9a-f]+>:?\s*", "", str(root)) or type(root).__name__
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


class HttpClient:
    """HTTP GET with one `requests.Session` per thread, timeouts, a deadline and manual redirects.

    `max_idle_per_host` bounds the idle connections kept per host over all threads: each session
    keeps one per host, and sessions created beyond that number ask servers to close
    (`Connection: close`).
    """

    def __init__(self, options: NetOptions):
        self.options = options
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []
        if options.accept_invalid_certs:
            # Only when the user asked for unverified TLS; the warning would repeat for every tile.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def session(self) -> tuple[requests.Session, bool]:
        """This thread's session, and whether its connections may be kept alive."""
        got = getattr(self._local, "session", None)
        if got is None:
            s = requests.Session()  # trust_env stays on: proxies come from the environment
            adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=1, max_retries=0)
            s.mount("http://", adapter)
            s.mount("https://", adapter)
            with self._lock:
                keep = len(self._sessions) < self.options.max_idle_per_host
                self._sessions.append(s)
            got = self._local.session = (s, keep)
        return got

    def close(self) -> None:
        """Close every session (all threads)."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for s in sessions:
            s.close()

    def get(self, url: str, headers: Mapping[str, str], max_bytes: int) -> Response:
        """GET `url` following redirects; any status is returned, transport errors raise `_Failure`.

        The whole exchange (redirects, headers, body) must end within `options.timeout` seconds.
        """
        opts = self.options
        deadline = time.monotonic() + opts.timeout
        session, keep = self.session()
        hop_headers = dict(headers)
        if not keep:
            hop_headers["Connection"] = "close"
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Failure(f"timed out after {opts.timeout:g} s")
            try:
                resp = session.get(
                    current,
                    headers=hop_headers,
                    timeout=(min(opts.connect_timeout, remaining), remaining),
                    allow_redirects=False,
                    stream=True,
                    # Per request: a session-level False loses to REQUESTS_CA_BUNDLE from the environment.
                    verify=not opts.accept_invalid_certs,
                )
            except requests.exceptions.SSLError as exc:
                raise _Failure(f"TLS error ({_short_reason(exc)}); --accept-invalid-certs skips certificate checks") from None
            except requests.exceptions.Timeout:
                raise _Failure(f"timed out after {opts.timeout:g} s") from None
            except requests.exceptions.InvalidURL as exc:
                raise _Failure(f"invalid URL ({_short_reason(exc)})", retry=False) from None
            except requests.exceptions.RequestException as exc:
                raise _Failure(f"connection failed ({_short_reason(exc)})") from None
            target = session.get_redirect_target(resp) if resp.is_redirect else None
            if target is None:
                limit = max_bytes if resp.status_code < 400 else MAX_ERROR_BODY
                body = self._read_body(resp, deadline, limit, strict=resp.status_code < 400)
                return Response(resp.url, resp.status_code, _reason_phrase(resp.status_code, resp.reason), resp.headers, body)
            self._read_body(resp, deadline, MAX_ERROR_BODY, strict=False)
            nxt = urljoin(resp.url, target)
            if not is_http(nxt):
                raise _Failure(f"redirected to {nxt}, which is not an http(s) URL", retry=False)
            if not same_origin(nxt, url):
                # Field notes N1/S6: keep the user's headers, but not credentials, on another host.
                hop_headers = {k: v for k, v in hop_headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
            current = nxt
        raise _Failure(f"more than {MAX_REDIRECTS} redirects", retry=False)

    def _read_body(self, resp: requests.Response, deadline: float, limit: int, strict: bool) -> bytes:
        """Read a streamed body before `deadline`; `strict` makes a short or oversized body an error."""
        raw = resp.raw
        read = getattr(raw, "read1", None) or raw.read
        length = resp.headers.get("Content-Length")
        identity = resp.headers.get("Content-Encoding", "identity").lower() in ("", "identity")
        expected = int(length) if length and length.isdigit() and identity else None
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                if time.monotonic() > deadline:
                    raise _Failure(f"timed out after {self.options.timeout:g} s (body incomplete)")
                chunk = read(64 * 1024, decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    if strict:
                        raise _Failure(f"body larger than {limit} bytes", status=resp.status_code, retry=False)
                    resp.close()
                    return b"".join(chunks)[:limit]
        except _Failure:
            resp.close()
            raise
        except urllib3.exceptions.ReadTimeoutError:
            resp.close()
            raise _Failure(f"timed out after {self.options.timeout:g} s (body incomplete)") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            resp.close()
            if not strict:
                return b"".join(chunks)
            if expected is not None and size < expected:
                raise _Failure(f"truncated body: got {size} of {expected} bytes", status=resp.status_code) from None
            raise _Failure(f"body not received ({_short_reason(exc)})", status=resp.status_code) from None
        resp.raw.release_conn()
        if strict and expected is not None and size != expected:
            raise _Failure(f"truncated body: got {size} of {expected} bytes", status=resp.status_code)
        return b"".join(chunks)


def _read_local(url: str, limit: int) -> bytes:
    """The bytes of a file: URL, or `_Failure` (never retried) naming the problem."""
    path = file_url_path(url)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise _Failure("no such file", retry=False) from None
    except OSError as exc:
        raise _Failure(f"cannot read the file ({exc.strerror or exc})", retry=False) from None
    if len(data) > limit:
        raise _Failure(f"file larger than {limit} bytes", retry=False)
    return data


def _status_failure(resp: Response) -> _Failure:
    """The failure for an HTTP error status: transient ones are retried, honouring Retry-After."""
    s = resp.status
    retry_after = parse_retry_after(resp.headers.get("Retry-After")) if s in RETRY_AFTER_STATUS else None
    transient = s in TRANSIENT_STATUS or (s >= 500 and s not in (501, 505))
    return _Failure(f"HTTP {s} {resp.reason}".rstrip(), status=s, retry=transient, retry_after=retry_after)


def fetch_document(
    url: str, options: NetOptions, referer: str | None = None, client: HttpClient | None = None
) -> bytes:
    """The bytes of a metadata document (http(s) or file:); `NetworkError` naming the URL on failure.

    Transient failures (429, 5xx, timeouts, connection errors) are retried `options.retries` times.
    """
    if is_file_url(url):
        try:
            return _read_local(url, MAX_DOCUMENT_BYTES)
        except _Failure as exc:
            raise NetworkError(f"{url}: {exc}") from None
    if not is_http(url):
        raise NetworkError(f"{url}: unsupported URL scheme (expected http, https or file)")
    own = client is None
    client = client or HttpClient(options)
    headers = build_headers(options, referer)
    delay = options.retry_delay
    try:
        for attempt in range(options.retries + 1):
            try:
                resp = client.get(url, headers, MAX_DOCUMENT_BYTES)
                if resp.status < 400:
                    return resp.body
                raise _status_failure(resp)
            except _Failure as exc:
                if not exc.retry or attempt == options.retries:
                    raise NetworkError(f"{url}: {exc}") from None
                time.sleep(max(delay, exc.retry_after or 0.0))
                delay *= 2
        raise AssertionError("unreachable")
    finally:
        if own:
            client.close()


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
    """Raise `_Failure` unless `data` starts like an image (empty bodies and HTML pages fail)."""
    if not data:
        raise _Failure("empty body")
    if cache.sniff_image(data) is None:
        head = data[:512].lstrip().lower()
        if "html" in content_type.lower() or head.startswith((b"<!doctype html", b"<html")):
            raise _Failure(f"got an HTML page ({content_type or 'no Content-Type'}), not an image")
        raise _Failure(f"not an image ({content_type or 'no Content-Type'}, starts with {data[:8]!r})")


class _TileWorker:
    """Downloads single tiles with retries, backoff with jitter, throttling and body checks."""

    def __init__(self, client: HttpClient, headers: Mapping[str, str], throttle: Throttle, stop: threading.Event,
                 process: Callable[[Any, bytes], bytes] | None, allow_file_urls: bool):
        self.client, self.headers, self.throttle, self.stop = client, dict(headers), throttle, stop
        self.process, self.allow_file_urls = process, allow_file_urls

    def attempt(self, tile: TileLike) -> bytes:
        """One attempt: bytes of the tile after `process`, checked; `_Failure` otherwise."""
        if is_file_url(tile.url):
            if not self.allow_file_urls:
                raise _Failure("file: tile URLs are only allowed when the input itself is a local file",
                               retry=False, attempted=False)
            raw, ctype = _read_local(tile.url, MAX_TILE_BYTES), ""
        elif is_http(tile.url):
            self.throttle.wait()
            resp = self.client.get(tile.url, self.headers, MAX_TILE_BYTES)
            if resp.status != 200:
                fail = _status_failure(resp) if resp.status >= 400 else _Failure(f"HTTP {resp.status} {resp.reason}", status=resp.status)
                if fail.retry_after:
                    self.throttle.hold(fail.retry_after)
                raise fail
            raw, ctype = resp.body, resp.headers.get("Content-Type", "")
        else:
            raise _Failure("unsupported URL scheme (expected http, https or file)", retry=False, attempted=False)
        if not raw:
            raise _Failure("empty body")
        data = raw
        if self.process is not None:
            try:
                data = self.process(tile, raw)
            except Exception as exc:  # a decoder's failure is retried like a download's (spec §7.4)
                raise _Failure(f"unable to process the downloaded tile: {exc}") from None
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
            except _Failure as exc:
                attempts -= 0 if exc.attempted else 1
                # 404/410 and other final statuses are not retried: no retry storm on holes.
                if not exc.retry or attempts > retries or self.stop.is_set():
                    return TileResult(tile, None, exc.status, str(exc), attempts)
                if self.stop.wait(max(wait_s, exc.retry_after or 0.0)):
                    return TileResult(tile, None, exc.status, str(exc), attempts)
                wait_s *= 2


def download_tiles(
    tiles: Iterable[TileLike],
    options: NetOptions,
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
    client = HttpClient(options)
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


__all__ = [
    "DEFAULT_HEADERS", "HttpClient", "NetOptions", "Response", "Throttle", "TileResult",
    "build_headers", "check_tile_body", "download_tiles", "fetch_document", "merge_headers",
    "parse_duration", "parse_header", "parse_retry_after",
]
