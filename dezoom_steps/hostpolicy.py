"""Address policy: no request to loopback, link-local or private addresses unless the input was there.

Field notes S2: metadata chooses hosts (IIIF `@id` = `http://localhost:8080/...`, internal hosts,
manifests listing arbitrary URLs), which makes a downloader an SSRF tool. A URL is checked
after DNS resolution (every address of its name) and before any connection, on every redirect
hop. Addresses in a special class are refused unless the user's own input host is in that
same class (loopback input allows loopback, private input allows private) or the user says
`--allow-private-networks`.
"""

from __future__ import annotations

import ipaddress
import threading
from typing import Callable, Iterable

from dezoom_steps.urls import is_file_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
OPTION = "--allow-private-networks"

# (class name, networks), checked in order; an address outside all of them is public.
_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("unspecified", ("0.0.0.0/8", "::/128")),
    ("loopback", ("127.0.0.0/8", "::1/128")),
    ("link-local", ("169.254.0.0/16", "fe80::/10")),
    ("private", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")),
    ("shared (CGNAT)", ("100.64.0.0/10",)),
    ("multicast", ("224.0.0.0/4", "ff00::/8")),
    ("reserved", ("240.0.0.0/4", "255.255.255.255/32")),
)
_NETWORKS = [(name, ipaddress.ip_network(net)) for name, nets in _CLASSES for net in nets]

Resolver = Callable[[str], list[str]]


def address_class(address: IPAddress) -> str | None:
    """The special class of an address ('loopback', 'private'...), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for name, net in _NETWORKS:
        if address.version == net.version and address in net:
            return name
    return None


def is_ip_literal(host: str) -> bool:
    """True when `host` is an IPv4 or IPv6 address (brackets and zone allowed), not a name."""
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
        return True
    except ValueError:
        return False


def host_addresses(host: str, resolver: Resolver) -> list[IPAddress]:
    """The addresses of a host name or IP literal (an IP literal is not looked up)."""
    literal = host.strip("[]")
    try:
        return [ipaddress.ip_address(literal.split("%")[0])]
    except ValueError:
        pass
    out: list[IPAddress] = []
    for text in resolver(host):
        try:
            out.append(ipaddress.ip_address(text))
        except ValueError:
            continue
    return out


class AddressRefused(Exception):
    """A URL whose host has an address in a class the policy refuses (message: one line)."""


class AddressPolicy:
    """Refuses hosts resolving to special addresses, unless the input's own host is in that class."""

    def __init__(self, input_url: str | None, allow_private: bool = False, resolver: Resolver | None = None):
        if resolver is None:  # DNS is network I/O, so it lives in net.py (the one network module)
            from dezoom_steps.net import system_resolver as resolver
        self.allow_private = allow_private
        self._resolver = resolver
        self._lock = threading.Lock()
        self._cache: dict[str, list[IPAddress]] = {}
        self.known = input_url is not None
        self.allowed: frozenset[str] = self._input_classes(input_url)

    def _input_classes(self, input_url: str | None) -> frozenset[str]:
        """The classes the user's own input host belongs to (a local file counts as loopback)."""
        if input_url is None:
            return frozenset()
        if is_file_url(input_url):
            return frozenset({"loopback"})
        from dezoom_steps.scope import host_of  # scope imports nothing from here

        return frozenset(c for c in (address_class(a) for a in self.addresses(host_of(input_url))) if c)

    def addresses(self, host: str) -> list[IPAddress]:
        """The (cached) addresses of `host`."""
        with self._lock:
            got = self._cache.get(host)
        if got is None:
            got = host_addresses(host, self._resolver)
            with self._lock:
                self._cache[host] = got
        return got

    def check(self, url: str, host: str, first_host: str | None = None) -> None:
        """Raise AddressRefused when any address of `host` is in a class that is not allowed.

        Without an input URL (a library call on a URL the caller chose), the classes of
        `first_host`, the host the caller asked for, are allowed: only redirects are checked.
        """
        if self.allow_private:
            return
        allowed = self.allowed
        if not self.known and first_host is not None:
            allowed = frozenset(classes_of(self.addresses(first_host)))
        for address in self.addresses(host):
            cls = address_class(address)
            if cls is not None and cls not in allowed:
                shown = host if host == str(address) else f"{host} ({address})"
                raise AddressRefused(
                    f"refused to connect to {shown}: a {cls} address, and the input is not on a {cls} "
                    f"address; {OPTION} allows it"
                )


def classes_of(addresses: Iterable[IPAddress]) -> set[str]:
    """The special classes among `addresses`."""
    return {c for c in (address_class(a) for a in addresses) if c}


__all__ = ["AddressPolicy", "AddressRefused", "OPTION", "address_class", "classes_of", "host_addresses", "is_ip_literal"]
