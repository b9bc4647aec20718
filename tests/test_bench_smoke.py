"""Smoke test of the benchmark suite: `bench/run_suite.py --quick --reps 2` runs end to end on
the rig's small image, against servers of its own port base that it starts and stops, and
its JSON holds what bench/README.md promises. Nothing here judges speed (issue 7: figures are
never timed assertions); it checks that the suite measures, pairs and reports honestly."""

from __future__ import annotations

import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rigutil import DEFAULT_PORT_BASE, rig_run_dir, servers_running

import required

unavailable = functools.partial(required.unavailable, need="the bench's tools are required")  # skip locally, fail under CI=true

REPO = Path(__file__).resolve().parent.parent
REPS = 2
# The suite starts its own rig this far above the session's port base (RIG_PORT_BASE, default
# 18100), so it never touches a rig another test run or developer is using.
PORT_OFFSET = 400
FIGURES = ["fetch.dezoom_flat_tiff", "fetch.dezoom_pyramid_tiff", "fetch.curl", "fetch.curl_with_check",
           "fetch.polite_default",
           *[f"gdal.{s}.{f}.{who}" for s in ("iip", "dzi") for f in ("tif", "png") for who in ("dezoom", "gdal")],
           "pipeline.snakemake", "pipeline.cli", "bulk.expand", "bulk.dry_run"]
RATIOS = ["fetch.curl_over_dezoom", "fetch.curl_over_dezoom_pyramid", "fetch.checked_floor_over_dezoom",
          "fetch.curl_over_checked_floor", "pipeline.overhead_s",
          *[f"gdal.{s}.{f}.{m}" for s in ("iip", "dzi") for f in ("tif", "png") for m in ("time", "rss")]]
TARGETS = ["fetch", "politeness", "pipeline", "bulk",
           *[f"gdal.{s}.{f}.{m}" for s in ("iip", "dzi") for f in ("tif", "png") for m in ("time", "rss")]]
pytestmark = pytest.mark.rig


def _missing() -> list[str]:
    """The programs the suite needs that are not installed."""
    missing = [t for t in ("curl", "gdal_translate", "vips") if shutil.which(t) is None]
    if not os.access("/usr/bin/time", os.X_OK):
        missing.append("/usr/bin/time")
    if shutil.which("nginx") is None and not os.access("/usr/sbin/nginx", os.X_OK):
        missing.append("nginx")
    iipsrv = os.environ.get("IIPSRV", "/usr/lib/iipimage-server/iipsrv.fcgi")
    if not os.access(iipsrv, os.X_OK):
        missing.append(iipsrv)
    return missing


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The suite's JSON after one quick run, plus what it printed and where its rig was."""
    missing = _missing()
    if missing:
        unavailable(f"bench tools missing: {', '.join(missing)}; install them with scripts/setup.sh --test")
    base = int(os.environ.get("RIG_PORT_BASE", DEFAULT_PORT_BASE)) + PORT_OFFSET
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIG_PORT_") and k != "RIG_RUN_DIR"}
    env["RIG_PORT_BASE"] = str(base)
    was_running = servers_running(rig_run_dir(env))
    out = tmp_path_factory.mktemp("bench-smoke") / "suite.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "run_suite.py"), "--quick", "--reps", str(REPS),
                           "--output", str(out)], env=env, capture_output=True, text=True, timeout=400, cwd=REPO)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-3000:]}\n{proc.stdout[-1500:]}"
    return {"doc": json.loads(out.read_text()), "stdout": proc.stdout, "env": env, "was_running": was_running}


def test_the_json_records_machine_versions_load_and_options(suite: dict[str, Any]) -> None:
    doc = suite["doc"]
    assert doc["schema"] == "dezoom-steps/bench-suite/1"
    assert doc["options"]["reps"] == REPS and doc["options"]["quick"] is True
    # GDAL's group first: later groups create and remove thousands of tiles, which slows file creation
    assert doc["options"]["groups"] == ["gdal", "pipeline", "bulk", "fetch", "polite"]
    assert doc["machine"]["cpu_count"] >= 1 and doc["machine"]["git_commit"]
    for tool in ("python", "dezoom-steps", "snakemake", "curl", "gdal", "vips"):
        assert doc["versions"][tool], f"no version of {tool}"
    for when in ("before", "after"):
        assert len(doc["load_average"][when]) == 3
    assert doc["rig"]["port_base"] == int(suite["env"]["RIG_PORT_BASE"])
    assert doc["problems"] == []


def test_every_figure_has_all_runs_valid_with_positive_figures_and_a_spread(suite: dict[str, Any]) -> None:
    figures = suite["doc"]["figures"]
    assert set(FIGURES) <= set(figures)
    for key, fig in figures.items():
        assert len(fig["runs"]) == REPS and fig["valid_runs"] == REPS, key
        for run in fig["runs"]:
            assert run["exit"] == 0 and run["wall_s"] > 0 and run["peak_rss_mb"] > 0, (key, run)
            assert run["user_s"] >= 0 and run["sys_s"] >= 0
        for metric in ("wall_s", "peak_rss_mb", "user_s", "sys_s"):
            values = [r[metric] for r in fig["runs"]]
            s = fig[metric]
            assert (s["min"], s["median"], s["max"], s["n"]) == (
                min(values), round(statistics.median(values), 3), max(values), REPS), (key, metric)


def test_every_output_was_checked_against_the_master(suite: dict[str, Any]) -> None:
    figures = suite["doc"]["figures"]
    for key in [k for k in figures if k.startswith(("gdal.", "fetch.dezoom", "fetch.polite", "pipeline."))]:
        for run in figures[key]["runs"]:
            check = run["check"]
            assert check["ok"] and 0 <= check["mean_abs_diff"] <= check["limits"]["mean_abs_diff"], (key, check)
    for run in figures["fetch.curl"]["runs"]:
        assert run["check"]["status_200"] == run["check"]["files"] == suite["doc"]["settings"]["fetch"]["tiles"]
    for run in figures["fetch.curl_with_check"]["runs"]:  # every tile fetched, and checked valid beside it
        tiles = suite["doc"]["settings"]["fetch"]["tiles"]
        assert (run["check"]["status_200"], run["check"]["files"], run["check"]["checked"],
                run["check"]["invalid"]) == (tiles, tiles, tiles, 0)
        assert run["wall_s"] > 0
    for run in figures["fetch.polite_default"]["runs"]:
        assert 0 < run["req_per_s"] <= 21, "50 ms between request starts allows at most 20 requests/s"
    for run in figures["bulk.dry_run"]["runs"]:
        assert run["check"]["jobs_planned"] >= suite["doc"]["settings"]["bulk"]["images"] * 4


def test_ratios_are_computed_pair_by_pair_from_the_recorded_runs(suite: dict[str, Any]) -> None:
    doc = suite["doc"]
    assert set(RATIOS) <= set(doc["ratios"])
    for key, ratio in doc["ratios"].items():
        num, den = doc["figures"][ratio["numerator"]], doc["figures"][ratio["denominator"]]
        assert len(ratio["pairs"]) == REPS, key
        for i, value in enumerate(ratio["pairs"]):
            a, b = num["runs"][i][ratio["metric"]], den["runs"][i][ratio["metric"]]
            expected = a / b if ratio["kind"] == "ratio" else a - b
            assert value == pytest.approx(expected, rel=1e-3, abs=1e-4), (key, i)
        assert ratio["min"] == min(ratio["pairs"]) and ratio["max"] == max(ratio["pairs"])
        assert ratio["median"] == pytest.approx(statistics.median(ratio["pairs"]), abs=1e-4)


def test_targets_are_judged_on_the_recorded_statistic(suite: dict[str, Any]) -> None:
    doc = suite["doc"]
    assert set(TARGETS) <= set(doc["targets"])
    for key, t in doc["targets"].items():
        if t["source"] == "ratio":
            value = doc["ratios"][t["name"]][t["statistic"]]
        else:
            value = doc["figures"][t["name"]][t["metric"]][t["statistic"]]
        assert t["value"] == value, key
        met = {">=": value >= t["threshold"], "<=": value <= t["threshold"], "<": value < t["threshold"]}[t["op"]]
        assert t["met"] is met, key
        assert t["judged"] is False, "--quick runs the small image: the issue's targets are not judged on it"


def test_the_table_is_printed_and_the_servers_it_started_are_stopped(suite: dict[str, Any]) -> None:
    out = suite["stdout"]
    assert "| figure |" in out and "| ratio, pair by pair |" in out and "| target |" in out
    assert "fetch.curl_over_dezoom" in out
    if not suite["was_running"]:
        assert suite["doc"]["rig"]["servers_started_by_suite"] is True
        assert not servers_running(rig_run_dir(suite["env"])), "the suite left its rig running"


def test_only_runs_the_named_groups_in_the_suite_order() -> None:
    code = ("import sys; sys.path.insert(0, 'bench'); import run_suite; "
            "print(','.join(run_suite.parse_args(['--only', 'polite,fetch,gdal,fetch']).groups))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "gdal,fetch,polite"
