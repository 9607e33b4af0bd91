"""Vagrant rehearsal: the ``Vagrantfile``'s 8 vCPU / 16 GB Debian 12 box, through pyinfra's
``@vagrant`` connector (which reads ``vagrant ssh-config``). From the repository root:

    vagrant up
    pyinfra -y inventories/vagrant.py deploy/full.py

The box has the production size, so no capacity override is needed.
"""

from lbstack.settings import inventory_data

BOX = "@vagrant/lbstack"  # the machine name in the Vagrantfile

all = ([BOX], inventory_data({"server_names": ["_"]}))  # noqa: A001 (pyinfra's group name)

lb = [BOX]
app = [BOX]
db = [BOX]
cache = [BOX]
