"""What a test needs from the machine: a skip on a developer machine, a failure under CI=true.

CI installs every tool and server the tests use (scripts/setup.sh --test), so there a missing
one is a broken set-up, never a reason to skip.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True under CI=true (or 1, yes)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(message: str, need: str | None = None) -> NoReturn:
    """Skip with `message`; under CI=true fail with it instead (`need` says why it must run)."""
    if in_ci():
        pytest.fail(f"{message} (CI=true: {need})" if need else message, pytrace=False)
    pytest.skip(message)


def need_tool(name: str, need: str = "required") -> str:
    """The path of command-line tool `name`; `unavailable` when it is not installed."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed", need)
    return path
