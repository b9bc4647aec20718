"""Shared plumbing of the step scripts in scripts/: one error line and the exit code."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Callable

from dezoom_steps.errors import BUG_EXIT_CODE, DezoomError
from dezoom_steps.jsonio import atomic_write_bytes
from dezoom_steps.redact import install_log_redaction, redact_text


def run_step(name: str, body: Callable[[], object], level: int = logging.INFO,
             error_file: Path | None = None) -> int:
    """Run a step's body; a DezoomError becomes one stderr line and its exit code.

    Step scripts log at INFO by default: their output goes to the job's log file
    (e.g. the fetch step lists every tile it could not download there). With `error_file`,
    the error is also recorded there for the run's summary (and a stale record removed on
    success).
    """
    logging.basicConfig(level=level, format=f"{name}: %(levelname)s: %(message)s")
    install_log_redaction()  # field notes S6: no secret in the job logs
    try:
        body()
    except DezoomError as exc:
        print(f"{name}: error: {redact_text(str(exc))}", file=sys.stderr)
        if error_file is not None:
            record = {"step": name, "error": redact_text(str(exc)), "exit_code": exc.exit_code}
            atomic_write_bytes(error_file, (json.dumps(record) + "\n").encode())
        return exc.exit_code
    except Exception as exc:  # a bug: one line, not a traceback
        print(f"{name}: internal error ({type(exc).__name__}: {redact_text(str(exc))}); please report it", file=sys.stderr)
        return BUG_EXIT_CODE
    if error_file is not None:
        error_file.unlink(missing_ok=True)
    return 0
