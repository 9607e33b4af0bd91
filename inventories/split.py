"""A split topology, a documented example: two load balancers sharing nothing but the app hosts,
two app hosts (each with its own FPM instances), one database host, one cache host. Copy it,
put your hosts in, and run from the repository root:

    pyinfra -y inventories/split.py deploy/full.py

Each host is planned from its own facts (CPUs, memory) for the components of its groups only.
``private_address`` is how the other hosts reach it (a provider's private network): FPM,
MariaDB and Redis listen there, and the firewall admits each of their ports only from the hosts
that use it. Secrets need nothing from you: each is made on one host and sent sealed to the
others that use it (README, Secrets); supplied ones (``LBSTACK_SECRET_*``,
``LBSTACK_SECRETS_FILE``) still win.
"""

from lbstack.settings import inventory_data

SETTINGS = {
    "instances": 5,  # per app host (unless a host says otherwise): the upstream spans them all
    "lb_method": "least_conn",
    "server_names": ["example.com", "www.example.com"],
    "tls": "files",
    "tls_certificate_path": "/etc/letsencrypt/live/example.com/fullchain.pem",
    "tls_key_path": "/etc/letsencrypt/live/example.com/privkey.pem",
    "app_source": "sample",
}

_HOSTS = [
    ("lb1.example.com", {"private_address": "10.0.0.11"}),
    ("lb2.example.com", {"private_address": "10.0.0.12"}),
    ("app1.example.com", {"private_address": "10.0.0.21"}),
    # a host's own settings replace the stack's for it: here a bigger app host with more instances
    # (the balancers' upstream follows each app host's own count)
    ("app2.example.com", {"private_address": "10.0.0.22", **inventory_data({**SETTINGS, "instances": 8})}),
    ("db1.example.com", {"private_address": "10.0.0.31"}),
    ("cache1.example.com", {"private_address": "10.0.0.41"}),
]

all = (_HOSTS, inventory_data(SETTINGS, ssh_user="root"))  # noqa: A001 (pyinfra's group name)

lb = ["lb1.example.com", "lb2.example.com"]
app = ["app1.example.com", "app2.example.com"]
db = ["db1.example.com"]
cache = ["cache1.example.com"]
