"""Shared by the bench scripts (run from the checkout as ``python -m bench.<script>``)."""

from __future__ import annotations

from bench.stack import pyinfra_run


def converge(name: str) -> None:
    """Converge rehearsal host ``name`` with deploy/full.py; exit with pyinfra's output if it fails."""
    try:
        pyinfra_run(name, "deploy/full.py", timeout_s=3600)
    except RuntimeError as error:
        raise SystemExit(f"converge failed on {name}:\n{error}") from None
