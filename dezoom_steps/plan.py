"""Helpers of the Snakefile: the images of a run, their output paths, and step arguments.

Kept out of the Snakefile so they can be unit-tested without Snakemake.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from dezoom_steps.errors import InputError
from dezoom_steps.naming import image_id, valid_id
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
    else:
        entries = list(config.get("inputs") or [])
    if not entries:
        raise InputError("the configuration names no input: set `url` or `inputs`")
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        url = _locate(str(entry["url"]), basedir)
        name = entry.get("name") or image_id(url)
        fmt = entry.get("format") or config["format"]
        stem, dot, ext = str(name).rpartition(".")
        if dot and ext.lower() in KNOWN_EXTENSIONS:
            name, fmt = stem, ext.lower()
        if not valid_id(name):
            raise InputError(f"{name!r}: not a usable output name (letters, digits, '_', '-', '.')")
        if name in out:
            raise InputError(f"{name!r}: two inputs share this output name")
        out[name] = {"url": url, "name": name, "format": fmt,
                     "dezoomer": entry.get("dezoomer") or config["dezoomer"]}
    return out


KNOWN_EXTENSIONS = {"jpg", "jpeg", "png", "tif", "tiff", "webp", "bmp", "gif"}


def net_args(config: dict[str, Any]) -> str:
    """Network flags for the resolve and fetch scripts, shell-quoted."""
    args = [
        "--parallelism", config["parallelism"], "--retries", config["retries"],
        "--retry-delay", config["retry_delay"], "--min-interval", config["min_interval"],
        "--timeout", config["timeout"], "--connect-timeout", config["connect_timeout"],
    ]
    for header in config.get("headers") or []:
        args += ["-H", header]
    if config.get("accept_invalid_certs"):
        args.append("--accept-invalid-certs")
    return " ".join(shlex.quote(str(a)) for a in args)


def selection_args(config: dict[str, Any]) -> str:
    """Level-choice flags for the list_tiles script, shell-quoted."""
    args: list[Any] = ["--pixel-budget", config["pixel_budget"]]
    if config.get("largest"):
        args.append("--largest")
    for key in ("max_width", "max_height", "zoom_level", "image_index"):
        if config.get(key) is not None:
            args += ["--" + key.replace("_", "-"), config[key]]
    return " ".join(shlex.quote(str(a)) for a in args)
