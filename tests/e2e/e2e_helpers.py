"""Helpers of the end-to-end tests: run pyinfra on a rehearsal host, read its results, run
commands on the host."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

from lbstack import REPO_ROOT, layout
from lbstack.plan import make_plan
from lbstack.rehearsal import converge, ssh_run
from lbstack.release import SAMPLE_APP_DIR
from lbstack.settings import load

MIB = 1024 * 1024
TIMINGS: dict[str, float] = {}


@contextlib.contextmanager
def rehearsal_env(host_name: str, settings: dict | None, env: dict | None):
    """Environment for a run against the rehearsal inventory limited to ``host_name``; ``settings``
    replace the inventory's settings (through a temporary YAML file, removed afterwards)."""
    extra = {"LBSTACK_REHEARSAL_HOSTS": host_name, **(env or {})}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        if settings is not None:
            yaml.safe_dump(settings, handle)
            handle.flush()
            extra["LBSTACK_SETTINGS"] = handle.name
        yield extra


def pyinfra(host_name: str, deploy: str = "deploy/full.py", timeout: int = 1800, settings: dict | None = None,
            env: dict | None = None, cwd=None) -> dict:
    """Run pyinfra on one rehearsal host with --json (:func:`lbstack.rehearsal.converge.pyinfra`);
    returns rc, results, stdout, stderr and seconds. ``settings`` replaces the rehearsal
    inventory's settings (written to a YAML file)."""
    with rehearsal_env(host_name, settings, env) as extra:
        settings_file = extra.pop("LBSTACK_SETTINGS", None)
        extra.pop("LBSTACK_REHEARSAL_HOSTS")
        run = converge.pyinfra(host_name, deploy, settings_file, as_json=True, timeout_s=timeout, env=extra,
                               cwd=cwd)
    return {"rc": run.rc, "stderr": run.stderr, "stdout": run.stdout, "seconds": run.seconds, "results": run.results}


def failed_checks(output: str, context: int = 2) -> str:
    """The rows of the verification tables in ``output`` whose status is FAIL (with ``context``
    table lines after each, a wrapped row's rest), and the failed operations' lines: what a failed
    run's message needs when its output's tail is all passing rows."""
    lines = output.splitlines()
    keep: set[int] = set()
    for i, line in enumerate(lines):
        if "│ FAIL " in line or "Error:" in line or "error:" in line:
            keep.update(range(i, min(i + 1 + context, len(lines))))
    return "\n".join(lines[i] for i in sorted(keep))


def changed_ops(run: dict) -> list[str]:
    return [op["name"] for op in run["results"]["operations"] if op["success"]]


def failed_ops(run: dict) -> list[str]:
    return [op["name"] for op in run["results"]["operations"] if op["error"]]


def rehearsal_plan():
    """The plan the rehearsal inventory asks for, read from the inventory as pyinfra loads it."""
    proc = subprocess.run(
        [sys.executable, "-m", "pyinfra", "inventories/rehearsal.py", "debug-inventory", "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    settings = load(json.loads(proc.stdout)[0]["data"]["lbstack"])
    return make_plan(settings.capacity_cpus, settings.capacity_memory_mib, settings)


def remote(info, command: str, timeout: float = 120) -> tuple[int, str, str]:
    return ssh_run(info, command, timeout_s=timeout)


# the rehearsal inventory's own settings, as a base for variations
REHEARSAL_SETTINGS = {"capacity_cpus": 8, "capacity_memory_mib": 16384, "ntp_servers": ["127.0.0.1"]}


def http(url: str, headers: dict | None = None, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """GET ``url`` from this machine (a rehearsal host's address): status, headers, body."""

    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def served_by(base: str, path: str, requests: int, headers: dict | None = None) -> list[str]:
    """Which instance answered each of ``requests`` GETs (X-Lbstack-Instance), in order."""
    seen = []
    for _ in range(requests):
        status, hdrs, _ = http(base + path, headers)
        assert status == 200, (path, status)
        seen.append(hdrs.get("x-lbstack-instance", "-"))
    return seen


def lbstack(host_name: str, *args: str, timeout: int = 600, env: dict | None = None,
            settings: dict | None = None) -> dict:
    """Run the ``lbstack`` command (this environment's) against the rehearsal inventory limited to
    ``host_name`` (``settings`` as in :func:`pyinfra`): rc, stdout, stderr, the parsed JSON when
    ``--json`` was asked, and seconds."""
    started = time.monotonic()
    exe = os.path.join(os.path.dirname(sys.executable), "lbstack")
    with rehearsal_env(host_name, settings, env) as extra:
        proc = subprocess.run([exe, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **extra})
    out = {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr,
           "seconds": time.monotonic() - started, "json": None}
    if "--json" in args:
        try:
            out["json"] = json.loads(proc.stdout)
        except json.JSONDecodeError:
            pass
    return out


def variant(tmp_path, name: str, health_status: int | None = None):
    """A copy of the sample app that is a different build (its own release); ``health_status``
    makes its health endpoint always answer that status."""
    root = tmp_path / name
    shutil.copytree(SAMPLE_APP_DIR, root, ignore=shutil.ignore_patterns("storage"))
    (root / "public" / "build.txt").write_text(f"{name}\n")
    if health_status is not None:
        controller = root / "app" / "Http" / "Controllers" / "HealthController.php"
        text = controller.read_text()
        assert "$failed === [] ? 200 : 503" in text
        controller.write_text(text.replace("$failed === [] ? 200 : 503", str(health_status)))
    return str(root)


def current(info) -> str:
    """The release ``current`` points to on the host."""
    rc, out, _ = remote(info, f"readlink {layout.CURRENT}")
    return out.strip().rsplit("/", 1)[-1]


def chromium() -> str:
    """Debian's headless-capable Chromium, installed when missing (the drift report is read in a
    real browser)."""
    found = shutil.which("chromium")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True, timeout=900)
    return shutil.which("chromium")


# Appended to a copy of a page (the report itself has no scripts): what the browser laid out,
# written into the DOM that --dump-dom prints. For the element after each <h3> (a file's diff):
# its innerText (line breaks as rendered, CSS included) and every descendant's text, colour and
# vertical position.
_PROBE = """<script>
const blocks = [...document.querySelectorAll("h3")].map(h => {
  const block = h.nextElementSibling;
  const parts = [...block.querySelectorAll("*")].map(e => {
    const r = e.getBoundingClientRect();
    return {text: e.textContent, top: Math.round(r.top), color: getComputedStyle(e).color};
  });
  return {title: h.textContent, text: block.innerText, parts: parts};
});
document.body.setAttribute("data-probe", JSON.stringify(blocks));
</script>"""


def rendered_diffs(html_path, tmp_dir) -> list[dict]:
    """Open the report ``html_path`` in headless Chromium and return what it rendered for each
    file diff: ``[{"title", "text" (innerText), "parts": [{"text", "top", "color"}]}]``."""
    import html as html_mod
    import re
    from pathlib import Path

    page = Path(tmp_dir) / "probed.html"
    page.write_text(Path(html_path).read_text().replace("</body>", _PROBE + "\n</body>"))
    profile = Path(tmp_dir) / "chromium-profile"
    proc = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
         "--window-size=1200,2000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    found = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert found, f"chromium rendered nothing (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(html_mod.unescape(found.group(1)))
