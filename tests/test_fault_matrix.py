"""The fault matrix: DZI, Zoomify and IIIF downloads through every hostile variant of the rig.

Each case runs the real `dezoom` command, with the options a user of that server would need,
against one nginx port of tests/rig/ (seeded chaos, rate limit with Retry-After, slow, fixed
404 holes, Referer-protected, cookie-and-User-Agent-protected, Basic auth, redirects), and checks:

* every obtainable tile obtained: each tile answered 200 exactly once, each true hole (404)
  requested exactly once and left black, the sidecar listing exactly the holes;
* the output pixel-identical to the same download from the clean `static` port, cell by tile
  cell, except the holes' cells;
* the number of requests, read from nginx's per-port access logs for that run, within the bound
  the variant states (`Variant.bound`, in units of the clean run's tiles and metadata requests).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from rigutil import (AUTH_PASSWORD, AUTH_USER, HEADERS_COOKIE, LogEntry, Rig, compare, describe, label_box,
                     load_rgb, log_offset, read_access_log, run_dezoom)

pytestmark = pytest.mark.rig

W, H = 1000, 700  # the rig's small test image
TILE_SUFFIXES = (".jpg", ".jpeg", ".png")
REDIRECT_PREFIX = re.compile(r"^/(?:r|r2|x)(?=/)")  # the redirect port's /r/, /r2/ and /x/ hops
FAST = ["--retry-delay", "50ms"]
# The clean runs against the lossless source: JPEG Q75 noise (limits of tests/test_rig_e2e.py)
CLEAN_MEAN, CLEAN_BLOCK = 2.5, 10.0


# ------------------------------------------------------------------ the three formats

def _dzi_cell(path: str) -> tuple[int, int, int, int]:
    """DeepZoom {level}/{col}_{row}.jpeg of dz254o1: 254 px cells (overlap 1 is cropped)."""
    col, row = map(int, re.search(r"/(\d+)_(\d+)\.jpe?g$", path).groups())
    return _grid_cell(col, row, 254)


def _zoomify_cell(path: str) -> tuple[int, int, int, int]:
    """Zoomify TileGroupN/{z}-{x}-{y}.jpg of zoomify256: 256 px cells."""
    x, y = map(int, re.search(r"/\d+-(\d+)-(\d+)\.jpg$", path).groups())
    return _grid_cell(x, y, 256)


def _iiif_cell(path: str) -> tuple[int, int, int, int]:
    """IIIF level 0 {x},{y},{w},{h}/{size}/0/default.jpg: the region is the cell."""
    x, y, w, h = map(int, re.search(r"/(\d+),(\d+),(\d+),(\d+)/", path).groups())
    return x, y, w, h


def _grid_cell(col: int, row: int, size: int) -> tuple[int, int, int, int]:
    """The (x, y, w, h) of grid cell (col, row) of a W x H image cut in size x size tiles."""
    x, y = col * size, row * size
    return x, y, min(size, W - x), min(size, H - y)


@dataclass(frozen=True)
class Format:
    """One pyramid of the same source image, as the rig serves it on every port."""

    name: str
    path: str  # metadata path
    cell: Callable[[str], tuple[int, int, int, int]]  # tile path -> its cell in the image


FORMATS = [
    Format("dzi", "/small/dz254o1.dzi", _dzi_cell),
    Format("zoomify", "/small/zoomify256/ImageProperties.xml", _zoomify_cell),
    Format("iiif", "/small/iiif512/info.json", _iiif_cell),
]


# ------------------------------------------------------------------ one run and what it requested

@dataclass
class Run:
    """One `dezoom` run: the process, its output pixels and the requests the rig logged."""

    proc: subprocess.CompletedProcess[str]
    out: Path
    requests: list[LogEntry]

    def tiles(self) -> dict[str, list[int]]:
        """Statuses of the tile requests, in order, by tile path (query and redirect hop removed)."""
        by_tile: dict[str, list[int]] = defaultdict(list)
        for e in self.requests:
            if e.path.endswith(TILE_SUFFIXES):
                by_tile[canonical(e.path)].append(e.status)
        return dict(by_tile)

    def metadata_requests(self) -> int:
        """How many requests were not for tiles (metadata and its redirect hops)."""
        return sum(1 for e in self.requests if not e.path.endswith(TILE_SUFFIXES))


def canonical(path: str) -> str:
    """A tile path without the redirect port's /r/, /r2/ or /x/ hop prefix."""
    return REDIRECT_PREFIX.sub("", path)


def dezoom(rig: Rig, workdir: Path, url: str, args: list[str], ports: list[str],
           env: dict[str, str] | None = None) -> Run:
    """Run `dezoom URL out.png ARGS` in `workdir`; collect the requests logged on `ports`."""
    workdir.mkdir(parents=True, exist_ok=True)
    logs = {p: rig.port_log(p) for p in ports}
    since = {p: log_offset(log) for p, log in logs.items()}
    proc = run_dezoom([url, "out.png", "--largest", *args], cwd=workdir, timeout=240, extra_env=env)
    assert "Traceback" not in proc.stderr, describe(proc)
    requests = [e for p, log in logs.items() for e in read_access_log(log, since[p])]
    return Run(proc, workdir / "out.png", sorted(requests, key=lambda e: e.start))


@pytest.fixture(scope="module")
def clean(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The reference downloads: every format from the clean `static` port (checked against the
    rig's lossless source image)."""
    source = load_rgb(rig.ref_small)
    box = label_box(json.loads(rig.ref_small_json.read_text()))
    runs = {}
    for fmt in FORMATS:
        run = dezoom(rig, tmp_path_factory.mktemp(f"clean-{fmt.name}"), rig.url("static", fmt.path),
                     ["-n", "4"], ["static"])
        assert run.proc.returncode == 0, describe(run.proc)
        tiles = run.tiles()
        assert tiles and all(s == [200] for s in tiles.values()), f"{fmt.name}: clean run {tiles}"
        problems = compare(load_rgb(run.out), source, box).problems(CLEAN_MEAN, CLEAN_BLOCK)
        assert not problems, f"{fmt.name}: the clean run differs from the source: {problems}"
        runs[fmt.name] = run
    return runs


# ------------------------------------------------------------------ the variants

@dataclass(frozen=True)
class Variant:
    """A hostile server and how a user gets the image from it."""

    name: str
    port: str             # the input URL's port
    prefix: str = ""      # path prefix of the input URL (the redirect port's hops)
    args: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()  # further ports whose logs count (a cross-origin redirect's target)
    unique_input: bool = False   # add ?run=<uuid> to the input URL (the `once` port's chaos is per Referer)
    # the most requests allowed, as a function of the clean run's (tiles, metadata requests)
    bound: Callable[[int, int], int] = lambda tiles, meta: tiles + meta
    bound_text: str = "exactly the clean run's requests"
    faults: frozenset[int] = frozenset()  # statuses a tile may get before its 200


RETRIES = 6
VARIANTS = [
    Variant("seeded-chaos", "once", args=("-r", str(RETRIES), *FAST, "-n", "4"), unique_input=True,
            bound=lambda t, m: 2 * t + m, bound_text="a faulty tile twice (its fault, then 200), others once",
            faults=frozenset({429, 503, 444})),
    Variant("ratelimit-retry-after", "strict", args=("-r", str(RETRIES), *FAST, "-n", "4"),
            bound=lambda t, m: (t + m) * (1 + RETRIES), bound_text="(tiles + metadata) x (1 + retries)",
            faults=frozenset({429})),
    Variant("slow", "slow", args=("-n", "4")),
    Variant("holes", "holes", args=("-r", "3", *FAST)),
    Variant("referer", "referer"),  # args filled in by _user_args (they need the rig's URLs)
    Variant("cookie-and-user-agent", "headers"),
    Variant("basic-auth", "auth"),
    Variant("redirect-chain", "redirect", prefix="/r2", bound=lambda t, m: 3 * (t + m),
            bound_text="each request at most 3 times (two hops, then the file)"),
    Variant("cross-origin-redirect", "redirect", prefix="/x", ports=("static",),
            bound=lambda t, m: 2 * (t + m), bound_text="each request at most twice (hop, then the file)"),
]


def _user_args(variant: Variant, rig: Rig, workdir: Path) -> tuple[list[str], dict[str, str]]:
    """The options (and environment) a user needs for this variant's server."""
    if variant.name == "referer":
        return ["-H", f"Referer: {rig.viewer_url}"], {}
    if variant.name == "cookie-and-user-agent":  # the default User-Agent is a browser's
        jar = workdir / "cookies.txt"  # as a browser extension exports it (a dated cookie)
        name, value = HEADERS_COOKIE.split("=", 1)
        expires = int(time.time()) + 86400
        jar.write_text("# Netscape HTTP Cookie File\n"
                       f"127.0.0.1\tFALSE\t/\tFALSE\t{expires}\t{name}\t{value}\n")
        return ["--cookies", str(jar)], {}
    if variant.name == "basic-auth":  # the secret from the environment, not the command line
        token = base64.b64encode(f"{AUTH_USER}:{AUTH_PASSWORD}".encode()).decode()
        return ["-H", "Authorization: @env:RIG_TEST_AUTH"], {"RIG_TEST_AUTH": f"Basic {token}"}
    return [], {}


def _holes(rig: Rig, tiles: list[str]) -> set[str]:
    """The tiles the holes port answers with 404 (asked before the run, outside its log window)."""
    holes = set()
    for path in tiles:
        try:
            with urllib.request.urlopen(rig.url("holes", path), timeout=10):
                pass
        except urllib.error.HTTPError as exc:
            assert exc.code == 404, f"{path}: {exc.code}"
            holes.add(path)
    return holes


def _assert_same_image_except(got: np.ndarray, ref: np.ndarray, cells: list[tuple[int, int, int, int]]) -> None:
    """`got` equals `ref` outside `cells` (grown by the 1 px DZI overlap) and is black inside them."""
    assert got.shape == ref.shape, f"size {got.shape[1]}x{got.shape[0]}, expected {ref.shape[1]}x{ref.shape[0]}"
    outside = np.ones(got.shape[:2], dtype=bool)
    for x, y, w, h in cells:
        outside[max(0, y - 1):y + h + 1, max(0, x - 1):x + w + 1] = False
        inner = got[y + 1:y + h - 1, x + 1:x + w - 1]
        assert not inner.any(), f"the missing tile's cell at x={x} y={y} is not black"
    diff = np.abs(got - ref).max(axis=2) * outside
    if diff.any():
        ys, xs = np.nonzero(diff)
        raise AssertionError(f"{len(ys)} pixels differ from the clean run's output, "
                             f"first at x={xs[0]} y={ys[0]} (by {diff[ys[0], xs[0]]})")


def _assert_retry_after_honoured(run: Run) -> None:
    """After a 429 with Retry-After: 1, no new request reached that port within the second.

    Requests already in flight when the 429 left may arrive just after it (0.1 s of slack).
    """
    for e in run.requests:
        if e.status == 429:
            early = [o for o in run.requests if o.port == e.port and e.end + 0.1 < o.start < e.end + 0.9]
            assert not early, (f"{len(early)} requests within 1 s of a 429 with Retry-After: 1, "
                               f"e.g. {early[0].target} {early[0].start - e.end:.2f} s after it")


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_fault_matrix(rig: Rig, clean: dict[str, Run], variant: Variant, fmt: Format, tmp_path: Path) -> None:
    """Every obtainable tile, the clean run's pixels except true holes, requests within the bound."""
    ref = clean[fmt.name]
    ref_tiles = ref.tiles()
    holes = _holes(rig, sorted(ref_tiles)) if variant.name == "holes" else set()
    url = rig.url(variant.port, variant.prefix + fmt.path)
    if variant.unique_input:
        url += f"?run={uuid.uuid4().hex[:12]}"
    args, env = _user_args(variant, rig, tmp_path)
    run = dezoom(rig, tmp_path, url, [*variant.args, *args], [variant.port, *variant.ports], env)
    proc = run.proc

    # exit code, sidecar: complete, or exactly the true holes missing
    assert proc.returncode == (6 if holes else 0), describe(proc)
    side_text = run.out.with_name("out.png.json").read_text()
    for secret in env.values():  # a secret given through the environment is never written out
        assert secret not in side_text and secret not in proc.stderr, "the secret leaked"
    side = json.loads(side_text)
    missing = {canonical(re.sub(r"^https?://[^/]+", "", m["url"] if isinstance(m, dict) else m)).split("?")[0]
               for m in side["missing_tiles"]}
    assert missing == holes and side["complete"] is (not holes), side["missing_tiles"]

    # every obtainable tile obtained exactly once; holes asked once, never retried
    tiles = run.tiles()
    assert set(tiles) == set(ref_tiles), f"tiles requested differ from the clean run: {set(tiles) ^ set(ref_tiles)}"
    for path, statuses in tiles.items():
        if path in holes:
            assert statuses == [404], f"hole {path}: {statuses} (a 404 is final: asked once)"
            continue
        ok = [s for s in statuses if s == 200]
        faults = [s for s in statuses if s not in (200, 301, 302)]
        assert ok == [200], f"{path}: answered 200 {len(ok)} times, statuses {statuses}"
        assert set(faults) <= variant.faults, f"{path}: unexpected statuses {statuses}"
        if variant.name == "seeded-chaos":  # seeded: a faulty tile fails its first request only
            assert len(faults) <= 1 and statuses[-1] == 200, f"{path}: {statuses}"
    assert all(e.status not in (401, 403) for e in run.requests), "a request lacked the credentials"

    # requests within the stated bound
    n_tiles, n_meta = len(ref_tiles), ref.metadata_requests()
    bound = variant.bound(n_tiles, n_meta)
    assert len(run.requests) <= bound, (f"{len(run.requests)} requests > {bound} ({variant.bound_text}; "
                                        f"{n_tiles} tiles, {n_meta} metadata): "
                                        f"{Counter((e.path, e.status) for e in run.requests).most_common(5)}")
    if variant.faults:
        assert any(s in variant.faults for st in tiles.values() for s in st), \
            f"no fault was served: is the {variant.port} port configured? {tiles}"
    if variant.name == "ratelimit-retry-after":
        _assert_retry_after_honoured(run)
    if variant.name == "slow":
        assert max(e.duration for e in run.requests) >= 0.5, "the slow port answered fast"

    # pixels: the clean run's, except the holes' cells
    _assert_same_image_except(load_rgb(run.out), load_rgb(ref.out), [fmt.cell(h) for h in holes])


def test_the_holes_port_loses_some_tiles_of_the_matrix(rig: Rig, clean: dict[str, Run]) -> None:
    """The holes variant is not vacuous: at least one tile of the three formats is a true hole."""
    holes = {f.name: _holes(rig, sorted(clean[f.name].tiles())) for f in FORMATS}
    assert any(holes.values()), "no tile of the matrix is a hole: change RIG_HOLES_PCT"


@pytest.mark.parametrize("variant", ["referer", "cookie-and-user-agent", "basic-auth"])
def test_protected_servers_refuse_a_run_without_the_users_options(rig: Rig, variant: str, tmp_path: Path) -> None:
    """Without the needed option the run ends with one clear line naming the URL and the status,
    exit code 4 (network error), after at most two requests (a 401/403 is retried at most once)."""
    port = {"referer": "referer", "cookie-and-user-agent": "headers", "basic-auth": "auth"}[variant]
    run = dezoom(rig, tmp_path, rig.url(port, FORMATS[0].path), ["-r", "3", *FAST], [port])
    assert run.proc.returncode == 4, describe(run.proc)
    lines = [ln for ln in run.proc.stderr.splitlines() if ln.strip()]
    status = "401" if variant == "basic-auth" else "403"
    assert len(lines) == 1 and FORMATS[0].path in lines[0] and status in lines[0], run.proc.stderr
    assert {e.status for e in run.requests} <= {401, 403} and 1 <= len(run.requests) <= 2, run.requests
    assert not run.out.exists()


def test_request_bounds_are_tight(clean: dict[str, Run]) -> None:
    """The bounds above are stated in the clean run's units: one request per tile and document."""
    for fmt in FORMATS:
        run = clean[fmt.name]
        assert len(run.requests) == len(run.tiles()) + run.metadata_requests()
        assert run.metadata_requests() >= 1
