"""Loopback URLs: where a format recognised by its host name also accepts a server on this machine.

Google Arts & Culture and NYPL are recognised by their host names (spec §3.1). The same URL
shapes on a loopback host (127.0.0.0/8, `localhost`, `::1`) are accepted too, so that a copy
of a site served on 127.0.0.1 (a mirror, an emulation in the tests) can be read with
`-d <name>` or in auto mode; no other host is ever treated as one of those sites.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_host(host: str | None) -> bool:
    """True for `localhost` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback(url: str) -> bool:
    """True when `url` is an http(s) URL on a loopback host."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and is_loopback_host(host)


def origin(url: str) -> str:
    """`scheme://host[:port]` of `url`."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
