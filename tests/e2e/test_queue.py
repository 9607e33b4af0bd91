"""Queue workers and the scheduler on the session's converged nspawn host, with the real app.

Jobs are submitted through the app's write path (``POST /api/exam-results``: stored, then scored
by the queued ``ProcessExamResult``) while 200 keep-alive connections of ``bench.load`` read the
API and a rolling update switches the release: the workers restart into the new release, one at
a time, each after its running job. Every job is processed exactly once: the job counts its own
runs in the row it scores. The host ends on the bundled app, as the other modules expect.
"""

from __future__ import annotations

import calendar
import json
import re
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime

from bench import load
from lbstack import layout

from e2e_helpers import REHEARSAL_SETTINGS, TIMINGS, current, lbstack, pyinfra, remote, variant

# each job takes 1.1 s and one arrives every 0.5 s (two posters: a POST slowed by the load does not
# slow the arrivals), from before the rolling update until 10 s after it: more than the 2 workers
# can do (1.8 a second), so a backlog builds and the workers are stopped with a job running. (A
# fixed 200 jobs over 100-120 s ran out before a slow update switched the workers: flaky.)
GRADING_MS = 1100
INTERVAL_S = 1.0  # per poster
POSTERS = 2
AFTER_S = 10.0
INVENTORY = "inventories/rehearsal.py"


def sql(info, query: str) -> list[list[str]]:
    rc, out, err = remote(info, f"mysql -N -B lbstack -e {json.dumps(query)}")
    assert rc == 0, err
    return [line.split("\t") for line in out.splitlines() if line]


def utc(text: str, form: str) -> int:
    """Epoch seconds of a UTC time written in ``form`` (the hosts run in UTC)."""
    return calendar.timegm(datetime.strptime(text, form).timetuple())


def worker_releases(info) -> dict[str, str]:
    rc, out, _ = remote(info, "for u in 1 2; do p=$(systemctl show -p MainPID --value lbstack-queue@$u); "
                              "echo $u=$(readlink /proc/$p/cwd); done")
    return {k: v.rsplit("/", 1)[-1] for k, v in (line.split("=", 1) for line in out.split())}


def submit(base: str, interval_s: float, offset_s: float, stop: threading.Event, results: list) -> None:
    """POST exam results every ``interval_s`` from ``offset_s`` until ``stop``: (status, id or
    error) each, appended to ``results``."""
    body = json.dumps({"answers": {"1": 0, "2": 1, "3": 2}, "grading_ms": GRADING_MS}).encode()
    start = time.monotonic() + offset_s
    i = 0
    while not stop.is_set():
        time.sleep(max(0.0, start + i * interval_s - time.monotonic()))
        i += 1
        request = urllib.request.Request(f"{base}/api/exam-results", data=body, method="POST",
                                         headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                results.append((response.status, json.loads(response.read())["id"]))
        except urllib.error.HTTPError as error:
            results.append((error.code, error.read()[:200]))
        except OSError as error:
            results.append((None, str(error)))


def test_jobs_submitted_during_a_rolling_update_are_each_processed_exactly_once(host, tmp_path):
    before = current(host)
    assert set(worker_releases(host).values()) == {before}
    (last_id,), = sql(host, "SELECT COALESCE(MAX(id), 0) FROM exam_results")
    (failed_before,), = sql(host, "SELECT COUNT(*) FROM failed_jobs")
    posted: list = []
    with load.running(f"http://{host.address}", duration_s=600, connections=200,
                      paths=["/api/questions/random", "/api/ujian/health"], timeout_s=15) as handle:
        time.sleep(2)
        handle.mark("deploy")
        started = time.time()
        stop = threading.Event()
        posters = [threading.Thread(target=submit, args=(f"http://{host.address}", INTERVAL_S, n * INTERVAL_S / POSTERS,
                                                         stop, posted), daemon=True) for n in range(POSTERS)]
        for poster in posters:
            poster.start()
        run = lbstack(host.name, "deploy", "--rolling", INVENTORY, "--set", f"app_source={variant(tmp_path, 'q2')}",
                      settings=REHEARSAL_SETTINGS)
        handle.mark("deployed")
        time.sleep(AFTER_S)
        stop.set()
        for poster in posters:
            poster.join(timeout=60)
        time.sleep(1)
    assert run["rc"] == 0, run["stderr"][-4000:] + run["stdout"][-4000:]
    result = handle.result()
    during = result.summary(result.marks["deploy"], result.marks["deployed"])
    assert during["requests"] > 0 and during["failed"] == 0, (during["failed_by_kind"], during["status"])
    # every submission was accepted and queued
    assert len(posted) > 100 and all(status == 202 for status, _ in posted), \
        sorted({(s, str(v)[:80]) for s, v in posted if s != 202})
    ids = sorted(v for _, v in posted)
    assert ids[0] > int(last_id)
    new = current(host)
    assert new != before
    # the workers restarted into the new release, after the deploy began
    assert set(worker_releases(host).values()) == {new}
    rc, out, _ = remote(host, "for u in 1 2; do systemctl show -p ExecMainStartTimestamp --value lbstack-queue@$u; done")
    starts = [utc(line.rsplit(" ", 1)[0], "%a %Y-%m-%d %H:%M:%S") for line in out.splitlines()]
    assert all(s >= int(started) - 1 for s in starts), (out, started)
    # wait for the backlog, then: each job ran once, none failed, both releases scored some
    deadline = time.monotonic() + 180
    while True:
        (pending,), = sql(host, f"SELECT COUNT(*) FROM exam_results WHERE id > {last_id} AND processed_at IS NULL")
        if int(pending) == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    TIMINGS[f"{len(posted)} jobs of {GRADING_MS} ms through a rolling update: last one processed after"] = time.time() - started
    rows = sql(host, f"SELECT id, runs, processed_at IS NOT NULL, processed_release FROM exam_results WHERE id > {last_id}")
    assert sorted(int(r[0]) for r in rows) == ids
    assert [r for r in rows if r[1] != "1" or r[2] != "1"] == [], "a job was lost or ran twice"
    releases = {r[3] for r in rows}
    assert releases == {before, new}, releases  # the switch happened while jobs were being processed
    (failed_after,), = sql(host, "SELECT COUNT(*) FROM failed_jobs")
    assert failed_after == failed_before
    # no worker was killed mid-job: each stopped by itself after SIGTERM
    rc, out, _ = remote(host, f"journalctl -u 'lbstack-queue@*' --since @{int(started)} --no-pager")
    assert "Killing" not in out and "timed out" not in out, out[-2000:]
    assert len(re.findall(r"Stopped lbstack-queue@\d", out)) >= 2, out[-2000:]
    # ... and at least one was stopped with a job running, which it finished before exiting
    assert any(finished_a_job_after_sigterm(host, unit, started) for unit in (1, 2)), out[-3000:]


def finished_a_job_after_sigterm(info, unit: int, since: float) -> bool:
    """Whether worker ``unit``'s journal shows its process logging a job Processed at or after
    systemd's Stopping (the SIGTERM). By PID and time, not line order: the worker's stdout can
    reach the journal after systemd's own lines."""
    rc, out, _ = remote(info, f"journalctl -u lbstack-queue@{unit} --since @{int(since)} --no-pager -o short-unix")
    events = []
    for line in out.splitlines():
        m = re.match(r"^(\d+\.\d+) \S+ ([^\[:]+)(?:\[(\d+)\])?: (.*)$", line)
        if m:
            events.append((float(m.group(1)), m.group(2), m.group(3), m.group(4)))
    for i, (at, ident, _, message) in enumerate(events):
        if ident != "systemd" or not message.startswith("Stopping lbstack-queue@"):
            continue
        before = [pid for _, who, pid, _ in events[:i] if who.startswith("php")]
        if before and any(pid == before[-1] and "Processed:" in text and when >= at
                          for when, who, pid, text in events[i + 1:]):
            return True
    return False


def test_the_scheduler_runs_every_minute(host):
    """lbstack-schedule.timer runs `artisan schedule:run` each minute; the app's scheduled
    lbstack:heartbeat writes one line per run to storage/logs/scheduler.log."""
    log = f"{layout.SHARED_DIR}/storage/logs/scheduler.log"
    rc, out, _ = remote(host, "date +%s")
    since = int(out)
    deadline = time.monotonic() + 140
    while True:  # the next two runs from now (a host just out of heavy load may have skipped one)
        rc, out, _ = remote(host, f"cat {log} 2>/dev/null; true")
        stamps = [s for s in (utc(m, "%Y-%m-%d %H:%M:%S") for m in re.findall(
            r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] production\.INFO: heartbeat", out, re.M)) if s >= since]
        if len(stamps) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(10)
    assert len(stamps) >= 2, out[-1000:]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(58 <= gap <= 62 for gap in gaps), gaps
    rc, out, _ = remote(host, f"stat -c '%U' {log}; systemctl show -p User --value {layout.SCHEDULE_SERVICE}")
    assert out.split() == ["lbstack", "lbstack"]  # as the app user


def test_back_to_the_bundled_app(host):
    run = pyinfra(host.name)
    assert run["rc"] == 0, run["stderr"][-3000:]
    rc, out, _ = remote(host, f"cat {layout.RELEASES_DIR}/{current(host)}/.lbstack-release")
    assert "source=sample" in out
    assert set(worker_releases(host).values()) == {current(host)}
