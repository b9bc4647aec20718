"""Command-line flags of the network options, shared by the step scripts and the CLI."""

from __future__ import annotations

import argparse
import re
from typing import Callable, TypeVar

from dezoom_steps.errors import InputError
from dezoom_steps.net import NetOptions, parse_duration, parse_header

T = TypeVar("T")
_SIZE = re.compile(r"^(\d+)\s*(k|kb|kib|m|mb|mib|g|gb|gib|b)?$", re.IGNORECASE)
_SIZE_FACTOR = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
                "g": 1024**3, "gb": 1000**3, "gib": 1024**3}


def parse_size(text: str) -> int:
    """Bytes in a size such as `4194304`, `4MiB`, `64M` (= MiB), `500kB` or `2GB`."""
    match = _SIZE.match(text.strip())
    if not match or int(match.group(1)) < 1:
        raise InputError(f"Invalid size {text!r}: a positive number of bytes, optionally with a unit (kB, KiB, MB, MiB, GB, GiB)")
    return int(match.group(1)) * _SIZE_FACTOR[(match.group(2) or "").lower()]


def _checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse `type=` wrapper turning an InputError into argparse's own error line."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def add_net_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the dezoomify-rs network flags (spec §6) with their defaults."""
    d = NetOptions()
    duration = _checked(parse_duration)
    g = parser.add_argument_group("network")
    g.add_argument("-n", "--parallelism", type=int, default=d.parallelism, help="concurrent tile downloads (default %(default)s)")
    g.add_argument("-r", "--retries", type=int, default=d.retries, help="extra attempts per tile (default %(default)s)")
    g.add_argument("--retry-delay", type=duration, default=d.retry_delay, help="first retry delay, doubling (default 2s)")
    g.add_argument("-i", "--min-interval", type=duration, default=d.min_interval, help="minimum time between request starts to one host (default 50ms)")
    g.add_argument("--timeout", type=duration, default=d.timeout, help="total time per request (default 30s)")
    g.add_argument("--connect-timeout", type=duration, default=d.connect_timeout, help="time to connect (default 6s)")
    g.add_argument("-H", "--header", dest="headers", action="append", type=_checked(parse_header), default=[],
                   metavar="'NAME: VALUE'", help="extra request header (repeatable)")
    g.add_argument("--max-idle-per-host", type=int, default=d.max_idle_per_host, help="idle connections kept per host")
    g.add_argument("--accept-invalid-certs", action="store_true", help="do not verify TLS certificates")
    # Authentication, TLS and address policy (field notes S2, S6, S8, S12; README "Authentication").
    g.add_argument("--header-host", dest="header_hosts", action="append", default=[], metavar="HOST",
                   help="also send -H headers to HOST ('*.example.org' for subdomains, '*' for every host; "
                        "repeatable; default: the input URL's host only)")
    g.add_argument("--cookies", dest="cookies_file", metavar="FILE",
                   help="Netscape cookies.txt; each request gets the cookies matching its domain and path")
    g.add_argument("--inherit-query", action="store_true",
                   help="add the input URL's query string (e.g. ?token=) to same-host tile and document URLs")
    g.add_argument("--insecure-host", dest="insecure_hosts", action="append", default=[], metavar="HOST",
                   help="do not verify the TLS certificate of HOST only (repeatable)")
    g.add_argument("--ca-bundle", metavar="FILE", help="PEM file of the certificate authorities to trust")
    g.add_argument("--allow-private-networks", action="store_true",
                   help="allow requests to loopback, private and link-local addresses named by remote metadata")
    g.add_argument("--max-document-bytes", type=_checked(parse_size), default=d.max_document_bytes, metavar="SIZE",
                   help="largest metadata document (default 4MiB)")
    g.add_argument("--max-tile-bytes", type=_checked(parse_size), default=d.max_tile_bytes, metavar="SIZE",
                   help="largest tile body (default 64MiB)")
    g.add_argument("--input-url", metavar="URL", help=argparse.SUPPRESS)  # the real input URL (step files hold it redacted)
    # Politeness, retries by cause, anti-bot blocks and tile checks (politeness.py, retrypolicy.py, tilecheck.py).
    g.add_argument("--host-parallelism", type=int, default=d.host_parallelism, metavar="N",
                   help="requests in flight per host (default: --parallelism); halved on 429/503, then recovers")
    g.add_argument("--max-retry-after", type=duration, default=d.max_retry_after, metavar="DURATION",
                   help="longest Retry-After honoured; a longer one waits this long (default 60s)")
    g.add_argument("--tile-check", choices=("decode", "header"), default=d.tile_check,
                   help="decode: a tile must decode fully (default); header: magic bytes and image header only")
    g.add_argument("--check-workers", type=int, default=d.check_workers, metavar="N",
                   help="processes that check tiles beside the download (default: 1 for 256 tiles or more "
                        "on a machine with 2+ CPUs, else 0: checked in the download loop)")
    g.add_argument("--block-file", default=d.block_file, metavar="FILE",
                   help="record of hosts that served an anti-bot page (default: blocked-hosts.json in the tile cache)")
    g.add_argument("--ignore-block", action="store_true",
                   help="forget recorded anti-bot blocks and try those hosts again")


def net_options(args: argparse.Namespace) -> NetOptions:
    """The NetOptions named by parsed flags (raises InputError for impossible values)."""
    return NetOptions(
        parallelism=args.parallelism, retries=args.retries, retry_delay=args.retry_delay,
        min_interval=args.min_interval, timeout=args.timeout, connect_timeout=args.connect_timeout,
        headers=dict(args.headers), accept_invalid_certs=args.accept_invalid_certs,
        max_idle_per_host=args.max_idle_per_host,
        header_hosts=tuple(args.header_hosts), cookies_file=args.cookies_file, inherit_query=args.inherit_query,
        insecure_hosts=tuple(args.insecure_hosts), ca_bundle=args.ca_bundle,
        allow_private_networks=args.allow_private_networks, max_document_bytes=args.max_document_bytes,
        max_tile_bytes=args.max_tile_bytes, input_url=args.input_url,
        host_parallelism=args.host_parallelism, max_retry_after=args.max_retry_after, tile_check=args.tile_check,
        check_workers=args.check_workers,
        block_file=args.block_file, ignore_block=args.ignore_block,
    )
