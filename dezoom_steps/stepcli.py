"""Shared command-line plumbing of the step scripts in scripts/: network flags and error exits."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from dezoom_steps import net
from dezoom_steps.errors import BUG_EXIT_CODE, DezoomError, InputError


def duration_arg(text: str) -> float:
    """argparse type: a duration such as 2s, 50ms or 1min."""
    try:
        return net.parse_duration(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_net_flags(p: argparse.ArgumentParser) -> None:
    """Add dezoomify-rs's network flags (same names and defaults as the `dezoom` command)."""
    p.add_argument("--parallelism", "-n", type=int, default=16)
    p.add_argument("--retries", "-r", type=int, default=1)
    p.add_argument("--retry-delay", type=duration_arg, default=2.0)
    p.add_argument("--min-interval", "-i", type=duration_arg, default=0.05)
    p.add_argument("--timeout", type=duration_arg, default=30.0)
    p.add_argument("--connect-timeout", type=duration_arg, default=6.0)
    p.add_argument("-H", "--header", action="append", default=[])
    p.add_argument("--max-idle-per-host", type=int, default=32)
    p.add_argument("--accept-invalid-certs", action="store_true")


def net_options(args: argparse.Namespace) -> net.NetOptions:
    """NetOptions from flags added by `add_net_flags` (headers validated)."""
    headers = dict(net.parse_header(h) for h in args.header)
    return net.NetOptions(
        parallelism=args.parallelism, retries=args.retries, retry_delay=args.retry_delay,
        min_interval=args.min_interval, timeout=args.timeout, connect_timeout=args.connect_timeout,
        headers=headers, accept_invalid_certs=args.accept_invalid_certs,
        max_idle_per_host=args.max_idle_per_host)


def run_step(name: str, body: Callable[[], object]) -> int:
    """Run a step's body; a DezoomError becomes one stderr line and its exit code."""
    logging.basicConfig(level=logging.WARNING, format=f"{name}: %(levelname)s: %(message)s")
    try:
        body()
    except DezoomError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a bug: one line, not a traceback
        print(f"{name}: internal error ({type(exc).__name__}: {exc}); please report it", file=sys.stderr)
        return BUG_EXIT_CODE
    return 0
