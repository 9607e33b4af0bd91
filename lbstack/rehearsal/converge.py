"""pyinfra on rehearsal hosts, as a user runs it: ``pyinfra -y [--json] inventories/rehearsal.py
DEPLOY`` in a subprocess, limited to the named hosts. The one runner of the tests, the bench and
the bench scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lbstack import REPO_ROOT

INVENTORY = "inventories/rehearsal.py"


@dataclass
class PyinfraRun:
    rc: int
    stdout: str
    stderr: str
    seconds: float
    results: dict | None = field(default=None)  # pyinfra's --json "results", when asked for

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def changed(self) -> int | str:
        """Operations that changed something, from pyinfra's "Grand total" line (its Success
        column); "?" when the line is missing."""
        total = [line for line in self.stderr.splitlines() if "Grand total" in line]
        fields = total[-1].split() if total else []
        if len(fields) > 3:
            return 0 if fields[3] == "-" else fields[3]
        return "?"


def pyinfra(hosts: str | list[str], deploy: str = "deploy/full.py", settings_file: str | Path | None = None,
            as_json: bool = False, timeout_s: float = 1800, env: dict | None = None,
            cwd: str | Path | None = None, inventory: str = INVENTORY) -> PyinfraRun:
    """Run ``deploy`` on the rehearsal hosts ``hosts`` (names); ``settings_file`` replaces the
    inventory's settings (``LBSTACK_SETTINGS``); ``cwd``: another checkout (default this one);
    ``inventory``: e.g. ``inventories/rehearsal_split.py`` (with ``LBSTACK_REHEARSAL_GROUPS`` in
    ``env``). Never raises for a failed run: see ``rc``."""
    names = [hosts] if isinstance(hosts, str) else list(hosts)
    extra = {"LBSTACK_REHEARSAL_HOSTS": ",".join(names), **(env or {})}
    if settings_file is not None:
        extra["LBSTACK_SETTINGS"] = str(settings_file)
    cmd = [sys.executable, "-m", "pyinfra", "-y", *(["--json"] if as_json else []), inventory, deploy]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd or REPO_ROOT, capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, **extra})
    run = PyinfraRun(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
    if as_json:
        try:
            run.results = json.loads(proc.stdout)["results"]
        except (json.JSONDecodeError, KeyError, TypeError):
            run.results = None
    return run
