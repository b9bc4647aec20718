# dezoom-steps: download zoomable (tiled) images and stitch them, one chain of jobs per image:
#   resolve -> list_tiles -> fetch_tiles (shards) -> stitch -> encode -> summary
# Rules only; helpers live in dezoom_steps.plan. Every step is a script in scripts/ run with
# this workflow's own interpreter, so the same steps also run without Snakemake.
import os
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)
from dezoom_steps import plan  # noqa: E402

configfile: os.path.join(workflow.basedir, "config", "config.yaml")
validate(config, os.path.join(workflow.basedir, "config", "schema.yaml"), set_default=True)

IMAGES = plan.images(config, Path(workflow.basedir))
WORK, CACHE, RESULTS = config["work_dir"], config["cache_dir"], config["results_dir"]
SHARDS = range(config["shards"])
PY = sys.executable
SCRIPTS = os.path.join(workflow.basedir, "scripts")

wildcard_constraints:
    image=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    shard=r"\d+",
    ext=r"[A-Za-z0-9]+",


def output_of(image):
    """The output image path of one image id."""
    return f"{RESULTS}/{image}.{IMAGES[image]['format']}"


rule all:
    input:
        f"{WORK}/summary.ok",


rule resolve:
    output:
        f"{WORK}/{{image}}/resolve.json",
    params:
        py=PY,
        script=os.path.join(SCRIPTS, "resolve.py"),
        url=lambda wc: IMAGES[wc.image]["url"],
        dezoomer=lambda wc: IMAGES[wc.image]["dezoomer"],
        net=plan.net_args(config),
    resources:
        http=1,
    log:
        f"logs/{{image}}/resolve.log",
    shell:
        "{params.py:q} {params.script:q} {params.url:q} -o {output:q} -d {params.dezoomer:q} "
        "{params.net} 2>&1 | tee {log:q}"


rule list_tiles:
    input:
        rules.resolve.output,
    output:
        f"{WORK}/{{image}}/tiles.json",
    params:
        py=PY,
        script=os.path.join(SCRIPTS, "list_tiles.py"),
        select=plan.selection_args(config),
        target=lambda wc: output_of(wc.image),
    log:
        f"logs/{{image}}/list_tiles.log",
    shell:
        "{params.py:q} {params.script:q} {input:q} -o {output:q} --image {wildcards.image} "
        "--output-file {params.target:q} {params.select} 2>&1 | tee {log:q}"


rule fetch_tiles:
    input:
        rules.list_tiles.output,
    output:
        f"{WORK}/{{image}}/fetch/shard-{{shard}}.json",
    params:
        py=PY,
        script=os.path.join(SCRIPTS, "fetch_tiles.py"),
        cache=lambda wc: f"{CACHE}/{wc.image}",
        shards=config["shards"],
        net=plan.net_args(config),
    resources:
        http=1,
    log:
        f"logs/{{image}}/fetch-{{shard}}.log",
    shell:
        "{params.py:q} {params.script:q} {input:q} --cache {params.cache:q} --report {output:q} "
        "--shard {wildcards.shard} --shards {params.shards} {params.net} 2>&1 | tee {log:q}"


rule stitch:
    input:
        tiles=rules.list_tiles.output,
        shards=expand(f"{WORK}/{{{{image}}}}/fetch/shard-{{shard}}.json", shard=SHARDS),
    output:
        canvas=temp(f"{WORK}/{{image}}/canvas.tif"),
        report=f"{WORK}/{{image}}/stitch.json",
    params:
        py=PY,
        script=os.path.join(SCRIPTS, "stitch.py"),
        cache=lambda wc: f"{CACHE}/{wc.image}",
    log:
        f"logs/{{image}}/stitch.log",
    shell:
        "{params.py:q} {params.script:q} --tiles {input.tiles:q} --cache {params.cache:q} "
        "--canvas {output.canvas:q} --report {output.report:q} 2>&1 | tee {log:q}"


rule encode:
    input:
        tiles=rules.list_tiles.output,
        report=rules.stitch.output.report,
        canvas=rules.stitch.output.canvas,
    output:
        image=f"{RESULTS}/{{image}}.{{ext}}",
        sidecar=f"{RESULTS}/{{image}}.{{ext}}.json",
    params:
        py=PY,
        script=os.path.join(SCRIPTS, "encode.py"),
        compression=config["compression"],
    log:
        f"logs/{{image}}/encode-{{ext}}.log",
    shell:
        "{params.py:q} {params.script:q} --tiles {input.tiles:q} --stitch {input.report:q} --canvas {input.canvas:q} "
        "--output {output.image:q} --sidecar {output.sidecar:q} --compression {params.compression} "
        "2>&1 | tee {log:q}"


rule summary:
    input:
        [output_of(image) + ".json" for image in IMAGES],
    output:
        touch(f"{WORK}/summary.ok"),
    params:
        py=PY,
        script=os.path.join(SCRIPTS, "summary.py"),
        summary=f"{RESULTS}/summary.json",
        work=lambda wc, output: os.path.dirname(output[0]),
    log:
        "logs/summary.log",
    shell:
        "{params.py:q} {params.script:q} {input:q} --summary {params.summary:q} --work {params.work:q} "
        "2>&1 | tee {log:q}"
