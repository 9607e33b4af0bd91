"""Secrets (MariaDB and Redis passwords, the app key): kept on the host, in a root-only store.

By default each secret is generated on the host on the first run and never leaves it: files that
need one (the app's ``.env``, Redis' ACL line) are rendered there by ``lbstack-secrets`` from a
secret-free source, and SQL that sets a password is filled in there too. To supply a secret
instead (say, an existing database password), set ``LBSTACK_SECRET_DB_PASSWORD``,
``LBSTACK_SECRET_REDIS_PASSWORD`` or ``LBSTACK_SECRET_APP_KEY``, or name a git-ignored YAML file
of ``name: value`` in ``LBSTACK_SECRETS_FILE``; it is uploaded into the store under an explicit
operation name (pyinfra shows no value).
"""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

import yaml
from pyinfra.api import deploy
from pyinfra.operations import files

from lbstack.layout import ETC, SECRETS, SECRETS_DIR, SOURCES_DIR, STAGE_DIR
from lbstack.operations import directories, secret_present, template_file
from facts.secrets import HELPER
from lbstack.render import jinja, template
from lbstack.topology import all_stack_hosts

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
    hosts = all_stack_hosts()
    missing = [name for name in SECRETS if name not in given]
    if len(hosts) > 1 and missing:
        _refuse(f"the stack spans {len(hosts)} hosts, which must share their secrets: supply "
                + ", ".join(f"LBSTACK_SECRET_{m.upper()}" for m in missing) + " (or LBSTACK_SECRETS_FILE).")
    for name, kind in SECRETS.items():
        if name in given:
            files.put(
                name=f"Store the supplied secret {name} in {SECRETS_DIR}/{name} (value hidden)",
                src=io.StringIO(given[name]),
                dest=f"{SECRETS_DIR}/{name}",
                user="root",
                group="root",
                mode="600",
            )
        else:
            secret_present(name=f"Secret {name}: generate on the host if missing", secret=name, kind=kind)
