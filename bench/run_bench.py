#!/usr/bin/env python3
"""Benchmark of issue 2: the 10000x7000 rig image, end to end, DZI / Zoomify / IIIF to PNG and JPEG.

For every source x output format, the `dezoom` CLI runs as its own process twice:
  cold  fresh tile cache: every tile is downloaded from the rig's static nginx port;
  warm  the same cache again: every tile is a cache hit, so this is stitch + encode.
Each run is measured from outside: wall time, peak RSS of the whole process (GNU time -v,
else the rusage of os.wait4), output size; tiles/s = the sidecar's tiles_total / wall time.
Every output is checked against the rig's lossless reference (size, mean and worst 32 px cell
difference) so that no figure is reported for a broken image.

Peers on the same machine in the same run, reported as time ratios (ours / peer):
  vips  libvips encoding the very pixels of our output (written once, untimed, to an
        uncompressed TIFF, much like our own canvas.tif) to PNG / JPEG, at its default
        settings and at the settings `dezoom` uses; compared with our warm run (tile decode +
        stitch + encode). For context also libvips encoding level 0 of the rig's pyramidal
        TIFF at default settings (JPEG Q90 tiles: not quite the same pixels);
  curl  downloading the same tile URLs (--parallel --parallel-max 16), against our fetch
        step alone (scripts/fetch_tiles.py, also 16 connections).

Writes bench/results/bench-<date>.json and prints markdown tables. Usage:
  python3 bench/run_bench.py [--keep DIR] [--output FILE] [--sources dzi,zoomify,iiif] [--formats png,jpg]
The rig's data (SIZES="small medium") is generated if needed; its servers are started if they
are not running, and then stopped again (by pid, tests/rig/stop_servers.sh) at the end.
RIG_PORT_BASE / RIG_RUN_DIR / RIG_DATA_DIR move the rig as for the tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
RIG_DIR = REPO / "tests" / "rig"
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
from machine import machine_facts  # noqa: E402
from measure import TIME_BIN, Run, measure, time_available  # noqa: E402
from rigutil import label_box, rig_ports, servers_running  # noqa: E402

SCHEMA = "dezoom-steps/bench/1"
PARALLELISM = 16
RSS_TARGET_MB = 300  # issue 2: peak RSS under 300 MB for PNG output of the medium image
MB = 1e6
BASELINE_IMPORTS = ("import dezoom_steps.cli, dezoom_steps.steps.resolve, dezoom_steps.steps.list_tiles, "
                    "dezoom_steps.steps.fetch_tiles, dezoom_steps.steps.stitch, dezoom_steps.steps.encode, "
                    "dezoom_steps.encoders")


@dataclass(frozen=True)
class Source:
    """One of the rig's pyramids of the medium image, and how lossy its tiles are."""

    name: str
    path: str  # on the static port
    tile_quality: int  # JPEG quality the tiles were made with (tests/rig/gen_pyramids.sh)


SOURCES = {
    "dzi": Source("dzi", "/medium/dz254o1.dzi", 75),
    "zoomify": Source("zoomify", "/medium/zoomify256/ImageProperties.xml", 85),
    "iiif": Source("iiif", "/medium/iiif512/info.json", 75),
}
# Pass limits of the comparison with the reference: (mean |diff|, worst 32 px cell) by tile
# quality, as in tests/test_rig_e2e.py, plus an allowance for a lossy (JPEG Q95) output.
TILE_LIMITS = {75: (2.5, 10.0), 85: (1.5, 6.0)}
JPEG_OUTPUT_ALLOWANCE = (0.8, 3.0)
# `dezoom` defaults (compression 5): PNG deflate "fast" tier (zlib level 1) with the Up filter;
# JPEG quality 95, 4:2:0. The "matched" vips runs use the same settings.
VIPS_SAVE = {
    ("png", "default"): ["pngsave"],
    ("png", "matched"): ["pngsave", "--compression", "1", "--filter", "up"],
    ("jpg", "default"): ["jpegsave"],
    ("jpg", "matched"): ["jpegsave", "--Q", "95", "--subsample-mode", "on"],
}


# ------------------------------------------------------------------ measuring one process

def checked(m: Run, what: str) -> Run:
    """`m`, or a RuntimeError naming `what` when the process failed."""
    if m.exit_code != 0:
        raise RuntimeError(f"{what} failed (exit {m.exit_code}): {' '.join(m.cmd)}\n"
                           f"{m.stderr[-1500:]}{m.stdout[-500:]}")
    return m


# ------------------------------------------------------------------ the rig

def rig_env() -> dict[str, str]:
    """The environment for the rig scripts and every measured child."""
    env = dict(os.environ)
    env["SIZES"] = "small medium"
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def rig_script(name: str, env: dict[str, str], timeout: float) -> None:
    """Run tests/rig/NAME; raise with its output when it fails."""
    proc = subprocess.run(["bash", str(RIG_DIR / name)], env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"tests/rig/{name} failed (exit {proc.returncode}):\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")


# ------------------------------------------------------------------ checking outputs

class Reference:
    """The rig's lossless reference of the medium image, loaded once."""

    def __init__(self, www: Path):
        Image.MAX_IMAGE_PIXELS = None
        with Image.open(www / "ref" / "medium.png") as im:
            self.pixels = np.asarray(im.convert("RGB"))
        self.box = label_box(json.loads((www / "ref" / "medium.json").read_text()))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.pixels.shape[1], self.pixels.shape[0]

    def compare(self, path: Path, block: int = 32) -> dict[str, Any]:
        """Size, mean |diff| and the worst block x block cell (label box left out) of an image file."""
        with Image.open(path) as im:
            if im.size != self.size:
                return {"size": list(im.size), "size_ok": False}
            im.load()
            got = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
        ref, (bx, by, bw, bh) = self.pixels, self.box
        width = ref.shape[1]
        starts = np.arange(0, width, block)
        widths = np.diff(np.append(starts, width))
        total, worst, worst_at = 0.0, 0.0, (0, 0)
        for y in range(0, ref.shape[0], block):
            d = np.abs(got[y:y + block].astype(np.int16) - ref[y:y + block].astype(np.int16)).sum(axis=2)
            total += float(d.sum())
            y0, y1 = max(0, by - y), min(d.shape[0], by + bh - y)
            if y0 < y1:
                d[y0:y1, max(0, bx):bx + bw] = 0
            cells = np.add.reduceat(d.sum(axis=0), starts) / (3.0 * d.shape[0] * widths)
            i = int(cells.argmax())
            if cells[i] > worst:
                worst, worst_at = float(cells[i]), (int(starts[i]), y)
        return {"size": list(self.size), "size_ok": True, "mean_abs_diff": round(total / ref.size, 3),
                "worst_cell_diff": round(worst, 2), "worst_cell_at": list(worst_at)}


def limits_for(source: Source, fmt: str) -> tuple[float, float]:
    """The (mean, worst cell) limits an output of `source` in `fmt` must stay under."""
    mean, cell = TILE_LIMITS[source.tile_quality]
    if fmt == "jpg":
        mean, cell = mean + JPEG_OUTPUT_ALLOWANCE[0], cell + JPEG_OUTPUT_ALLOWANCE[1]
    return mean, cell


def image_size(path: Path) -> list[int]:
    """Width and height from an image file's header."""
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(path) as im:
        return list(im.size)


# ------------------------------------------------------------------ the runs

@dataclass
class Bench:
    """One benchmark session: where it works, what it found."""

    env: dict[str, str]
    static: str
    www: Path
    tiff: Path
    work: Path
    ref: Reference | None = None
    problems: list[str] = field(default_factory=list)

    def dezoom(self, url: str, out: Path, cache: Path) -> Run:
        """One measured `python -m dezoom_steps` run."""
        cmd = [sys.executable, "-m", "dezoom_steps", url, str(out), "-n", str(PARALLELISM), "-i", "0ms",
               "-c", str(cache)]
        return checked(measure(cmd, out.parent, self.env), f"dezoom {url} -> {out.name}")

    def tile_list(self, source: Source, folder: Path) -> tuple[Path, list[str]]:
        """tiles.json of the source's largest level (resolve + list_tiles step scripts) and its URLs."""
        url = self.static + source.path
        checked(measure([sys.executable, str(REPO / "scripts" / "resolve.py"), url, "-o", str(folder / "resolve.json")],
                        folder, self.env), "resolve")
        checked(measure([sys.executable, str(REPO / "scripts" / "list_tiles.py"), str(folder / "resolve.json"),
                         "-o", str(folder / "tiles.json"), "--image", f"bench-{source.name}"], folder, self.env),
                "list_tiles")
        tiles = json.loads((folder / "tiles.json").read_text())["tiles"]
        return folder / "tiles.json", [t["url"] for t in tiles]

    def fetch_only(self, tiles_json: Path, n_tiles: int, folder: Path) -> dict[str, Any]:
        """Our fetch step alone (scripts/fetch_tiles.py) into an empty cache."""
        report = folder / "fetch.json"
        m = checked(measure([sys.executable, str(REPO / "scripts" / "fetch_tiles.py"), str(tiles_json),
                             "--cache", str(folder / "cache-fetch"), "--report", str(report),
                             "-n", str(PARALLELISM), "-i", "0ms"], folder, self.env), "fetch_tiles")
        body = json.loads(report.read_text())
        ok = body["downloaded"] == n_tiles and not body["failed"]
        if not ok:
            self.problems.append(f"fetch_tiles: downloaded {body['downloaded']} of {n_tiles}, "
                                 f"{len(body['failed'])} failed")
        return {**m.figures(), "tiles": n_tiles, "tiles_per_s": round(n_tiles / m.wall_s, 1),
                "step_seconds": body["seconds"], "bytes": body["bytes"], "ok": ok}

    def curl(self, urls: list[str], expected_bytes: int, folder: Path) -> dict[str, Any]:
        """curl fetching the same URLs with 16 parallel transfers; every status must be 200."""
        config = folder / "curl-urls.cfg"
        config.write_text("".join(f'url = "{u}"\noutput = "/dev/null"\n' for u in urls))
        m = checked(measure(["curl", "-s", "--parallel", "--parallel-max", str(PARALLELISM), "-K", str(config),
                             "-w", "%{http_code} %{size_download}\\n"], folder, self.env), "curl")
        answers = [line.split() for line in m.stdout.splitlines() if line.strip()]
        codes = [a[0] for a in answers]
        size = sum(int(a[1]) for a in answers)
        ok = len(codes) == len(urls) and set(codes) == {"200"} and size == expected_bytes
        if not ok:
            self.problems.append(f"curl: {codes.count('200')} of {len(urls)} answers were 200, "
                                 f"{size} bytes (our fetch step: {expected_bytes})")
        return {**m.figures(), "tiles": len(urls), "tiles_per_s": round(len(urls) / m.wall_s, 1),
                "bytes": size, "ok": ok}

    def end_to_end(self, source: Source, fmt: str, n_tiles: int, folder: Path) -> dict[str, Any]:
        """Cold (fresh cache, downloads everything) and warm (cache hits: stitch + encode) runs.

        The cold PNG output is kept as `{source}-cold.png` for the vips peer; others are deleted.
        """
        url, cache = self.static + source.path, folder / f"cache-{fmt}"
        row: dict[str, Any] = {"source": source.name, "url_path": source.path, "format": fmt}
        for phase in ("cold", "warm"):
            out = folder / f"{source.name}-{phase}.{fmt}"
            m = self.dezoom(url, out, cache)
            side = json.loads(Path(f"{out}.json").read_text())
            row[phase] = {**m.figures(), "tiles_per_s": round(side["tiles_total"] / m.wall_s, 1),
                          "output_mb": round(out.stat().st_size / MB, 2)}
            row.setdefault("tiles", side["tiles_total"])
            row.setdefault("sha256", side["sha256"])
            if not (side["complete"] and not side["missing_tiles"] and side["tiles_total"] == n_tiles):
                self.problems.append(f"{source.name}->{fmt} {phase}: sidecar says complete={side['complete']}, "
                                     f"{len(side['missing_tiles'])} missing, tiles_total {side['tiles_total']} "
                                     f"(tiles.json lists {n_tiles})")
            if phase == "cold":
                assert self.ref is not None
                check = self.ref.compare(out)
                check["limits"] = list(limits_for(source, fmt))
                check["ok"] = bool(check["size_ok"] and check["mean_abs_diff"] <= check["limits"][0]
                                   and check["worst_cell_diff"] <= check["limits"][1])
                row["check"] = check
                if not check["ok"]:
                    self.problems.append(f"{source.name}->{fmt}: output differs from the reference: {check}")
            elif side["sha256"] != row["sha256"]:
                self.problems.append(f"{source.name}->{fmt}: the warm run's output differs from the cold run's")
            if not (phase == "cold" and fmt == "png"):
                out.unlink()  # outputs are ~50 MB each; the figures are kept
        return row

    def same_pixels(self, source: Source, folder: Path) -> Path:
        """Our output's pixels as an uncompressed TIFF (untimed), the input of the vips peer."""
        png = folder / f"{source.name}-cold.png"
        if not png.exists():  # PNG was not benchmarked: make it from the filled cache of the JPEG runs
            self.dezoom(self.static + source.path, png, folder / "cache-jpg")
        tif = folder / "same-pixels.tif"
        checked(measure(["vips", "copy", str(png), f"{tif}[compression=none]"], folder, self.env), "vips copy")
        png.unlink()
        return tif

    def vips(self, fmt: str, settings: str, src: Path, folder: Path) -> dict[str, Any]:
        """libvips encoding the image file `src` (its first page) to `fmt` with `settings`."""
        out = folder / f"vips-{settings}.{fmt}"
        op, *opts = VIPS_SAVE[(fmt, settings)]
        m = checked(measure(["vips", op, f"{src}[page=0]", str(out), *opts], folder, self.env), f"vips {op}")
        size = image_size(out)
        ok = size == [10000, 7000]
        if not ok:
            self.problems.append(f"vips {op} {src.name} {settings}: output is {size[0]}x{size[1]}")
        row = {"format": fmt, "settings": settings,
               "command": f"vips {op} {src.name}[page=0] out.{fmt} {' '.join(opts)}".strip(),
               **m.figures(), "output_mb": round(out.stat().st_size / MB, 2), "size_ok": ok}
        out.unlink()
        return row


# ------------------------------------------------------------------ machine and report

def machine_info() -> dict[str, Any]:
    """The machine, Python, package and tool versions."""
    def first_line(cmd: list[str]) -> str:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "unavailable"

    facts = machine_facts(("dezoom-steps", "Pillow", "numpy", "requests", "urllib3", "tifffile", "isal",
                           "imagecodecs"))
    return {
        **facts, "python_executable": Path(sys.executable).name,
        "tools": {"vips": first_line(["vips", "--version"]), "curl": " ".join(first_line(["curl", "--version"]).split()[:2]),
                  "nginx": first_line(["nginx", "-v"]) if shutil.which("nginx") else first_line(["/usr/sbin/nginx", "-v"]),
                  "rss_measured_by": f"{TIME_BIN} -v"},
    }


def ratio(a: float, b: float) -> float:
    """a / b rounded for the report."""
    return round(a / b, 2) if b else float("nan")


def markdown(result: dict[str, Any]) -> str:
    """The result as markdown tables (the README's performance section uses the same layout)."""
    lines = ["| source | output | tiles | wall s | tiles/s | peak RSS MB | output MB | rerun from cache: wall s "
             "| peak RSS MB | ÷ vips, same settings | ÷ vips, its defaults |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["end_to_end"]:
        c, w, v = r["cold"], r["warm"], r["vips_same_pixels"]
        lines.append(f"| {r['source']} | {r['format']} | {r['tiles']} | {c['wall_s']:.2f} | {c['tiles_per_s']:.0f} "
                     f"| {c['peak_rss_mb']:.0f} | {c['output_mb']:.1f} | {w['wall_s']:.2f} | {w['peak_rss_mb']:.0f} "
                     f"| {ratio(w['wall_s'], v['matched']['wall_s'])} ({v['matched']['wall_s']:.2f} s, "
                     f"{v['matched']['peak_rss_mb']:.0f} MB) "
                     f"| {ratio(w['wall_s'], v['default']['wall_s'])} ({v['default']['wall_s']:.2f} s, "
                     f"{v['default']['output_mb']:.0f} MB out) |")
    lines += ["", "| source | tiles | MB | our fetch step: wall s, tiles/s | curl: wall s, tiles/s | time ours ÷ curl |",
              "|---|---:|---:|---:|---:|---:|"]
    for r in result["download"]:
        o, c = r["ours"], r["curl"]
        lines.append(f"| {r['source']} | {o['tiles']} | {o['bytes'] / MB:.1f} | {o['wall_s']:.2f}, {o['tiles_per_s']:.0f} "
                     f"| {c['wall_s']:.2f}, {c['tiles_per_s']:.0f} | {ratio(o['wall_s'], c['wall_s'])} |")
    if result["vips_pyramid"]:
        lines += ["", "| context: libvips from the pyramidal TIFF | wall s | peak RSS MB | output MB |",
                  "|---|---:|---:|---:|"]
        for v in result["vips_pyramid"]:
            lines.append(f"| `{v['command']}` | {v['wall_s']:.2f} | {v['peak_rss_mb']:.0f} | {v['output_mb']:.1f} |")
    t = result["target"]
    verdict = "not measured" if t["met"] is None else "met" if t["met"] else "NOT met"
    lines += ["", f"PNG peak RSS: max {t['png_peak_rss_mb_max']:.0f} MB (target < {t['limit_mb']} MB: "
              f"{verdict}); raw pixels {t['raw_pixels_mb']:.0f} MB; "
              f"interpreter + imports alone {result['baseline_imports']['peak_rss_mb']:.0f} MB."]
    return "\n".join(lines)


def write_json_atomic(path: Path, body: dict[str, Any]) -> None:
    """Write `body` as indented JSON to `path` via a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=1) + "\n")
    os.replace(tmp, path)


# ------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0, or 1 when some output was wrong (the JSON says which)."""
    p = argparse.ArgumentParser(description="Benchmark of the 10000x7000 rig image (issue 2).")
    p.add_argument("--sources", default=",".join(SOURCES), help="comma-separated subset of %(default)s")
    p.add_argument("--formats", default="png,jpg", help="comma-separated subset of %(default)s")
    p.add_argument("--output", type=Path, help="result JSON (default bench/results/bench-<date>.json)")
    p.add_argument("--keep", type=Path, help="work in this folder and keep caches and lists (default: a temp folder)")
    a = p.parse_args(argv)
    if not time_available():
        print(f"bench: {TIME_BIN} missing; install GNU time (scripts/setup.sh --test)", file=sys.stderr)
        return 2
    if set(a.sources.split(",")) - set(SOURCES):
        p.error(f"sources are {', '.join(SOURCES)}")
    sources = [SOURCES[s] for s in a.sources.split(",")]
    formats = a.formats.split(",")
    if set(formats) - {"png", "jpg"}:
        p.error("formats are png and jpg")

    env = rig_env()
    data_dir = Path(env.get("RIG_DATA_DIR", RIG_DIR / "data"))
    run_dir = Path(env.get("RIG_RUN_DIR", RIG_DIR / "run"))
    started_at = dt.datetime.now().astimezone()
    load_before = os.getloadavg()
    print("bench: generating the rig data if needed (SIZES='small medium')", file=sys.stderr)
    rig_script("gen_pyramids.sh", env, timeout=900)
    started_servers = not servers_running(run_dir)
    if started_servers:
        print("bench: starting the rig servers", file=sys.stderr)
    work = a.keep or Path(tempfile.mkdtemp(prefix="dezoom-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(env=env, static=f"http://127.0.0.1:{rig_ports(env)['static']}", www=data_dir / "www",
                  tiff=data_dir / "tiff" / "medium_pyr.tif", work=work)
    result: dict[str, Any] = {"schema": SCHEMA, "started": started_at.isoformat(timespec="seconds"),
                              "machine": machine_info(),
                              "settings": {"parallelism": PARALLELISM, "min_interval": "0ms", "compression": 5,
                                           "image": "tests/rig medium, 10000x7000", "runs_per_figure": 1},
                              "end_to_end": [], "download": [], "vips_pyramid": []}
    try:
        rig_script("start_servers.sh", env, timeout=120)
        bench.ref = Reference(bench.www)
        # what the interpreter and the modules of a CLI run hold before any work: context for RSS
        base = checked(measure([sys.executable, "-c", BASELINE_IMPORTS], work, env), "baseline imports")
        result["baseline_imports"] = base.figures()
        for source in sources:
            folder = work / source.name
            folder.mkdir(exist_ok=True)
            print(f"bench: {source.name}: listing tiles, fetch step alone, curl", file=sys.stderr)
            tiles_json, urls = bench.tile_list(source, folder)
            ours = bench.fetch_only(tiles_json, len(urls), folder)
            peer = bench.curl(urls, ours["bytes"], folder)
            result["download"].append({"source": source.name, "ours": ours, "curl": peer,
                                       "time_ratio_ours_over_curl": ratio(ours["wall_s"], peer["wall_s"])})
            rows = []
            for fmt in formats:
                print(f"bench: {source.name} -> {fmt}: cold and warm dezoom runs", file=sys.stderr)
                rows.append(bench.end_to_end(source, fmt, len(urls), folder))
            print(f"bench: {source.name}: vips encoding the same pixels", file=sys.stderr)
            same = bench.same_pixels(source, folder)
            for row in rows:
                row["vips_same_pixels"] = {s: bench.vips(row["format"], s, same, folder) for s in ("default", "matched")}
                row["warm_time_ratio_over_vips"] = {s: ratio(row["warm"]["wall_s"], v["wall_s"])
                                                    for s, v in row["vips_same_pixels"].items()}
            same.unlink()
            result["end_to_end"] += rows
        for fmt in formats:
            print(f"bench: vips pyramidal TIFF -> {fmt} (context)", file=sys.stderr)
            result["vips_pyramid"].append(bench.vips(fmt, "default", bench.tiff, work))
    finally:
        if started_servers:
            rig_script("stop_servers.sh", env, timeout=60)
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    png_rss = [r["cold"]["peak_rss_mb"] for r in result["end_to_end"] if r["format"] == "png"]
    png_rss += [r["warm"]["peak_rss_mb"] for r in result["end_to_end"] if r["format"] == "png"]
    result["target"] = {"png_peak_rss_mb_max": max(png_rss, default=0.0), "limit_mb": RSS_TARGET_MB,
                        "met": max(png_rss) < RSS_TARGET_MB if png_rss else None, "raw_pixels_mb": 10000 * 7000 * 3 / MB}
    result["load_average"] = {"before": [round(x, 2) for x in load_before],
                              "after": [round(x, 2) for x in os.getloadavg()]}
    result["problems"] = bench.problems
    out = a.output or REPO / "bench" / "results" / f"bench-{started_at.date().isoformat()}.json"
    write_json_atomic(out, result)
    print(markdown(result))
    print(f"\nbench: wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}", file=sys.stderr)
    for problem in bench.problems:
        print(f"bench: PROBLEM: {problem}", file=sys.stderr)
    return 1 if bench.problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(2)
