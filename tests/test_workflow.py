"""The Snakemake workflow, run as a subprocess on named configurations.

The tile server is the project's fault server (tests/servers/faultserver.py) serving a copy of
the embedded demo pyramid on 127.0.0.1, so the access log tells exactly what was fetched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from faultserver_fixture import fault_server  # noqa: F401  (pytest fixture)
from interrupt import cached_tiles, interrupt_when

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "examples" / "demo"
pytestmark = pytest.mark.workflow


def snakemake_cmd(workdir: Path, *extra: str) -> list[str]:
    """The command line of a snakemake run of this repository's workflow in `workdir`."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--cores", "2", *extra]


def run_snakemake(workdir: Path, *extra: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run the workflow to the end; returns the finished process (output captured)."""
    env = dict(os.environ, XDG_CACHE_HOME=str(workdir / ".xdg-cache"))
    return subprocess.run(snakemake_cmd(workdir, *extra), capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=workdir)


def pixels(path: Path) -> np.ndarray:
    """The RGB pixels of an image file as int16 (room for differences)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def serve_demo(fault_server, tmp_path: Path):  # noqa: F811
    """A fault server over a copy of the demo pyramid (the copy can be edited by the test)."""
    site = tmp_path / "site"
    shutil.copytree(DEMO, site / "demo")
    return fault_server(site), site


def tile_requests(srv, status: int | None = None) -> dict[str, int]:
    """How many times each tile path was requested (optionally only answers with `status`)."""
    counts: dict[str, int] = {}
    for r in srv.requests():
        if "_files/" in r["path"] and (status is None or r["status"] == status):
            counts[r["path"]] = counts.get(r["path"], 0) + 1
    return counts


def test_demo_runs_offline_and_matches_its_source(tmp_path):
    proc = run_snakemake(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "results" / "demo.png"
    diff = np.abs(pixels(out) - pixels(DEMO / "source.png"))
    assert diff.shape[:2] == (800, 1200)
    assert diff.mean() < 4, "stitched demo differs from its source beyond JPEG noise"
    side = json.loads((tmp_path / "results" / "demo.png.json").read_text())
    assert side["complete"] and side["missing_tiles"] == [] and side["tiles_total"] == 20
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert summary["complete"] == summary["images"] == 1 and summary["items"][0]["state"] == "complete"
    assert not (tmp_path / "work" / "demo" / "canvas.tif").exists(), "the canvas is a temp() output"


def test_url_and_output_from_the_command_line(fault_server, tmp_path):  # noqa: F811
    srv, _site = serve_demo(fault_server, tmp_path)
    url = srv.url("demo/demo.dzi")
    proc = run_snakemake(tmp_path, "--config", f"url={url}", "output=mine.jpg", "min_interval=0s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "results" / "mine.jpg"
    assert np.abs(pixels(out) - pixels(DEMO / "source.png")).mean() < 5
    side = json.loads((tmp_path / "results" / "mine.jpg.json").read_text())
    assert side["source"] == url and side["dezoomer"] == "deepzoom" and side["format"] in ("jpeg", "jpg")
    served = tile_requests(srv)
    assert len(served) == 20 and set(served.values()) == {1}
    assert all(r["referer"] == url for r in srv.requests() if "_files/" in r["path"]), \
        "tile requests carry the input URL as Referer"


def test_a_list_of_inputs_fans_out_into_one_chain_per_image(tmp_path):
    cfg = tmp_path / "harvest.yaml"
    cfg.write_text(yaml.safe_dump({"inputs": [
        {"url": str(DEMO / "demo.dzi"), "name": "first"},
        {"url": str(DEMO / "demo.dzi"), "name": "second", "format": "jpg"},
    ], "format": "png"}))
    proc = run_snakemake(tmp_path, "--configfile", str(cfg))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("first.png", "second.jpg"):
        assert np.abs(pixels(tmp_path / "results" / name) - pixels(DEMO / "source.png")).mean() < 5
    for image in ("first", "second"):
        assert (tmp_path / "work" / image / "resolve.json").exists()
        assert (tmp_path / "logs" / image / "fetch-0.log").exists()
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert summary["images"] == summary["complete"] == 2


def test_missing_tiles_give_a_partial_image_and_a_rerun_fetches_only_them(fault_server, tmp_path):  # noqa: F811
    srv, site = serve_demo(fault_server, tmp_path)
    hole = site / "demo" / "demo_files" / "11" / "2_1.jpg"
    saved = hole.read_bytes()
    hole.unlink()
    work = tmp_path / "run"
    work.mkdir()
    args = ("--config", f"url={srv.url('demo/demo.dzi')}", "output=holey.png", "min_interval=0s")
    first = run_snakemake(work, *args)
    assert first.returncode != 0, "a partial download must not end the run with success"
    out = work / "results" / "holey.png"
    summary = json.loads((work / "results" / "summary.json").read_text())
    (row,) = summary["items"]
    assert row["state"] == "partial" and [u.rsplit("/", 2)[-2:] for u in row["missing"]] == [["11", "2_1.jpg"]]
    assert not (work / "results" / "holey.png.json").exists(), "the sidecar is set aside so a rerun rebuilds it"
    assert not json.loads((work / "results" / "holey.png.json.partial").read_text())["complete"]
    img = pixels(out)
    assert (img[256:512, 512:768] == 0).all(), "the missing tile's cell is black"
    assert "PARTIAL" in first.stdout + first.stderr

    hole.write_bytes(saved)
    before = tile_requests(srv)
    second = run_snakemake(work, *args)
    assert second.returncode == 0, second.stderr[-3000:]
    after = tile_requests(srv)
    refetched = {p: after[p] - before.get(p, 0) for p in after if after[p] != before.get(p, 0)}
    assert list(refetched) == ["/demo/demo_files/11/2_1.jpg"], "only the missing tile is fetched again"
    assert np.abs(pixels(out) - pixels(DEMO / "source.png")).mean() < 4
    assert json.loads((work / "results" / "holey.png.json").read_text())["complete"]


def test_a_run_interrupted_mid_fetch_resumes_and_fetches_every_tile_once(fault_server, tmp_path):  # noqa: F811
    srv, site = serve_demo(fault_server, tmp_path)
    (site / "HOLD").write_text("hold tile requests after the 7th\n")
    url = srv.url("m/hold_after=7/demo/demo.dzi")
    work = tmp_path / "run"
    work.mkdir()
    args = ("--config", f"url={url}", "output=resumed.png", "min_interval=0s", "parallelism=3")
    env = dict(os.environ, XDG_CACHE_HOME=str(work / ".xdg-cache"))
    cache = work / "cache" / "resumed"
    code = interrupt_when(snakemake_cmd(work, *args), work, env, lambda: cached_tiles(cache) >= 7,
                          120, "the first 7 tiles never reached the cache")
    assert code != 0
    assert not (work / "results" / "resumed.png").exists()
    assert not (work / "work" / "resumed" / "fetch" / "shard-0.json").exists()

    (site / "HOLD").unlink()
    second = run_snakemake(work, *args)
    assert second.returncode == 0, second.stderr[-3000:]
    answered = tile_requests(srv, status=200)
    assert len(answered) == 20 and set(answered.values()) == {1}, "every tile fetched exactly once"
    assert tile_requests(srv, status=499), "some requests were in flight when the run was interrupted"
    reference = tmp_path / "reference.png"
    ref = subprocess.run([sys.executable, "-m", "dezoom_steps", str(DEMO / "demo.dzi"), str(reference)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert ref.returncode == 0, ref.stderr
    assert np.array_equal(pixels(work / "results" / "resumed.png"), pixels(reference))


def test_snakemake_lint_finds_nothing_but_the_conda_advice(tmp_path):
    proc = run_snakemake(tmp_path, "--lint")
    text = proc.stdout + proc.stderr
    lints = {line.strip() for line in text.splitlines() if line.strip().startswith("* ")}
    assert lints <= {"* Specify a conda environment or container for each rule.:"}, text[-3000:]
