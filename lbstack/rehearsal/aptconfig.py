"""Read this machine's apt configuration: the sources and the Acquire options to copy.

Rehearsal hosts use exactly the mirrors this machine uses; no mirror name lives in the repo.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from .common import RehearsalError

APT_DIR = Path("/etc/apt")
# Acquire options that decide whether this machine's mirror is usable at all
# (a snapshot mirror needs the Valid-Until/Date checks off).
COPIED_OPTIONS = ("Acquire::Check-Valid-Until", "Acquire::Check-Date", "Acquire::Max-FutureTime")


def source_files() -> list[Path]:
    """The active apt source files (deb822 ``*.sources`` and one-line ``*.list``), sorted.

    Files whose name contains ``.disabled`` are skipped, so are empty ones.
    """
    candidates = [APT_DIR / "sources.list"]
    candidates += sorted((APT_DIR / "sources.list.d").glob("*.sources"))
    candidates += sorted((APT_DIR / "sources.list.d").glob("*.list"))
    files = [p for p in candidates if ".disabled" not in p.name and _has_entries(p)]
    if not files:
        raise RehearsalError(f"no apt sources found under {APT_DIR}")
    return files


def _has_entries(path: Path) -> bool:
    """True if ``path`` exists and has a line that is neither blank nor a comment."""
    if not path.is_file():
        return False
    return any(line.strip() and not line.lstrip().startswith("#") for line in path.read_text().splitlines())


def source_uris() -> list[str]:
    """Every repository URI named by the active sources."""
    uris: list[str] = []
    for path in source_files():
        for line in path.read_text().splitlines():
            words = line.split("#", 1)[0].split()
            if words[:1] == ["URIs:"]:
                uris += words[1:]
            elif words[:1] in (["deb"], ["deb-src"]):
                uris += [w for w in words[1:] if "://" in w][:1]
    return uris


def mirror_hosts() -> list[str]:
    """``host[:port]`` of every http source: what the container's apt proxy may reach."""
    hosts = {urlsplit(uri).netloc for uri in source_uris() if uri.startswith("http://")}
    return sorted(hosts)


def acquire_options() -> list[str]:
    """This machine's effective values of COPIED_OPTIONS, as apt.conf statements."""
    dump = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, check=True).stdout
    return [
        line.rstrip(";")
        for line in dump.splitlines()
        if line.split(" ", 1)[0] in COPIED_OPTIONS
    ]
