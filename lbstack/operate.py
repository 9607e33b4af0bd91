"""What ``lbstack status``, ``metrics`` and ``drift`` read from the hosts, as plain data (the CLI
prints it as tables, JSON, Prometheus text or HTML).

Every value comes from lbstack's facts over one pyinfra session; nothing here changes a host.
"""

from __future__ import annotations

import contextlib
import io
import time

from facts.app import Releases
from facts.files import StagedDiff
from facts.http import HttpStatus
from facts.keepalived import Ipv4Addresses
from facts.mariadb import ServerStatus
from facts.nginx import AccessLog, StubStatus, Upstreams
from facts.php_fpm import PoolStatus
from facts.queue import QueueWorkers, Scheduler
from facts.redis import Info
from facts.usage import UnitUsage
from pyinfra.api import StringCommand

from lbstack import hostscripts, layout, textfiles, topology, transport
from lbstack.session import HostContext, Session, SessionError, deploy_dir, use_host
from lbstack.verification import gather


def members(ctx: HostContext) -> list[dict]:
    """The upstream members the code places behind this host's balancer (name, address)."""
    with use_host(ctx.host):
        return topology.members()


def instance_addresses(ctx: HostContext) -> dict[str, str]:
    """Each app instance's FPM address on this host (socket, or port when split)."""
    with use_host(ctx.host):
        return topology.instance_addresses(ctx.plan.instances)


# ---------------------------------------------------------------------------------------------
# status


def host_status(ctx: HostContext) -> dict:
    """Units (state, uptime, restarts, usage against limits), pools, upstream, release."""
    plan = ctx.plan
    pairs = layout.planned_units(ctx.plan)
    usage = ctx.fact(UnitUsage, units=[u for _, u in pairs])
    units = []
    for component, unit in pairs:
        u = usage.get(unit, {})
        units.append({"component": component, "unit": unit, "active_state": u.get("active_state", "unknown"),
                      "sub_state": u.get("sub_state"), "enabled": u.get("unit_file_state"),
                      "uptime_s": u.get("uptime_s"), "restarts": u.get("restarts"), "tasks": u.get("tasks"),
                      "memory_current": u.get("memory_current"), "memory_max": u.get("memory_max"),
                      "cpu_usage_s": u.get("cpu_usage_s"), "cpu_periods": u.get("cpu_periods"),
                      "cpu_throttled_periods": u.get("cpu_throttled_periods"),
                      "cpu_throttled_s": u.get("cpu_throttled_s")})
    result: dict = {"host": ctx.name, "address": ctx.address, "components": list(plan.components), "units": units}
    if "app" in plan.components:
        result["pools"] = ctx.fact(PoolStatus, instances=instance_addresses(ctx))
        releases = ctx.fact(Releases, root=layout.APP_ROOT)
        result["release"] = {"current": releases["current"], "activated_at": releases.get("activated_at"),
                             "available": releases["complete"]}
    if "lb" in plan.components:
        result["upstream"] = upstream_state(ctx)
        with use_host(ctx.host):
            floats = topology.floating(ctx.settings)
        if floats:
            result["floating"] = floating_state(ctx)
    if plan.queue:
        result["queue"] = queue_state(ctx)
    problems = [f"{u['unit']} {u['active_state']}" for u in units if u["active_state"] != "active"]
    problems += [f"pool {name}: {p['error']}" for name, p in result.get("pools", {}).items() if "error" in p]
    problems += [f"upstream {m['name']} {m['state']}" for m in result.get("upstream", {}).get("members", [])
                 if m["state"] != "up"]
    problems += [f"{w['unit']} runs {w['release'] or 'nothing'}, not the release in service"
                 for w in result.get("queue", {}).get("workers", []) if w["release"] != result["queue"]["current"]]
    if result.get("queue", {}).get("scheduler", {}).get("last_result") not in (None, "success"):
        problems.append(f"scheduler's last run: {result['queue']['scheduler']['last_result']}")
    if "floating" in result and result["floating"]["keepalived"] != "active":
        problems.append(f"keepalived {result['floating']['keepalived']}: the floating address has no backup here")
    if "app" in plan.components and not result["release"]["current"]:
        problems.append("no release in service")
    result["problems"] = problems
    result["healthy"] = not problems
    return result


def floating_state(ctx: HostContext) -> dict:
    """The balancers' floating address on this host: keepalived's state, whether it holds it."""
    address = ctx.settings.lb_floating_address
    held = any(a["address"] == address for a in ctx.fact(Ipv4Addresses))
    unit = ctx.fact(UnitUsage, units=["keepalived.service"]).get("keepalived.service", {})
    return {"address": address, "held": held, "keepalived": unit.get("active_state", "unknown")}


def floating_holders(hosts: list[dict]) -> list[str]:
    """Problems of the floating address across the balancers' ``host_status``: held by exactly one."""
    balancers = [h for h in hosts if "floating" in h]
    if not balancers:
        return []
    holders = [h["host"] for h in balancers if h["floating"]["held"]]
    if len(holders) == 1:
        return []
    return [f"floating address {balancers[0]['floating']['address']} held by "
            + (", ".join(holders) if holders else "no balancer")]


def queue_state(ctx: HostContext) -> dict:
    """The queue workers (the release each runs, since when) and the scheduler (last and next run)."""
    q = ctx.plan.queue
    fact = ctx.fact(QueueWorkers, current=layout.CURRENT)
    workers = []
    for index in range(1, q.workers + 1):
        unit = layout.queue_unit(index)
        w = fact["workers"].get(unit, {})
        workers.append({"unit": unit, "active_state": w.get("active_state", "absent"), "release": w.get("release"),
                        "started_at": w.get("started_at")})
    result: dict = {"current": fact["current"], "workers": workers, "connection": q.connection,
                    "queues": list(q.queues)}
    if q.scheduler:
        s = ctx.fact(Scheduler, timer=layout.SCHEDULE_TIMER, service=layout.SCHEDULE_SERVICE)
        last = s["service"]["last_exit_at"]
        result["scheduler"] = {"timer": s["timer"]["active_state"], "last_run_at": last,
                               "last_result": s["service"]["result"] if last else None,
                               "next_run_at": s["timer"]["next_run_at"]}
    return result


def upstream_state(ctx: HostContext) -> dict:
    """Each member as nginx has loaded it (in rotation or ``down``: drained) and whether it answers
    its own health path through this balancer."""
    loaded = ctx.fact(Upstreams).get(layout.UPSTREAM, {"method": None, "servers": []})
    by_address = {s["address"]: s for s in loaded["servers"]}
    placed = members(ctx)
    urls = {m["name"]: f"http://127.0.0.1/instances/{m['name']}/health" for m in placed}
    health = ctx.fact(HttpStatus, urls=list(urls.values()))
    rows = []
    for m in placed:
        server = by_address.get(m["address"])
        code = health.get(urls[m["name"]])
        if server is None:
            state = "missing"  # the code places it, the loaded config does not have it
        elif server["down"]:
            state = "drained"
        else:
            state = "up" if code == 200 else "down"
        rows.append({"name": m["name"], "address": m["address"], "in_config": server is not None,
                     "drained": bool(server and server["down"]), "health_status": code, "state": state})
    extra = [s["address"] for s in loaded["servers"] if s["address"] not in {m["address"] for m in placed}]
    return {"method": loaded["method"], "members": rows, "unexpected": extra}


# ---------------------------------------------------------------------------------------------
# metrics


def host_metrics(ctx: HostContext, window_s: int) -> dict:
    """Traffic from the access log, nginx, FPM, MariaDB and Redis figures, and unit usage."""
    plan = ctx.plan
    result: dict = {"host": ctx.name, "window_s": window_s, "time": round(time.time())}
    units = [u for _, u in layout.planned_units(plan)]
    usage = ctx.fact(UnitUsage, units=units)
    result["units"] = {unit: {k: usage.get(unit, {}).get(k) for k in
                              ("memory_current", "memory_max", "cpu_usage_s", "cpu_throttled_periods",
                               "cpu_throttled_s", "restarts", "tasks")} for unit in units}
    if "lb" in plan.components:
        result["access_log"] = ctx.fact(AccessLog, window_s=window_s)
        result["nginx"] = ctx.fact(StubStatus)
    if "app" in plan.components:
        result["fpm"] = ctx.fact(PoolStatus, instances=instance_addresses(ctx))
    if "db" in plan.components:
        result["mariadb"] = ctx.fact(ServerStatus)
    if "cache" in plan.components or "app" in plan.components:
        env = layout.ENV_FILE if "app" in plan.components else None
        if env:
            result["redis"] = ctx.fact(Info, env_file=env)
    return result


def prometheus(metrics: list[dict]) -> str:
    """node_exporter textfile-collector format (``*.prom``) for every host's metrics."""
    families: dict[str, list[str]] = {}  # each family's samples together, as the format requires

    def metric(name: str, help_text: str, value, kind: str = "gauge", **labels) -> None:
        if value is None or isinstance(value, (str, bool)):
            return
        family = families.setdefault(name, [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
        label_text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
        family.append(f"{name}{{{label_text}}} {value}")

    for m in metrics:
        host = m["host"]
        for unit, u in m.get("units", {}).items():
            metric("lbstack_unit_memory_bytes", "Memory the unit's cgroup uses.", u["memory_current"], host=host, unit=unit)
            metric("lbstack_unit_memory_max_bytes", "The unit's memory limit.", u["memory_max"], host=host, unit=unit)
            metric("lbstack_unit_cpu_seconds_total", "CPU time used by the unit.", u["cpu_usage_s"], "counter", host=host, unit=unit)
            metric("lbstack_unit_cpu_throttled_periods_total", "CFS periods the unit was throttled.",
                   u["cpu_throttled_periods"], "counter", host=host, unit=unit)
            metric("lbstack_unit_restarts_total", "Automatic restarts of the unit.", u["restarts"], "counter", host=host, unit=unit)
        log = m.get("access_log", {})
        if "requests" in log:
            metric("lbstack_http_requests_per_second", "Requests per second in the window.", log["req_per_s"], host=host)
            for status, count in log["status"].items():
                metric("lbstack_http_requests_window", "Requests in the window by status.", count, host=host, status=status)
            for q in ("p50", "p95", "p99"):
                metric("lbstack_upstream_response_seconds", "Upstream response time in the window.",
                       log.get("upstream_time_s", {}).get(q), host=host, quantile=q[1:])
                metric("lbstack_request_seconds", "Request time in the window.",
                       log.get("request_time_s", {}).get(q), host=host, quantile=q[1:])
        nginx = m.get("nginx", {})
        for key in ("active", "reading", "writing", "waiting"):
            metric(f"lbstack_nginx_connections_{key}", f"nginx {key} connections.", nginx.get(key), host=host)
        metric("lbstack_nginx_requests_total", "Requests nginx handled.", nginx.get("requests"), "counter", host=host)
        for name, pool in m.get("fpm", {}).items():
            for key in ("active", "idle", "listen_queue", "max_children_reached", "slow_requests", "accepted_conn"):
                kind = "counter" if key in ("accepted_conn", "max_children_reached", "slow_requests") else "gauge"
                metric(f"lbstack_fpm_{key}" + ("_total" if kind == "counter" else ""), f"PHP-FPM {key}.",
                       pool.get(key), kind, host=host, instance=name)
            metric("lbstack_fpm_up", "The instance's pool answers.", 0 if "error" in pool else 1, host=host, instance=name)
        db = m.get("mariadb", {})
        metric("lbstack_mariadb_up", "MariaDB answers.", 1 if db.get("answering") else (0 if db else None), host=host)
        for key, value in db.get("status", {}).items():
            metric(f"lbstack_mariadb_{key.lower()}", f"MariaDB {key}.", value, host=host)
        redis = m.get("redis", {})
        metric("lbstack_redis_up", "Redis answers the app.", 1 if redis.get("ok") else (0 if redis else None), host=host)
        for key, value in redis.get("info", {}).items():
            metric(f"lbstack_redis_{key}", f"Redis {key}.", value, host=host)
    return "".join(line + "\n" for family in families.values() for line in family)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# ---------------------------------------------------------------------------------------------
# drift


def drift(session: Session) -> dict:
    """Every difference between the hosts and the code, changing nothing.

    1. pyinfra prepares ``deploy/full.py`` against the live hosts (no command is executed): each
       operation that would change something is drift. Operations that run only because another
       one changed (``_if``) are listed apart as conditional and do not count.
    2. File diffs: each upload that would change a file (rendered template vs the host's copy) and
       each live config that differs from its validated staged copy. Secret-bearing files are
       named, never shown.
    3. Fact checks: the verification rows (units, limits, packages, upstream, Redis, ...) that
       differ from the plan.
    """
    from pyinfra_cli.util import load_deploy_file

    state = session.state
    contexts = session.hosts()
    printed = io.StringIO()  # full.py prints each host's plan: not part of drift's output
    try:
        with contextlib.redirect_stderr(printed), contextlib.redirect_stdout(printed):
            state.current_op_file_number = 0
            load_deploy_file(state, str(deploy_dir() / "full.py"))
    except SystemExit:  # the deploy refused (its reason is the "lbstack: ..." line it printed)
        reasons = [line.removeprefix("lbstack: ") for line in printed.getvalue().splitlines()
                   if line.startswith("lbstack: ")]
        raise SessionError("deploy/full.py refused: " + ("; ".join(reasons) or "see above")) from None
    except Exception as exc:  # noqa: BLE001 (pyinfra wraps the deploy's errors)
        raise SessionError(f"deploy/full.py does not prepare: {exc}") from None
    hosts = {}
    for ctx in contexts:
        changes, conditional, diffs = _planned_changes(state, ctx)
        diffs += [{"path": path, "diff": text, "source": "live file vs its validated staged copy"}
                  for path, text in ctx.fact(StagedDiff, root=layout.STAGE_DIR).items()]
        with use_host(ctx.host):
            rows = gather(ctx.settings, ctx.plan)
        failed = [r.to_data() for r in rows if r.ok is False]
        hosts[ctx.name] = {"operations": changes, "conditional": conditional, "diffs": diffs,
                           "checks_failed": failed, "checks_total": len(rows),
                           "drift": bool(changes or failed)}
        if ctx.settings.monitoring:  # the result, for LbstackDriftFound: a record, not a change
            transport.run_command(ctx.host, StringCommand(hostscripts.shell(textfiles.record_argv(
                "drift", textfiles.drift_textfile(hosts[ctx.name], time.time())))), 30)
    return {"inventory": session.inventory_path, "time": round(time.time()), "hosts": hosts,
            "drift": any(h["drift"] for h in hosts.values())}


def _planned_changes(state, ctx: HostContext) -> tuple[list[dict], list[str], list[dict]]:
    from pyinfra.api.command import FileUploadCommand

    host = ctx.host
    changes, conditional, diffs = [], [], []
    for op_hash in state.get_op_order():
        if op_hash not in state.ops[host]:
            continue
        op_data = state.get_op_data_for_host(host, op_hash)
        if not op_data.operation_meta._maybe_is_change:
            continue
        meta = state.op_meta[op_hash]
        name = sorted(meta.names)[0]
        if op_data.global_arguments["_if"]:
            conditional.append(name)
            continue
        commands = []
        with use_host(host):
            for command in op_data.command_generator():
                if isinstance(command, FileUploadCommand):
                    commands.append(f"upload {command.dest}")
                    text = _upload_diff(ctx, command)
                    if text:
                        diffs.append({"path": command.dest, "diff": text, "source": "host file vs the code's rendering"})
                else:
                    commands.append(_describe(command))
        changes.append({"name": name, "commands": commands[:12]})
    return changes, conditional, diffs


def _describe(command) -> str:
    text = str(getattr(command, "get_masked_value", lambda: command)())
    return text if len(text) < 200 else text[:197] + "..."


def _upload_diff(ctx: HostContext, command) -> str | None:
    """The unified diff a text upload would make, or None (binary, large, or secret-bearing)."""
    import difflib

    from pyinfra.facts.files import FileContents

    if command.dest.startswith(layout.SECRETS_DIR + "/"):
        return None  # a supplied secret: never read, never shown
    src = command.src
    try:
        if hasattr(src, "getvalue"):
            new = src.getvalue()
        else:
            with open(src, "rb") as handle:
                raw = handle.read(512 * 1024 + 1)
            if len(raw) > 512 * 1024:
                return None
            new = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if isinstance(new, bytes):
        try:
            new = new.decode("utf-8")
        except UnicodeDecodeError:
            return None
    old_lines = ctx.fact(FileContents, path=command.dest)
    old = "" if old_lines is None else "\n".join(old_lines) + "\n"
    diff = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                fromfile=f"{command.dest} (host)", tofile=f"{command.dest} (lbstack)")
    return "".join(diff) or None
