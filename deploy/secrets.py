"""Secrets (MariaDB and Redis passwords, the app key): kept on the hosts, in a root-only store.

By default each secret is generated on the host on the first run and never leaves it in clear:
files that need one (the app's ``.env``, Redis' ACL line) are rendered there by
``lbstack-secrets`` from a secret-free source, and SQL that sets a password is filled in there
too. In a split stack a secret lives only on the hosts whose components use it
(:mod:`lbstack.secretsharing`); its keeper generates it, and every other holder whose digest
differs is sent it sealed: the holder's public key goes to the keeper, the keeper encrypts to
it, and the sealed value is carried to the holder, which alone can open it. The machine running
lbstack never has a value in clear, on disk or in memory. A host that holds a secret it no
longer needs (its component moved away) has it deleted.

To supply a secret instead (say, an existing database password), set
``LBSTACK_SECRET_DB_PASSWORD``, ``LBSTACK_SECRET_REDIS_PASSWORD`` or ``LBSTACK_SECRET_APP_KEY``,
or name a git-ignored YAML file of ``name: value`` in ``LBSTACK_SECRETS_FILE``; it is uploaded
into the store of every host that holds it under an explicit operation name (pyinfra shows no
value).
"""

from __future__ import annotations

import io
import os
import re
import shlex
import sys
from pathlib import Path

import yaml
from pyinfra import host, inventory
from pyinfra.api import deploy
from pyinfra.api.host import Host
from pyinfra.operations import files, python

from facts.secrets import HELPER, SecretDigests, SecretNames
from lbstack import secretsharing
from lbstack.layout import ETC, SECRETS, SECRETS_DIR, SOURCES_DIR, STAGE_DIR
from lbstack.operations import directories, secret_present, template_file
from lbstack.plan import COMPONENTS
from lbstack.render import jinja, template
from lbstack.topology import all_stack_hosts, group_hosts
from lbstack.transport import run_command

SEND_TIMEOUT_S = 120  # a new host's first relay key (RSA 3072) is made within it

_ALPHABET = re.compile(r"[A-Za-z0-9+/=:._-]{16,256}")


def supplied() -> dict[str, str]:
    """Secrets supplied from the environment or ``LBSTACK_SECRETS_FILE``; exits naming a bad one."""
    found: dict[str, str] = {}
    path = os.environ.get("LBSTACK_SECRETS_FILE")
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            _refuse(f"LBSTACK_SECRETS_FILE: cannot read {path}: {type(exc).__name__}. Fix the file or unset it.")
        if not isinstance(data, dict):
            _refuse(f"LBSTACK_SECRETS_FILE: {path} must be a mapping of name: value.")
        for name, value in data.items():
            if name not in SECRETS:
                _refuse(f"LBSTACK_SECRETS_FILE: unknown secret {name!r} in {path}; known: {', '.join(SECRETS)}.")
            found[name] = _checked(f"{name} in {path}", value)
    for name in SECRETS:
        value = os.environ.get(f"LBSTACK_SECRET_{name.upper()}")
        if value is not None:
            found[name] = _checked(f"LBSTACK_SECRET_{name.upper()}", value)
    return found


def _checked(where: str, value) -> str:
    if not isinstance(value, str) or not _ALPHABET.fullmatch(value):
        _refuse(f"{where}: a secret must be 16..256 characters of A-Z a-z 0-9 + / = : . _ - (value not shown).")
    return value


def _refuse(message: str) -> None:
    print(f"lbstack: invalid secret: {message}", file=sys.stderr)
    raise SystemExit(1)


@deploy("lbstack secrets")
def secrets() -> None:
    store = ((ETC, "755"), (SECRETS_DIR, "700"), (SOURCES_DIR, "700"), (STAGE_DIR, "700"))
    directories(name="Directories " + ", ".join(f"{path} (mode {mode})" for path, mode in store) + " (root)",
                paths=[(path, "root", "root", mode) for path, mode in store])
    template_file(
        name=f"Render {HELPER}",
        src=template(HELPER),
        dest=HELPER,
        mode="755",
        jinja_env_kwargs=jinja(),
        store=SECRETS_DIR,
    )
    given = supplied()
    groups = {group: [h.name for h in group_hosts(group)] for group in COMPONENTS}
    stack = all_stack_hosts()
    for name, kind in SECRETS.items():
        holding = secretsharing.holders(name, groups) if host.name in stack else [host.name]
        if host.name not in holding:
            if name in host.get_fact(SecretNames):
                files.file(name=f"Secret {name}: delete (no component of this host uses it)",
                           path=f"{SECRETS_DIR}/{name}", present=False)
        elif name in given:
            files.put(
                name=f"Store the supplied secret {name} in {SECRETS_DIR}/{name} (value hidden)",
                src=io.StringIO(given[name]),
                dest=f"{SECRETS_DIR}/{name}",
                user="root",
                group="root",
                mode="600",
            )
        elif holding[0] == host.name:
            secret_present(name=f"Secret {name}: generate on the host if missing", secret=name, kind=kind)
        else:
            _received(name, kind, inventory.get_host(holding[0]))


def _received(secret: str, kind: str, keeper: Host) -> None:
    """Send ``secret`` from its keeper to this host, sealed, when the two digests differ."""
    mine = host.get_fact(SecretDigests).get(secret)
    theirs = keeper.get_fact(SecretDigests).get(secret)
    if secretsharing.needs_sending(mine, theirs):
        python.call(
            name=f"Secret {secret}: sent sealed from {keeper.name} (value hidden)",
            function=_send,
            secret=secret,
            kind=kind,
            sender=keeper,
            receiver=inventory.get_host(host.name),
        )


class SendError(Exception):
    """A sealed secret could not be sent (the message names the step, never a value)."""


def _send(secret: str, kind: str, sender: Host, receiver: Host) -> None:
    """At run time: the keeper makes the secret if it has none yet (``ensure``, locked on the
    host: the keeper's own operation may not have run yet, pyinfra orders operations per host),
    the receiver's public key goes to the keeper, the keeper's sealed value to the receiver.
    Only public keys and sealed values pass here."""
    def step(on: Host, args: list[str], what: str) -> str:
        ok, output = run_command(on, shlex.join(args), SEND_TIMEOUT_S)
        if not ok:
            raise SendError(f"{secret}: {what} on {on.name} failed: {output.stderr[-500:]}")
        return output.stdout.strip()

    step(sender, [HELPER, "ensure", secret, kind], "making the secret")
    public_key = step(receiver, [HELPER, "pubkey"], "making the relay key")
    sealed = step(sender, [HELPER, "seal", secret, public_key], "sealing the secret")
    step(receiver, [HELPER, "unseal", secret, sealed], "opening the sealed secret")
