"""bench.load run inside a rehearsal host (the client of a rehearsal network): this machine cannot
reach a rehearsal network, so load through the floating address starts on a host that is on it.

``install(info)`` copies ``bench/load.py`` (standard library only) and the one lbstack module it
imports onto the host; ``ClientLoad(info, url, connections)`` runs it there over ssh in a thread
until :meth:`ClientLoad.stop` (SIGINT: the run ends and prints its JSON) or ``seconds`` at most.
"""

from __future__ import annotations

import base64
import json
import shlex
import threading

from lbstack import REPO_ROOT
from lbstack.rehearsal import HostInfo, ssh_run

LOAD_DIR = "/opt/lbstack-load"
FILES = (("bench/load.py", "load.py"), ("lbstack/probe.py", "lbstack/probe.py"))


def install(info: HostInfo) -> None:
    for source, target in FILES:
        data = base64.b64encode((REPO_ROOT / source).read_bytes()).decode()
        rc, _, err = ssh_run(info, f"mkdir -p {LOAD_DIR}/lbstack && touch {LOAD_DIR}/lbstack/__init__.py && "
                                   f"echo {data} | base64 -d > {LOAD_DIR}/{target}", timeout_s=60)
        if rc != 0:
            raise RuntimeError(f"could not copy {source} to {info.name}: {err[-500:]}")


class ClientLoad:
    """``connections`` keep-alive connections from ``info`` to ``url``, GETs round-robin over ``paths``
    (https: the chain verified against ``cafile`` on the client, for ``host_header``'s name)."""

    def __init__(self, info: HostInfo, url: str, connections: int, paths: tuple[str, ...], seconds: int = 600,
                 timeout_s: float = 15.0, records: bool = False, host_header: str | None = None,
                 cafile: str | None = None):
        self.info, self.result = info, {}
        self.pidfile = f"{LOAD_DIR}/load-{id(self)}.pid"  # this run's process, for stop()
        args = " ".join(f"--path {p}" for p in paths)
        self.command = (f"cd {LOAD_DIR} && echo $$ > {self.pidfile} && exec python3 load.py {url} "
                        f"--connections {connections} --duration {seconds} {args} --timeout {timeout_s} --json"
                        + (" --records" if records else "")
                        + (f" --host-header {shlex.quote(host_header)}" if host_header else "")
                        + (f" --cafile {shlex.quote(cafile)}" if cafile else ""))
        self.thread = threading.Thread(target=self._run, args=(seconds,), daemon=True)
        self.thread.start()

    def _run(self, seconds: int) -> None:
        rc, out, err = ssh_run(self.info, self.command, timeout_s=seconds + 120)
        try:
            self.result = json.loads(out)
        except ValueError:
            self.result = {"error": (err or out)[-2000:], "rc": rc}

    def stop(self) -> dict:
        """End the run and return bench.load's JSON (``summary``, and ``records`` when asked)."""
        ssh_run(self.info, f"kill -INT $(cat {self.pidfile}) 2>/dev/null; rm -f {self.pidfile}", timeout_s=30)
        self.thread.join(timeout=180)
        if "summary" not in self.result:
            raise RuntimeError(f"the load on {self.info.name} gave no summary: {self.result}")
        return self.result

