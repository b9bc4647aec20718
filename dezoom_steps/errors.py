"""Errors of dezoom-steps, each with the process exit code it maps to.

The tree, with exit codes::

    DezoomError                      1  (base; never raised itself)
    ├── InputError                   2  bad URL, bad option or header, unknown dezoomer, bad config
    ├── ResolveError                 3  metadata found but unusable
    │   ├── NoDezoomerFits           3  every candidate refused; lists each one's reason
    │   ├── MalformedMetadata        3  the input is this format but broken (bad XML, zero size...)
    │   └── TooManyRounds            3  the fetch/resolve loop did not converge
    ├── NetworkError                 4  a document could not be fetched (HTTP status, timeout, TLS)
    │   ├── NoTileError              4  not a single tile could be fetched
    │   └── HostBlocked              4  a host answered with an anti-bot challenge (captcha...)
    ├── OutputError                  5  output impossible: format limit, pixel budget, file exists,
    │                                   folder not writable, disk full
    ├── PartialDownload              6  the image was written but some tiles are missing
    └── IncompleteRun                6  a run of several images ended with some not complete

    NeedsData, WrongDezoomer         control flow between dezoomers and the driver loop;
                                     they never reach users.

Exit code 70 is reserved for unexpected exceptions (bugs): the command line prints a
short "please report" line instead of a traceback.
"""

from __future__ import annotations

BUG_EXIT_CODE = 70


class DezoomError(Exception):
    """Base of every error a user may see; `str(err)` is the one line shown."""

    exit_code = 1


class InputError(DezoomError):
    """The user's input (URL, option, header, config) cannot be used."""

    exit_code = 2


class ResolveError(DezoomError):
    """Metadata was read but does not describe a usable zoomable image."""

    exit_code = 3


# What to look for when the input is not the metadata URL (said at the end of a diagnosis).
LOOK_FOR = ("open the image in a browser, look in the network tab of its developer tools (F12) for a "
            "request ending in info.json, ImageProperties.xml or .dzi, and give that URL")
MAX_REASON = 240  # characters of one candidate's reason in a diagnosis


def one_line(text: str, limit: int | None = None) -> str:
    """`text` with every run of whitespace (newlines included) made one space, cut to `limit` characters."""
    text = " ".join(text.split())
    return text if limit is None or len(text) <= limit else text[: limit - 3].rstrip() + "..."


class NoDezoomerFits(ResolveError):
    """No dezoomer accepted the input; the one-line message lists what was tried and what to look for.

    `message`, when given, replaces the default (for diagnoses built by the resolve driver:
    an HTML page without metadata, a IIIF manifest, a URL found in a page that failed).
    `manifest` is the URL of a IIIF manifest or collection found instead of an image (the
    input itself, or one a page or a viewer link pointed to), for callers that expand them.
    """

    def __init__(self, url: str, reasons: list[tuple[str, str]], message: str | None = None,
                 manifest: str | None = None):
        self.url = url
        self.reasons = reasons
        self.manifest = manifest
        if message is None:
            tried = ", ".join(f"{name} ({one_line(why, MAX_REASON)})" for name, why in reasons)
            message = (f"{url}: no dezoomer could read this input; tried {tried or 'no dezoomer'}. "
                       f"Expected the URL of a zoomable image's metadata: {LOOK_FOR}")
        super().__init__(one_line(message))


class MalformedMetadata(ResolveError):
    """The input is of a dezoomer's format, but its content is broken."""


class TooManyRounds(ResolveError):
    """The metadata loop asked for more documents than the round cap allows."""


class NetworkError(DezoomError):
    """A document could not be downloaded."""

    exit_code = 4


class NoTileError(NetworkError):
    """Not a single tile of the image could be downloaded."""


class HostBlocked(NetworkError):
    """A host served an anti-bot challenge (captcha, "unusual traffic"...): no more requests to it.

    `host` is the blocked host, `url` the URL that showed the challenge, `retry_at` the Unix
    time after which it may be tried again. `results` may carry the tile results gathered so far.
    """

    def __init__(self, message: str, host: str = "", url: str = "", retry_at: float = 0.0):
        self.host, self.url, self.retry_at = host, url, retry_at
        self.results: list = []
        super().__init__(message)


class OutputError(DezoomError):
    """The output cannot be written: format limit, budget, existing file, permissions, disk."""

    exit_code = 5


class PartialDownload(DezoomError):
    """The image was written, but some tiles are missing (left black)."""

    exit_code = 6

    def __init__(self, path: str, missing: int, total: int):
        self.path, self.missing, self.total = path, missing, total
        super().__init__(
            f"{path}: only {total - missing} tiles out of {total} could be downloaded; "
            f"the image was written with {missing} missing tiles left black"
        )


class IncompleteRun(DezoomError):
    """A run of several images finished, but some are partial, failed or not run."""

    exit_code = 6


class NeedsData(Exception):
    """Control flow: a dezoomer asks the driver to fetch `url` and call it again."""

    def __init__(self, url: str):
        self.url = url
        super().__init__(f"needs {url}")


class WrongDezoomer(Exception):
    """Control flow: this dezoomer cannot handle the input; `reason` says why."""

    def __init__(self, reason: str, unavailable: str | None = None):
        self.reason = reason
        self.unavailable = unavailable  # the URL whose failed download is the reason, if any
        super().__init__(reason)
