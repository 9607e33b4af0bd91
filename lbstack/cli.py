"""The ``lbstack`` command.

Exit codes: 0 success; 1 the operation failed or was refused, or a host cannot be reached
(message on stderr); 2 bad arguments, settings or inventory; 3 done but unhealthy (status, test,
monitor). ``drift``: 0 clean, 2 drift, 1 error. See ``lbstack/commands.py``.
"""

from __future__ import annotations

import json
import math
import re
import sys

import click
import yaml

from lbstack import REPO_ROOT, backup, commands, report, settings as settings_mod
from lbstack.plan import COMPONENTS, PlanError, make_plan
from lbstack.rehearsal.cli import rehearsal

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_SIZE_MIB = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


class SettingOverride(click.ParamType):
    """``--set KEY=VALUE``: one setting, its value read as YAML (``instances=3`` is a number)."""

    name = "KEY=VALUE"

    def convert(self, value, param, ctx) -> tuple[str, object]:
        if isinstance(value, tuple):
            return value
        key, sep, text = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r}: expected KEY=VALUE", param, ctx)
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            parsed = text
        return key.strip(), parsed


class MemorySize(click.ParamType):
    """A memory size: '16G', '16GiB', '512M', or a bare number of MiB."""

    name = "size"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a size like 16G, 16384M or 16384 (MiB)", param, ctx)
        mib = int(float(match.group(1)) * _SIZE_MIB[match.group(2).upper()])
        if mib <= 0:
            self.fail(f"{value!r} is not a positive size", param, ctx)
        return mib


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lbstack")
def main() -> None:
    """lbstack: a load-balanced Laravel stack on a bare Debian VPS, as pyinfra code."""


@main.command()
@click.argument("inventory", required=False, type=click.Path(dir_okay=False))
@click.option("--limit", "limit", multiple=True, metavar="HOST", help="With INVENTORY: only this host (repeatable).")
@click.option("--cpus", type=click.FloatRange(min=0.1), help="Host vCPUs to plan for.")
@click.option("--memory", type=MemorySize(), help="Host memory, e.g. 16G.")
@click.option("--settings", "settings_file", type=click.Path(dir_okay=False), help="YAML settings file.")
@click.option("--set", "overrides", multiple=True, type=SettingOverride(),
              help="Override one setting (YAML value), e.g. --set instances=3. Repeatable.")
@click.option("--components", default=",".join(COMPONENTS), show_default=True,
              help="Components placed on the host (comma-separated).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(inventory: str | None, limit: tuple[str, ...], cpus: float | None, memory: int | None,
         settings_file: str | None, overrides: tuple[tuple[str, object], ...], components: str, as_json: bool) -> None:
    """Print the capacity plan: for a host of --cpus/--memory without touching any host, or for
    each host of INVENTORY from its settings and facts (read over ssh, nothing changed).

    Exit codes: 0 planned; 1 refused (numbers on stderr) or a host cannot be reached; 2 bad
    arguments or settings.
    """
    if inventory:
        if cpus or memory or settings_file or overrides:
            raise click.UsageError("with INVENTORY the settings and size come from the inventory and the host: "
                                   "drop --cpus/--memory/--settings/--set")
        commands.plan_from_inventory(inventory, limit, as_json)
        return
    if cpus is None or memory is None:
        raise click.UsageError("give INVENTORY, or both --cpus and --memory")
    raw: dict = {}
    try:
        if settings_file:
            raw = settings_mod.load_file(settings_file).to_data()
        raw.update(overrides)
        settings = settings_mod.load(raw)
    except settings_mod.SettingsError as exc:
        click.echo(f"lbstack: invalid settings: {exc}", err=True)
        sys.exit(2)
    wanted = tuple(c.strip() for c in components.split(",") if c.strip())
    unknown = [c for c in wanted if c not in COMPONENTS]
    if unknown:
        raise click.BadParameter(f"unknown component(s) {', '.join(unknown)}; use {', '.join(COMPONENTS)}",
                                 param_hint="--components")
    try:
        result = make_plan(cpus, memory, settings, wanted, online_cpus=math.floor(cpus))
    except PlanError as exc:
        if as_json:
            click.echo(json.dumps({"refused": str(exc)}, indent=2))
        click.echo(f"lbstack: plan refused: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(result.to_data(), indent=2))
    else:
        report.print_tables(*report.plan_tables(result))


@main.command("settings-doc")
def settings_doc() -> None:
    """Print the settings table (Markdown), as in the README."""
    click.echo(settings_mod.markdown_table())


@main.command()
@click.argument("inventory", type=click.Path(dir_okay=False))
@click.option("--rolling", is_flag=True,
              help="Only the app instances (deploy/rolling.py): a new release or FPM/PHP settings, a batch at a time.")
@click.option("--set", "overrides", multiple=True, type=SettingOverride(),
              help="Override a setting for this run, e.g. app_source=git+URL@v1.2 (repeatable).")
@click.option("--limit", "limit", multiple=True, metavar="HOST", help="Only this inventory host (repeatable).")
def deploy(inventory: str, rolling: bool, overrides: tuple[tuple[str, object], ...], limit: tuple[str, ...]) -> None:
    """Converge INVENTORY: `pyinfra -y INVENTORY deploy/full.py`, or deploy/rolling.py with --rolling.

    Instances are always updated through the rolling path: drained, switched, health-gated and
    put back a batch at a time (rolling_batch), rolled back automatically when a gate fails (the
    exit is non-zero and names the gate). The stack's deploy lock (on its first app host) refuses a second concurrent
    deploy, naming the holder. Exit: pyinfra's (0 done, non-zero failed), 2 for bad arguments.
    """
    import os
    import subprocess
    from pathlib import Path

    from lbstack.session import deploy_dir

    values = dict(overrides)
    if not Path(inventory).is_file():
        click.echo(f"lbstack: inventory file {inventory!r} not found", err=True)
        sys.exit(2)
    entry = "deploy/rolling.py" if rolling else "deploy/full.py"  # run in the dir holding deploy/: pyinfra imports from its cwd
    cmd = [sys.executable, "-m", "pyinfra", "-y", str(Path(inventory).resolve()), entry]
    for host in limit:
        cmd[4:4] = ["--limit", host]
    env = dict(os.environ)
    if values:
        env[settings_mod.OVERRIDES_ENV] = json.dumps(values)
    sys.exit(subprocess.run(cmd, cwd=deploy_dir().parent, env=env).returncode)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args: tuple[str, ...]) -> None:
    """Stock baseline vs a hand-tuned pool vs lbstack under the same load (`lbstack bench --help`).

    Benchmark tooling of a source checkout (``bench/``, not installed): runs ``python -m bench
    ARGS`` with the checkout on the module path; relative paths stay the caller's."""
    import os

    if not (REPO_ROOT / "bench" / "__main__.py").is_file():
        click.echo("lbstack: `lbstack bench` runs from a source checkout of lbstack (its bench/ directory): "
                   "clone the repository and run ./dev test, or `python -m bench` in it", err=True)
        sys.exit(2)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    # exec, not a child: whoever stops this process (a test run interrupted) stops the bench, and
    # the rehearsal hosts it owns are reaped as soon as it is gone
    os.execve(sys.executable, [sys.executable, "-m", "bench", *args], env)


main.add_command(rehearsal)
commands.register(main)
backup.register(main)
