"""Figure groups 2 and 4: end to end against GDAL's `gdal_translate` (issue 7 target 2), and
the 600 MP image end to end (target 4, only with --big)."""

from __future__ import annotations

from typing import Any

from gdal_wms import iip_connection, read_dzi, tms_xml
from measure import measure
from suite_fetch import PARALLELISM, checked_output, dezoom_cmd, warm_up
from suite_model import Context, Ratio, rotated

# GDAL's WMS driver: never its disk cache (it would write ./gdalwmscache), and as many
# connections as our -n 16 (its own default is 2).
GDAL_ENV = {"GDAL_ENABLE_WMS_CACHE": "NO", "GDAL_MAX_CONNECTIONS": str(PARALLELISM)}
GDAL_FORMAT_OPTIONS = {"tif": ["-co", "TILED=YES"], "png": ["-of", "PNG"]}
SCALE_RSS_LIMIT_MB = 400.0


def ours_cmd(url: str, fmt: str, pyramid: bool = False) -> list[str]:
    """dezoom to out.<fmt>, politeness off, 16 connections, a fresh cache in the run folder."""
    cmd = [*dezoom_cmd(), url, f"out.{fmt}", "--min-interval", "0", "-n", str(PARALLELISM), "-c", "cache"]
    return cmd + (["--no-tiff-pyramid"] if fmt == "tif" and not pyramid else [])


def run_gdal(ctx: Context) -> None:
    """The same image from iipsrv (IIP) and from a static DZI (overlap 0), to TIFF and PNG,
    by dezoom and by gdal_translate, rep by rep, alternating."""
    size = "small" if ctx.quick else "medium"
    dzi_path = f"/{size}/dz256o0q85.dzi"
    xml = ctx.work / "gdal-dzi.xml"
    xml.write_text(tms_xml(ctx.rig.static + dzi_path, read_dzi(ctx.rig.www / dzi_path.lstrip("/"))))
    sources = {
        "iip": (f"{ctx.rig.iipsrv}?FIF={size}_pyr.tif", iip_connection(ctx.rig.iipsrv, f"{size}_pyr.tif")),
        "dzi": (ctx.rig.static + dzi_path, str(xml)),
    }
    gdal_env = {**ctx.env, **GDAL_ENV}
    ctx.settings["gdal"] = {"image": size, "dzi": dzi_path, "iip_fif": f"{size}_pyr.tif", "gdal_env": GDAL_ENV,
                            "ours_tiff": "--no-tiff-pyramid (GDAL writes no overviews either)",
                            "gdal_tiff": "-co TILED=YES (GDAL's default: uncompressed)",
                            "gdal_png": "-of PNG (GDAL's default: zlib level 6)",
                            "gdal_dzi_xml": xml.read_text().replace(ctx.rig.static, "http://127.0.0.1:<static port>")}
    for name, (url, gdal_src) in sources.items():
        warm_up(ctx, url, f"gdal-{name}-list")
        for fmt in ("tif", "png"):
            key = f"gdal.{name}.{fmt}"
            ours = ours_cmd(url, fmt)
            theirs = ["gdal_translate", "-q", *GDAL_FORMAT_OPTIONS[fmt], gdal_src, f"out.{fmt}"]
            fig_ours = ctx.figure(f"{key}.dezoom", f"dezoom {name.upper()} -> {fmt.upper()}", ctx.shown(ours))
            fig_gdal = ctx.figure(f"{key}.gdal", f"gdal_translate {name.upper()} -> {fmt.upper()}",
                                  ctx.shown(theirs))
            ctx.log(f"gdal: {name} -> {fmt}, {ctx.reps} repetitions")

            def one(fig, cmd: list[str], env: dict[str, str]) -> None:
                folder = ctx.fresh_dir("gdal-run")
                run = measure(cmd, folder, env)
                out = folder / f"out.{fmt}"
                if fig is fig_ours:
                    check = checked_output(ctx, size, out, None) if run.ok else None
                else:
                    check = ctx.checker(size).check(out) if run.ok and out.exists() else None
                    if run.ok and check is None:
                        check = {"ok": False, "error": "no output file"}
                fig.add(run, ctx.problems, check, output_mb=round(out.stat().st_size / 1e6, 2) if out.exists() else None)

            pair = [lambda: one(fig_ours, ours, ctx.env), lambda: one(fig_gdal, theirs, gdal_env)]
            for rep in range(ctx.reps):
                for contender in rotated(pair, rep):
                    contender()
            ctx.ratios.append(Ratio(f"{key}.time", f"gdal_translate time / dezoom time, {name} -> {fmt}",
                                    fig_gdal.key, fig_ours.key))
            ctx.ratios.append(Ratio(f"{key}.rss", f"dezoom peak RSS / gdal_translate peak RSS, {name} -> {fmt}",
                                    fig_ours.key, fig_gdal.key, metric="peak_rss_mb"))
            ctx.target(f"{key}.time", f"{name} -> {fmt}: at least 1.5x faster than GDAL (gdal/ours >= 1.5)",
                       "ratio", f"{key}.time", "median", ">=", 1.5)
            ctx.target(f"{key}.rss", f"{name} -> {fmt}: at most half of GDAL's peak RSS (ours/gdal <= 0.5)",
                       "ratio", f"{key}.rss", "median", "<=", 0.5)
    ctx.clear("gdal-run")


def run_scale(ctx: Context) -> None:
    """The 600 MP image (static DZI, 256 px, 9,322 tiles) end to end to TIFF and to PNG."""
    path = "/big/dz256o0q85.dzi"
    dzi = read_dzi(ctx.rig.www / path.lstrip("/"))
    megapixels = dzi.width * dzi.height / 1e6
    ctx.settings["scale"] = {"image": path, "size": [dzi.width, dzi.height], "megapixels": megapixels,
                             "tiff": "default (JPEG tiles passed through, with pyramid levels)"}
    warm_up(ctx, ctx.rig.static + path, "scale-list")
    figs: dict[str, Any] = {}
    for fmt in ("tif", "png"):
        cmd = ours_cmd(ctx.rig.static + path, fmt, pyramid=True)
        figs[fmt] = (ctx.figure(f"scale.{fmt}", f"dezoom, {megapixels:.0f} MP image -> {fmt.upper()} (politeness off)",
                                ctx.shown(cmd)), cmd)
    ctx.log(f"scale: {path} ({megapixels:.0f} MP) to TIFF and PNG, {ctx.reps} repetitions")

    def one(fmt: str) -> None:
        fig, cmd = figs[fmt]
        folder = ctx.fresh_dir("scale-run")
        run = measure(cmd, folder, ctx.env, timeout=3600)
        check = checked_output(ctx, "big", folder / f"out.{fmt}", None) if run.ok else None
        fig.add(run, ctx.problems, check, mp_per_s=round(megapixels / run.wall_s, 1))

    for rep in range(ctx.reps):
        for fmt in rotated(["tif", "png"], rep):
            one(fmt)
    ctx.clear("scale-run")
    for fmt in ("tif", "png"):
        ctx.target(f"scale.{fmt}.rss", f"600 MP -> {fmt.upper()}: peak RSS under {SCALE_RSS_LIMIT_MB:.0f} MB "
                   "(every run)", "figure", f"scale.{fmt}", "max", "<", SCALE_RSS_LIMIT_MB, metric="peak_rss_mb")
