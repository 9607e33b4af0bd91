"""Readable tables (rich) for the plan and the verification, shared by the CLI and the deploy."""

from __future__ import annotations

import dataclasses

from rich.console import Console
from rich.table import Table

from lbstack.plan import Plan
from lbstack.checks import Check

STATUS = {True: "[green]ok[/]", False: "[bold red]FAIL[/]", None: "[yellow]n/a[/]"}


def plan_tables(plan: Plan, host_name: str = "") -> list[Table]:
    where = f" for {host_name}" if host_name else ""
    head = Table(title=f"Capacity plan{where}: {plan.host_cpus:g} vCPU, {plan.host_memory_mib} MiB "
                       f"({'override' if plan.capacity_source == 'override' else 'host facts'})")
    for column in ("component", "slice", "CPUQuota", "MemoryHigh", "MemoryMax", "TasksMax"):
        head.add_column(column, justify="left" if column in ("component", "slice") else "right")
    for c in plan.slices:
        lim = plan.limits[c]
        head.add_row(c, plan.slices[c], f"{lim.cpu_quota_pct}%", f"{lim.memory_high_mib} MiB",
                     f"{lim.memory_max_mib} MiB", str(lim.tasks_max))
        if c == "app" and plan.php_fpm:
            i = plan.php_fpm.instance_limits
            head.add_row(f"  each of {plan.instances} instances", "", f"{i.cpu_quota_pct}%",
                         f"{i.memory_high_mib} MiB", f"{i.memory_max_mib} MiB", str(i.tasks_max))
    head.add_row("OS reserve", "-", "-", "-", f"{plan.os_reserve_mib} MiB", "-")
    head.add_row("[bold]total hard limits[/]", "", f"- (host {plan.host_cpus * 100:.0f}%)", "",
                 f"{plan.memory_max_total_mib} MiB of {plan.usable_memory_mib}", "")

    derived = Table(title="Derived sizes (every number the templates use)")
    derived.add_column("section")
    derived.add_column("size")
    derived.add_column("value", justify="right")
    for section, key, value in plan_sizes(plan):
        derived.add_row(section, key, value)
    tables = [head, derived]
    if plan.adjustments:
        adj = Table(title="Scaled to fit this host")
        for column in ("component", "limit", "requested", "planned", "why"):
            adj.add_column(column)
        for a in plan.adjustments:
            adj.add_row(a.component, a.what, a.requested, a.planned, a.why)
        tables.append(adj)
    return tables


def plan_sizes(plan: Plan) -> list[tuple[str, str, str]]:
    """(section, size, value) for every size of each placed component's plan section, then the
    kernel settings: what ``lbstack plan`` prints under "Derived sizes"."""
    rows = []
    for section in ("nginx", "php_fpm", "mariadb", "redis", "queue"):
        data = getattr(plan, section)
        if data is None:
            continue
        for f in dataclasses.fields(data):
            value = getattr(data, f.name)
            if f.name == "instance_limits":
                continue  # in the limits table
            if f.name == "instance_cpus":
                value = " ".join(f"app{i}:{cpus}" for i, cpus in enumerate(value, 1)) if any(value) else "not pinned"
            elif f.name == "pinning_note" and not value:
                continue
            rows.append((f"plan.{section}", f.name, str(value)))
    rows += [("plan.sysctl", key, value) for key, value in plan.sysctl.items()]
    return rows


def verification_table(host_name: str, rows: list[Check]) -> Table:
    bad = sum(1 for r in rows if r.ok is False)
    table = Table(title=f"Verification of {host_name}: "
                        + ("[green]all checks passed[/]" if not bad else f"[bold red]{bad} failed[/]"))
    for column in ("component", "check", "expected", "actual", "status", "note"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.component, r.check, r.expected, r.actual, STATUS[r.ok], r.note)
    return table


def print_tables(*tables: Table, stderr: bool = False) -> None:
    console = Console(stderr=stderr, width=160)
    for table in tables:
        console.print(table)


# ---------------------------------------------------------------------------------------------
# operating commands


def iso(epoch: float | None) -> str:
    from datetime import datetime, timezone

    return "-" if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / (1024 * 1024):.0f} MiB"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _state(text: str | None, good: str = "active") -> str:
    if text == good or text == "up":
        return f"[green]{text}[/]"
    if text in ("drained",):
        return f"[yellow]{text}[/]"
    return f"[bold red]{text}[/]"


def status_tables(host: dict) -> list[Table]:
    verdict = "[green]healthy[/]" if host["healthy"] else f"[bold red]{len(host['problems'])} problem(s)[/]"
    units = Table(title=f"{host['host']} ({host['address']}): {verdict}")
    for column in ("component", "unit", "state", "enabled", "uptime", "restarts", "memory / limit", "CPU throttled",
                   "tasks"):
        units.add_column(column, justify="right" if column in ("restarts", "tasks", "uptime") else "left")
    for u in host["units"]:
        memory = _bytes(u["memory_current"])
        if u["memory_max"]:
            memory += f" / {_bytes(u['memory_max'])} ({100 * (u['memory_current'] or 0) / u['memory_max']:.0f}%)"
        throttled = "-"
        if u["cpu_periods"]:
            throttled = (f"{u['cpu_throttled_periods']}/{u['cpu_periods']} periods, "
                         f"{u['cpu_throttled_s'] or 0:.2f} s")
        units.add_row(u["component"], u["unit"], _state(u["active_state"]), u["enabled"] or "-",
                      _duration(u["uptime_s"]), "-" if u["restarts"] is None else str(u["restarts"]), memory,
                      throttled, "-" if u["tasks"] is None else str(u["tasks"]))
    tables = [units]
    if "pools" in host:
        pools = Table(title=f"{host['host']}: PHP-FPM pools")
        for column in ("instance", "pm", "active", "idle", "listen queue", "max queue", "max children reached",
                       "accepted", "slow", "up for"):
            pools.add_column(column, justify="left" if column in ("instance", "pm") else "right")
        for name, p in sorted(host["pools"].items()):
            if "error" in p:
                pools.add_row(name, f"[bold red]{p['error'][:60]}[/]", *["-"] * 8)
                continue
            pools.add_row(name, p.get("process_manager", "-"), str(p.get("active")), str(p.get("idle")),
                          str(p.get("listen_queue")), str(p.get("max_listen_queue")),
                          str(p.get("max_children_reached")), str(p.get("accepted_conn")),
                          str(p.get("slow_requests")), _duration(p.get("start_since_s")))
        tables.append(pools)
    if "floating" in host:
        f = host["floating"]
        floating = Table(title=f"{host['host']}: floating address (keepalived)")
        for column in ("address", "held here", "keepalived"):
            floating.add_column(column)
        floating.add_row(f["address"], "[green]yes[/]" if f["held"] else "no", _state(f["keepalived"]))
        tables.append(floating)
    if "upstream" in host:
        up = host["upstream"]
        members = Table(title=f"{host['host']}: upstream lbstack_app ({up['method']})")
        for column in ("member", "address", "in config", "health", "state"):
            members.add_column(column)
        for m in up["members"]:
            members.add_row(m["name"], m["address"], "yes" if m["in_config"] else "[bold red]no[/]",
                            str(m["health_status"] or "-"), _state(m["state"]))
        for address in up["unexpected"]:
            members.add_row("?", address, "yes", "-", "[bold red]not in the code[/]")
        tables.append(members)
    if "release" in host:
        rel = host["release"]
        release = Table(title=f"{host['host']}: release", show_header=False)
        release.add_column("what")
        release.add_column("value")
        release.add_row("in service", rel["current"] or "[bold red]none[/]")
        release.add_row("last deploy (switched)", iso(rel["activated_at"]))
        release.add_row("complete releases kept", str(len(rel["available"])))
        tables.append(release)
    if "queue" in host:
        q = host["queue"]
        queue = Table(title=f"{host['host']}: queue ({q['connection']}: {', '.join(q['queues'])}) and scheduler")
        for column in ("unit", "state", "release", "since"):
            queue.add_column(column)
        for w in q["workers"]:
            release = w["release"] or "-"
            if w["release"] != q["current"]:
                release = f"[bold red]{release} (not in service)[/]"
            queue.add_row(w["unit"], _state(w["active_state"]), release, iso(w["started_at"]))
        if "scheduler" in q:
            sched = q["scheduler"]
            last = f"last run {iso(sched['last_run_at'])}: {sched['last_result'] or 'not yet'}"
            queue.add_row("lbstack-schedule.timer", _state(sched["timer"]), last, f"next {iso(sched['next_run_at'])}")
        tables.append(queue)
    if host["problems"]:
        problems = Table(title=f"{host['host']}: problems")
        problems.add_column("problem")
        for p in host["problems"]:
            problems.add_row(f"[bold red]{p}[/]")
        tables.append(problems)
    return tables


def test_tables(result: dict) -> list[Table]:
    verdict = "[green]passed[/]" if result["ok"] else "[bold red]FAILED[/]"
    head = Table(title=f"{result['host']}: {verdict}", min_width=40)
    for column in ("instance", "answers", "share"):
        head.add_column(column, justify="left" if column == "instance" else "right")
    total = max(1, result["requests"])
    for name, count in result["instances"].items():
        head.add_row(name, str(count) if count else "[bold red]0[/]", f"{100 * count / total:.0f}%")
    figures = Table(show_header=False)
    figures.add_column("what")
    figures.add_column("value")
    figures.add_row("requests", f"{result['requests']} to {result['url']} (lb_method {result['method']})")
    figures.add_row("status codes", ", ".join(f"{k}: {v}" for k, v in result["status"].items()))
    figures.add_row("errors (5xx, socket)", f"{result['errors']} ({result['error_rate']:.2%})")
    lat = result["latency_ms"]
    figures.add_row("latency p50 / p95 / p99 / max",
                    " / ".join("-" if lat[k] is None else f"{lat[k]:.1f} ms" for k in ("p50", "p95", "p99", "max")))
    figures.add_row("throughput", f"{result['req_per_s']} req/s over {result['seconds']} s")
    for p in result["problems"]:
        figures.add_row("[bold red]problem[/]", p)
    return [head, figures]


def metrics_tables(host: dict) -> list[Table]:
    tables = []
    log = host.get("access_log", {})
    if log:
        traffic = Table(title=f"{host['host']}: traffic, last {host['window_s']} s (access log)", show_header=False)
        traffic.add_column("what")
        traffic.add_column("value")
        if "error" in log:
            traffic.add_row("access log", f"[bold red]{log['error']}[/]")
        else:
            traffic.add_row("requests / req/s", f"{log['requests']} / {log['req_per_s']}")
            traffic.add_row("status", ", ".join(f"{k}: {v}" for k, v in sorted(log["status"].items())) or "-")
            for key, label in (("upstream_time_s", "upstream time"), ("request_time_s", "request time")):
                q = log.get(key, {})
                traffic.add_row(f"{label} p50 / p95 / p99",
                                " / ".join("-" if q.get(k) is None else f"{q[k] * 1000:.1f} ms" for k in ("p50", "p95", "p99")))
            traffic.add_row("per upstream", ", ".join(f"{k.rsplit('/', 2)[-2] if 'sock' in k else k}: {v}"
                                                      for k, v in sorted(log["upstreams"].items())) or "-")
        nginx = host.get("nginx", {})
        if nginx and "error" not in nginx:
            traffic.add_row("nginx connections (active/reading/writing/waiting)",
                            f"{nginx['active']}/{nginx['reading']}/{nginx['writing']}/{nginx['waiting']}")
            traffic.add_row("nginx accepted / handled / requests",
                            f"{nginx['accepts']} / {nginx['handled']} / {nginx['requests']}")
        tables.append(traffic)
    if host.get("fpm"):
        fpm = Table(title=f"{host['host']}: PHP-FPM instances")
        for column in ("instance", "active", "idle", "queue", "max children reached", "accepted", "slow"):
            fpm.add_column(column, justify="left" if column == "instance" else "right")
        for name, p in sorted(host["fpm"].items()):
            if "error" in p:
                fpm.add_row(name, f"[bold red]{p['error'][:50]}[/]", *["-"] * 5)
            else:
                fpm.add_row(name, *(str(p.get(k)) for k in ("active", "idle", "listen_queue", "max_children_reached",
                                                             "accepted_conn", "slow_requests")))
        tables.append(fpm)
    backends = Table(title=f"{host['host']}: MariaDB and Redis", show_header=False)
    backends.add_column("what")
    backends.add_column("value")
    db = host.get("mariadb")
    if db is not None:
        if db.get("answering"):
            s = db["status"]
            backends.add_row("MariaDB threads connected / running",
                             f"{s.get('Threads_connected')} / {s.get('Threads_running')} (max_connections {db['max_connections']}, "
                             f"max used {s.get('Max_used_connections')})")
            backends.add_row("MariaDB slow queries / questions", f"{s.get('Slow_queries')} / {s.get('Questions')}")
            backends.add_row("MariaDB aborted connects / clients", f"{s.get('Aborted_connects')} / {s.get('Aborted_clients')}")
        else:
            backends.add_row("MariaDB", "[bold red]not answering[/]")
    redis = host.get("redis")
    if redis is not None:
        if redis.get("ok"):
            i = redis["info"]
            hits, misses = i.get("keyspace_hits", 0), i.get("keyspace_misses", 0)
            ratio = f"{100 * hits / (hits + misses):.1f}%" if hits + misses else "-"
            backends.add_row("Redis memory / maxmemory", f"{_bytes(i.get('used_memory'))} / {_bytes(i.get('maxmemory'))} "
                                                          f"({i.get('maxmemory_policy')})")
            backends.add_row("Redis hits / misses (ratio)", f"{hits} / {misses} ({ratio})")
            backends.add_row("Redis evicted / expired keys", f"{i.get('evicted_keys')} / {i.get('expired_keys')}")
            backends.add_row("Redis clients / rejected", f"{i.get('connected_clients')} / {i.get('rejected_connections')}")
            backends.add_row("Redis keys", str(redis.get("keys")))
        else:
            backends.add_row("Redis", f"[bold red]{redis.get('error', 'not answering')}[/]")
    if backends.row_count:
        tables.append(backends)
    usage = Table(title=f"{host['host']}: units")
    for column in ("unit", "memory / limit", "CPU s", "throttled periods", "restarts"):
        usage.add_column(column)
    for unit, u in host.get("units", {}).items():
        usage.add_row(unit, f"{_bytes(u['memory_current'])} / {_bytes(u['memory_max'])}",
                      "-" if u["cpu_usage_s"] is None else f"{u['cpu_usage_s']:.1f}",
                      "-" if u["cpu_throttled_periods"] is None else str(u["cpu_throttled_periods"]),
                      "-" if u["restarts"] is None else str(u["restarts"]))
    tables.append(usage)
    return tables


def print_transition(event: dict) -> None:
    colour = "green" if event["after"] == "up" else "bold red"
    before = event["before"] or "start"
    extra = f" after {event['down_for_s']} s down" if "down_for_s" in event else ""
    Console(width=160).print(f"{event['time']}  {event['target']:<24} {before} -> [{colour}]{event['after']}[/]  "
                             f"({event['detail']}){extra}", highlight=False)


def monitor_table(summary: dict) -> Table:
    verdict = "[green]everything up[/]" if summary["ok"] else f"[bold red]down at the end: {', '.join(summary['down_at_end'])}[/]"
    table = Table(title=f"Monitor: {summary['rounds']} rounds over {summary['seconds']} s, {summary['targets']} targets: {verdict}")
    for column in ("target", "final state", "transitions"):
        table.add_column(column)
    counts: dict[str, int] = {}
    for t in summary["transitions"]:
        if t["before"] is not None:
            counts[t["target"]] = counts.get(t["target"], 0) + 1
    for name, state in summary["final"].items():
        table.add_row(name, _state(state), str(counts.get(name, 0)))
    return table


def drift_tables(data: dict) -> list[Table]:
    tables = []
    for name, host in data["hosts"].items():
        verdict = "[bold red]drift[/]" if host["drift"] else "[green]no drift[/]"
        ops = Table(title=f"{name}: {verdict} ({len(host['operations'])} operation(s) would change, "
                          f"{len(host['checks_failed'])} of {host['checks_total']} checks differ)")
        ops.add_column("kind")
        ops.add_column("what")
        ops.add_column("detail")
        for op in host["operations"]:
            ops.add_row("operation", op["name"], "; ".join(op["commands"])[:200])
        for c in host["checks_failed"]:
            ops.add_row("check", f"{c['component']}: {c['check']}", f"expected {c['expected']}, is {c['actual']}")
        for d in host["diffs"]:
            ops.add_row("file", d["path"], d["source"])
        if host["conditional"]:
            ops.add_row("[dim]conditional[/]", f"[dim]{len(host['conditional'])} operation(s) run only if another changes[/]",
                        "[dim]not counted[/]")
        tables.append(ops)
        for d in host["diffs"]:
            diff = Table(title=f"{name}: {d['path']}", show_header=False)
            diff.add_column("diff")
            diff.add_row(_coloured_diff(d["diff"]))
            tables.append(diff)
    return tables


def _coloured_diff(text: str) -> str:
    from rich.markup import escape

    lines = []
    for line in text.splitlines()[:200]:
        safe = escape(line)
        if line.startswith("+") and not line.startswith("+++"):
            lines.append(f"[green]{safe}[/]")
        elif line.startswith("-") and not line.startswith("---"):
            lines.append(f"[red]{safe}[/]")
        else:
            lines.append(safe)
    return "\n".join(lines)


def drift_html(data: dict) -> str:
    """A self-contained HTML report (inline CSS, no scripts, no external resources)."""
    from pathlib import Path

    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "html")),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("drift.html.j2").render(data=data, generated=iso(data["time"]))
