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
}


def rig_ports(env: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, int]:
    """The rig's ports: RIG_PORT_<NAME> if set, else RIG_PORT_BASE (18100) + offset."""
    base = int(env.get("RIG_PORT_BASE", "18100"))
    return {name: int(env.get(f"RIG_PORT_{name.upper()}", base + off)) for name, off in PORT_OFFSETS.items()}


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

    def url(self, port: str, path: str) -> str:
        """A URL on one of the rig's ports: rig.url("holes", "/small/dz254o1.dzi")."""
        return self.urls[port] + "/" + path.lstrip("/")


# ------------------------------------------------------------------ running the CLI

def run_dezoom(args: Iterable[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run `python -m dezoom_steps ARGS` in `cwd` with the repository on PYTHONPATH."""
    env = dict(os.environ)
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
_LOG_LINE = re.compile(
    r'^(?P<port>\d+) (?P<addr>\S+) \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<target>\S+)[^"]*" '
    r'(?P<status>\d{3}) (?P<bytes>\d+) rt=\S+ "(?P<referer>[^"]*)" "(?P<ua>[^"]*)"')


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
                                    int(m["bytes"]), m["referer"], m["ua"]))
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
