"""The golden Debian 12 root file system of rehearsal hosts, built once with mmdebstrap.

A :class:`Recipe` holds every input of a build (packages, this machine's apt sources and
Acquire options, files written into the tree, units enabled). Its digest names the cached
tree under ``<state>/golden/``, so a changed recipe rebuilds and an unchanged one is reused.
Each container host boots its own ``cp -a --reflink=auto`` copy of that tree.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

from . import aptconfig
from .common import RehearsalError, list_hosts, locked, remove_tree, run, state_dir
from .tools import ensure_tools

SUITE = "bookworm"
# What a bare VPS image has and the deploy expects: systemd as PID 1, dbus, sshd, python3.
# The stack's own packages (nginx, php-fpm, ...) are installed by the deploy, not here.
BASE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2",
    "procps", "ca-certificates", "python3", "sudo", "curl",
)
INIT_WRAPPER = "/usr/local/sbin/lbstack-rehearsal-init"
FILES_DIR = Path(__file__).parent / "files"
# Bump when the build steps change in a way the recipe data does not show.
BUILD_FORMAT = 1


@dataclass(frozen=True)
class Recipe:
    """Every input of a golden tree build; ``digest()`` keys the cache."""

    name: str  # cache prefix: "rootfs" (containers) or "vm"
    packages: tuple[str, ...]  # --include list on top of the minbase variant
    files: tuple[tuple[str, str, int], ...]  # (path in tree, content, mode) written after install
    units: tuple[str, ...]  # systemd units enabled in the tree
    sources: tuple[str, ...]  # this machine's apt source files, passed as mmdebstrap mirrors
    aptopts: tuple[str, ...]  # apt options kept in the tree's /etc/apt/apt.conf.d/99mmdebstrap
    commands: tuple[tuple[str, ...], ...] = ()  # argv lists run in the tree (chroot) after the files

    def digest(self) -> str:
        """Short sha256 over the recipe data, the source files' contents and BUILD_FORMAT."""
        data = {
            "format": BUILD_FORMAT,
            "suite": SUITE,
            "recipe": [self.name, self.packages, self.files, self.units, self.aptopts]
            + ([self.commands] if self.commands else []),
            "sources": [Path(path).read_text() for path in self.sources],
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def ssh_key() -> Path:
    """The private key of rehearsal hosts (``<state>/ssh/id_ed25519``), generated once."""
    key = state_dir() / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(mode=0o700, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lbstack-rehearsal", "-f", str(key)])
    return key


def base_recipe(
    name: str, packages: tuple[str, ...], files: tuple[tuple[str, str, int], ...],
    commands: tuple[tuple[str, ...], ...] = (), units: tuple[str, ...] = (),
) -> Recipe:
    """The common recipe (BASE_PACKAGES, root's authorized key, networkd) plus extras."""
    public_key = ssh_key().with_suffix(".pub").read_text()
    common_files = (
        ("/root/.ssh/authorized_keys", public_key, 0o600),
        ("/etc/hostname", "lbstack-rehearsal\n", 0o644),
    )
    return Recipe(
        name=name,
        packages=BASE_PACKAGES + packages,
        files=common_files + files,
        units=("systemd-networkd.service", "ssh.service") + units,
        sources=tuple(str(path) for path in aptconfig.source_files()),
        aptopts=tuple(aptconfig.acquire_options()),
        commands=commands,
    )


def container_recipe() -> Recipe:
    """The recipe of container hosts: the base plus the cgroup-remounting PID-1 wrapper."""
    wrapper = (FILES_DIR / "lbstack-rehearsal-init").read_text()
    return base_recipe("rootfs", (), ((INIT_WRAPPER, wrapper, 0o755),))


def build_tree(recipe: Recipe, dest: Path, log: Path) -> None:
    """Run mmdebstrap for ``recipe`` into the new directory ``dest``, then customize it."""
    cmd = [
        "mmdebstrap", "--mode=root", "--variant=minbase",
        f"--include={','.join(recipe.packages)}",
        *(f"--aptopt={option}" for option in recipe.aptopts),
        SUITE, str(dest), *recipe.sources,
    ]
    with open(log, "w") as handle:
        result = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        tail = log.read_text()[-2000:]
        raise RehearsalError(f"mmdebstrap failed (exit {result.returncode}), log {log}:\n{tail}")
    for path, content, mode in recipe.files:
        write_file(dest, path, content, mode)
    for command in recipe.commands:
        run(["chroot", str(dest), *command])
    run(["chroot", str(dest), "systemctl", "enable", *recipe.units])


def write_file(root: Path, path: str, content: str, mode: int = 0o644) -> None:
    """Write ``content`` to ``path`` inside the tree ``root`` (parents created 0755, /root/.ssh 0700)."""
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.parent.name == ".ssh":
        target.parent.chmod(0o700)
    target.write_text(content)
    target.chmod(mode)


def cached_build(recipe: Recipe, force: bool, build: Callable[[Path, Path], None]) -> Path:
    """Return ``<state>/golden/<name>-<digest>``, building it with ``build(tmp, log)`` if needed.

    Builds go to a temporary path renamed on success, so a half-built tree is never used.
    Older builds of the same recipe name are deleted afterwards unless a VM still runs on one.
    """
    golden = state_dir() / "golden"
    path = golden / f"{recipe.name}-{recipe.digest()}"
    with locked(golden / ".lock"):
        if path.exists() and not force:
            return path
        in_use = {Path(info.image) for info in list_hosts() if info.image}
        if path in in_use:
            raise RehearsalError(f"{path} is in use by a running VM: take it down before --force")
        tmp = path.with_name(path.name + ".tmp")
        remove_tree(tmp)
        build(tmp, path.with_name(path.name + ".log"))
        remove_tree(path)
        tmp.rename(path)
        for old in golden.glob(f"{recipe.name}-*"):
            if not old.name.startswith(path.name) and golden / old.name.split(".")[0] not in in_use:
                remove_tree(old)
    return path


def build_rootfs(force: bool = False) -> Path:
    """The golden container rootfs directory, built (about 20 s) unless cached or ``force``."""
    ensure_tools()
    recipe = container_recipe()
    return cached_build(recipe, force, lambda tmp, log: build_tree(recipe, tmp, log))
