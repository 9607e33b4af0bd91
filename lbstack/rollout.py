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

Everything runs on the hosts through *runners*: ``run(command, timeout_s) -> (ok, output)``. The
shell snippets are plain functions of their arguments, so they are tested as text too.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lbstack import layout

Runner = Callable[[str, float], tuple[bool, str]]
Log = Callable[[str], None]

SITE_CONF = "/etc/nginx/conf.d/lbstack.conf"
NGINX_DIR = "/etc/nginx"


@dataclass(frozen=True)
class Instance:
    index: int
    member: str | None  # its upstream member address ("unix:/run/lbstack/app1/fpm.sock"); None: not behind nginx here
    fpm: str  # where cgi-fcgi reaches it on the app host (socket path or host:port)

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


# --- shell snippets ------------------------------------------------------------------------------


def _bre(text: str) -> str:
    """``text`` as a literal in a sed/grep basic regular expression (with ``#`` as delimiter)."""
    return re.sub(r"([.\[\]*^$\\#])", r"\\\1", text)


def upstream_edit_script(drain: list[str], undrain: list[str], site_conf: str = SITE_CONF,
                         nginx_dir: str = NGINX_DIR) -> str:
    """Mark ``drain`` members ``down`` and ``undrain`` members back up in the live upstream file.

    The edit is made on a copy of nginx's config set, validated there with ``nginx -t``, and only
    then renamed over the live file and reloaded; an edit that fails validation leaves nginx and
    its files untouched. Members not in the file are reported (``@absent=``) and skipped.
    Prints ``@unchanged`` or ``@reloaded``; exit 4 with nginx's message when invalid.
    """
    conf = shlex.quote(site_conf)
    lines = [
        "set -eu",
        f"if [ ! -f {conf} ] || ! systemctl is-active -q nginx.service; then echo @no-balancer; exit 0; fi",
        f"mkdir -p {layout.STATE_DIR}",
        f"tmp=$(mktemp -d {layout.STATE_DIR}/upstream.XXXXXX)",
        "trap 'rm -rf \"$tmp\"' EXIT",
        f"cp {shlex.quote(nginx_dir)}/nginx.conf \"$tmp/nginx.conf\"",
        "mkdir \"$tmp/conf.d\"",
        f"cp {shlex.quote(nginx_dir)}/conf.d/*.conf \"$tmp/conf.d/\"",
        f"new=\"$tmp/conf.d/$(basename {conf})\"",
    ]
    for address, down in [(a, True) for a in drain] + [(a, False) for a in undrain]:
        pattern = f"^ *server {_bre(address)} "
        edit = r"s/ down;$/;/;s/;$/ down;/" if down else r"s/ down;$/;/"
        lines.append(
            f"if grep -q {shlex.quote(pattern)} \"$new\"; then sed -i {shlex.quote(chr(92) + '#' + pattern + '#{' + edit + '}')} \"$new\"; "
            f"else echo {shlex.quote('@absent=' + address)}; fi"
        )
    lines += [
        f"if cmp -s \"$new\" {conf}; then echo @unchanged; exit 0; fi",
        "if ! out=$(nginx -t -q -c \"$tmp/nginx.conf\" 2>&1); then echo \"@invalid=$out\"; exit 4; fi",
        f"install -m 644 \"$new\" {conf}.lbstack-new",
        f"mv -f {conf}.lbstack-new {conf}",
        "systemctl reload nginx.service",
        "echo @reloaded",
    ]
    return "\n".join(lines)


def _fpm_status(address: str) -> str:
    """Shell: the instance's FPM status as one JSON line (empty when it does not answer)."""
    return ("{ SCRIPT_NAME=/fpm-status SCRIPT_FILENAME=/fpm-status QUERY_STRING=json REQUEST_METHOD=GET "
            f"timeout 5 cgi-fcgi -bind -connect {shlex.quote(address)} 2>/dev/null | tr -d '\\r' | grep '^{{' || true; }}")


def _json_number(key: str) -> str:
    """sed expression printing the number after ``"key":`` in FPM's JSON status."""
    return shlex.quote(f's/.*"{key}":\\([0-9]*\\).*/\\1/p')


def wait_idle_script(address: str, timeout_s: int) -> str:
    """Wait until the instance runs nothing but this status request and queues nothing, twice in a
    row (0.1 s apart); bounded. Prints ``@idle`` or ``@busy active=N queue=N`` on timeout."""
    return "\n".join([
        f"deadline=$(( $(date +%s) + {int(timeout_s)} )); idle=0",
        "while :; do",
        f"  s=$({_fpm_status(address)})",
        f"  active=$(printf '%s' \"$s\" | sed -n {_json_number('active processes')})",
        f"  queue=$(printf '%s' \"$s\" | sed -n {_json_number('listen queue')})",
        "  if [ -z \"$active\" ] || { [ \"$active\" -le 1 ] && [ \"${queue:-0}\" -eq 0 ]; }; then idle=$((idle + 1)); else idle=0; fi",
        "  if [ \"$idle\" -ge 2 ]; then echo @idle; exit 0; fi",
        "  if [ \"$(date +%s)\" -ge \"$deadline\" ]; then echo \"@busy active=$active queue=${queue:-0}\"; exit 0; fi",
        "  sleep 0.1",
        "done",
    ])


def _stamp(instance: Instance) -> str:
    """Shell: ``<FPM start time>/<MainPID>``: changes when the master reloads (USR2 re-exec: new
    start time) or restarts (new PID)."""
    return (f"$({_fpm_status(instance.fpm)} | sed -n {_json_number('start time')})/"
            f"$(systemctl show -p MainPID --value {shlex.quote(instance.unit)})")


def apply_script(step: Step) -> str:
    """Promote the instance's config (previous copy kept), switch its release pointer (previous
    printed), then reload or restart its FPM master. Prints ``@previous=<id>``, ``@config-prev=1``
    and ``@started=<FPM start time before>``."""
    inst = step.instance
    unit = shlex.quote(inst.unit)
    lines = ["set -eu", f"echo \"@before={_stamp(inst)}\""]
    if step.config:
        staged, live, mode = (shlex.quote(p) for p in step.config)
        lines += [
            f"if [ -f {live} ]; then cp -p {live} {live}.lbstack-prev; echo @config-prev=1; "
            f"else rm -f {live}.lbstack-prev; fi",
            f"install -D -m {mode} {staged} {live}.lbstack-new",
            f"mv -f {live}.lbstack-new {live}",
        ]
    if step.release:
        pointer = shlex.quote(inst.pointer)
        lines += [
            f"mkdir -p {shlex.quote(layout.INSTANCES_DIR)}",
            f"prev=$(readlink {pointer} 2>/dev/null || true); echo \"@previous=${{prev##*/}}\"",
            f"ln -sfn {shlex.quote('../releases/' + step.release)} {pointer}.lbstack-new",
            f"mv -Tf {pointer}.lbstack-new {pointer}",
        ]
    lines += [
        f"systemctl reset-failed {unit} 2>/dev/null || true",
        f"if {'true' if step.restart else 'false'} || ! systemctl is-active -q {unit}; then "
        f"systemctl restart {unit}; else systemctl reload {unit}; fi",
    ]
    return "\n".join(lines)


def revert_script(step: Step) -> str:
    """Put back the instance's previous config and release, then restart it."""
    inst = step.instance
    lines = ["set -eu", f"echo \"@before={_stamp(inst)}\""]
    if step.config and step.previous_config:
        live = shlex.quote(step.config[1])
        lines.append(f"mv -f {live}.lbstack-prev {live}")
    if step.release and step.previous_release:
        pointer = shlex.quote(inst.pointer)
        lines += [f"ln -sfn {shlex.quote('../releases/' + step.previous_release)} {pointer}.lbstack-new",
                  f"mv -Tf {pointer}.lbstack-new {pointer}"]
    lines += [f"systemctl reset-failed {shlex.quote(inst.unit)} 2>/dev/null || true",
              f"systemctl restart {shlex.quote(inst.unit)}"]
    return "\n".join(lines)


def _fcgi_get(address: str, path: str) -> str:
    """Shell: GET ``path`` from the instance directly through the front controller (headers and body)."""
    query = path.split("?", 1)[1] if "?" in path else ""
    env = {
        "REQUEST_METHOD": "GET", "SCRIPT_FILENAME": layout.FRONT_CONTROLLER, "SCRIPT_NAME": "/index.php",
        "DOCUMENT_URI": "/index.php", "REQUEST_URI": path, "QUERY_STRING": query, "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "localhost",
    }
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return f"{assignments} timeout 5 cgi-fcgi -bind -connect {shlex.quote(address)} 2>&1"


def gate_script(instance: Instance, gates: Gates, release: str | None, started_before: str) -> str:
    """The health gate, on the app host in one round trip.

    ``reload``: the FPM master's start time or PID differs from ``started_before`` (the reload or
    restart happened); ``health``: ``gates.passes`` consecutive 200s on the health path (and, when the app
    names its release in ``X-Lbstack-Release``, from ``release``); ``smoke``: a 2xx on the smoke
    path. Prints ``@pass`` or ``@fail=<gate>: <detail>``; the deadline covers all three.
    """
    answer = ("  code=$(printf '%s\\n' \"$out\" | tr -d '\\r' | sed -n '/^$/q;s/^Status: \\([0-9][0-9][0-9]\\).*/\\1/p')\n"
              "  hdrs=$(printf '%s\\n' \"$out\" | tr -d '\\r' | sed -n '/^$/q;p')\n"
              "  [ -n \"$hdrs\" ] && [ \"$rc\" -eq 0 ] && code=${code:-200} || code=none\n"
              "  rel=$(printf '%s\\n' \"$hdrs\" | sed -n 's/^[Xx]-[Ll]bstack-[Rr]elease: *//p')\n")
    expect = shlex.quote(release or "")
    return "\n".join([
        f"deadline=$(( $(date +%s) + {int(gates.timeout_s)} ))",
        f"before={shlex.quote(started_before)}",
        "while :; do",
        f"  now={_stamp(instance)}",
        "  if [ \"${now%%/*}\" != '' ] && [ \"$now\" != \"$before\" ]; then break; fi",
        "  if [ \"$(date +%s)\" -ge \"$deadline\" ]; then echo \"@fail=reload: the FPM master did not come back "
        "(start time ${now:-none}, before ${before:-none})\"; exit 0; fi",
        "  sleep 0.1",
        "done",
        "passes=0; last=''",
        f"while [ \"$passes\" -lt {int(gates.passes)} ]; do",
        f"  out=$({_fcgi_get(instance.fpm, gates.health_path)}); rc=$?",
        answer.rstrip("\n"),
        f"  if [ \"$code\" = 200 ] && {{ [ -z \"$rel\" ] || [ -z {expect} ] || [ \"$rel\" = {expect} ]; }}; then",
        "    passes=$((passes + 1))",
        "  else",
        "    passes=0",
        f"    if [ \"$code\" = 200 ]; then last=\"answered from release $rel, not {release or ''}\"; "
        f"elif [ \"$code\" = none ]; then last=\"no answer from {instance.fpm} (cgi-fcgi exit $rc): $(printf '%s' \"$out\" | tr -d '\\r' | head -c 200 | tr '\\n' ' ')\"; "
        f"else last=\"{gates.health_path} answered ${{code}}: $(printf '%s' \"$out\" | tr -d '\\r' | sed '1,/^$/d' | head -c 200 | tr '\\n' ' ')\"; fi",
        "  fi",
        f"  if [ \"$passes\" -lt {int(gates.passes)} ] && [ \"$(date +%s)\" -ge \"$deadline\" ]; then "
        f"echo \"@fail=health: $passes of {int(gates.passes)} consecutive good answers in {int(gates.timeout_s)} s; last: $last\"; exit 0; fi",
        f"  [ \"$passes\" -lt {int(gates.passes)} ] && sleep 0.2",
        "done",
        f"out=$({_fcgi_get(instance.fpm, gates.smoke_path)}); rc=$?",
        answer.rstrip("\n"),
        "case \"$code\" in 2??) echo \"@pass smoke=$code\" ;; "
        f"*) echo \"@fail=smoke: {gates.smoke_path} answered $code: $(printf '%s' \"$out\" | tr -d '\\r' | sed '1,/^$/d' | head -c 200 | tr '\\n' ' ')\" ;; esac",
    ])


def mark_bad_script(release: str, record: dict) -> str:
    digest = release.rsplit("-", 1)[-1]
    path = shlex.quote(f"{layout.BAD_RELEASES_DIR}/{digest}")
    return (f"mkdir -p {layout.BAD_RELEASES_DIR} && printf '%s\\n' {shlex.quote(json.dumps(record, sort_keys=True))} "
            f"> {path}")


def retire_script(instance: Instance) -> str:
    """Stop and disable a surplus instance (already drained), remove its config, pointer, staging
    copy and CPU placement drop-in."""
    live = layout.fpm_config(instance.index)
    return "\n".join([
        f"systemctl disable --now {shlex.quote(instance.unit)} 2>/dev/null || systemctl stop {shlex.quote(instance.unit)} || true",
        f"rm -f {shlex.quote(live)} {shlex.quote(live)}.lbstack-prev {shlex.quote(layout.staged(live))} "
        f"{shlex.quote(instance.pointer)} {shlex.quote(layout.fpm_cpu_dropin(instance.index))}",
    ])


def _markers(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        if line.startswith("@"):
            key, eq, value = line[1:].partition("=")
            found[key.split()[0] if key.split() else key] = value if eq else line[1:]
    return found


# --- the orchestration ---------------------------------------------------------------------------


class Rollout:
    """Drain, switch, gate and undrain ``Step``\\ s a batch at a time; roll back on a failed gate."""

    def __init__(self, app: Runner, lbs: list[Runner], gates: Gates, log: Log, now: Callable[[], float] = time.time):
        self.app, self.lbs, self.gates, self.log, self.now = app, lbs, gates, log, now
        self.events: list[dict] = []  # what happened, in order (for reports and tests)

    # - pieces -
    def _event(self, kind: str, instance: str = "", **extra) -> None:
        self.events.append({"t": round(self.now(), 3), "event": kind, "instance": instance, **extra})

    def _upstream(self, drain: list[Instance], undrain: list[Instance]) -> None:
        drain_members = [i.member for i in drain if i.member]
        undrain_members = [i.member for i in undrain if i.member]
        if not drain_members and not undrain_members:
            return
        reloaded = False
        for lb in self.lbs:
            ok, out = lb(upstream_edit_script(drain_members, undrain_members), 60)
            marks = _markers(out)
            if not ok or "invalid" in marks:
                raise GateFailed("nginx", ",".join(i.name for i in drain + undrain),
                                 f"the edited upstream does not validate: {marks.get('invalid') or out.strip()[-300:]}")
            reloaded = reloaded or "reloaded" in marks
        if not reloaded:
            return  # no balancer yet (first deploy), or the members are not in its upstream
        what = "drained" if drain else "back in rotation"
        self._event("drain" if drain else "undrain", ",".join(i.name for i in drain + undrain))
        self.log(f"{', '.join(i.name for i in drain + undrain)}: {what}")

    def _wait_idle(self, instance: Instance) -> None:
        ok, out = self.app(wait_idle_script(instance.fpm, self.gates.drain_timeout_s), self.gates.drain_timeout_s + 15)
        if "@busy" in out:
            self.log(f"{instance.name}: still busy after {self.gates.drain_timeout_s} s "
                     f"({out.strip().splitlines()[-1][1:]}); switching anyway (FPM reloads gracefully)")
        self._event("idle", instance.name, busy="@busy" in out)

    def _apply(self, step: Step) -> str:
        ok, out = self.app(apply_script(step), 120)
        marks = _markers(out)
        step.previous_release = marks.get("previous") or None
        step.previous_config = "config-prev" in marks
        if not ok:
            raise GateFailed("switch", step.instance.name, out.strip()[-300:] or "the switch failed")
        self._event("switch", step.instance.name, release=step.release, restart=step.restart)
        return marks.get("before", "")

    def _gate(self, instance: Instance, release: str | None, before: str) -> None:
        ok, out = self.app(gate_script(instance, self.gates, release, before), self.gates.timeout_s + 30)
        marks = _markers(out)
        if "pass" not in marks:
            detail = marks.get("fail") or (out.strip()[-300:] if out.strip() else "no answer")
            gate, _, rest = detail.partition(": ")
            raise GateFailed(gate if rest else "health", instance.name, rest or detail)
        self._event("gate", instance.name, release=release)
        self.log(f"{instance.name}: gate passed ({self.gates.passes} good answers on {self.gates.health_path}, "
                 f"smoke {self.gates.smoke_path} {marks['pass'].split('=')[-1]})")

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
        kept = [shlex.quote(s.config[1] + ".lbstack-prev") for s in done if s.config and s.previous_config]
        if kept:  # every instance passed its gate: the previous configs (for rollback) can go
            self.app(f"rm -f {' '.join(kept)}", 30)
        self._event("done")

    def rollback(self, done: list[Step], current: list[Step], group: list[Step], release: str | None,
                 failed: GateFailed) -> None:
        self.log(f"{failed}; rolling back")
        # the build is to blame only when it switched instances and none of them passed its gate on
        # it: an instance failing where others passed on the same release is that instance's fault
        switched = any(s.release for s in done + current)
        passed_on_it = any(s.release == release for s in done) or any(
            e["event"] == "gate" and e.get("release") == release for e in self.events)
        if release and switched and not passed_on_it and failed.gate not in ("nginx",):
            digest = release.rsplit("-", 1)[-1]
            record = {"release": release, "gate": failed.gate, "instance": failed.instance,
                      "detail": failed.detail[:500], "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            self.app(mark_bad_script(release, record), 30)
            self.log(f"release {release} marked bad ({layout.BAD_RELEASES_DIR}/{digest})")
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
                    ok, out = self.app(revert_script(step), 120)
                    before = _markers(out).get("before", "")
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
            ok, out = self.app(retire_script(instance), 120)
            if not ok:
                raise RolloutFailed(f"could not retire {instance.name}: {out.strip()[-300:]}")
            self._event("retired", instance.name)
            self.log(f"{instance.name}: retired (scaled down)")
