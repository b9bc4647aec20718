"""Which credentials go to which host: header scope, cookies.txt, query tokens, secret references.

Field notes S6: in dezoomify-rs, `-H` headers are client-wide defaults sent to every host, so a
session cookie pasted for a museum reaches any tile CDN or redirect target its metadata names.
Here the user's headers and cookies go to the input URL's host and the hosts the user lists
(`--header-host`), the default Referer goes everywhere but loses its query string on another
origin, and credentials are dropped on a cross-origin redirect (field notes N1).

Everything here is pure except `resolve_secret` (environment, files) and `load_cookie_jar`.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit, urlunsplit

if TYPE_CHECKING:  # imported where a cookies.txt is read (start-up time, issue 7)
    import http.cookiejar

from dezoom_steps.errors import InputError
from dezoom_steps.redact import REDACTED, redact_url, register_secret, secret_name
from dezoom_steps.urls import is_http, origin_key, same_origin

# Field notes S6: the headers that carry credentials.
CREDENTIAL_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})
EVERY_HOST = "*"
# -H headers that go to every host, like the defaults they replace: a CDN often wants the
# Referer the user gives (field notes row 2), and none of these carries a credential.
UNSCOPED_HEADERS = frozenset({"referer", "user-agent", "accept", "accept-language"})
MAX_SECRET_FILE_BYTES = 64 * 1024
MAX_COOKIES_BYTES = 16 * 1024 * 1024


def resolve_secret(value: str) -> str:
    """The value behind `@env:NAME` (an environment variable) or `@file:PATH` (first line of a file).

    Any other value is returned as it is. The resolved value is registered for redaction.
    Field notes S12: secrets read from the environment or files, not from the command line.
    """
    if value.startswith("@env:"):
        name = value[5:].strip()
        if not name or name not in os.environ:
            raise InputError(f"{value}: the environment variable {name or '(empty name)'} is not set")
        secret = os.environ[name].strip()
    elif value.startswith("@file:"):
        path = Path(value[6:].strip()).expanduser()
        try:
            with open(path, "rb") as f:
                head = f.read(MAX_SECRET_FILE_BYTES)
        except OSError as exc:
            raise InputError(f"{value}: cannot read the secret file {path} ({exc.strerror or exc})") from None
        lines = head.decode("utf-8", errors="replace").splitlines()
        secret = lines[0].strip() if lines else ""
        if not secret:
            raise InputError(f"{value}: the secret file {path} is empty")
    else:
        return value
    register_secret(secret)
    return secret


def host_of(url: str) -> str:
    """The lower-case host name of a URL ('' for none)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def host_matches(host: str, pattern: str) -> bool:
    """True when `host` is `pattern`, or a subdomain of it when the pattern is `*.domain`; `*` is every host."""
    pattern = pattern.strip().lower().rstrip(".")
    host = host.lower().rstrip(".")
    if pattern == EVERY_HOST:
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) or host == pattern[2:]
    return host == pattern.strip("[]")


@dataclass(frozen=True)
class HeaderScope:
    """The hosts that get the user's -H headers and cookies: the input's host and `--header-host` ones."""

    input_url: str | None
    header_hosts: tuple[str, ...] = ()

    def covers(self, url: str, first_url: str | None = None) -> bool:
        """True when a request to `url` may carry the user's headers and cookies.

        The reference host is the input URL's; for a local input (a file the user chose: a saved
        info.json, a tiles.yaml) or none, it is the host of `first_url`, the URL asked for
        before any redirect. Ports are not compared (cookies ignore them too, RFC 6265).
        """
        host = host_of(url)
        if any(host_matches(host, h) for h in self.header_hosts):
            return True
        reference = self.input_url if self.input_url and is_http(self.input_url) else first_url
        return reference is not None and host == host_of(reference)


def strip_query(url: str) -> str:
    """`url` without its query string and fragment (a cross-origin Referer, as browsers send it)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _params(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


def restore_redacted(url: str, real_input: str | None) -> str:
    """Put back the real values of parameters that the step files hold as REDACTED.

    Step JSON files keep URLs redacted (see redact.py); the real value comes from the user's
    input URL on the same host, given to the step process (`--input-url`).
    """
    if not real_input or REDACTED not in url or not is_http(real_input):
        return url
    if url == redact_url(real_input):
        return real_input
    if host_of(url) != host_of(real_input):
        return url
    real: dict[str, str] = {}
    for item in urlsplit(real_input).query.split("&"):  # raw items: percent-escapes stay as they are
        name, _, value = item.partition("=")
        real.setdefault(name, value)
    out = url
    password = urlsplit(real_input).password
    if password and f":{REDACTED}@" in out:
        out = out.replace(f":{REDACTED}@", f":{password}@", 1)
    for name, value in real.items():
        if name and value != REDACTED:
            out = re.sub(rf"(?<=[?&;]){re.escape(name)}={REDACTED}(?=$|[&;#])", lambda _m: f"{name}={value}", out)
    return out


def inherit_query(url: str, input_url: str | None) -> str:
    """`url` with the input URL's query parameters it lacks appended (same host only; rs#174 tokens).

    Called at request time only, so tiles.json, cache keys and logged URLs stay token-free
    and an expired token does not invalidate the cache on resume (field notes M18).
    """
    if not input_url or not is_http(input_url) or not is_http(url) or host_of(url) != host_of(input_url):
        return url
    extra = _params(urlsplit(input_url).query)
    if not extra:
        return url
    parts = urlsplit(url)
    have = {name for name, _ in _params(parts.query)}
    raw_extra = [item for item in urlsplit(input_url).query.split("&") if item]
    # A value we redacted ourselves is never sent (the real one is unknown here).
    add = [item for item in raw_extra if item.partition("=")[0] not in have and item.partition("=")[2] != REDACTED]
    if not add:
        return url
    query = "&".join(([parts.query] if parts.query else []) + add)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


HTTPONLY_PREFIX = "#HttpOnly_"


def parse_cookies_txt(text: str, source: str, now: float | None = None) -> list[http.cookiejar.Cookie]:
    """The unexpired cookies of a Netscape cookies.txt (7 tab-separated fields a line).

    `#HttpOnly_` lines are cookies (curl and browser extensions write them); an expiry of 0 is a
    session cookie (what a logged-in browser holds), kept. A malformed line is an InputError
    naming `source` and the line number.
    """
    now = time.time() if now is None else now
    import http.cookiejar

    cookies: list[http.cookiejar.Cookie] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r\n")
        if line.startswith(HTTPONLY_PREFIX):
            line = line[len(HTTPONLY_PREFIX):]
        elif line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 7:
            raise InputError(f"{source}: line {number} is not a Netscape cookies.txt line "
                             f"(7 tab-separated fields expected, found {len(fields)})")
        domain, subdomains, path, secure, expires, name, value = fields
        if not domain or subdomains.upper() not in ("TRUE", "FALSE") or secure.upper() not in ("TRUE", "FALSE"):
            raise InputError(f"{source}: line {number}: bad domain or TRUE/FALSE flag in a cookies.txt line")
        try:
            expiry = int(float(expires)) if expires.strip() else 0
        except ValueError:
            raise InputError(f"{source}: line {number}: the expiry {expires!r} is not a number") from None
        if expiry and expiry <= now:
            continue  # expired: never sent
        dotted = domain.startswith(".") or subdomains.upper() == "TRUE"
        cookies.append(http.cookiejar.Cookie(
            version=0, name=name, value=value, port=None, port_specified=False,
            domain=domain if not dotted or domain.startswith(".") else "." + domain,
            domain_specified=dotted, domain_initial_dot=domain.startswith("."),
            path=path or "/", path_specified=True, secure=secure.upper() == "TRUE",
            expires=expiry or None, discard=not expiry, comment=None, comment_url=None, rest={},
        ))
    return cookies


def load_cookie_jar(path: str) -> http.cookiejar.CookieJar:
    """A cookie jar from a Netscape cookies.txt file; every cookie value is registered for redaction.

    A missing, unreadable or malformed file is an InputError naming it (field notes row 2).
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_COOKIES_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: no such cookies file (--cookies)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the cookies file ({exc.strerror or exc})") from None
    if len(data) > MAX_COOKIES_BYTES:
        raise InputError(f"{path}: cookies file larger than {MAX_COOKIES_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text cookies.txt file (invalid UTF-8)") from None
    import http.cookiejar

    jar = http.cookiejar.CookieJar()
    for cookie in parse_cookies_txt(text, path):
        if cookie.value:
            register_secret(cookie.value)
        jar.set_cookie(cookie)
    return jar


def hop_headers(
    base: Mapping[str, str],
    url: str,
    *,
    first_url: str,
    scope: HeaderScope,
    user: Mapping[str, str],
    jar_cookie: str | None = None,
) -> dict[str, str]:
    """The headers of one request (or redirect hop) to `url`.

    * user -H headers (`user`, by lower-case name) only when `scope` covers `first_url`, the URL
      asked for (a redirect keeps them, N1), except the UNSCOPED_HEADERS (Referer, User-Agent...);
    * on a hop to another origin than `first_url`, out of scope: no Cookie, Authorization,
      Proxy-Authorization nor secret-looking headers (field notes N1, S6);
    * a Referer that is not the user's own loses its query string on another origin;
    * `jar_cookie` (the cookies.txt cookies matching `url`) is merged into the Cookie header.
    """
    asked_in_scope = scope.covers(first_url, first_url)
    in_scope = scope.covers(url, first_url)
    cross = not same_origin(url, first_url)
    out: dict[str, str] = {}
    for name, value in base.items():
        low = name.lower()
        from_user = low in user and user[low] == value
        if from_user and low not in UNSCOPED_HEADERS and not asked_in_scope:
            continue
        if cross and not in_scope and (low in CREDENTIAL_HEADERS or secret_name(name)):
            continue
        if low == "referer" and not from_user and is_http(value) and not same_origin(url, value):
            value = strip_query(value)
        out[name] = value
    if jar_cookie:  # the jar's own domain/path matching is the scope of its cookies
        given = next((k for k in out if k.lower() == "cookie"), None)
        out[given or "Cookie"] = f"{out[given]}; {jar_cookie}" if given and out[given] else jar_cookie
    return out


def real_input_url(recorded: str, given: str | None) -> str:
    """The input URL to use: `given` (the real one, --input-url) when `recorded` is its redacted form."""
    if given and given != recorded and redact_url(given) == recorded:
        return given
    return recorded


def other_hosts(input_url: str, urls: list[str]) -> list[str]:
    """The hosts of the http(s) `urls` that are not the (http) input URL's host, in order of first appearance."""
    if not is_http(input_url):
        return []  # a local input names no host: its URLs are the user's choice
    own = host_of(input_url)
    seen: dict[str, None] = {}
    origins: set[str] = set()
    for url in urls:
        origin = origin_key(url)
        if origin in origins:  # tiles share a few origins: parse each once (issue 7: 20,000 tiles)
            continue
        origins.add(origin)
        if is_http(url):
            host = host_of(url)
            if host != own:
                seen.setdefault(host)
    return list(seen)


__all__ = ["CREDENTIAL_HEADERS", "UNSCOPED_HEADERS", "HeaderScope", "hop_headers", "host_matches", "host_of", "inherit_query",
           "load_cookie_jar", "other_hosts", "parse_cookies_txt", "real_input_url", "resolve_secret",
           "restore_redacted", "strip_query"]
