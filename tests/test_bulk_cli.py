"""Many images through the `dezoom` command: `--bulk` lists, name templates, reruns, and a IIIF
manifest given as the single input (`--image-index`, or the first image when nobody is asked).

Every run is `python -m dezoom_steps` as a subprocess (stdin closed, so never interactive);
remote inputs come from the project's fault server and the rig's nginx, whose access logs say
what was downloaded.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bulkutil import (DEMO, DEMO_TILES, IIIF2, IIIF2_256, JPEG_NOISE, SMALL_H, SMALL_W, assert_like_reference,
                      demo_diff, describe, marker, rig_tiles, run_cli,
                      tile_paths)
from bulkutil import iiif_site  # noqa: F401  (pytest fixture)
from faultserver_fixture import fault_server  # noqa: F401  (pytest fixture)
from rigutil import Rig, log_offset

PARTIAL_EXIT = 6  # README "Exit codes": some image not complete
IMAGE_SUFFIXES = (".jpg", ".png", ".tif")
PROGRESS = re.compile(r"^\[(\d+)/(\d+)\] ")


@pytest.fixture
def harvest(fault_server, tmp_path: Path):  # noqa: F811
    """A fault server over the demo, and a folder with a local copy of it and an `out/` folder.

    Returns (server, folder); write list files into the folder and run the command there.
    """
    site = tmp_path / "site"
    shutil.copytree(DEMO, site / "demo")
    srv = fault_server(site)
    work = tmp_path / "work"
    shutil.copytree(DEMO, work / "lists" / "local")
    (work / "out").mkdir()
    return srv, work


def write_list(work: Path, srv, broken: bool = False) -> str:  # noqa: ANN001
    """lists/harvest.txt: a comment, a local entry (relative to the list), a remote one and
    optionally one that 404s; returns the list's path relative to `work`."""
    lines = ["# two copies of the demo", "", "local/demo.dzi Local demo", f"{srv.url('demo/demo.dzi')} Remote demo"]
    if broken:
        lines.append(f"{srv.url('gone/missing.dzi')} Broken one")
    (work / "lists" / "harvest.txt").write_text("\n".join(lines) + "\n")
    return "lists/harvest.txt"


def images_in(folder: Path) -> dict[str, Path]:
    """The image files directly in `folder`, by name."""
    return {p.name: p for p in folder.iterdir() if p.is_file() and p.suffix in IMAGE_SUFFIXES}


def progress_lines(stdout: str) -> list[str]:
    """The `[i/N] ...` lines of a bulk run."""
    return [line for line in stdout.splitlines() if PROGRESS.match(line)]


# ------------------------------------------------------------------ --bulk lists

def test_bulk_list_reports_each_image_and_exits_6_when_one_failed(harvest, tmp_path):
    srv, work = harvest
    listing = write_list(work, srv, broken=True)

    proc = run_cli(work, tmp_path / "tmp", "--bulk", listing, "--out-dir", "out", "-i", "0ms")

    assert proc.returncode == PARTIAL_EXIT, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    lines = progress_lines(proc.stdout)
    assert [PROGRESS.match(line).groups() for line in lines] == [("1", "3"), ("2", "3"), ("3", "3")], describe(proc)
    assert "Local demo" in lines[0] and "Remote demo" in lines[1], lines
    assert "Broken one" in lines[2] and "FAILED" in lines[2] and "gone/missing.dzi" in lines[2], lines
    last = proc.stdout.strip().splitlines()[-1]
    assert "3 images" in last and "2 complete" in last and "1 failed" in last, f"final summary line: {last!r}"
    outputs = images_in(work / "out")
    assert sorted(outputs) == ["Local demo.jpg", "Remote demo.jpg"], sorted(outputs)
    for path in outputs.values():
        assert demo_diff(path) < JPEG_NOISE, f"{path.name} differs from the demo's source"
        assert (path.parent / (path.name + ".json")).is_file(), f"no sidecar beside {path.name}"
    assert not images_in(work), "outputs go to --out-dir only"
    served = tile_paths(srv.requests(), "/demo/", status=200)
    assert len(served) == DEMO_TILES and set(served.values()) == {1}


def test_a_second_identical_run_skips_complete_images_and_fetches_no_tile(harvest, tmp_path):
    srv, work = harvest
    listing = write_list(work, srv)
    args = ("--bulk", listing, "--out-dir", "out", "-i", "0ms")

    first = run_cli(work, tmp_path / "tmp", *args)

    assert first.returncode == 0, describe(first)
    outputs = images_in(work / "out")
    assert sorted(outputs) == ["Local demo.jpg", "Remote demo.jpg"], sorted(outputs)
    stamps = {p: p.stat().st_mtime_ns for p in outputs.values()}
    served = len(srv.requests())

    second = run_cli(work, tmp_path / "tmp", *args)

    assert second.returncode == 0, describe(second)
    lines = progress_lines(second.stdout)
    assert len(lines) == 2 and all("already complete, skipped" in line for line in lines), describe(second)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps, "a complete image was written again"
    later = srv.requests()[served:]
    assert not tile_paths(later), f"tiles fetched again: {[r['path'] for r in later][:5]}"
    assert sorted(images_in(work / "out")) == sorted(outputs), "no new file"


def test_name_template(harvest, tmp_path):
    srv, work = harvest
    listing = write_list(work, srv)

    proc = run_cli(work, tmp_path / "tmp", "--bulk", listing, "--out-dir", "out", "-i", "0ms",
                   "--name-template", "{title}_{index:04}")

    assert proc.returncode == 0, describe(proc)
    outputs = images_in(work / "out")
    assert sorted(outputs) == ["Local demo_0001.jpg", "Remote demo_0002.jpg"], sorted(outputs)
    for path in outputs.values():
        assert demo_diff(path) < JPEG_NOISE


def test_on_exists_suffix_writes_new_files_beside_the_old_ones(harvest, tmp_path):
    srv, work = harvest
    listing = write_list(work, srv)
    args = ("--bulk", listing, "--out-dir", "out", "-i", "0ms")
    first = run_cli(work, tmp_path / "tmp", *args)
    assert first.returncode == 0, describe(first)
    old = images_in(work / "out")
    stamps = {p: p.stat().st_mtime_ns for p in old.values()}

    again = run_cli(work, tmp_path / "tmp", *args, "--on-exists", "suffix")

    assert again.returncode == 0, describe(again)
    now = images_in(work / "out")
    assert sorted(set(now) - set(old)) == ["Local demo_0001.jpg", "Remote demo_0001.jpg"], sorted(now)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps, "--on-exists suffix must not touch existing files"
    for name in ("Local demo_0001.jpg", "Remote demo_0001.jpg"):
        assert demo_diff(now[name]) < JPEG_NOISE
        assert (work / "out" / (name + ".json")).is_file()


# ------------------------------------------------------------------ a manifest as the single input

def test_manifest_with_image_index_downloads_that_canvas(iiif_site, rig: Rig, tmp_path):  # noqa: F811
    srv, urls = iiif_site
    work = tmp_path / "work"
    work.mkdir()
    referer = marker(tmp_path)
    since = log_offset(rig.access_log)

    proc = run_cli(work, tmp_path / "tmp", urls["v2"], "--image-index", "1", "--format", "png",
                   "-i", "0ms", "-H", f"Referer: {referer}")

    assert proc.returncode == 0, describe(proc)
    outputs = images_in(work)
    assert len(outputs) == 1, f"one image expected in the working folder, got {sorted(outputs)}"
    (path,) = outputs.values()
    assert "Folio 1v" in path.name, f"canvas [1] is 'Folio 1v'; output named {path.name!r}"
    assert_like_reference(path, rig)
    assert rig_tiles(rig, since, IIIF2_256, referer), "canvas [1]'s image service was not used"
    assert not rig_tiles(rig, since, IIIF2, referer), "canvas [0]'s tiles were downloaded too"
    assert not [r for r in srv.requests() if r["path"].startswith("/thumbs/")], "the thumbnail was downloaded"


def test_manifest_without_image_index_lists_the_images_and_takes_the_first(iiif_site, rig: Rig, tmp_path):  # noqa: F811
    srv, urls = iiif_site
    work = tmp_path / "work"
    work.mkdir()
    referer = marker(tmp_path)
    since = log_offset(rig.access_log)

    proc = run_cli(work, tmp_path / "tmp", urls["v2"], "--format", "png", "-i", "0ms", "-H", f"Referer: {referer}")

    assert proc.returncode == 0, describe(proc)
    listed = [line.strip() for line in proc.stderr.splitlines() if re.match(r"^\s*\[\d+\] ", line)]
    assert listed == [f"[0] Folio 1r ({SMALL_W} x {SMALL_H} pixels)", f"[1] Folio 1v ({SMALL_W} x {SMALL_H} pixels)"], \
        describe(proc)
    outputs = images_in(work)
    assert len(outputs) == 1, sorted(outputs)
    (path,) = outputs.values()
    assert "Folio 1r" in path.name, path.name
    assert_like_reference(path, rig)
    assert rig_tiles(rig, since, IIIF2, referer) and not rig_tiles(rig, since, IIIF2_256, referer), \
        "image [0] (the 512 px service) must be the one downloaded"
