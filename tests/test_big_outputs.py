"""Outputs too big for memory: PNG and TIFF of more than 4 GB of raw pixels, within a fixed RSS budget.

The input is a synthetic Deep Zoom image on disk (tests/bigsource.py: a few JPEG tiles reused
through hard links, no network). The `dezoom` command runs in a child process, wrapped by a
small Python process that reports `resource.getrusage(RUSAGE_CHILDREN)` once the command has
ended: its peak resident set is the command's alone (this test process's own earlier children
would otherwise count too). The outputs are checked without ever loading them whole: the PNG
by a streaming reader (tests/pngread.py) against the tiles, row by row, and by `pngcheck`;
the TIFF tile by tile at sampled places.

Also here: a disk that fills up while the image (or the canvas) is written leaves nothing under
the final name and ends with one clear line and exit 5. The full disk is a small tmpfs mounted
in a private mount namespace (`unshare -m` as root, `unshare -rm` otherwise).
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from bigsource import make_big_source
from cli_support import DEMO_DZI, EXIT, CliResult, assert_one_line_error, cli_env
from dezoom_steps.cache import sniff_image
from dezoom_steps.steps.encode import sha256_of
from pngread import PngError, PngStream

import required

unavailable = functools.partial(required.unavailable, need='this test must run')  # skip locally, fail under CI=true

GB = 10**9
MIB = 2**20
RSS_BUDGET = 400 * MIB  # peak RSS allowed whatever the image size (measured: 166-211 MiB at 1.44-2.15 GP)
RUN_TIMEOUT = 900.0  # seconds for one big `dezoom` run (measured: 15-75 s on 2 shared cores)
DISK_MARGIN = 2 * 2**30  # free space wanted beyond the canvas (tiles, output, other tests)
TIFF_SAMPLES = 300  # level-0 TIFF tiles decoded and compared, besides the four corners
TIFF_MEAN_DIFF = 2.0  # mean |difference| allowed in a JPEG-compressed TIFF tile (measured: <= 0.34)

# Runs argv[2:] and writes its exit code, wall time and rusage (of its children: that command only)
# as JSON to argv[1].
MEASURE = """
import json, resource, subprocess, sys, time
start = time.monotonic()
code = subprocess.call(sys.argv[2:])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "wall": time.monotonic() - start, "maxrss_kib": ru.ru_maxrss,
               "user": ru.ru_utime, "sys": ru.ru_stime}, f)
"""


def need_disk(folder: Path, nbytes: int) -> None:
    """Skip (fail under CI) unless `folder`'s file system has `nbytes` free plus a margin."""
    free = shutil.disk_usage(folder).free
    if free < nbytes + DISK_MARGIN:
        unavailable(f"{folder}: {free / GB:.1f} GB free, this test needs {(nbytes + DISK_MARGIN) / GB:.1f} GB "
                    "(set --basetemp to a larger disk)")


@dataclass
class Measured:
    """A finished, measured `dezoom` run."""

    code: int
    wall: float
    peak_rss: int  # bytes
    cpu: float  # user + system seconds
    stdout: str
    stderr: str

    def describe(self) -> str:
        """The outcome, for assertion messages."""
        return f"exit {self.code}\nstdout: {self.stdout[-2000:]!r}\nstderr: {self.stderr[-2000:]!r}"


def measured_dezoom(cwd: Path, tmpdir: Path, *args: str) -> Measured:
    """Run `python -m dezoom_steps ARGS` in `cwd`, temporary files in `tmpdir`; measure its peak RSS."""
    cwd.mkdir(parents=True, exist_ok=True)
    report = cwd.parent / f"{cwd.name}.rusage.json"
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(report), sys.executable, "-m", "dezoom_steps", *args],
                          cwd=cwd, env=cli_env(tmpdir), capture_output=True, text=True, timeout=RUN_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"the measuring wrapper failed: {proc.stderr[-2000:]}"
    ru = json.loads(report.read_text())
    return Measured(ru["code"], ru["wall"], ru["maxrss_kib"] * 1024, ru["user"] + ru["sys"], proc.stdout, proc.stderr)


def announce(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture, line: str, **figures: float) -> None:
    """Print one line of figures in the test output (even when output is captured) and record them
    as the test's properties (JUnit XML)."""
    for key, value in figures.items():
        request.node.user_properties.append((key, round(value, 2)))
    with capsys.disabled():
        print(f"\n[{request.node.name}] {line}", flush=True)


def big_run(request: pytest.FixtureRequest, tmp_path: Path, width: int, height: int, out_name: str):
    """Make the synthetic source, run `dezoom` on it to `out_name`; returns (source, output, run)."""
    raw = width * height * 3
    assert raw > 4 * 2**30, "the test image must hold more than 4 GiB of raw RGB"
    need_disk(tmp_path, raw)
    src = make_big_source(tmp_path / "src", width, height)
    work_tmp = tmp_path / "tmp"
    request.addfinalizer(lambda: shutil.rmtree(work_tmp, ignore_errors=True))  # a killed run leaves its canvas
    run = measured_dezoom(tmp_path / "run", work_tmp, str(src.dzi), out_name)
    assert run.code == 0, run.describe()
    assert list(work_tmp.iterdir()) == [], "the work folder (canvas) was not removed"
    out = tmp_path / "run" / out_name
    side = json.loads(out.with_name(out.name + ".json").read_text())
    assert (side["width"], side["height"], side["complete"]) == (width, height, True)
    assert side["tiles_total"] == src.cols * src.rows
    assert (side["sha256"], side["bytes"]) == sha256_of(out)
    return src, out, run


def rss_line(run: Measured, width: int, height: int) -> str:
    """The figures of a run, for the test output."""
    return (f"{width}x{height} = {width * height / 1e9:.2f} GP, {width * height * 3 / GB:.2f} GB raw: "
            f"peak RSS {run.peak_rss / MIB:.0f} MiB (budget {RSS_BUDGET / MIB:.0f}), "
            f"dezoom {run.wall:.1f} s wall, {run.cpu:.1f} s CPU")


@pytest.mark.slow
def test_png_beyond_2_31_pixels_and_4_gb(request, capsys, tmp_path):
    """46400 x 46400 = 2.15 gigapixels (more than 2^31), 6.46 GB of raw RGB, into a PNG."""
    width = height = 46400
    assert width * height > 2**31
    src, out, run = big_run(request, tmp_path, width, height, "big.png")
    start = time.monotonic()
    pngcheck = shutil.which("pngcheck")
    if pngcheck is None:
        unavailable("pngcheck is not installed (Debian package pngcheck; tests/rig/install_packages.sh)")
    check = subprocess.run([pngcheck, str(out)], capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and check.stdout.startswith("OK:"), check.stdout + check.stderr
    with PngStream(out) as png:
        hdr = png.header
        assert (hdr.width, hdr.height, hdr.bit_depth, hdr.colour_type, hdr.interlace) == (width, height, 8, 2, 0)
        rows = 0
        for y, block in png.rows():
            want = src.expected(y, block.shape[0])
            if not np.array_equal(block, want):
                bad = int(np.flatnonzero((block != want).any(axis=(1, 2)))[0])
                col = int(np.flatnonzero((block[bad] != want[bad]).any(axis=1))[0])
                pytest.fail(f"{out}: row {y + bad} differs from the tiles from x={col} "
                            f"(tile {col // src.tile},{(y + bad) // src.tile})")
            rows += block.shape[0]
        assert rows == height and png.idat_chunks > 1
    checks = time.monotonic() - start
    announce(request, capsys, f"{rss_line(run, width, height)}; PNG {out.stat().st_size / MIB:.1f} MiB; "
             f"checks {checks:.1f} s", peak_rss_mib=run.peak_rss / MIB, dezoom_s=run.wall, checks_s=checks)
    assert run.peak_rss < RSS_BUDGET, rss_line(run, width, height)


@pytest.mark.slow
def test_tiff_of_more_than_4_gb(request, capsys, tmp_path):
    """40000 x 36000 = 1.44 gigapixels, 4.32 GB of raw RGB, into a tiled BigTIFF; sampled tiles checked."""
    width, height = 40000, 36000
    src, out, run = big_run(request, tmp_path, width, height, "big.tif")
    start = time.monotonic()
    with tifffile.TiffFile(out) as tif:
        assert tif.is_bigtiff
        page = tif.pages[0]  # level 0 (any pyramid levels come after it)
        assert page.shape == (height, width, 3) and page.is_tiled
        th, tw = page.tilelength, page.tilewidth
        across, down = math.ceil(width / tw), math.ceil(height / th)
        assert len(page.dataoffsets) == across * down and min(page.databytecounts) > 0
        rng = np.random.default_rng(5)
        picks = {0, across - 1, across * (down - 1), across * down - 1}
        picks.update(int(i) for i in rng.choice(across * down, TIFF_SAMPLES, replace=False))
        worst = 0.0
        for index in sorted(picks):
            got = _tiff_tile(tif, page, index)
            y, x = divmod(index, across)
            want = src.expected(y * th, th, x * tw, tw)
            diff = np.abs(got[:want.shape[0], :want.shape[1]].astype(np.int16) - want).mean()
            assert diff < TIFF_MEAN_DIFF, f"{out}: level-0 tile {index} (col {x}, row {y}) differs by {diff:.1f}"
            worst = max(worst, float(diff))
    checks = time.monotonic() - start
    announce(request, capsys, f"{rss_line(run, width, height)}; TIFF {out.stat().st_size / MIB:.1f} MiB; "
             f"{len(picks)} tiles checked (worst mean diff {worst:.2f}) in {checks:.1f} s",
             peak_rss_mib=run.peak_rss / MIB, dezoom_s=run.wall, checks_s=checks)
    assert run.peak_rss < RSS_BUDGET, rss_line(run, width, height)


def _tiff_tile(tif: tifffile.TiffFile, page: tifffile.TiffPage, index: int) -> np.ndarray:
    """Tile `index` of `page`, read at its offset and decoded alone, as (tile h, tile w, 3) uint8."""
    fh = tif.filehandle
    fh.seek(page.dataoffsets[index])
    data = fh.read(page.databytecounts[index])
    pixels, _, _ = page.decode(data, index, jpegtables=page.jpegtables)
    return np.asarray(pixels).reshape(page.tilelength, page.tilewidth, -1)[:, :, :3]


def test_big_source_stitches_as_described(tmp_path):
    """The synthetic source's expectation (what the tests compare with) is its tiles pasted at their cells."""
    src = make_big_source(tmp_path / "src", 1100, 700, tile=512)
    assert (src.cols, src.rows) == (3, 2)
    full = np.zeros((700, 1100, 3), dtype=np.uint8)
    for row in range(src.rows):
        for col in range(src.cols):
            path = src.level_dir / f"{col}_{row}.jpg"
            assert sniff_image(path.read_bytes()) == "jpeg"
            w, h = src.cell(col, row)
            with Image.open(path) as im:
                assert im.size == (w, h)
                full[row * 512:row * 512 + h, col * 512:col * 512 + w] = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(src.expected(0, 700), full)
    np.testing.assert_array_equal(src.expected(300, 333, 500, 20), full[300:633, 500:520])
    # neighbours never show the same pattern, so a misplaced tile changes the image
    assert all(src.kind(c, r) != src.kind(c + 1, r) and src.kind(c, r) != src.kind(c, r + 1)
               for r in range(20) for c in range(20))
    assert os.stat(src.level_dir / "0_0.jpg").st_ino == os.stat(src.proto_path(0, 512, 512)).st_ino


# --- a disk that fills up ---------------------------------------------------------------------

FULL_DISK = "64k"  # size of the tmpfs that fills up: less than any demo output or canvas
# Mounts a tmpfs of size $1 on $2 (in the private mount namespace), runs the rest of the
# arguments, then lists what is left on the tmpfs into $LISTING (it vanishes with the namespace).
ON_FULL_DISK = """
mount -t tmpfs -o size="$1" tmpfs "$2" || exit 97
full=$2
shift 2
"$@"
code=$?
find "$full" -mindepth 1 > "$LISTING"
exit $code
"""


def namespace_command(probe: Path) -> list[str]:
    """The `unshare` prefix that may mount a tmpfs here (`-m` as root, `-rm` in a user namespace)."""
    if shutil.which("unshare") is None:
        unavailable("unshare (util-linux) is not installed")
    probe.mkdir(parents=True, exist_ok=True)
    tried = []
    for prefix in (["unshare", "-m"], ["unshare", "-r", "-m"]):
        if prefix == ["unshare", "-m"] and os.geteuid() != 0:
            continue
        p = subprocess.run([*prefix, "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$1"', "sh", str(probe)],
                           capture_output=True, text=True, timeout=30)
        if p.returncode == 0:
            return prefix
        tried.append(f"{' '.join(prefix)}: {p.stderr.strip()}")
    unavailable("cannot mount a tmpfs in a private mount namespace (" + "; ".join(tried) + ")")
    raise AssertionError("unreachable")


def dezoom_on_full_disk(tmp_path: Path, full: Path, tmpdir: Path, *args: str) -> tuple[CliResult, list[str]]:
    """Run `dezoom ARGS` with a full tmpfs mounted on `full`; returns the run and what it left on `full`."""
    prefix = namespace_command(tmp_path / "probe")
    full.mkdir(parents=True, exist_ok=True)
    listing = tmp_path / "left-on-full-disk.txt"
    env = dict(cli_env(tmpdir), LISTING=str(listing))
    proc = subprocess.run([*prefix, "sh", "-c", ON_FULL_DISK, "sh", FULL_DISK, str(full),
                           sys.executable, "-m", "dezoom_steps", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode != 97, f"mounting the tmpfs failed: {proc.stderr}"
    return CliResult(list(args), proc.returncode, proc.stdout, proc.stderr), listing.read_text().split()


@pytest.mark.parametrize("ext", ["png", "jpg", "tif"])
def test_full_disk_while_writing_the_image(tmp_path, ext):
    """The output's disk fills up mid-image: exit 5, one line saying so, nothing left in the folder."""
    full = tmp_path / "results"
    out = full / f"demo.{ext}"
    res, left = dezoom_on_full_disk(tmp_path, full, tmp_path / "tmp", "-c", str(tmp_path / "cache"),
                                    str(DEMO_DZI), str(out))
    line = assert_one_line_error(res, EXIT["output"], str(out))
    assert "disk full" in line and "No space left on device" in line, res.describe()
    assert left == [], f"left on the full disk: {left}"
    assert list((tmp_path / "tmp").iterdir()) == [], "the work folder was not removed"
    assert len(list((tmp_path / "cache").iterdir())) > 1, "the tiles were fetched before the disk filled up"


def test_full_disk_while_writing_the_canvas(tmp_path):
    """The work folder's disk (TMPDIR) fills up while stitching: exit 5, one line, no output, no work folder.

    Only a TIFF output goes through a canvas file (other formats are rendered in one pass).
    """
    results = tmp_path / "results"
    results.mkdir()
    out = results / "demo.tif"
    res, left = dezoom_on_full_disk(tmp_path, tmp_path / "tmp", tmp_path / "tmp", "-c", str(tmp_path / "cache"),
                                    str(DEMO_DZI), str(out))
    line = assert_one_line_error(res, EXIT["output"], "canvas")
    assert "No space left on device" in line, res.describe()
    assert left == [], f"left in the full work folder: {left}"
    assert list(results.iterdir()) == []


# --- the streaming PNG reader itself ----------------------------------------------------------

@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_png_reader_undoes_every_filter(tmp_path, mode):
    """pngread gives Pillow's pixels for PNGs that libvips writes with each filter type (and a mix)."""
    if shutil.which("vips") is None:
        unavailable("vips (libvips-tools) is not installed")
    src = tmp_path / "src.png"
    rng = np.random.default_rng(1)
    pixels = np.cumsum(rng.integers(0, 9, (61, 203, 4)), axis=1).astype(np.uint8)  # some structure, some noise
    Image.fromarray(pixels).convert(mode).save(src)
    want = np.asarray(Image.open(src))
    for number, name in enumerate(["none", "sub", "up", "avg", "paeth", "all"]):
        path = tmp_path / f"{name}.png"
        subprocess.run(["vips", "pngsave", str(src), str(path), "--filter", name], check=True, timeout=60)
        with PngStream(path) as png:
            got = np.concatenate([block for _, block in png.rows(block_bytes=4000)])
            filters = png.filters
        np.testing.assert_array_equal(got, want, err_msg=f"filter {name}")
        if name != "all":
            assert filters[number] == 61, (name, filters)
        else:
            assert sum(1 for count in filters if count) >= 2, filters  # adaptive: a mix


def test_png_reader_refuses_broken_files(tmp_path):
    """A flipped byte (CRC), a truncated file and a wrong height are each reported, not read past."""
    path = tmp_path / "ok.png"
    Image.fromarray(np.arange(40 * 30 * 3, dtype=np.uint32).reshape(30, 40, 3).astype(np.uint8)).save(path)
    data = path.read_bytes()
    idat = data.index(b"IDAT")

    def read(blob: bytes) -> None:
        p = tmp_path / "bad.png"
        p.write_bytes(blob)
        with PngStream(p) as png:
            for _ in png.rows():
                pass

    read(data)
    with pytest.raises(PngError, match="bad CRC"):
        read(data[:idat + 10] + bytes([data[idat + 10] ^ 1]) + data[idat + 11:])
    with pytest.raises(PngError, match="ends"):
        read(data[:-20])
    ihdr = bytearray(data[16:29])
    ihdr[4:8] = (31).to_bytes(4, "big")  # one row more than the data holds
    fixed = bytes(ihdr)
    crc = zlib.crc32(fixed, zlib.crc32(b"IHDR")).to_bytes(4, "big")
    with pytest.raises(PngError, match="30 rows"):
        read(data[:16] + fixed + crc + data[33:])
