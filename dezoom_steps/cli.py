"""`dezoom`: download one zoomable image in-process, with dezoomify-rs's flag names."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

from dezoom_steps import __version__
from dezoom_steps.errors import BUG_EXIT_CODE, DezoomError, InputError, NoTileError, OutputError, PartialDownload
from dezoom_steps.naming import output_path
from dezoom_steps.netargs import add_net_arguments, net_options
from dezoom_steps.steps.list_tiles import DEFAULT_PIXEL_BUDGET, Selection
from dezoom_steps.tempfiles import temp_beside

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
    add_net_arguments(p)
    o = p.add_argument_group("output")
    o.add_argument("--compression", type=_percent, default=5, help="0-100: JPEG quality is 100 minus this; PNG effort (5)")
    o.add_argument("-c", "--tile-cache", metavar="DIR", help="keep tiles here; a rerun downloads only missing ones")
    p.add_argument("--logging", default="warning", help="log level: error, warning, info, debug (warning)")
    return p


def _positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _natural(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _natural(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return value


def _percent(text: str) -> int:
    """argparse type: an integer from 0 to 100."""
    value = _natural(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100, got {text!r}")
    return value


def run(args: argparse.Namespace) -> Path:
    """Download one image with the five steps in-process; returns the output path."""
    from dezoom_steps.encoders import check_output_feasible
    from dezoom_steps.steps.encode import encode
    from dezoom_steps.steps.fetch_tiles import fetch_tiles
    from dezoom_steps.steps.list_tiles import list_tiles
    from dezoom_steps.steps.resolve import resolve
    from dezoom_steps.steps.stitch import stitch

    url = args.input_uri or _ask_url()
    options = net_options(args)
    outfile = args.outfile_opt or args.outfile
    if outfile and Path(outfile).exists():
        raise OutputError(f"{outfile}: file exists; not overwritten")
    work = Path(tempfile.mkdtemp(prefix="dezoom-"))
    try:
        resolve(url=url, output=work / "resolve.json", dezoomer=args.dezoomer, net_options=options)
        selection = Selection(largest=args.largest, max_width=args.max_width, max_height=args.max_height,
                              zoom_level=args.zoom_level, image_index=args.image_index)
        tiles = list_tiles(resolve_json=work / "resolve.json", output=work / "tiles.json", image="cli",
                           selection=selection, pixel_budget=args.pixel_budget)
        width, height = tiles["canvas"]["width"], tiles["canvas"]["height"]
        out = output_path(outfile, tiles["title"], width, height)
        check_output_feasible(out, width, height)
        _check_writable(out)
        logging.getLogger(PROG).info("downloading %d tiles of a %dx%d level", len(tiles["tiles"]), width, height)
        cache = Path(args.tile_cache) if args.tile_cache else work / "cache"
        report = fetch_tiles(tiles_json=work / "tiles.json", cache_dir=cache, report=work / "fetch.json",
                             options=options, progress=True)
        total = len(tiles["tiles"])
        if total and len(report["failed"]) == total:
            first = report["failed"][0]
            raise NoTileError(f"{tiles['input_url']}: could not get any of the {total} tiles "
                              f"(first failure: {first['url']}: {first['error']})")
        stitch(tiles_json=work / "tiles.json", cache_dir=cache, canvas=work / "canvas.tif",
               report=work / "stitch.json")
        sidecar = encode(tiles_json=work / "tiles.json", stitch_json=work / "stitch.json",
                         canvas=work / "canvas.tif", output=out, compression=args.compression)
        if not sidecar["complete"]:
            raise PartialDownload(str(out), len(sidecar["missing_tiles"]), sidecar["tiles_total"])
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ask_url() -> str:
    """Read the input URL from standard input (prompting when it is a terminal)."""
    if sys.stdin.isatty():
        sys.stderr.write("Enter the URL of a zoomable image (or a local path): ")
        sys.stderr.flush()
    line = sys.stdin.readline()
    if not line.strip():
        raise InputError("no input URL given (pass it as the first argument)")
    return line.strip()


def _check_writable(out: Path) -> None:
    """Refuse before downloading when the output folder cannot take a new file (a real trial:
    permission bits say nothing for root or on read-only file systems)."""
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{out}: the folder {folder} does not exist")
    temp_beside(out).unlink()


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
    try:
        out = run(args)
    except PartialDownload as exc:
        print(f"{PROG}: warning: {exc}", file=sys.stderr)
        return exc.exit_code
    except DezoomError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
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
