"""The deploy lock: one deploy at a time per stack.

The lock lives on the stack's lock host, the first app host of the inventory
(:func:`lbstack.topology.lock_host`: the VPS itself on one VPS); every app host's deploy takes
it there, and it is released once every app host of the run has rolled (or at once when one
rolled back: the others then keep their release). ``/var/lib/lbstack/deploy.lock`` holds who deploys: the machine running lbstack, its process id,
the user, since when (UTC) and the command. It is created atomically (``set -C``: the shell's
no-clobber open, ``O_EXCL``), taken before a new release is unpacked or any instance is switched,
and removed when the rolling update ends, whether it succeeded or rolled back.

A lock is **stale** when its process is gone on this same machine (a deploy killed or crashed
mid-way): it is taken over at once, with a message. Another machine's lock is taken over only
once it is older than ``deploy_lock_stale_s``; until then the deploy refuses and names the holder.
Take-over is compare-and-delete: the lock is removed only if it still holds what was read.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable

from lbstack import layout
from lbstack.release import shown

Runner = Callable[[str, float], tuple[bool, str]]

# the locks this process holds, by the lock host's inventory name: released when the deploy's rolling ends
HELD: dict[str, str] = {}


class LockHeld(Exception):
    """Another deploy holds the lock; the message names it."""


def holder(now: float | None = None) -> dict:
    """This process, as a lock holder."""
    command = shown(" ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv)))
    return {
        "machine": socket.gethostname(),
        "pid": os.getpid(),
        "user": getpass.getuser(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "since_epoch": int(now if now is not None else time.time()),
        "command": command[:200],
    }


def describe(info: dict, now: float | None = None) -> str:
    age = int((now if now is not None else time.time()) - int(info.get("since_epoch", 0)))
    return (f"{info.get('user', '?')}@{info.get('machine', '?')} (pid {info.get('pid', '?')}) since "
            f"{info.get('since', '?')} ({age} s ago): {info.get('command', '?')}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_reason(info: dict, stale_s: int, now: float | None = None) -> str | None:
    """Why ``info``'s lock may be taken over, or None while its deploy may still be running."""
    now = now if now is not None else time.time()
    if info.get("machine") == socket.gethostname():
        pid = int(info.get("pid", 0) or 0)
        if pid and not _alive(pid):
            return f"its process {pid} is gone on this machine"
    age = now - int(info.get("since_epoch", 0) or 0)
    if age > stale_s:
        return f"it is {int(age)} s old (deploy_lock_stale_s is {stale_s})"
    return None


def _acquire_script(content: str, path: str = layout.DEPLOY_LOCK) -> str:
    p = shlex.quote(path)
    return (f"mkdir -p {shlex.quote(os.path.dirname(path))} && "
            f"if ( set -C; printf '%s\\n' {shlex.quote(content)} > {p} ) 2>/dev/null; then echo @acquired; "
            f"else echo @held; cat {p}; fi")


def _remove_if_script(content: str, path: str = layout.DEPLOY_LOCK) -> str:
    p = shlex.quote(path)
    return f"if [ \"$(cat {p} 2>/dev/null)\" = {shlex.quote(content)} ]; then rm -f {p}; echo @removed; fi"


def acquire(run: Runner, host_name: str, stale_s: int, log: Callable[[str], None],
            path: str = layout.DEPLOY_LOCK) -> None:
    """Take the lock on the host behind ``run`` (re-entrant within this process); raise
    :class:`LockHeld` naming the holder when another live deploy has it."""
    if host_name in HELD:
        return
    mine = json.dumps(holder(), sort_keys=True)
    for _ in range(2):
        ok, out = run(_acquire_script(mine, path), 30)
        lines = out.strip().splitlines()
        if ok and lines and lines[0] == "@acquired":
            HELD[host_name] = mine
            return
        held = "\n".join(lines[1:]).strip()
        try:
            info = json.loads(held)
        except ValueError:
            info = {}
        if info.get("machine") == socket.gethostname() and int(info.get("pid", 0) or 0) == os.getpid():
            HELD[host_name] = held
            return
        reason = stale_reason(info, stale_s) if info else "it cannot be read"
        if reason is None:
            raise LockHeld(f"another deploy holds the lock on {host_name}: {describe(info)}. "
                           f"Wait for it to finish; if it is gone, remove {path} on {host_name}.")
        log(f"taking over a stale deploy lock ({describe(info) if info else held[:200]}): {reason}")
        run(_remove_if_script(held, path), 30)
    raise LockHeld(f"could not take the deploy lock on {host_name} ({path})")


def release(run: Runner, host_name: str, path: str = layout.DEPLOY_LOCK) -> None:
    mine = HELD.pop(host_name, None)
    if mine is not None:
        run(_remove_if_script(mine, path), 30)


def read_script(path: str = layout.DEPLOY_LOCK) -> str:
    return f"cat {shlex.quote(path)} 2>/dev/null || true"
