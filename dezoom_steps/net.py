"""All network and local-file input of dezoom-steps: options, headers, one HTTP client, downloads.

This is the only module that imports `requests` (a test enforces it). It offers:

* `NetOptions` with the dezoomify-rs defaults, `parse_header` and `parse_duration` for the flags;
* `build_headers`: the header chain of spec §7.2;
* `HttpClient`: one `requests.Session` per worker thread, timeouts with an overall deadline,
  redirects followed by hand (no automatic Referer, Cookie/Authorization dropped cross-origin);
* `fetch_document` for metadata; tiles go through `tiledownload.download_tiles`, which
  schedules, retries and checks them on top of `HttpClient`.
"""

from __future__ import annotations

import email.utils
import http
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urljoin

import requests
import requests.adapters
import urllib3

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


class AttemptFailed(Exception):
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
        """GET `url` following redirects; any status is returned, transport errors raise `AttemptFailed`.

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
                raise AttemptFailed(f"timed out after {opts.timeout:g} s")
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
                raise AttemptFailed(f"TLS error ({_short_reason(exc)}); --accept-invalid-certs skips certificate checks") from None
            except requests.exceptions.Timeout:
                raise AttemptFailed(f"timed out after {opts.timeout:g} s") from None
            except requests.exceptions.InvalidURL as exc:
                raise AttemptFailed(f"invalid URL ({_short_reason(exc)})", retry=False) from None
            except requests.exceptions.RequestException as exc:
                raise AttemptFailed(f"connection failed ({_short_reason(exc)})") from None
            target = session.get_redirect_target(resp) if resp.is_redirect else None
            if target is None:
                limit = max_bytes if resp.status_code < 400 else MAX_ERROR_BODY
                body = self._read_body(resp, deadline, limit, strict=resp.status_code < 400)
                return Response(resp.url, resp.status_code, _reason_phrase(resp.status_code, resp.reason), resp.headers, body)
            self._read_body(resp, deadline, MAX_ERROR_BODY, strict=False)
            nxt = urljoin(resp.url, target)
            if not is_http(nxt):
                raise AttemptFailed(f"redirected to {nxt}, which is not an http(s) URL", retry=False)
            if not same_origin(nxt, url):
                # Field notes N1/S6: keep the user's headers, but not credentials, on another host.
                hop_headers = {k: v for k, v in hop_headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
            current = nxt
        raise AttemptFailed(f"more than {MAX_REDIRECTS} redirects", retry=False)

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
                    raise AttemptFailed(f"timed out after {self.options.timeout:g} s (body incomplete)")
                chunk = read(64 * 1024, decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    if strict:
                        raise AttemptFailed(f"body larger than {limit} bytes", status=resp.status_code, retry=False)
                    resp.close()
                    return b"".join(chunks)[:limit]
        except AttemptFailed:
            resp.close()
            raise
        except urllib3.exceptions.ReadTimeoutError:
            resp.close()
            raise AttemptFailed(f"timed out after {self.options.timeout:g} s (body incomplete)") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            resp.close()
            if not strict:
                return b"".join(chunks)
            if expected is not None and size < expected:
                raise AttemptFailed(f"truncated body: got {size} of {expected} bytes", status=resp.status_code) from None
            raise AttemptFailed(f"body not received ({_short_reason(exc)})", status=resp.status_code) from None
        resp.raw.release_conn()
        if strict and expected is not None and size != expected:
            raise AttemptFailed(f"truncated body: got {size} of {expected} bytes", status=resp.status_code)
        return b"".join(chunks)


def read_local(url: str, limit: int) -> bytes:
    """The bytes of a file: URL, or `AttemptFailed` (never retried) naming the problem."""
    path = file_url_path(url)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise AttemptFailed("no such file", retry=False) from None
    except OSError as exc:
        raise AttemptFailed(f"cannot read the file ({exc.strerror or exc})", retry=False) from None
    if len(data) > limit:
        raise AttemptFailed(f"file larger than {limit} bytes", retry=False)
    return data


def status_failure(resp: Response) -> AttemptFailed:
    """The failure for an HTTP error status: transient ones are retried, honouring Retry-After."""
    s = resp.status
    retry_after = parse_retry_after(resp.headers.get("Retry-After")) if s in RETRY_AFTER_STATUS else None
    transient = s in TRANSIENT_STATUS or (s >= 500 and s not in (501, 505))
    return AttemptFailed(f"HTTP {s} {resp.reason}".rstrip(), status=s, retry=transient, retry_after=retry_after)


def fetch_document(
    url: str, options: NetOptions, referer: str | None = None, client: HttpClient | None = None
) -> bytes:
    """The bytes of a metadata document (http(s) or file:); `NetworkError` naming the URL on failure.

    Transient failures (429, 5xx, timeouts, connection errors) are retried `options.retries` times.
    """
    if is_file_url(url):
        try:
            return read_local(url, MAX_DOCUMENT_BYTES)
        except AttemptFailed as exc:
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
                raise status_failure(resp)
            except AttemptFailed as exc:
                if not exc.retry or attempt == options.retries:
                    raise NetworkError(f"{url}: {exc}") from None
                time.sleep(max(delay, exc.retry_after or 0.0))
                delay *= 2
        raise AssertionError("unreachable")
    finally:
        if own:
            client.close()


__all__ = [
    "DEFAULT_HEADERS", "AttemptFailed", "HttpClient", "NetOptions", "Response",
    "build_headers", "fetch_document", "merge_headers", "parse_duration", "parse_header",
    "parse_retry_after", "read_local", "status_failure",
]
