"""Inventories load in pyinfra with their settings validated; the Vagrantfile passes Vagrant's own check."""

import json
import os
import runpy
import shutil
import subprocess
import sys

import pytest

from lbstack import REPO_ROOT


def test_prod_inventory_places_one_vps_in_every_group():
    result = subprocess.run(
        [sys.executable, "-m", "pyinfra", "inventories/prod.py", "debug-inventory", "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (host,) = json.loads(result.stdout)
    assert host["name"] == "vps.example.com"
    assert {"lb", "app", "db", "cache"} <= set(host["groups"])
    assert host["data"]["lbstack"]["instances"] == 5 and host["data"]["lbstack"]["tls"] == "files"
    assert host["data"]["ssh_user"] == "root"


def test_split_inventory_places_each_group_on_its_own_hosts_with_private_addresses():
    result = subprocess.run(
        [sys.executable, "-m", "pyinfra", "inventories/split.py", "debug-inventory", "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    hosts = {h["name"]: h for h in json.loads(result.stdout)}
    groups = {name: sorted(set(h["groups"]) - {"all", "split"}) for name, h in hosts.items()}  # file name: a group
    assert groups == {"lb1.example.com": ["lb"], "lb2.example.com": ["lb"], "app1.example.com": ["app"],
                      "app2.example.com": ["app"], "db1.example.com": ["db"], "cache1.example.com": ["cache"]}
    addresses = [h["data"]["private_address"] for h in hosts.values()]
    assert len(set(addresses)) == 6 and all(a.startswith("10.0.0.") for a in addresses)
    # the stack's settings everywhere, but app2's own instance count (its host data)
    assert {n: h["data"]["lbstack"]["instances"] for n, h in hosts.items()} == {
        **{n: 5 for n in hosts}, "app2.example.com": 8}
    assert {k: v for k, v in hosts["app2.example.com"]["data"]["lbstack"].items() if k != "instances"} == {
        k: v for k, v in hosts["app1.example.com"]["data"]["lbstack"].items() if k != "instances"}


@pytest.mark.parametrize("groups, message", [
    ("", "names no host for lb, app, db, cache"),
    ("lb=a app=a db=a", "names no host for cache"),
    ("web=a lb=a app=a db=a cache=a", "'web=a' is not GROUP=HOST"),
])
def test_the_split_rehearsal_inventory_names_what_is_wrong_with_its_groups(groups, message):
    result = subprocess.run(
        [sys.executable, "-m", "pyinfra", "inventories/rehearsal_split.py", "debug-inventory", "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "LBSTACK_REHEARSAL_GROUPS": groups},
    )
    assert result.returncode != 0 and message in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.fixture(scope="module")
def vagrant():
    """Vagrant itself, installed from Debian's packages when missing (CI runs as root)."""
    if shutil.which("vagrant") is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "vagrant"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
            subprocess.run(install, env=env, check=True, capture_output=True)
    return shutil.which("vagrant")


def test_vagrantfile_validates_with_vagrant(vagrant, tmp_path):
    result = subprocess.run([vagrant, "validate"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout
    text = (REPO_ROOT / "Vagrantfile").read_text()
    # users get the production box and size; the rehearsal overrides them through the environment
    assert 'box = ENV.fetch("LBSTACK_VAGRANT_BOX", "debian/bookworm64")' in text
    assert 'ENV.fetch("LBSTACK_VAGRANT_CPUS", "8")' in text and 'ENV.fetch("LBSTACK_VAGRANT_MEMORY_MIB", "16384")' in text
    assert text.count("cpus = cpus") == 2 and text.count("memory = memory") == 2  # VirtualBox and libvirt
    assert "private_network" in text
    # the overrides are read: a size that is not a number stops Vagrant, naming it
    env = {**os.environ, "LBSTACK_VAGRANT_CPUS": "eight"}
    bad = subprocess.run([vagrant, "validate"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode != 0 and "eight" in bad.stdout + bad.stderr
    # the check can fail: a wrong key is rejected by Vagrant
    (tmp_path / "Vagrantfile").write_text(text.replace("node.vm.hostname", "node.vm.hostnam"))
    broken = subprocess.run([vagrant, "validate"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert broken.returncode != 0


def test_vagrant_inventory_uses_the_vagrant_connector():
    text = (REPO_ROOT / "inventories/vagrant.py").read_text()
    assert '"@vagrant/lbstack"' in text
    assert 'config.vm.define "lbstack"' in (REPO_ROOT / "Vagrantfile").read_text()


def test_vagrant_inventory_works_through_sudo_and_plans_the_production_size():
    hosts, data = runpy.run_path(str(REPO_ROOT / "inventories/vagrant.py"))["all"]
    assert hosts == ["@vagrant/lbstack"]
    # the box's login is `vagrant`: everything, facts and direct commands alike, through sudo
    assert data["_sudo"] is True
    # each `vagrant up` is a new machine with new host keys, maybe on an old address
    assert data["ssh_strict_host_key_checking"] == "no" and data["ssh_known_hosts_file"] == "/dev/null"
    settings = data["lbstack"]
    assert (settings["capacity_cpus"], settings["capacity_memory_mib"]) == (8, 16384)
