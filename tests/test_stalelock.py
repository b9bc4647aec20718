"""dezoom_steps.stalelock: a Snakemake lock is cleared only when the run that took it is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dezoom_steps import stalelock


def _locked(workdir: Path) -> list[Path]:
    """Lock files as Snakemake writes them (.snakemake/locks/0.input.lock, 0.output.lock)."""
    locks = workdir / ".snakemake" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    out = []
    for kind in ("input", "output"):
        lock = locks / f"0.{kind}.lock"
        lock.write_text(f"{workdir}/results/x.png\n")
        out.append(lock)
    return out


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _record(workdir: Path, pid: int, start: str | None, host: str | None = None) -> None:
    """An owner record naming `pid`, written after the locks (as `onstart` does)."""
    time.sleep(0.01)
    stalelock.record_owner(workdir)
    path = workdir / ".snakemake" / stalelock.OWNER_NAME
    record = json.loads(path.read_text())
    record.update(pid=pid, start=start, **({"host": host} if host else {}))
    path.write_text(json.dumps(record))


def test_the_lock_of_a_killed_run_is_cleared(tmp_path):
    locks = _locked(tmp_path)
    _record(tmp_path, _dead_pid(), "123")
    assert stalelock.clear_stale_locks(tmp_path) == locks
    assert not any(lock.exists() for lock in locks)


def test_a_running_owner_keeps_its_lock(tmp_path):
    locks = _locked(tmp_path)
    stalelock.record_owner(tmp_path)  # this very process holds it
    assert stalelock.clear_stale_locks(tmp_path) == []
    assert all(lock.exists() for lock in locks)


def test_a_reused_pid_does_not_keep_a_stale_lock(tmp_path):
    locks = _locked(tmp_path)
    _record(tmp_path, os.getpid(), "1")  # our pid, but another start time: not the owner
    assert stalelock.clear_stale_locks(tmp_path) == locks


def test_a_lock_newer_than_the_record_belongs_to_a_run_starting_now(tmp_path):
    _record(tmp_path, _dead_pid(), "123")
    time.sleep(0.01)
    locks = _locked(tmp_path)  # taken after the dead run's record: a new run, before its onstart
    assert stalelock.clear_stale_locks(tmp_path) == []
    assert all(lock.exists() for lock in locks)


def test_an_owner_on_another_host_or_no_record_keeps_the_lock(tmp_path):
    locks = _locked(tmp_path)
    assert stalelock.clear_stale_locks(tmp_path) == []  # no record: `snakemake --unlock` decides
    _record(tmp_path, _dead_pid(), "123", host="another-node")
    assert stalelock.clear_stale_locks(tmp_path) == []
    assert all(lock.exists() for lock in locks)
