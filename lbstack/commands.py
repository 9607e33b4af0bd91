"""The operating commands: ``lbstack status|test|metrics|monitor|drift INVENTORY``.

Shared conventions (also ``lbstack plan``): a table for people, ``--json`` for machines (JSON on
stdout, messages on stderr), bounded run time, and these exit codes:

    0  done, everything as expected
    1  error: a host cannot be reached or read (the message names it)
    2  bad arguments, or an inventory that is missing or does not load
    3  done, but something is unhealthy (status), failed (test), or stayed down (monitor)

``LBSTACK_DEBUG=1`` shows the traceback of an unexpected error instead of its one line.

``drift`` follows ``terraform plan -detailed-exitcode`` instead: 0 no drift, 2 drift, 1 error
(bad arguments included, so 2 always means drift).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager

import click

from lbstack import operate, probe, report
from lbstack.session import InventoryError, Session, SessionError, session

EXIT_ERROR, EXIT_USAGE, EXIT_UNHEALTHY = 1, 2, 3
DRIFT_CLEAN, DRIFT_ERROR, DRIFT_FOUND = 0, 1, 2

inventory_argument = click.argument("inventory", type=click.Path(dir_okay=False))
limit_option = click.option("--limit", "limit", multiple=True, metavar="HOST",
                            help="Only this inventory host (repeatable).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout instead of tables.")


def fail(message: str, code: int) -> None:
    click.echo(f"lbstack: {message}", err=True)
    sys.exit(code)


@contextmanager
def connected(inventory: str, limit: tuple[str, ...], *, usage_code: int = EXIT_USAGE, error_code: int = EXIT_ERROR):
    """A session on the inventory; its errors become one line on stderr and an exit code."""
    os.environ.setdefault("PYINFRA_PROGRESS", "off")
    try:
        with session(inventory, list(limit)) as sess:
            yield sess
    except InventoryError as exc:
        fail(str(exc), usage_code)
    except SessionError as exc:
        fail(str(exc), error_code)
    except Exception as exc:  # a fact that cannot be read, a broken connection: no traceback
        if os.environ.get("LBSTACK_DEBUG"):
            raise  # LBSTACK_DEBUG=1: the traceback, for lbstack's developers
        fail(f"{type(exc).__name__}: {exc}", error_code)


def emit(data, as_json: bool, tables: Callable[[], list]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        report.print_tables(*tables())


# ---------------------------------------------------------------------------------------------


@click.command()
@inventory_argument
@limit_option
@json_option
def status(inventory: str, limit: tuple[str, ...], as_json: bool) -> None:
    """Per host and component: unit state, uptime, restarts, cgroup usage against its limits, FPM
    pools, upstream members (up, down, drained) and the release in service.

    Exit 0 when everything is up, 3 when something is not (listed), 1 when a host cannot be read.
    """
    with connected(inventory, limit) as sess:
        hosts = [operate.host_status(ctx) for ctx in sess.hosts()]
    stack_problems = operate.floating_holders(hosts)
    data = {"inventory": inventory, "time": round(time.time()), "hosts": hosts, "problems": stack_problems,
            "healthy": all(h["healthy"] for h in hosts) and not stack_problems}
    emit(data, as_json, lambda: [t for h in hosts for t in report.status_tables(h)])
    if stack_problems and not as_json:
        for problem in stack_problems:
            click.echo(f"stack: {problem}")
    sys.exit(0 if data["healthy"] else EXIT_UNHEALTHY)


def _lb_targets(sess: Session, base_url: str | None) -> list[tuple[str, str, list[str], str]]:
    """(lb host, base URL, instance names, lb_method) for every lb host of the session."""
    targets = []
    for ctx in sess.hosts():
        if "lb" not in ctx.plan.components:
            continue
        names = [m["name"] for m in operate.members(ctx)]
        targets.append((ctx.name, (base_url or f"http://{ctx.address}").rstrip("/"), names, ctx.settings.lb_method))
    if not targets:
        raise SessionError("no host of the inventory is in the lb group")
    return targets


@click.command("test")
@inventory_argument
@limit_option
@click.option("--requests", "-n", "requests", type=click.IntRange(1, 100000), default=100, show_default=True,
              help="Requests to send through each balancer.")
@click.option("--concurrency", "-c", type=click.IntRange(1, 256), default=10, show_default=True,
              help="Connections in parallel.")
@click.option("--path", default="/api/ujian/health", show_default=True, help="Path to request.")
@click.option("--url", "base_url", metavar="BASE", help="Balancer base URL (default http://<lb host address>).")
@click.option("--max-error-rate", type=click.FloatRange(0, 1), default=0.01, show_default=True,
              help="Highest share of 5xx answers and socket errors that still passes.")
@click.option("--sticky", is_flag=True, help="Check ip_hash affinity: every answer from one instance.")
@click.option("--timeout", type=click.FloatRange(0.1, 120), default=10.0, show_default=True,
              help="Seconds per request.")
@json_option
def test_command(inventory: str, limit: tuple[str, ...], requests: int, concurrency: int, path: str,
                 base_url: str | None, max_error_rate: float, sticky: bool, timeout: float, as_json: bool) -> None:
    """Send N requests through the balancer and report how they spread over the instances, their
    status codes and latency percentiles.

    Fails (exit 3) if an instance got none (or, with --sticky, if more than one answered) or if
    errors exceed --max-error-rate.
    """
    if not path.startswith("/"):
        raise click.BadParameter("must start with /", param_hint="--path")
    with connected(inventory, limit) as sess:
        targets = _lb_targets(sess, base_url)
    results = []
    for host_name, base, names, method in targets:
        started = time.monotonic()
        answers = probe.send(base + path, requests, concurrency, timeout)
        summary = probe.summarize(answers, names, max_error_rate=max_error_rate, sticky=sticky,
                                  seconds=time.monotonic() - started)
        if sticky and method != "ip_hash":
            summary["problems"].insert(0, f"--sticky checks ip_hash affinity, but lb_method is {method}")
            summary["ok"] = False
        results.append({"host": host_name, "url": base + path, "method": method, **summary})
    data = {"inventory": inventory, "results": results, "ok": all(r["ok"] for r in results)}
    emit(data, as_json, lambda: [t for r in results for t in report.test_tables(r)])
    sys.exit(0 if data["ok"] else EXIT_UNHEALTHY)


@click.command()
@inventory_argument
@limit_option
@click.option("--window", type=click.IntRange(1, 86400), default=60, show_default=True,
              help="Seconds of access log to sum up.")
@click.option("--prometheus", "prom_file", type=click.Path(dir_okay=False),
              help="Also write node_exporter's textfile format here (atomically), '-' for stdout.")
@json_option
def metrics(inventory: str, limit: tuple[str, ...], window: int, prom_file: str | None, as_json: bool) -> None:
    """Traffic (req/s, statuses, upstream times from the access log over --window), nginx
    stub_status, each FPM instance, MariaDB and Redis figures, and cgroup usage."""
    with connected(inventory, limit) as sess:
        hosts = [operate.host_metrics(ctx, window) for ctx in sess.hosts()]
    if prom_file:
        text = operate.prometheus(hosts)
        if prom_file == "-":
            click.echo(text, nl=False)
        else:
            tmp = f"{prom_file}.{os.getpid()}.tmp"
            with open(tmp, "w") as handle:
                handle.write(text)
            os.replace(tmp, prom_file)  # the textfile collector never reads a half-written file
    if prom_file != "-":
        emit({"inventory": inventory, "window_s": window, "hosts": hosts}, as_json,
             lambda: [t for h in hosts for t in report.metrics_tables(h)])


@click.command()
@inventory_argument
@limit_option
@click.option("--interval", type=click.FloatRange(0.2, 3600), default=2.0, show_default=True,
              help="Seconds between probe rounds.")
@click.option("--count", type=click.IntRange(1, 1_000_000), help="Stop after this many rounds.")
@click.option("--duration", type=click.FloatRange(1, 7 * 86400), help="Stop after this many seconds.")
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=3.0, show_default=True,
              help="Seconds per probe.")
@click.option("--url", "base_url", metavar="BASE", help="Balancer base URL (default http://<lb host address>).")
@click.option("--log-output", "log_file", type=click.Path(dir_okay=False),
              help="Append every probe and transition here as JSON lines.")
@click.option("--webhook", metavar="URL", help="POST each state transition here as JSON.")
@json_option
def monitor(inventory: str, limit: tuple[str, ...], interval: float, count: int | None, duration: float | None,
            timeout: float, base_url: str | None, log_file: str | None, webhook: str | None, as_json: bool) -> None:
    """Probe every health endpoint and every instance repeatedly; print state transitions
    (up -> down -> up) with timestamps.

    Bounded by --count rounds or --duration seconds (default: 30 rounds). Exit 3 if anything was
    down at the end, 0 otherwise.
    """
    if count is not None and duration is not None:
        raise click.UsageError("give --count or --duration, not both")
    if count is None and duration is None:
        count = 30
    with connected(inventory, limit) as sess:
        lbs = _lb_targets(sess, base_url)
    targets = []
    for host_name, base, names, _method in lbs:
        prefix = f"{host_name} " if len(lbs) > 1 else ""
        targets += [probe.Target(f"{prefix}{path}", base + path) for path in ("/health", "/app-health", "/api/ujian/health")]
        targets += [probe.Target(f"{prefix}{name}", f"{base}/instances/{name}/health") for name in names]
    log = open(log_file, "a", buffering=1) if log_file else None  # noqa: SIM115 (closed below)

    def on_event(event: dict) -> None:
        if log:
            log.write(json.dumps(event) + "\n")
        if event["event"] != "transition":
            return
        if webhook:
            error = probe.post_webhook(webhook, event)
            if error:
                click.echo(f"lbstack: webhook failed: {error}", err=True)
        if not as_json:
            report.print_transition(event)

    try:
        summary = probe.monitor(targets, interval=interval, rounds=count, duration=duration, timeout=timeout,
                                on_event=on_event)
    except KeyboardInterrupt:
        fail("monitor interrupted", EXIT_ERROR)
    finally:
        if log:
            log.close()
    data = {"inventory": inventory, **summary}
    emit(data, as_json, lambda: [report.monitor_table(summary)])
    sys.exit(0 if summary["ok"] else EXIT_UNHEALTHY)


class _DriftCommand(click.Command):
    """Bad arguments exit 1 here (not click's 2): for drift, 2 means drift and nothing else."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            exc.exit_code = DRIFT_ERROR
            raise


@click.command(cls=_DriftCommand)
@inventory_argument
@limit_option
@json_option
@click.option("--html", "html_file", type=click.Path(dir_okay=False), help="Write a self-contained HTML report here.")
def drift(inventory: str, limit: tuple[str, ...], as_json: bool, html_file: str | None) -> None:
    """Every difference between the hosts and the code; changes nothing.

    Operations of deploy/full.py that would change something (file diffs shown, secrets never),
    and verification checks (units, limits, packages, upstream, Redis, ...) that differ.
    Exit 0 no drift, 2 drift, 1 error (like terraform plan -detailed-exitcode).
    """
    started = time.monotonic()
    with connected(inventory, limit, usage_code=DRIFT_ERROR, error_code=DRIFT_ERROR) as sess:
        data = operate.drift(sess)
    data["seconds"] = round(time.monotonic() - started, 1)
    if html_file:
        tmp = f"{html_file}.{os.getpid()}.tmp"
        with open(tmp, "w") as handle:
            handle.write(report.drift_html(data))
        os.replace(tmp, html_file)
    emit(data, as_json, lambda: report.drift_tables(data))
    sys.exit(DRIFT_FOUND if data["drift"] else DRIFT_CLEAN)


def plan_from_inventory(inventory: str, limit: tuple[str, ...], as_json: bool) -> None:
    """``lbstack plan INVENTORY``: each host's plan from its settings and facts."""
    with connected(inventory, limit) as sess:
        contexts = sess.hosts()
    if as_json:
        click.echo(json.dumps({c.name: c.plan.to_data() for c in contexts}, indent=2))
    else:
        for c in contexts:
            report.print_tables(*report.plan_tables(c.plan, c.name))


def register(group: click.Group) -> None:
    for command in (status, test_command, metrics, monitor, drift):
        group.add_command(command)

