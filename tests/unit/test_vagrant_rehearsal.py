"""The Vagrant rehearsal's box recipe and its command wrapper (lbstack/rehearsal/vagrant.py);
tests/e2e/test_vagrant.py boots the box for real."""

from __future__ import annotations

import pytest

from lbstack.rehearsal import vagrant, vm
from lbstack.rehearsal.common import RehearsalError


@pytest.fixture
def recipe(monkeypatch, tmp_path):
    monkeypatch.setenv("LBSTACK_REHEARSAL_DIR", str(tmp_path))  # the rehearsal ssh key is made there
    monkeypatch.setattr(vagrant, "insecure_key", lambda: "ssh-rsa AAAAinsecure vagrant\n")
    return vagrant.box_recipe()


def test_the_box_is_the_vm_image_debian_with_the_stacks_packages_and_nothing_configured(recipe):
    assert set(vm.GUEST_PACKAGES) <= set(recipe.packages)
    # the stack's packages as the deploy installs them, baked in as in the VM image (TCG dpkg)
    assert set(vm.stack_packages()) <= set(recipe.packages)
    assert set(recipe.packages) == set(vm.vm_recipe().packages)
    assert {"nginx", "mariadb-server", "redis-server", "openssh-server", "python3", "sudo"} <= set(recipe.packages)
    # ... and none of the deploy's configuration: the converge writes all of it
    stack_dirs = ("/etc/lbstack", "/etc/nginx", "/etc/php", "/etc/mysql", "/etc/redis", "/srv")
    assert not [path for path, _, _ in recipe.files if path.startswith(stack_dirs)]


def test_the_box_has_the_vagrant_user_with_the_insecure_key_and_sudo(recipe):
    files = {path: (content, mode) for path, content, mode in recipe.files}
    assert files["/home/vagrant/.ssh/authorized_keys"] == ("ssh-rsa AAAAinsecure vagrant\n", 0o600)
    assert files["/etc/sudoers.d/vagrant"] == ("vagrant ALL=(ALL) NOPASSWD:ALL\n", 0o440)
    assert ("useradd", "--shell", "/bin/bash", "--user-group", "vagrant") in recipe.commands
    assert ("chown", "-R", "vagrant:vagrant", "/home/vagrant") in recipe.commands
    # host keys are each machine's own: none in the box, made at first boot
    assert ("find", "/etc/ssh", "-name", "ssh_host_*", "-delete") in recipe.commands
    assert "lbstack-ssh-hostkeys.service" in recipe.units and "ssh.service" in recipe.units
    assert "ssh-keygen -A" in files["/etc/systemd/system/lbstack-ssh-hostkeys.service"][0]
    # apt through the rehearsal's proxy on this side of the veth
    assert f"http://{vagrant.HOST_ADDRESS}:{vagrant.PROXY_PORT}" in files["/etc/apt/apt.conf.d/80lbstack-rehearsal-proxy"][0]


def test_the_recipe_digest_covers_the_box_vagrantfile(recipe, monkeypatch):
    before = recipe.digest()
    monkeypatch.setattr(vagrant, "BOX_VAGRANTFILE", vagrant.BOX_VAGRANTFILE.replace("900", "901"))
    assert vagrant.box_recipe().digest() != before


def test_the_box_vagrantfile_boots_the_shipped_kernel_under_tcg():
    text = vagrant.BOX_VAGRANTFILE
    for line in ('lv.cpu_mode = "custom"', 'lv.cpu_model = "qemu64"', 'lv.cmd_line = "root=/dev/vda rw console=ttyS0"',
                 'File.expand_path("../vmlinuz", __FILE__)', 'File.expand_path("../initrd.img", __FILE__)',
                 '"kvm" ? "kvm" : "qemu"'):
        assert line in text


def test_commands_run_in_the_namespace_with_the_box_and_size_unless_set(monkeypatch):
    monkeypatch.setattr(vagrant, "_netns_exists", lambda: True)
    monkeypatch.delenv("LBSTACK_VAGRANT_BOX", raising=False)
    monkeypatch.setenv("LBSTACK_VAGRANT_MEMORY_MIB", "6144")
    monkeypatch.delenv("LBSTACK_VAGRANT_CPUS", raising=False)
    args, env = vagrant.command(["vagrant", "up", "--provider=libvirt"])
    assert args == ["ip", "netns", "exec", vagrant.NETNS, "vagrant", "up", "--provider=libvirt"]
    assert env["LBSTACK_VAGRANT_BOX"] == vagrant.BOX
    assert env["LBSTACK_VAGRANT_CPUS"] == "2" and env["LBSTACK_VAGRANT_MEMORY_MIB"] == "6144"


def test_commands_need_the_setup(monkeypatch):
    monkeypatch.setattr(vagrant, "_netns_exists", lambda: False)
    with pytest.raises(RehearsalError, match="lbstack rehearsal vagrant setup"):
        vagrant.command(["vagrant", "status"])


def test_the_boxs_dhcp_file_leaves_vagrants_static_private_network_alone(recipe):
    """networkd applies the first .network file that matches a NIC: the box's DHCP-on-every-NIC
    file must sort after the 50-vagrant-<nic>.network Vagrant writes (or 192.168.56.10 is lost
    to DHCP, as it was)."""
    network = [path for path, _, _ in recipe.files if path.startswith("/etc/systemd/network/")]
    assert len(network) == 1 and network[0].rsplit("/", 1)[1] > "50-vagrant-ens5.network"
