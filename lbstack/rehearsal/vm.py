"""VM rehearsal hosts: qemu with a real Debian kernel and real cgroup v2, reached over ssh.

The golden image is the container recipe plus :data:`GUEST_PACKAGES` (see :func:`vm_recipe`),
turned into an ext4 disk with ``mkfs.ext4 -d`` (no loop mounts) and cached by recipe digest.
The stack's Debian packages are pre-installed too (:func:`stack_packages`): under TCG, dpkg alone
would take ~10 minutes; the VM tier proves the real kernel's behaviour (cgroup v2), while the
container tier proves converging from a bare host. All configuration is the deploy's. Each VM
boots a qcow2 overlay on that image with ``-kernel/-initrd`` from the tree and user-mode
networking; sshd is forwarded to a free port on 127.0.0.1 and apt reaches the machine's own
mirrors through qemu's user network. KVM is used when it works (a kernel that prints nothing
on the serial console within :data:`KVM_PROBE_S` counts as hung), otherwise TCG.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .common import (
    HostInfo, RehearsalError, check_name, exit_description, host_dir, load_host, locked, pid_matches, reclaim_name,
    remove_tree, require_root, run, state_dir, stop_process, stop_processes, wait_exec, wait_for_ssh, wait_until,
)
from .rootfs import Recipe, base_recipe, build_tree, cached_build, ssh_key
from .signals import holding_signals
from .tools import ensure_tools

ACCEL_ENV = "LBSTACK_VM_ACCEL"
# On top of the container recipe: a kernel that boots from /dev/vda, udev/kmod for it, and
# nss-myhostname, since the host name comes from the kernel command line, not /etc/hosts.
GUEST_PACKAGES = ("linux-image-amd64", "initramfs-tools", "udev", "kmod", "libnss-myhostname")
# DHCP on the NIC from qemu's user network; its DNS forwarder is always 10.0.2.3.
VM_FILES = (
    ("/etc/systemd/network/10-lbstack-rehearsal.network",
     "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n", 0o644),
    ("/etc/resolv.conf", "nameserver 10.0.2.3\n", 0o644),
    ("/etc/fstab", "/dev/vda / ext4 rw,errors=remount-ro 0 1\n", 0o644),
)
IMAGE_SIZE_BYTES = 16 * 1024**3  # sparse; room for the stack's packages and data
KVM_PROBE_S = 15.0
BOOT_TIMEOUT_S = 300.0
FIRST_BOOT_WAIT_S = 120.0  # first attempt's ssh wait before booting again


def stack_packages() -> tuple[str, ...]:
    """The packages the deploy installs with default settings (:mod:`lbstack.packages`, so the
    image follows the deploy)."""
    from lbstack import packages
    from lbstack.settings import Settings

    return tuple(packages.everything(Settings()))


def vm_recipe() -> Recipe:
    """The golden VM image recipe: base packages + GUEST_PACKAGES + the stack's packages, DHCP networking."""
    return base_recipe("vm", GUEST_PACKAGES + stack_packages(), VM_FILES)


def build_image(force: bool = False) -> Path:
    """The golden image dir (``disk.raw``, ``vmlinuz``, ``initrd.img``), built unless cached."""
    ensure_tools(vm=True)
    recipe = vm_recipe()
    return cached_build(recipe, force, lambda tmp, log: _build_image(recipe, tmp, log))


def _build_image(recipe: Recipe, dest: Path, log: Path) -> None:
    dest.mkdir(parents=True)
    build_disk(recipe, dest, dest / "disk.raw", log)


def build_disk(recipe: Recipe, boot_dir: Path, disk: Path, log: Path) -> None:
    """Build the tree (next to ``disk``), copy its kernel and initrd into ``boot_dir`` (``vmlinuz``,
    ``initrd.img``), and pack the tree into the ext4 image ``disk``; the tree is removed after."""
    tree = disk.with_name("tree")
    build_tree(recipe, tree, log)
    for prefix, target in (("vmlinuz-", "vmlinuz"), ("initrd.img-", "initrd.img")):
        found = sorted((tree / "boot").glob(prefix + "*"))
        if not found:
            raise RehearsalError(f"no /boot/{prefix}* in the {recipe.name} tree (see {log})")
        shutil.copy(found[-1], boot_dir / target)
    with open(disk, "wb") as handle:
        handle.truncate(IMAGE_SIZE_BYTES)
    run(["mkfs.ext4", "-q", "-F", "-L", "lbstack-root", "-d", str(tree), str(disk)])
    remove_tree(tree)


def up(
    name: str, memory_mib: int = 4096, cpus: int = 2, timeout_s: float = BOOT_TIMEOUT_S,
    owner: tuple[int | None, int | None] = (None, None),
) -> HostInfo:
    """Boot VM host ``name`` on a fresh overlay and wait until ssh answers; returns its record.

    ``$LBSTACK_VM_ACCEL`` (``kvm`` or ``tcg``) forces the accelerator. ``owner`` is the
    ``(owner_pid, owner_start)`` recorded from the start (see :mod:`.owner`). On failure
    everything started so far is torn down again.
    """
    require_root()
    check_name(name)
    accels = accelerators()
    image = build_image()
    info = _register(name, image, owner)
    try:
        # A boot normally answers ssh in ~20 s (TCG). A qemu that exits or a guest that hangs
        # is booted once more on a new overlay, its logs and qemu's exit status kept, before
        # giving up.
        for attempt, wait_s in ((1, min(timeout_s, FIRST_BOOT_WAIT_S)), (2, timeout_s)):
            Path(info.overlay).unlink(missing_ok=True)
            run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image / "disk.raw"), "-F", "raw",
                 info.overlay])
            _boot(info, image, accels, memory_mib, cpus)
            try:
                wait_for_ssh(info, wait_s, alive=lambda: alive(info), log=Path(info.host_dir) / "qemu.log")
                break
            except RehearsalError as exc:
                # until every qemu thread is gone (they hold the overlay's lock), then its status
                status = exit_description(stop_process(info.pid, _marker(info.name), 10.0))
                with open(Path(info.host_dir) / "boot.log", "a") as log:
                    log.write(f"attempt {attempt}: {exc}; qemu {status}\n")
                if attempt == 2:
                    raise RehearsalError(f"{exc} (qemu: {status})") from exc
                _keep_logs(info)
                print(f"{name}: boot attempt {attempt} failed (qemu: {status}), booting again: {exc}",
                      file=sys.stderr)
    except BaseException:
        _keep_logs(info)
        down(name)
        raise
    return info


def _keep_logs(info: HostInfo) -> None:
    """Copy a failed boot's logs to <state>/failed/<name>-<time>/ before teardown removes them."""
    dest = state_dir() / "failed" / f"{info.name}-{int(time.time())}"
    dest.mkdir(parents=True, exist_ok=True)
    for log in ("serial.log", "qemu.log", "boot.log"):
        source = Path(info.host_dir) / log
        if source.exists():
            shutil.copy(source, dest / log)
    print(f"{info.name}: boot logs kept in {dest}", file=sys.stderr)


def down(name: str, when: Callable[[HostInfo], bool] | None = None) -> bool:
    """Kill the VM's qemu and delete its overlay and logs; False if there was nothing to do.

    host.json goes last, so a ``down`` killed part-way leaves a record the next one finishes.
    With ``when``, only a recorded host for which ``when(record)`` is true (checked under the
    state lock) is torn down.
    """
    check_name(name)
    path = host_dir(name)
    record = path / "host.json"
    with holding_signals(), locked(state_dir() / ".lock"):
        if not path.exists():
            return False
        if record.exists():
            info = load_host(record)
            if when is not None and not when(info):
                return False
            _release(info)
        elif when is not None:
            return False
        for entry in path.iterdir():
            if entry.name != "host.json":
                remove_tree(entry)
        record.unlink(missing_ok=True)
        path.rmdir()
    return True


def alive(info: HostInfo) -> bool:
    """True if the VM's qemu process is still running."""
    return pid_matches(info.pid, _marker(info.name))


def accelerators() -> list[str]:
    """Accelerators to try in order: the forced one, else KVM (if /dev/kvm is usable) then TCG."""
    forced = os.environ.get(ACCEL_ENV, "")
    if forced:
        if forced not in ("kvm", "tcg"):
            raise RehearsalError(f"{ACCEL_ENV} must be kvm or tcg, not {forced!r}")
        return [forced]
    usable = os.access("/dev/kvm", os.R_OK | os.W_OK)
    return ["kvm", "tcg"] if usable else ["tcg"]


def _marker(name: str) -> str:
    """Command-line fragment identifying this VM's qemu process."""
    return f"-name lbstack-{name} "


def _register(name: str, image: Path, owner: tuple[int | None, int | None]) -> HostInfo:
    """Claim ``name``: refuse if it is up, tear down a stale record, write the initial host.json."""
    path = host_dir(name)
    with locked(state_dir() / ".lock"):
        reclaim_name(name, "vm", alive, _teardown)
        if (path / "rootfs").exists():
            raise RehearsalError(f"{path} holds a kept rootfs: `lbstack rehearsal down {name}` deletes it")
        remove_tree(path)
        path.mkdir(parents=True)
        info = HostInfo(
            name=name, kind="vm", address="127.0.0.1", ssh_port=0, ssh_user="root",
            ssh_key=str(ssh_key()), pid=0, host_dir=str(path), started_at=time.time(),
            image=str(image), overlay=str(path / "overlay.qcow2"), serial_log=str(path / "serial.log"),
            owner_pid=owner[0], owner_start=owner[1],
        )
        info.save()
    return info


def _boot(info: HostInfo, image: Path, accels: list[str], memory_mib: int, cpus: int) -> None:
    """Start qemu with the first of ``accels`` that starts a kernel; why others failed goes to boot.log."""
    with open(Path(info.host_dir) / "boot.log", "a") as log:
        for accel in accels[:-1]:
            _start_qemu(info, image, accel, memory_mib, cpus)
            problem = _probe_kernel(info)
            if problem is None:
                return
            log.write(f"{accel}: {problem}; falling back\n")
            stop_process(info.pid, _marker(info.name), 5.0)
    _start_qemu(info, image, accels[-1], memory_mib, cpus)


def _start_qemu(info: HostInfo, image: Path, accel: str, memory_mib: int, cpus: int) -> None:
    """Start qemu for ``info`` in its own session and record its pid, port and accelerator."""
    info.accel = accel
    info.ssh_port = _free_port()
    Path(info.serial_log).unlink(missing_ok=True)
    accel_args = ["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg,thread=multi"]
    command = [
        "qemu-system-x86_64", "-name", f"lbstack-{info.name}", *accel_args,
        "-smp", str(cpus), "-m", str(memory_mib),
        "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
        "-append", f"root=/dev/vda rw console=ttyS0 systemd.hostname={info.name}",
        "-drive", f"file={info.overlay},if=virtio,format=qcow2",
        "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{info.ssh_port}-:22",
        "-device", "virtio-net-pci,netdev=n0",
        "-serial", f"file:{info.serial_log}", "-display", "none", "-monitor", "none",
    ]
    with open(Path(info.host_dir) / "qemu.log", "a") as log, holding_signals():
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
        info.pid = process.pid
        info.save()
    wait_exec(info.pid, command[0])


def _probe_kernel(info: HostInfo) -> str | None:
    """None once the serial console shows the kernel banner, else why not (within KVM_PROBE_S)."""
    serial = Path(info.serial_log)
    banner = lambda: serial.exists() and b"Linux version" in serial.read_bytes()  # noqa: E731
    wait_until(lambda: banner() or not alive(info), KVM_PROBE_S, 0.5)
    if banner():
        return None
    if not alive(info):
        return "qemu exited: " + (Path(info.host_dir) / "qemu.log").read_text()[-1000:].strip()
    return f"no kernel output in {KVM_PROBE_S:.0f} s (hung)"


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _teardown(info: HostInfo) -> None:
    """:func:`_release` the VM, then forget it."""
    with holding_signals():
        _release(info)
        (Path(info.host_dir) / "host.json").unlink(missing_ok=True)


def _release(info: HostInfo) -> None:
    """Kill qemu (the overlay is thrown away, so no clean guest shutdown is needed), also one
    whose pid was never recorded (found by its command line)."""
    stop_processes(info.pid, _marker(info.name), 10.0)
