"""Helpers of the Snakefile: the images of a run, their output paths, and step arguments.

Kept out of the Snakefile so they can be unit-tested without Snakemake.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from dezoom_steps.errors import InputError
from dezoom_steps.jsonio import read_step_json
from dezoom_steps.naming import clean_component, image_id
from dezoom_steps.urls import is_file_url, is_http


def _locate(url: str, basedir: Path) -> str:
    """A relative local path as given when it exists here, else relative to the workflow folder."""
    if is_http(url) or is_file_url(url) or Path(url).is_absolute() or Path(url).exists():
        return url
    alt = basedir / url
    return str(alt) if alt.exists() else url


def images(config: dict[str, Any], basedir: Path) -> dict[str, dict[str, Any]]:
    """The images of this run, by id: from `url` (+ `output`) when given, else from `inputs`.

    Each entry has `url`, `name` (the output file stem), `format` (output extension) and
    `dezoomer`. Ids are unique and safe for file names.
    """
    if config.get("url"):
        entries = [{"url": config["url"], "name": config.get("output") or None}]
    elif config.get("bulk"):  # a bulk run replaces the listed inputs (the demo by default)
        return {}
    else:
        entries = list(config.get("inputs") or [])
    if not entries:
        raise InputError("the configuration names no input: set `url`, `inputs` or `bulk`")
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        url = _locate(str(entry["url"]), basedir)
        name = entry.get("name") or image_id(url)
        fmt = entry.get("format") or config["format"]
        stem, dot, ext = str(name).rpartition(".")
        if dot and ext.lower() in KNOWN_EXTENSIONS:
            name, fmt = stem, ext.lower()
        if not name or clean_component(str(name)) != name:
            raise InputError(f"{name!r}: not a usable output name (no path separators, reserved or "
                             "control characters)")
        if name in out:
            raise InputError(f"{name!r}: two inputs share this output name")
        out[name] = {"url": url, "name": name, "format": fmt,
                     "dezoomer": entry.get("dezoomer") or config["dezoomer"]}
    return out


KNOWN_EXTENSIONS = {"jpg", "jpeg", "png", "tif", "tiff", "webp", "bmp", "gif", "iiif", "dzi"}


def net_args(config: dict[str, Any], input_url: str | None = None) -> str:
    """Network flags for the resolve and fetch scripts, shell-quoted.

    `input_url` (the image's input) is passed as --input-url: step files hold URLs with their
    secret query values redacted, and the step restores them from it at request time.
    """
    args = [
        "--parallelism", config["parallelism"], "--retries", config["retries"],
        "--retry-delay", config["retry_delay"], "--min-interval", config["min_interval"],
        "--timeout", config["timeout"], "--connect-timeout", config["connect_timeout"],
    ]
    for header in config.get("headers") or []:
        args += ["-H", header]
    if config.get("accept_invalid_certs"):
        args.append("--accept-invalid-certs")
    # Authentication, TLS and address policy (see netargs.add_net_arguments).
    for key, flag in (("header_hosts", "--header-host"), ("insecure_hosts", "--insecure-host")):
        for host in config.get(key) or []:
            args += [flag, host]
    for key, flag in (("cookies", "--cookies"), ("ca_bundle", "--ca-bundle"),
                      ("max_document_bytes", "--max-document-bytes"), ("max_tile_bytes", "--max-tile-bytes")):
        if config.get(key) is not None:
            args += [flag, config[key]]
    for key, flag in (("inherit_query", "--inherit-query"), ("allow_private_networks", "--allow-private-networks")):
        if config.get(key):
            args.append(flag)
    # Politeness and tile checks (see netargs.add_net_arguments); one block record for the whole run.
    for key, flag in (("host_parallelism", "--host-parallelism"), ("max_retry_after", "--max-retry-after"),
                      ("tile_check", "--tile-check"), ("check_workers", "--check-workers")):
        if config.get(key) is not None:
            args += [flag, config[key]]
    block_file = config.get("block_file") or (f"{config['cache_dir']}/blocked-hosts.json" if config.get("cache_dir") else None)
    if block_file:
        args += ["--block-file", block_file]
    if config.get("ignore_block"):
        args.append("--ignore-block")
    if input_url:
        args += ["--input-url", input_url]
    return " ".join(shlex.quote(str(a)) for a in args)


def policy_input(entry: dict[str, Any]) -> str | None:
    """The URL whose host the address policy trusts for an image: its remote bulk source, if any.

    A manifest or list downloaded from a server is remote metadata (field notes S2): the URLs it
    lists must not reach private or loopback hosts unless the list's own host is one. Entries of
    a local list are the user's own inputs (None: the entry URL itself is the input).
    """
    source = entry.get("source")
    return source if isinstance(source, str) and is_http(source) else None


def selection_args(config: dict[str, Any], bulk: bool = False) -> str:
    """Level-choice flags for the list_tiles script, shell-quoted.

    For bulk entries only the level options apply (an entry is one image already): as in
    dezoomify-rs, bulk mode takes the largest level unless a level option says otherwise.
    """
    args: list[Any] = ["--pixel-budget", config["pixel_budget"]]
    if config.get("tile_budget") is not None:
        args += ["--tile-budget", config["tile_budget"]]
    if config.get("largest"):
        args.append("--largest")
    for key in ("max_width", "max_height", "zoom_level") + (() if bulk else ("image_index",)):
        if config.get(key) is not None:
            args += ["--" + key.replace("_", "-"), config[key]]
    return " ".join(shlex.quote(str(a)) for a in args)


def bulk_sources(config: dict[str, Any], basedir: Path) -> list[str]:
    """The bulk sources of the run (`bulk`: one path or URL, or a list), located like inputs."""
    raw = config.get("bulk") or []
    sources = [raw] if isinstance(raw, str) else list(raw)
    return [_locate(str(s), basedir) for s in sources]


def bulk_images(bulk_json: str, config: dict[str, Any], static: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The downloadable entries of bulk.json by name (names already taken by `inputs` get a suffix)."""
    out: dict[str, dict[str, Any]] = {}
    for entry in read_step_json(bulk_json, "bulk")["entries"]:
        if entry["error"] or not entry["url"]:
            continue
        name = entry["name"]
        while name in static or name in out:
            name += "_bulk"
        out[name] = {"url": entry["url"], "name": name, "format": config["format"],
                     "dezoomer": config["dezoomer"], "title": entry["title"], "label": entry["label"],
                     "source": entry.get("source")}
    return out


def quote_all(items: list[str]) -> str:
    """Shell-quoted, space-separated arguments."""
    return " ".join(shlex.quote(str(i)) for i in items)


def template_args(config: dict[str, Any]) -> str:
    """The --name-template flag of the expand script, when the config sets one."""
    template = config.get("name_template")
    return f"--name-template {shlex.quote(template)}" if template else ""


def summary_after_failure(config: dict[str, Any], images: dict[str, Any], bulk: list[str]) -> None:
    """Write results/summary.json when the run failed (Snakemake's `onerror` hook); never raises."""
    from dezoom_steps.steps.summary import summarize

    work, results = Path(config["work_dir"]), Path(config["results_dir"])
    bulk_json = work / "bulk.json"
    names = dict(images)
    try:
        if bulk and bulk_json.exists():
            names.update(bulk_images(str(bulk_json), config, images))
        summarize(images=[(n, results / f"{n}.{e['format']}.json") for n, e in names.items()],
                  summary=results / "summary.json", work=work,
                  bulk=bulk_json if bulk else None, strict=False)
    except Exception as exc:  # the hook must not hide Snakemake's own report
        print(f"summary: could not write {results / 'summary.json'}: {exc}")
