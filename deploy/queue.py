"""Queue workers and the scheduler on app hosts, in ``lbstack-queue.slice``.

Each worker is a unit ``lbstack-queue@N`` running ``artisan queue:work`` as the app user in the
release in service (``current``), under the plan's queue limits (``plan.queue``, the queue
slice). A worker is restarted gracefully, one at a time, when it runs another release than
``current`` or started before the config was cached (``.env`` changed): systemd sends SIGTERM,
the worker finishes its job and exits, and its stop timeout outlasts the longest job, so no job
is cut off, lost or run twice (``tests/e2e/test_queue.py``). This runs after the app's rolling
update has switched ``current``. Workers beyond ``queue_workers`` (scaling down) are stopped the
same way and disabled.

The scheduler is ``lbstack-schedule.timer``: ``artisan schedule:run`` at the start of every
minute (``lbstack-schedule.service``, oneshot, as the app user, in the queue slice).
"""

from __future__ import annotations

from pyinfra import host, state
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.operations import files

from facts.queue import QueueWorkers, Scheduler, stale_workers
from lbstack import layout, sandbox
from lbstack.operations import daemon_reload, template_file, unit_active
from lbstack.plan import QUEUE, QUEUE_STOP_MARGIN_S, Plan
from lbstack.render import jinja, template
from lbstack.settings import Settings

UNIT_DIR = "/etc/systemd/system"
WORKER_UNIT_FILE = f"{UNIT_DIR}/{layout.QUEUE_UNIT}"
SCHEDULE_SERVICE_FILE = f"{UNIT_DIR}/{layout.SCHEDULE_SERVICE}"
SCHEDULE_TIMER_FILE = f"{UNIT_DIR}/{layout.SCHEDULE_TIMER}"
SLEEP_S = 3  # queue:work --sleep: an idle worker polls the queue this often
SCHEDULE_TIMEOUT_S = 3600  # a schedule:run taking longer is stopped (the next minute's run waits for it)


def worker_template_data(settings: Settings, plan: Plan) -> dict:
    q = plan.queue
    return {
        "workers": q.workers, "slice": plan.slices[QUEUE], "app_user": settings.app_user,
        "current": layout.CURRENT, "php_version": settings.php_version, "connection": q.connection,
        "queues": ",".join(q.queues), "tries": q.tries, "timeout_s": q.timeout_s, "max_time_s": q.max_time_s,
        "worker_memory_mib": q.worker_memory_mib, "sleep_s": SLEEP_S, "stop_timeout_s": q.stop_timeout_s,
        "margin_s": QUEUE_STOP_MARGIN_S, "sandbox": sandbox.app(),
    }


def schedule_template_data(settings: Settings, plan: Plan) -> dict:
    return {"slice": plan.slices[QUEUE], "app_user": settings.app_user, "current": layout.CURRENT,
            "php_version": settings.php_version, "timeout_s": SCHEDULE_TIMEOUT_S,
            "service": layout.SCHEDULE_SERVICE, "sandbox": sandbox.app()}


@operation()
def workers_restarted(current: str, unit_file):
    """Restart, one at a time, every running worker on another release than ``current``'s or
    started before its config was cached, or all of them when ``unit_file`` (the worker unit's
    operation) changed in this run. Decided from the live processes when it runs (after the
    rolling update switched ``current``), so an interrupted run is finished by the next."""
    fact = host.get_fact(QueueWorkers, current=current)
    if state.is_executing and unit_file.did_change():
        restart = sorted((u for u, w in fact["workers"].items() if w["active_state"] == "active"),
                         key=lambda u: fact["workers"][u]["index"] or 0)
    else:
        restart = stale_workers(fact)
    for unit in restart:
        yield StringCommand("systemctl", "restart", unit)  # waits for the running job (TimeoutStopSec)


@operation()
def workers_retired(keep: int):
    """Stop (gracefully: the running job finishes) and disable every worker beyond ``keep``."""
    for unit, worker in sorted(host.get_fact(QueueWorkers, current=layout.CURRENT)["workers"].items()):
        if worker["index"] is None or worker["index"] <= keep:
            continue
        if worker["active_state"] in ("active", "activating", "reloading", "failed"):
            yield StringCommand("systemctl", "stop", unit)
        if worker["enabled"] == "enabled":
            yield StringCommand("systemctl", "disable", unit)


@operation()
def timer_off(timer: str):
    """Stop and disable the scheduler's timer if it runs (``scheduler: false``)."""
    live = host.get_fact(Scheduler, timer=timer, service=layout.SCHEDULE_SERVICE)["timer"]
    if live["active_state"] == "active":
        yield StringCommand("systemctl", "stop", timer)
    if live["enabled"] == "enabled":
        yield StringCommand("systemctl", "disable", timer)


@deploy("lbstack queue")
def queue(settings: Settings, plan: Plan) -> None:
    """The queue part of an app host: its units as the plan has them (none when it has no queue)."""
    q = plan.queue
    workers = q.workers if q else 0
    scheduler = bool(q and q.scheduler)
    rendered = []
    if workers:
        rendered.append(template_file(
            name=f"Render {WORKER_UNIT_FILE}", src=template(WORKER_UNIT_FILE), dest=WORKER_UNIT_FILE, mode="644",
            jinja_env_kwargs=jinja(), **worker_template_data(settings, plan)))
    if scheduler:
        for path in (SCHEDULE_SERVICE_FILE, SCHEDULE_TIMER_FILE):
            rendered.append(template_file(
                name=f"Render {path}", src=template(path), dest=path, mode="644", jinja_env_kwargs=jinja(),
                **schedule_template_data(settings, plan)))
    units = [layout.queue_unit(i) for i in range(1, workers + 1)]
    if scheduler:
        units += [layout.SCHEDULE_SERVICE, layout.SCHEDULE_TIMER]
    workers_retired(name=f"Stop and disable queue workers beyond {workers} (each after its running job)", keep=workers)
    if not scheduler:
        timer_off(name=f"Stop and disable {layout.SCHEDULE_TIMER} (scheduler: false)", timer=layout.SCHEDULE_TIMER)
    removed = []
    if not workers:
        removed.append(files.file(name=f"Remove {WORKER_UNIT_FILE} (queue_workers: 0)", path=WORKER_UNIT_FILE,
                                  present=False))
    if not scheduler:
        removed += [files.file(name=f"Remove {path} (scheduler: false)", path=path, present=False)
                    for path in (SCHEDULE_SERVICE_FILE, SCHEDULE_TIMER_FILE)]
    daemon_reload(name="systemctl daemon-reload (if the queue units changed on disk)", units=units or [layout.queue_unit(1)],
                  changed=rendered + removed)
    if workers:
        workers_restarted(name="Restart queue workers on an old release or config, or whose unit changed, one at a "
                               "time (each after its running job)", current=layout.CURRENT, unit_file=rendered[0])
        for unit in units[:workers]:
            unit_active(name=f"Start and enable {unit}", unit=unit)
    if scheduler:
        unit_active(name=f"Start and enable {layout.SCHEDULE_TIMER} (artisan schedule:run every minute)",
                    unit=layout.SCHEDULE_TIMER)

