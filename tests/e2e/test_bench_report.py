"""`lbstack bench --short` end to end: three real rehearsal hosts (a plain apt install with the stock
configs, the same install with the hand-tuned pool, and deploy/full.py from bare), the same bounded
load against each, the short users-held search (one real k6 probe of a few users per setup), and a
report that is produced and internally consistent. Timings and capacities are not asserted (they
are the bench's output)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import stack as bench
from bench import users
from lbstack import REPO_ROOT
from lbstack.rehearsal import list_hosts
from lbstack.rehearsal.cgroups import hierarchies


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, "-c", "from lbstack.cli import main; main()", "bench", "--short",
                           "--out", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    print(proc.stderr[-4000:])
    assert proc.returncode == 0, proc.stderr[-4000:]
    (out / "stdout.md").write_text(proc.stdout)
    return out


@pytest.fixture(scope="module")
def report(report_dir) -> dict:
    return json.loads((report_dir / "bench.json").read_text())


def test_every_setup_endpoint_and_level_was_measured(report):
    meta = report["meta"]
    assert meta["mode"] == "short" and meta["levels"] == list(bench.SHORT_LEVELS)
    assert meta["endpoints"] == ["light", "heavy"]
    keys = sorted((r["setup"], r["endpoint"], r["connections"]) for r in report["runs"])
    assert keys == sorted((s, e, c) for s in bench.SETUPS for e in meta["endpoints"] for c in meta["levels"])
    for row in report["runs"]:
        # both stacks served the sample app: successful answers and CPU spent on them
        assert row["ok"] > 0 and row["stack_cpu_s"] > 0 and row["loadgen_cpu_s"] > 0, row
    for row in (r for r in report["runs"] if r["setup"] == "lbstack"):
        # through the balancer to every one of the five instances
        assert set(row["instances"]) == {f"app{i}" for i in range(1, 6)}, row["instances"]
    for row in (r for r in report["runs"] if r["setup"] in bench.OTHERS):
        # one pool, no instance name in its environment: the app's own "unknown", so PHP answered
        assert set(row["instances"]) == {"unknown"}, row["instances"]


def test_each_row_is_consistent(report):
    for r in report["runs"]:
        errors = r["errors"]
        assert r["requests"] == r["ok"] + errors["5xx"] + errors["socket"] + errors["other"]
        assert sum(errors["by_kind"].values()) == errors["5xx"] + errors["socket"]
        assert r["error_rate"] == pytest.approx((r["requests"] - r["ok"]) / r["requests"], abs=1e-6)
        assert r["ok_per_s"] == pytest.approx(r["ok"] / r["seconds"], rel=1e-3, abs=0.06)  # seconds: 3 decimals
        lat = r["latency_ms"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
        assert r["cpu_ms_per_ok"] == pytest.approx(r["stack_cpu_s"] * 1000 / r["ok"], rel=2e-3, abs=1e-3)
        assert r["queue_floor_ms"] == pytest.approx(r["connections"] * r["seconds"] * 1000 / r["requests"], rel=1e-3)
        # the machine's busy time covers the stack and the load generator (ticks of 10 ms aside)
        assert r["other_cpu_s"] > -0.1 * (r["stack_cpu_s"] + r["loadgen_cpu_s"]) - 0.1


def test_ceilings_follow_their_definition(report):
    cpus = report["meta"]["cpus"]
    assert cpus == len(os.sched_getaffinity(0))
    for r in report["runs"]:
        lowest = min((x for x in report["runs"] if (x["setup"], x["endpoint"]) == (r["setup"], r["endpoint"])),
                     key=lambda x: x["connections"])
        left = cpus - r["loadgen_cpu_s"] / r["seconds"]
        expected = left / (lowest["cpu_ms_per_ok"] / 1000)
        assert r["ceiling_basis_connections"] == lowest["connections"] == min(report["meta"]["levels"])
        assert r["ceiling_ok_per_s"] == pytest.approx(expected, rel=0.01)
        assert r["ceiling_share"] == pytest.approx(r["ok_per_s"] / r["ceiling_ok_per_s"], abs=2e-3)


def test_comparisons_and_checks_match_the_rows(report):
    levels = {e: report["meta"]["levels"] for e in report["meta"]["endpoints"]}
    assert sorted((c["endpoint"], c["connections"]) for c in report["comparisons"]) == \
        sorted((e, lvl) for e, ls in levels.items() for lvl in ls)
    for c in report["comparisons"]:
        ours = bench.find(report["runs"], "lbstack", c["endpoint"], c["connections"])
        for other in bench.OTHERS:
            theirs = bench.find(report["runs"], other, c["endpoint"], c["connections"])
            vs = c["vs"][other]
            assert vs["ok_per_s"] == pytest.approx(ours["ok_per_s"] / theirs["ok_per_s"], abs=2e-3)
            assert vs["cpu_per_ok"] == pytest.approx(ours["cpu_ms_per_ok"] / theirs["cpu_ms_per_ok"], abs=2e-3)
            assert vs["p95"] == pytest.approx(ours["latency_ms"]["p95"] / theirs["latency_ms"]["p95"], abs=2e-3)
        assert c["error_rate"] == {s: bench.find(report["runs"], s, c["endpoint"], c["connections"])["error_rate"]
                                   for s in bench.SETUPS}
    names = [c["check"] for c in report["checks"]]
    assert len(names) == len(bench.TARGETS)  # every target, decided at the run's own levels
    assert "light, 500 conns: lbstack error rate" in names and "light, 500 conns: lbstack / tuned goodput" in names
    assert "light, 100 conns: lbstack / baseline CPU s per request" in names
    compare = {"<=": lambda v, t: v <= t, ">=": lambda v, t: v >= t, ">": lambda v, t: v > t}
    for c in report["checks"]:
        value, op, target = c["value"], *c["target"].split()
        # every input was measured in this run: each check is decided, none left n/a
        assert value is not None and c["passed"] == compare[op](value, float(target)), c
    floor = next(c for c in report["checks"] if "queueing floor" in c["check"])
    ours = bench.find(report["runs"], "lbstack", "light", 500)
    assert floor["value"] == pytest.approx(ours["latency_ms"]["p95"] / ours["queue_floor_ms"], abs=2e-3)


def test_the_tuned_pool_was_sized_for_the_hosts_cpus(report):
    tuned = report["meta"]["tuned"]
    assert tuned == {**bench.tuned_sizes(int(report["meta"]["cpus"])), "somaxconn_live": tuned["somaxconn_live"]}
    assert isinstance(tuned["somaxconn_live"], int) and tuned["somaxconn_live"] > 0


def test_the_short_users_search_ran_one_real_k6_probe_per_setup(report_dir, report):
    section = report["users"]
    assert section["skipped"] is None
    assert section["search"] == {**dataclasses.asdict(bench.SHORT_USERS),
                                 "probe_bound_s": bench.SHORT_USERS.probe_bound_s()}
    assert list(section["setups"]) == list(bench.SETUPS)
    for setup, result in section["setups"].items():
        (probe,) = result["probes"]  # --short: exactly one probe fits each setup's budget
        assert probe["vus"] == bench.SHORT_USERS.start_vus and result["stopped"] == "budget"
        assert 0 < probe["seconds"] <= bench.SHORT_USERS.probe_bound_s()
        assert result["seconds"] <= bench.SHORT_USERS.budget_s
        summary = json.loads((report_dir / "users" / f"{setup}-{probe['vus']}.json").read_text())
        assert summary["metrics"]["http_reqs"]["count"] == probe["requests"] > 0  # k6 reached the host
        # the verdict is k6's exit code and its summary's, as bench.users decides it
        assert (probe["passed"], probe["reason"]) == users.verdict(probe["exit_code"], summary)
        # a few users on an idle host: every setup holds them, the script's checks pass on its answers
        assert probe["passed"] is True, (setup, probe, (report_dir / "users" / f"{setup}-{probe['vus']}.log")
                                         .read_text()[-3000:])
        assert result["held"] == probe["vus"]


def test_tool_speed_shows_an_idempotent_converge(report):
    tool = report["tool_speed"]
    assert tool["apt_install_s"] > 0 and tool["converge_from_bare_s"] > 0 and tool["noop_rerun_s"] > 0
    assert tool["tuned_apt_install_s"] > 0 and tool["baseline_app_s"] > 0 and tool["tuned_setup_s"] > 0
    assert tool["noop_changed"] == 0  # the second run changed nothing
    assert tool["drift_exit"] == 0  # and drift finds nothing right after it
    assert "nginx" in tool["packages"] and "mariadb-server" in tool["packages"]
    assert "composer" in tool["packages"]  # the plain-apt hosts run Composer's classmap too


def test_markdown_and_png_carry_the_same_figures(report_dir, report):
    text = (report_dir / "bench.md").read_text()
    assert text == (report_dir / "stdout.md").read_text().rstrip("\n") + "\n"
    for r in report["runs"]:
        line = f"| {r['connections']} | {r['setup']} | {r['ok_per_s']:,.0f} |"
        assert line in text, line
    for c in report["checks"]:
        assert c["check"] in text
    for setup, result in report["users"]["setups"].items():
        assert f"| {setup} | {bench.users_held_text(result)} |" in text
    assert f"Users search: {report['users']['seconds']:.0f} s in all." in text
    png = (report_dir / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    # two endpoints, three panels each: goodput, p95 and the error rates
    assert width > 1000 and height > 500 and width > height and not math.isnan(width / height)


def test_every_host_is_gone(report):

    names = set(report["meta"]["hosts"].values())
    assert not names & {h.name for h in list_hosts()}

    leftovers = [d / f"nspawn-{name}" for d in hierarchies() for name in names if (d / f"nspawn-{name}").exists()]
    assert leftovers == []
