"""Helpers of the bulk tests (tests/test_bulk_workflow.py, tests/test_bulk_cli.py).

Running the workflow and the `dezoom` command as subprocesses in a test folder, a listing of
the files a run created, and hand-written IIIF Presentation documents (a 2.1 manifest, a 3.0
manifest and a 3.0 collection) whose canvases point at the rig's static IIIF image services.
Every painted resource also names a small static "thumbnail" image on the fault server: a
canvas must be downloaded through its image service, never through that `@id`/`id`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import json
import uuid

import numpy as np
import pytest
from PIL import Image

from rigutil import Rig, compare, label_box, load_rgb, read_access_log

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "examples" / "demo"
DEMO_SOURCE = DEMO / "source.png"
DEMO_TILES = 20  # tiles of the largest level of examples/demo/demo.dzi (5 x 4 at 256 px)
JPEG_NOISE = 4.0  # mean |diff| allowed between a stitched demo and its source

# The rig's small image: 1000 x 700 (tests/rig/gen_pyramids.sh), a level-0 IIIF service.
SMALL_W, SMALL_H = 1000, 700
IIIF2 = "/small/iiif512"    # Image API 2 service, 512 px tiles
IIIF2_256 = "/small/iiif256"  # the same image, 256 px tiles (tells canvases apart in the log)
IIIF3 = "/small/iiif3_512"  # Image API 3 service, 512 px tiles
# Q75 JPEG tiles of the rig written losslessly (PNG): the limits of tests/test_rig_e2e.py (JPEG_Q75).
RIG_MEAN, RIG_BLOCK = 2.5, 10.0
PRESENTATION2 = "http://iiif.io/api/presentation/2/context.json"
PRESENTATION3 = "http://iiif.io/api/presentation/3/context.json"


# ------------------------------------------------------------------ processes

def clean_env(tmpdir: Path, **extra: str) -> dict[str, str]:
    """Environment of a run: repository importable, no proxies, temporary files in `tmpdir`."""
    tmpdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(PYTHONPATH=str(REPO), TMPDIR=str(tmpdir), NO_PROXY="127.0.0.1,localhost",
               no_proxy="127.0.0.1,localhost", PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def snakemake_cmd(workdir: Path, *extra: str) -> list[str]:
    """The command line of a snakemake run of this repository's workflow in `workdir`."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--cores", "2", *extra]


def snakemake_env(workdir: Path, tmpdir: Path) -> dict[str, str]:
    """Environment of a workflow run: Snakemake's own cache and temporary files kept in the test."""
    return clean_env(tmpdir, XDG_CACHE_HOME=str(workdir / ".xdg-cache"))


def run_snakemake(workdir: Path, tmpdir: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the workflow to the end in `workdir`; returns the finished process (output captured)."""
    return subprocess.run(snakemake_cmd(workdir, *extra), capture_output=True, text=True,
                          timeout=timeout, env=snakemake_env(workdir, tmpdir), cwd=workdir)


def run_cli(cwd: Path, tmpdir: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run `python -m dezoom_steps ARGS` in `cwd` (stdin closed: not interactive)."""
    return subprocess.run([sys.executable, "-m", "dezoom_steps", *args], cwd=cwd, env=clean_env(tmpdir),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def describe(proc: subprocess.CompletedProcess[str], limit: int = 4000) -> str:
    """Command, exit code and output tails of a finished process, for assertion messages."""
    cmd = " ".join(map(str, proc.args)) if isinstance(proc.args, list) else str(proc.args)
    return (f"\n$ {cmd}\nexit code {proc.returncode}\n--- stdout (tail) ---\n{proc.stdout[-limit:]}"
            f"\n--- stderr (tail) ---\n{proc.stderr[-limit:]}")


# ------------------------------------------------------------------ files

def tree(root: Path) -> set[Path]:
    """Every file and folder below `root`, relative to it."""
    return {p.relative_to(root) for p in root.rglob("*")}


def pixels(path: Path) -> np.ndarray:
    """The RGB pixels of an image file as int16 (room for differences)."""
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def demo_diff(path: Path) -> float:
    """Mean absolute difference between an output and the demo's source image (sizes must match)."""
    got, ref = pixels(path), pixels(DEMO_SOURCE)
    assert got.shape == ref.shape, f"{path.name} is {got.shape[1]}x{got.shape[0]}, the demo is 1200x800"
    return float(np.abs(got - ref).mean())


def tile_paths(requests: list[dict[str, Any]], prefix: str = "", status: int | None = None) -> dict[str, int]:
    """How many times each DeepZoom tile path under `prefix` appears in a fault server log."""
    counts: dict[str, int] = {}
    for r in requests:
        if "_files/" in r["path"] and r["path"].startswith(prefix) and (status is None or r["status"] == status):
            counts[r["path"]] = counts.get(r["path"], 0) + 1
    return counts


def write_thumbnails(site: Path, names: list[str]) -> None:
    """Small real JPEGs at site/thumbs/NAME (what a manifest's resource `@id` points at)."""
    (site / "thumbs").mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (100, 70), (200, 30, 30)).save(site / "thumbs" / name, quality=80)


# ------------------------------------------------------------------ IIIF Presentation documents

def manifest_v2(url: str, label: str, canvases: list[tuple[str, str, str]]) -> dict[str, Any]:
    """A Presentation 2.1 manifest; `canvases` = (label, image service id, thumbnail URL).

    2.1 §5.4: the canvas's `images` are annotations with motivation sc:painting whose
    `resource` is the image (here a thumbnail-sized static JPEG) carrying the image `service`.
    """
    items = []
    for n, (clabel, service, thumb) in enumerate(canvases, 1):
        canvas_id = f"{url}/canvas/{n}"
        items.append({
            "@id": canvas_id, "@type": "sc:Canvas", "label": clabel,
            "width": SMALL_W, "height": SMALL_H,
            "images": [{
                "@id": f"{url}/annotation/{n}", "@type": "oa:Annotation", "motivation": "sc:painting",
                "on": canvas_id,
                "resource": {
                    "@id": thumb, "@type": "dctypes:Image", "format": "image/jpeg", "width": 100, "height": 70,
                    "service": {"@context": "http://iiif.io/api/image/2/context.json", "@id": service,
                                "profile": "http://iiif.io/api/image/2/level0.json"},
                },
            }],
        })
    return {"@context": PRESENTATION2, "@id": url, "@type": "sc:Manifest", "label": label,
            "sequences": [{"@id": f"{url}/sequence/normal", "@type": "sc:Sequence", "canvases": items}]}


def manifest_v3(url: str, label: str, canvases: list[tuple[str, str, str]]) -> dict[str, Any]:
    """A Presentation 3.0 manifest; `canvases` = (label, ImageService3 id, thumbnail URL).

    3.0: Canvas `items` -> AnnotationPage `items` -> Annotation (motivation painting) whose
    `body` is the image (a thumbnail-sized static JPEG) with its `service` list.
    """
    items = []
    for n, (clabel, service, thumb) in enumerate(canvases, 1):
        canvas_id = f"{url}/canvas/{n}"
        items.append({
            "id": canvas_id, "type": "Canvas", "label": {"none": [clabel]},
            "width": SMALL_W, "height": SMALL_H,
            "items": [{
                "id": f"{canvas_id}/page", "type": "AnnotationPage",
                "items": [{
                    "id": f"{canvas_id}/page/annotation", "type": "Annotation", "motivation": "painting",
                    "target": canvas_id,
                    "body": {"id": thumb, "type": "Image", "format": "image/jpeg", "width": 100, "height": 70,
                             "service": [{"id": service, "type": "ImageService3", "profile": "level0"}]},
                }],
            }],
        })
    return {"@context": PRESENTATION3, "id": url, "type": "Manifest", "label": {"en": [label]}, "items": items}


def collection_v3(url: str, label: str, members: list[tuple[str, str, str]]) -> dict[str, Any]:
    """A Presentation 3.0 collection; `members` = (id, type "Manifest"/"Collection", label)."""
    return {"@context": PRESENTATION3, "id": url, "type": "Collection", "label": {"en": [label]},
            "items": [{"id": mid, "type": kind, "label": {"en": [mlabel]}} for mid, kind, mlabel in members]}


# ------------------------------------------------------------------ a site of IIIF documents

def marker(tmp_path: Path) -> str:
    """A Referer unique to this test: the rig's access log is shared with every other run using it."""
    return f"http://bulk-test.invalid/{uuid.uuid4().hex}/{tmp_path.name}"


def rig_tiles(rig: Rig, since: int, service: str, referer: str) -> dict[str, int]:
    """Tile requests of this test (its Referer) answered 200 by the rig's static port under one
    IIIF service since a log offset."""
    counts: dict[str, int] = {}
    for e in read_access_log(rig.access_log, since):
        if e.port == rig.ports["static"] and e.path.startswith(service + "/") and e.path.endswith(".jpg") \
                and e.status == 200 and e.referer == referer:
            counts[e.path] = counts.get(e.path, 0) + 1
    return counts


def assert_like_reference(path: Path, rig: Rig) -> None:
    """`path` is the rig's small image, up to the JPEG noise of its tiles."""
    ref, got = load_rgb(rig.ref_small), load_rgb(path)
    assert got.shape == ref.shape == (SMALL_H, SMALL_W, 3), f"{path.name}: {got.shape} vs {ref.shape}"
    box = label_box(json.loads(rig.ref_small_json.read_text()))
    problems = compare(got, ref, box).problems(RIG_MEAN, RIG_BLOCK)
    assert not problems, f"{path.name} does not match the reference: {problems}"


@pytest.fixture
def iiif_site(fault_server, rig: Rig, tmp_path: Path) -> tuple[Any, dict[str, str]]:
    """A fault server holding a 2.1 manifest, a 3.0 manifest and a 3.0 collection of both (which
    also lists itself); canvases point at the rig's static IIIF services, resources at thumbnails."""
    site = tmp_path / "site"
    (site / "iiif").mkdir(parents=True)
    write_thumbnails(site, ["v2-1.jpg", "v2-2.jpg", "v3-1.jpg", "v3-2.jpg"])
    srv = fault_server(site)
    v2, v3, coll = srv.url("iiif/atlas-v2/manifest.json"), srv.url("iiif/atlas-v3/manifest.json"), \
        srv.url("iiif/both/collection.json")
    docs = {
        "iiif/atlas-v2/manifest.json": manifest_v2(v2, "Atlas v2", [
            ("Folio 1r", rig.url("static", IIIF2), srv.url("thumbs/v2-1.jpg")),
            ("Folio 1v", rig.url("static", IIIF2_256), srv.url("thumbs/v2-2.jpg"))]),
        "iiif/atlas-v3/manifest.json": manifest_v3(v3, "Atlas v3", [
            ("Page 1", rig.url("static", IIIF3), srv.url("thumbs/v3-1.jpg")),
            ("Page 2", rig.url("static", IIIF3), srv.url("thumbs/v3-2.jpg"))]),
        "iiif/both/collection.json": collection_v3(coll, "Both atlases", [
            (v2, "Manifest", "Atlas v2"), (v3, "Manifest", "Atlas v3"), (coll, "Collection", "Myself")]),
    }
    for rel, doc in docs.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(json.dumps(doc, indent=1, ensure_ascii=False))
    return srv, {"v2": v2, "v3": v3, "collection": coll}
