"""``lbstack rehearsal ...``: build, start, list, enter and stop local rehearsal hosts."""

from __future__ import annotations

import dataclasses
import json
import os
import time

import click
from rich.console import Console
from rich.table import Table

from . import alive, build_image, build_rootfs, down, get_host, list_hosts, reap_stale, snapshot, up
from . import vagrant
from .common import HostInfo, RehearsalError, hosts_dir


class RehearsalGroup(click.Group):
    """A click group that turns expected failures into a one-line error and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RehearsalError as error:
            raise click.ClickException(str(error)) from None
        except PermissionError as error:
            raise click.ClickException(f"{error.filename}: permission denied (run as root)") from None


rehearsal = RehearsalGroup(
    "rehearsal",
    help="Local rehearsal hosts: systemd-nspawn containers and qemu VMs reachable over ssh.",
)


@rehearsal.command()
@click.option("--vm", "vm_image", is_flag=True, help="Build the VM disk image, not the container rootfs.")
@click.option("--force", is_flag=True, help="Rebuild even if a cached build of the same recipe exists.")
def build(vm_image: bool, force: bool) -> None:
    """Build (or reuse) the golden container rootfs or VM image."""
    started = time.monotonic()
    path = build_image(force) if vm_image else build_rootfs(force)
    click.echo(f"{path} ({time.monotonic() - started:.0f} s)")


@rehearsal.command("up")
@click.argument("name")
@click.option("--vm", "vm_host", is_flag=True, help="Boot a qemu VM (real kernel, cgroup v2).")
@click.option("--rootfs", type=click.Path(exists=True, file_okay=False), help="Boot a copy of this tree.")
@click.option("--memory-mib", type=click.IntRange(512), default=4096, show_default=True, help="VM memory.")
@click.option("--cpus", type=click.IntRange(1), default=2, show_default=True, help="VM vCPUs.")
@click.option("--owner", "owner_pid", type=click.IntRange(1), metavar="PID",
              help="Owner process: once it is gone, `reap` tears the host down (e.g. --owner $$ in a script).")
@click.option("--net", metavar="NET",
              help="Containers: also join the private rehearsal network NET (made by its first host, "
                   "gone with its last), where the hosts on it reach each other.")
def up_command(name: str, vm_host: bool, rootfs: str | None, memory_mib: int, cpus: int,
               owner_pid: int | None, net: str | None) -> None:
    """Boot host NAME (a container unless --vm) and wait until ssh answers.

    Without --owner the host is nobody's: it stays up until `down NAME`, and `reap` never
    touches it.
    """
    started = time.monotonic()
    info = up(name, vm_host=vm_host, rootfs=rootfs, memory_mib=memory_mib, cpus=cpus, owner=owner_pid, net=net)
    click.echo(f"{info.name} up in {time.monotonic() - started:.0f} s: "
               f"ssh -i {info.ssh_key} -p {info.ssh_port} {info.ssh_user}@{info.address}"
               + (f"; on {info.net} at {info.private_address}" if info.net else ""))


@rehearsal.command("down")
@click.argument("name", required=False)
@click.option("--all", "all_hosts", is_flag=True, help="Tear down every recorded host.")
@click.option("--stale", is_flag=True, help="Tear down the hosts whose owner process is gone (as `reap`).")
@click.option("--keep-rootfs", is_flag=True, help="Containers: keep the rootfs; `up NAME` boots it again.")
def down_command(name: str | None, all_hosts: bool, stale: bool, keep_rootfs: bool) -> None:
    """Stop host NAME (or --all, or --stale) and remove what it left behind."""
    if [bool(name), all_hosts, stale].count(True) != 1:
        raise click.UsageError("give one of NAME, --all or --stale")
    if stale:
        if keep_rootfs:
            raise click.UsageError("--keep-rootfs does not go with --stale")
        _reap()
        return
    names = [info.name for info in list_hosts()] if all_hosts else [name]
    for each in names:
        found = down(each, keep_rootfs=keep_rootfs)
        click.echo(f"{each}: {'down' if found else 'was not up'}")


@rehearsal.command("reap")
def reap_command() -> None:
    """Tear down every host whose owner process is gone (a test run or bench that was killed).

    Also removes what such a host left behind when its own process died too (veth, cgroups,
    apt proxy, rootfs). Hosts booted with plain `up NAME` have no owner and are left alone.
    """
    _reap()


def _reap() -> None:
    """Reap stale hosts and print one line per host removed."""
    reaped = reap_stale()
    for each in reaped:
        click.echo(str(each))
    if not reaped:
        click.echo("no stale hosts")


def _owner(info: HostInfo) -> str:
    """The list's owner column: "-" (nobody), "pid N", or "pid N (gone)"."""
    if info.owner_pid is None:
        return "-"
    return f"pid {info.owner_pid}" + (" (gone)" if info.owner_gone() else "")


@rehearsal.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the host records as JSON.")
def list_command(as_json: bool) -> None:
    """List recorded hosts and kept container rootfs dirs."""
    hosts = list_hosts()
    if as_json:
        records = [dict(dataclasses.asdict(info), alive=alive(info), stale=info.owner_gone()) for info in hosts]
        click.echo(json.dumps(records, indent=2))
        return
    table = Table("name", "kind", "state", "ssh", "pid", "owner", "detail", "up for")
    for info in hosts:
        state = "up" if alive(info) else "dead (run down)"
        if info.owner_gone():
            state += ", stale (run reap)"
        detail = info.accel if info.kind == "vm" else f"veth {info.veth}"
        if info.net:
            detail += f", {info.net} {info.private_address}"
        uptime = f"{(time.time() - info.started_at) / 60:.0f} min"
        table.add_row(info.name, info.kind, state, f"{info.address}:{info.ssh_port}",
                      str(info.pid), _owner(info), detail or "", uptime)
    recorded = {info.name for info in hosts}
    for kept in sorted(hosts_dir().glob("*/rootfs")):
        if kept.parent.name not in recorded:
            table.add_row(kept.parent.name, "nspawn", "stopped (rootfs kept)", "", "", "-", str(kept), "")
    Console().print(table)


@rehearsal.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(name: str, command: tuple[str, ...]) -> None:
    """Open a shell on NAME, or run COMMAND there: `ssh NAME -- CMD ...`."""
    info = get_host(name)
    args = [
        "ssh", "-i", info.ssh_key, "-p", str(info.ssh_port),
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes",
        f"{info.ssh_user}@{info.address}", *command,
    ]
    os.execvp("ssh", args)


@rehearsal.command("snapshot")
@click.argument("name")
@click.argument("dest", type=click.Path(exists=False))
def snapshot_command(name: str, dest: str) -> None:
    """Copy the rootfs of running container host NAME to DEST (boot it with `up --rootfs DEST`)."""
    click.echo(snapshot(name, dest))


@rehearsal.group("vagrant", cls=RehearsalGroup)
def vagrant_group() -> None:
    """The Vagrant rehearsal: the repository's Vagrantfile on vagrant-libvirt, in a network namespace.

    \b
      lbstack rehearsal vagrant setup
      lbstack rehearsal vagrant run -- vagrant up --provider=libvirt
      lbstack rehearsal vagrant run -- pyinfra -y inventories/vagrant.py deploy/full.py
      lbstack rehearsal vagrant run -- vagrant destroy -f
      lbstack rehearsal vagrant down
    """


@vagrant_group.command("box")
@click.option("--force", is_flag=True, help="Rebuild and re-add even if this recipe's box is added.")
def vagrant_box(force: bool) -> None:
    """Build the libvirt box from the project's VM recipe (bare Debian 12) and add it as lbstack/bookworm64."""
    started = time.monotonic()
    added = vagrant.ensure_box(force)
    state = "built and added" if added else "already added"
    click.echo(f"{vagrant.BOX}: {state} ({time.monotonic() - started:.0f} s)")


@vagrant_group.command("setup")
@click.option("--owner", "owner_pid", type=click.IntRange(1), metavar="PID",
              help="Owner process: once it is gone, `reap` tears the set-up down.")
def vagrant_setup(owner_pid: int | None) -> None:
    """The box (built once, cached), the namespace, its apt proxy, and libvirt started inside it."""
    started = time.monotonic()
    vagrant.setup(owner_pid)
    click.echo(f"Vagrant rehearsal ready in {time.monotonic() - started:.0f} s: run vagrant, pyinfra "
               "and lbstack through `lbstack rehearsal vagrant run -- CMD ...`")


@vagrant_group.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def vagrant_run(command: tuple[str, ...]) -> None:
    """Run COMMAND inside the rehearsal's namespace, with the box name and VM size set."""
    args, env = vagrant.command(list(command))
    os.execvpe(args[0], args, env)


@vagrant_group.command("down")
def vagrant_down() -> None:
    """Remove the set-up: VMs still defined, vagrant's networks and volumes, libvirtd, the namespace."""
    click.echo("down" if vagrant.teardown() else "was not set up")
