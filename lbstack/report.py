"""Readable tables (rich) for the plan and the verification, shared by the CLI and the deploy."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lbstack.plan import Plan
from lbstack.verify import Check

STATUS = {True: "[green]ok[/]", False: "[bold red]FAIL[/]", None: "[yellow]n/a[/]"}


def plan_tables(plan: Plan, host_name: str = "") -> list[Table]:
    where = f" for {host_name}" if host_name else ""
    head = Table(title=f"Capacity plan{where}: {plan.host_cpus:g} vCPU, {plan.host_memory_mib} MiB "
                       f"({'override' if plan.capacity_source == 'override' else 'host facts'})")
    for column in ("component", "slice", "CPUQuota", "MemoryHigh", "MemoryMax", "TasksMax"):
        head.add_column(column, justify="left" if column in ("component", "slice") else "right")
    for c in plan.components:
        lim = plan.limits[c]
        head.add_row(c, plan.slices[c], f"{lim.cpu_quota_pct}%", f"{lim.memory_high_mib} MiB",
                     f"{lim.memory_max_mib} MiB", str(lim.tasks_max))
        if c == "app" and plan.instance_limits:
            i = plan.instance_limits
            head.add_row(f"  each of {plan.instances} instances", "", f"{i.cpu_quota_pct}%",
                         f"{i.memory_high_mib} MiB", f"{i.memory_max_mib} MiB", str(i.tasks_max))
    head.add_row("OS reserve", "-", "-", "-", f"{plan.os_reserve_mib} MiB", "-")
    head.add_row("[bold]total hard limits[/]", "", f"{plan.cpu_quota_total_pct}%", "",
                 f"{plan.memory_max_total_mib} MiB of {plan.usable_memory_mib}", "")

    derived = Table(title="Derived sizes")
    derived.add_column("setting")
    derived.add_column("value", justify="right")
    rows = []
    if "app" in plan.components:
        rows.append(("pm.max_children per instance", str(plan.php_max_children)))
    if "db" in plan.components:
        rows += [("MariaDB max_connections", str(plan.db_max_connections)),
                 ("InnoDB buffer pool", f"{plan.innodb_buffer_pool_mib} MiB")]
    if "cache" in plan.components:
        rows.append(("Redis maxmemory", f"{plan.redis_maxmemory_mib} MiB"))
    if "lb" in plan.components:
        rows += [("nginx worker_processes", str(plan.nginx_worker_processes)),
                 ("nginx worker_connections", str(plan.nginx_worker_connections)),
                 ("nginx worker_rlimit_nofile", str(plan.nginx_worker_rlimit_nofile))]
    rows += [(key, value) for key, value in plan.sysctl.items()]
    for row in rows:
        derived.add_row(*row)
    tables = [head, derived]
    if plan.adjustments:
        adj = Table(title="Scaled to fit this host")
        for column in ("component", "limit", "requested", "planned", "why"):
            adj.add_column(column)
        for a in plan.adjustments:
            adj.add_row(a.component, a.what, a.requested, a.planned, a.why)
        tables.append(adj)
    return tables


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
