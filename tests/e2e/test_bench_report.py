"""`lbstack bench --short` end to end: two real rehearsal hosts (a plain apt install with the stock
configs, and deploy/full.py from bare), the same bounded load against both, and a report that is
produced and internally consistent. Timings are not asserted (they are the bench's output)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import stack as bench
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
    for c in report["comparisons"]:
        ours = bench.find(report["runs"], "lbstack", c["endpoint"], c["connections"])
        theirs = bench.find(report["runs"], "baseline", c["endpoint"], c["connections"])
        assert c["ok_per_s_ratio"] == pytest.approx(ours["ok_per_s"] / theirs["ok_per_s"], abs=2e-3)
        assert c["cpu_per_ok_ratio"] == pytest.approx(ours["cpu_ms_per_ok"] / theirs["cpu_ms_per_ok"], abs=2e-3)
    names = [c["check"] for c in report["checks"]]
    assert any("500 conns: lbstack error rate" in n for n in names)
    assert any("100 conns: lbstack / baseline CPU" in n for n in names)
    for c in report["checks"]:
        value, op, target = c["value"], *c["target"].split()
        if value is not None:
            assert c["passed"] == (value <= float(target) if op == "<=" else value >= float(target))


def test_tool_speed_shows_an_idempotent_converge(report):
    tool = report["tool_speed"]
    assert tool["apt_install_s"] > 0 and tool["converge_from_bare_s"] > 0 and tool["noop_rerun_s"] > 0
    assert tool["noop_changed"] == 0  # the second run changed nothing
    assert tool["drift_exit"] == 0  # and drift finds nothing right after it
    assert "nginx" in tool["packages"] and "mariadb-server" in tool["packages"]


def test_markdown_and_png_carry_the_same_figures(report_dir, report):
    text = (report_dir / "bench.md").read_text()
    assert text == (report_dir / "stdout.md").read_text().rstrip("\n") + "\n"
    for r in report["runs"]:
        line = f"| {r['connections']} | {r['setup']} | {r['ok_per_s']:,.0f} |"
        assert line in text, line
    for c in report["checks"]:
        assert c["check"] in text
    png = (report_dir / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > 500 and height > 500 and not math.isnan(width / height)


def test_both_hosts_are_gone(report):

    names = set(report["meta"]["hosts"].values())
    assert not names & {h.name for h in list_hosts()}

    leftovers = [d / f"nspawn-{name}" for d in hierarchies() for name in names if (d / f"nspawn-{name}").exists()]
    assert leftovers == []
