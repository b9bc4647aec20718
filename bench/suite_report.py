"""The suite's result: one JSON document per run, and a short markdown summary for stdout."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from suite_model import Context

SCHEMA = "dezoom-steps/bench-suite/1"


def result_document(ctx: Context, head: dict[str, Any]) -> dict[str, Any]:
    """Everything measured: figures, ratios (pair by pair) and targets, after `head` (machine, ...)."""
    ratios = {r.key: r.compute(ctx.figures) for r in ctx.ratios}
    targets = {t.key: t.evaluate(ratios, ctx.figures) for t in ctx.targets}
    return {**head, "settings": ctx.settings, "figures": {k: f.to_json() for k, f in ctx.figures.items()},
            "ratios": ratios, "targets": targets, "problems": ctx.problems}


def write_json_atomic(path: Path, body: dict[str, Any]) -> None:
    """Write `body` as indented JSON via a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=1) + "\n")
    os.replace(tmp, path)


def _num(value: Any, fmt: str = ".2f") -> str:
    """A number for the table, or a dash."""
    return "–" if value is None else format(value, fmt)


def _spread(s: dict[str, Any], fmt: str = ".2f") -> str:
    """min / median / max."""
    return f"{_num(s['min'], fmt)} / {_num(s['median'], fmt)} / {_num(s['max'], fmt)}"


def markdown(doc: dict[str, Any]) -> str:
    """Figures, ratios and targets as three short markdown tables."""
    lines = ["| figure | valid runs | wall s (min / median / max) | peak RSS MB (median) | CPU user + sys s "
             "(median) | other (median) |", "|---|---:|---:|---:|---:|---|"]
    for key, f in doc["figures"].items():
        cpu = None if f["user_s"]["median"] is None else f["user_s"]["median"] + f["sys_s"]["median"]
        other = ", ".join(f"{m} {_num(f[m]['median'], 'g')}" for m in ("tiles_per_s", "req_per_s", "mp_per_s",
                                                                       "output_mb") if m in f)
        lines.append(f"| {key} | {f['valid_runs']}/{len(f['runs'])} | {_spread(f['wall_s'])} "
                     f"| {_num(f['peak_rss_mb']['median'], '.0f')} | {_num(cpu)} | {other} |")
    lines += ["", "| ratio, pair by pair | min / median / max |", "|---|---:|"]
    for key, r in doc["ratios"].items():
        lines.append(f"| {key}: {r['what']} | {_spread(r, '.3g')} |")
    lines += ["", "| target | value | met |", "|---|---:|---|"]
    for key, t in doc["targets"].items():
        met = "not measured" if t["met"] is None else "yes" if t["met"] else "NO"
        if not t["judged"]:
            met += " (not judged: --quick)"
        lines.append(f"| {key}: {t['what']} | {t['statistic']} {_num(t['value'], '.3g')} "
                     f"{t['op']} {t['threshold']:g} | {met} |")
    if doc["problems"]:
        lines += ["", f"{len(doc['problems'])} problem(s), see `problems` in the JSON."]
    return "\n".join(lines)
