"""Shared plumbing of the step scripts in scripts/: one error line and the exit code."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from dezoom_steps.errors import BUG_EXIT_CODE, DezoomError


def run_step(name: str, body: Callable[[], object], level: int = logging.INFO) -> int:
    """Run a step's body; a DezoomError becomes one stderr line and its exit code.

    Step scripts log at INFO by default: their output goes to the job's log file
    (e.g. the fetch step lists every tile it could not download there).
    """
    logging.basicConfig(level=level, format=f"{name}: %(levelname)s: %(message)s")
    try:
        body()
    except DezoomError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a bug: one line, not a traceback
        print(f"{name}: internal error ({type(exc).__name__}: {exc}); please report it", file=sys.stderr)
        return BUG_EXIT_CODE
    return 0
