"""Command-line flags of the network options, shared by the step scripts and the CLI."""

from __future__ import annotations

import argparse
from typing import Callable, TypeVar

from dezoom_steps.errors import InputError
from dezoom_steps.net import NetOptions, parse_duration, parse_header

T = TypeVar("T")


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
    g.add_argument("-i", "--min-interval", type=duration, default=d.min_interval, help="minimum time between requests (default 50ms)")
    g.add_argument("--timeout", type=duration, default=d.timeout, help="total time per request (default 30s)")
    g.add_argument("--connect-timeout", type=duration, default=d.connect_timeout, help="time to connect (default 6s)")
    g.add_argument("-H", "--header", dest="headers", action="append", type=_checked(parse_header), default=[],
                   metavar="'NAME: VALUE'", help="extra request header (repeatable)")
    g.add_argument("--max-idle-per-host", type=int, default=d.max_idle_per_host, help="idle connections kept per host")
    g.add_argument("--accept-invalid-certs", action="store_true", help="do not verify TLS certificates")


def net_options(args: argparse.Namespace) -> NetOptions:
    """The NetOptions named by parsed flags (raises InputError for impossible values)."""
    return NetOptions(
        parallelism=args.parallelism, retries=args.retries, retry_delay=args.retry_delay,
        min_interval=args.min_interval, timeout=args.timeout, connect_timeout=args.connect_timeout,
        headers=dict(args.headers), accept_invalid_certs=args.accept_invalid_certs,
        max_idle_per_host=args.max_idle_per_host,
    )
