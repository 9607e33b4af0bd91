"""The ssh connection pyinfra holds to a host, made fit for many small commands.

pyinfra's ``@ssh`` connector (paramiko) leaves Nagle's algorithm on. Every command is a new ssh
channel whose requests are a few small packets; with Nagle on, the second one waits for the
host's delayed ACK (~40 ms on Linux), so each command costs ~45 ms whatever it does, against
~2 ms without. A converged host is checked with ~170 commands: that wait was most of a no-op run.
"""

from __future__ import annotations

import socket

from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments
from pyinfra.api.host import Host


def no_delay(host: Host) -> bool:
    """Turn Nagle's algorithm off (``TCP_NODELAY``) on ``host``'s ssh connection, when it is a
    connected paramiko session over a TCP socket; returns whether it did. Anything else (the
    ``@local`` connector, a ProxyCommand or jump host, not connected yet) is left as it is."""
    client = getattr(host.connector, "client", None)
    transport = client.get_transport() if client is not None and hasattr(client, "get_transport") else None
    sock = getattr(transport, "sock", None)
    if not isinstance(sock, socket.socket) or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        return False
    return True


def run_command(host: Host, command, timeout_s: float):
    """``host.run_shell_command(command)`` with the connector arguments (``_sudo``, ``_sudo_user``,
    ``_su_user``, ``_env`` ...) the inventory's host data give, as pyinfra's own facts and
    operations get them: a command run directly (a lock, a rolling step, a helper) must not
    run as the login user of an inventory that says ``_sudo``. Returns ``(ok, output)``."""
    arguments, _ = pop_global_arguments(host.state, host, {})
    connector_arguments = {k: v for k, v in arguments.items() if k in CONNECTOR_ARGUMENT_KEYS}
    connector_arguments["_timeout"] = int(timeout_s)
    return host.run_shell_command(command, **connector_arguments)


def login_method(host: Host) -> tuple[str | None, str]:
    """How pyinfra logged in to ``host`` on this very connection: ``("publickey", "root")``,
    ``("password", "admin")``, or ``(None, why)`` when it is not an ssh connection (the local or
    another connector) or has not authenticated. Read from the connection's paramiko transport."""
    client = getattr(host.connector, "client", None)
    transport = client.get_transport() if client is not None else None
    if transport is None or not transport.is_authenticated():
        return None, f"pyinfra does not reach {host.name} over ssh (connector {type(host.connector).__name__})"
    handler = transport.auth_handler
    return getattr(handler, "auth_method", None) or None, transport.get_username() or ""


# Where pyinfra stages an upload before moving it into place: its TmpDir fact runs as the deploy's
# command user, and on a host reached over sudo with libpam-tmpdir (which lbstack's OS hardening
# installs) that is root's private /tmp/user/0, where the ssh user's SFTP cannot write: every
# upload of the second run failed with "Permission denied" (pyinfra issue 1440). /tmp is
# pyinfra's own default when the fact is empty; the upload is then moved with sudo as before.
# Set as pyinfra's TEMP_DIR before any operation exists (the repository's config.py, which the
# pyinfra command loads, and lbstack's own sessions): set later, it contradicts the ``_temp_dir``
# that deploys already captured.
UPLOAD_TEMP_DIR = "/tmp"
