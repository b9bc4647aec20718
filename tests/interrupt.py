"""Test helpers: start a command in its own session and press Ctrl-C once a condition holds;
wait for a killed process group to be gone."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable


def ctrl_c_default() -> None:
    """`preexec_fn` of a command the test will interrupt: SIGINT acts as in a terminal.

    A process started from a non-interactive shell in the background (`cmd &`, as CI runners
    may) inherits SIGINT ignored, and so would every child: the interruption would never arrive.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cached_tiles(folder: Path) -> int:
    """How many tiles a tile cache folder holds (temporary files excluded)."""
    return len([p for p in folder.glob("*") if not p.name.startswith(".")])


def interrupt_when(cmd: list[str], cwd: Path, env: dict[str, str], ready: Callable[[], bool],
                   timeout: float, what: str) -> int:
    """Run `cmd`; once `ready()` is true, send SIGINT to its process group; returns its exit code.

    Fails the test (AssertionError naming `what`) if the command ends first or `ready()` never
    holds within `timeout` seconds. The process group is killed if it outlives the interruption.
    """
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True, preexec_fn=ctrl_c_default,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, f"the command ended before the interruption: {proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, what
            time.sleep(0.1)
        time.sleep(0.5)  # let the held requests reach the server
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    return proc.returncode


def group_gone(pgid: int, timeout: float) -> bool:
    """Wait until no process of group `pgid` is left (True), or `timeout` seconds (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False
