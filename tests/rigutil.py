"""Helpers for tests against the loopback rig: its address book, running the CLI, comparing
pixels with the reference image and reading nginx's access log."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
RIG_DIR = REPO / "tests" / "rig"

# Port names and their offsets from RIG_PORT_BASE; tests/rig/ports.sh has the same table.
PORT_OFFSETS: dict[str, int] = {
    "static": 1, "referer": 2, "flaky": 3, "ratelimit": 4,
    "holes": 5, "headers": 6, "iip": 7, "iipsrv": 8,
    "auth": 9, "redirect": 10, "slow": 11, "strict": 12, "once": 13,
}
DEFAULT_PORT_BASE = 18100
# Basic-auth credentials of the `auth` port (start_servers.sh: RIG_AUTH_USER, RIG_AUTH_PASSWORD).
AUTH_USER, AUTH_PASSWORD = "rig", "open-sesame"
# The cookie the `headers` port wants (start_servers.sh).
HEADERS_COOKIE = "session=s3cret"


def rig_ports(env: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, int]:
    """The rig's ports: RIG_PORT_<NAME> if set, else RIG_PORT_BASE (18100) + offset."""
    base = int(env.get("RIG_PORT_BASE", str(DEFAULT_PORT_BASE)))
    return {name: int(env.get(f"RIG_PORT_{name.upper()}", base + off)) for name, off in PORT_OFFSETS.items()}


def rig_run_dir(env: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    """The rig's runtime folder: RIG_RUN_DIR, else tests/rig/run (default ports) or
    tests/rig/run/port-<base> (another RIG_PORT_BASE), as in tests/rig/ports.sh."""
    if env.get("RIG_RUN_DIR"):
        return Path(env["RIG_RUN_DIR"])
    base = int(env.get("RIG_PORT_BASE", str(DEFAULT_PORT_BASE)))
    return RIG_DIR / "run" if base == DEFAULT_PORT_BASE else RIG_DIR / "run" / f"port-{base}"


@dataclass(frozen=True)
class Rig:
    """Where the running rig lives: one base URL per port, and its files."""

    ports: dict[str, int]
    data_dir: Path
    run_dir: Path
    urls: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        """Derive the base URLs from the ports."""
        # the iipsrv port speaks FastCGI, not HTTP: reach iipsrv through `iip` (nginx)
        object.__setattr__(self, "urls", {n: f"http://127.0.0.1:{p}" for n, p in self.ports.items()
                                          if n != "iipsrv"})

    # base URLs, e.g. rig.static == "http://127.0.0.1:18101"
    static = property(lambda self: self.urls["static"])
    referer = property(lambda self: self.urls["referer"])
    flaky = property(lambda self: self.urls["flaky"])
    ratelimit = property(lambda self: self.urls["ratelimit"])
    holes = property(lambda self: self.urls["holes"])
    headers = property(lambda self: self.urls["headers"])
    iip = property(lambda self: self.urls["iip"])
    auth = property(lambda self: self.urls["auth"])
    redirect = property(lambda self: self.urls["redirect"])
    slow = property(lambda self: self.urls["slow"])
    strict = property(lambda self: self.urls["strict"])
    once = property(lambda self: self.urls["once"])

    @property
    def iipsrv(self) -> str:
        """The iipsrv FastCGI endpoint behind nginx (add ?IIIF=, ?DeepZoom=, ?Zoomify=, ?FIF=)."""
        return f"{self.iip}/fcgi-bin/iipsrv.fcgi"

    @property
    def viewer_url(self) -> str:
        """The page URL the referer port wants as Referer."""
        return f"{self.referer}/viewer.html"

    @property
    def www_dir(self) -> Path:
        """The folder every nginx port serves."""
        return self.data_dir / "www"

    @property
    def ref_small(self) -> Path:
        """Lossless reference of the small (1000x700) test image."""
        return self.www_dir / "ref" / "small.png"

    @property
    def ref_small_json(self) -> Path:
        """Formula and label box of the small test image."""
        return self.www_dir / "ref" / "small.json"

    @property
    def access_log(self) -> Path:
        """nginx's access log (all ports; first field is the port)."""
        return self.run_dir / "logs" / "nginx-access.log"

    def port_log(self, port: str) -> Path:
        """The access log of one port only (logs/access-<port name>.log; same format)."""
        return self.run_dir / "logs" / f"access-{port}.log"

    def url(self, port: str, path: str) -> str:
        """A URL on one of the rig's ports: rig.url("holes", "/small/dz254o1.dzi")."""
        return self.urls[port] + "/" + path.lstrip("/")


# ------------------------------------------------------------------ running the CLI

def run_dezoom(args: Iterable[str], cwd: Path, timeout: float = 180,
               extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m dezoom_steps ARGS` in `cwd` with the repository on PYTHONPATH (and
    `extra_env` added to the environment)."""
    env = dict(os.environ, **(extra_env or {}))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "dezoom_steps", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    """A failure message with the command line, exit code and output tails of a CLI run."""
    cmd = " ".join(proc.args[2:]) if isinstance(proc.args, list) else str(proc.args)
    return (f"\n$ {cmd}\nexit code {proc.returncode}\n--- stderr (tail) ---\n{proc.stderr[-2000:]}"
            f"\n--- stdout (tail) ---\n{proc.stdout[-1000:]}")


# ------------------------------------------------------------------ pixels

def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as an (H, W, 3) int16 array (int16 so differences do not wrap)."""
    Image.MAX_IMAGE_PIXELS = None  # test images may be larger than Pillow's bomb limit
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference over every pixel and channel of two same-size images."""
    assert a.shape == b.shape, f"size differs: {a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]}"
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def worst_block_diff(a: np.ndarray, b: np.ndarray, block: int = 32,
                     ignore: tuple[int, int, int, int] | None = None) -> tuple[float, tuple[int, int]]:
    """The largest mean absolute difference of any block x block cell, and that cell's (x, y).

    `ignore` = (x, y, w, h) is left out (the text label, where JPEG noise is strongest).
    A missing, swapped or duplicated tile makes some cell differ by far more than JPEG noise,
    even where the image-wide mean hardly moves.
    """
    d = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2)
    if ignore is not None:
        x, y, w, h = ignore
        d[max(0, y):y + h, max(0, x):x + w] = 0
    worst, where = 0.0, (0, 0)
    for y in range(0, d.shape[0], block):
        for x in range(0, d.shape[1], block):
            m = float(d[y:y + block, x:x + block].mean())
            if m > worst:
                worst, where = m, (x, y)
    return worst, where


def misaligned_blocks(out: np.ndarray, ref: np.ndarray, block: int = 128,
                      radius: int = 1) -> list[tuple[int, int, int, int]]:
    """Cells of `out` that match `ref` better when moved by up to `radius` pixels.

    Returns (x, y, dx, dy) for every block x block cell whose best offset is not (0, 0). The
    test image's red and green channels are ramps, so a one-pixel slip (an overlap handled
    off by one) is detected here although it hardly changes the mean difference.
    """
    h_all, w_all = ref.shape[:2]
    bad = []
    for y in range(0, h_all, block):
        for x in range(0, w_all, block):
            h, w = min(block, h_all - y), min(block, w_all - x)
            cell = out[y:y + h, x:x + w]
            scores = {}
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy and 0 <= xx and yy + h <= h_all and xx + w <= w_all:
                        scores[(dx, dy)] = float(np.abs(cell - ref[yy:yy + h, xx:xx + w]).mean())
            best = min(scores, key=lambda k: (scores[k], k != (0, 0)))
            if best != (0, 0):
                bad.append((x, y, *best))
    return bad


@dataclass(frozen=True)
class Comparison:
    """How a stitched image differs from the reference."""

    mean: float
    worst_block: float
    worst_block_at: tuple[int, int]
    misaligned: list[tuple[int, int, int, int]]

    def problems(self, max_mean: float, max_block: float) -> list[str]:
        """Human-readable reasons why this comparison fails the given limits (empty = pass)."""
        out = []
        if self.mean > max_mean:
            out.append(f"mean |diff| {self.mean:.3f} > {max_mean}")
        if self.worst_block > max_block:
            out.append(f"32px cell at {self.worst_block_at} differs by {self.worst_block:.2f} > {max_block}")
        if self.misaligned:
            out.append(f"{len(self.misaligned)} cells fit better shifted, e.g. (x, y, dx, dy) = {self.misaligned[:3]}")
        return out


def compare(out: np.ndarray, ref: np.ndarray, label_box: tuple[int, int, int, int] | None = None) -> Comparison:
    """Compare a stitched image with the reference on all three measures (sizes must match)."""
    assert out.shape == ref.shape, (
        f"size differs: got {out.shape[1]}x{out.shape[0]}, reference is {ref.shape[1]}x{ref.shape[0]}")
    worst, at = worst_block_diff(out, ref, ignore=label_box)
    return Comparison(mean_abs_diff(out, ref), worst, at, misaligned_blocks(out, ref))


def label_box(ref_json: dict, margin: int = 8) -> tuple[int, int, int, int]:
    """The text label's box from the reference's JSON description, grown by `margin`."""
    b = ref_json["label_bbox"]
    return (b["x"] - margin, b["y"] - margin, b["w"] + 2 * margin, b["h"] + 2 * margin)


# ------------------------------------------------------------------ nginx access log

# log_format "rig" in tests/rig/start_servers.sh:
#   $server_port $remote_addr [$time_local] "$request" $status $body_bytes_sent rt=... "referer" "ua"
#   t=$msec (the time the request ended, epoch seconds with ms; absent in logs of older rigs)
_LOG_LINE = re.compile(
    r'^(?P<port>\d+) (?P<addr>\S+) \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<target>\S+)[^"]*" '
    r'(?P<status>\d{3}) (?P<bytes>\d+) rt=(?P<rt>[\d.]+|-) "(?P<referer>[^"]*)" "(?P<ua>[^"]*)"'
    r'(?: t=(?P<msec>[\d.]+))?')


@dataclass(frozen=True)
class LogEntry:
    """One request from nginx's access log."""

    port: int
    method: str
    target: str  # path plus query string, as requested
    status: int
    bytes: int
    referer: str
    user_agent: str
    end: float = 0.0       # when nginx finished the request (epoch seconds; 0 when not logged)
    duration: float = 0.0  # nginx's $request_time: from the first byte read to the last written

    @property
    def start(self) -> float:
        """When nginx started reading the request (epoch seconds; 0 when not logged)."""
        return self.end - self.duration if self.end else 0.0

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]


def log_offset(log: Path) -> int:
    """The current end of the log; pass it as `since` to read only later requests."""
    try:
        return log.stat().st_size
    except FileNotFoundError:
        return 0


def read_access_log(log: Path, since: int = 0) -> list[LogEntry]:
    """The requests logged after byte offset `since` (lines that do not parse are skipped)."""
    try:
        with open(log, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    entries = []
    for line in text.splitlines():
        m = _LOG_LINE.match(line)
        if m:
            entries.append(LogEntry(int(m["port"]), m["method"], m["target"], int(m["status"]),
                                    int(m["bytes"]), m["referer"], m["ua"], float(m["msec"] or 0),
                                    float(m["rt"]) if m["rt"] != "-" else 0.0))
    return entries


def requests_per_path(log: Path, port: int, since: int = 0, prefix: str = "",
                      status: int | None = None) -> Counter[str]:
    """How many times each target under `prefix` was requested on `port` (optionally one status)."""
    return Counter(e.target for e in read_access_log(log, since)
                   if e.port == port and e.target.startswith(prefix) and (status is None or e.status == status))


def servers_running(run_dir: Path) -> bool:
    """True when both servers named by the rig's pid files (nginx, iipsrv) are alive."""
    for name in ("nginx", "iipsrv"):
        try:
            pid = int((run_dir / f"{name}.pid").read_text().strip())
            if name not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                return False
        except (OSError, ValueError):
            return False
    return True
