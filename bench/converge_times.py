"""Measure and print the stack's timings on this machine:

    rootfs build      golden Debian 12 rootfs with mmdebstrap (--fresh rebuilds it; cached otherwise)
    host boot         nspawn rehearsal host from the golden rootfs to ssh answering
    converge          deploy/full.py from bare
    no-op re-run      deploy/full.py again (must change nothing)
    verification      deploy/verify.py alone

    python -m bench.converge_times [--fresh] [--vm]

Bounded: every step has a timeout; the host it boots is torn down at the end. Prints a table and
one JSON line (for notes and CI logs).
"""

from __future__ import annotations

import argparse
import json
import os
import time

from bench.stack import changed_ops, pyinfra_run
from lbstack.rehearsal import build_image, build_rootfs, down, up


def timed(label: str, results: dict, fn, *args, **kwargs):
    started = time.monotonic()
    value = fn(*args, **kwargs)
    results[label] = round(time.monotonic() - started, 1)
    print(f"{label:<22} {results[label]:>7.1f} s", flush=True)
    return value


def pyinfra(name: str, deploy: str) -> str:
    try:
        return pyinfra_run(name, deploy, timeout_s=3600)[1]
    except RuntimeError as error:
        raise SystemExit(str(error)) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="rebuild the golden rootfs/image")
    parser.add_argument("--vm", action="store_true", help="measure the qemu VM host instead of nspawn")
    args = parser.parse_args()
    kind = "vm" if args.vm else "nspawn"
    name = f"bench-{kind}-{os.getpid()}"
    results: dict[str, float | str] = {"kind": kind}
    print(f"lbstack timings ({kind}, {'fresh' if args.fresh else 'cached'} image)")
    if args.vm:
        timed("image build", results, build_image, force=args.fresh)
    else:
        timed("rootfs build", results, build_rootfs, force=args.fresh)
    try:
        timed("host boot", results, up, name, vm_host=args.vm)
        timed("converge from bare", results, pyinfra, name, "deploy/full.py")
        stderr = timed("no-op re-run", results, pyinfra, name, "deploy/full.py")
        results["no-op re-run changed ops"] = changed_ops(stderr)
        timed("verification", results, pyinfra, name, "deploy/verify.py")
    finally:
        timed("teardown", results, down, name)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
