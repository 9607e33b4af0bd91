"""``lbstack bench``: the same load against an untuned baseline and the lbstack stack, side by side.

Two rehearsal hosts are booted from the same golden rootfs (the same bare Debian 12):

- **baseline**: ``apt-get install`` of the packages lbstack installs (timed: the "plain apt"
  figure), then the sample app served the way a tutorial does it: Debian's stock ``nginx.conf``,
  the default site pointed at the app's ``public/`` with its PHP block uncommented, the stock
  ``www`` PHP-FPM pool, stock MariaDB and Redis, the app's own defaults in ``.env``;
- **lbstack**: ``deploy/full.py`` from bare (timed), then the no-op re-run and ``lbstack drift``
  (timed). Its plan is made for this machine (host facts), not for the 8 vCPU production size.

Then, for each endpoint (``light``: the random-question API, a Redis cache hit; ``heavy``: the
exam page, five queries and a rendered view) and each connection level, both setups get the same
load from :mod:`bench.load`, one after the other (the order alternates per level), each run
preceded by a warm-up. Measured per run: successful answers per second, errors by kind, p50/p95/p99
of the answered requests, the stack's CPU seconds (the host's cgroup, read on this machine: every
unit of the rehearsal host, nothing of the load generator) per successful answer, and the load
generator's own CPU. The **CPU ceiling** of a setup at a level is the answers per second that the
cores left over by the load generator could serve at the CPU cost the setup showed at the lowest
level: ``(cpus - load generator CPU s per s) / (stack CPU s per answer at the lowest level)``.

Everything is bounded: fixed durations, per-request timeouts, ssh/pyinfra timeouts; traffic goes
only to the two rehearsal hosts (10.213.x.2 in network namespaces this machine made); both hosts
are torn down at the end (``--keep-hosts`` keeps them). Writes ``bench.json``, ``bench.md`` and
``bench.png`` to the output directory.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import load
from lbstack import REPO_ROOT, layout
from lbstack.rehearsal import converge

SETUPS = ("baseline", "lbstack")
ENDPOINTS = {
    "light": {"path": "/api/questions/random", "title": "random-question API (Redis cache hit)"},
    "heavy": {"path": "/exam", "title": "exam page (5 queries, rendered view)"},
}
FULL_LEVELS = (100, 500, 1000, 2000)
SHORT_LEVELS = (100, 500)
REHEARSAL_NET = ipaddress.ip_network("10.213.0.0/16")  # nspawn hosts: 10.213.<index>.2
BASELINE_APP = "/var/www/lbstack-sample"
PHP_VERSION = "8.2"
# The done-when targets of the benchmark (issue: "Load tests and the performance benchmark").
TARGETS = {
    "error_rate_2000": 0.0,  # lbstack, light endpoint, 2000 connections
    "p95_ms_2000": 1500.0,
    "ratio_2000": 1.4,  # lbstack req/s over baseline req/s
    "ratio_100": 0.9,
    "ceiling_share_2000": 0.9,  # lbstack req/s over its CPU ceiling
    "cpu_ratio_100": 0.8,  # lbstack CPU s per request over baseline's
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
        "stack_cpu_s": round(stack_cpu_s, 3),
        "loadgen_cpu_s": round(loadgen_cpu_s, 3),
        # everything else the machine's CPUs did meanwhile: kernel work outside both cgroups
        # (softirq networking of the veth pair, ksoftirqd), the idle other host, this machine
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


def comparisons(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """lbstack over baseline per endpoint and level: throughput and CPU per answer."""
    out = []
    for endpoint in dict.fromkeys(r["endpoint"] for r in rows):
        for level in sorted({r["connections"] for r in rows if r["endpoint"] == endpoint}):
            ours, theirs = find(rows, "lbstack", endpoint, level), find(rows, "baseline", endpoint, level)
            if ours and theirs:
                out.append({"endpoint": endpoint, "connections": level,
                            "ok_per_s_ratio": _ratio(ours["ok_per_s"], theirs["ok_per_s"]),
                            "cpu_per_ok_ratio": _ratio(ours["cpu_ms_per_ok"], theirs["cpu_ms_per_ok"]),
                            "baseline_error_rate": theirs["error_rate"], "lbstack_error_rate": ours["error_rate"]})
    return out


def checks(rows: list[dict[str, Any]], tool: dict[str, Any]) -> list[dict[str, Any]]:
    """The done-when targets that this run's figures can decide (others are marked not measured)."""
    out: list[dict[str, Any]] = []

    def check(name: str, value: float | None, op: str, target: float, detail: str = "") -> None:
        ok = None if value is None else (value <= target if op == "<=" else value >= target)
        out.append({"check": name, "value": value, "target": f"{op} {target:g}", "passed": ok, "detail": detail})

    top = max((r["connections"] for r in rows), default=0)
    low = min((r["connections"] for r in rows), default=0)
    ours_top, base_top = find(rows, "lbstack", "light", top), find(rows, "baseline", "light", top)
    ours_low, base_low = find(rows, "lbstack", "light", low), find(rows, "baseline", "light", low)
    if ours_top and base_top:
        check(f"light, {top} conns: lbstack error rate", ours_top["error_rate"], "<=", TARGETS["error_rate_2000"],
              f"baseline: {_pct(base_top['error_rate'])}")
        check(f"light, {top} conns: lbstack p95 ms", ours_top["latency_ms"]["p95"], "<=", TARGETS["p95_ms_2000"])
        check(f"light, {top} conns: lbstack / baseline req/s", _ratio(ours_top["ok_per_s"], base_top["ok_per_s"]),
              ">=", TARGETS["ratio_2000"])
        check(f"light, {top} conns: lbstack req/s / its CPU ceiling", ours_top.get("ceiling_share"),
              ">=", TARGETS["ceiling_share_2000"])
    if ours_low and base_low:
        check(f"light, {low} conns: lbstack / baseline req/s", _ratio(ours_low["ok_per_s"], base_low["ok_per_s"]),
              ">=", TARGETS["ratio_100"])
        check(f"light, {low} conns: lbstack / baseline CPU s per request",
              _ratio(ours_low["cpu_ms_per_ok"], base_low["cpu_ms_per_ok"]), "<=", TARGETS["cpu_ratio_100"])
    if tool.get("converge_from_bare_s") is not None and tool.get("apt_install_s") is not None:
        check("converge from bare - plain apt install, s",
              round(tool["converge_from_bare_s"] - tool["apt_install_s"], 1), "<=", TARGETS["converge_over_apt_s"])
    if tool.get("noop_rerun_s") is not None:
        check("no-op re-run, s", tool["noop_rerun_s"], "<=", TARGETS["noop_s"],
              f"{tool.get('noop_changed', '?')} operations changed")
    return out


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.2f} %"


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: runs, comparisons, checks, tool speed."""
    meta = report["meta"]
    lines = [f"# lbstack bench ({meta['mode']} mode, {meta['finished']})", "",
             f"Machine: {meta['cpus']:g} CPUs. Load generator: bench.load (HTTP/1.1 keep-alive, GET), "
             f"{meta['duration_s']:g} s per run after a {meta['warmup_s']:g} s warm-up, timeout "
             f"{meta['timeout_s']:g} s. CPU: each rehearsal host's cgroup (all its units). CPU ceiling: "
             "(CPUs - load generator CPU/s) / (stack CPU per answer at the lowest level). Other CPU/s: "
             "what the machine's CPUs did besides the stack and the load generator (kernel networking "
             "outside both cgroups, the idle other host, this machine).", ""]
    for endpoint in meta["endpoints"]:
        lines += [f"## {endpoint}: `{ENDPOINTS[endpoint]['path']}` ({ENDPOINTS[endpoint]['title']})", "",
                  "| conns | setup | ok req/s | error rate | 5xx | socket | p50 ms | p95 ms | p99 ms "
                  "| CPU ms/req | CPU ceiling req/s | of ceiling | other CPU/s |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for level in meta["levels"]:
            for setup in SETUPS:
                r = find(report["runs"], setup, endpoint, level)
                if not r:
                    continue
                lat = r["latency_ms"]
                share = "-" if r["ceiling_share"] is None else f"{r['ceiling_share'] * 100:.0f} %"
                lines.append(
                    f"| {level} | {setup} | {_num(r['ok_per_s'])} | {_pct(r['error_rate'])} | {r['errors']['5xx']} "
                    f"| {r['errors']['socket']} | {_num(lat['p50'], 1)} | {_num(lat['p95'], 1)} | {_num(lat['p99'], 1)} "
                    f"| {_num(r['cpu_ms_per_ok'], 3)} | {_num(r['ceiling_ok_per_s'])} | {share} "
                    f"| {_num(None if r.get('other_cpu_s') is None else r['other_cpu_s'] / r['seconds'], 2)} |")
        lines.append("")
        comp = [c for c in report["comparisons"] if c["endpoint"] == endpoint]
        if comp:
            lines += ["| conns | lbstack / baseline req/s | lbstack / baseline CPU per request |", "|---:|---:|---:|"]
            lines += [f"| {c['connections']} | {_num(c['ok_per_s_ratio'], 2)} | {_num(c['cpu_per_ok_ratio'], 2)} |"
                      for c in comp]
            lines.append("")
    lines += ["## Checks", "", "| check | value | target | result |", "|---|---:|---|---|"]
    for c in report["checks"]:
        result = {True: "pass", False: "**FAIL**", None: "not measured"}[c["passed"]]
        detail = f" ({c['detail']})" if c["detail"] else ""
        lines.append(f"| {c['check']}{detail} | {c['value'] if c['value'] is not None else '-'} "
                     f"| {c['target']} | {result} |")
    tool = report["tool_speed"]
    lines += ["", "## Tool speed (same bare rootfs for both hosts)", "", "| step | seconds |", "|---|---:|"]
    for key, label in TOOL_LABELS.items():
        if tool.get(key) is not None:
            lines.append(f"| {label} | {tool[key]:.1f} |")
    if tool.get("packages"):
        lines += ["", f"Packages: {' '.join(tool['packages'])}"]
    return "\n".join(lines) + "\n"


TOOL_LABELS = {
    "apt_install_s": "plain `apt-get update && apt-get install` of the same packages",
    "baseline_app_s": "baseline: sample app, database and default site (not part of the comparison)",
    "converge_from_bare_s": "lbstack: `deploy/full.py` from bare",
    "noop_rerun_s": "lbstack: no-op re-run of `deploy/full.py`",
    "drift_s": "lbstack: `lbstack drift`",
}


def plot(report: dict[str, Any], path: Path) -> None:
    """Throughput and p95 against connections for both setups, the CPU ceilings as lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    endpoints = report["meta"]["endpoints"]
    fig, axes = plt.subplots(len(endpoints), 2, figsize=(11, 4 * len(endpoints)), squeeze=False)
    colors = {"baseline": "tab:gray", "lbstack": "tab:blue"}
    for i, endpoint in enumerate(endpoints):
        thr, p95 = axes[i][0], axes[i][1]
        for setup in SETUPS:
            rows = sorted((r for r in report["runs"] if r["setup"] == setup and r["endpoint"] == endpoint),
                          key=lambda r: r["connections"])
            if not rows:
                continue
            x = [r["connections"] for r in rows]
            thr.plot(x, [r["ok_per_s"] for r in rows], "o-", color=colors[setup], label=f"{setup} ok req/s")
            ceiling = [r["ceiling_ok_per_s"] for r in rows]
            if all(c is not None for c in ceiling):
                thr.plot(x, ceiling, "--", color=colors[setup], alpha=0.7, label=f"{setup} CPU ceiling")
            p95.plot(x, [r["latency_ms"]["p95"] or 0 for r in rows], "o-", color=colors[setup], label=f"{setup} p95")
        p95.axhline(TARGETS["p95_ms_2000"], color="tab:red", linestyle=":", label="1.5 s")
        thr.set_title(f"{endpoint}: successful requests per second")
        p95.set_title(f"{endpoint}: p95 latency (ms)")
        for ax in (thr, p95):
            ax.set_xlabel("concurrent connections")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(f"lbstack bench ({report['meta']['mode']}), {report['meta']['finished']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(report: dict[str, Any], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "markdown": out / "bench.md", "png": out / "bench.png"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["markdown"].write_text(markdown(report))
    plot(report, paths["png"])
    return paths


def build_report(options: Options, cpus: float, rows: list[dict[str, Any]], tool: dict[str, Any],
                 hosts: dict[str, str]) -> dict[str, Any]:
    add_ceilings(rows, cpus)
    return {
        "meta": {"mode": "short" if options.short else "full", "cpus": cpus, "levels": list(options.levels),
                 "endpoints": list(options.endpoints), "duration_s": options.duration_s,
                 "warmup_s": options.warmup_s, "timeout_s": options.timeout_s, "hosts": hosts,
                 "finished": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                 "paths": {e: ENDPOINTS[e]["path"] for e in options.endpoints}},
        "runs": rows,
        "comparisons": comparisons(rows),
        "checks": checks(rows, tool),
        "tool_speed": tool,
    }


# ---------------------------------------------------------------------------------------------
# the host side

def packages() -> list[str]:
    """Every Debian package the full stack's deploy installs (the plain-apt comparison)."""
    from lbstack import packages as stack_packages
    from lbstack.settings import Settings

    return stack_packages.everything(Settings())


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


def _ssh(info, command: str, timeout_s: float = 600.0) -> str:
    from lbstack.rehearsal import ssh_run

    code, out, err = ssh_run(info, command, timeout_s=timeout_s)
    if code != 0:
        raise RuntimeError(f"{info.name}: `{command[:120]}` exited {code}: {(err or out)[-2000:]}")
    return out


def _upload(info, data: bytes, dest: str) -> None:
    from lbstack.rehearsal.common import ssh_connect

    client = ssh_connect(info)
    try:
        with client.open_sftp() as sftp, sftp.open(dest, "wb") as handle:
            handle.write(data)
    finally:
        client.close()


def _sample_app_archive() -> bytes:
    """The sample app as lbstack's deploy packs it (``release.build``): the same bytes on both hosts."""
    from lbstack import release

    return release.build("sample").archive.read_bytes()


BASELINE_DIR = Path(__file__).resolve().parent / "baseline"  # the baseline host's setup: a script and a site


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


def run(options: Options, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Boot, set up, load, report, tear down. Returns the report (also written to ``options.out``)."""
    from lbstack.rehearsal import build_rootfs, down, reap_stale, teardown_on_signal, up

    options.out.mkdir(parents=True, exist_ok=True)
    for gone in reap_stale():  # hosts of runs (bench or tests) whose process is gone
        echo(f"removed stale rehearsal host {gone.name} (owner pid {gone.owner_pid} is gone)")
    load.ensure_open_files(max(options.levels))
    tag = f"{os.getpid()}"
    names = {"baseline": f"bench-base-{tag}", "lbstack": f"bench-lbstack-{tag}"}
    tool: dict[str, Any] = {"packages": packages()}
    rows: list[dict[str, Any]] = []
    cpus = float(len(os.sched_getaffinity(0)))
    started = time.monotonic()

    def step(text: str) -> None:
        echo(f"[{time.monotonic() - started:6.0f} s] {text}")

    # SIGTERM/SIGINT/SIGHUP raise Interrupted here, so the finally below tears both hosts down;
    # kept hosts (--keep-hosts) belong to nobody: never reaped as stale
    with teardown_on_signal():
        try:
            step("golden rootfs (cached after the first build)")
            build_rootfs()
            hosts = {}
            for setup in SETUPS:
                hosts[setup] = up(names[setup], owner=None if options.keep_hosts else "self")
                step(f"{setup} host {names[setup]} up at {hosts[setup].address}")
            base, ours = hosts["baseline"], hosts["lbstack"]
            for info in hosts.values():
                _check_target(info.address)  # before any traffic, warm-ups included

            t0 = time.monotonic()
            _ssh(base, "export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null && "
                       + shlex.join(["apt-get", "install", "-y", "-q", "--no-install-recommends", *tool["packages"]])
                       + " >/dev/null", timeout_s=1800)
            tool["apt_install_s"] = round(time.monotonic() - t0, 1)
            step(f"baseline: plain apt-get install of {len(tool['packages'])} packages: {tool['apt_install_s']} s")
            t0 = time.monotonic()
            _upload(base, _sample_app_archive(), "/root/sample-app.tar.gz")
            _upload(base, (BASELINE_DIR / "default-site.conf").read_bytes(), "/root/default-site.conf")
            _upload(base, (BASELINE_DIR / "setup-app").read_bytes(), "/root/setup-app")
            _ssh(base, shlex.join(["bash", "/root/setup-app", "/root/sample-app.tar.gz", BASELINE_APP,
                                   "/root/default-site.conf", *layout.STORAGE_DIRS]), timeout_s=600)
            tool["baseline_app_s"] = round(time.monotonic() - t0, 1)
            step(f"baseline: sample app on the stock nginx site and www pool: {tool['baseline_app_s']} s")

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

            for number, endpoint in enumerate(options.endpoints):
                path = ENDPOINTS[endpoint]["path"]
                for i, level in enumerate(options.levels):
                    order = SETUPS if (i + number) % 2 == 0 else SETUPS[::-1]
                    for setup in order:
                        info = hosts[setup]
                        if options.warmup_s > 0:
                            load.run(f"http://{info.address}", duration_s=options.warmup_s, connections=level,
                                     paths=[path], timeout_s=options.timeout_s)
                        row = measure(info, path, level, options.duration_s, options.timeout_s, setup, endpoint)
                        rows.append(row)
                        step(f"{endpoint} {level:>5} conns {setup:<8}: {row['ok_per_s']:>8.1f} ok/s, "
                             f"errors {_pct(row['error_rate'])}, p95 {row['latency_ms']['p95']} ms, "
                             f"CPU {row['cpu_ms_per_ok']} ms/req")
        finally:
            if not options.keep_hosts:
                for name in names.values():
                    try:
                        down(name)
                    except Exception as error:  # noqa: BLE001 - report and go on tearing down
                        echo(f"teardown of {name} failed: {error}")
        report = build_report(options, cpus, rows, tool, dict(names))
        paths = write_report(report, options.out)
        step(f"report: {', '.join(str(p) for p in paths.values())}")
        return report


def _levels(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--levels: {text!r} is not a comma-separated list of connection counts") from None


