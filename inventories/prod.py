"""Production inventory, a documented example: one 8 vCPU / 16 GB Debian 12 VPS carrying every
component. Copy it, put your host and names in, and run from the repository root:

    pyinfra -y inventories/prod.py deploy/full.py

Groups place the components: ``lb`` (nginx), ``app`` (PHP-FPM instances), ``db`` (MariaDB),
``cache`` (Redis). One VPS is in all four; a split topology lists other hosts per group and the
same code deploys each component to its group. Settings (see the README's table, or
``lbstack settings-doc``) are validated here, while pyinfra loads this file: a bad value stops the
run before any connection. Secrets are not settings: lbstack generates them on the host
(``/etc/lbstack/secrets/``, root only) unless supplied through ``LBSTACK_SECRET_*`` or
``LBSTACK_SECRETS_FILE``; in a split topology each secret is made on one host and sent sealed to
the others that use it (README, Secrets). A split topology also
gives each host its ``private_address`` (how the other hosts reach it), e.g.
``("db1.example.com", {"private_address": "10.0.0.3"})``.

The firewall keeps ``ssh_port`` (and any port sshd listens on), 80 and 443 open; set
``"firewall": False`` to manage the firewall yourself.
"""

from lbstack.settings import inventory_data

VPS = "vps.example.com"  # the VPS's address or ~/.ssh/config name

SETTINGS = {
    "instances": 5,
    "lb_method": "least_conn",
    "server_names": ["example.com", "www.example.com"],
    "tls": "files",
    "tls_certificate_path": "/etc/letsencrypt/live/example.com/fullchain.pem",
    "tls_key_path": "/etc/letsencrypt/live/example.com/privkey.pem",
    "app_source": "sample",
}

# Data for every host: the validated settings plus how to connect.
all = ([VPS], inventory_data(SETTINGS, ssh_user="root"))  # noqa: A001 (pyinfra's group name)

lb = [VPS]
app = [VPS]
db = [VPS]
cache = [VPS]
