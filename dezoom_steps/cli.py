"""`dezoom`: download one zoomable image in-process, with dezoomify-rs's flag names."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

from dezoom_steps import __version__
from dezoom_steps.download import Request, complete_sidecar, download
from dezoom_steps.encoders.folders import check_base_url
from dezoom_steps.encoders.tiff import COMPRESSIONS
from dezoom_steps.errors import BUG_EXIT_CODE, DezoomError, IncompleteRun, InputError, OutputError, PartialDownload
from dezoom_steps.fill import ON_MISSING, FilledPartial
from dezoom_steps.naming import ON_EXISTS_POLICIES
from dezoom_steps.region import parse_region
from dezoom_steps.steps.expand import expand
from dezoom_steps.netargs import add_net_arguments, net_options
from dezoom_steps.redact import install_log_redaction, redact_text
from dezoom_steps.urls import is_http
from dezoom_steps.steps.list_tiles import DEFAULT_PIXEL_BUDGET, DEFAULT_TILE_BUDGET, Selection

PROG = "dezoom"


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) and exit with InputError's code."""

    def error(self, message: str) -> NoReturn:
        """Print `dezoom: error: <message>` and exit 2."""
        self.exit(InputError.exit_code, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; `-h` is --max-height as in dezoomify-rs, so help is `-?`/`--help`."""
    p = OneLineParser(
        prog=PROG, add_help=False,
        description="Download a zoomable (tiled) image and save it as one file.",
        epilog="Exit codes: 0 ok, 2 bad input, 3 unreadable metadata, 4 network, 5 output impossible, "
               "6 image written with missing tiles, 70 internal error.")
    p.add_argument("-?", "--help", action="help", help="show this help and exit")
    p.add_argument("-V", "--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument("input_uri", nargs="?", help="URL or local path of the image's metadata")
    p.add_argument("outfile", nargs="?", help="output file; its extension chooses the format")
    p.add_argument("--outfile", dest="outfile_opt", metavar="PATH", help="same as the positional OUTFILE")
    p.add_argument("-d", "--dezoomer", default="auto", help="format reader to use (default: auto)")
    sel = p.add_argument_group("level choice (default: the largest level)")
    sel.add_argument("-l", "--largest", action="store_true", help="take the largest level")
    sel.add_argument("-w", "--max-width", type=_positive, help="largest level at most this wide")
    sel.add_argument("-h", "--max-height", type=_positive, help="largest level at most this high")
    sel.add_argument("--zoom-level", type=_natural, help="level index, 0 = smallest")
    sel.add_argument("--image-index", type=_natural, help="image index when the input holds several")
    sel.add_argument("--pixel-budget", type=_positive, default=DEFAULT_PIXEL_BUDGET,
                     help="refuse levels above this many pixels (default: %(default)s)")
    sel.add_argument("--tile-budget", type=_positive, default=DEFAULT_TILE_BUDGET,
                     help="refuse levels needing more tiles than this, before any download (default: %(default)s)")
    sel.add_argument("--region", type=_region, metavar="X,Y,W,H",
                     help="download only this rectangle of the chosen level: pixels, or fractions when all "
                          "four have a decimal point (0.25,0.25,0.5,0.5 is the middle quarter)")
    add_net_arguments(p)
    o = p.add_argument_group("output")
    o.add_argument("--compression", type=_percent, default=5, help="0-100: JPEG quality is 100 minus this; PNG effort (5)")
    o.add_argument("--tiff-compression", choices=COMPRESSIONS, default="jpeg",
                   help="TIFF tiles: jpeg (server JPEG tiles copied as they are when they fit), deflate, "
                        "zstd or none (default jpeg)")
    o.add_argument("--tiff-pyramid", action=argparse.BooleanOptionalAction, default=True,
                   help="TIFF: add half, quarter... size levels as SubIFDs (default: yes)")
    o.add_argument("-c", "--tile-cache", metavar="DIR", help="keep tiles here; a rerun downloads only missing ones")
    o.add_argument("--format", metavar="EXT", help="output format when no OUTFILE names one (png, jpg, tif, iiif, dzi...)")
    o.add_argument("--iiif-base-url", metavar="URL", type=_base_url,
                   help=".iiif outputs: the URL of the folder where the .iiif folder will be published "
                        "(info.json's id becomes URL/NAME.iiif; default: a relative id)")
    o.add_argument("--on-missing", choices=ON_MISSING, default="blank",
                   help="tiles that cannot be downloaded: blank leaves them black (default), fail writes "
                        "no image, fill upscales the same area from a lower zoom level; all exit 6")
    o.add_argument("--on-exists", choices=ON_EXISTS_POLICIES,
                   help="when the output exists: skip it, overwrite it, or add _0001... "
                        "(default: refuse an explicit OUTFILE; suffix default names)")
    b = p.add_argument_group("many images")
    b.add_argument("--bulk", metavar="SOURCE",
                   help="a text file or URL listing inputs (one per line, title after a space), "
                        "or a IIIF manifest or collection: download every image")
    b.add_argument("--out-dir", default=".", metavar="DIR", help="folder of the bulk outputs (.)")
    b.add_argument("--name-template", metavar="TEMPLATE",
                   help="bulk output names, e.g. '{title}_{index:04}' (fields: title, label, index, id)")
    p.add_argument("--logging", default="warning", help="log level: error, warning, info, debug (warning)")
    return p


def _positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _natural(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _base_url(text: str) -> str:
    """argparse type: an http(s) URL for --iiif-base-url."""
    try:
        return check_base_url(text) or ""
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _natural(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return value


def _region(text: str) -> str:
    """argparse type: a --region value (checked here, resolved against the level by list_tiles)."""
    try:
        parse_region(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _percent(text: str) -> int:
    """argparse type: an integer from 0 to 100."""
    value = _natural(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100, got {text!r}")
    return value


def _selection(args: argparse.Namespace) -> Selection:
    """The level and image choice named by the flags."""
    return Selection(largest=args.largest, max_width=args.max_width, max_height=args.max_height,
                     zoom_level=args.zoom_level, image_index=args.image_index)


def _ask_index(labels: list[str]) -> int:
    """Ask on the terminal which of `labels` to download (re-asking until the answer is valid)."""
    while True:
        sys.stderr.write("Which image do you want to download? ")
        sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            raise InputError("no image chosen (end of input)")
        if line.strip().isdigit() and int(line) < len(labels):
            return int(line)
        print(f"'{line.strip()}' is not a valid image number", file=sys.stderr)


def _request(args: argparse.Namespace, url: str, **extra: Any) -> Request:
    """The download request of one image from the flags (`extra` overrides fields)."""
    fields: dict[str, Any] = dict(
        url=url, options=net_options(args), selection=_selection(args), dezoomer=args.dezoomer,
        extension=args.format, on_exists=args.on_exists, compression=args.compression,
        pixel_budget=args.pixel_budget, tile_budget=args.tile_budget, tile_cache=Path(args.tile_cache) if args.tile_cache else None,
        region=args.region, on_missing=args.on_missing,
        tiff_compression=args.tiff_compression, tiff_pyramid=args.tiff_pyramid,
        iiif_base_url=args.iiif_base_url,
        choose=_ask_index if sys.stdin.isatty() and sys.stderr.isatty() else None)
    return Request(**{**fields, **extra})


def run(args: argparse.Namespace) -> Path:
    """Download one image with the five steps in-process; returns the output path."""
    url = args.input_uri or _ask_url()
    result = download(_request(args, url, outfile=args.outfile_opt or args.outfile))
    if result.sidecar is None:
        print(f"{PROG}: output exists; skipped (--on-exists skip)", file=sys.stderr)
        return result.path
    if not result.sidecar["complete"]:
        missing, total = len(result.sidecar["missing_tiles"]), result.sidecar["tiles_total"]
        filled = len(result.sidecar.get("filled_regions", []))
        if filled:
            raise FilledPartial(str(result.path), missing, total, filled)
        raise PartialDownload(str(result.path), missing, total)
    return result.path


def run_bulk(args: argparse.Namespace) -> int:
    """Download every image of a bulk list or manifest, printing `[i/N]` lines and a summary.

    Finished images (their sidecar says complete) are skipped, so running the same command
    again after an interruption redoes only what is missing; tiles stay in the tile cache
    (`dezoom-cache/` unless -c says otherwise).
    """
    folder = Path(args.out_dir)
    if not folder.is_dir():
        raise OutputError(f"{folder}: the output folder does not exist")
    doc = expand(sources=[args.bulk], output=None, template=args.name_template, net_options=net_options(args))
    entries = doc["entries"]
    cache = Path(args.tile_cache or "dezoom-cache")
    taken: set[Path] = set()
    states: dict[str, int] = {"complete": 0, "skipped": 0, "partial": 0, "failed": 0}
    for i, e in enumerate(entries, 1):
        prefix = f"[{i}/{len(entries)}] {e['name']}"
        if e["error"]:
            states["failed"] += 1
            print(f"{prefix}: FAILED: {redact_text(e['error'])}", flush=True)
            continue
        done = [folder / f"{e['name']}.{ext}" for ext in ([args.format] if args.format else ["jpg", "png"])]
        if args.on_exists is None and any(complete_sidecar(p) for p in done):
            states["skipped"] += 1
            print(f"{prefix}: already complete, skipped", flush=True)
            continue
        req = _request(args, e["url"], name=e["name"], folder=folder, taken=taken, tile_cache=cache,
                       on_exists=args.on_exists or "overwrite", choose=None)
        if is_http(e.get("source") or ""):  # a remote manifest/list is metadata: its host is the input (S2)
            req.options = dataclasses.replace(req.options, input_url=e["source"])
        try:
            result = download(req)
        except DezoomError as exc:
            states["failed"] += 1
            print(f"{prefix}: FAILED: {redact_text(str(exc))}", flush=True)
            continue
        if result.sidecar is None:
            states["skipped"] += 1
            print(f"{prefix}: exists, skipped", flush=True)
        elif result.sidecar["complete"]:
            states["complete"] += 1
            print(f"{prefix} -> {result.path}", flush=True)
        else:
            states["partial"] += 1
            print(f"{prefix} -> {result.path}: PARTIAL, {len(result.sidecar['missing_tiles'])} of "
                  f"{result.sidecar['tiles_total']} tiles missing", flush=True)
    print(f"{len(entries)} images: " + ", ".join(f"{n} {s}" for s, n in states.items() if n))
    bad = states["partial"] + states["failed"]
    if bad:
        raise IncompleteRun(f"{args.bulk}: {bad} of {len(entries)} images not complete; "
                            "run the same command again to retry what is missing")
    return 0


def _ask_url() -> str:
    """Read the input URL from standard input (prompting when it is a terminal)."""
    if sys.stdin.isatty():
        sys.stderr.write("Enter the URL of a zoomable image (or a local path): ")
        sys.stderr.flush()
    line = sys.stdin.readline()
    if not line.strip():
        raise InputError("no input URL given (pass it as the first argument)")
    return line.strip()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dezoom` command; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0) and InputError.exit_code
    level = getattr(logging, str(args.logging).upper(), None)
    logging.basicConfig(level=level if isinstance(level, int) else logging.WARNING,
                        format=f"{PROG}: %(levelname)s: %(message)s")
    install_log_redaction()  # field notes S6: no secret in any log line
    try:
        if args.bulk:
            return run_bulk(args)
        out = run(args)
    except PartialDownload as exc:
        print(f"{PROG}: warning: {redact_text(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except DezoomError as exc:
        print(f"{PROG}: error: {redact_text(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; tiles already in the cache are kept", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line, no traceback unless debugging
        logging.getLogger(PROG).debug("internal error", exc_info=True)
        print(f"{PROG}: internal error ({type(exc).__name__}: {exc}); please report it with the command line "
              "(run with --logging debug for details)", file=sys.stderr)
        return BUG_EXIT_CODE
    print(f"Image successfully saved to '{out}'")
    return 0
