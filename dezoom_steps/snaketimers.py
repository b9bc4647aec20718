"""The Snakemake head process's exit: no second lost waiting for the job rate limit's timers.

Snakemake's job rate limit (`--max-jobs-per-timespan`, default 100/1s) arms a `threading.Timer`
of one timespan at every scheduling pass, to look at the queue again when the window has
passed. Those timers are not daemon threads, so the interpreter waits for the last of them
before it exits: every run, even of one small image, ended up to 1 s after its last job (a
third of issue 7's 3 s budget for a Snakemake run over the `dezoom` command). Once the run is
over (the Snakefile's onsuccess and onerror hooks) nothing is left for them to schedule.
The shorter timespan that would avoid it cannot be written: Snakemake's pattern for the
option reads "10/100ms" as 10 jobs per 100 minutes.
"""

from __future__ import annotations

import threading


def stop_rate_timers() -> int:
    """Cancel every pending `threading.Timer` of this process; returns how many were pending."""
    pending = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and not t.finished.is_set()]
    for timer in pending:
        timer.cancel()
    return len(pending)
