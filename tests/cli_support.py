"""Helpers shared by the CLI tests: run `python -m dezoom_steps` as a subprocess and check its outcome.

The command runs in a folder of the test's own, with TMPDIR pointing at another empty folder,
so a test can check that a failed run left nothing behind: no output, no sidecar, no temporary
file beside the output and no leftover work folder.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "examples" / "demo"
DEMO_DZI = DEMO / "demo.dzi"
DEMO_SOURCE = DEMO / "source.png"
DEMO_SIZE = (1200, 800)  # <Size> of examples/demo/demo.dzi
DEMO_TILE = 256  # TileSize of examples/demo/demo.dzi
JPEG_NOISE = 4.0  # mean absolute difference allowed between a stitched image and the source
RUN_TIMEOUT = 60.0
EXIT = {"input": 2, "metadata": 3, "network": 4, "output": 5, "partial": 6}  # README "Exit codes"


@dataclass
class CliResult:
    """A finished `dezoom` run: exit code and captured output."""

    args: list[str]
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """The non-empty lines of stderr."""
        return [line for line in self.stderr.splitlines() if line.strip()]

    def describe(self) -> str:
        """The command and its outcome, for assertion messages."""
        return f"dezoom {' '.join(self.args)} -> exit {self.code}\nstdout: {self.stdout!r}\nstderr: {self.stderr!r}"


def cli_env(tmpdir: Path) -> dict[str, str]:
    """The environment of a run: the repository importable, temporary files in `tmpdir`, no proxy."""
    tmpdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(PYTHONPATH=str(REPO), TMPDIR=str(tmpdir), NO_PROXY="127.0.0.1,localhost",
               no_proxy="127.0.0.1,localhost", PYTHONDONTWRITEBYTECODE="1")
    return env


def run_dezoom(cwd: Path, *args: str, tmpdir: Path | None = None, timeout: float = RUN_TIMEOUT) -> CliResult:
    """Run `python -m dezoom_steps ARGS` in `cwd` (created if needed) and return its outcome."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = cli_env(tmpdir if tmpdir is not None else cwd.parent / (cwd.name + ".tmp"))
    proc = subprocess.run([sys.executable, "-m", "dezoom_steps", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return CliResult(list(args), proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: CliResult, code: int, *names: str) -> str:
    """Check the exit code, exactly one stderr line naming every string of `names`, no traceback."""
    assert result.code == code, result.describe()
    assert "Traceback" not in result.stderr + result.stdout, result.describe()
    assert len(result.lines) == 1, f"expected exactly one line on stderr\n{result.describe()}"
    line = result.lines[0]
    for name in names:
        assert name in line, f"the error line does not name {name!r}\n{result.describe()}"
    return line


def assert_left_nothing(folder: Path, expected: set[str] | None = None) -> None:
    """The folder holds exactly `expected` (default: nothing): no output, sidecar or temporary file."""
    found = {p.name for p in folder.iterdir()} if folder.exists() else set()
    assert found == (expected or set()), f"unexpected files left in {folder}: {sorted(found - (expected or set()))}"


def demo_levels() -> list[tuple[int, int]]:
    """The demo's DeepZoom level sizes, smallest first: ceil-halvings of 1200x800 down to 1x1."""
    w, h = DEMO_SIZE
    sizes = [(w, h)]
    while (w, h) != (1, 1):
        w, h = max(1, math.ceil(w / 2)), max(1, math.ceil(h / 2))
        sizes.append((w, h))
    return sizes[::-1]


def demo_tile_paths(prefix: str = "/demo") -> list[str]:
    """Server paths of every tile of the demo's largest level (`{prefix}/demo_files/11/c_r.jpg`)."""
    w, h = DEMO_SIZE
    top = len(demo_levels()) - 1
    return [f"{prefix}/demo_files/{top}/{c}_{r}.jpg"
            for r in range(math.ceil(h / DEMO_TILE)) for c in range(math.ceil(w / DEMO_TILE))]


def serve_demo_copy(site: Path) -> Path:
    """Copy the demo pyramid to `site/demo` (so a test may edit it); returns that folder."""
    dest = site / "demo"
    shutil.copytree(DEMO, dest)
    return dest


def pixels(path: Path) -> np.ndarray:
    """The RGB pixels of an image file as int16 (room for differences)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two same-shaped pixel arrays."""
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    return float(np.abs(a - b).mean())


def assert_matches_source(path: Path) -> None:
    """The image at `path` is the demo's source image, up to JPEG noise."""
    got, want = pixels(path), pixels(DEMO_SOURCE)
    assert got.shape == want.shape, f"{path} is {got.shape[1]}x{got.shape[0]}, not {DEMO_SIZE}"
    assert mean_abs_diff(got, want) < JPEG_NOISE


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file."""
    with Image.open(path) as im:
        return im.size


def request_paths(srv) -> list[str]:  # noqa: ANN001 (a faultserver_fixture.FaultServer)
    """The paths of every request the fault server received, in order."""
    return [r["path"] for r in srv.requests()]


def tile_request_paths(srv) -> list[str]:  # noqa: ANN001
    """The paths of the requests for image files (tiles), in order."""
    exts = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif")
    return [p for p in request_paths(srv) if p.split("?")[0].lower().endswith(exts)]
