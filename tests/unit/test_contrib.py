"""The nightly drift check as shipped: the systemd service and timer, and the CI job example,
run lbstack drift with arguments the command accepts."""

from __future__ import annotations

import configparser
import shlex

import yaml

from lbstack import REPO_ROOT
from lbstack.commands import drift

CONTRIB = REPO_ROOT / "contrib"


def _unit(path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(path)
    return parser


def _drift_args(command: str) -> list[str]:
    words = shlex.split(command.split(">")[0])
    at = next(i for i, w in enumerate(words) if w.endswith("lbstack"))
    assert words[at + 1] == "drift", command
    return words[at + 2:]


def _accepted(args: list[str]) -> dict:
    context = drift.make_context("drift", list(args))
    return context.params


def test_service_runs_drift_with_json_and_html():
    unit = _unit(CONTRIB / "systemd" / "lbstack-drift.service")
    assert unit["Service"]["Type"] == "oneshot"
    params = _accepted(_drift_args(unit["Service"]["ExecStart"]))
    assert params["inventory"] == "inventories/prod.py" and params["as_json"]
    assert params["html_file"].startswith("/var/lib/lbstack-drift/")  # its StateDirectory
    assert unit["Service"]["StateDirectory"] == "lbstack-drift"
    assert unit["Service"]["TimeoutStartSec"]  # bounded


def test_timer_is_nightly_and_persistent():
    timer = _unit(CONTRIB / "systemd" / "lbstack-drift.timer")
    assert timer["Timer"]["OnCalendar"].startswith("*-*-* ")
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_ci_example_is_scheduled_and_runs_drift():
    job = yaml.safe_load((CONTRIB / "ci" / "drift.yml").read_text())
    triggers = job.get("on", job.get(True))  # YAML 1.1 reads the key `on` as true
    assert triggers["schedule"][0]["cron"] == "15 3 * * *"
    steps = job["jobs"]["drift"]["steps"]
    runs = [s["run"] for s in steps if "run" in s and "lbstack drift" in s["run"]]
    assert len(runs) == 1
    params = _accepted(_drift_args(runs[0]))
    assert params["as_json"] and params["html_file"] == "drift.html"
    assert job["jobs"]["drift"]["timeout-minutes"] > 0
