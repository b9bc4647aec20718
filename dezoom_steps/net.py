"""All network and local-file input of dezoom-steps: options, headers, the rules of requests, documents.

With netcurl.py (its libcurl transport) the only module that speaks HTTP (a test enforces it). It offers:

* `NetOptions` with the dezoomify-rs defaults, `parse_header` and `parse_duration` for the flags;
* `build_headers`: the header chain of spec §7.2;
* `HttpClient`: what each hop of a request gets (URL, headers, cookies, address policy, TLS,
  proxy) and `get`, with an overall deadline and redirects followed by hand (no automatic
  Referer, Cookie/Authorization dropped cross-origin);
* `fetch_document` for metadata; tiles go through `tiledownload.download_tiles`, which
  schedules, retries and checks them with the same `HttpClient` rules.
"""

from __future__ import annotations

import http
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping
from urllib.parse import urljoin, urlsplit

if TYPE_CHECKING:
    import http.cookiejar

    from dezoom_steps import netcurl

from dezoom_steps import hostpolicy, retrypolicy, scope
from dezoom_steps.errors import InputError, NetworkError
from dezoom_steps.redact import redact_text, redact_url
from dezoom_steps.urls import file_url_path, is_file_url, is_http, origin_key

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
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024  # field notes S7: metadata is tiny; "cap XML size (1-5 MB)"
MAX_TILE_BYTES = 64 * 1024 * 1024  # field notes S5: cap per-tile bytes
MAX_ERROR_BODY = 64 * 1024  # error pages are read (to keep the connection) up to this size
MAX_RETRY_AFTER = 60.0  # a server's Retry-After is honoured up to this many seconds
RETRY_AFTER_STATUS = frozenset({429, 503})

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
    # Authentication, TLS and address policy (dezoom_steps/scope.py, redact.py, hostpolicy.py).
    header_hosts: tuple[str, ...] = ()  # hosts besides the input's that get -H headers; "*" = every host
    cookies_file: str | None = None  # a Netscape cookies.txt; each request gets its matching cookies
    inherit_query: bool = False  # add the input URL's query to same-host tile/document URLs
    insecure_hosts: tuple[str, ...] = ()  # hosts whose TLS certificates are not verified
    ca_bundle: str | None = None  # PEM file of the certificate authorities to trust
    allow_private_networks: bool = False  # allow loopback/private/link-local hosts named by metadata
    max_document_bytes: int = MAX_DOCUMENT_BYTES
    max_tile_bytes: int = MAX_TILE_BYTES
    input_url: str | None = None  # the user's input URL (set by the steps): scopes headers and addresses
    # Politeness, retries and tile checks (dezoom_steps/politeness.py, retrypolicy.py, tilecheck.py).
    host_parallelism: int | None = None  # requests in flight per host; None: same as parallelism
    max_retry_after: float = MAX_RETRY_AFTER  # a longer Retry-After waits this long (and says so)
    tile_check: str = "decode"  # "decode": tiles must decode; "header": magic bytes and header only
    check_workers: int | None = None  # processes checking tiles; None: checkworker.default_workers
    block_file: str | None = None  # blocked-hosts record; None: blocked-hosts.json in the tile cache
    ignore_block: bool = False  # forget recorded blocks (anti-bot pages) and try the hosts again

    def __post_init__(self) -> None:
        if self.max_document_bytes < 1 or self.max_tile_bytes < 1:
            raise InputError("--max-document-bytes and --max-tile-bytes must be at least 1")
        if self.ca_bundle is not None and not os.path.isfile(self.ca_bundle):
            raise InputError(f"{self.ca_bundle}: no such CA bundle file (--ca-bundle)")
        if self.host_parallelism is not None and self.host_parallelism < 1:
            raise InputError(f"--host-parallelism must be at least 1 (got {self.host_parallelism})")
        if self.max_retry_after < 0:
            raise InputError("--max-retry-after cannot be negative")
        if self.check_workers is not None and self.check_workers < 0:
            raise InputError(f"--check-workers cannot be negative (got {self.check_workers})")
        if self.tile_check not in ("decode", "header"):
            raise InputError(f"--tile-check must be decode or header (got {self.tile_check!r})")
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
            import email.utils  # only for an HTTP-date Retry-After (start-up time, issue 7)

            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), cap)


def system_resolver(host: str) -> list[str]:
    """Every address of `host` from the system resolver (getaddrinfo); [] when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


def jar_cookie_header(jar: http.cookiejar.CookieJar | None, url: str) -> str | None:
    """The `Cookie` header value of the cookies of `jar` that match `url` (domain, path, secure, expiry)."""
    if jar is None or not is_http(url):
        return None
    import urllib.request

    request = urllib.request.Request(url)
    jar.add_cookie_header(request)
    return request.unredirected_hdrs.get("Cookie")


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


def reason_phrase(status: int, reason: str | None) -> str:
    """The server's reason phrase, or the standard one for `status` ("" when unknown)."""
    if reason:
        return reason
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def short_text(text: str) -> str:
    """An error text on one line, redacted (messages may quote URLs with tokens), at most 200 characters."""
    text = redact_text(" ".join(text.split()))
    return text if len(text) <= 200 else text[:197] + "..."


# OpenSSL verify codes (X509_V_ERR_*) and what they mean for a user (field notes N7).
_TLS_VERIFY_REASONS = {
    9: "its certificate is not valid yet",
    10: "its certificate has expired",
    18: "its certificate is self-signed",
    19: "its certificate chain ends in a self-signed certificate that is not trusted (unknown CA)",
    20: "its certificate was issued by an unknown certificate authority",
    21: "its certificate was issued by an unknown certificate authority (no issuer certificate)",
    62: "its certificate does not match the host name",
    64: "its certificate does not match the IP address",
}


def tls_message(url: str, code: int | None, text: str, verify_message: str = "") -> tuple[str, bool]:
    """The TLS error line for OpenSSL verify `code` (None: not a verification failure) or error `text`.

    Returns the line and whether the failure is permanent (a certificate problem: not retried).
    """
    host = scope.host_of(url)
    hint = f"--ca-bundle FILE trusts its CA, --insecure-host {host} skips the check for this host only"
    text = short_text(text)
    lowered = text.lower()
    # libcurl checks the name itself, after OpenSSL's chain check: its text says so (code 0 or 1)
    if "hostname mismatch" in lowered or "doesn't match" in lowered or "subject name" in lowered:
        what = "IP address" if hostpolicy.is_ip_literal(host) else "host name"
        return f"TLS error with {host}: its certificate does not match the {what}; {hint}", True
    if code is not None:
        why = _TLS_VERIFY_REASONS.get(code) or f"its certificate was refused ({verify_message or text or code})"
        return f"TLS error with {host}: {why}; {hint}", True
    return f"TLS error with {host} ({text})", False


_PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy"})  # any case, as requests reads them


class HttpClient:
    """The rules of every request: URL, headers per hop, cookies, address policy, TLS, proxy; and `get`.

    Tiles go through `tiledownload`, which asks this client to prepare each hop and runs the
    transfers itself; documents go through `get`. Both use libcurl (netcurl.py), so one set of
    rules, timeouts and error texts applies to everything sent.
    """

    def __init__(self, options: NetOptions):
        self.options = options
        self._local = threading.local()
        self._lock = threading.Lock()
        self._transfers: list[object] = []
        # The user's -H headers, secret references resolved here, in the step process (S12).
        self._user = {k.lower(): scope.resolve_secret(v) for k, v in options.headers.items()}
        self._secrets: dict[str, str] = {}
        self._proxies: dict[str, dict[str, str]] = {}
        self._allowed: set[tuple[str, str | None]] = set()
        self._env_ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
        self.scope = scope.HeaderScope(options.input_url, tuple(options.header_hosts))
        self._jar = scope.load_cookie_jar(options.cookies_file) if options.cookies_file else None
        self.policy = hostpolicy.AddressPolicy(options.input_url, options.allow_private_networks)

    def _secret(self, value: str) -> str:
        """A header value with an `@env:`/`@file:` reference resolved (level headers may hold them)."""
        if not value.startswith(("@env:", "@file:")):
            return value
        with self._lock:
            got = self._secrets.get(value)
        if got is None:
            got = scope.resolve_secret(value)
            with self._lock:
                self._secrets[value] = got
        return got

    def request_url(self, url: str) -> str:
        """The URL actually requested: redacted values restored, the input's query added if asked (M18)."""
        real = scope.restore_redacted(url, self.options.input_url)
        return scope.inherit_query(real, self.options.input_url) if self.options.inherit_query else real

    def verify(self, url: str) -> bool | str:
        """The `verify` argument for `url`: False for insecure hosts, the CA bundle, or True.

        Without --ca-bundle, REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE from the environment apply (as
        in requests and curl); otherwise certifi's bundle (netcurl).
        """
        opts = self.options
        if opts.accept_invalid_certs or any(scope.host_matches(scope.host_of(url), h) for h in opts.insecure_hosts):
            return False
        return opts.ca_bundle or self._env_ca_bundle or True

    def proxies_for(self, url: str) -> dict[str, str]:
        """The proxies of `url`'s origin from the environment (`https_proxy`, `no_proxy`...), read once per origin."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        got = self._proxies.get(origin)
        if got is None:
            if not any(k.lower() in _PROXY_VARIABLES for k in os.environ):
                # No proxy is set (NO_PROXY alone changes nothing): no need to load requests' rules.
                got = self._proxies[origin] = {}
            else:
                import requests.utils

                got = self._proxies[origin] = requests.utils.get_environ_proxies(origin)
        return got

    def check_address(self, url: str, first_url: str | None = None) -> None:
        """Raise AttemptFailed (no request made) when the address policy refuses `url`'s host (S2)."""
        key = (origin_key(url), origin_key(first_url) if first_url else None)
        if key in self._allowed:  # the policy's verdict on a host pair does not change during a run
            return
        try:
            self.policy.check(url, scope.host_of(url), scope.host_of(first_url) if first_url else None)
        except hostpolicy.AddressRefused as exc:
            raise AttemptFailed(str(exc), retry=False, attempted=False) from None
        self._allowed.add(key)

    def base_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """`headers` with secret references resolved and a redacted Referer given its real query back."""
        return {k: scope.restore_redacted(self._secret(v), self.options.input_url) for k, v in headers.items()}

    def hop_headers(self, base: Mapping[str, str], url: str, first_url: str) -> dict[str, str]:
        """The headers of one hop to `url` of a request that asked for `first_url` (`scope.hop_headers`)."""
        return scope.hop_headers(base, url, first_url=first_url, scope=self.scope, user=self._user,
                                 jar_cookie=jar_cookie_header(self._jar, url))

    @property
    def has_cookie_jar(self) -> bool:
        """True when a cookies.txt is loaded (its cookies depend on each URL's path)."""
        return self._jar is not None

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL for `url` from the environment, chosen as requests does (scheme, then "all")."""
        proxies = self.proxies_for(url)
        return proxies.get("https" if url.startswith("https:") else "http") or proxies.get("all")

    def transfers(self) -> "netcurl.Transfers":
        """This thread's libcurl handle for documents (its connections are kept for the next document)."""
        got = getattr(self._local, "transfers", None)
        if got is None:
            from dezoom_steps import netcurl  # it builds on this module

            got = self._local.transfers = netcurl.Transfers(1, self.options.connect_timeout,
                                                              self.options.max_idle_per_host)
            with self._lock:
                self._transfers.append(got)
        return got

    def close(self) -> None:
        """Close the connections of every thread."""
        with self._lock:
            transfers, self._transfers = self._transfers, []
        for t in transfers:
            t.close()  # type: ignore[attr-defined]

    def get(self, url: str, headers: Mapping[str, str], max_bytes: int, limit_option: str | None = None) -> Response:
        """GET `url` following redirects; any status is returned, transport errors raise `AttemptFailed`.

        The whole exchange (redirects, headers, body) must end within `options.timeout` seconds.
        Every hop is checked by the address policy before connecting and gets its own headers
        (`scope.hop_headers`: -H headers and cookies only where they belong). A body larger than
        `max_bytes` fails, naming `limit_option` (the flag that raises the limit).
        """
        from dezoom_steps import netcurl

        opts = self.options
        deadline = time.monotonic() + opts.timeout
        transfers = self.transfers()
        base = self.base_headers(headers)
        first = current = self.request_url(url)
        if limit_option is None:
            limit_option = "--max-tile-bytes" if max_bytes == opts.max_tile_bytes else "--max-document-bytes"
        for hops in range(MAX_REDIRECTS + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AttemptFailed(f"timed out after {opts.timeout:g} s")
            self.check_address(current, first)
            transfer = netcurl.Transfer(None, current, max_bytes, limit_option, remaining, opts.timeout)
            transfers.start(transfer, self.hop_headers(base, current, first), self.verify(current),
                            self.proxy_for(current))
            done: list[netcurl.Outcome] = []
            with netcurl.deferred_interrupts() as interrupts:
                while not done:
                    done = transfers.poll(1.0)
                    interrupts.check()
            outcome = done[0]
            if outcome.response is None:
                assert outcome.failure is not None
                raise outcome.failure
            nxt = redirect_target(outcome.response, hops)
            if nxt is None:
                return outcome.response
            current = nxt
        raise AttemptFailed(f"more than {MAX_REDIRECTS} redirects", retry=False)


REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})


def redirect_target(resp: Response, hops: int) -> str | None:
    """Where a redirect sends the request next (None: not a redirect); `AttemptFailed` when it must not be followed.

    `hops` is the number of redirects already followed. Spec §7.2: up to MAX_REDIRECTS; field
    notes S3: never to a file: URL or another scheme.
    """
    location = resp.headers.get("Location")
    if resp.status not in REDIRECT_STATUS or not location:
        return None
    nxt = urljoin(resp.url, location)
    if not is_http(nxt):
        raise AttemptFailed(f"redirected to {redact_url(nxt)}, which is not an http(s) URL", retry=False,
                            status=resp.status)
    if hops >= MAX_REDIRECTS:
        raise AttemptFailed(f"more than {MAX_REDIRECTS} redirects", retry=False, status=resp.status)
    return nxt


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
    # Which statuses are retried, and how often, is retrypolicy's rule alone.
    transient = retrypolicy.retries_allowed(s, True, 1) > 0
    return AttemptFailed(f"HTTP {s} {resp.reason}".rstrip(), status=s, retry=transient, retry_after=retry_after)


def fetch_document(
    url: str, options: NetOptions, referer: str | None = None, client: HttpClient | None = None
) -> bytes:
    """The bytes of a metadata document (http(s) or file:); `NetworkError` naming the URL on failure.

    Transient failures (429, 5xx, timeouts, connection errors) are retried `options.retries` times,
    other 4xx once, 404/410 never; an anti-bot page raises HostBlocked (see retrypolicy, blockpage).
    """
    if is_file_url(url):
        if options.input_url is not None and not is_file_url(options.input_url):
            # Field notes S3: local files only for a local input, never from remote metadata.
            raise NetworkError(f"{url}: refused: a file: URL named by remote metadata (the input is not a local file)")
        try:
            return read_local(url, options.max_document_bytes)
        except AttemptFailed as exc:
            raise NetworkError(f"{url}: {exc}") from None
    if not is_http(url):
        raise NetworkError(f"{url}: unsupported URL scheme (expected http, https or file)")
    own = client is None
    client = client or HttpClient(options)
    headers = build_headers(options, referer)
    # Retry policy by cause (dezoom_steps/retrypolicy.py), Retry-After up to --max-retry-after,
    # anti-bot pages stop at once (field notes M19, N5); imported here: they import nothing of net.
    from dezoom_steps import blockpage, politeness

    record = politeness.BlockRecord(options.block_file) if options.block_file else None
    known = record.active() if record is not None and not options.ignore_block else {}
    if politeness.host_of(url) in known:
        raise known[politeness.host_of(url)].error()
    delay = options.retry_delay
    attempt = 0
    try:
        while True:
            attempt += 1
            resp = None
            try:
                resp = client.get(url, headers, options.max_document_bytes, "--max-document-bytes")
                kind = blockpage.challenge_kind(resp.status, resp.url, resp.headers, resp.body)
                if kind is not None:
                    asked = parse_retry_after(resp.headers.get("Retry-After"), cap=float("inf"))
                    block = politeness.make_block(url, kind, asked)
                    if record is not None:
                        record.add(block)
                    raise block.error()
                if resp.status < 400:
                    return resp.body
                raise status_failure(resp)
            except AttemptFailed as exc:
                allowed = retrypolicy.retries_allowed(exc.status, exc.retry, options.retries)
                if attempt > allowed:
                    raise NetworkError(f"{url}: {exc}") from None
                asked = None
                if resp is not None and resp.status in RETRY_AFTER_STATUS:
                    asked = parse_retry_after(resp.headers.get("Retry-After"), cap=float("inf"))
                wait, note = retrypolicy.retry_wait(delay, asked, options.max_retry_after)
                retrypolicy.log.info("retrying %s in %.1f s (%s, attempt %d of %d)%s", url, wait,
                                     retrypolicy.cause_of(exc.status, str(exc)), attempt + 1, allowed + 1, note)
                time.sleep(wait)
                delay *= 2
    finally:
        if own:
            client.close()


__all__ = [
    "DEFAULT_HEADERS", "REDIRECT_STATUS", "AttemptFailed", "HttpClient", "NetOptions", "Response",
    "build_headers", "fetch_document", "reason_phrase", "short_text", "tls_message", "merge_headers", "parse_duration", "parse_header",
    "parse_retry_after", "read_local", "redirect_target", "status_failure",
]
