"""Many images through the Snakemake workflow: bulk lists, IIIF manifests and collections.

The workflow runs as a subprocess in the test's folder (`snakemake --directory`), the inputs
are served by the project's fault server (the embedded demo pyramid, hand-written IIIF
Presentation documents) and by the rig's nginx (static IIIF image services of the rig's small
image), so the access logs tell exactly what was downloaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from interrupt import cached_tiles, interrupt_when
from bulkutil import (DEMO, DEMO_TILES, IIIF2, IIIF2_256, IIIF3, JPEG_NOISE, assert_like_reference, demo_diff,
                      describe, marker, rig_tiles, run_snakemake, snakemake_cmd, snakemake_env,
                      tile_paths, tree)
from bulkutil import iiif_site  # noqa: F401  (pytest fixture)
from faultserver_fixture import fault_server  # noqa: F401  (pytest fixture)
from rigutil import Rig, log_offset

pytestmark = pytest.mark.workflow

MAX_STEM_BYTES = 200  # naming.MAX_NAME_BYTES: an output stem never exceeds this many bytes of UTF-8
NAME_MAX = 255  # the longest file name most file systems accept, in bytes


def summary_items(run: Path) -> dict[str, dict]:
    """results/summary.json's rows by image name."""
    summary = json.loads((run / "results" / "summary.json").read_text())
    items = {row["image"]: row for row in summary["items"]}
    assert len(items) == summary["images"] == len(summary["items"]), summary
    return items


def result_images(run: Path) -> dict[str, Path]:
    """The output images in results/ by stem (sidecars and the summary left out)."""
    return {p.name.rsplit(".", 1)[0]: p for p in (run / "results").iterdir()
            if p.is_file() and not p.name.endswith((".json", ".partial"))}


def long_title() -> str:
    """A title of 500 characters with slashes, `..` and emoji, made of varied words."""
    words = " ".join(f"folio{i}r" for i in range(200))
    return ("Atlas/../plates\\sub/🎨🗺️ " + words)[:500]


# ------------------------------------------------------------------ a bulk list, --keep-going

def test_bulk_list_with_titles_comments_local_remote_and_failures(fault_server, tmp_path):  # noqa: F811
    site = tmp_path / "site"
    shutil.copytree(DEMO, site / "demo")
    srv = fault_server(site)
    run = tmp_path / "run"
    lists = run / "lists"
    shutil.copytree(DEMO, lists / "pyramids" / "demo")  # the local entry, relative to the list's folder
    title = long_title()
    assert len(title) == 500
    (lists / "harvest.txt").write_text("\n".join([
        "# a harvest: URL then title",
        "pyramids/demo/demo.dzi Local copy",
        "",
        "   # an indented comment",
        f"{srv.url('demo/demo.dzi')} {title}",
        f"{srv.url('nowhere/missing.dzi')} Gone for good",
        "",
        "this-is-not-a-url Not an input",
        "",
    ]), encoding="utf-8")
    before = tree(tmp_path)
    tmp = tmp_path / "tmp"

    proc = run_snakemake(run, tmp, "--keep-going", "--config", "bulk=lists/harvest.txt", "format=png",
                         "min_interval=0s")

    assert proc.returncode != 0, "a run with failed entries must not exit 0" + describe(proc)
    assert "Traceback" not in proc.stdout + proc.stderr, describe(proc)
    items = summary_items(run)
    assert len(items) == 4, f"4 entries expected in summary.json, got {sorted(items)}" + describe(proc)

    # the good entries: named from the list's titles, right pixels, complete
    assert items["Local copy"]["state"] == "complete", items["Local copy"]
    long_rows = [row for name, row in items.items() if name.startswith("Atlas_")]
    assert len(long_rows) == 1, f"no entry named from the long title: {sorted(items)}"
    long_name = long_rows[0]["image"]
    assert long_rows[0]["state"] == "complete", long_rows[0]
    assert "/" not in long_name and "\\" not in long_name and len(long_name.encode()) <= MAX_STEM_BYTES, long_name
    assert long_name.startswith("Atlas_.._plates_sub_🎨"), long_name
    images = result_images(run)
    assert set(images) == {"Local copy", long_name}, sorted(images)
    for name, path in images.items():
        assert path.suffix == ".png"
        assert demo_diff(path) < JPEG_NOISE, f"{path.name} differs from the demo's source"
        side = json.loads((path.parent / (path.name + ".json")).read_text())
        assert side["complete"] and side["tiles_total"] == DEMO_TILES and side["missing_tiles"] == []
    assert images["Local copy"] == run / "results" / "Local copy.png"
    served = tile_paths(srv.requests(), "/demo/", status=200)
    assert len(served) == DEMO_TILES and set(served.values()) == {1}, "remote tiles fetched once each"

    # the failures: one 404 and one line that is not an input, each named in its message
    gone = items["Gone for good"]
    assert gone["state"] == "failed" and "nowhere/missing.dzi" in gone["error"] and "404" in gone["error"], gone
    bad = [row for row in items.values() if row["state"] == "failed" and row is not gone]
    assert len(bad) == 1 and "this-is-not-a-url" in bad[0]["error"], bad
    assert "line 8" in bad[0]["error"] and "harvest.txt" in bad[0]["error"], bad[0]

    # nothing written outside the run folder's results/, work/, cache/, logs/ and Snakemake's own
    created = tree(tmp_path) - before
    allowed = {"results", "work", "cache", "logs", ".snakemake", ".xdg-cache"}
    outside = sorted(str(p) for p in created
                     if p.parts[0] != "tmp" and not (p.parts[0] == "run" and len(p.parts) > 1
                                                     and p.parts[1] in allowed))
    assert not outside, f"files written outside results/ and the workflow's folders: {outside[:10]}"
    assert not list(tmp.iterdir()), f"temporary files left behind: {list(tmp.iterdir())[:5]}"
    results = run / "results"
    assert all(p.parent == results for p in results.rglob("*")), "results/ holds no sub-folders"
    for folder in ("work", "cache", "logs"):
        tops = {p.relative_to(run / folder).parts[0] for p in (run / folder).rglob("*")}
        assert tops <= set(items) | {"bulk.json", "summary.ok", "expand_bulk.log", "summary.log"}, \
            f"{folder}/ holds folders not named after an entry: {sorted(tops - set(items))[:5]}"
    longest = max(len(part.encode()) for p in created for part in p.parts)
    assert longest <= NAME_MAX, f"a path component of {longest} bytes"


def test_a_title_of_one_repeated_character_does_not_stop_the_run(tmp_path):
    """A long title made of one repeated character (e.g. padding) names an image like any other."""
    run = tmp_path / "run"
    lists = run / "lists"
    shutil.copytree(DEMO, lists / "demo")
    (lists / "harvest.txt").write_text(f"demo/demo.dzi {'x' * 500}\ndemo/demo.dzi Plain title\n")
    proc = run_snakemake(run, tmp_path / "tmp", "--keep-going", "--config", "bulk=lists/harvest.txt",
                         "format=png")
    assert proc.returncode == 0, describe(proc)
    images = result_images(run)
    assert len(images) == 2 and "Plain title" in images, sorted(images)
    for path in images.values():
        assert len(path.name.encode()) <= NAME_MAX and demo_diff(path) < JPEG_NOISE


# ------------------------------------------------------------------ IIIF manifests and collections

@pytest.mark.parametrize("version, names, services", [
    ("v2", ["Atlas v2 - Folio 1r_0001", "Atlas v2 - Folio 1v_0002"], {IIIF2: 1, IIIF2_256: 1}),
    ("v3", ["Atlas v3 - Page 1_0001", "Atlas v3 - Page 2_0002"], {IIIF3: 2}),
])
def test_a_manifest_expands_to_one_image_per_canvas(iiif_site, rig: Rig, tmp_path, version, names,  # noqa: F811
                                                    services):
    srv, urls = iiif_site
    run = tmp_path / "run"
    run.mkdir()
    config = run / "harvest.yaml"
    referer = marker(tmp_path)
    config.write_text(yaml.safe_dump({"bulk": [urls[version]], "format": "png", "min_interval": "0s",
                                      "headers": [f"Referer: {referer}"]}))
    since = log_offset(rig.access_log)

    proc = run_snakemake(run, tmp_path / "tmp", "--configfile", str(config))

    assert proc.returncode == 0, describe(proc)
    images = result_images(run)
    assert sorted(images) == names, "default names: manifest title - canvas label_NNNN"
    for path in images.values():
        assert path.suffix == ".png"
        assert_like_reference(path, rig)
    items = summary_items(run)
    assert set(items) == set(names) and all(r["state"] == "complete" for r in items.values()), items
    for service, per_tile in services.items():
        got = rig_tiles(rig, since, service, referer)
        assert got and set(got.values()) == {per_tile}, f"{service}: tiles answered {got}"
    thumbs = [r["path"] for r in srv.requests() if r["path"].startswith("/thumbs/")]
    assert not thumbs, f"the canvases' thumbnail resources were downloaded: {thumbs}"


def test_a_collection_listing_itself_expands_once_and_reports_the_loop(iiif_site, rig: Rig, tmp_path):  # noqa: F811
    srv, urls = iiif_site
    run = tmp_path / "run"
    run.mkdir()
    since = log_offset(rig.access_log)
    referer = marker(tmp_path)

    proc = run_snakemake(run, tmp_path / "tmp", "--keep-going", "--config", f"bulk={urls['collection']}",
                         "format=png", "min_interval=0s", f"headers=['Referer: {referer}']")

    assert proc.returncode != 0, "the loop is a failed entry, so the run must not exit 0" + describe(proc)
    items = summary_items(run)
    complete = sorted(n for n, r in items.items() if r["state"] == "complete")
    failed = [r for r in items.values() if r["state"] == "failed"]
    assert len(complete) == 4 and len(failed) == 1 and len(items) == 5, items
    prefixes = ["Atlas v2 - Folio 1r_", "Atlas v2 - Folio 1v_", "Atlas v3 - Page 1_", "Atlas v3 - Page 2_"]
    assert [any(n.startswith(p) for n in complete) for p in prefixes] == [True] * 4, complete
    assert "loop" in failed[0]["error"] and urls["collection"] in failed[0]["error"], failed[0]
    images = result_images(run)
    assert sorted(images) == complete
    for path in images.values():
        assert_like_reference(path, rig)
    assert srv.count("/iiif/both/collection.json") == 1, "the collection is read once, not followed into itself"
    assert srv.count("/iiif/atlas-v2/manifest.json") == srv.count("/iiif/atlas-v3/manifest.json") == 1
    assert not [r for r in srv.requests() if r["path"].startswith("/thumbs/")]
    assert set(rig_tiles(rig, since, IIIF3, referer).values()) == {2}, "each v3 canvas fetched its tiles once"


# ------------------------------------------------------------------ interrupted and resumed

def test_an_interrupted_bulk_run_resumes_without_redoing_finished_images(fault_server, tmp_path):  # noqa: F811
    site = tmp_path / "site"
    shutil.copytree(DEMO, site / "demo")
    srv = fault_server(site)
    (site / "HOLD").write_text("hold tile requests of the held entry after the 7th\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "harvest.txt").write_text(
        f"{srv.url('demo/demo.dzi')} Finished early\n"
        f"{srv.url('m/hold_after=7/demo/demo.dzi')} Held midway\n")
    args = ("--config", "bulk=harvest.txt", "format=png", "min_interval=0s", "parallelism=3")
    tmp = tmp_path / "tmp"
    finished = run / "results" / "Finished early.png"
    held_cache = run / "cache" / "Held midway"

    code = interrupt_when(
        snakemake_cmd(run, *args), run, snakemake_env(run, tmp),
        lambda: Path(str(finished) + ".json").exists() and cached_tiles(held_cache) >= 7,
        180, "the first image never finished, or the held one never started")
    assert code != 0
    assert not (run / "results" / "Held midway.png.json").exists()
    stamps = {p: p.stat().st_mtime_ns for p in (finished, Path(str(finished) + ".json"))}

    (site / "HOLD").unlink()
    second = run_snakemake(run, tmp, *args)

    assert second.returncode == 0, describe(second)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps, "the finished image was written again"
    items = summary_items(run)
    assert {n: r["state"] for n, r in items.items()} == {"Finished early": "complete", "Held midway": "complete"}
    for name in items:
        assert demo_diff(run / "results" / f"{name}.png") < JPEG_NOISE
    log = srv.requests()
    plain, held = tile_paths(log, "/demo/", status=200), tile_paths(log, "/m/hold_after=7/", status=200)
    assert len(plain) == DEMO_TILES and set(plain.values()) == {1}, "finished image: every tile once"
    assert len(held) == DEMO_TILES and set(held.values()) == {1}, "held image: every tile answered once"
    assert tile_paths(log, "/m/hold_after=7/", status=499), "some requests were in flight at the interruption"
