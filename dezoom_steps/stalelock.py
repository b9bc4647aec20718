"""Resume after a killed Snakemake run without `snakemake --unlock`: clear locks whose owner is gone.

Snakemake locks its working directory (`.snakemake/locks/*.lock`) for the length of a run and
removes the lock when the run ends, also on Ctrl-C. A run killed with SIGKILL (the OOM killer,
`kill -9`, a closed SSH session's process group) leaves the lock behind, and the next run stops
with "LockException: Directory cannot be locked ... --unlock" (shared/rig/snakemake-notes.md,
"Interrupt and resume"). The lock records which files it covers, not who holds it, so this
module adds the missing half:

* `record_owner()` (the Snakefile's `onstart`, which Snakemake runs after taking the lock)
  writes `.snakemake/dezoom-lock-owner.json`: host, pid and start time of the running Snakemake;
* `clear_stale_locks()` (the Snakefile, while it is parsed, before Snakemake checks the lock)
  removes the lock files when that owner is on this host and no longer running, and every lock
  file is older than the owner record (so a lock taken by a newer run that has not reached its
  `onstart` yet is never touched).

A lock with no owner record (a run killed before it started its first job, or a Snakemake that
is not this workflow) is left alone: `snakemake --unlock` remains the answer there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

OWNER_NAME = "dezoom-lock-owner.json"


def _start_time(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot, /proc), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if fields and fields[0] == "Z":  # a zombie has ended; its parent has not reaped it yet
        return None
    return fields[19] if len(fields) > 19 else None


def _meta_dir(workdir: str | os.PathLike[str] | None) -> Path:
    """The `.snakemake` folder of a working directory (default: the current one)."""
    return Path(workdir or os.getcwd()) / ".snakemake"


def record_owner(workdir: str | os.PathLike[str] | None = None) -> None:
    """Write who holds the lock now: this host, this process and its start time."""
    meta = _meta_dir(workdir)
    meta.mkdir(parents=True, exist_ok=True)
    record = {"host": os.uname().nodename, "pid": os.getpid(), "start": _start_time(os.getpid())}
    tmp = meta / f".{OWNER_NAME}.{os.getpid()}"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, meta / OWNER_NAME)


def stale_locks(workdir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The lock files left by a run of this workflow whose Snakemake no longer runs (else [])."""
    meta = _meta_dir(workdir)
    owner_file = meta / OWNER_NAME
    locks = sorted((meta / "locks").glob("*.lock")) if (meta / "locks").is_dir() else []
    if not locks or not owner_file.is_file():
        return []
    try:
        owner = json.loads(owner_file.read_text())
        recorded = owner_file.stat().st_mtime
        pid, host, start = int(owner["pid"]), str(owner["host"]), owner.get("start")
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if host != os.uname().nodename:
        return []  # a run on another machine sharing this folder: its processes are not visible here
    now_start = _start_time(pid)
    if now_start is not None and now_start == start:
        return []  # the owner still runs
    try:
        if any(lock.stat().st_mtime > recorded for lock in locks):
            return []  # a newer run took the lock and has not recorded itself yet
    except OSError:
        return []
    return locks


def clear_stale_locks(workdir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the stale lock files (see `stale_locks`); returns what was removed."""
    removed = []
    for lock in stale_locks(workdir):
        try:
            lock.unlink()
            removed.append(lock)
        except FileNotFoundError:
            pass
    return removed
