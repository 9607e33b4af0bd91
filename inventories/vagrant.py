"""Vagrant rehearsal: the ``Vagrantfile``'s Debian 12 machine, through pyinfra's ``@vagrant``
connector (which reads ``vagrant ssh-config``). From the repository root:

    vagrant up
    pyinfra -y inventories/vagrant.py deploy/full.py

pyinfra logs in as the box's ``vagrant`` user and works through sudo. The plan is made for
the production 8 vCPU / 16 GB VPS through the capacity override, also when the VM was given
less (``LBSTACK_VAGRANT_CPUS`` / ``LBSTACK_VAGRANT_MEMORY_MIB``, see the Vagrantfile).
"""

from lbstack.settings import inventory_data

BOX = "@vagrant/lbstack"  # the machine name in the Vagrantfile

SETTINGS = {
    "server_names": ["_"],
    "capacity_cpus": 8,
    "capacity_memory_mib": 16384,
}

# As `vagrant ssh-config` says: each `vagrant up` makes a new machine with new host keys on an
# address the last one may have had, so host keys are neither checked nor kept.
CONNECTION = {"_sudo": True, "ssh_strict_host_key_checking": "no", "ssh_known_hosts_file": "/dev/null"}

all = ([BOX], {**inventory_data(SETTINGS), **CONNECTION})  # noqa: A001 (pyinfra's group name)

lb = [BOX]
app = [BOX]
db = [BOX]
cache = [BOX]
