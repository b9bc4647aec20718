"""Measuring one child process from outside: wall time, peak RSS, CPU user and system time.

Every measured command runs under GNU time (`/usr/bin/time -v`), a tiny launcher process
that forks the command and reports the rusage of that child alone. The benchmark's own
interpreter is never the measured process's parent, so its memory never leaks into a
figure (on Linux a process started from a big parent inherits that parent's peak RSS).
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

TIME_BIN = "/usr/bin/time"
MB = 1e6


@dataclass
class Run:
    """What one child process cost, and what it printed."""

    cmd: list[str]
    exit_code: int
    wall_s: float
    peak_rss_kb: int
    user_s: float
    sys_s: float
    load1: float
    stdout: str = ""
    stderr: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """The process exited with status 0."""
        return self.exit_code == 0

    def figures(self) -> dict[str, Any]:
        """The JSON record of this run (rounded; ratios are computed from these values)."""
        return {"wall_s": round(self.wall_s, 3), "peak_rss_mb": round(self.peak_rss_kb * 1024 / MB, 1),
                "user_s": round(self.user_s, 2), "sys_s": round(self.sys_s, 2), "exit": self.exit_code,
                "load1_at_start": round(self.load1, 2), **self.extra}

    def failure(self, what: str) -> str:
        """One paragraph naming the failed command, its exit code and its output's tail."""
        return (f"{what}: exit {self.exit_code}: {' '.join(self.cmd)}\n"
                f"{self.stderr.strip()[-1200:]}\n{self.stdout.strip()[-400:]}").strip()


def time_available() -> bool:
    """GNU time is installed where the bench expects it."""
    return os.access(TIME_BIN, os.X_OK)


def measure(cmd: Sequence[str], cwd: Path, env: dict[str, str], timeout: float = 1800) -> Run:
    """Run `cmd` under `/usr/bin/time -v` in `cwd`; its wall time, peak RSS and CPU times.

    Pending writes are flushed (`sync`) before the clock starts, so that no run pays for the
    previous one's output.
    """
    cmd = [str(c) for c in cmd]
    # Untimed: the previous run's writes reach the disk now, not during this run (GDAL's 220 MB
    # uncompressed TIFF, flushed in the background, slowed down whatever ran after it).
    os.sync()
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        out_p, err_p, time_p = Path(tmp, "out"), Path(tmp, "err"), Path(tmp, "time")
        load1 = os.getloadavg()[0]
        with open(out_p, "wb") as out, open(err_p, "wb") as err:
            start = time.perf_counter()
            proc = subprocess.Popen([TIME_BIN, "-v", "-o", str(time_p), *cmd], cwd=cwd, env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
            # on time-out, kill the new process group (GNU time and the command), by its id
            timer = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
            timer.start()
            try:
                proc.wait()
            finally:
                timer.cancel()
            wall = time.perf_counter() - start
        stdout, stderr = out_p.read_text(errors="replace"), err_p.read_text(errors="replace")
        report = time_p.read_text(errors="replace") if time_p.exists() else ""
    if not report:  # GNU time itself was killed (time-out): nothing measured
        return Run(cmd, proc.returncode or -9, wall, 0, 0.0, 0.0, load1, stdout,
                   stderr + f"\nbench: no report from {TIME_BIN} (timed out after {timeout:.0f} s?)")
    return Run(cmd, int(_field(report, r"Exit status: (-?\d+)", str(proc.returncode))), wall,
               int(_field(report, r"Maximum resident set size \(kbytes\): (\d+)", "0")),
               float(_field(report, r"User time \(seconds\): ([\d.]+)", "0")),
               float(_field(report, r"System time \(seconds\): ([\d.]+)", "0")), load1, stdout, stderr)


def _field(text: str, pattern: str, default: str) -> str:
    """The first group of `pattern` in GNU time's report, else `default`."""
    m = re.search(pattern, text)
    return m.group(1) if m else default


def spread(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """min, median and max of `values` (None each when there are none)."""
    if not values:
        return {"min": None, "median": None, "max": None, "n": 0}
    return {"min": round(min(values), digits), "median": round(statistics.median(values), digits),
            "max": round(max(values), digits), "n": len(values)}
