"""Auto-detection: rounds of `resolve` over candidate dezoomers, fetching what they ask for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from dezoom_steps.dezoomers.base import Dezoomer, Documents, FetchFailure
from dezoom_steps.errors import MalformedMetadata, NetworkError, NeedsData, NoDezoomerFits, TooManyRounds, WrongDezoomer
from dezoom_steps.model import Found

MAX_ROUNDS = 6


@dataclass
class Outcome:
    """How the metadata loop ended: the dezoomer that succeeded and every candidate's reason."""

    dezoomer: Dezoomer
    found: Found
    reasons: list[tuple[str, str]] = field(default_factory=list)


def order_candidates(url: str, candidates: list[Dezoomer]) -> list[Dezoomer]:
    """Hinted candidates first, then the others that auto mode may try, each in registry order."""
    hinted = [d for d in candidates if d.hinted(url)]
    rest = [d for d in candidates if d not in hinted and d.auto]
    return hinted + rest


def round_cap(live: list[Dezoomer], default: int = MAX_ROUNDS) -> int:
    """Rounds allowed while `live` candidates remain: the largest of `default` and their own caps."""
    return max([default, *(d.max_rounds for d in live if d.max_rounds)])


def run_rounds(
    url: str,
    candidates: list[Dezoomer],
    docs: Documents,
    fetch: Callable[[str], bytes],
    options: Mapping[str, Any],
    max_rounds: int = MAX_ROUNDS,
) -> Outcome:
    """Run `resolve` on every live candidate, fetch what they ask for, repeat until one succeeds.

    `fetch(url)` returns bytes or raises an exception whose text becomes a FetchFailure.
    A `MalformedMetadata` from a candidate that was hinted (or the only one) is raised at
    once, since it is the clearest diagnosis; otherwise all reasons are reported together.
    At most `max_rounds` rounds are run, or more while a live candidate declares a larger
    `max_rounds` of its own (readers that probe tiles one request per round).
    """
    hinted = [d for d in candidates if d.hinted(url)]
    if hinted and len(hinted) < len(candidates):
        # The candidates the URL's shape names go first, alone, so that only their documents are
        # fetched: an IIP server answers its bare URL with HTTP 400, which the other candidates
        # would ask for (and retry) first. If none of them fits, every candidate runs as before,
        # on the documents already fetched.
        try:
            return run_rounds(url, hinted, docs, fetch, options, max_rounds)
        except (NoDezoomerFits, NetworkError, TooManyRounds):
            pass
    live = list(candidates)
    reasons: list[tuple[str, str]] = []
    malformed: MalformedMetadata | None = None
    unavailable: list[str] = []  # documents whose failed download made a candidate give up
    rounds = 0
    while live:
        cap = round_cap(live, max_rounds)
        if rounds >= cap:
            raise TooManyRounds(f"{url}: metadata still incomplete after {cap} rounds of downloads")
        rounds += 1
        wanted: list[str] = []
        still: list[Dezoomer] = []
        for d in live:
            try:
                found = d.resolve(url, docs, options)
            except NeedsData as need:
                still.append(d)
                if need.url not in wanted:
                    wanted.append(need.url)
            except WrongDezoomer as wrong:
                reasons.append((d.name, wrong.reason))
                if wrong.unavailable:
                    unavailable.append(wrong.unavailable)
            except MalformedMetadata as bad:
                reasons.append((d.name, str(bad)))
                if malformed is None and (len(candidates) == 1 or d.hinted(url)):
                    malformed = bad
            else:
                return Outcome(d, found, reasons)
        live = still
        if malformed is not None:
            raise malformed
        if not live:
            break
        for u in wanted:
            if u not in docs:
                try:
                    docs.put(u, fetch(u))
                except Exception as exc:  # any failure is recorded for the dezoomer to report
                    docs.put(u, FetchFailure(str(exc)))
    failure = docs.failure(url)
    if failure is None and reasons and len(unavailable) == len(reasons):
        # every candidate gave up only because a document it needed could not be downloaded
        first = unavailable[0]
        message = docs.failure(first) or "download failed"
        failure = message if first in message else f"{first}: {message}"
    if failure is not None:  # nobody could read the input because it could not be downloaded
        raise NetworkError(failure if url in failure else f"{url}: {failure}")
    raise NoDezoomerFits(url, reasons)
