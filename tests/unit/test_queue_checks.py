"""The queue part from recorded facts: which workers restart, and what verification says."""

import copy
import json
from pathlib import Path

from facts.queue import stale_workers
from lbstack import checks
from lbstack.plan import make_plan
from lbstack.settings import load

FACTS = Path(__file__).parent.parent / "facts"
WORKERS = json.loads((FACTS / "queue.QueueWorkers/two-workers.json").read_text())["fact"]
SCHEDULER = json.loads((FACTS / "queue.Scheduler/ran.json").read_text())["fact"]
PLAN = make_plan(8, 16384, load({}))
RELEASE = WORKERS["current"]
# what UnitLimits reads for a worker in its slice
UNITS = {f"lbstack-queue@{i}.service": {"active_state": "active", "unit_file_state": "enabled",
                                        "control_group": f"/lbstack.slice/lbstack-queue.slice/lbstack-queue@{i}.service"}
         for i in (1, 2)}


def test_workers_on_the_release_in_service_started_after_its_config_stay():
    assert stale_workers(WORKERS) == []


def test_a_worker_on_another_release_or_started_before_the_config_cache_restarts():
    moved = copy.deepcopy(WORKERS)
    moved["current"] = "20261202T000000-aaaaaaaaaaaa"  # current switched: both run the old one
    assert stale_workers(moved) == ["lbstack-queue@1.service", "lbstack-queue@2.service"]
    recached = copy.deepcopy(WORKERS)
    recached["config_cached_at"] = WORKERS["workers"]["lbstack-queue@2.service"]["started_at"] + 10  # .env changed
    assert stale_workers(recached) == ["lbstack-queue@1.service", "lbstack-queue@2.service"]
    stopped = copy.deepcopy(moved)
    stopped["workers"]["lbstack-queue@1.service"].update(active_state="failed", pid=None)
    assert stale_workers(stopped) == ["lbstack-queue@2.service"]  # a stopped one is started, not restarted


def test_recorded_queue_matches_the_plan():
    rows = checks.check_queue(PLAN, UNITS, WORKERS, SCHEDULER)
    assert checks.failures(rows) == [], checks.failures(rows)
    assert {r.check for r in rows} >= {"lbstack-queue@1.service runs the release in service",
                                       "lbstack-schedule.timer state", "lbstack-schedule.service last run"}


def test_a_worker_left_on_an_old_release_a_surplus_worker_and_a_failed_schedule_run_are_named():
    workers = copy.deepcopy(WORKERS)
    workers["workers"]["lbstack-queue@2.service"]["release"] = "20261101T000000-bbbbbbbbbbbb"
    workers["workers"]["lbstack-queue@3.service"] = dict(workers["workers"]["lbstack-queue@1.service"], index=3)
    scheduler = copy.deepcopy(SCHEDULER)
    scheduler["service"]["result"] = "exit-code"
    rows = checks.check_queue(PLAN, UNITS, workers, scheduler)
    failed = {r.check: r for r in checks.failures(rows)}
    assert failed["lbstack-queue@2.service runs the release in service"].actual == "20261101T000000-bbbbbbbbbbbb"
    assert failed["queue workers beyond the plan"].actual == "lbstack-queue@3.service"
    assert len(failed) == 2
    # a failed past run is shown, not failed: no converge can repair it (status lists it)
    (last,) = [r for r in rows if r.check == "lbstack-schedule.service last run"]
    assert (last.actual, last.ok) == ("exit-code", None) and "journalctl" in last.note


def test_a_scheduler_that_has_not_run_yet_is_not_a_failure_but_a_stopped_timer_is():
    fresh = copy.deepcopy(SCHEDULER)
    fresh["service"].update(result="success", last_exit_at=None)
    rows = {r.check: r for r in checks.check_queue(PLAN, UNITS, WORKERS, fresh)}
    assert rows["lbstack-schedule.service last run"].actual == "not run yet"
    stopped = copy.deepcopy(SCHEDULER)
    stopped["timer"]["active_state"] = "inactive"
    assert [r.check for r in checks.failures(checks.check_queue(PLAN, UNITS, WORKERS, stopped))] == [
        "lbstack-schedule.timer state"]
