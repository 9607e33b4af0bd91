"""lbstack's own pyinfra operations: templates and directories checked in one command each, a
unit kept started and enabled, staged files promoted after validation, files rendered with secrets
on the host, and the verification step."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator

import gevent
from gevent.event import Event
from gevent.lock import BoundedSemaphore

from pyinfra import host, state
from pyinfra.api import FunctionCommand, StringCommand, operation
from pyinfra.api.util import get_template
from pyinfra.operations import files as pyinfra_files, server as pyinfra_server
from pyinfra.operations.util.files import ensure_mode_int

from facts.base import Account
from facts.files import Directories, FileState, StagedDiffers
from facts.secrets import HELPER, SecretFileCurrent, SecretNames
from facts.limits import ControlOverrides, UnitLimits
from facts.tls import AcmeCertificate
from lbstack import checks, deploylock, layout, report, rollout, transport


@operation()
def template_file(src: str, dest: str, mode: str, user: str | None = None, group: str | None = None,
             jinja_env_kwargs: dict | None = None, **data):
    """pyinfra's ``files.template``, decided with one command: the template is rendered here and
    compared with the host's file (content SHA-256, mode, owner: ``facts.files.FileState``). Only
    a file that differs goes through ``files.template`` itself, which reads the host and uploads as
    it always does; an unchanged file costs one command instead of three."""
    def pyinfra_template():
        return pyinfra_files.template._inner(src=src, dest=dest, user=user, group=group, mode=mode,
                                             jinja_env_kwargs=dict(jinja_env_kwargs or {}), **data)

    path = os.path.join(state.cwd, src) if state.cwd else src
    values = dict(data)
    for key, value in (("host", host), ("state", state), ("inventory", state.inventory)):
        values.setdefault(key, value)  # what files.template gives every template
    try:
        output = get_template(path, dict(jinja_env_kwargs or {})).render(values)
    except Exception:  # noqa: BLE001 (files.template reports a template error with its lines)
        yield from pyinfra_template()
        return
    live = host.get_fact(FileState, path=dest)
    if (live is not None and live["type"] == "regular file"
            and live["sha256"] == hashlib.sha256(output.encode()).hexdigest()
            and (mode is None or live["mode"] == ensure_mode_int(mode))
            and (user is None or live["user"] == user) and (group is None or live["group"] == group)):
        host.noop(f"file {dest} is already uploaded")
        return
    yield from pyinfra_template()


@operation()
def directories(paths: list[tuple[str, str, str, str]]):
    """Each of ``paths`` (``(path, user, group, mode)``) a directory with that owner and mode,
    read from the host in one command (``facts.files.Directories``); ``files.directory`` makes each
    one that is missing or differs, in the order given (parents first)."""
    found = host.get_fact(Directories, paths=[p for p, _, _, _ in paths])
    for path, user, group, mode in paths:
        live = found.get(path)
        if live is None or (live["user"], live["group"], live["mode"]) != (user, group, ensure_mode_int(mode)):
            yield from pyinfra_files.directory._inner(path=path, user=user, group=group, mode=mode)


@operation()
def service_user(user: str, group: str, home: str, shell: str):
    """System user ``user`` (primary group ``group``, ``home`` not created, ``shell``), read with
    one ``getent`` (``facts.base.Account``); ``server.user`` creates or corrects it only when it is
    missing or differs, reading the host as it always does."""
    live = host.get_fact(Account, user=user)
    if live is not None and (live["group"], live["home"], live["shell"]) == (group, home, shell):
        return
    yield from pyinfra_server.user._inner(user=user, group=group, home=home, shell=shell, system=True,
                                          create_home=False, ensure_home=False)  # home: root-owned, made by the deploy


@operation()
def unit_active(unit: str, enabled: bool = True, start: bool = True):
    """Start ``unit`` (any type, slices included) and enable it, only if it is not already.
    ``start=False``: only enable it (its start is someone else's, e.g. the rolling update's)."""
    fact = host.get_fact(UnitLimits, units=[unit]).get(unit, {})
    if start and fact.get("active_state") != "active":
        yield StringCommand("systemctl", "start", unit)
    if enabled and fact.get("unit_file_state") not in ("enabled", "static"):
        yield StringCommand("systemctl", "enable", unit)


@operation()
def daemon_reload(units: list[str], changed: list | None = None):
    """``systemctl daemon-reload`` if one of the ``changed`` operations (unit files, drop-ins)
    changed something in this run, or systemd says one of ``units`` changed on disk since it
    loaded it (a run interrupted before its reload). systemd's own flag alone misses a drop-in
    directory that did not exist when the unit was loaded."""
    if state.is_executing and any(op.did_change() for op in changed or []):
        yield StringCommand("systemctl", "daemon-reload")
        return
    facts = host.get_fact(UnitLimits, units=units)
    if any(f.get("need_daemon_reload") for f in facts.values()):
        yield StringCommand("systemctl", "daemon-reload")


@operation()
def unit_in_slice(unit: str, slice_unit: str):
    """Restart ``unit`` if it runs outside ``slice_unit`` (its Slice= drop-in is newer than the
    process). Decided from the live cgroup, so a run interrupted before the restart still ends
    with the service in its slice."""
    fact = host.get_fact(UnitLimits, units=[unit]).get(unit, {})
    if fact.get("active_state") == "active" and f"/{slice_unit}/" not in fact.get("control_group", "") + "/":
        yield StringCommand("systemctl", "restart", unit)


@operation()
def promote(files: list[tuple[str, str, str]], test: str | None = None):
    """Copy staged files over their live paths, only if one differs, and only after ``test``.

    ``files``: ``(staged, live, mode)``. ``test`` validates the staged set as a whole (e.g.
    ``nginx -t -c <staged nginx.conf>``); when it fails the operation fails with the tool's own
    message and the live files (and the running service) are untouched.
    """
    differ = host.get_fact(StagedDiffers, pairs=[list(f) for f in files])
    if not differ:
        return
    if test:
        yield test
    for staged, live, mode in files:
        if live in differ:
            yield StringCommand("install", "-D", "-m", mode, staged, f"{live}.lbstack-new")
    # every file is in place before any is renamed over the live one: the set changes together
    for staged, live, mode in files:
        if live in differ:
            yield StringCommand("mv", "-f", f"{live}.lbstack-new", live)


@operation()
def promote_until(files: list[tuple[str, str, str]], test: str, needs: str,
                  fallback: list[tuple[str, str, str]], fallback_test: str):
    """:func:`promote` ``files``, or, while ``needs`` (a file the set uses: a certificate not issued
    yet) is missing on the host when the step runs, the ``fallback`` set."""
    if not host.get_fact(FileState, path=needs):
        files, test = fallback, fallback_test
    yield from promote._inner(files=files, test=test)


@operation()
def acme_certificate(names: list[str], directory: str):
    """The ACME certificate for ``names`` from ``directory``, issued by ``lbstack-acme issue``
    when there is none, or when its names or its directory are not these; renewals are the
    timer's. A failed issuance fails the step with lbstack-acme's reason and changes no nginx file."""
    found = host.get_fact(AcmeCertificate, live=layout.ACME_LIVE, renewal=layout.ACME_RENEWAL_CONF)
    cert = found["certificate"]
    if cert and sorted(cert["names"]) == sorted(names) and found["renewal"].get("server") == directory:
        return
    yield StringCommand(layout.ACME_HELPER, "issue")


@operation()
def validated(files: list[tuple[str, str, str]], test: str):
    """Run ``test`` on the staged set when a staged file differs from its live copy: a config that
    fails stops the run here, before anything is applied (the rolling update promotes them)."""
    if host.get_fact(StagedDiffers, pairs=[list(f) for f in files]):
        yield test


def host_runner(target, argv: bool = False) -> Callable:
    """``run(command, timeout_s) -> (ok, output)`` on pyinfra host ``target``: a shell command
    (lbstack.deploylock). With ``argv``: ``run(argv, timeout_s) -> rollout.Result`` (lbstack.rollout),
    each argument quoted, the exit code, stdout and stderr read back."""
    if argv:
        def run_argv(args: list[str], timeout_s: float) -> rollout.Result:
            ok, output = transport.run_command(target, StringCommand(rollout.command_line(args)), timeout_s)
            return rollout.result_of(ok, output.stdout_lines, output.stderr_lines)
        return run_argv

    def run(command: str, timeout_s: float) -> tuple[bool, str]:
        ok, output = transport.run_command(target, StringCommand(command), timeout_s)
        return ok, output.output
    return run


def reached(target):
    """``target`` connected: a host of the inventory outside this run (``--limit``) that a step
    must reach all the same (the stack's lock host, a balancer to drain) is connected on demand."""
    if not target.connected:
        target.connect(reason="lbstack: the deploy lock or a drain", raise_exceptions=True)
    return target


# the stack's rolling update stopped on this host (rolled back there): the app hosts after it in
# this run do not start theirs (one release for the stack, one instance at a time across it)
ROLL_STOPPED: dict[str, str] = {}


def _take_lock(state, host, stale_s: int, lock) -> bool:  # noqa: ARG001
    where = "" if lock is host else f" (the stack's lock, on {lock.name})"
    try:
        deploylock.acquire(host_runner(reached(lock)), lock.name, stale_s,
                           lambda m: host.log_styled(m + where, fg="yellow"))
    except deploylock.LockHeld as exc:
        host.log_styled(f"lbstack: {exc}", fg="red")
        return False
    return True


@operation(is_idempotent=False)
def deploy_lock(stale_s: int, needed: Callable[[], bool], lock=None):
    """Take the stack's deploy lock (``lbstack.deploylock``) on ``lock`` (the lock host: the first
    app host, :func:`lbstack.topology.lock_host`; default this host) when this run has work that
    must not overlap another deploy (``needed()``: a new release, an instance to switch); fails
    naming the holder. A lock held by another live deploy fails the run even when there is
    nothing to do here."""
    lock = lock or host
    if not state.is_executing:
        if needed():
            yield FunctionCommand(_take_lock, (stale_s, lock), {})
        return
    ok, out = transport.run_command(reached(lock), StringCommand(deploylock.read_script()), 30)
    held = out.stdout.strip() if ok else ""
    if needed() or (held and lock.name not in deploylock.HELD):
        yield FunctionCommand(_take_lock, (stale_s, lock), {})


def _roll(state, host, steps, surplus, gates, batch: int, release: str | None, lb_hosts, lock) -> bool:  # noqa: ARG001
    log = lambda m: host.log_styled(f"rolling: {m}", fg="cyan")  # noqa: E731
    # an app host that failed earlier in this run (its release not unpacked, say) stops the
    # stack's update as a rolled-back one does: the stack stays on one release
    failed_apps = sorted(h.name for h in getattr(state, "failed_hosts", ()) if "app" in getattr(h, "groups", ()))
    if failed_apps and not ROLL_STOPPED:
        ROLL_STOPPED[failed_apps[0]] = "it failed earlier in this run"
    if ROLL_STOPPED:
        stopped, why = next(iter(ROLL_STOPPED.items()))
        host.log_styled(f"lbstack: not rolled: the rolling update stopped on {stopped} ({why}); "
                        "this host keeps its release", fg="red")
        return False
    app = host_runner(host, argv=True)
    try:
        roll = rollout.Rollout(app, [host_runner(reached(h), argv=True) for h in lb_hosts] or [app], gates, log)
        # surplus instances go first (scaling down): their workers' database and Redis connections
        # are gone before the remaining instances grow their pools
        roll.retire(surplus)
        if steps:
            log(f"{len(steps)} instance(s), {batch} at a time" + (f", to release {release}" if release else ""))
            roll.run(steps, batch, release)
        return True
    except rollout.RolloutFailed as exc:
        host.log_styled(f"lbstack: {exc}", fg="red")
        ROLL_STOPPED[host.name] = f"gate '{exc.gate}'" if exc.gate else "failed"
        deploylock.release(host_runner(lock), lock.name)  # the stack's deploy ends here
        return False


# The rolling update's turns in a run: one app host at a time (a mutex), in the inventory's order.
# pyinfra's ``_serial`` takes its hosts from a set (any order: the second app host rolled first in
# one CI run); here every app host's operation runs at once, and each waits for the ones before it.
TURN_MUTEX = BoundedSemaphore(1)


def _gone(state, peer) -> bool:
    """Whether ``peer`` will not take its turn: out of the run, or stopped by a failed operation
    (pyinfra's --no-wait leaves a failed host in the run)."""
    return (peer not in state.active_hosts or peer in state.failed_hosts
            or state.get_results_for_host(peer).error_ops > 0)


@contextlib.contextmanager
def rolling_turn(state, host, peers: list[str]) -> Iterator[None]:
    """This host's turn in the stack's rolling update (run by :func:`rolling_update` while
    executing). The turn is a mutex: never two app hosts at once, a retried attempt included.
    The order is the inventory's (``peers``: its app hosts, in order): the host first waits until
    every app host before it that runs this operation in this run has had its turn. Hosts outside
    the run (``--limit``, failed earlier) are not waited for. When not every app host can wait at
    once (pyinfra's ``--serial``, a ``--parallel`` or pool smaller than the hosts), the order is
    pyinfra's, and a line says so."""
    op = host.current_op_hash
    by_name = {h.name: h for h in state.inventory}
    running = [by_name[n] for n in peers if n in by_name and by_name[n] in state.active_hosts
               and op in state.ops.get(by_name[n], {})]
    if host not in running:
        running.append(host)
    size = getattr(state.pool, "size", None)
    parallel = state.get_op_meta(op).global_arguments.get("_parallel") if op else None
    ordered = (isinstance(gevent.getcurrent(), gevent.Greenlet) and (size is None or size >= len(running))
               and (not parallel or parallel >= len(state.active_hosts)))
    turns = state.__dict__.setdefault("lbstack_rolling_turns", {})  # this run's: (op, host name) -> Event
    held = False
    try:
        if ordered:
            for peer in running[:running.index(host)]:
                done = turns.setdefault((op, peer.name), Event())
                while not done.wait(1) and not _gone(state, peer):
                    pass
        elif len(running) > 1:
            host.log_styled("lbstack: app hosts roll one at a time, in pyinfra's order (not every app host's "
                            "step can wait at once: --serial, --parallel or a small pool)", fg="yellow")
        TURN_MUTEX.acquire()
        held = True
        yield
    finally:
        turns.setdefault((op, host.name), Event()).set()
        if held:
            TURN_MUTEX.release()


@operation(is_idempotent=False)
def rolling_update(plan_steps: Callable, gates, batch: int, release: str | None, lb_hosts: list, lock=None,
                   peers: list[str] | None = None):
    """Apply ``plan_steps()`` (instances to switch, reload or restart; surplus instances to retire)
    through ``lbstack.rollout``: drain (on every balancer), wait, switch, gate, undrain, a batch at a
    time, rolling back on a failed gate. App hosts take turns (:func:`rolling_turn`, ``peers``: the
    inventory's app hosts in order): a split stack updates one batch at a time across all of them,
    the first app host first, and a host whose update rolled back stops the hosts after it.
    Nothing to do: no change."""
    lock = lock or host
    # while executing: this host's turn (the hosts before it have rolled), then the steps, read
    # once right before they run (the generator runs at execute time, just ahead of the command)
    with rolling_turn(state, host, list(peers or [host.name])) if state.is_executing else contextlib.nullcontext():
        steps, surplus = plan_steps()
        if steps or surplus or (state.is_executing and lock.name in deploylock.HELD):
            yield FunctionCommand(_roll, (steps, surplus, gates, batch, release, lb_hosts, lock), {})


def _unlock(state, host, lock) -> bool:  # noqa: ARG001
    deploylock.release(host_runner(lock), lock.name)
    return True


@operation(is_idempotent=False)
def deploy_unlock(lock=None):
    """Release the stack's deploy lock once every app host of the run has rolled (this operation
    comes after :func:`rolling_update` in the deploy, and pyinfra runs an operation on every host
    before the next one). Nothing held: no change."""
    lock = lock or host
    if state.is_executing and lock.name in deploylock.HELD:
        yield FunctionCommand(_unlock, (lock,), {})


@operation()
def secret_present(secret: str, kind: str):
    """Create secret ``secret`` on the host with a random value if it is not there (value never read)."""
    if secret not in host.get_fact(SecretNames):
        yield StringCommand(HELPER, "ensure", secret, kind)


@operation()
def secret_file(source: str, dest: str, owner: str, group: str, mode: str):
    """Render ``dest`` on the host from the secret-free ``source``, filling in the secrets there.

    Changes only when the rendered content, owner, group or mode differ (decided on the host).
    """
    if not host.get_fact(SecretFileCurrent, source=source, dest=dest, owner=owner, group=group, mode=mode):
        yield StringCommand(HELPER, "render", source, dest, owner, group, mode)


def _failed(state, host, count: int) -> bool:  # noqa: ARG001 (pyinfra passes state and host by name)
    host.log_styled(f"verification failed: {count} check(s) differ from the plan (table above)", fg="red")
    return False


def _unreadable(state, host, reason: str) -> bool:  # noqa: ARG001
    host.log_styled(f"verification failed: could not read the host's state: {reason}", fg="red")
    return False


@operation(is_idempotent=False)
def verification_report(gather: Callable[[], list[checks.Check]], record: Callable | None = None):
    """Verify the host against the plan after every other operation ran.

    ``gather`` reads the live state with lbstack's facts and returns the check rows. Runs only
    while executing (at plan time the host has not converged yet). Reports no change when
    everything matches; otherwise prints the table and fails the run. ``record(rows)``: a shell
    command that leaves the result on the host (monitoring's textfile).
    """
    if not state.is_executing:
        return
    try:
        rows = gather()
    except Exception as exc:  # a fact that cannot be read is a failed verification, not a crash
        yield FunctionCommand(_unreadable, (f"{type(exc).__name__}: {exc}",), {})
        return
    report.print_tables(report.verification_table(host.name, rows), stderr=True)
    if record:  # the result for monitoring: a record of the run, not a change of the host's state
        transport.run_command(host, StringCommand(record(rows)), 30)
    bad = checks.failures(rows)
    if bad:
        yield FunctionCommand(_failed, (len(bad),), {})


@operation()
def no_limit_overrides(units: list[str]):
    """Remove the drop-ins ``systemctl set-property`` made for ``units`` (hand-made limits that
    override the plan), then reload systemd so the planned limits apply again to the running units."""
    found = host.get_fact(ControlOverrides, units=units)
    paths = sorted(p for unit_paths in found.values() for p in unit_paths)
    if not paths:
        return
    yield StringCommand("rm", "-f", *paths)
    yield StringCommand("systemctl", "daemon-reload")
