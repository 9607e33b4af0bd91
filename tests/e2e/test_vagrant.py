"""The README's Vagrant steps, run as written: the locally built box booted by vagrant-libvirt
(``vagrant up``), converged through ``inventories/vagrant.py`` (the ``@vagrant`` connector, sudo),
``lbstack status`` healthy, ``vagrant destroy -f`` leaving no domain, volume or network, and the
set-up torn down leaving no namespace, veth, bridge or daemon.

This is also the suite's converge on a real kernel with cgroup v2 (the container tier's is cgroup
v1): the converge's verification reads every planned limit back from the cgroup v2 files
(``memory.high`` included), and after `lbstack status` busy loops in the cache slice stay near its CPU
quota and a process over the slice's MemoryMax is OOM-killed.

The steps are read from the README's block marked ``vagrant-steps`` and run from a copy of the
checkout (``.venv`` linked in), so a Vagrant machine of the checkout itself is never touched.
The one addition: ``setup`` gets ``--owner`` this pytest process, so a run killed with SIGKILL
is reaped by the next session. The box carries the stack's Debian packages, as the VM image does.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from lbstack import REPO_ROOT
from lbstack.plan import make_plan
from lbstack.rehearsal import vagrant
from lbstack.settings import load

from e2e_helpers import TIMINGS

pytestmark = pytest.mark.vm

MARK = "<!-- vagrant-steps:"
TIMEOUTS_S = {"setup": 1200, "vagrant up": 900, "deploy/full.py": 2400, "status": 300, "destroy": 300, "down": 120}


def readme_steps() -> list[str]:
    """The command lines of the README's ``vagrant-steps`` block."""
    text = (REPO_ROOT / "README.md").read_text()
    after = text.split(MARK, 1)[1]
    block = re.search(r"```sh\n(.*?)```", after, re.S)
    assert block, "the README's vagrant-steps marker is not followed by a ```sh block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def _timeout(line: str) -> int:
    return next((seconds for key, seconds in TIMEOUTS_S.items() if key in line), 600)


def _checkout_copy(dest: Path) -> Path:
    """The tracked files of the checkout (as `git clone` gives them) plus a link to its .venv."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO_ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = REPO_ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode & 0o777)
    (dest / ".venv").symlink_to(REPO_ROOT / ".venv")
    return dest


NETWORK_XML = """<network><name>lbstack-reap-test</name><forward mode='nat'/>
<bridge name='virbrlbreap' stp='off' delay='0'/>
<ip address='192.168.123.1' netmask='255.255.255.0'><dhcp><range start='192.168.123.2' end='192.168.123.9'/></dhcp></ip>
</network>"""


def test_a_setup_whose_owner_was_killed_is_reaped_with_its_libvirt_bridges_and_namespace(tmp_path):
    """A test run killed with SIGKILL cannot tear its set-up down: the next `reap` (or session)
    does, bridges and dnsmasq of libvirt's networks included."""
    owner = subprocess.Popen(["sleep", "600"])
    try:
        lbstack = str(REPO_ROOT / ".venv" / "bin" / "lbstack")
        proc = subprocess.run([lbstack, "rehearsal", "vagrant", "setup", "--owner", str(owner.pid)],
                              capture_output=True, text=True, timeout=TIMEOUTS_S["setup"])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # a libvirt network with its bridge and dnsmasq, as `vagrant up` makes them
        (tmp_path / "net.xml").write_text(NETWORK_XML)
        subprocess.run(["virsh", "-c", vagrant.LIBVIRT_URI, "net-create", str(tmp_path / "net.xml")],
                       check=True, capture_output=True, timeout=60)
        bridges = subprocess.run(["ip", "netns", "exec", vagrant.NETNS, "ip", "-o", "link", "show", "virbrlbreap"],
                                 capture_output=True, text=True, timeout=30)
        assert bridges.returncode == 0, bridges.stderr  # the bridge is in the namespace ...
        assert not Path("/sys/class/net/virbrlbreap").exists()  # ... not on this machine
        present = vagrant.lingering()
        assert present["namespace"] and present["veth"] and len(present["processes"]) >= 4, present
        owner.kill()
        owner.wait()
        reap = subprocess.run([lbstack, "rehearsal", "reap"], capture_output=True, text=True, timeout=120)
        assert reap.returncode == 0 and f"owner process {owner.pid} is gone" in reap.stdout, reap.stdout + reap.stderr
        assert vagrant.lingering() == {"namespace": [], "veth": [], "processes": [], "volumes": [], "record": []}
    finally:
        owner.kill()
        vagrant.teardown()


def test_readme_vagrant_steps_boot_converge_and_leave_nothing(tmp_path, session_vms_paused):
    steps = readme_steps()
    assert [s.split(" -- ")[-1].split()[0] for s in steps if " -- " in s] == [
        "vagrant", ".venv/bin/pyinfra", ".venv/bin/lbstack", "vagrant"], steps
    workdir = _checkout_copy(tmp_path / "checkout")
    outputs: dict[str, str] = {}
    set_up = False
    try:
        for line in steps:
            argv = shlex.split(line)
            if argv[1:4] == ["rehearsal", "vagrant", "setup"]:
                argv += ["--owner", str(os.getpid())]
                set_up = True
            started = time.monotonic()
            proc = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=_timeout(line),
                                  stdin=subprocess.DEVNULL)
            TIMINGS[f"vagrant: {line.split(' -- ')[-1][:40]}"] = time.monotonic() - started
            assert proc.returncode == 0, f"{line}\nexit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            outputs[line] = proc.stdout + proc.stderr  # pyinfra prints to stderr
            if "vagrant up" in line:
                _check_up(workdir)
            if " status " in line:
                # after `status`: the probe's busy loops and memory hog share the cache slice with
                # Redis (before it, once, the queue workers and the scheduler lost Redis, and
                # `status` rightly named the scheduler's failed run)
                _check_converged_on_cgroup_v2(workdir, outputs)
            if "destroy" in line:
                # what `vagrant destroy -f` must have removed, read from libvirt before it stops
                assert vagrant.leftovers() == {"domains": [], "volumes": [], "networks": []}
            if line.endswith("vagrant down"):
                set_up = False
    finally:
        if set_up:  # a step failed: leave nothing behind all the same
            subprocess.run([".venv/bin/lbstack", "rehearsal", "vagrant", "run", "--", "vagrant", "destroy", "-f"],
                           cwd=workdir, capture_output=True, timeout=300)
            vagrant.teardown()
    converge = next(out for line, out in outputs.items() if "deploy/full.py" in line)
    assert "Verification of @vagrant/lbstack: all checks passed" in converge
    assert "(override)" in converge and "8 vCPU, 16384 MiB" in converge  # planned as production
    # the planned limits read back from cgroup v2's own files, memory.high included
    assert re.search(r"cgroup v2 memory\.high", converge), converge[-3000:]
    probe = json.loads(outputs["cgroup v2 probe"])
    quota = _vagrant_plan().limits["cache"].cpu_quota_pct / 100
    assert quota * 0.7 <= probe["busy_share"] <= quota * 1.2, f"busy loop used {probe['busy_share']:.2f} CPU under {quota}"
    assert probe["hog_result"] == "oom-kill" and not probe["hog_survived"], probe
    status = next(out for line, out in outputs.items() if " status " in line)
    for member in ("app1", "app2", "app3", "app4", "app5"):
        assert re.search(rf"{member}\s.*unix:/run/lbstack/{member}/fpm\.sock.*\s200\s.*\sup\s", status), status
    assert vagrant.lingering() == {"namespace": [], "veth": [], "processes": [], "volumes": [], "record": []}
    boxes = subprocess.run(["vagrant", "box", "list"], capture_output=True, text=True, timeout=120).stdout
    assert vagrant.BOX in boxes  # the box stays added: the next setup reuses it


def _vagrant_plan():
    """The plan inventories/vagrant.py asks for (its settings, production's 8 vCPU / 16 GB)."""
    data = runpy.run_path(str(REPO_ROOT / "inventories" / "vagrant.py"))["all"][1]
    settings = load(data["lbstack"])
    return make_plan(settings.capacity_cpus, settings.capacity_memory_mib, settings)


# Run as root on the converged VM: busy loops in lbstack-cache.slice (CPU share over 5 s from the
# unit's cgroup v2 cpu.stat) and a process grabbing 512 MiB over the slice's MemoryMax.
CGROUP_V2_PROBE = r'''
import json, subprocess, time
def sh(*argv):
    return subprocess.run(argv, capture_output=True, text=True).stdout.strip()
busy = "lbstack-test-busy.service"
# two busy processes on the VM's two vCPUs: unlimited they would use 2 CPUs, the slice allows 1
sh("systemd-run", "--unit", busy, "--slice", "lbstack-cache.slice", "python3", "-c",
   "import os\nos.fork()\nwhile True: pass")
time.sleep(1)
stat = "/sys/fs/cgroup" + sh("systemctl", "show", "-P", "ControlGroup", busy) + "/cpu.stat"
def used():
    return int(dict(line.split() for line in open(stat))["usage_usec"]) / 1e6
before, t0 = used(), time.monotonic()
time.sleep(5)
share = (used() - before) / (time.monotonic() - t0)
sh("systemctl", "stop", busy)
limit = int(sh("systemctl", "show", "-P", "MemoryMax", "lbstack-cache.slice"))
hog = "lbstack-test-hog.service"
out = sh("systemd-run", "--wait", "--unit", hog, "--slice", "lbstack-cache.slice", "python3", "-c",
         f"x = b'x' * ({limit} + (512 << 20)); print('survived')")
result = sh("systemctl", "show", "-P", "Result", hog)
sh("systemctl", "reset-failed", hog)
print(json.dumps({"busy_share": share, "hog_result": result, "hog_survived": "survived" in out}))
'''


def _check_converged_on_cgroup_v2(workdir: Path, outputs: dict[str, str]) -> None:
    """After the converge and `status`: the probe above, on the VM. (No second run here: it took 175 s of
    TCG, and the container host and the split stack prove a no-op re-run.)"""
    run = [".venv/bin/lbstack", "rehearsal", "vagrant", "run", "--", "vagrant", "ssh", "-c",
           f"sudo python3 -c {shlex.quote(CGROUP_V2_PROBE)}"]
    proc = subprocess.run(run, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outputs["cgroup v2 probe"] = proc.stdout.strip().splitlines()[-1]


def _check_up(workdir: Path) -> None:
    """After `vagrant up`: the box's VM is the rehearsal's size, reached as the vagrant user with
    Vagrant's own key (not the insecure one), and its private network address answers ssh."""
    run = [".venv/bin/lbstack", "rehearsal", "vagrant", "run", "--", "vagrant", "ssh", "-c",
           "id -un; nproc; sudo -n true && echo sudo-ok; ip -4 -o addr show"]
    proc = subprocess.run(run, cwd=workdir, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[0] == "vagrant" and lines[1] == vagrant.SIZE_ENV["LBSTACK_VAGRANT_CPUS"] and "sudo-ok" in lines
    assert "192.168.56.10/24" in proc.stdout
    key = workdir / ".vagrant" / "machines" / "lbstack" / "libvirt" / "private_key"
    assert key.exists(), "vagrant did not replace the insecure key with its own"
