"""PFF, Google Arts & Culture and NYPL end to end on 127.0.0.1, through `python -m dezoom_steps` and the workflow.

The sites are made by tests/formatfixtures.py from examples/demo/source.png (PNG tiles) and
served by the project's fault server (its PFF servlet mode for PFF). Every download must
give back the source's pixels exactly; the access log shows what was requested.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

import formatfixtures as ff
from cli_support import DEMO_SOURCE, assert_left_nothing, assert_one_line_error, pixels, run_dezoom
from dezoom_steps.cache import sniff_image
from faultserver_fixture import FaultServer, fault_server  # noqa: F401  (pytest fixture)
from test_workflow import run_snakemake

FAST = ("-i", "0s", "--retry-delay", "10ms")
NYPL_ID = "0a1b2c3d-e4f5-a6b7-c8d9-e0f1a2b3c4d5"
ERROR_SECONDS = 10.0  # a bad input is reported within seconds


@pytest.fixture
def served(tmp_path: Path, fault_server) -> FaultServer:  # noqa: F811
    """A fault server over an empty site folder (the test writes the format's files into it)."""
    return fault_server(tmp_path / "site")


def assert_is_source(path: Path, size: tuple[int, int] | None = None) -> None:
    """The image at `path` has exactly the source's pixels (or those of the source scaled to `size`)."""
    img = ff.source_image()
    want = pixels(DEMO_SOURCE) if size is None else np.asarray(ff.scaled(img, *size)).astype(np.int16)
    got = pixels(path)
    assert got.shape == want.shape, f"{path}: {got.shape[1]}x{got.shape[0]}, expected {want.shape[1]}x{want.shape[0]}"
    differ = int((got != want).any(axis=2).sum())
    assert differ == 0, f"{path}: {differ} pixels differ from the source"


def sidecar(path: Path) -> dict:
    """The provenance sidecar of an output."""
    return json.loads(path.with_name(path.name + ".json").read_text())


def requests_with(srv: FaultServer, text: str) -> list[dict]:
    """Logged requests whose path contains `text`."""
    return [r for r in srv.requests() if text in r["path"]]


# ------------------------------------------------------------------ Zoomify PFF

def test_pff_servlet_in_auto_mode(served, tmp_path):
    ff.write_pff(served.root / "pff" / "demo.pff", ff.source_image())
    url = served.url(ff.pff_input("pff/demo.pff"))
    result = run_dezoom(tmp_path / "run", url, "out.png", *FAST)
    assert result.code == 0, result.describe()
    out = tmp_path / "run" / "out.png"
    assert_is_source(out)
    assert sidecar(out)["dezoomer"] == "pff"
    assert len(requests_with(served, "requestType=1")) == 1
    assert len(requests_with(served, "requestType=2")) == 1
    tiles = requests_with(served, "requestType=0")
    assert len(tiles) == 20 and {r["status"] for r in tiles} == {200}, "5 x 4 tiles of 256 px, each once"


def test_pff_from_a_tile_request_picks_a_smaller_level(served, tmp_path):
    pff = ff.write_pff(served.root / "maps" / "old demo.pff", ff.source_image())
    # a tile request as copied from a browser (any begin/end): the dezoomer asks for the header
    url = served.url("pffservlet?requestType=0&file=maps%2Fold+demo.pff&begin=3000&end=4000")
    result = run_dezoom(tmp_path / "run", "-d", "pff", "--zoom-level", "0", url, "small.png", *FAST)
    assert result.code == 0, result.describe()
    assert_is_source(tmp_path / "run" / "small.png", (600, 400))
    tiles = [r for r in requests_with(served, "requestType=0") if "begin=3000" not in r["path"]]
    assert len(tiles) == 6 and {r["status"] for r in tiles} == {200}, "3 x 2 tiles of the 600x400 level"
    assert pff.tiles == 29  # 20 + 6 + 2 + 1: the file also holds the tiers the client never lists


def test_pff_servlet_faults_are_retried(served, tmp_path):
    ff.write_pff(served.root / "pff" / "demo.pff", ff.source_image())
    url = served.url("m/fail=1/" + ff.pff_input("pff/demo.pff"))  # every request path fails once (503)
    result = run_dezoom(tmp_path / "run", url, "out.png", "-r", "1", *FAST)
    assert result.code == 0, result.describe()
    assert_is_source(tmp_path / "run" / "out.png")
    tiles = requests_with(served, "requestType=0")
    assert len(tiles) == 40 and sorted(r["status"] for r in tiles) == [200] * 20 + [503] * 20


def test_truncated_pff_header_is_one_line_exit_3(served, tmp_path):
    whole = ff.write_pff(served.root / "pff" / "demo.pff", ff.source_image())
    cut = served.root / "pff" / "cut.pff"
    cut.write_bytes(whole.path.read_bytes()[: ff.PFF_HEADER_OFFSET + 60])  # cut inside the header
    url = served.url(ff.pff_input("pff/cut.pff"))
    started = time.monotonic()
    result = run_dezoom(tmp_path / "run", url, "out.png", *FAST)
    assert time.monotonic() - started < ERROR_SECONDS
    assert_one_line_error(result, 3, url, "unable to parse the PFF header")
    assert_left_nothing(tmp_path / "run")


# ------------------------------------------------------------------ Google Arts & Culture

def gac_site(srv: FaultServer) -> ff.GacSite:
    """The demo as a GAC site; tile (1, 1) of the largest level is stored unencrypted."""
    return ff.write_gac(srv.root, ff.source_image(), srv.base, clear_tiles=frozenset({(1, 1, 2)}))


def test_gac_forced_on_a_loopback_copy_decrypts_before_caching(served, tmp_path):
    site = gac_site(served)
    cache = tmp_path / "tiles"
    result = run_dezoom(tmp_path / "run", "-d", "google_arts_and_culture", served.url(site.page), "out.png",
                        "-c", str(cache), *FAST)
    assert result.code == 0, result.describe()
    out = tmp_path / "run" / "out.png"
    assert_is_source(out)
    side = sidecar(out)
    assert side["dezoomer"] == "google_arts_and_culture" and side["title"] == site.title
    served_tiles = [served.root / r["path"].lstrip("/") for r in requests_with(served, "=x")]
    assert len(served_tiles) == 6 and {r["status"] for r in requests_with(served, "=x")} == {200}
    assert sum(p.read_bytes()[:4] == b"\x0a\x0a\x0a\x0a" for p in served_tiles) == 5, "the server sent encrypted tiles"
    cached = [p.read_bytes() for p in cache.iterdir()]
    assert len(cached) == 6 and all(sniff_image(b) == "png" for b in cached), "the cache holds decrypted images"


def test_gac_auto_mode_on_a_loopback_copy(served, tmp_path):
    site = gac_site(served)
    result = run_dezoom(tmp_path / "run", served.url(site.page), "auto.png", *FAST)
    assert result.code == 0, result.describe()
    assert_is_source(tmp_path / "run" / "auto.png")
    assert sidecar(tmp_path / "run" / "auto.png")["dezoomer"] == "google_arts_and_culture"


def test_gac_tile_that_cannot_be_decrypted_is_reported_missing(served, tmp_path):
    site = gac_site(served)
    bad = next(p for p in served.root.glob("gac/*=x2-y0-z2-t*"))
    data = bad.read_bytes()
    bad.write_bytes(data[:-4] + (len(data) * 2).to_bytes(4, "little"))  # H larger than the tile
    result = run_dezoom(tmp_path / "run", "-d", "google_arts_and_culture", served.url(site.page), "out.png",
                        "-r", "0", "--logging", "info", *FAST)
    assert result.code == 6, result.describe()
    assert "unable to process the downloaded tile: The size of the unencrypted header" in result.stderr
    assert "Traceback" not in result.stderr
    missing = sidecar(tmp_path / "run" / "out.png")["missing_tiles"]
    assert len(missing) == 1 and "=x2-y0-z2-" in json.dumps(missing)


def test_gac_page_without_token_is_one_line_exit_3(served, tmp_path):
    page = ff.write_gac_page_without_token(served.root, served.base)
    url = served.url(page)
    started = time.monotonic()
    result = run_dezoom(tmp_path / "run", "-d", "google_arts_and_culture", url, "out.png", *FAST)
    assert time.monotonic() - started < ERROR_SECONDS
    assert_one_line_error(result, 3, url, "Unable to find the token in the page")
    assert_left_nothing(tmp_path / "run")


@pytest.mark.workflow
def test_gac_through_the_workflow_decrypts_tiles(served, tmp_path):
    site = gac_site(served)
    work = tmp_path / "wf"
    work.mkdir()
    proc = run_snakemake(work, "--config", f"url={served.url(site.page)}", "output=gac.png",
                         "dezoomer=google_arts_and_culture", "min_interval=0s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_is_source(work / "results" / "gac.png")
    cached = [p for p in (work / "cache").rglob("*") if p.is_file()]
    assert len(cached) == 6 and all(sniff_image(p.read_bytes()) == "png" for p in cached)


# ------------------------------------------------------------------ NYPL

@pytest.mark.parametrize("mode", ["forced", "auto"])
def test_nypl_item_url_on_a_loopback_copy(served, tmp_path, mode):
    ff.write_nypl(served.root, ff.source_image(), NYPL_ID)
    url = served.url(f"items/{NYPL_ID}")
    args = ["-d", "nypl"] if mode == "forced" else []
    result = run_dezoom(tmp_path / "run", *args, url, "out.png", *FAST)
    assert result.code == 0, result.describe()
    out = tmp_path / "run" / "out.png"
    assert_is_source(out)
    assert sidecar(out)["dezoomer"] == "nypl"
    tiles = requests_with(served, "/tiles/0/")
    # 1200 px: L = bit_length(1200) = 11; 5 x 4 tiles of 256 px carrying 2 px of overlap
    assert len(tiles) == 20 and all("/tiles/0/11/" in r["path"] for r in tiles)
    assert len(requests_with(served, "config.js")) == 1
    assert len(requests_with(served, "/items/")) == (0 if mode == "forced" else 1)
