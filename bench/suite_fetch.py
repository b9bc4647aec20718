"""Figure group 1, fetch (issue 7 target 1): the whole `dezoom` run with politeness off
against `curl --parallel` fetching the same tile URLs, and the request rate reached with
the default politeness (50 ms between request starts to one host: at most 20 requests/s)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from measure import measure
from rigcontrol import REPO
from rigutil import log_offset, read_access_log
from suite_model import Context, Ratio, rotated

PARALLELISM = 16
POLITE_INTERVAL_S = 0.050  # dezoom's default --min-interval
POLITE_CEILING = 1 / POLITE_INTERVAL_S
# Request starts are spaced at least 50 ms apart, so 20 requests/s is a ceiling that can only
# be approached; "reaching it" is judged as at least 95 % of it.
POLITE_TARGET = 0.95 * POLITE_CEILING
# A bounded subset for the politeness figure: 20 x 20 tiles of 256 px of the medium image
# (400 tiles, about 20 s per run at 20 requests/s) instead of the whole image.
POLITE_REGION = "0,0,5120,5120"


def dezoom_cmd() -> list[str]:
    """The `dezoom` command of this interpreter's environment (python -m dezoom_steps without it)."""
    script = Path(sys.executable).parent / "dezoom"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dezoom_steps"]


def tile_urls(ctx: Context, url: str, folder: Path) -> list[str]:
    """The tile URLs of the largest level, as our resolve and list_tiles steps write them (untimed)."""
    for cmd in ([sys.executable, str(REPO / "scripts" / "resolve.py"), url, "-o", "resolve.json"],
                [sys.executable, str(REPO / "scripts" / "list_tiles.py"), "resolve.json", "-o", "tiles.json",
                 "--image", "bench"]):
        run = measure(cmd, folder, ctx.env, timeout=300)
        if not run.ok:
            raise RuntimeError(run.failure("listing the tiles"))
    return [t["url"] for t in json.loads((folder / "tiles.json").read_text())["tiles"]]


def warm_up(ctx: Context, url: str, name: str) -> list[str]:
    """List the image's tiles and fetch every one once with curl, untimed, so that no measured
    run pays alone for cold caches (the page cache under nginx, iipsrv's image cache)."""
    folder = ctx.fresh_dir(name)
    urls = tile_urls(ctx, url, folder)
    (folder / "warm.cfg").write_text("".join(f'url = "{u}"\noutput = "/dev/null"\n' for u in urls))
    run = measure(["curl", "-s", "--parallel", "--parallel-max", str(PARALLELISM), "-K", "warm.cfg"], folder, ctx.env)
    if not run.ok:
        raise RuntimeError(run.failure(f"warming up {url}"))
    return urls


def sidecar_check(out: Path, tiles: int | None) -> dict[str, Any]:
    """What our sidecar says about completeness (every tile there, none missing)."""
    try:
        side = json.loads(Path(f"{out}.json").read_text())
    except (OSError, ValueError) as exc:
        return {"ok": False, "error": f"no sidecar: {exc}"}
    ok = bool(side.get("complete")) and not side.get("missing_tiles") and (
        tiles is None or side.get("tiles_total") == tiles)
    return {"ok": ok, "tiles_total": side.get("tiles_total"), "complete": side.get("complete"),
            "output_mb": round(out.stat().st_size / 1e6, 2) if out.exists() else None}


def checked_output(ctx: Context, size: str, out: Path, tiles: int | None,
                   region: tuple[int, int, int, int] | None = None) -> dict[str, Any]:
    """Sidecar completeness, then the pixels against the master (skipped when the sidecar fails)."""
    side = sidecar_check(out, tiles)
    if not side["ok"] or not out.exists():
        return side
    pixels = ctx.checker(size).check(out, region)
    return {**side, **pixels, "ok": bool(pixels["ok"])}


def run_fetch(ctx: Context) -> None:
    """curl against `dezoom` (flat TIFF, and the default pyramidal TIFF), rep by rep, alternating."""
    size, path = (("small", "/small/dz256o0q85.dzi") if ctx.quick else
                  ("big", "/big/dz256o0q85.dzi") if ctx.big else ("medium", "/medium/dz128o0q85.dzi"))
    url = ctx.rig.static + path
    urls = warm_up(ctx, url, "fetch-list")
    config = ctx.work / "fetch-list" / "curl.cfg"
    config.write_text("".join(f'url = "{u}"\noutput = "tiles/{i}"\n' for i, u in enumerate(urls)))
    ctx.settings["fetch"] = {"image": path, "tiles": len(urls), "parallelism": PARALLELISM}
    ctx.log(f"fetch: {path}, {len(urls)} tiles, {ctx.reps} repetitions")
    base = [*dezoom_cmd(), url, "out.tif", "--min-interval", "0", "-n", str(PARALLELISM), "-c", "cache"]
    curl = ["curl", "-s", "--parallel", "--parallel-max", str(PARALLELISM), "--create-dirs", "-K", str(config),
            "-w", "%{http_code} %{size_download}\\n"]
    flat = ctx.figure("fetch.dezoom_flat_tiff", f"dezoom, politeness off, -n 16, fresh cache, to a TIFF without "
                      f"pyramid (the passthrough TIFF): {path}, whole run", ctx.shown(base + ["--no-tiff-pyramid"]))
    pyramid = ctx.figure("fetch.dezoom_pyramid_tiff", f"the same with the default TIFF (with pyramid levels): {path}",
                         ctx.shown(base))
    peer = ctx.figure("fetch.curl", f"curl --parallel --parallel-max 16 fetching the same {len(urls)} tile URLs "
                      "(from our tiles.json) to files", ctx.shown(curl))

    floor = ctx.figure("fetch.curl_with_check", "curl as above with dezoom's tile check (decode at 1/8 scale, "
                       "libjpeg-turbo) of the same tiles running beside it in a second process: the floor of "
                       "fetching and checking every tile here (bench/curl_with_check.py; timed part only)",
                       ctx.shown([sys.executable, "bench/curl_with_check.py", str(config)]))

    def checked_floor() -> None:
        folder = ctx.fresh_dir("fetch-run")
        run = measure([sys.executable, str(REPO / "bench" / "curl_with_check.py"), str(config),
                       "--parallel", str(PARALLELISM)], folder, ctx.env)
        try:
            got = json.loads(run.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            got = {}
        ok = run.ok and got.get("status_200") == got.get("files") == got.get("checked") == len(urls) \
            and got.get("invalid") == 0
        timed = replace(run, wall_s=got.get("wall_s", run.wall_s), user_s=got.get("user_s", 0.0),
                        sys_s=got.get("sys_s", 0.0))
        floor.add(timed, ctx.problems, {"ok": ok, **{k: got.get(k) for k in ("status_200", "files", "checked",
                                                                              "invalid")}},
                  tiles_per_s=round(len(urls) / timed.wall_s, 1))

    def ours(fig, extra: list[str]) -> None:
        folder = ctx.fresh_dir("fetch-run")
        run = measure(base + extra, folder, ctx.env)
        check = checked_output(ctx, size, folder / "out.tif", len(urls)) if run.ok else None
        fig.add(run, ctx.problems, check, tiles_per_s=round(len(urls) / run.wall_s, 1))

    def theirs() -> None:
        folder = ctx.fresh_dir("fetch-run")
        run = measure(curl, folder, ctx.env)
        codes = [line.split()[0] for line in run.stdout.splitlines() if line.strip()]
        files = sum(1 for _ in (folder / "tiles").iterdir()) if (folder / "tiles").is_dir() else 0
        ok = codes.count("200") == len(urls) == files
        size_mb = sum(int(line.split()[1]) for line in run.stdout.splitlines() if line.strip()) / 1e6
        peer.add(run, ctx.problems, {"ok": ok, "status_200": codes.count("200"), "files": files},
                 tiles_per_s=round(len(urls) / run.wall_s, 1), downloaded_mb=round(size_mb, 2))

    contenders = [lambda: ours(flat, ["--no-tiff-pyramid"]), theirs, lambda: ours(pyramid, []), checked_floor]
    for rep in range(ctx.reps):
        for contender in rotated(contenders, rep):
            contender()
    ctx.clear("fetch-run")
    ctx.ratios.append(Ratio("fetch.curl_over_dezoom", "curl time / dezoom time (flat TIFF)", peer.key, flat.key))
    ctx.ratios.append(Ratio("fetch.curl_over_dezoom_pyramid", "curl time / dezoom time (default TIFF with pyramid)",
                             peer.key, pyramid.key))
    ctx.ratios.append(Ratio("fetch.checked_floor_over_dezoom", "(curl + the same tile check beside it) time / "
                            "dezoom time (flat TIFF): the share of our run that fetching and checking alone need",
                            floor.key, flat.key))
    ctx.ratios.append(Ratio("fetch.curl_over_checked_floor", "curl time / (curl + the tile check beside it) time",
                            peer.key, floor.key))
    ctx.target("fetch", "whole dezoom run (politeness off, -n 16) at most twice curl's time: curl/dezoom >= 0.5",
               "ratio", "fetch.curl_over_dezoom", "median", ">=", 0.5)


def request_rate(ctx: Context, since: int, prefix: str) -> dict[str, Any]:
    """Tile requests per second on the static port since byte `since` of its log, from nginx's
    own times: (n - 1) / (last request start - first request start)."""
    entries = [e for e in read_access_log(ctx.rig.access_log("static"), since) if e.path.startswith(prefix)]
    starts = sorted(e.start for e in entries if e.end)
    span = starts[-1] - starts[0] if len(starts) > 1 else 0.0
    return {"requests": len(entries), "statuses": sorted({e.status for e in entries}),
            "req_per_s": round((len(starts) - 1) / span, 2) if span > 0 else None}


def run_politeness(ctx: Context) -> None:
    """dezoom with its default politeness (no -i): requests per second seen by nginx."""
    if ctx.quick:
        size, path, region = "small", "/small/dz256o0q85.dzi", None
    else:
        size, path, region = "medium", "/medium/dz256o0q85.dzi", POLITE_REGION
    url = ctx.rig.static + path
    cmd = [*dezoom_cmd(), url, "out.tif", "--no-tiff-pyramid", "-c", "cache"]
    if region:
        cmd += ["--region", region]
    box = tuple(int(v) for v in region.split(",")) if region else None
    ctx.settings["politeness"] = {"image": path, "region": region, "min_interval": "50ms (default)",
                                  "ceiling_req_per_s": POLITE_CEILING}
    fig = ctx.figure("fetch.polite_default", f"dezoom with its default politeness (50 ms between request starts): "
                     f"{path}{' region ' + region if region else ''}; req_per_s from nginx's access log",
                     ctx.shown(cmd))
    ctx.log(f"politeness: {path}{' region ' + region if region else ''}, {ctx.reps} repetitions")
    prefix = path.rsplit(".", 1)[0] + "_files/"
    warm_up(ctx, url, "polite-list")
    for _ in range(ctx.reps):
        folder = ctx.fresh_dir("polite-run")
        since = log_offset(ctx.rig.access_log("static"))
        run = measure(cmd, folder, ctx.env)
        rate = request_rate(ctx, since, prefix)
        check = checked_output(ctx, size, folder / "out.tif", None, box) if run.ok else None
        if check is not None and rate["statuses"] != [200]:
            check = {**check, "ok": False, "statuses": rate["statuses"]}
        fig.add(run, ctx.problems, check, **rate)
    ctx.clear("polite-run")
    ctx.target("politeness", f"default politeness reaches the 20 requests/s ceiling per host "
               f"(judged as >= {POLITE_TARGET:g} req/s, 95 % of it)", "figure", fig.key, "median", ">=",
               POLITE_TARGET, metric="req_per_s")
