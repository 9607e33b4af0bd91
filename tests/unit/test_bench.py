"""The pure part of `lbstack bench`: measured runs -> rows, ceilings, comparisons, checks, report files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench import stack as bench
import bench.__main__ as bench_main


def summary(requests: int, ok: int, failed: dict[str, int], p: tuple[float, float, float] = (10, 20, 30)) -> dict:
    return {"requests": requests, "ok": ok, "failed_by_kind": failed,
            "latency_ms": {"p50": p[0], "p95": p[1], "p99": p[2], "max": p[2]}, "instances": {"app1": ok}}


def rows(base_100=(10_000, 3.0), ours_100=(10_000, 2.4), base_top=(6_000, 3.0, {"eof": 4_000}),
         ours_top=(12_000, 3.0, {})) -> list[dict]:
    out = [
        bench.run_row("baseline", "light", 100, summary(base_100[0], base_100[0], {}), 10.0, base_100[1], 0.5),
        bench.run_row("lbstack", "light", 100, summary(ours_100[0], ours_100[0], {}), 10.0, ours_100[1], 0.5),
    ]
    for setup, (ok, cpu, failed) in (("baseline", base_top), ("lbstack", ours_top)):
        requests = ok + sum(failed.values())
        out.append(bench.run_row(setup, "light", 2000, summary(requests, ok, failed, (300, 900, 1200)), 10.0, cpu, 1.0))
    return out


def test_a_row_splits_errors_by_kind_and_derives_its_rates():
    row = bench.run_row("baseline", "light", 2000, summary(1000, 900, {"502": 30, "eof": 50, "timeout": 10}),
                        10.0, 0.45, 0.1)
    assert row["errors"] == {"5xx": 30, "socket": 60, "other": 10,
                             "by_kind": {"502": 30, "eof": 50, "timeout": 10}}
    assert row["error_rate"] == 0.1 and row["ok_per_s"] == 90.0
    assert row["cpu_ms_per_ok"] == 0.5 and row["latency_ms"] == {"p50": 10, "p95": 20, "p99": 30}


def test_ceiling_uses_the_lowest_levels_cost_and_the_cores_the_load_generator_left():
    data = rows()
    bench.add_ceilings(data, cpus=2.0)
    ours_top = bench.find(data, "lbstack", "light", 2000)
    # cost at 100: 2.4 s / 10,000 = 0.24 ms; cores left at 2000: 2 - 1.0/10 = 1.9 -> 7916.7 req/s
    assert ours_top["ceiling_basis_connections"] == 100 and ours_top["cpus_left"] == 1.9
    assert ours_top["ceiling_ok_per_s"] == pytest.approx(1.9 / 0.00024, abs=0.1)
    assert ours_top["ceiling_share"] == pytest.approx(1200 / (1.9 / 0.00024), abs=1e-3)


def test_checks_decide_each_target_from_the_rows():
    data = rows()
    bench.add_ceilings(data, cpus=2.0)
    tool = {"apt_install_s": 40.0, "converge_from_bare_s": 65.0, "noop_rerun_s": 3.2, "noop_changed": 0}
    result = {c["check"]: c for c in bench.checks(data, tool)}
    assert result["light, 2000 conns: lbstack error rate"]["passed"] is True
    assert "40.00 %" in result["light, 2000 conns: lbstack error rate"]["detail"]  # the baseline's, beside it
    assert result["light, 2000 conns: lbstack / baseline req/s"]["value"] == 2.0
    assert result["light, 100 conns: lbstack / baseline CPU s per request"]["value"] == 0.8
    assert result["light, 100 conns: lbstack / baseline CPU s per request"]["passed"] is True
    assert result["light, 2000 conns: lbstack req/s / its CPU ceiling"]["passed"] is False  # 1200 of 7917
    assert result["converge from bare - plain apt install, s"]["value"] == 25.0
    assert result["no-op re-run, s"]["passed"] is True
    worse = rows(ours_100=(10_000, 2.5), ours_top=(8_000, 3.0, {"502": 1}))
    bench.add_ceilings(worse, cpus=2.0)
    failed = {c["check"] for c in bench.checks(worse, {}) if c["passed"] is False}
    assert {"light, 2000 conns: lbstack error rate", "light, 2000 conns: lbstack / baseline req/s",
            "light, 100 conns: lbstack / baseline CPU s per request"} <= failed


def test_report_files(tmp_path: Path):
    data = rows()
    options = bench.Options(out=tmp_path, levels=(100, 2000), endpoints=("light",), duration_s=10, warmup_s=1)
    report = bench.build_report(options, 2.0, data, {"apt_install_s": 40.0, "packages": ["nginx"]},
                                {"baseline": "b", "lbstack": "l"})
    paths = bench.write_report(report, tmp_path)
    assert json.loads(paths["json"].read_text())["runs"][0]["ceiling_ok_per_s"] is not None
    text = paths["markdown"].read_text()
    assert "| 2000 | lbstack | 1,200 | 0.00 % | 0 | 0 |" in text and "| 2000 | baseline | 600 | 40.00 % | 0 | 4000 |" in text
    assert "| 100 | 1.00 | 0.80 |" in text  # the ratios table
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, message", [
    (["--levels", "500,100"], "increasing"),
    (["--levels", "a,b"], "comma-separated"),
    (["--duration", "0"], "duration"),
    (["--endpoint", "nope"], "nope"),
])
def test_bad_arguments_are_refused_before_any_host_is_booted(args, message, monkeypatch):
    monkeypatch.setattr(bench_main, "run", lambda *a, **k: pytest.fail("must not run"))
    result = CliRunner().invoke(bench_main.main, args)
    assert result.exit_code == 2 and message in result.output


def test_lbstack_bench_runs_the_checkouts_bench_and_passes_its_exit_code():
    """`lbstack bench` hands its arguments to `python -m bench` (refused here before any host)."""
    exe = Path(sys.executable).parent / "lbstack"
    proc = subprocess.run([str(exe), "bench", "--levels", "500,100"], capture_output=True, text=True, timeout=120,
                          cwd="/")
    assert proc.returncode == 2 and "increasing" in proc.stderr
    helped = subprocess.run([str(exe), "bench", "--help"], capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "--keep-hosts" in helped.stdout


def test_load_goes_only_to_rehearsal_addresses():
    bench._check_target("10.213.7.2")
    with pytest.raises(RuntimeError, match="not a rehearsal"):
        bench._check_target("192.168.1.10")


def test_plain_apt_installs_what_the_deploy_installs():
    packages = bench.packages()
    for name in ("nginx", "php8.2-fpm", "php-redis", "mariadb-server", "redis-server", "nftables"):
        assert name in packages
    assert len(packages) == len(set(packages))
