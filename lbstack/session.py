"""pyinfra's Python API for lbstack's operating commands: load an inventory, connect, read facts.

``status``, ``metrics``, ``drift`` (and ``plan INVENTORY``) open one :class:`Session` each. The
inventory is loaded exactly as ``pyinfra INVENTORY ...`` loads it (settings validated on load),
hosts are connected in parallel, and every failure becomes a :class:`SessionError` with one
readable line: no traceback reaches the user.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyinfra.api import Config, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.host import Host
from pyinfra.api.state import BaseStateCallback, StateStage
from pyinfra.context import ctx_config, ctx_host, ctx_inventory, ctx_state

from lbstack import transport
from lbstack.transport import UPLOAD_TEMP_DIR
from lbstack.context import host_context
from lbstack.plan import Plan
from lbstack.settings import Settings

CONNECT_TIMEOUT_S = 10


def deploy_dir() -> Path:
    """Where ``deploy/`` (the entry files pyinfra runs) is: installed beside lbstack, or in the
    checkout. Found without importing it: the library never imports the deploy."""
    spec = importlib.util.find_spec("deploy")
    if spec is None or not spec.submodule_search_locations:
        raise SessionError("lbstack's deploy/ package is not installed (pip install lbstack, or run from a checkout)")
    return Path(list(spec.submodule_search_locations)[0])


class SessionError(Exception):
    """A failure the user can act on: the message says which host or file and why."""


class InventoryError(SessionError):
    """The inventory file is missing or does not load (exit 2, like a bad argument)."""


@dataclass
class _ConnectErrors(BaseStateCallback):
    errors: dict[str, str] = field(default_factory=dict)

    def host_connect_error(self, state, host, error):  # noqa: ARG002 (pyinfra's callback signature)
        self.errors[host.name] = str(error.args[0] if error.args else error)


@dataclass
class HostContext:
    """One connected host with its validated settings and capacity plan."""

    host: Host
    settings: Settings
    plan: Plan

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def address(self) -> str:
        """The address the host is reached at (its ssh_hostname, else its inventory name)."""
        return str(self.host.data.get("ssh_hostname") or self.host.name)

    def fact(self, fact_cls, **kwargs):
        with use_host(self.host):
            return self.host.get_fact(fact_cls, **kwargs)


@contextlib.contextmanager
def use_host(host: Host) -> Iterator[None]:
    """pyinfra's context (``from pyinfra import host``) pointing at ``host``, for code written as
    deploy code (e.g. ``deploy.verification.gather``)."""
    with ctx_state.use(host.state), ctx_inventory.use(host.inventory), ctx_host.use(host):
        yield


def load_inventory(path: str, state: State):
    """Load ``path`` as pyinfra does; a missing file or one that fails to load -> InventoryError."""
    from pyinfra_cli.exceptions import CliError
    from pyinfra_cli.inventory import make_inventory

    file = Path(path)
    if not file.is_file():
        # pyinfra would read a missing path as a host name; lbstack's settings live in files
        raise InventoryError(f"inventory file {path!r} not found (give the path of a .py inventory, "
                             "e.g. inventories/prod.py)")
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return make_inventory(str(file.resolve()), cwd=str(deploy_dir().parent))
    except SystemExit as exc:  # lbstack's inventory helpers exit with the reason (invalid settings)
        reason = (stderr.getvalue().strip() or str(exc.code or "")).removeprefix("lbstack: ")
        raise InventoryError(f"inventory {path}: {reason}") from None
    except (CliError, PyinfraError, ImportError, SyntaxError, OSError, ValueError, TypeError) as exc:
        raise InventoryError(f"inventory {path} does not load: {type(exc).__name__}: {exc}") from None


@contextlib.contextmanager
def session(inventory_path: str, limit: list[str] | None = None) -> Iterator[Session]:
    """Connect to the inventory's hosts (or ``limit``); always disconnect afterwards."""
    state = State(check_for_changes=True)
    state.cwd = str(deploy_dir().parent)
    config = Config(CONNECT_TIMEOUT=CONNECT_TIMEOUT_S, TEMP_DIR=UPLOAD_TEMP_DIR)  # as ./config.py for pyinfra
    errors = _ConnectErrors()
    with ctx_state.use(state), ctx_config.use(config):
        inventory = load_inventory(inventory_path, state)
        with ctx_inventory.use(inventory):
            if limit:
                unknown = sorted(set(limit) - {h.name for h in inventory})
                if unknown:
                    raise InventoryError(f"no host {', '.join(unknown)} in {inventory_path}")
            state.init(inventory, config, initial_limit=limit or None)
            state.add_callback_handler(errors)
            state.set_stage(StateStage.Connect)
            quiet = logging.getLogger("pyinfra")
            level, quiet.level = quiet.level, logging.CRITICAL
            try:
                connect_all(state)
            except PyinfraError:
                pass  # every host failed: reported below with each host's reason
            finally:
                quiet.setLevel(level)
            try:
                failed = [h for h in inventory if state.is_host_in_limit(h) and h not in state.activated_hosts]
                if failed:
                    raise SessionError("; ".join(
                        f"cannot reach {h.name} ({h.data.get('ssh_hostname') or h.name}:"
                        f"{h.data.get('ssh_port') or 22}): {errors.errors.get(h.name, 'no connection')}"
                        for h in failed))
                for host in state.activated_hosts:
                    transport.no_delay(host)  # many small fact commands follow
                state.set_stage(StateStage.Prepare)
                yield Session(state, inventory_path)
            finally:
                disconnect_all(state)


@dataclass
class Session:
    state: State
    inventory_path: str

    def hosts(self) -> list[HostContext]:
        """Every connected host with its settings and plan (facts read once, as the deploy does)."""
        contexts = []
        for host in self.state.activated_hosts:
            with use_host(host):
                try:
                    settings, plan = host_context(host)
                except SystemExit:  # host_context printed the reason (refused plan)
                    raise SessionError(f"{host.name}: no capacity plan (see above)") from None
            contexts.append(HostContext(host, settings, plan))
        return sorted(contexts, key=lambda c: c.name)

    def group(self, name: str) -> list[Host]:
        return [h for h in self.state.inventory.get_group(name, []) if h in self.state.activated_hosts]
