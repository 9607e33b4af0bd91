"""Shared pieces of the rehearsal hosts: state dir, HostInfo records, processes, ssh.

Every host lives in ``<state>/hosts/<name>/``; its ``host.json`` records everything
teardown needs, so ``down`` works from a fresh process and after a crash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator

import paramiko

from . import owner

STATE_ENV = "LBSTACK_REHEARSAL_DIR"
DEFAULT_STATE_DIR = "/var/lib/lbstack-rehearsal"
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class RehearsalError(Exception):
    """An expected failure with a message meant for the user (no traceback)."""


@dataclass
class HostInfo:
    """A running rehearsal host, saved as ``<state>/hosts/<name>/host.json``."""

    name: str  # rehearsal host name (also the container/VM hostname)
    kind: str  # "nspawn" or "vm"
    address: str  # where sshd answers: container veth address or 127.0.0.1 for VMs
    ssh_port: int  # 22 for containers, a forwarded loopback port for VMs
    ssh_user: str  # always "root"
    ssh_key: str  # path of the private key accepted by the host
    pid: int  # systemd-nspawn or qemu process id
    host_dir: str  # <state>/hosts/<name>
    started_at: float  # unix time of `up`
    index: int | None = None  # nspawn: network index, addresses 10.213.<index>.1/.2
    veth: str | None = None  # nspawn: host-side veth interface name
    cgroups: list[str] = field(default_factory=list)  # nspawn: nspawn-<name> dir per hierarchy
    proxy_pid: int | None = None  # nspawn: apt proxy process id
    proxy_address: str | None = None  # nspawn: "10.213.<index>.1:3142"
    rootfs: str | None = None  # nspawn: the host's own rootfs copy
    image: str | None = None  # vm: golden image dir the overlay is backed by
    overlay: str | None = None  # vm: qcow2 overlay over the golden image
    accel: str | None = None  # vm: "kvm" or "tcg"
    serial_log: str | None = None  # vm: serial console log
    owner_pid: int | None = None  # process that owns the host (None: a person's, never reaped)
    owner_start: int | None = None  # its start time, /proc/<pid>/stat field 22 (pid reuse check)
    net: str | None = None  # nspawn: the rehearsal network it is on (:mod:`.network`), if any
    private_address: str | None = None  # its address on that network (10.214.<net>.<index>)

    def owner_gone(self) -> bool:
        """True if the host has an owner process and it is gone: ``reap_stale`` tears it down."""
        return owner.owner_gone(self.owner_pid, self.owner_start)

    def save(self) -> None:
        """Write this record to its host.json (atomically)."""
        path = Path(self.host_dir) / "host.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        tmp.replace(path)


def state_dir() -> Path:
    """The state dir (``$LBSTACK_REHEARSAL_DIR`` or /var/lib/lbstack-rehearsal), created 0700."""
    path = Path(os.environ.get(STATE_ENV, DEFAULT_STATE_DIR))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def hosts_dir() -> Path:
    """Directory holding one sub-directory per host."""
    path = state_dir() / "hosts"
    path.mkdir(exist_ok=True)
    return path


def host_dir(name: str) -> Path:
    """The directory of host ``name`` (not created)."""
    return hosts_dir() / name


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid host name (also used as hostname), else raise."""
    if not NAME_RE.match(name):
        raise RehearsalError(
            f"invalid host name {name!r}: use 1-31 of a-z, 0-9 and '-', starting with a letter"
        )
    return name


def require_root() -> None:
    """Raise unless running as root (cgroups, veths, mmdebstrap and apt need it)."""
    if os.geteuid() != 0:
        raise RehearsalError("rehearsal hosts need root: run as root (e.g. with sudo)")


def load_host(path: Path) -> HostInfo:
    """Read one host.json (unknown keys, from a newer version, are ignored)."""
    known = {f.name for f in dataclasses.fields(HostInfo)}
    return HostInfo(**{k: v for k, v in json.loads(path.read_text()).items() if k in known})


def list_hosts() -> list[HostInfo]:
    """All recorded hosts, sorted by name (including ones whose process died)."""
    files = sorted(hosts_dir().glob("*/host.json"))
    return [load_host(path) for path in files]


def get_host(name: str) -> HostInfo:
    """The record of host ``name``; RehearsalError if there is none."""
    path = host_dir(name) / "host.json"
    if not path.exists():
        raise RehearsalError(f"no rehearsal host named {name!r} (see `lbstack rehearsal list`)")
    return load_host(path)


def pyinfra_host(info: HostInfo) -> tuple[str, dict]:
    """The ``(name, data)`` inventory entry that reaches ``info`` with pyinfra's @ssh connector."""
    return info.name, {
        "ssh_hostname": info.address,
        "ssh_port": info.ssh_port,
        "ssh_user": info.ssh_user,
        "ssh_key": info.ssh_key,
        "ssh_known_hosts_file": "/dev/null",
        "ssh_strict_host_key_checking": "no",
        "ssh_allow_agent": False,
        "ssh_look_for_keys": False,
        # how the other hosts of a split stack reach it (lbstack.topology.private_address)
        **({"private_address": info.private_address} if info.private_address else {}),
    }


def reclaim_name(name: str, kind: str, alive, teardown) -> None:
    """Before ``up``: refuse if ``name`` is up or of another kind; tear a stale record down.

    A record is stale if its process died, or if its owner process is gone. Call with the
    state lock held. ``alive`` and ``teardown`` are the kind's own functions.
    """
    record = host_dir(name) / "host.json"
    if not record.exists():
        return
    stale = load_host(record)
    if stale.kind != kind:
        raise RehearsalError(f"{name!r} is a {stale.kind} host: run `lbstack rehearsal down {name}`")
    if alive(stale) and not stale.owner_gone():
        raise RehearsalError(f"host {name!r} is already up (`lbstack rehearsal down {name}`)")
    teardown(stale)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command, raising RehearsalError with its stderr tail when it fails."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    result = subprocess.run(cmd, **kwargs)
    if result.returncode != 0:
        tail = (result.stderr or "")[-2000:].strip()
        raise RehearsalError(f"`{' '.join(cmd[:3])} ...` failed (exit {result.returncode}): {tail}")
    return result


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a root file system tree, keeping owners, modes, xattrs and hard links."""
    if not src.is_dir():
        raise RehearsalError(f"rootfs {src} is not a directory")
    run(["cp", "-a", "--reflink=auto", str(src), str(dest)])


def sync_tree(src: Path, dest: Path) -> None:
    """Make ``dest`` (a copy of ``src`` made earlier) equal to ``src`` again: files added, changed
    (size or mtime to the nanosecond) or removed since, with owners, modes, ACLs, xattrs and hard
    links. On an idle host that is under a second, against 15 s for a whole 1.4 GB copy."""
    if not src.is_dir() or not dest.is_dir():
        raise RehearsalError(f"cannot sync {src} to {dest}: both must be directories")
    run(["rsync", "-aHAX", "--numeric-ids", "--delete", "--modify-window=-1", f"{src}/", f"{dest}/"])


def remove_tree(path: Path) -> None:
    """Delete a directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def pid_matches(pid: int | None, marker: str) -> bool:
    """True if ``pid`` is a live (non-zombie) process whose command line contains ``marker``.

    The marker guards against killing an unrelated process that reused a stale pid.
    """
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z" and marker in cmdline


def wait_exec(pid: int, program: str, timeout_s: float = 30.0) -> None:
    """Wait until ``pid`` runs ``program`` (its argv[0]) or has exited.

    Right after ``Popen`` returns, the child may still be inside execve: its command line
    reads empty until the new program's arguments are set up, so :func:`pid_matches` would
    call a starting host dead (CI's VM boot failed at once on that, with an empty log, and the
    qemu left running held the overlay's lock against the second boot).
    """
    def running() -> bool:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0] == program.encode()
        return False

    if not wait_until(lambda: running() or exited(pid), timeout_s, 0.02):
        raise RehearsalError(f"process {pid} did not start {program} in {timeout_s:.0f} s")


def reap(pid: int) -> int | None:
    """Collect ``pid`` if it is an exited child of this process (no zombie left behind); its
    wait status (``os.waitstatus_to_exitcode`` reads it), or None."""
    with contextlib.suppress(ChildProcessError, OSError):
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return status
    return None


def exited(pid: int) -> bool:
    """True once ``pid`` is gone, or a zombie with none of its threads left: its files (and
    qemu's image locks) are closed.

    A process in the middle of exiting has an empty command line (its memory is released
    first) while it still holds its files, so "not pid_matches" is not yet "exited". Nor is a
    zombie main thread: the process's other threads (qemu's vCPUs) hold the files until the last
    of them is gone, which for a guest with gigabytes of memory can take seconds.
    """
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state == "Z" and threads <= 1


def exit_description(status: int | None) -> str:
    """``exit code N`` / ``killed by SIGKILL`` for a wait status from :func:`reap`."""
    if status is None:
        return "exit status unknown (not this process's child)"
    code = os.waitstatus_to_exitcode(status)
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


def stop_process(pid: int | None, marker: str, timeout_s: float) -> int | None:
    """SIGTERM ``pid`` if it still is our process (``marker``), SIGKILL after ``timeout_s``.

    Returns once the process has fully exited (and is reaped, if it is our child), with its
    wait status when it was our child (:func:`exit_description`), else None.
    """
    if not pid:
        return None
    if not pid_matches(pid, marker):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            if not Path(f"/proc/{pid}/cmdline").read_bytes():  # ours, in the middle of exiting
                # a qemu whose KVM start failed can take many seconds to release its image lock
                wait_until(lambda: exited(pid), 60.0)
        return reap(pid)
    for signum, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        if wait_until(lambda: exited(pid), wait_s):
            return reap(pid)
    raise RehearsalError(f"process {pid} ({marker}) did not exit after SIGKILL")


def pids_matching(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker`` (not this process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and pid_matches(int(entry.name), marker):
            found.append(int(entry.name))
    return found


def stop_processes(pid: int | None, marker: str, timeout_s: float) -> None:
    """:func:`stop_process` of ``pid`` and of any other process with ``marker`` in its command line.

    A run killed between starting a process and recording its pid leaves one nobody knows
    the pid of; the marker (unique to the host) still finds it.
    """
    stop_process(pid, marker, timeout_s)
    for stray in pids_matching(marker):
        stop_process(stray, marker, timeout_s)


def wait_until(predicate, timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``predicate`` until it is true (-> True) or ``timeout_s`` passes (-> False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def ssh_connect(info: HostInfo, timeout_s: float = 10.0) -> paramiko.SSHClient:
    """An authenticated paramiko client for ``info`` (host keys are not checked)."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        client.connect(
            info.address,
            port=info.ssh_port,
            username=info.ssh_user,
            key_filename=info.ssh_key,
            allow_agent=False,
            look_for_keys=False,
            timeout=timeout_s,
            banner_timeout=timeout_s,
            auth_timeout=timeout_s,
        )
    except BaseException:
        client.close()
        raise
    return client


def ssh_run(info: HostInfo, command: str, timeout_s: float = 60.0) -> tuple[int, str, str]:
    """Run ``command`` on the host over ssh; returns (exit status, stdout, stderr)."""
    client = ssh_connect(info)
    try:
        _, stdout, stderr = client.exec_command(command, timeout=timeout_s)
        out = stdout.read().decode(errors="replace")
        err = stderr.read().decode(errors="replace")
        return stdout.channel.recv_exit_status(), out, err
    finally:
        client.close()


def wait_for_ssh(info: HostInfo, timeout_s: float, alive, log: Path) -> None:
    """Wait until ``true`` runs over ssh.

    Raises RehearsalError, quoting the tail of the boot ``log``, after ``timeout_s`` or as
    soon as ``alive()`` reports that the host process exited.
    """
    transport_log = logging.getLogger("paramiko.transport")
    level = transport_log.level
    transport_log.setLevel(logging.CRITICAL)  # refused/banner errors while booting are expected
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if not alive():
                raise RehearsalError(f"{info.name}: host process exited while booting, {_tail(log)}")
            with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
                if ssh_run(info, "true", timeout_s=10)[0] == 0:
                    return
            time.sleep(0.5)
    finally:
        transport_log.setLevel(level)
    raise RehearsalError(
        f"{info.name}: ssh on {info.address}:{info.ssh_port} did not answer in {timeout_s:.0f} s, "
        + _tail(log)
    )


def _tail(log: Path, chars: int = 1500) -> str:
    """``log <path>:`` and the last ``chars`` of that file, for error messages."""
    text = log.read_text(errors="replace")[-chars:] if log.exists() else "(missing)"
    return f"log {log}:\n{text}"
