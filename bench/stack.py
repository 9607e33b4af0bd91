"""``lbstack bench``: the same load against Debian's stock setup, a hand-tuned pool and the lbstack
stack, side by side.

Three rehearsal hosts are booted from the same golden rootfs (the same bare Debian 12):

- **baseline**: ``apt-get install`` of the packages lbstack installs (timed: the "plain apt"
  figure), then the sample app served the way a tutorial does it: Debian's stock ``nginx.conf``,
  the default site pointed at the app's ``public/`` with its PHP block uncommented, the stock
  ``www`` PHP-FPM pool, stock MariaDB and Redis, the app's own defaults in ``.env``;
- **tuned**: the same packages and the same app on ONE pool as a competent admin tunes it by hand
  (``bench/tuned/``): ``pm = static`` with :func:`tuned_sizes`' workers per CPU, OPcache without
  timestamp checks and lbstack's OPcache memory, nginx's ``worker_connections`` for every client
  and its upstream connection, a listen backlog and ``somaxconn`` for a burst of them all; no cgroup
  limits;
- **lbstack**: ``deploy/full.py`` from bare (timed), then the no-op re-run and ``lbstack drift``
  (timed). Its plan is made for this machine (host facts), not for the 8 vCPU production size.

Both plain-apt hosts get the release archive lbstack deploys (the same bytes) and build it as
lbstack's deploy does: Composer's optimized classmap, migrations, Laravel's caches
(``bench/baseline/setup-app``).

Then, for each endpoint (``light``: the random-question API, a Redis cache hit; ``heavy``: the
exam page, five queries and a rendered view) and each connection level, the setups get the same
load from :mod:`bench.load`, one after the other (the order rotates per level), each run preceded
by a warm-up. Measured per run: successful answers per second (goodput), errors by kind,
p50/p95/p99 of the answered requests, the queueing floor (``connections / requests per second``:
Little's law's mean time in the system of a closed loop of that many connections), the stack's
CPU seconds (the host's cgroup, read on this machine: every unit of the rehearsal host, nothing of
the load generator) per successful answer, and the load generator's own CPU. The **CPU ceiling**
of a setup at a level is the answers per second that the cores left over by the load generator
could serve at the CPU cost the setup showed at the lowest level:
``(cpus - load generator CPU s per s) / (stack CPU s per answer at the lowest level)``.

Last, :mod:`bench.users` finds how many k6 virtual users each setup holds within the seed's
thresholds (real k6, bounded by a time budget per setup; ``--users-budget 0`` skips it, and the
report says so).

Everything is bounded: fixed durations, per-request timeouts, ssh/pyinfra timeouts, the users
search's budget; traffic goes only to the three rehearsal hosts (10.213.x.2 in network namespaces
this machine made); the hosts are torn down at the end (``--keep-hosts`` keeps them). Writes
``bench.json``, ``bench.md`` and ``bench.png`` (and the k6 probes' logs and summaries under
``users/``) to the output directory.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import load, users
from lbstack import REPO_ROOT, layout, release
from lbstack import plan as stack_plan
from lbstack.rehearsal import converge
from lbstack.settings import Settings

SETUPS = ("baseline", "tuned", "lbstack")
OTHERS = ("baseline", "tuned")  # what lbstack is held against; also the plain-apt hosts
SETUP_TITLES = {
    "baseline": "Debian's stock nginx site and www pool, plain apt",
    "tuned": "one hand-tuned static FPM pool, plain apt, no cgroup limits",
    "lbstack": "deploy/full.py: balancer, 5 FPM instances, cgroup limits",
}
ENDPOINTS = {
    "light": {"path": "/api/questions/random", "title": "random-question API (Redis cache hit)"},
    "heavy": {"path": "/exam", "title": "exam page (5 queries, rendered view)"},
}
FULL_LEVELS = (100, 500, 1000, 2000)
SHORT_LEVELS = (100, 500)
# the users-held search (bench.users): a full run's, and --short's single small probe per setup
FULL_USERS = users.Search(start_vus=250, max_vus=2000, stage_s=8.0, graceful_s=5.0, budget_s=210.0)
SHORT_USERS = users.Search(start_vus=20, max_vus=2000, stage_s=2.0, graceful_s=2.0, budget_s=25.0)
MAX_USERS_BUDGET_S = 900.0
REHEARSAL_NET = ipaddress.ip_network("10.213.0.0/16")  # nspawn hosts: 10.213.<index>.2
BASELINE_APP = "/var/www/lbstack-sample"  # the app on both plain-apt hosts (their sites' root)
PLAIN_COMPOSER_HOME = "/var/cache/lbstack-bench/composer"  # www-data's Composer home there
PHP_VERSION = "8.2"
BENCH_DIR = Path(__file__).resolve().parent
BASELINE_DIR = BENCH_DIR / "baseline"  # the plain-apt hosts' app setup and the stock site
TUNED_DIR = BENCH_DIR / "tuned"  # the tuned pool's script and configs (@name@ filled in by tuned_files)
TUNED_CONFIGS = {"nginx.conf": "--nginx-conf", "www.conf": "--pool", "php.ini": "--php-ini",
                 "sysctl.conf": "--sysctl"}  # file -> setup-tuned's option
PLACEHOLDER = re.compile(r"@([a-z_]+)@")
# The done-when targets of the benchmark (issue 15). Light endpoint; "2000" is the top level of the
# run (2000 connections in a full run), "100" its lowest.
TARGETS = {
    "error_rate_2000": 0.0,  # lbstack's error rate ...
    "baseline_error_rate_2000": 0.0,  # ... while the stock baseline's is above this: it fails
    "p95_ms_2000": 1500.0,  # lbstack, the seed's p95
    "p95_over_floor_2000": 1.2,  # lbstack's p95 over its queueing floor
    "vs_baseline_2000": 1.6,  # lbstack's goodput over the stock baseline's
    "vs_tuned_2000": 1.2,  # ... over the tuned pool's
    "ceiling_share_2000": 0.95,  # lbstack's goodput over its CPU ceiling
    "vs_tuned_100": 0.95,  # lbstack's goodput over the tuned pool's
    "cpu_vs_baseline_100": 0.8,  # lbstack's CPU s per request over the baseline's
    "converge_over_apt_s": 30.0,
    "noop_s": 5.0,
}


@dataclasses.dataclass(frozen=True)
class Options:
    out: Path
    levels: tuple[int, ...] = FULL_LEVELS
    endpoints: tuple[str, ...] = ("light", "heavy")
    duration_s: float = 20.0
    warmup_s: float = 5.0
    timeout_s: float = 30.0
    keep_hosts: bool = False
    short: bool = False
    users_search: users.Search = FULL_USERS

    def __post_init__(self) -> None:
        if not self.levels or any(level < 1 for level in self.levels):
            raise ValueError("levels must be positive connection counts")
        if list(self.levels) != sorted(set(self.levels)):
            raise ValueError("levels must be increasing and distinct")
        unknown = set(self.endpoints) - set(ENDPOINTS)
        if unknown or not self.endpoints:
            raise ValueError(f"endpoints must be among {', '.join(ENDPOINTS)}")
        if not 0 < self.duration_s <= 120 or not 0 <= self.warmup_s <= 60:
            raise ValueError("duration must be in (0, 120] s and warm-up in [0, 60] s")
        if not 0 < self.timeout_s <= 60:
            raise ValueError("timeout must be in (0, 60] s")
        if self.users_search.budget_s > MAX_USERS_BUDGET_S:
            raise ValueError(f"the users budget must be in [0, {MAX_USERS_BUDGET_S:g}] s per setup")


# ---------------------------------------------------------------------------------------------
# pure part: measurements -> report (unit-tested without hosts)

def run_row(setup: str, endpoint: str, level: int, summary: dict[str, Any], seconds: float,
            stack_cpu_s: float, loadgen_cpu_s: float, machine_cpu_s: float | None = None) -> dict[str, Any]:
    """One measured run as a report row (every figure derived here, so the report is consistent)."""
    requests = summary["requests"]
    ok = summary["ok"]
    by_kind = summary["failed_by_kind"]
    http_5xx = sum(n for kind, n in by_kind.items() if kind.isdigit())
    socket = sum(n for kind, n in by_kind.items() if not kind.isdigit())
    other = requests - ok - http_5xx - socket  # 4xx: neither a success nor a server failure
    return {
        "setup": setup, "endpoint": endpoint, "connections": level,
        "seconds": round(seconds, 3), "requests": requests, "ok": ok,
        "errors": {"5xx": http_5xx, "socket": socket, "other": other,
                   "by_kind": dict(sorted(by_kind.items()))},
        "error_rate": round((requests - ok) / requests, 6) if requests else None,
        "ok_per_s": round(ok / seconds, 1) if seconds > 0 else 0.0,
        "latency_ms": {k: summary["latency_ms"][k] for k in ("p50", "p95", "p99")},
        # Little's law for a closed loop: `level` connections, each always waiting for an answer,
        # finishing requests/seconds a second, spend level / that seconds per request on average
        "queue_floor_ms": round(level * seconds * 1000 / requests, 2) if requests and seconds > 0 else None,
        "stack_cpu_s": round(stack_cpu_s, 3),
        "loadgen_cpu_s": round(loadgen_cpu_s, 3),
        # everything else the machine's CPUs did meanwhile: kernel work outside the cgroups
        # (softirq networking of the veth pair, ksoftirqd), the idle other hosts, this machine
        "other_cpu_s": None if machine_cpu_s is None else round(machine_cpu_s - stack_cpu_s - loadgen_cpu_s, 3),
        "cpu_ms_per_ok": round(stack_cpu_s * 1000 / ok, 4) if ok else None,
        "instances": summary.get("instances", {}),
    }


def add_ceilings(rows: list[dict[str, Any]], cpus: float) -> None:
    """Set ``ceiling_ok_per_s`` and ``ceiling_share`` on every row (see the module docstring)."""
    for row in rows:
        same = [r for r in rows if r["setup"] == row["setup"] and r["endpoint"] == row["endpoint"]]
        base = min(same, key=lambda r: r["connections"])
        row["ceiling_basis_connections"] = base["connections"]
        cost_s = (base["cpu_ms_per_ok"] or 0) / 1000
        left = cpus - row["loadgen_cpu_s"] / row["seconds"] if row["seconds"] > 0 else 0.0
        row["cpus_left"] = round(left, 3)
        if cost_s > 0 and left > 0:
            row["ceiling_ok_per_s"] = round(left / cost_s, 1)
            row["ceiling_share"] = round(row["ok_per_s"] / row["ceiling_ok_per_s"], 3)
        else:
            row["ceiling_ok_per_s"] = row["ceiling_share"] = None


def find(rows: list[dict[str, Any]], setup: str, endpoint: str, level: int) -> dict[str, Any] | None:
    for row in rows:
        if (row["setup"], row["endpoint"], row["connections"]) == (setup, endpoint, level):
            return row
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _p95(row: dict[str, Any] | None) -> float | None:
    return None if row is None else row["latency_ms"]["p95"]


def comparisons(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per endpoint and level, lbstack over each other setup: goodput (successful req/s), CPU per
    successful request and p95; beside them every setup's error rate. A ratio whose input is
    missing is None."""
    out = []
    for endpoint in dict.fromkeys(r["endpoint"] for r in rows):
        for level in sorted({r["connections"] for r in rows if r["endpoint"] == endpoint}):
            ours = find(rows, "lbstack", endpoint, level)
            if not ours:
                continue
            vs = {}
            for other in OTHERS:
                theirs = find(rows, other, endpoint, level)
                vs[other] = {"ok_per_s": _ratio(ours["ok_per_s"], theirs and theirs["ok_per_s"]),
                             "cpu_per_ok": _ratio(ours["cpu_ms_per_ok"], theirs and theirs["cpu_ms_per_ok"]),
                             "p95": _ratio(_p95(ours), _p95(theirs))}
            rates = {s: (find(rows, s, endpoint, level) or {}).get("error_rate") for s in SETUPS}
            out.append({"endpoint": endpoint, "connections": level, "vs": vs, "error_rate": rates})
    return out


def checks(rows: list[dict[str, Any]], tool: dict[str, Any], levels: Sequence[int] = ()) -> list[dict[str, Any]]:
    """Every target (:data:`TARGETS`), each decided from this run's figures: pass, FAIL, or n/a
    (``passed`` None) when a figure it needs was not measured. ``levels``: the run's (default: the
    rows'); the targets are decided at its top and lowest level."""
    out: list[dict[str, Any]] = []
    compare = {"<=": lambda v, t: v <= t, ">=": lambda v, t: v >= t, ">": lambda v, t: v > t}

    def check(name: str, value: float | None, op: str, target: float, detail: str = "") -> None:
        ok = None if value is None else compare[op](value, target)
        out.append({"check": name, "value": value, "target": f"{op} {target:g}", "passed": ok, "detail": detail})

    levels = sorted(levels or {r["connections"] for r in rows})
    top, low = (levels[-1], levels[0]) if levels else (None, None)
    get = {(s, lvl): find(rows, s, "light", lvl) for s in SETUPS for lvl in (top, low)}

    def figure(setup: str, level: int | None, key: str) -> float | None:
        row = get[(setup, level)]
        return None if row is None else row[key]

    ours_top = get[("lbstack", top)]
    at_top, at_low = f"light, {top} conns", f"light, {low} conns"
    check(f"{at_top}: lbstack error rate", figure("lbstack", top, "error_rate"), "<=", TARGETS["error_rate_2000"],
          f"baseline {_pct(figure('baseline', top, 'error_rate'))}, tuned {_pct(figure('tuned', top, 'error_rate'))}")
    check(f"{at_top}: stock baseline error rate (it fails)", figure("baseline", top, "error_rate"), ">",
          TARGETS["baseline_error_rate_2000"])
    check(f"{at_top}: lbstack p95 ms", _p95(ours_top), "<=", TARGETS["p95_ms_2000"])
    floor = figure("lbstack", top, "queue_floor_ms")
    check(f"{at_top}: lbstack p95 / its queueing floor", _ratio(_p95(ours_top), floor), "<=",
          TARGETS["p95_over_floor_2000"], f"p95 {_num(_p95(ours_top), 1)} ms, floor {_num(floor, 1)} ms")
    for other, key in (("baseline", "vs_baseline_2000"), ("tuned", "vs_tuned_2000")):
        check(f"{at_top}: lbstack / {other} goodput",
              _ratio(figure("lbstack", top, "ok_per_s"), figure(other, top, "ok_per_s")), ">=", TARGETS[key])
    check(f"{at_top}: lbstack goodput / its CPU ceiling", None if ours_top is None else ours_top.get("ceiling_share"),
          ">=", TARGETS["ceiling_share_2000"])
    check(f"{at_low}: lbstack / tuned goodput",
          _ratio(figure("lbstack", low, "ok_per_s"), figure("tuned", low, "ok_per_s")), ">=", TARGETS["vs_tuned_100"])
    check(f"{at_low}: lbstack / baseline CPU s per request",
          _ratio(figure("lbstack", low, "cpu_ms_per_ok"), figure("baseline", low, "cpu_ms_per_ok")), "<=",
          TARGETS["cpu_vs_baseline_100"])
    converge_s, apt_s = tool.get("converge_from_bare_s"), tool.get("apt_install_s")
    check("converge from bare - plain apt install, s",
          None if converge_s is None or apt_s is None else round(converge_s - apt_s, 1), "<=",
          TARGETS["converge_over_apt_s"])
    check("no-op re-run, s", tool.get("noop_rerun_s"), "<=", TARGETS["noop_s"],
          f"{tool.get('noop_changed', '?')} operations changed" if tool.get("noop_rerun_s") is not None else "")
    return out


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.2f} %"


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def users_held_text(result: dict[str, Any]) -> str:
    """One setup's search result in words: the users held and what bounds it."""
    held, failed_at = result["held"], result["failed_at"]
    if not result["probes"]:
        return "not probed (time budget)"
    if result["stopped"] == "probe error":
        last = result["probes"][-1]
        return f"{held} (search ended: {last['reason']})" if held else f"no verdict ({last['reason']})"
    shown = f"{held}" if held else "none of the probed"
    if failed_at is not None:
        return f"{shown} (fails at {failed_at})"
    if result["stopped"] == "cap":
        return f"{shown} (the VU cap; not failed)"
    return f"{shown} or more (time budget; not failed)"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: setups, runs, lbstack's ratios, users held, checks, tool speed."""
    meta = report["meta"]
    lines = [f"# lbstack bench ({meta['mode']} mode, {meta['finished']})", "",
             f"Machine: {meta['cpus']:g} CPUs. Load generator: bench.load (HTTP/1.1 keep-alive, GET), "
             f"{meta['duration_s']:g} s per run after a {meta['warmup_s']:g} s warm-up, timeout "
             f"{meta['timeout_s']:g} s, the setups one at a time in a rotating order. Goodput: successful "
             "req/s. Queueing floor: connections / (requests per second), in ms: Little's law's mean time per "
             "request of that many connections. CPU: each rehearsal host's cgroup (all its units). CPU ceiling: "
             "(CPUs - load generator CPU/s) / (stack CPU per answer at the lowest level). Other CPU/s: "
             "what the machine's CPUs did besides the stack and the load generator (kernel networking "
             "outside the cgroups, the idle other hosts, this machine).", "",
             "| setup | what |", "|---|---|"]
    lines += [f"| {setup} | {SETUP_TITLES[setup]} |" for setup in SETUPS]
    tuned = meta.get("tuned") or {}
    if tuned:
        lines += ["", "Tuned pool: " + ", ".join(f"{key} {value}" for key, value in tuned.items()) + "."]
    lines.append("")
    for endpoint in meta["endpoints"]:
        lines += [f"## {endpoint}: `{ENDPOINTS[endpoint]['path']}` ({ENDPOINTS[endpoint]['title']})", "",
                  "| conns | setup | ok req/s | error rate | 5xx | socket | p50 ms | p95 ms | p99 ms | floor ms "
                  "| CPU ms/req | CPU ceiling req/s | of ceiling | other CPU/s |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for level in meta["levels"]:
            lines += [_run_line(r) for setup in SETUPS if (r := find(report["runs"], setup, endpoint, level))]
        lines.append("")
        lines += _ratios_table([c for c in report["comparisons"] if c["endpoint"] == endpoint])
    lines += users_markdown(report.get("users") or {})
    lines += ["## Checks", "", "| check | value | target | result |", "|---|---:|---|---|"]
    for c in report["checks"]:
        result = {True: "pass", False: "**FAIL**", None: "n/a (not measured)"}[c["passed"]]
        detail = f" ({c['detail']})" if c["detail"] else ""
        lines.append(f"| {c['check']}{detail} | {c['value'] if c['value'] is not None else '-'} "
                     f"| {c['target']} | {result} |")
    tool = report["tool_speed"]
    lines += ["", "## Tool speed (same bare rootfs for every host)", "", "| step | seconds |", "|---|---:|"]
    for key, label in TOOL_LABELS.items():
        if tool.get(key) is not None:
            lines.append(f"| {label} | {tool[key]:.1f} |")
    if tool.get("packages"):
        lines += ["", f"Packages: {' '.join(tool['packages'])}"]
    if tool.get("worker_memory"):
        lines += ["", "## Warmed PHP-FPM workers (after the load, from /proc/PID/smaps_rollup)", ""]
        lines += [f"- {setup}: {memory_text(m)}" for setup, m in tool["worker_memory"].items()]
    return "\n".join(lines) + "\n"


RATIO_LABELS = {"ok_per_s": "goodput", "cpu_per_ok": "CPU per req", "p95": "p95"}  # comparisons()' "vs"


def _run_line(r: dict[str, Any]) -> str:
    """One run as a row of the runs table."""
    lat = r["latency_ms"]
    share = "-" if r["ceiling_share"] is None else f"{r['ceiling_share'] * 100:.0f} %"
    other = None if r.get("other_cpu_s") is None else r["other_cpu_s"] / r["seconds"]
    cells = [str(r["connections"]), r["setup"], _num(r["ok_per_s"]), _pct(r["error_rate"]), str(r["errors"]["5xx"]),
             str(r["errors"]["socket"]), _num(lat["p50"], 1), _num(lat["p95"], 1), _num(lat["p99"], 1),
             _num(r["queue_floor_ms"], 1), _num(r["cpu_ms_per_ok"], 3), _num(r["ceiling_ok_per_s"]), share,
             _num(other, 2)]
    return "| " + " | ".join(cells) + " |"


def _ratios_table(comparisons_: list[dict[str, Any]]) -> list[str]:
    """lbstack over each other setup per level: goodput, CPU per request, p95."""
    if not comparisons_:
        return []
    columns = [(key, other) for key in RATIO_LABELS for other in OTHERS]
    lines = ["lbstack over the others (its price for isolation and rolling updates, or its gain):", "",
             "| conns | " + " | ".join(f"{RATIO_LABELS[key]} / {other}" for key, other in columns) + " |",
             "|---:|" + "---:|" * len(columns)]
    for c in comparisons_:
        cells = [str(c["connections"])] + [_num(c["vs"][other][key], 2) for key, other in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def users_markdown(section: dict[str, Any]) -> list[str]:
    """The users-held section: one line per setup, then every probe."""
    lines = ["## Users held (k6, `k6/users-held.js`)", ""]
    if section.get("skipped"):
        return lines + [f"Not run: {section['skipped']}.", ""]
    search = section["search"]
    lines += [f"The largest peak of virtual users (exam takers: the exam page, the session, three random "
              f"questions, the health check, think 0.1-1 s) whose k6 run stays within the seed's thresholds "
              f"(p95 < {users.SEED_P95_MS:g} ms, failed < {users.SEED_FAILED_RATE * 100:g} %, and the script's "
              f"others): ramp to half, to the peak, held, down, {search['stage_s']:g} s each; from "
              f"{search['start_vus']} users, x{search['factor']} while passing (at most {search['max_vus']}), then "
              f"bisecting; each setup within {search['budget_s']:g} s (a probe at most "
              f"{search['probe_bound_s']:g} s). Users search: {section['seconds']:.0f} s in all.", "",
              "| setup | users held | probes | seconds | search ended |", "|---|---|---:|---:|---|"]
    for setup, result in section["setups"].items():
        lines.append(f"| {setup} | {users_held_text(result)} | {len(result['probes'])} | {result['seconds']:.0f} "
                     f"| {users.STOP_REASONS.get(result['stopped'] or '', result['stopped'] or '-')} |")
    lines += ["", "| setup | VUs | k6 exit | p95 ms | failed | req/s | verdict |", "|---|---:|---:|---:|---:|---:|---|"]
    for setup, result in section["setups"].items():
        for p in result["probes"]:
            exit_code = "killed" if p["exit_code"] is None else p["exit_code"]
            lines.append(f"| {setup} | {p['vus']} | {exit_code} | {_num(p['p95_ms'], 1)} | {_pct(p['failed_rate'])} "
                         f"| {_num(p['req_per_s'])} | {users.VERDICTS[p['passed']]}: {p['reason']} |")
    return lines + [""]


TOOL_LABELS = {
    "apt_install_s": "baseline: plain `apt-get update && apt-get install` of the same packages",
    "baseline_app_s": "baseline: sample app, database and default site (not part of the comparison)",
    "tuned_apt_install_s": "tuned: the same plain apt install",
    "tuned_setup_s": "tuned: its configs, then the same sample app (not part of the comparison)",
    "converge_from_bare_s": "lbstack: `deploy/full.py` from bare",
    "noop_rerun_s": "lbstack: no-op re-run of `deploy/full.py`",
    "drift_s": "lbstack: `lbstack drift`",
}
COLORS = {"baseline": "tab:gray", "tuned": "tab:orange", "lbstack": "tab:blue"}


def plot(report: dict[str, Any], path: Path) -> dict[str, dict[str, list[float]]]:
    """Per endpoint: goodput (the CPU ceilings dashed), p95 latency, and beside them the error
    rate of every setup at each level (a setup failing half its requests fast looks fast otherwise).
    Returns what it drew: each panel's title -> each line's label -> its y values."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    endpoints = report["meta"]["endpoints"]
    fig, axes = plt.subplots(len(endpoints), 3, figsize=(16, 4 * len(endpoints)), squeeze=False)
    for i, endpoint in enumerate(endpoints):
        thr, p95, err = axes[i]
        for setup in SETUPS:
            rows = sorted((r for r in report["runs"] if r["setup"] == setup and r["endpoint"] == endpoint),
                          key=lambda r: r["connections"])
            if not rows:
                continue
            x = [r["connections"] for r in rows]
            thr.plot(x, [r["ok_per_s"] for r in rows], "o-", color=COLORS[setup], label=f"{setup} ok req/s")
            ceiling = [r.get("ceiling_ok_per_s") for r in rows]
            if all(c is not None for c in ceiling):
                thr.plot(x, ceiling, "--", color=COLORS[setup], alpha=0.7, label=f"{setup} CPU ceiling")
            p95.plot(x, [r["latency_ms"]["p95"] or 0 for r in rows], "o-", color=COLORS[setup], label=f"{setup} p95")
            err.plot(x, [(r["error_rate"] or 0) * 100 for r in rows], "s-", color=COLORS[setup],
                     label=f"{setup} errors")
        p95.axhline(TARGETS["p95_ms_2000"], color="tab:red", linestyle=":", label="1.5 s")
        thr.set_title(f"{endpoint}: successful requests per second")
        p95.set_title(f"{endpoint}: p95 latency of the answered (ms)")
        err.set_title(f"{endpoint}: failed requests (%)")
        err.set_ylim(top=100)
        for ax in (thr, p95, err):
            ax.set_xlabel("concurrent connections")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(f"lbstack bench ({report['meta']['mode']}), {report['meta']['finished']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    drawn = {ax.get_title(): {line.get_label(): [float(y) for y in line.get_ydata()] for line in ax.get_lines()}
             for ax in axes.flat}
    plt.close(fig)
    return drawn


def write_report(report: dict[str, Any], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "markdown": out / "bench.md", "png": out / "bench.png"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["markdown"].write_text(markdown(report))
    plot(report, paths["png"])
    return paths


def users_section(search: users.Search, results: dict[str, dict[str, Any]], seconds: float,
                  skipped: str | None = None) -> dict[str, Any]:
    """The report's users-held section: the search's parameters and each setup's result."""
    return {"search": {**dataclasses.asdict(search), "probe_bound_s": search.probe_bound_s()},
            "setups": results, "seconds": round(seconds, 1), "skipped": skipped}


def build_report(options: Options, cpus: float, rows: list[dict[str, Any]], tool: dict[str, Any],
                 hosts: dict[str, str], users_held: dict[str, Any] | None = None,
                 tuned: dict[str, Any] | None = None) -> dict[str, Any]:
    add_ceilings(rows, cpus)
    return {
        "meta": {"mode": "short" if options.short else "full", "cpus": cpus, "levels": list(options.levels),
                 "endpoints": list(options.endpoints), "duration_s": options.duration_s,
                 "warmup_s": options.warmup_s, "timeout_s": options.timeout_s, "hosts": hosts,
                 "setups": list(SETUPS), "tuned": tuned or {},
                 "finished": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                 "paths": {e: ENDPOINTS[e]["path"] for e in options.endpoints}},
        "runs": rows,
        "comparisons": comparisons(rows),
        "checks": checks(rows, tool, options.levels),
        "users": users_held or users_section(options.users_search, {}, 0.0, "the run ended before the users search"),
        "tool_speed": tool,
    }


# ---------------------------------------------------------------------------------------------
# the plain-apt hosts' setup: argument lists and files (pure), then the host side

def packages(needs_composer: bool = True) -> list[str]:
    """Every Debian package the full stack's deploy installs (the plain-apt comparison): Composer
    too when the release needs it (the sample app does: composer.json, no vendor/)."""
    from lbstack import packages as stack_packages

    names = stack_packages.everything(Settings())
    return sorted(set(names) | set(stack_packages.COMPOSER if needs_composer else ()))


def tuned_sizes(cpus: int, settings: Settings | None = None) -> dict[str, int]:
    """The tuned pool's sizes for a host of ``cpus`` CPUs, lbstack's own numbers where it has them:
    ``php_workers_per_cpu`` static workers per CPU in the one pool (a worker waiting on Redis or
    MariaDB uses no CPU), lbstack's OPcache memory per master, nginx ``worker_connections`` for
    ``lb_max_clients`` clients and their upstream connections in any one worker (with
    ``worker_processes auto`` the kernel does not spread the clients evenly), twice that in open
    files, and lbstack's listen backlog (``somaxconn``) for a burst of every client at once."""
    s = settings or Settings()
    connections = stack_plan.nginx_worker_connections(s.lb_max_clients, 1)
    backlog = stack_plan.listen_backlog(s.lb_max_clients)
    return {"max_children": s.php_workers_per_cpu * cpus, "workers_per_cpu": s.php_workers_per_cpu,
            "opcache_mib": stack_plan.OPCACHE_MIB, "worker_connections": connections,
            "rlimit_nofile": 2 * connections, "backlog": backlog, "somaxconn": backlog}


def fill(text: str, values: dict[str, Any]) -> str:
    """``text`` with every ``@name@`` replaced by ``values[name]``; ValueError naming any missing."""
    missing = sorted({name for name in PLACEHOLDER.findall(text) if name not in values})
    if missing:
        raise ValueError(f"no value for {', '.join('@' + m + '@' for m in missing)}")
    return PLACEHOLDER.sub(lambda m: str(values[m[1]]), text)


def tuned_files(sizes: dict[str, Any]) -> dict[str, bytes]:
    """The tuned host's files (``bench/tuned/``) with its sizes filled in: its site and configs."""
    names = ["site.conf", *TUNED_CONFIGS]
    return {name: fill((TUNED_DIR / name).read_text(), sizes).encode() for name in names}


REMOTE = "/root/lbstack-bench"  # where the plain-apt hosts' scripts and files are uploaded


def setup_app_command(site: str, needs_composer: bool) -> list[str]:
    """``setup-app`` for a plain-apt host whose site file is ``site`` (an uploaded path): the app
    built as lbstack's deploy builds a release (Composer's optimized classmap, Laravel's caches)."""
    command = ["bash", f"{REMOTE}/setup-app", "--archive", f"{REMOTE}/sample-app.tar.gz", "--app", BASELINE_APP,
               "--site", site]
    command += [arg for sub in layout.STORAGE_DIRS for arg in ("--storage", sub)]
    command += [arg for what in release.ARTISAN_CACHES for arg in ("--cache", what)]
    if needs_composer:
        command += ["--composer-home", PLAIN_COMPOSER_HOME, "--", *release.COMPOSER_INSTALL]
    return command


def setup_tuned_command() -> list[str]:
    """``setup-tuned`` with the uploaded configs of :func:`tuned_files`."""
    command = ["bash", f"{REMOTE}/setup-tuned", "--php-version", PHP_VERSION]
    return command + [arg for name, option in TUNED_CONFIGS.items() for arg in (option, f"{REMOTE}/{name}")]


def apt_install_command(names: Sequence[str]) -> str:
    """The plain apt install of ``names``, quiet (one shell line: apt-get's environment and output)."""
    return ("export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null && "
            + shlex.join(["apt-get", "install", "-y", "-q", "--no-install-recommends", *names]) + " >/dev/null")


def _check_target(address: str) -> None:
    if ipaddress.ip_address(address) not in REHEARSAL_NET:
        raise RuntimeError(f"refusing to send load to {address}: not a rehearsal container address")


def host_cpu_seconds(info) -> float:
    """CPU seconds used so far by every process of the rehearsal host (its cgroup on this machine)."""
    for directory in info.cgroups:
        path = Path(directory)
        if (path / "cpuacct.usage").exists():
            return int((path / "cpuacct.usage").read_text()) / 1e9
        if (path / "cpu.stat").exists() and "cpuacct" not in path.parts:
            for line in (path / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
    raise RuntimeError(f"no CPU accounting found for {info.name} in {info.cgroups}")


def machine_cpu_seconds() -> float:
    """CPU seconds this machine's CPUs spent busy so far (/proc/stat: all but idle and iowait)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(v) for v in fields[:8]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


# each FPM worker's (not master's) resident and proportional set size, in kB
WORKER_MEMORY = ("for p in $(pgrep -f '^php-fpm: pool '); do "
                 "awk -v p=$p '/^Rss:/ {r=$2} /^Pss:/ {s=$2} END {print p, r, s}' /proc/$p/smaps_rollup; done")


def worker_memory(info) -> dict[str, Any]:
    """The warmed PHP-FPM workers' memory on a host: how many, RSS and PSS (MiB) median and max.
    RSS counts the OPcache and code pages every worker shares; PSS divides them among their
    sharers (what one more worker costs is in between)."""
    rss, pss = [], []
    for line in _ssh(info, WORKER_MEMORY, timeout_s=60).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            rss.append(int(parts[1]) / 1024)
            pss.append(int(parts[2]) / 1024)
    return {"workers": len(rss), "rss_mib": _spread(rss), "pss_mib": _spread(pss)}


def _spread(values: list[float]) -> dict[str, float | None]:
    return {"p50": round(statistics.median(values), 1) if values else None,
            "max": round(max(values), 1) if values else None}


def memory_text(m: dict[str, Any]) -> str:
    return (f"{m['workers']} workers, RSS median {m['rss_mib']['p50']} MiB (max {m['rss_mib']['max']}), "
            f"PSS median {m['pss_mib']['p50']} MiB (max {m['pss_mib']['max']})")


def _ssh(info, command: str, timeout_s: float = 600.0) -> str:
    from lbstack.rehearsal import ssh_run

    code, out, err = ssh_run(info, command, timeout_s=timeout_s)
    if code != 0:
        raise RuntimeError(f"{info.name}: `{command[:120]}` exited {code}: {(err or out)[-2000:]}")
    return out


def _upload(info, files: dict[str, bytes]) -> None:
    """Write ``files`` (remote path -> content) on the host, in one ssh connection."""
    from lbstack.rehearsal.common import ssh_connect

    client = ssh_connect(info)
    try:
        with client.open_sftp() as sftp:
            for dest, data in files.items():
                with sftp.open(dest, "wb") as handle:
                    handle.write(data)
    finally:
        client.close()


def _sample_app() -> release.Build:
    """The sample app as lbstack's deploy packs it (``release.build``): the same bytes on every host."""
    return release.build("sample")


def pyinfra_run(name: str, deploy: str = "deploy/full.py", settings_file: Path | None = None,
                timeout_s: float = 1800) -> tuple[float, str]:
    """Run ``deploy`` on rehearsal host ``name`` (:func:`lbstack.rehearsal.converge.pyinfra`);
    returns (seconds, pyinfra's stderr). RuntimeError with the output's tail when it fails."""
    run = converge.pyinfra(name, deploy, settings_file, timeout_s=timeout_s)
    if not run.ok:
        raise RuntimeError(f"{deploy} failed on {name}:\n{run.stderr[-3000:]}")
    return run.seconds, run.stderr


def changed_ops(stderr: str) -> int | str:
    """Operations that changed something, from pyinfra's "Grand total" line (its Success column)."""
    return converge.PyinfraRun(0, "", stderr, 0.0).changed()


def _settings_file(out: Path) -> Path:
    """lbstack's settings for the bench host: planned for this machine (no capacity override)."""
    path = out / "lbstack-settings.yaml"
    path.write_text("# lbstack bench: plan for this machine's own CPUs and memory\n"
                    "ntp_servers: [127.0.0.1]\n")
    return path


def measure(info, path: str, level: int, duration_s: float, timeout_s: float,
            setup: str, endpoint: str) -> dict[str, Any]:
    target = f"http://{info.address}"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    machine_before, cpu_before, started = machine_cpu_seconds(), host_cpu_seconds(info), time.monotonic()
    result = load.run(target, duration_s=duration_s, connections=level, paths=[path], timeout_s=timeout_s)
    cpu_after, machine_after = host_cpu_seconds(info), machine_cpu_seconds()
    after = resource.getrusage(resource.RUSAGE_SELF)
    loadgen = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    seconds = result.duration_s or (time.monotonic() - started)
    return run_row(setup, endpoint, level, result.summary(), seconds, cpu_after - cpu_before, loadgen,
                   machine_after - machine_before)


def _plain_apt(info, names: list[str]) -> float:
    """The plain apt install on a bare host; returns its seconds."""
    t0 = time.monotonic()
    _ssh(info, apt_install_command(names), timeout_s=1800)
    return round(time.monotonic() - t0, 1)


def _setup_app(info, build: release.Build, site: bytes, extra: dict[str, bytes] | None = None,
               before: list[str] | None = None) -> None:
    """Upload the release, the site and ``setup-app`` (and ``extra`` files), run ``before`` (an
    argument list) first if given, then ``setup-app``."""
    files = {f"{REMOTE}/sample-app.tar.gz": build.archive.read_bytes(), f"{REMOTE}/site.conf": site,
             f"{REMOTE}/setup-app": (BASELINE_DIR / "setup-app").read_bytes(), **(extra or {})}
    _ssh(info, shlex.join(["mkdir", "-p", REMOTE]))
    _upload(info, files)
    if before:
        _ssh(info, shlex.join(before), timeout_s=600)
    _ssh(info, shlex.join(setup_app_command(f"{REMOTE}/site.conf", build.needs_composer)), timeout_s=600)


def _setup_tuned(info, build: release.Build) -> dict[str, Any]:
    """The tuned pool on a plain-apt host: sized for the host's own CPUs, its configs, then the
    app. Returns its sizes and the kernel's live ``somaxconn`` there."""
    sizes = tuned_sizes(int(_ssh(info, shlex.join(["nproc"])).strip()))
    files = tuned_files(sizes)
    extra = {f"{REMOTE}/{name}": files[name] for name in TUNED_CONFIGS}
    extra[f"{REMOTE}/setup-tuned"] = (TUNED_DIR / "setup-tuned").read_bytes()
    _setup_app(info, build, files["site.conf"], extra, before=setup_tuned_command())
    live = _ssh(info, shlex.join(["sysctl", "-n", "net.core.somaxconn"])).strip()
    return {**sizes, "somaxconn_live": int(live) if live.isdigit() else live}


def _load_phase(options: Options, hosts: dict[str, Any], step: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every endpoint and level on every setup, one at a time, the order rotating per level."""
    rows: list[dict[str, Any]] = []
    for number, endpoint in enumerate(options.endpoints):
        path = ENDPOINTS[endpoint]["path"]
        for i, level in enumerate(options.levels):
            for setup in rotated(SETUPS, i + number):
                info = hosts[setup]
                if options.warmup_s > 0:
                    load.run(f"http://{info.address}", duration_s=options.warmup_s, connections=level,
                             paths=[path], timeout_s=options.timeout_s)
                row = measure(info, path, level, options.duration_s, options.timeout_s, setup, endpoint)
                rows.append(row)
                step(f"{endpoint} {level:>5} conns {setup:<8}: {row['ok_per_s']:>8.1f} ok/s, "
                     f"errors {_pct(row['error_rate'])}, p95 {row['latency_ms']['p95']} ms, "
                     f"CPU {row['cpu_ms_per_ok']} ms/req")
    return rows


def rotated(items: Sequence[str], by: int) -> list[str]:
    """``items`` starting at position ``by`` (mod its length): each takes every place in turn."""
    k = by % len(items)
    return [*items[k:], *items[:k]]


def _users_phase(options: Options, hosts: dict[str, Any], k6: Path | None,
                 step: Callable[[str], None]) -> dict[str, Any]:
    """The users-held search on every setup (:mod:`bench.users`); the report's section."""
    search = options.users_search
    if k6 is None or search.budget_s <= 0:
        return users_section(search, {}, 0.0, "--users-budget 0")
    instances = {setup: Settings().instances if setup == "lbstack" else 0 for setup in SETUPS}
    workdir = options.out / "users"
    t0 = time.monotonic()

    def probe(setup: str, vus: int) -> users.Probe:
        return users.run_probe(k6, hosts[setup].address, vus, search, instances[setup], workdir, setup)

    step(f"users held: k6 {k6}, from {search.start_vus} VUs, at most {search.budget_s:g} s per setup")
    results = users.search_all(list(SETUPS), search, probe, echo=step)
    seconds = time.monotonic() - t0
    for setup, result in results.items():
        step(f"users held {setup:<8}: {users_held_text(result)}")
    step(f"users held: {seconds:.0f} s in all")
    return users_section(search, results, seconds)


def run(options: Options, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Boot, set up, load, search the users held, report, tear down. Returns the report (also
    written to ``options.out``)."""
    from lbstack.rehearsal import build_rootfs, down, reap_stale, teardown_on_signal, up

    options.out.mkdir(parents=True, exist_ok=True)
    k6 = users.k6_binary() if options.users_search.budget_s > 0 else None  # before any host: a missing k6 fails now
    for gone in reap_stale():  # hosts of runs (bench or tests) whose process is gone
        echo(f"removed stale rehearsal host {gone.name} (owner pid {gone.owner_pid} is gone)")
    try:
        load.ensure_open_files(max(max(options.levels), 2 * options.users_search.max_vus if k6 else 0))
    except ValueError as error:
        raise RuntimeError(str(error)) from None
    tag = f"{os.getpid()}"
    names = {"baseline": f"bench-base-{tag}", "tuned": f"bench-tuned-{tag}", "lbstack": f"bench-lbstack-{tag}"}
    build = _sample_app()
    tool: dict[str, Any] = {"packages": packages(build.needs_composer)}
    rows: list[dict[str, Any]] = []
    tuned: dict[str, Any] = {}
    users_held: dict[str, Any] | None = None
    cpus = float(len(os.sched_getaffinity(0)))
    started = time.monotonic()

    def step(text: str) -> None:
        echo(f"[{time.monotonic() - started:6.0f} s] {text}")

    # SIGTERM/SIGINT/SIGHUP raise Interrupted here, so the finally below tears the hosts down;
    # kept hosts (--keep-hosts) belong to nobody: never reaped as stale
    with teardown_on_signal():
        try:
            step("golden rootfs (cached after the first build)")
            build_rootfs()
            hosts = {}
            for setup in SETUPS:
                hosts[setup] = up(names[setup], owner=None if options.keep_hosts else "self")
                step(f"{setup} host {names[setup]} up at {hosts[setup].address}")
            for info in hosts.values():
                _check_target(info.address)  # before any traffic, warm-ups included

            tool["apt_install_s"] = _plain_apt(hosts["baseline"], tool["packages"])
            step(f"baseline: plain apt-get install of {len(tool['packages'])} packages: {tool['apt_install_s']} s")
            t0 = time.monotonic()
            _setup_app(hosts["baseline"], build, (BASELINE_DIR / "default-site.conf").read_bytes())
            tool["baseline_app_s"] = round(time.monotonic() - t0, 1)
            step(f"baseline: sample app on the stock nginx site and www pool: {tool['baseline_app_s']} s")

            tool["tuned_apt_install_s"] = _plain_apt(hosts["tuned"], tool["packages"])
            step(f"tuned: plain apt-get install: {tool['tuned_apt_install_s']} s")
            t0 = time.monotonic()
            tuned = _setup_tuned(hosts["tuned"], build)
            tool["tuned_setup_s"] = round(time.monotonic() - t0, 1)
            step(f"tuned: one static pool of {tuned['max_children']} workers, sample app: {tool['tuned_setup_s']} s")

            ours = hosts["lbstack"]
            settings = _settings_file(options.out)
            seconds, _ = pyinfra_run(ours.name, "deploy/full.py", settings)
            tool["converge_from_bare_s"] = round(seconds, 1)
            step(f"lbstack: converge from bare: {tool['converge_from_bare_s']} s")
            seconds, stderr = pyinfra_run(ours.name, "deploy/full.py", settings)
            tool["noop_rerun_s"], tool["noop_changed"] = round(seconds, 1), changed_ops(stderr)
            step(f"lbstack: no-op re-run: {tool['noop_rerun_s']} s ({tool['noop_changed']} changed)")
            t0 = time.monotonic()
            drift = subprocess.run([sys.executable, "-c", "from lbstack.cli import main; main()", "drift", "inventories/rehearsal.py"],
                                   cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                                   env={**os.environ, "LBSTACK_REHEARSAL_HOSTS": ours.name,
                                        "LBSTACK_SETTINGS": str(settings)})
            tool["drift_s"], tool["drift_exit"] = round(time.monotonic() - t0, 1), drift.returncode
            step(f"lbstack: drift check: {tool['drift_s']} s (exit {drift.returncode})")

            rows = _load_phase(options, hosts, step)
            tool["worker_memory"] = {setup: worker_memory(hosts[setup]) for setup in SETUPS}
            step("warmed PHP-FPM workers (after the load): " + "; ".join(
                f"{setup} {memory_text(m)}" for setup, m in tool["worker_memory"].items()))
            users_held = _users_phase(options, hosts, k6, step)
        finally:
            if not options.keep_hosts:
                for name in names.values():
                    try:
                        down(name)
                    except Exception as error:  # noqa: BLE001 - report and go on tearing down
                        echo(f"teardown of {name} failed: {error}")
        report = build_report(options, cpus, rows, tool, dict(names), users_held, tuned)
        paths = write_report(report, options.out)
        step(f"report: {', '.join(str(p) for p in paths.values())}")
        return report


def _levels(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--levels: {text!r} is not a comma-separated list of connection counts") from None
