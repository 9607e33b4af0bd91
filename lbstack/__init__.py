"""lbstack: a load-balanced Laravel stack on one bare Debian VPS, as pyinfra code.

Dependencies run one way: ``deploy/`` (pyinfra entry files and one module per component) ->
``lbstack/`` (this library) -> ``facts/`` (pyinfra facts). Nothing here imports ``deploy``
(``tests/unit/test_layers.py`` fails if something does).

Where things live:
  lbstack/settings.py   typed settings, defaults and validation (the schema is the docs)
  lbstack/plan.py       the capacity plan: host CPUs/memory + settings -> every size, by component
  lbstack/layout.py     paths, unit names, ports on a host
  lbstack/packages.py   the Debian packages each component installs
  lbstack/context.py    settings + plan for one pyinfra host; topology.py: where the others are
  lbstack/render.py     Jinja2 options and template paths (the templates ship with the package)
  lbstack/operations.py lbstack's own pyinfra operations
  lbstack/checks.py     pure comparisons of facts with the plan; verification.py reads the facts
  lbstack/rollout.py    the rolling update driver (host side: /usr/local/sbin/lbstack-instance)
  lbstack/cli.py        the ``lbstack`` command
  lbstack/rehearsal/    local rehearsal hosts (systemd-nspawn, qemu)
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent  # a source checkout (editable install); see TEMPLATES
# The templates' source is the checkout's top-level templates/; a built wheel carries a copy as
# package data in lbstack/templates/ (pyproject.toml maps it), so an installed lbstack renders too.
TEMPLATES = PACKAGE_DIR / "templates" if (PACKAGE_DIR / "templates").is_dir() else REPO_ROOT / "templates"
