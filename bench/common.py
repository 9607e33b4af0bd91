"""Shared by the bench scripts (run as ``python bench/<script>.py``: this directory is on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys

from lbstack import REPO_ROOT


def converge(name: str) -> None:
    """Converge rehearsal host ``name`` with deploy/full.py; exit with pyinfra's output if it fails."""
    proc = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "inventories/rehearsal.py", "deploy/full.py"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "LBSTACK_REHEARSAL_HOSTS": name})
    if proc.returncode != 0:
        raise SystemExit(f"converge failed on {name}:\n{proc.stderr[-3000:]}")
