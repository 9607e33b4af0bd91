"""Vagrant rehearsal: the repository's ``Vagrantfile`` booted by vagrant-libvirt on this machine.

Everything is made by :func:`setup` and removed again by :func:`teardown`:

- the box :data:`BOX` (``lbstack rehearsal vagrant box``): the VM recipe of :mod:`.vm`, the
  stack's Debian packages pre-installed as there (under TCG, dpkg was most of a converge from a
  bare box), plus the ``vagrant`` user with
  Vagrant's insecure public key (Vagrant swaps it for a key of its own on the first ``up``)
  and passwordless sudo; host keys are made on first boot. The disk is an ext4 file system
  without a boot loader (``mkfs.ext4 -d``, no loop mounts), so the box's own Vagrantfile boots
  the kernel and initrd shipped in the box. Cached: rebuilt only when the recipe changes;
- the network namespace :data:`NETNS`, joined to this machine by the veth :data:`VETH`
  (:data:`HOST_ADDRESS` here, :data:`NETNS_ADDRESS` there), with the apt proxy of
  :mod:`.aptproxy` on this side: the box's apt goes through it, to this machine's mirrors only;
- ``virtlogd`` and ``libvirtd`` started inside that namespace: the networks vagrant-libvirt
  makes (bridges, dnsmasq, NAT) exist only there, and this machine's IP forwarding stays off.

Whatever talks to the VM (``vagrant``, ``pyinfra``, ``lbstack``) runs inside the namespace:
:func:`command` (``lbstack rehearsal vagrant run -- CMD ...``), with :data:`BOX` and the
rehearsal's size in the environment the ``Vagrantfile`` reads.

The set-up records its owner like a rehearsal host (:mod:`.owner`): :func:`reap_stale` tears
down a set-up whose owner is gone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import aptconfig, owner
from .common import RehearsalError, locked, pid_matches, remove_tree, require_root, run, state_dir, stop_process, wait_until
from .rootfs import Recipe, base_recipe, cached_build
from .signals import holding_signals
from .tools import ensure_tools
from .vm import GUEST_PACKAGES, IMAGE_SIZE_BYTES, VM_FILES, build_disk, stack_packages

BOX = "lbstack/bookworm64"
BOX_ENV = "LBSTACK_VAGRANT_BOX"
# The rehearsal's VM size: the Vagrantfile's default is the production 8 vCPU / 16 GB; the plan
# stays 8/16 through inventories/vagrant.py's capacity override.
SIZE_ENV = {"LBSTACK_VAGRANT_CPUS": "2", "LBSTACK_VAGRANT_MEMORY_MIB": "4096"}
NETNS = "lbstack-vagrant"
VETH = "vlbsvg"  # this machine's side; the namespace's side is VETH_PEER
VETH_PEER = "vg0"
HOST_ADDRESS = "10.214.0.1"
NETNS_ADDRESS = "10.214.0.2"
PROXY_PORT = 3142
MACHINE = "lbstack"  # the machine name in the Vagrantfile: domains are named <dir>_lbstack
INSECURE_KEY_GLOB = "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub"
LIBVIRT_SOCKET = Path("/run/libvirt/libvirt-sock")
LIBVIRT_URI = "qemu:///system"
QEMU_CONF = Path("/etc/libvirt/qemu.conf")
# qemu runs as root: the box's kernel and initrd sit under root's VAGRANT_HOME (mode 0700)
QEMU_CONF_LINES = ('user = "root"', 'group = "root"')
QEMU_CONF_MARK = "# lbstack rehearsal (lbstack/rehearsal/vagrant.py)"
DAEMON_TIMEOUT_S = 30.0

# The box's own Vagrantfile: boot the kernel shipped in the box; TCG unless LBSTACK_VM_ACCEL=kvm
# (KVM does not boot a stock kernel on these machines), with the CPU model that works under TCG.
BOX_VAGRANTFILE = """\
# lbstack's locally built box (lbstack rehearsal vagrant box): a bare Debian 12 on an ext4 disk
# without a boot loader, booted with the kernel and initrd shipped in the box.
Vagrant.configure("2") do |config|
  config.vm.boot_timeout = 900
  config.vm.provider :libvirt do |lv|
    lv.driver = ENV.fetch("LBSTACK_VM_ACCEL", "tcg") == "kvm" ? "kvm" : "qemu"
    lv.cpu_mode = "custom"
    lv.cpu_model = "qemu64"
    lv.kernel = File.expand_path("../vmlinuz", __FILE__)
    lv.initrd = File.expand_path("../initrd.img", __FILE__)
    lv.cmd_line = "root=/dev/vda rw console=ttyS0"
    lv.disk_bus = "virtio"
    lv.disk_driver :cache => "unsafe"  # a rehearsal VM outlives nothing: no fsync to the disk
    lv.graphics_type = "none"
  end
end
"""
HOSTKEYS_UNIT = """\
[Unit]
Description=Generate this machine's own ssh host keys (a box ships without them)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=ssh.service
"""


@dataclass
class Setup:
    """What :func:`setup` started, saved as ``<state>/vagrant/setup.json``."""

    started_at: float
    owner_pid: int | None = None
    owner_start: int | None = None
    proxy_pid: int | None = None
    virtlogd_pid: int | None = None
    libvirtd_pid: int | None = None

    def save(self) -> None:
        path = _record()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        tmp.replace(path)

    def owner_gone(self) -> bool:
        return owner.owner_gone(self.owner_pid, self.owner_start)


def _record() -> Path:
    return state_dir() / "vagrant" / "setup.json"


def load() -> Setup | None:
    """The recorded set-up, or None."""
    path = _record()
    if not path.exists():
        return None
    return Setup(**json.loads(path.read_text()))


# --- the box ------------------------------------------------------------------------------------

def insecure_key() -> str:
    """Vagrant's well-known insecure public key, from the installed vagrant package."""
    found = sorted(Path("/").glob(INSECURE_KEY_GLOB.lstrip("/")))
    if not found:
        raise RehearsalError(f"no Vagrant insecure key at {INSECURE_KEY_GLOB}: is the vagrant package installed?")
    return found[-1].read_text()


def box_recipe() -> Recipe:
    """The box's recipe: the VM recipe's kernel, networking and stack packages, Vagrant's user."""
    proxy = f'Acquire::http::Proxy "http://{HOST_ADDRESS}:{PROXY_PORT}";\n'
    # DHCP on every NIC, as the VM's: named to sort after the 50-vagrant-<nic>.network files
    # Vagrant writes for its private networks, since networkd applies the first file that matches
    dhcp = next(content for path, content, _ in VM_FILES if path.startswith("/etc/systemd/network/"))
    files = tuple(item for item in VM_FILES if item[0] == "/etc/fstab") + (
        ("/etc/systemd/network/90-lbstack-box-dhcp.network", dhcp, 0o644),
        # vagrant-libvirt's management network: its dnsmasq is the resolver
        ("/etc/resolv.conf", "nameserver 192.168.121.1\n", 0o644),
        ("/etc/apt/apt.conf.d/80lbstack-rehearsal-proxy", proxy, 0o644),
        ("/etc/sudoers.d/vagrant", "vagrant ALL=(ALL) NOPASSWD:ALL\n", 0o440),
        ("/home/vagrant/.ssh/authorized_keys", insecure_key(), 0o600),
        ("/etc/systemd/system/lbstack-ssh-hostkeys.service", HOSTKEYS_UNIT, 0o644),
        # the box's Vagrantfile, kept in the image too: the recipe's digest (the cache key) covers it
        ("/usr/share/lbstack-box/Vagrantfile", BOX_VAGRANTFILE, 0o644),
    )
    commands = (
        ("useradd", "--shell", "/bin/bash", "--user-group", "vagrant"),
        ("chown", "-R", "vagrant:vagrant", "/home/vagrant"),
        ("find", "/etc/ssh", "-name", "ssh_host_*", "-delete"),
    )
    return base_recipe("vagrant-box", GUEST_PACKAGES + stack_packages(), files, commands, ("lbstack-ssh-hostkeys.service",))


def build_box(force: bool = False) -> Path:
    """The box file (``<state>/golden/vagrant-box-<digest>/lbstack.box``), built unless cached."""
    ensure_tools(vm=True, vagrant=True)
    recipe = box_recipe()
    return cached_build(recipe, force, lambda tmp, log: _build_box(recipe, tmp, log)) / "lbstack.box"


def _build_box(recipe: Recipe, dest: Path, log: Path) -> None:
    """Tree -> kernel + initrd + qcow2 ``box.img`` + metadata + Vagrantfile -> one tar."""
    dest.mkdir(parents=True)
    parts = dest / "parts"
    parts.mkdir()
    raw = dest / "disk.raw"
    build_disk(recipe, parts, raw, log)
    run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(parts / "box.img")])
    raw.unlink()
    metadata = {"provider": "libvirt", "format": "qcow2", "virtual_size": IMAGE_SIZE_BYTES // 1024**3,
                "lbstack_recipe": recipe.digest()}
    (parts / "metadata.json").write_text(json.dumps(metadata) + "\n")
    (parts / "Vagrantfile").write_text(BOX_VAGRANTFILE)
    run(["tar", "-C", str(parts), "-cf", str(dest / "lbstack.box"),
         "metadata.json", "Vagrantfile", "vmlinuz", "initrd.img", "box.img"])
    remove_tree(parts)


def vagrant_home() -> Path:
    return Path(os.environ.get("VAGRANT_HOME") or Path.home() / ".vagrant.d")


def added_box_digest() -> str | None:
    """The recipe digest of the box added under :data:`BOX`, or None if it is not added."""
    path = vagrant_home() / "boxes" / BOX.replace("/", "-VAGRANTSLASH-") / "0" / "libvirt" / "metadata.json"
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("lbstack_recipe")


def ensure_box(force: bool = False) -> bool:
    """Build the box if needed and add it as :data:`BOX` unless that exact build is added.

    Returns True if it was (re-)added.
    """
    box = build_box(force)
    if not force and added_box_digest() == box_recipe().digest():
        return False
    run(["vagrant", "box", "add", "--force", "--name", BOX, str(box)])
    return True


# --- the namespace and libvirt ---------------------------------------------------------------------

def _netns_exists() -> bool:
    return Path(f"/run/netns/{NETNS}").exists()


def _in_netns(cmd: list[str]) -> list[str]:
    return ["ip", "netns", "exec", NETNS, *cmd]


def _start_netns() -> None:
    """The namespace, its veth pair and addresses (loopback up)."""
    if _netns_exists():
        return
    run(["ip", "netns", "add", NETNS])
    run(["ip", "link", "add", VETH, "type", "veth", "peer", "name", VETH_PEER, "netns", NETNS])
    run(["ip", "addr", "add", f"{HOST_ADDRESS}/30", "dev", VETH])
    run(["ip", "link", "set", VETH, "up"])
    run(_in_netns(["ip", "link", "set", "lo", "up"]))
    run(_in_netns(["ip", "addr", "add", f"{NETNS_ADDRESS}/30", "dev", VETH_PEER]))
    run(_in_netns(["ip", "link", "set", VETH_PEER, "up"]))
    # what `ip netns exec` shows as /etc/resolv.conf inside: nothing beyond the namespace
    resolv = Path("/etc/netns") / NETNS / "resolv.conf"
    resolv.parent.mkdir(parents=True, exist_ok=True)
    resolv.write_text("# lbstack vagrant rehearsal: no resolver outside the namespace\nnameserver 127.0.0.1\n")


def _configure_qemu() -> None:
    """Make libvirt run qemu as root (the box's kernel is under root's 0700 home)."""
    text = QEMU_CONF.read_text()
    if QEMU_CONF_MARK in text:
        return
    QEMU_CONF.write_text(text.rstrip("\n") + "\n\n" + QEMU_CONF_MARK + "\n" + "\n".join(QEMU_CONF_LINES) + "\n")


def _daemon_running(name: str) -> list[int]:
    """Pids of running ``name`` daemons (exact program name)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv0 = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
                if Path(argv0).name == name and pid_matches(int(entry.name), name):
                    found.append(int(entry.name))
    return found


def _start_daemon(name: str, log: Path) -> int:
    """Start ``name`` (virtlogd or libvirtd) in the foreground inside the namespace; its pid."""
    with open(log, "a") as handle, holding_signals():
        process = subprocess.Popen(
            _in_netns([name]), stdin=subprocess.DEVNULL, stdout=handle, stderr=handle, start_new_session=True,
        )
    return process.pid


def _start_proxy(log: Path) -> int:
    allow = [arg for host in aptconfig.mirror_hosts() for arg in ("--allow", host)]
    script = str(Path(__file__).with_name("aptproxy.py"))
    with open(log, "a") as handle, holding_signals():
        process = subprocess.Popen(
            [sys.executable, script, "--listen", HOST_ADDRESS, "--port", str(PROXY_PORT), *allow],
            stdin=subprocess.DEVNULL, stdout=handle, stderr=handle, start_new_session=True,
        )
    return process.pid


def _virsh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["virsh", "-q", "-c", LIBVIRT_URI, *args]
    return run(cmd) if check else subprocess.run(cmd, capture_output=True, text=True)


def _libvirt_answers() -> bool:
    return LIBVIRT_SOCKET.exists() and _virsh("version", check=False).returncode == 0


def setup(owner_spec: int | str | None = "self", force_box: bool = False) -> Setup:
    """Everything ``vagrant up`` needs here (see the module doc); idempotent.

    ``owner_spec`` as for :func:`lbstack.rehearsal.up`: "self", a pid, or None (a person's).
    """
    require_root()
    ensure_tools(vm=True, vagrant=True)
    with locked(state_dir() / "vagrant" / ".lock"):
        current = load()
        if current and _alive(current):
            ensure_box(force_box)
            return current
        if current:
            _teardown(current)
        foreign = _daemon_running("libvirtd")
        if foreign:
            raise RehearsalError(
                f"a libvirtd not started by lbstack is running (pid {foreign[0]}): the Vagrant rehearsal "
                "runs its own inside a network namespace; stop that one first"
            )
        pid, start = owner.owner_record(owner_spec)
        info = Setup(started_at=time.time(), owner_pid=pid, owner_start=start)
        info.save()
        logs = _record().parent
        try:
            ensure_box(force_box)
            _configure_qemu()
            _start_netns()
            info.proxy_pid = _start_proxy(logs / "aptproxy.log")
            info.save()
            info.virtlogd_pid = _start_daemon("virtlogd", logs / "virtlogd.log")
            info.save()
            info.libvirtd_pid = _start_daemon("libvirtd", logs / "libvirtd.log")
            info.save()
            if not wait_until(_libvirt_answers, DAEMON_TIMEOUT_S, 0.5):
                raise RehearsalError(f"libvirtd did not answer within {DAEMON_TIMEOUT_S:.0f} s "
                                     f"(see {logs / 'libvirtd.log'})")
        except BaseException:
            _teardown(info)
            raise
        return info


def _alive(info: Setup) -> bool:
    return (_netns_exists() and pid_matches(info.libvirtd_pid, "libvirtd")
            and pid_matches(info.virtlogd_pid, "virtlogd") and pid_matches(info.proxy_pid, "aptproxy.py"))


def command(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """``args`` as run inside the namespace, and its environment (the box name, the VM size)."""
    if not _netns_exists():
        raise RehearsalError("the Vagrant rehearsal is not set up: run `lbstack rehearsal vagrant setup`")
    env = dict(os.environ)
    env.setdefault(BOX_ENV, BOX)
    for key, value in SIZE_ENV.items():
        env.setdefault(key, value)
    return _in_netns(args), env


def domains() -> list[str]:
    """Names of the libvirt domains of Vagrantfile machines (``*_lbstack``), running or not."""
    result = _virsh("list", "--all", "--name", check=False)
    return [name for name in result.stdout.split() if name.endswith(f"_{MACHINE}")]


def vagrant_networks() -> list[str]:
    """The libvirt networks Vagrant made: every one but libvirt's own ``default`` (this libvirt
    is the rehearsal's: :func:`setup` refuses to run beside another). vagrant-libvirt names its
    management network ``vagrant-libvirt`` and a private network after the project directory."""
    return [name for name in _virsh("net-list", "--all", "--name", check=False).stdout.split() if name != "default"]


def leftovers() -> dict[str, list[str]]:
    """What ``vagrant destroy`` should have removed: domains, their volumes, Vagrant's networks."""
    volumes = _virsh("vol-list", "default", check=False).stdout.splitlines()
    return {
        "domains": domains(),
        "volumes": [line.split()[0] for line in volumes if line.split() and f"_{MACHINE}" in line.split()[0]],
        "networks": vagrant_networks(),
    }


def teardown() -> bool:
    """Remove everything :func:`setup` made (and any VM still running): False if nothing was set up."""
    require_root()
    with locked(state_dir() / "vagrant" / ".lock"):
        info = load()
        if info is None and not _netns_exists():
            return False
        _teardown(info or Setup(started_at=0.0))
        return True


def _teardown(info: Setup) -> None:
    """Domains, networks and volumes vagrant left; libvirtd, its dnsmasq, virtlogd, the proxy;
    the namespace (its bridges and taps go with it) and the record."""
    with holding_signals():
        if pid_matches(info.libvirtd_pid, "libvirtd") and _libvirt_answers():
            for name in domains():
                _virsh("destroy", name, check=False)
                _virsh("undefine", name, "--remove-all-storage", "--nvram", check=False)
            for name in vagrant_networks():
                _virsh("net-destroy", name, check=False)
                _virsh("net-undefine", name, check=False)
            for line in _virsh("vol-list", "default", check=False).stdout.splitlines():
                volume = line.split()[0] if line.split() else ""
                if volume.startswith(BOX.replace("/", "-VAGRANTSLASH-")) or f"_{MACHINE}" in volume:
                    _virsh("vol-delete", "--pool", "default", volume, check=False)
        stop_process(info.libvirtd_pid, "libvirtd", 20.0)
        # libvirt's dnsmasq and any qemu left run on their own once libvirtd is gone
        for pid in _netns_pids():
            stop_process(pid, "", 10.0)
        stop_process(info.virtlogd_pid, "virtlogd", 10.0)
        stop_process(info.proxy_pid, "aptproxy.py", 10.0)
        if _netns_exists():
            run(["ip", "netns", "delete", NETNS])
        # the veth goes with the namespace, a moment later
        link = Path(f"/sys/class/net/{VETH}")
        if not wait_until(lambda: not link.exists(), 5.0) and subprocess.run(
                ["ip", "link", "delete", VETH], capture_output=True).returncode != 0 and link.exists():
            raise RehearsalError(f"cannot delete the veth {VETH}")
        remove_tree(Path("/etc/netns") / NETNS)
        with contextlib.suppress(FileNotFoundError):
            _record().unlink()


def _netns_pids() -> list[int]:
    """Processes still in the namespace (``ip netns pids``)."""
    if not _netns_exists():
        return []
    result = subprocess.run(["ip", "netns", "pids", NETNS], capture_output=True, text=True)
    return [int(pid) for pid in result.stdout.split() if pid.isdigit() and int(pid) != os.getpid()]


def reap_stale() -> list[str]:
    """Tear the set-up down if its owner is gone; what of it was there (empty if nothing was
    reaped), e.g. ``["namespace lbstack-vagrant", "processes 812 libvirtd, 809 virtlogd"]``."""
    info = load()
    if info is None or not info.owner_gone():
        return []
    with locked(state_dir() / "vagrant" / ".lock"):
        found = [f"{kind} {', '.join(items)}" for kind, items in lingering().items() if items and kind != "record"]
        _teardown(info)
    return found or ["its record"]


def lingering() -> dict[str, list[str]]:
    """What of a set-up is on this machine (all empty once :func:`teardown` or a reap ran): the
    namespace, the veth, libvirt's daemons and their dnsmasq, a VM of the Vagrantfile, the apt
    proxy, the box's volumes in libvirt's pool, the record."""
    processes = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        name = Path(cmdline.split(b"\0")[0].decode(errors="replace")).name
        if name in ("libvirtd", "virtlogd") or (name == "dnsmasq" and b"/libvirt/" in cmdline) or (
                name == "qemu-system-x86_64" and f"_{MACHINE}".encode() in cmdline) or (
                b"aptproxy.py" in cmdline and f"--listen\0{HOST_ADDRESS}\0".encode() in cmdline):
            processes.append(f"{entry.name} {name}")
    images = Path("/var/lib/libvirt/images")
    return {
        "namespace": [NETNS] if _netns_exists() else [],
        "veth": [VETH] if Path(f"/sys/class/net/{VETH}").exists() else [],
        "processes": processes,
        "volumes": [p.name for p in images.glob("*lbstack*")] if images.exists() else [],
        "record": [str(_record())] if _record().exists() else [],
    }
