"""Rolling updates: a new release, FPM config or unit reaches the app instances a batch at a time
(one by default), each drained, switched, health-gated and put back, with automatic rollback.

Per batch of instances:

1. **drain**: mark the members ``down`` in the live upstream file (the file stays the source of
   truth: a reload never forgets a drain), validate the edited set with ``nginx -t`` on a copy,
   replace the file, graceful reload;
2. **wait** until each instance has no running request and nothing queued (its own FPM status
   page; bounded by ``drain_timeout_s``: then it is switched anyway, FPM's reload is graceful);
3. **switch**: promote its validated config, point ``instances/appN`` at the release, reload the
   FPM master (restart when its unit changed or it was not running);
4. **gate**: directly on its socket, no balancer in between: FPM reloaded (its start time moved),
   ``health_gate_passes`` consecutive 200s on the health path (from the new release when the app
   names it in ``X-Lbstack-Release``), then a 2xx smoke request, within ``health_gate_timeout_s``;
5. **undrain**: remove ``down``, validate, reload.

If a gate fails, the release is marked bad (``/var/lib/lbstack/bad-releases/<digest>``), every
instance switched so far goes back (config, release) in reverse order through the same drain and
gate, the balancer ends with every healthy instance in rotation, and :class:`RolloutFailed`
names the gate, the instance and what it answered.

**Where it runs.** Every step is one run of the host-side program ``/usr/local/sbin/lbstack-instance``
(``templates/usr/local/sbin/lbstack-instance.j2``; its argument lists come from
:mod:`lbstack.hostscripts`) through a *runner*: ``run(argv, timeout_s) -> Result`` with the exit
code, stdout and stderr (:func:`lbstack.operations.host_runner` over pyinfra; tests pass fakes).
Members are named as the site file tags them (``server ... ; # lbstack-member app1``).

**The program's contract** (its header comment holds the same):

- stdout carries only ``KEY=VALUE`` lines, each key at most once, the value to the end of the
  line; messages for people go to stderr. ``drain``/``undrain``: ``balancer=none|unchanged|
  reloaded|invalid``, ``absent=NAME...``; ``wait-idle``: ``idle=yes|no`` (+ ``active``, ``queue``);
  ``switch``: ``before=STAMP``, ``config_prev=1|0``, ``previous=ID``, ``action=reload|restart``;
  ``revert``: ``before``, ``action``; ``gate``: ``gate=pass`` + ``smoke=CODE``, or ``gate=fail`` +
  ``failed=reload|health|smoke``; ``mark-bad``: ``recorded``; ``retire``: ``retired``;
  ``forget-prev``: ``forgotten``; ``preload-check``: ``classes``; any failure: ``detail=TEXT``.
- exit codes: 0 done (nothing to do included), 1 a step failed, 2 usage error, 3 gate failed,
  4 the edited nginx config does not validate (nothing changed), 5 the release cannot be
  preloaded (:data:`lbstack.hostscripts.EXIT_GATE` and the others).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from lbstack import hostscripts, layout


class Result(NamedTuple):
    """One run of a host-side program: its exit code, stdout and stderr."""

    code: int
    stdout: str
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.code == hostscripts.EXIT_OK

    @property
    def fields(self) -> dict[str, str]:
        """The ``KEY=VALUE`` lines of stdout (a repeated key: its last value)."""
        found = {}
        for line in self.stdout.splitlines():
            key, eq, value = line.partition("=")
            if eq and key and " " not in key:
                found[key] = value
        return found

    def detail(self, fallback: str = "no answer") -> str:
        """Why it failed: its ``detail=``, else the end of what it said."""
        said = self.fields.get("detail") or (self.stderr.strip() or self.stdout.strip())[-300:]
        return said or fallback


# what a pyinfra runner appends to the command to learn the exit code (on stderr, removed again)
EXIT_MARKER = "lbstack-exit="


def command_line(argv: list[str]) -> str:
    """``argv`` quoted as one shell command that then reports its exit code (:func:`result_of`)."""
    return f'{shlex.join(argv)}; echo "{EXIT_MARKER}$?" >&2'


def result_of(ok: bool, stdout_lines: list[str], stderr_lines: list[str]) -> Result:
    """A :class:`Result` from a pyinfra run of :func:`command_line`; without the
    marker (the connection failed, the command timed out), 0 when pyinfra said ok, else 1."""
    code = hostscripts.EXIT_OK if ok else hostscripts.EXIT_FAILED
    err = list(stderr_lines)
    if err and err[-1].startswith(EXIT_MARKER) and err[-1][len(EXIT_MARKER):].isdigit():
        code = int(err.pop()[len(EXIT_MARKER):])
    return Result(code, "\n".join(stdout_lines), "\n".join(err))


Runner = Callable[[list[str], float], Result]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Instance:
    index: int
    member: str | None  # its upstream member's name as the site file tags it ("app1", or "web2-app1" on
    # another host's balancer); None: not behind nginx here
    fpm: str  # where cgi-fcgi reaches it on the app host (socket path or host:port)
    # its address in the upstream ("unix:/run/lbstack/app1/fpm.sock", "10.0.0.2:9001"): finds the
    # member in a site file written before members were tagged (an upgraded host's first update)
    member_address: str | None = None

    @property
    def drain_ref(self) -> str | None:
        """How lbstack-instance drain/undrain names it: ``NAME`` or ``NAME=ADDRESS``."""
        if not self.member:
            return None
        return f"{self.member}={self.member_address}" if self.member_address else self.member

    @property
    def name(self) -> str:
        return layout.instance_name(self.index)

    @property
    def unit(self) -> str:
        return layout.fpm_unit(self.index)

    @property
    def pointer(self) -> str:
        return layout.instance_pointer(self.index)


@dataclass
class Step:
    """What one instance needs: a release switch, a config promotion, a reload or a restart."""

    instance: Instance
    release: str | None = None  # point the instance at this release
    config: tuple[str, str, str] | None = None  # (staged, live, mode) to promote
    restart: bool = False  # restart (unit changed, or not running) rather than reload
    reasons: list[str] = field(default_factory=list)
    # filled in while applying, for rollback
    previous_release: str | None = None
    previous_config: bool = False

    def describe(self) -> str:
        return f"{self.instance.name} ({', '.join(self.reasons) or 'reload'})"


@dataclass(frozen=True)
class Gates:
    health_path: str
    smoke_path: str
    passes: int
    timeout_s: int
    drain_timeout_s: int


class GateFailed(Exception):
    def __init__(self, gate: str, instance: str, detail: str):
        super().__init__(f"gate '{gate}' failed on {instance}: {detail}")
        self.gate, self.instance, self.detail = gate, instance, detail


class RolloutFailed(Exception):
    """The update stopped; the message names the failed gate and what was rolled back."""

    def __init__(self, message: str, gate: str | None = None):
        super().__init__(message)
        self.gate = gate


# --- the orchestration ---------------------------------------------------------------------------


class Rollout:
    """Drain, switch, gate and undrain ``Step``\\ s a batch at a time; roll back on a failed gate.

    ``app`` runs lbstack-instance on the app host, ``lbs`` on each balancer host (:data:`Runner`)."""

    def __init__(self, app: Runner, lbs: list[Runner], gates: Gates, log: Log, now: Callable[[], float] = time.time):
        self.app, self.lbs, self.gates, self.log, self.now = app, lbs, gates, log, now
        self.events: list[dict] = []  # what happened, in order (for reports and tests)

    # - pieces -
    def _event(self, kind: str, instance: str = "", **extra) -> None:
        self.events.append({"t": round(self.now(), 3), "event": kind, "instance": instance, **extra})

    def _upstream(self, drain: list[Instance], undrain: list[Instance]) -> None:
        names = ",".join(i.name for i in drain + undrain)
        down, up = [i.drain_ref for i in drain if i.member], [i.drain_ref for i in undrain if i.member]
        edits = ([hostscripts.drain(down)] if down else []) + ([hostscripts.undrain(up)] if up else [])
        if not edits:
            return
        reloaded = False
        for lb in self.lbs:
            for argv in edits:
                result = lb(argv, 60)
                if not result.ok:  # EXIT_INVALID: the detail says the edit does not validate
                    raise GateFailed("nginx", names, result.detail("the upstream edit failed"))
                reloaded = reloaded or result.fields.get("balancer") == "reloaded"
        if not reloaded:
            return  # no balancer yet (first deploy), or the members are not in its upstream
        what = "drained" if drain else "back in rotation"
        self._event("drain" if drain else "undrain", names)
        self.log(f"{', '.join(i.name for i in drain + undrain)}: {what}")

    def _wait_idle(self, instance: Instance) -> None:
        timeout_s = self.gates.drain_timeout_s
        result = self.app(hostscripts.wait_idle(instance.fpm, timeout_s), timeout_s + 15)
        fields = result.fields
        busy = fields.get("idle") == "no"
        if busy:
            self.log(f"{instance.name}: still busy after {timeout_s} s (active={fields.get('active', '?')} "
                     f"queue={fields.get('queue', '?')}); switching anyway (FPM reloads gracefully)")
        self._event("idle", instance.name, busy=busy)

    def _apply(self, step: Step) -> str:
        inst = step.instance
        result = self.app(hostscripts.switch(inst.index, inst.fpm, step.release, step.config, step.restart), 120)
        fields = result.fields
        step.previous_release = fields.get("previous") or None
        step.previous_config = fields.get("config_prev") == "1"
        if not result.ok:
            raise GateFailed("switch", inst.name, result.detail("the switch failed"))
        self._event("switch", inst.name, release=step.release, restart=step.restart)
        return fields.get("before", "")

    def _gate(self, instance: Instance, release: str | None, before: str) -> None:
        g = self.gates
        result = self.app(hostscripts.gate(instance.index, instance.fpm, g.health_path, g.smoke_path, g.passes,
                                           g.timeout_s, before, release), g.timeout_s + 30)
        fields = result.fields
        if not (result.ok and fields.get("gate") == "pass"):
            raise GateFailed(fields.get("failed") or "health", instance.name, result.detail())
        self._event("gate", instance.name, release=release)
        self.log(f"{instance.name}: gate passed ({g.passes} good answers on {g.health_path}, "
                 f"smoke {g.smoke_path} {fields.get('smoke', '?')})")

    def _revert(self, step: Step) -> str:
        inst = step.instance
        release = step.previous_release if step.release else None
        live = step.config[1] if step.config and step.previous_config else None
        result = self.app(hostscripts.revert(inst.index, inst.fpm, release, live), 120)
        if not result.ok:
            raise GateFailed("revert", inst.name, result.detail("the revert failed"))
        return result.fields.get("before", "")

    # - the whole update -
    def run(self, steps: list[Step], batch: int, release: str | None) -> None:
        done: list[Step] = []
        for start in range(0, len(steps), max(1, batch)):
            group = steps[start:start + max(1, batch)]
            current: list[Step] = []
            try:
                self._upstream([s.instance for s in group], [])
                for step in group:
                    self._wait_idle(step.instance)
                for step in group:
                    current.append(step)
                    self.log(f"{step.instance.name}: switching ({', '.join(step.reasons) or 'reload'})")
                    before = self._apply(step)
                    self._gate(step.instance, step.release, before)
                self._upstream([], [s.instance for s in group])
                done += group
            except GateFailed as failed:
                self._event("failed", failed.instance, gate=failed.gate, detail=failed.detail)
                self.rollback(done, current, group, release, failed)
        kept = [s.config[1] for s in done if s.config and s.previous_config]
        if kept:  # every instance passed its gate: the previous configs (for rollback) can go
            self.app(hostscripts.forget_prev(kept), 30)
        self._event("done")

    def rollback(self, done: list[Step], current: list[Step], group: list[Step], release: str | None,
                 failed: GateFailed) -> None:
        self.log(f"{failed}; rolling back")
        # the build is to blame only when it switched instances and none of them passed its gate on
        # it: an instance failing where others passed on the same release is that instance's fault
        switched = any(s.release for s in done + current)
        passed_on_it = any(s.release == release for s in done) or any(
            e["event"] == "gate" and e.get("release") == release for e in self.events)
        # a new release of the build in service (its copy there failed its manifest) is not a bad build
        rebuild = bool(release) and all(s.previous_release and s.previous_release.rsplit("-", 1)[-1]
                                        == release.rsplit("-", 1)[-1] for s in done + current if s.release)
        if rebuild and switched:
            self.log(f"release {release} is a new release of the build in service: not marked bad")
        if release and switched and not passed_on_it and not rebuild and failed.gate not in ("nginx",):
            marked = self.app(hostscripts.mark_bad(release, failed.gate, failed.instance, failed.detail[:500]), 30)
            where = marked.fields.get("recorded") or f"{layout.BAD_RELEASES_DIR}/{release.rsplit('-', 1)[-1]}"
            self.log(f"release {release} marked bad ({where})" if marked.ok
                     else f"release {release} could not be marked bad: {marked.detail()}")
        reverted, problems = [], []
        # the failed batch is drained already; the instances finished before it go back through a drain
        for step in list(reversed(current)) + list(reversed(done)):
            was_live = step in done
            if step.release and not step.previous_release:
                problems.append(f"{step.instance.name} (no previous release to go back to: left drained)")
                continue
            try:
                if was_live:
                    self._upstream([step.instance], [])
                    self._wait_idle(step.instance)
                if (step.release and step.previous_release) or (step.config and step.previous_config) or step.restart:
                    before = self._revert(step)
                    self._gate(step.instance, step.previous_release if step.release else None, before)
                self._upstream([], [step.instance])
                reverted.append(step.instance.name)
            except GateFailed as again:
                problems.append(f"{step.instance.name} ({again})")
        # instances of the failed batch that were never switched go straight back
        untouched = [s.instance for s in group if s not in current]
        if untouched:
            try:
                self._upstream([], untouched)
            except GateFailed as again:
                problems.append(str(again))
        self._event("rolled-back", ",".join(reverted), problems=problems)
        previous = sorted({s.previous_release for s in done + current if s.previous_release})
        message = (f"rolling update stopped: {failed}. Rolled back {', '.join(reverted) or 'nothing'}"
                   + (f" to release {', '.join(previous)}" if previous else "")
                   + (f"; NOT restored: {'; '.join(problems)}" if problems else "; every instance is back in rotation"))
        raise RolloutFailed(message, failed.gate)

    def retire(self, instances: list[Instance]) -> None:
        """Surplus instances (scaling down): drained, idle, then stopped, disabled and removed."""
        if not instances:
            return
        self._upstream(instances, [])
        for instance in instances:
            self._wait_idle(instance)
            result = self.app(hostscripts.retire(instance.index), 120)
            if not result.ok:
                raise RolloutFailed(f"could not retire {instance.name}: {result.detail()}")
            self._event("retired", instance.name)
            self.log(f"{instance.name}: retired (scaled down)")
