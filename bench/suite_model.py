"""The suite's records: figures (repeated measurements of one command), ratios computed pair
by pair between two figures, and the issue's targets judged on them."""

from __future__ import annotations

import operator
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from measure import Run, spread
from pixelcheck import Checker
from rigcontrol import Log, RigInfo

METRICS = ("wall_s", "peak_rss_mb", "user_s", "sys_s")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "<": operator.lt, ">": operator.gt}


@dataclass
class Figure:
    """One measured command, repeated: every run's figures and their min / median / max."""

    key: str
    what: str
    command: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, run: Run, problems: list[str], check: dict[str, Any] | None = None,
            **extra: Any) -> dict[str, Any]:
        """Record one run; it counts (valid) only when it exited 0 and its output passed `check`."""
        record = {"rep": len(self.runs), **run.figures(), **extra}
        valid = run.ok and (check is None or bool(check.get("ok")))
        if check is not None:
            record["check"] = check
        record["valid"] = valid
        if not run.ok:
            problems.append(run.failure(f"{self.key} rep {record['rep']}"))
        elif not valid:
            problems.append(f"{self.key} rep {record['rep']}: output check failed: {check}")
        self.runs.append(record)
        return record

    def values(self, metric: str) -> list[float]:
        """The values of `metric` over the valid runs."""
        return [r[metric] for r in self.runs if r["valid"] and r.get(metric) is not None]

    def to_json(self) -> dict[str, Any]:
        """The figure with min / median / max of every metric over its valid runs."""
        metrics = list(METRICS) + sorted({k for r in self.runs for k, v in r.items()
                                          if k not in METRICS and k not in ("rep", "exit", "load1_at_start")
                                          and isinstance(v, (int, float)) and not isinstance(v, bool)})
        return {"what": self.what, "command": self.command, **({"notes": self.notes} if self.notes else {}),
                "runs": self.runs, "valid_runs": sum(r["valid"] for r in self.runs),
                **{m: spread(self.values(m)) for m in metrics}}


@dataclass(frozen=True)
class Ratio:
    """numerator.metric / denominator.metric (or their difference), pair by pair: rep i with rep i."""

    key: str
    what: str
    numerator: str
    denominator: str
    metric: str = "wall_s"
    kind: str = "ratio"  # or "difference"

    def compute(self, figures: dict[str, Figure]) -> dict[str, Any]:
        """Each pair's value (None when either run of the pair is invalid) and their spread."""
        num, den = figures.get(self.numerator), figures.get(self.denominator)
        pairs: list[float | None] = []
        if num is not None and den is not None:
            for a, b in zip(num.runs, den.runs):
                if not (a["valid"] and b["valid"]) or (self.kind == "ratio" and not b[self.metric]):
                    pairs.append(None)
                elif self.kind == "ratio":
                    pairs.append(round(a[self.metric] / b[self.metric], 4))
                else:
                    pairs.append(round(a[self.metric] - b[self.metric], 4))
        good = [p for p in pairs if p is not None]
        return {"what": self.what, "kind": self.kind, "metric": self.metric, "numerator": self.numerator,
                "denominator": self.denominator, "pairs": pairs, **spread(good, 4)}


@dataclass(frozen=True)
class Target:
    """One of the issue's targets: a statistic of a ratio or a figure compared with a threshold."""

    key: str
    what: str
    source: str  # "ratio" or "figure"
    name: str
    statistic: str  # "min", "median" or "max"
    op: str
    threshold: float
    metric: str = "wall_s"  # for figures
    judged: bool = True  # False in --quick runs: the targets are for the larger images

    def evaluate(self, ratios: dict[str, dict[str, Any]], figures: dict[str, Figure]) -> dict[str, Any]:
        """The target with the value it was judged on and whether it was met (None: not measured)."""
        if self.source == "ratio":
            value = ratios.get(self.name, {}).get(self.statistic)
        else:
            fig = figures.get(self.name)
            value = spread(fig.values(self.metric))[self.statistic] if fig else None
        met = None if value is None else OPERATORS[self.op](value, self.threshold)
        return {"what": self.what, "source": self.source, "name": self.name,
                **({"metric": self.metric} if self.source == "figure" else {}),
                "statistic": self.statistic, "op": self.op, "threshold": self.threshold, "value": value,
                "met": met, "judged": self.judged}


@dataclass
class Context:
    """Everything the figure groups share: the rig, the options, and what was found."""

    env: dict[str, str]
    rig: RigInfo
    work: Path
    reps: int
    quick: bool
    big: bool
    log: Log
    figures: dict[str, Figure] = field(default_factory=dict)
    ratios: list[Ratio] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    checkers: dict[str, Checker] = field(default_factory=dict)

    def figure(self, key: str, what: str, command: str) -> Figure:
        """A new figure, registered under `key`."""
        self.figures[key] = Figure(key, what, command)
        return self.figures[key]

    def shown(self, cmd: list[str]) -> str:
        """A command line for the JSON: programs by name, files of the work folder by their name."""
        words = []
        for word in cmd:
            if word == sys.executable or Path(word).name == "dezoom" and Path(word).is_absolute():
                word = Path(word).name if Path(word).name == "dezoom" else "python"
            elif word.startswith(str(self.work)):
                word = Path(word).name
            words.append(word)
        return " ".join(words)

    def checker(self, size_name: str) -> Checker:
        """The pixel checker of one rig image (small, medium, big)."""
        if size_name not in self.checkers:
            self.checkers[size_name] = Checker(self.rig.data_dir, size_name, self.env)
        return self.checkers[size_name]

    def fresh_dir(self, name: str) -> Path:
        """A new, empty folder `name/<n>` under the work folder.

        Earlier runs' folders are not deleted here, between two timed runs: removing thousands of
        tiles makes the file system's clean-up (journal commits, and TRIM on a disk mounted with
        `discard`, as here) land in the next run's file creations. `clear` removes them, then syncs.
        """
        parent = self.work / name
        parent.mkdir(parents=True, exist_ok=True)
        path = parent / str(sum(1 for _ in parent.iterdir()))
        path.mkdir()
        return path

    def clear(self, name: str) -> None:
        """Remove the folders of `fresh_dir(name)` and flush the file system before the next timing."""
        shutil.rmtree(self.work / name, ignore_errors=True)
        os.sync()

    def target(self, key: str, what: str, source: str, name: str, statistic: str, op: str,
               threshold: float, metric: str = "wall_s") -> None:
        """Register a target; in --quick runs it is recorded but not judged."""
        self.targets.append(Target(key, what, source, name, statistic, op, threshold, metric, judged=not self.quick))


def rotated(items: list[Any], rep: int) -> list[Any]:
    """`items` rotated by `rep`, so that no contender always runs first (or last) in a repetition."""
    k = rep % len(items)
    return items[k:] + items[:k]
