"""lbstack: a load-balanced Laravel stack on one bare Debian VPS, as pyinfra code.

Where things live:
  lbstack/settings.py   typed settings, defaults and validation (the schema is the docs)
  lbstack/plan.py       the capacity plan: host CPUs/memory + settings -> every limit
  lbstack/verify.py     compares facts read from a host with the plan
  lbstack/cli.py        the ``lbstack`` command
  lbstack/rehearsal/    local rehearsal hosts (systemd-nspawn, qemu)
  deploy/               one pyinfra deploy module per component, and ``full.py``
  facts/                pyinfra facts that read the live state back
  templates/            Jinja2 templates mirroring their target paths
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = REPO_ROOT / "templates"
