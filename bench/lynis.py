"""Lynis' hardening index of a bare rehearsal host and of the same host converged by lbstack:

    python -m bench.lynis [--vm]

Boots one rehearsal host from the golden rootfs (or VM image), installs Debian's lynis on it,
runs ``lynis audit system`` on the bare host, converges ``deploy/full.py``, runs it again, and
prints both indexes, the difference, and the suggestions each run gave (one JSON line at the end).
The host is torn down at the end, however the run ends. Bounded: every step has a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time

from bench.stack import pyinfra_run
from lbstack.rehearsal import down, get_host, owned_hosts, ssh_run, up

AUDIT = "lynis audit system --quick --no-colors --no-log --report-file /root/lynis-report.dat >/dev/null 2>&1; "\
        "cat /root/lynis-report.dat"


def parse_report(text: str) -> dict:
    """The hardening index, tests performed and warnings/suggestions of a lynis report file."""
    index = re.search(r"^hardening_index=(\d+)$", text, re.M)
    tests = re.search(r"^lynis_tests_done=(\d+)$", text, re.M)
    return {
        "index": int(index.group(1)) if index else None,
        "tests": int(tests.group(1)) if tests else None,
        "warnings": re.findall(r"^warning\[\]=([^|]*)", text, re.M),
        "suggestions": re.findall(r"^suggestion\[\]=([^|]*)", text, re.M),
    }


def audit(name: str) -> dict:
    rc, out, err = ssh_run(get_host(name), AUDIT, timeout_s=1200)
    result = parse_report(out)
    if result["index"] is None:
        raise SystemExit(f"lynis gave no hardening index on {name} (exit {rc}): {err[-2000:]}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vm", action="store_true", help="a qemu VM host (real kernel) instead of nspawn")
    args = parser.parse_args()
    name = f"lynis-{'vm' if args.vm else 'nspawn'}-{os.getpid()}"
    with owned_hosts():
        try:
            up(name, vm_host=args.vm)
            rc, _, err = ssh_run(get_host(name), "DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && "
                                 "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends lynis "
                                 ">/dev/null", timeout_s=900)
            if rc != 0:
                raise SystemExit(f"installing lynis failed: {err[-2000:]}")
            started = time.monotonic()
            bare = audit(name)
            print(f"bare Debian 12:     hardening index {bare['index']} ({bare['tests']} tests, "
                  f"{time.monotonic() - started:.0f} s)", flush=True)
            pyinfra_run(name, "deploy/full.py", timeout_s=3600)
            converged = audit(name)
            print(f"converged lbstack:  hardening index {converged['index']} ({converged['tests']} tests)")
            print(f"difference:         {converged['index'] - bare['index']:+d} (issue 17 asks for >= +15)")
            fixed = sorted(set(bare["suggestions"]) - set(converged["suggestions"]))
            left = sorted(set(converged["suggestions"]))
            print(f"suggestions fixed by the converge ({len(fixed)}): {', '.join(fixed)}")
            print(f"suggestions left ({len(left)}): {', '.join(left)}")
            print(json.dumps({"kind": "vm" if args.vm else "nspawn", "bare": bare["index"],
                              "converged": converged["index"], "difference": converged["index"] - bare["index"],
                              "bare_warnings": bare["warnings"], "converged_warnings": converged["warnings"],
                              "fixed": fixed, "left": left}))
        finally:
            down(name)


if __name__ == "__main__":
    main()
