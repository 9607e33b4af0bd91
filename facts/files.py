"""Facts about staged configuration files: a file is rendered to a staging copy, validated there,
and only then promoted over the live file."""

from __future__ import annotations

import re
import shlex

from pyinfra.api import FactBase

_KEY = re.compile(r"[A-Za-z0-9_.-]+")


class StagedDiffers(FactBase):
    """
    Live files that are not an exact copy of their staged file, with the given mode.

    ``pairs`` is a list of ``[staged, live, mode]``. Returns the list of ``live`` paths that differ
    in content or mode, or are missing (``[]``: everything promoted). A missing staged file counts
    as a difference too (the promotion then fails, naming it).
    """

    @staticmethod
    def default():
        return []

    def command(self, pairs) -> str:
        checks = []
        for staged, live, mode in pairs:
            s, l, m = shlex.quote(staged), shlex.quote(live), shlex.quote(str(mode).lstrip("0") or "0")
            checks.append(f'{{ cmp -s {s} {l} && [ "$(stat -c %a {l})" = {m} ]; }} || echo {l}')
        return "; ".join(checks) + "; true"

    def process(self, output) -> list[str]:
        return [line.strip() for line in output if line.strip()]


class StagedDiff(FactBase):
    """
    Unified diffs between live files and their staged copies under ``root`` (what promotion would
    change), for every staged file: ``root/etc/nginx/nginx.conf`` is the copy of
    ``/etc/nginx/nginx.conf``. Only secret-free files are staged, so the diff can be shown.

    Returns ``{"/etc/nginx/nginx.conf": "--- ... (live)\n+++ ... (lbstack)\n@@ ..."}`` for each
    live file that differs (a missing live file diffs against nothing).
    """

    @staticmethod
    def default():
        return {}

    def command(self, root) -> str:
        r = shlex.quote(root)
        return (
            f"[ -d {r} ] || exit 0; cd {r} && find . -type f | sort | while read -r f; do "
            'live="/${f#./}"; a="$live"; [ -e "$a" ] || a=/dev/null; '
            'cmp -s "$a" "$f" && continue; echo "@file=$live"; '
            'diff -u --label "$live (live)" --label "$live (lbstack)" "$a" "$f"; done; true'
        )

    def process(self, output) -> dict[str, str]:
        diffs: dict[str, list[str]] = {}
        current = None
        for line in output:
            if line.startswith("@file="):
                current = line[6:].strip()
                diffs[current] = []
            elif current is not None:
                diffs[current].append(line.rstrip("\n"))
        return {path: "\n".join(lines) + "\n" for path, lines in diffs.items()}


class Directives(FactBase):
    """
    The first value of each of ``keys`` in a ``key value`` config file (e.g. redis.conf), read
    without the rest of the file (which may hold secrets).

    Returns ``{"maxmemory": "1275mb", "maxmemory-policy": "noeviction"}``; a key that is absent is
    missing from the result; ``None`` when the file is absent.
    """

    @staticmethod
    def default():
        return None

    def command(self, path, keys) -> str:
        p = shlex.quote(path)
        bad = [k for k in keys if not _KEY.fullmatch(k)]
        if bad:
            raise ValueError(f"not a config key: {bad}")
        pattern = "|".join(keys)
        return (f"[ -r {p} ] || exit 0; echo @present; "
                f"grep -E {shlex.quote(f'^[[:space:]]*({pattern})[[:space:]]')} {p} || true")

    def process(self, output) -> dict[str, str] | None:
        values: dict[str, str] = {}
        present = False
        for line in output:
            if line.strip() == "@present":
                present = True
                continue
            key, _, value = line.strip().partition(" ")
            values.setdefault(key, value.strip())
        return values if present else None


class FileState(FactBase):
    """
    What a rendered file is on the host, in one command: its type, mode, owner and the SHA-256 of
    its content (regular files only).

    Returns ``{"type": "regular file", "mode": 644, "user": "root", "group": "root",
    "sha256": "9f86d0...", }`` (``mode`` as octal digits, like pyinfra's ``File`` fact; ``sha256``
    ``None`` for anything but a regular file), or ``None`` when nothing is at ``path``.
    """

    @staticmethod
    def default():
        return None

    def command(self, path) -> str:
        p = shlex.quote(path)
        return (f"[ -e {p} ] || [ -L {p} ] || exit 0; stat -c '@stat=%a|%U|%G|%F' {p}; "
                f"[ -f {p} ] && [ ! -L {p} ] && sha256sum {p} | sed 's/ .*//; s/^/@sha256=/'; true")

    def process(self, output) -> dict | None:
        result: dict | None = None
        for line in output:
            key, _, value = line.strip().partition("=")
            if key == "@stat":
                mode, user, group, kind = value.split("|", 3)
                result = {"type": kind, "mode": int(mode), "user": user, "group": group, "sha256": None}
            elif key == "@sha256" and result is not None:
                result["sha256"] = value
        return result


class Directories(FactBase):
    """
    Owner and mode of each of ``paths`` that is a directory, in one command.

    Returns ``{"/etc/lbstack": {"user": "root", "group": "root", "mode": 755}}`` (``mode`` as
    octal digits, like pyinfra's ``Directory`` fact); a path that is missing, or not a directory,
    is absent.
    """

    @staticmethod
    def default():
        return {}

    def command(self, paths) -> str:
        quoted = " ".join(shlex.quote(p) for p in paths)
        return (f"for p in {quoted}; do [ -d \"$p\" ] && [ ! -L \"$p\" ] && "
                "stat -c '%a|%U|%G|%n' -- \"$p\"; done; true")

    def process(self, output) -> dict[str, dict]:
        found = {}
        for line in output:
            mode, user, group, path = line.rstrip("\n").split("|", 3)
            found[path] = {"user": user, "group": group, "mode": int(mode)}
        return found


class DirEntries(FactBase):
    """
    What each of ``paths`` holds (one level): ``[name, type, link target]`` per entry, ``type``
    as ``find -printf %y`` gives it (``f`` file, ``d`` directory, ``l`` symlink).

    Returns ``{"/etc/nginx/conf.d": [["lbstack.conf", "f", ""], ["evil.conf", "f", ""]]}``; a
    missing directory is left out.
    """

    @staticmethod
    def default():
        return {}

    def command(self, paths) -> str:
        return "; ".join(f"[ -d {shlex.quote(p)} ] && find {shlex.quote(p)} -mindepth 1 -maxdepth 1 "
                         "-printf '%h\\t%f\\t%y\\t%l\\t.\\n'" for p in paths) + "; true"

    def process(self, output) -> dict[str, list[list[str]]]:
        found: dict[str, list[list[str]]] = {}
        for line in output:
            parts = line.strip().split("\t")  # ends with a "." field: an empty link target survives
            if len(parts) == 5:
                found.setdefault(parts[0], []).append(parts[1:4])
        for entries in found.values():
            entries.sort()
        return found
