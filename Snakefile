# dezoom-steps: download zoomable (tiled) images and stitch them, one chain of jobs per image:
#   [expand_bulk] -> resolve -> list_tiles -> fetch_tiles (shards) -> [fill_tiles] -> render -> summary
# (fill_tiles runs only with on_missing: fill; a TIFF output takes stitch -> encode instead of render,
# as its writer reads a canvas file by tile)
# Inputs listed in the config are known at parse time; bulk lists and IIIF manifests are
# expanded by the `expand_bulk` checkpoint, after which the DAG grows one chain per entry.
# Rules only; helpers live in dezoom_steps.plan. Every step is a script in scripts/ run with
# this workflow's own interpreter, so the same steps also run without Snakemake.
import os
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)
from dezoom_steps import plan  # noqa: E402
from dezoom_steps import snaketimers  # noqa: E402
from dezoom_steps import stalelock  # noqa: E402

# A run killed with SIGKILL leaves Snakemake's lock behind; when the run that held it is gone,
# clear it here (before Snakemake checks it) so resuming needs no `snakemake --unlock`.
if workflow.is_main_process:
    for _lock in stalelock.clear_stale_locks():
        print(f"dezoom-steps: removed {_lock}, left by a killed run", file=sys.stderr)


onstart:
    stalelock.record_owner()  # who holds the lock (read by clear_stale_locks on the next run)


onsuccess:
    snaketimers.stop_rate_timers()  # the run is over: exit now, not when the rate limit's timers fire


configfile: os.path.join(workflow.basedir, "config", "config.yaml")
validate(config, os.path.join(workflow.basedir, "config", "schema.yaml"), set_default=True)

IMAGES = plan.images(config, Path(workflow.basedir))
BULK = plan.bulk_sources(config, Path(workflow.basedir))
WORK, CACHE, RESULTS = config["work_dir"], config["cache_dir"], config["results_dir"]
SHARDS = range(config["shards"])
ON_MISSING = config["on_missing"]
PY = sys.executable
SCRIPTS = os.path.join(workflow.basedir, "scripts")

# Bookkeeping rules run in the head process, never as cluster jobs.
localrules: all, summary, expand_bulk

wildcard_constraints:
    image=r"[^/\\]+",
    shard=r"\d+",
    ext=r"[A-Za-z0-9]+",


_BULK_CACHE = {}


def bulk_images():
    """The images of the bulk sources (read once the expand_bulk checkpoint has run).

    Every job's params ask for this: bulk.json is read once per version of the file, not
    once per job (that made planning 1,000 images quadratic).
    """
    if not BULK:
        return {}
    path = checkpoints.expand_bulk.get().output[0]
    key = (path, os.stat(path).st_mtime_ns)
    if key not in _BULK_CACHE:
        _BULK_CACHE.clear()
        _BULK_CACHE[key] = plan.bulk_images(path, config, IMAGES)
    return _BULK_CACHE[key]


def entry(image):
    """The configuration of one image: from the config, else from the expanded bulk sources."""
    return IMAGES[image] if image in IMAGES else bulk_images()[image]


def output_of(image):
    """The output image path of one image."""
    return f"{RESULTS}/{image}.{entry(image)['format']}"


def all_sidecars(wildcards):
    """Every image's sidecar: the run's targets."""
    return [output_of(image) + ".json" for image in [*IMAGES, *bulk_images()]]


def error_file(wildcards):
    """Where a step of this image records its error (read by the summary)."""
    return f"{WORK}/{wildcards.image}/error.json"


rule all:
    input:
        f"{WORK}/summary.ok",


checkpoint expand_bulk:
    output:
        f"{WORK}/bulk.json",
    params:
        py=PY,
        script=os.path.join(SCRIPTS, "expand_bulk.py"),
        sources=plan.quote_all(BULK),
        template=plan.template_args(config),
        net=plan.net_args(config),
    resources:
        http=1,
    log:
        "logs/expand_bulk.log",
    shell:
        "{params.py:q} {params.script:q} {params.sources} -o {output:q} {params.template} {params.net} "
        "2>&1 | tee {log:q}"


rule resolve:
    input:
        lambda wc: [] if wc.image in IMAGES else rules.expand_bulk.output,
    output:
        f"{WORK}/{{image}}/resolve.json",
    params:
        py=PY,
        script=os.path.join(SCRIPTS, "resolve.py"),
        url=lambda wc: entry(wc.image)["url"],
        dezoomer=lambda wc: entry(wc.image)["dezoomer"],
        errors=error_file,
        net=lambda wc: plan.net_args(config, plan.policy_input(entry(wc.image))),  # remote bulk source: S2
    resources:
        http=1,
    log:
        f"logs/{{image}}/resolve.log",
    shell:
        "{params.py:q} {params.script:q} {params.url:q} -o {output:q} -d {params.dezoomer:q} "
        "--error-file {params.errors:q} {params.net} 2>&1 | tee {log:q}"


rule list_tiles:
    input:
        f"{WORK}/{{image}}/resolve.json",
    output:
        f"{WORK}/{{image}}/tiles.json",
    params:
        py=PY,
        script=os.path.join(SCRIPTS, "list_tiles.py"),
        select=lambda wc: plan.selection_args(config, bulk=wc.image not in IMAGES),
        region=plan.quote_all(["--region", config["region"]]) if config["region"] else "",
        target=lambda wc: output_of(wc.image),
        errors=error_file,
    log:
        f"logs/{{image}}/list_tiles.log",
    shell:
        "{params.py:q} {params.script:q} {input:q} -o {output:q} --image {wildcards.image:q} "
        "--output-file {params.target:q} --error-file {params.errors:q} {params.select} {params.region} "
        "2>&1 | tee {log:q}"


rule fetch_tiles:
    input:
        f"{WORK}/{{image}}/tiles.json",
    output:
        f"{WORK}/{{image}}/fetch/shard-{{shard}}.json",
    params:
        py=PY,
        script=os.path.join(SCRIPTS, "fetch_tiles.py"),
        cache=lambda wc: f"{CACHE}/{wc.image}",
        shards=config["shards"],
        net=lambda wc: plan.net_args(config, entry(wc.image)["url"]),  # --input-url: real query values
        on_missing=ON_MISSING,
        errors=error_file,
    resources:
        http=1,
    log:
        f"logs/{{image}}/fetch-{{shard}}.log",
    shell:
        "{params.py:q} {params.script:q} {input:q} --cache {params.cache:q} --report {output:q} "
        "--shard {wildcards.shard} --shards {params.shards} --on-missing {params.on_missing} "
        "--error-file {params.errors:q} {params.net} 2>&1 | tee {log:q}"


rule fill_tiles:
    # on_missing: fill: fetch the lower-level tiles covering the missing tiles (network), for stitch
    input:
        resolve=f"{WORK}/{{image}}/resolve.json",
        tiles=f"{WORK}/{{image}}/tiles.json",
        shards=expand(f"{WORK}/{{{{image}}}}/fetch/shard-{{shard}}.json", shard=SHARDS),
    output:
        f"{WORK}/{{image}}/fill.json",
    params:
        py=PY,
        script=os.path.join(SCRIPTS, "fill_tiles.py"),
        cache=lambda wc: f"{CACHE}/{wc.image}",
        net=lambda wc: plan.net_args(config, entry(wc.image)["url"]),  # --input-url: real query values
        errors=error_file,
    resources:
        http=1,
    log:
        f"logs/{{image}}/fill_tiles.log",
    shell:
        "{params.py:q} {params.script:q} --resolve {input.resolve:q} --tiles {input.tiles:q} "
        "--cache {params.cache:q} --report {output:q} --error-file {params.errors:q} {params.net} "
        "2>&1 | tee {log:q}"


rule stitch:
    input:
        tiles=f"{WORK}/{{image}}/tiles.json",
        shards=expand(f"{WORK}/{{{{image}}}}/fetch/shard-{{shard}}.json", shard=SHARDS),
        fill=lambda wc: [f"{WORK}/{wc.image}/fill.json"] if ON_MISSING == "fill" else [],
    output:
        canvas=temp(f"{WORK}/{{image}}/canvas.tif"),
        report=f"{WORK}/{{image}}/stitch.json",
    params:
        py=PY,
        script=os.path.join(SCRIPTS, "stitch.py"),
        cache=lambda wc: f"{CACHE}/{wc.image}",
        target=lambda wc: output_of(wc.image),  # a JPEG TIFF copies tiles: stitch skips decoding them
        tiff_compression=config["tiff_compression"],
        errors=error_file,
    log:
        f"logs/{{image}}/stitch.log",
    shell:
        "{params.py:q} {params.script:q} --tiles {input.tiles:q} --cache {params.cache:q} "
        "--canvas {output.canvas:q} --report {output.report:q} --error-file {params.errors:q} "
        "--output {params.target:q} --tiff-compression {params.tiff_compression} "
        + ("--fill {input.fill:q} " if ON_MISSING == "fill" else "") + "2>&1 | tee {log:q}"


rule encode:
    # TIFF only: its writer reads the canvas file by tile (other formats: rule render)
    wildcard_constraints:
        ext=r"(?i:tiff?)",
    input:
        tiles=f"{WORK}/{{image}}/tiles.json",
        report=f"{WORK}/{{image}}/stitch.json",
        canvas=f"{WORK}/{{image}}/canvas.tif",
    output:
        image=f"{RESULTS}/{{image}}.{{ext}}",
        sidecar=f"{RESULTS}/{{image}}.{{ext}}.json",
    params:
        py=PY,
        script=os.path.join(SCRIPTS, "encode.py"),
        compression=config["compression"],
        on_missing=ON_MISSING,
        cache=lambda wc: f"{CACHE}/{wc.image}",
        tiff="--tiff-compression {} --{}tiff-pyramid".format(
            config["tiff_compression"], "" if config["tiff_pyramid"] else "no-"),
        errors=error_file,
    log:
        f"logs/{{image}}/encode-{{ext}}.log",
    shell:
        "{params.py:q} {params.script:q} --tiles {input.tiles:q} --stitch {input.report:q} --canvas {input.canvas:q} "
        "--output {output.image:q} --sidecar {output.sidecar:q} --compression {params.compression} "
        "--on-missing {params.on_missing} --cache {params.cache:q} {params.tiff} "
        "--error-file {params.errors:q} 2>&1 | tee {log:q}"


rule render:
    # Every format but TIFF: stitch straight into the encoder, no canvas file (steps/render.py)
    wildcard_constraints:
        ext=r"(?i:(?!tiff?\b|json\b)[a-z0-9]+)",  # not a TIFF, and not a sidecar (NAME.tif.json)
    input:
        tiles=f"{WORK}/{{image}}/tiles.json",
        shards=expand(f"{WORK}/{{{{image}}}}/fetch/shard-{{shard}}.json", shard=SHARDS),
        fill=lambda wc: [f"{WORK}/{wc.image}/fill.json"] if ON_MISSING == "fill" else [],
    output:
        image=f"{RESULTS}/{{image}}.{{ext}}",
        sidecar=f"{RESULTS}/{{image}}.{{ext}}.json",
        report=f"{WORK}/{{image}}/stitch.{{ext}}.json",
    params:
        py=PY,
        script=os.path.join(SCRIPTS, "render.py"),
        cache=lambda wc: f"{CACHE}/{wc.image}",
        compression=config["compression"],
        on_missing=ON_MISSING,
        iiif=plan.quote_all(["--iiif-base-url", config["iiif_base_url"]]) if config["iiif_base_url"] else "",
        errors=error_file,
    log:
        f"logs/{{image}}/render-{{ext}}.log",
    shell:
        "{params.py:q} {params.script:q} --tiles {input.tiles:q} --cache {params.cache:q} "
        "--report {output.report:q} --output {output.image:q} --sidecar {output.sidecar:q} "
        "--compression {params.compression} --on-missing {params.on_missing} {params.iiif} "
        + ("--fill {input.fill:q} " if ON_MISSING == "fill" else "")
        + "--error-file {params.errors:q} 2>&1 | tee {log:q}"


# Folder outputs (encoders/folders.py): the same step, but Snakemake must know the outputs are
# folders. `.iiif` is one folder; `.dzi` is the descriptor plus its NAME_files folder.
ruleorder: render_iiif > render_dzi > render


use rule render as render_iiif with:
    output:
        image=directory(f"{RESULTS}/{{image}}.iiif"),
        sidecar=f"{RESULTS}/{{image}}.iiif.json",
        report=f"{WORK}/{{image}}/stitch.iiif.json",
    log:
        f"logs/{{image}}/render-iiif.log",


use rule render as render_dzi with:
    output:
        image=f"{RESULTS}/{{image}}.dzi",
        files=directory(f"{RESULTS}/{{image}}_files"),
        sidecar=f"{RESULTS}/{{image}}.dzi.json",
        report=f"{WORK}/{{image}}/stitch.dzi.json",
    log:
        f"logs/{{image}}/render-dzi.log",


rule summary:
    input:
        all_sidecars,
    output:
        touch(f"{WORK}/summary.ok"),
    params:
        py=PY,
        script=os.path.join(SCRIPTS, "summary.py"),
        summary=f"{RESULTS}/summary.json",
        bulk=lambda wc: f"--bulk {WORK}/bulk.json" if BULK else "",
        work=lambda wc, output: os.path.dirname(output[0]),
    log:
        "logs/summary.log",
    shell:
        "{params.py:q} {params.script:q} {input:q} --summary {params.summary:q} --work {params.work:q} "
        "{params.bulk} 2>&1 | tee {log:q}"


onerror:
    # With --keep-going the summary job cannot run when an image failed: write the summary
    # here instead, listing every image's state (complete, partial, failed, not run).
    snaketimers.stop_rate_timers()
    plan.summary_after_failure(config, IMAGES, BULK)
