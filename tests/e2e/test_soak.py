"""`python -m bench.soak`, short, end to end: it boots and converges its own nspawn host, runs
steady load for 2.5 minutes with each of the five faults in turn (kill -9 of an instance, SIGSTOP
of an instance for 20 s, MariaDB restart, Redis restart, a rolling update), and tears the host
down. Asserted are outcomes: every fault was caused, no acknowledged write was lost, the rows the
soak did not write are unchanged, lbstack's verification passes afterwards and the host is gone.
Availability and the longest request are the bench's figures (printed), not asserted beyond a
sanity floor: the full 60-minute run's figures are in the issue's note and the README."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.soak import FAULTS
from lbstack import REPO_ROOT
from lbstack.rehearsal import list_hosts


@pytest.fixture(scope="module")
def soak() -> dict:
    before = {h.name for h in list_hosts()}
    proc = subprocess.run([sys.executable, "-m", "bench.soak", "--minutes", "2.5", "--fault-every", "20"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=1500)
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["hosts_left"] = sorted({h.name for h in list_hosts()} - before)
    return result


def test_every_fault_was_caused_in_turn(soak):
    kinds = [f["kind"] for f in soak["faults"]]
    assert kinds[:len(FAULTS)] == list(FAULTS), kinds
    for fault in soak["faults"]:
        assert fault["requests"] > 0, fault  # load was running in the minute after it


def test_no_acknowledged_write_is_lost_and_other_rows_are_unchanged(soak):
    writes = soak["writes"]
    assert writes["acknowledged"] > 100, writes  # 4 a second over the run
    assert writes["acknowledged_missing_or_unscored"] == 0, writes
    rows = soak["untouched_rows"]
    assert rows["same"] and int(rows["before"][0]) > 0, rows


def test_the_stack_verifies_after_the_faults_and_served_throughout(soak):
    assert soak["verified_after"] is True
    assert soak["requests"] > 1000
    assert soak["availability_pct"] >= 99.0, soak  # a floor, not the figure (see the module doc)


def test_the_soak_host_is_gone(soak):
    assert soak["hosts_left"] == []
